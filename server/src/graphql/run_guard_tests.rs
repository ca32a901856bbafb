//! The guard of the root fields (authz/guard.rs) as requests meet it: through the execution
//! of `run`, which checks subscriptions before their resolver and leaves the root fields to the
//! `Guarded` wrapper. Here rather than beside the guard, which sits below `graphql`.

use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::{MergedObject, Request, Schema, Subscription};

use async_graphql::Value;
use futures_util::{Stream, StreamExt as _};
use uuid::Uuid;

use crate::{
    auth::{Principal, Viewer},
    authz::{
        Action, Authz, FieldGuard, Guard, Guarded, Object, Permission, declared_guards, public,
        requires,
    },
    db::RequestScope,
    graphql::run,
};

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

type TestSchema = Schema<Guarded<Query>, async_graphql::EmptyMutation, Guarded<Ticks>>;

async fn schema() -> TestSchema {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let authz = match Authz::load(dir).await {
        Ok(authz) => authz,
        Err(e) => panic!("{e:#}"),
    };
    Schema::build(
        Guarded(Query::default()),
        async_graphql::EmptyMutation,
        Guarded(Ticks),
    )
    .data(Guard::new::<Query, async_graphql::EmptyMutation, Ticks>(
        authz,
    ))
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
    let open = run::execute(&schema, as_role("{ open }", None)).await;
    assert!(open.errors.is_empty(), "{:?}", open.errors);

    let anonymous = run::execute(&schema, as_role("{ secret }", None)).await;
    assert_eq!(code(&anonymous).as_deref(), Some("UNAUTHENTICATED"));

    let member = run::execute(&schema, as_role("{ open s: secret }", Some("member"))).await;
    assert_eq!(code(&member).as_deref(), Some("FORBIDDEN"));
    assert_eq!(member.errors[0].message, "your role may not update company");
    assert_eq!(
        member.errors[0].path,
        vec![async_graphql::PathSegment::Field("s".into())]
    );
    // A denied field fails alone: the others still answer.
    let data = member.data.into_json().unwrap_or_default();
    assert_eq!(data["open"], 1);

    let admin = run::execute(&schema, as_role("{ secret }", Some("admin"))).await;
    assert!(admin.errors.is_empty(), "{:?}", admin.errors);
}

#[tokio::test]
async fn a_field_without_a_guard_is_denied_to_everyone() {
    let schema = schema().await;
    for role in [None, Some("member"), Some("admin")] {
        let response = run::execute(&schema, as_role("{ forgotten }", role)).await;
        assert_eq!(code(&response).as_deref(), Some("FORBIDDEN"), "{role:?}");
    }
}

#[tokio::test]
async fn subscriptions_are_authorized_before_their_resolver_runs() {
    let schema = schema().await;
    let denied = run::execute_stream(
        &schema,
        as_role("subscription { ticks }", Some("member")),
        None,
    )
    .next()
    .await;
    let denied = denied.unwrap_or_default();
    assert_eq!(code(&denied).as_deref(), Some("FORBIDDEN"));
    assert!(!SUBSCRIBED.load(Ordering::SeqCst), "the resolver ran");

    let anonymous = run::execute_stream(
        &schema,
        as_role("subscription { ...F } fragment F on Ticks { ticks }", None),
        None,
    )
    .next()
    .await
    .unwrap_or_default();
    assert_eq!(code(&anonymous).as_deref(), Some("UNAUTHENTICATED"));

    let allowed: Vec<_> = run::execute_stream(
        &schema,
        as_role("subscription { ticks }", Some("manager")),
        None,
    )
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
