//! The one declarative guard: every field of Query, Mutation and Subscription carries either
//! `@requires(object:, action:)` or `@public`, and [`Guard`] enforces it before the resolver
//! runs. The directives are type-system directives, so they sit in the registry (where the
//! guard reads them) and in the SDL (where clients and the schema-walking test see them).
//!
//! - Query and Mutation fields are checked in the `resolve` hook, one field at a time: each
//!   mutation right before it runs, and a denied query field fails alone.
//! - Subscription fields are checked when the operation is parsed, i.e. at subscribe time,
//!   before any subscription resolver sets up its stream.
//! - A root field with neither directive is a bug: it is denied (fail closed) and logged.

use std::sync::Arc;

use async_graphql::{
    Pos, ServerError, ServerResult, TypeDirective, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, ResolveInfo,
    },
    parser::types::{ExecutableDocument, Field, OperationType, Selection, SelectionSet},
    registry::Registry,
};

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

/// The guard of `type_name.field` in a schema registry; `None` when it has none.
fn registry_guard(registry: &Registry, type_name: &str, field: &str) -> Option<FieldGuard> {
    let meta = registry.types.get(type_name)?.field_by_name(field)?;
    FieldGuard::from_directives(
        meta.directive_invocations
            .iter()
            .map(|d| (d.name.as_str(), move |arg: &str| d.args.get(arg))),
    )
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

/// The extension enforcing the guards (see the module documentation).
#[derive(Debug, Clone)]
pub struct Guard {
    authz: Authz,
}

impl Guard {
    pub fn new(authz: Authz) -> Self {
        Self { authz }
    }

    async fn check(
        &self,
        ctx: &ExtensionContext<'_>,
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
        let permission = match registry_guard(&ctx.schema_env.registry, type_name, name) {
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
        let scope = ctx.data_opt::<Arc<RequestScope>>().ok_or_else(|| {
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
}

/// The GraphQL error of a guard decision, at the field's position and path.
fn guard_error(error: AppError, pos: Pos, key: &str) -> ServerError {
    let mut error = async_graphql::Error::from(error).into_server_error(pos);
    error.path = vec![async_graphql::PathSegment::Field(key.to_owned())];
    error
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for Guard {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let registry = &ctx.schema_env.registry;
        let Some(subscription) = registry.subscription_type.as_deref() else {
            return Ok(document);
        };
        // Every subscription operation of the document, whichever one the request picks:
        // checking one too many fails closed.
        let mut checked = false;
        for (_, operation) in document.operations.iter() {
            if operation.node.ty != OperationType::Subscription {
                continue;
            }
            let mut fields = Vec::new();
            root_fields(
                &document,
                &operation.node.selection_set.node,
                0,
                &mut fields,
            );
            for field in fields {
                let known = registry
                    .types
                    .get(subscription)
                    .and_then(|ty| ty.field_by_name(field.name.node.as_str()))
                    .is_some();
                // Unknown fields are left to validation, which reports them properly.
                if known && !field.name.node.starts_with("__") {
                    self.check(ctx, subscription, field).await?;
                    checked = true;
                }
            }
        }
        // A subscription lives long: the read transaction a check may have loaded custom roles
        // in must not stay open (holding a connection) for as long.
        if checked && let Some(scope) = ctx.data_opt::<Arc<RequestScope>>() {
            scope
                .finish()
                .await
                .map_err(|e| async_graphql::Error::from(e).into_server_error(Pos::default()))?;
        }
        Ok(document)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let registry = &ctx.schema_env.registry;
        let root = info.parent_type == registry.query_type
            || registry.mutation_type.as_deref() == Some(info.parent_type);
        // `__schema` / `__type` are introspection, which the schema itself governs.
        if root && !info.name.starts_with("__") {
            // Boxed: this hook runs for every field of the answer, and the check's state would
            // otherwise make each of their futures as large as its own.
            Box::pin(self.check(ctx, info.parent_type, info.field)).await?;
        }
        next.run(ctx, info).await
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_graphql::{MergedObject, Request, Schema, Subscription};
    use futures_util::{Stream, StreamExt as _};
    use uuid::Uuid;

    use super::*;
    use crate::auth::Principal;

    static SUBSCRIBED: AtomicBool = AtomicBool::new(false);

    #[derive(Default)]
    struct Open;

    #[async_graphql::Object]
    impl Open {
        /// Anyone.
        #[graphql(directive = public::apply())]
        async fn open(&self) -> i32 {
            1
        }

        /// Forgot its guard.
        async fn forgotten(&self) -> i32 {
            2
        }
    }

    #[derive(Default)]
    struct Closed;

    #[async_graphql::Object]
    impl Closed {
        /// Admins only.
        #[graphql(directive = requires::apply(Object::Company, Action::Update))]
        async fn secret(&self) -> Option<i32> {
            Some(3)
        }
    }

    #[derive(MergedObject, Default)]
    #[graphql(name = "Query")]
    struct Query(Open, Closed);

    struct Ticks;

    #[Subscription]
    impl Ticks {
        /// Needs `read invitation`, which members do not have.
        #[graphql(directive = requires::apply(Object::Invitation, Action::Read))]
        async fn ticks(&self) -> impl Stream<Item = i32> {
            SUBSCRIBED.store(true, Ordering::SeqCst);
            futures_util::stream::iter([1, 2])
        }
    }

    type TestSchema = Schema<Query, async_graphql::EmptyMutation, Ticks>;

    async fn schema() -> TestSchema {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let authz = match Authz::load(dir).await {
            Ok(authz) => authz,
            Err(e) => panic!("{e:#}"),
        };
        Schema::build(Query::default(), async_graphql::EmptyMutation, Ticks)
            .extension(Guard::new(authz))
            .finish()
    }

    fn as_role(query: &str, role: Option<&str>) -> Request {
        let viewer = match role.map(str::parse) {
            None | Some(Err(_)) => Viewer::Anonymous,
            Some(Ok(role)) => Viewer::User(Principal {
                user_id: Uuid::new_v4(),
                company_id: Uuid::new_v4(),
                role,
                session_id: Uuid::new_v4(),
            }),
        };
        // Built-in roles never touch the database, so a disconnected one will do.
        Request::new(query).data(RequestScope::new(
            Default::default(),
            crate::db::Shares::new(1, std::time::Duration::ZERO),
            crate::db::RequestBudget::new(1),
            viewer,
        ))
    }

    fn code(response: &async_graphql::Response) -> Option<String> {
        let error = response.errors.first()?;
        match error.extensions.as_ref()?.get("code") {
            Some(Value::String(code)) => Some(code.clone()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn public_fields_are_open_and_guarded_ones_need_the_permission() {
        let schema = schema().await;
        let open = schema.execute(as_role("{ open }", None)).await;
        assert!(open.errors.is_empty(), "{:?}", open.errors);

        let anonymous = schema.execute(as_role("{ secret }", None)).await;
        assert_eq!(code(&anonymous).as_deref(), Some("UNAUTHENTICATED"));

        let member = schema
            .execute(as_role("{ open s: secret }", Some("member")))
            .await;
        assert_eq!(code(&member).as_deref(), Some("FORBIDDEN"));
        assert_eq!(member.errors[0].message, "your role may not update company");
        assert_eq!(
            member.errors[0].path,
            vec![async_graphql::PathSegment::Field("s".into())]
        );
        // A denied field fails alone: the others still answer.
        let data = member.data.into_json().unwrap_or_default();
        assert_eq!(data["open"], 1);

        let admin = schema.execute(as_role("{ secret }", Some("admin"))).await;
        assert!(admin.errors.is_empty(), "{:?}", admin.errors);
    }

    #[tokio::test]
    async fn a_field_without_a_guard_is_denied_to_everyone() {
        let schema = schema().await;
        for role in [None, Some("member"), Some("admin")] {
            let response = schema.execute(as_role("{ forgotten }", role)).await;
            assert_eq!(code(&response).as_deref(), Some("FORBIDDEN"), "{role:?}");
        }
    }

    #[tokio::test]
    async fn subscriptions_are_authorized_before_their_resolver_runs() {
        let schema = schema().await;
        let denied = schema
            .execute_stream(as_role("subscription { ticks }", Some("member")))
            .next()
            .await;
        let denied = denied.unwrap_or_default();
        assert_eq!(code(&denied).as_deref(), Some("FORBIDDEN"));
        assert!(!SUBSCRIBED.load(Ordering::SeqCst), "the resolver ran");

        let anonymous = schema
            .execute_stream(as_role(
                "subscription { ...F } fragment F on Ticks { ticks }",
                None,
            ))
            .next()
            .await
            .unwrap_or_default();
        assert_eq!(code(&anonymous).as_deref(), Some("UNAUTHENTICATED"));

        let allowed: Vec<_> = schema
            .execute_stream(as_role("subscription { ticks }", Some("manager")))
            .collect()
            .await;
        assert_eq!(allowed.len(), 2);
        assert!(allowed.iter().all(|r| r.errors.is_empty()), "{allowed:?}");
    }

    #[test]
    fn directives_survive_merging_and_show_in_the_sdl() {
        let sdl = Schema::build(Query::default(), async_graphql::EmptyMutation, Ticks)
            .finish()
            .sdl();
        let guards = match declared_guards(&sdl) {
            Ok(guards) => guards,
            Err(e) => panic!("{e:#}"),
        };
        let find = |field: &str| {
            guards
                .iter()
                .find(|(_, name, _)| name == field)
                .map(|(ty, _, guard)| (ty.as_str(), *guard))
        };
        assert_eq!(find("open"), Some(("Query", Some(FieldGuard::Public))));
        assert_eq!(find("forgotten"), Some(("Query", None)));
        assert_eq!(
            find("secret"),
            Some((
                "Query",
                Some(FieldGuard::Requires(Permission {
                    object: Object::Company,
                    action: Action::Update
                }))
            ))
        );
        assert_eq!(find("ticks").map(|(ty, _)| ty), Some("Ticks"));
    }
}
