//! The one declarative guard: every field of Query, Mutation and Subscription carries either
//! `@requires(object:, action:)` or `@public`, and [`Guard`] enforces it before the resolver
//! runs. The directives are type-system directives, so they sit in the registry (where the
//! guard reads them, once, when the schema is built) and in the SDL (where clients and the
//! schema-walking test see them).
//!
//! - Query and Mutation fields are checked by [`Guarded`], the root types' wrapper, one field
//!   at a time: each mutation right before it runs, and a denied query field fails alone. Only
//!   the root fields pass through it; the fields below them resolve directly (no extension is
//!   registered, so async-graphql takes its direct path for every field).
//! - Subscription fields are checked on the parsed document before the operation starts
//!   ([`Guard::check_subscriptions`], from `crate::graphql::run`), before any subscription
//!   resolver sets up its stream.
//! - A root field with neither directive is a bug: it is denied (fail closed) and logged.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use async_graphql::{
    ContainerType, Context, ContextSelectionSet, ObjectType, OutputType, Pos, Positioned, Response,
    ServerError, ServerResult, SubscriptionType, TypeDirective, Value,
    parser::types::{ExecutableDocument, Field, OperationType, Selection, SelectionSet},
    registry::Registry,
};
use futures_util::{Stream, StreamExt as _};
use tracing::Instrument as _;

use super::{Action, Authz, Object, Permission};
use crate::{auth::Viewer, db::RequestScope, error::AppError};

/// The permission a root field needs: the caller's role must be granted `action` on `object`
/// in the caller's company. Checked before the resolver runs; rows are then up to Row Level
/// Security.
#[TypeDirective(location = "FieldDefinition")]
pub fn requires(object: Object, action: Action) {}

/// A root field anyone may use, signed in or not (sign-up, login, ...).
#[TypeDirective(location = "FieldDefinition")]
pub fn public() {}

/// What a root field declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldGuard {
    Public,
    Requires(Permission),
}

impl FieldGuard {
    /// Reads the guard from a field's directives (name and argument lookup); `None` when it
    /// has none. `@requires` wins over `@public`, and a malformed `@requires` counts as none.
    fn from_directives<'a, F>(directives: impl IntoIterator<Item = (&'a str, F)>) -> Option<Self>
    where
        F: Fn(&str) -> Option<&'a async_graphql::Value>,
    {
        let mut is_public = false;
        for (name, arg) in directives {
            match name {
                "requires" => {
                    let object = arg("object").and_then(enum_arg::<Object>);
                    let action = arg("action").and_then(enum_arg::<Action>);
                    return object
                        .zip(action)
                        .map(|(object, action)| Self::Requires(Permission { object, action }));
                }
                "public" => is_public = true,
                _ => {}
            }
        }
        is_public.then_some(Self::Public)
    }
}

fn enum_arg<T: async_graphql::InputType>(value: &async_graphql::Value) -> Option<T> {
    T::parse(Some(value.clone())).ok()
}

/// The guards of every field of the type `type_name` in a schema registry (`None`: declares
/// none).
fn registry_guards(registry: &Registry, type_name: &str) -> HashMap<String, Option<FieldGuard>> {
    let Some(ty) = registry.types.get(type_name) else {
        return HashMap::new();
    };
    let Some(fields) = ty.fields() else {
        return HashMap::new();
    };
    fields
        .values()
        .map(|meta| {
            let guard = FieldGuard::from_directives(
                meta.directive_invocations
                    .iter()
                    .map(|d| (d.name.as_str(), move |arg: &str| d.args.get(arg))),
            );
            (meta.name.clone(), guard)
        })
        .collect()
}

/// Every field of the schema's Query, Mutation and Subscription types with its guard, read
/// from SDL (as `server print-schema` prints it): `(type, field, guard)`.
pub fn declared_guards(sdl: &str) -> anyhow::Result<Vec<(String, String, Option<FieldGuard>)>> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql::parser::parse_schema(sdl)?;
    let mut roots = vec![
        "Query".to_owned(),
        "Mutation".to_owned(),
        "Subscription".to_owned(),
    ];
    for definition in &document.definitions {
        if let TypeSystemDefinition::Schema(schema) = definition {
            let schema = &schema.node;
            roots = [&schema.query, &schema.mutation, &schema.subscription]
                .into_iter()
                .flatten()
                .map(|name| name.node.to_string())
                .collect();
        }
    }
    let mut guards = Vec::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let (name, TypeKind::Object(object)) = (&ty.node.name.node, &ty.node.kind) else {
            continue;
        };
        if !roots.iter().any(|root| root == name.as_str()) {
            continue;
        }
        for field in &object.fields {
            let guard = FieldGuard::from_directives(field.node.directives.iter().map(|d| {
                let d = &d.node;
                (d.name.node.as_str(), move |arg: &str| {
                    d.get_argument(arg).map(|value| &value.node)
                })
            }));
            guards.push((name.to_string(), field.node.name.node.to_string(), guard));
        }
    }
    Ok(guards)
}

/// The guards of the root types' fields, read from the schema's types once, with the Casbin
/// enforcer they are checked with. Kept in the schema's data, where [`Guarded`] finds it.
#[derive(Debug, Clone)]
pub struct Guard {
    authz: Authz,
    /// Root type name, then field name: its guard (`None`: the field declares none).
    fields: Arc<HashMap<String, HashMap<String, Option<FieldGuard>>>>,
    subscription_type: Option<String>,
}

impl Guard {
    /// The guard of the schema whose roots are `Query`, `Mutation` and `Subscription` (the
    /// types themselves, not their [`Guarded`] wrappers: those register the same types).
    pub fn new<Query, Mutation, Subscription>(authz: Authz) -> Self
    where
        Query: OutputType,
        Mutation: ContainerType,
        Subscription: SubscriptionType,
    {
        let mut registry = Registry::default();
        let mut roots = vec![Query::type_name().into_owned()];
        Query::create_type_info(&mut registry);
        if !Mutation::is_empty() {
            Mutation::create_type_info(&mut registry);
            roots.push(<Mutation as OutputType>::type_name().into_owned());
        }
        let subscription_type = (!Subscription::is_empty()).then(|| {
            Subscription::create_type_info(&mut registry);
            <Subscription as SubscriptionType>::type_name().into_owned()
        });
        roots.extend(subscription_type.clone());
        let fields = roots
            .into_iter()
            .map(|root| {
                let guards = registry_guards(&registry, &root);
                (root, guards)
            })
            .collect();
        Self {
            authz,
            fields: Arc::new(fields),
            subscription_type,
        }
    }

    /// What `type_name.field` declares: `None` for nothing (or a field the guard does not know,
    /// which validation has refused before anything runs).
    fn guard_of(&self, type_name: &str, field: &str) -> Option<FieldGuard> {
        self.fields.get(type_name)?.get(field).copied().flatten()
    }

    async fn check(
        &self,
        scope: Option<&Arc<RequestScope>>,
        type_name: &str,
        field: &Field,
    ) -> ServerResult<()> {
        let name = field.name.node.as_str();
        let pos = field
            .alias
            .as_ref()
            .map_or(field.name.pos, |alias| alias.pos);
        let key = field.response_key().node.as_str();
        let fail = |error: AppError| guard_error(error, pos, key);
        let permission = match self.guard_of(type_name, name) {
            Some(FieldGuard::Public) => return Ok(()),
            Some(FieldGuard::Requires(permission)) => permission,
            None => {
                self.authz.count_denial();
                tracing::error!(
                    field = %format!("{type_name}.{name}"),
                    "BUG: a root field declares neither @requires nor @public; denied"
                );
                return Err(fail(AppError::Forbidden(format!(
                    "`{name}` declares no permission, so nobody may use it"
                ))));
            }
        };
        let scope = scope.ok_or_else(|| {
            fail(AppError::internal(anyhow::anyhow!(
                "no request scope in the GraphQL context"
            )))
        })?;
        let principal = match scope.viewer() {
            Viewer::User(principal) => principal,
            Viewer::Anonymous => {
                return Err(fail(AppError::Unauthenticated(format!(
                    "sign in to use `{name}`"
                ))));
            }
        };
        if self
            .authz
            .authorize(scope, principal, permission)
            .await
            .map_err(fail)?
        {
            return Ok(());
        }
        self.authz.count_denial();
        tracing::warn!(
            user = %principal.user_id,
            company = %principal.company_id,
            role = %principal.role,
            object = permission.object.as_str(),
            action = permission.action.as_str(),
            field = %format!("{type_name}.{name}"),
            "permission denied"
        );
        Err(fail(AppError::Forbidden(format!(
            "your role may not {} {}",
            permission.action.as_str(),
            permission.object.as_str()
        ))))
    }

    /// Checks the root fields of every subscription operation of `document` (through
    /// fragments), whichever one the request picks: checking one too many fails closed. Runs
    /// on the parsed document, before validation and before any subscription resolver.
    pub async fn check_subscriptions(
        &self,
        document: &ExecutableDocument,
        scope: Option<&Arc<RequestScope>>,
    ) -> ServerResult<()> {
        let Some(subscription) = self.subscription_type.as_deref() else {
            return Ok(());
        };
        let known = self.fields.get(subscription);
        let mut checked = false;
        for (_, operation) in document.operations.iter() {
            if operation.node.ty != OperationType::Subscription {
                continue;
            }
            let mut fields = Vec::new();
            root_fields(document, &operation.node.selection_set.node, 0, &mut fields);
            for field in fields {
                let name = field.name.node.as_str();
                // Unknown fields are left to validation, which reports them properly.
                if known.is_some_and(|known| known.contains_key(name)) && !name.starts_with("__") {
                    self.check(scope, subscription, field).await?;
                    checked = true;
                }
            }
        }
        // A subscription lives long: the read transaction a check may have loaded custom roles
        // in must not stay open (holding a connection) for as long.
        if checked && let Some(scope) = scope {
            scope
                .finish()
                .await
                .map_err(|e| async_graphql::Error::from(e).into_server_error(Pos::default()))?;
        }
        Ok(())
    }
}

/// The GraphQL error of a guard decision, at the field's position and path.
fn guard_error(error: AppError, pos: Pos, key: &str) -> ServerError {
    let mut error = async_graphql::Error::from(error).into_server_error(pos);
    error.path = vec![async_graphql::PathSegment::Field(key.to_owned())];
    error
}

/// Set in an operation's data when its subscription streams start, i.e. once the operation
/// was validated (what the subscription metrics count from).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionStarted(pub Arc<std::sync::atomic::AtomicBool>);

/// A root type of the schema (Query, Mutation or Subscription) whose fields pass the [`Guard`]
/// (found in the schema's data) before they run, each in a `resolve` trace span. The type is
/// the wrapped one in the schema (same name, same fields, same SDL).
#[derive(Debug, Default)]
pub struct Guarded<T>(pub T);

impl<T: ObjectType> OutputType for Guarded<T> {
    fn type_name() -> Cow<'static, str> {
        <T as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <T as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        async_graphql::resolver_utils::resolve_container(ctx, self).await
    }
}

impl<T: ObjectType> ContainerType for Guarded<T> {
    fn is_empty() -> bool {
        T::is_empty()
    }

    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        let field = &ctx.item.node;
        let span = tracing::info_span!("resolve", field = field.name.node.as_str());
        async {
            let Some(guard) = ctx.data_opt::<Guard>() else {
                return Err(no_guard(field));
            };
            let type_name = <T as OutputType>::type_name();
            // Boxed: the check's state would otherwise make every root field's future as
            // large as its own.
            Box::pin(guard.check(ctx.data_opt::<Arc<RequestScope>>(), &type_name, field)).await?;
            self.0.resolve_field(ctx).await
        }
        .instrument(span)
        .await
    }
}

impl<T: ObjectType> ObjectType for Guarded<T> {}

impl<T: SubscriptionType> SubscriptionType for Guarded<T> {
    fn type_name() -> Cow<'static, str> {
        <T as SubscriptionType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <T as SubscriptionType>::create_type_info(registry)
    }

    fn is_empty() -> bool {
        <T as SubscriptionType>::is_empty()
    }

    fn create_field_stream<'a>(
        &'a self,
        ctx: &'a Context<'_>,
    ) -> Option<std::pin::Pin<Box<dyn Stream<Item = Response> + Send + 'a>>> {
        // The fields were checked before the operation started (see the module documentation);
        // without the guard nothing runs.
        if ctx.data_opt::<Guard>().is_none() {
            let error = no_guard(&ctx.item.node);
            return Some(
                futures_util::stream::once(async move { Response::from_errors(vec![error]) })
                    .boxed(),
            );
        }
        if let Some(started) = ctx.data_opt::<SubscriptionStarted>() {
            started.0.store(true, std::sync::atomic::Ordering::Release);
        }
        self.0.create_field_stream(ctx)
    }
}

/// A schema without its [`Guard`] denies everything.
fn no_guard(field: &Field) -> ServerError {
    guard_error(
        AppError::internal(anyhow::anyhow!("no field guard in the schema's data")),
        field.name.pos,
        field.response_key().node.as_str(),
    )
}

/// The fields a selection set selects at its own level, through fragments.
fn root_fields<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    depth: usize,
    out: &mut Vec<&'a Field>,
) {
    // Fragment cycles are rejected by validation, which runs after this: stop early.
    if depth > 16 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => out.push(&field.node),
            Selection::InlineFragment(fragment) => {
                root_fields(document, &fragment.node.selection_set.node, depth + 1, out);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    root_fields(document, &fragment.node.selection_set.node, depth + 1, out);
                }
            }
        }
    }
}
