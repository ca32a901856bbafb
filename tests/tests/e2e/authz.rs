//! Authorization: every root field is guarded, the guard follows `policy.csv` for every role
//! and operation, custom roles work without a restart, and the policy files reload on SIGHUP.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use futures_util::{StreamExt as _, stream};
use serde_json::{Value, json};
use server::authz::{Authz, FieldGuard, declared_guards, permissions_table};
use tests::{
    GqlResponse, TestApp, TestUser, eventually,
    policy::{ACTIONS, policy, policy_dir},
};
use uuid::Uuid;

const OBJECTS: [&str; 9] = [
    "company",
    "user",
    "preset",
    "audience",
    "friendship",
    "conversation",
    "message",
    "session",
    "invitation",
];

/// Every root field with its guard, as the SDL declares them.
fn guards() -> anyhow::Result<Vec<(String, String, Option<FieldGuard>)>> {
    declared_guards(&server::graphql::sdl())
}

#[test]
fn every_root_field_declares_a_guard() -> anyhow::Result<()> {
    let guards = guards()?;
    anyhow::ensure!(
        guards.iter().any(|(ty, ..)| ty == "Query")
            && guards.iter().any(|(ty, ..)| ty == "Mutation"),
        "the walk found no Query or Mutation fields: {guards:?}"
    );
    let unguarded: Vec<String> = guards
        .iter()
        .filter(|(_, _, guard)| guard.is_none())
        .map(|(ty, field, _)| format!("{ty}.{field}"))
        .collect();
    anyhow::ensure!(
        unguarded.is_empty(),
        "these fields declare neither @requires(object:, action:) nor @public, so the guard denies \
         them to everybody: {unguarded:?}"
    );
    Ok(())
}

#[test]
fn user_and_role_fields_declare_the_intended_permissions() -> anyhow::Result<()> {
    let declared: HashMap<(String, String), Option<FieldGuard>> = guards()?
        .into_iter()
        .map(|(ty, field, guard)| ((ty, field), guard))
        .collect();
    let expected = [
        ("Query", "me", "user", "read"),
        ("Query", "company", "company", "read"),
        ("Query", "users", "user", "read"),
        ("Query", "user", "user", "read"),
        ("Query", "roles", "company", "read"),
        ("Mutation", "updateProfile", "user", "update"),
        ("Mutation", "updateUser", "user", "manage"),
        ("Mutation", "deactivateUser", "user", "manage"),
        ("Mutation", "updateCompany", "company", "update"),
        ("Mutation", "createRole", "company", "manage"),
        ("Mutation", "deleteRole", "company", "manage"),
    ];
    for (ty, field, object, action) in expected {
        let guard = declared
            .get(&(ty.to_owned(), field.to_owned()))
            .with_context(|| format!("{ty}.{field} is missing"))?;
        let Some(FieldGuard::Requires(permission)) = guard else {
            anyhow::bail!("{ty}.{field} should require {action} {object}, declares {guard:?}");
        };
        anyhow::ensure!(
            (permission.object.as_str(), permission.action.as_str()) == (object, action),
            "{ty}.{field} should require {action} {object}, requires {permission}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn casbin_agrees_with_a_plain_reading_of_policy_csv() -> anyhow::Result<()> {
    let policy = policy()?;
    let authz = Authz::load(policy_dir()).await?;
    let company = Uuid::new_v4();
    for role in ["admin", "manager", "member", "nobody"] {
        for object in OBJECTS {
            for action in ACTIONS {
                let permission = server::authz::Permission {
                    object: server::authz::Object::parse(object).context("object")?,
                    action: server::authz::Action::parse(action).context("action")?,
                };
                anyhow::ensure!(
                    authz.enforce(role, company, permission).await
                        == policy.allows(role, object, action),
                    "Casbin and policy.csv disagree on {role} / {action} {object}"
                );
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn readme_permission_table_is_the_one_generated_from_policy_csv() -> anyhow::Result<()> {
    let authz = Authz::load(policy_dir()).await?;
    let generated = permissions_table(&authz).await;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))?;
    let (begin, end) = ("<!-- permissions:begin -->", "<!-- permissions:end -->");
    let start = readme
        .find(begin)
        .context("README.md has no permissions:begin marker")?;
    let stop = readme
        .find(end)
        .context("README.md has no permissions:end marker")?;
    let section = readme[start + begin.len()..stop].trim();
    anyhow::ensure!(
        section == generated.trim(),
        "README.md's permission table differs from policy.csv; put this between the markers:\n\n{generated}"
    );
    Ok(())
}

// ---- the role x operation matrix ---------------------------------------------------------

const INTROSPECTION: &str = r#"query {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types {
      name kind
      fields { name args { name defaultValue type { ...T } } type { ...T } }
      inputFields { name defaultValue type { ...T } }
      enumValues { name }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"#;

/// The schema as introspection shows it, enough to call any field with made-up arguments.
struct Introspected {
    types: HashMap<String, Value>,
}

impl Introspected {
    fn type_string(ty: &Value) -> String {
        match ty["kind"].as_str() {
            Some("NON_NULL") => format!("{}!", Self::type_string(&ty["ofType"])),
            Some("LIST") => format!("[{}]", Self::type_string(&ty["ofType"])),
            _ => ty["name"].as_str().unwrap_or_default().to_owned(),
        }
    }

    fn named(ty: &Value) -> &Value {
        match ty["kind"].as_str() {
            Some("NON_NULL" | "LIST") => Self::named(&ty["ofType"]),
            _ => ty,
        }
    }

    /// A value of type `ty` that parses: required fields only, the first enum value, ...
    fn sample(&self, ty: &Value) -> Value {
        match ty["kind"].as_str() {
            Some("NON_NULL") => self.sample(&ty["ofType"]),
            Some("LIST") => json!([]),
            Some("ENUM") => {
                let name = ty["name"].as_str().unwrap_or_default();
                self.types[name]["enumValues"][0]["name"].clone()
            }
            Some("INPUT_OBJECT") => {
                let name = ty["name"].as_str().unwrap_or_default();
                let mut object = serde_json::Map::new();
                for field in self.types[name]["inputFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if field["type"]["kind"] == "NON_NULL" && field["defaultValue"].is_null() {
                        let key = field["name"].as_str().unwrap_or_default().to_owned();
                        object.insert(key, self.sample(&field["type"]));
                    }
                }
                Value::Object(object)
            }
            _ => match ty["name"].as_str() {
                Some("ID") => json!(Uuid::new_v4()),
                Some("Int") => json!(1),
                Some("Float") => json!(1.0),
                Some("Boolean") => json!(false),
                Some("DateTime") => json!(chrono::Utc::now()),
                Some("JSON") => json!({}),
                _ => json!("x"),
            },
        }
    }

    /// An operation calling `field` of the root type `root` (`query`, `mutation`,
    /// `subscription`), with variables for its required arguments.
    fn operation(&self, keyword: &str, field: &Value) -> (String, Value) {
        let name = field["name"].as_str().unwrap_or_default();
        let mut declarations = Vec::new();
        let mut arguments = Vec::new();
        let mut variables = serde_json::Map::new();
        for (i, arg) in field["args"].as_array().into_iter().flatten().enumerate() {
            if arg["type"]["kind"] != "NON_NULL" || !arg["defaultValue"].is_null() {
                continue;
            }
            let arg_name = arg["name"].as_str().unwrap_or_default();
            declarations.push(format!("$a{i}: {}", Self::type_string(&arg["type"])));
            arguments.push(format!("{arg_name}: $a{i}"));
            variables.insert(format!("a{i}"), self.sample(&arg["type"]));
        }
        let declarations = if declarations.is_empty() {
            String::new()
        } else {
            format!("({})", declarations.join(", "))
        };
        let arguments = if arguments.is_empty() {
            String::new()
        } else {
            format!("({})", arguments.join(", "))
        };
        let selection = match Self::named(&field["type"])["kind"].as_str() {
            Some("OBJECT" | "INTERFACE" | "UNION") => " { __typename }",
            _ => "",
        };
        (
            format!("{keyword} Check{declarations} {{ {name}{arguments}{selection} }}"),
            Value::Object(variables),
        )
    }
}

/// What the guard did with one call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The guard let the call through (the resolver may still have failed, e.g. NOT_FOUND).
    Passed,
    /// `FORBIDDEN` from the guard, with its message.
    Denied(String),
    /// `UNAUTHENTICATED` from the guard: sign in first.
    SignIn,
}

fn outcome(response: &GqlResponse, field: &str) -> Outcome {
    for error in response.body["errors"].as_array().into_iter().flatten() {
        let code = error["extensions"]["code"].as_str().unwrap_or_default();
        let message = error["message"].as_str().unwrap_or_default();
        if code == "FORBIDDEN"
            && (message.starts_with("your role may not ")
                || message == format!("`{field}` declares no permission, so nobody may use it"))
        {
            return Outcome::Denied(message.to_owned());
        }
        if code == "UNAUTHENTICATED" && message == format!("sign in to use `{field}`") {
            return Outcome::SignIn;
        }
    }
    Outcome::Passed
}

static USER_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A user of `company` with `role`, made for one call.
async fn fresh_user(app: &TestApp, company: Uuid, role: &str) -> anyhow::Result<TestUser> {
    let n = USER_COUNTER.fetch_add(1, Ordering::Relaxed);
    app.create_user(company, &format!("{role}-{n}@matrix.example"), role)
        .await
}

#[tokio::test]
async fn every_operation_is_allowed_or_forbidden_for_every_role_as_policy_csv_says()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Matrix", 0).await?;
    let admin_token = app.token_for(&admin);

    // A custom role joins the built-in ones: its grants are its policy.
    let mut policy = policy()?;
    let coach_grants = [
        ("company", "read"),
        ("user", "read"),
        ("preset", "manage"),
        ("audience", "read"),
    ];
    let created = app
        .graphql(
            Some(&admin_token),
            "mutation($input: CreateRoleInput!) { createRole(input: $input) { name } }",
            json!({ "input": { "name": "coach", "grants": coach_grants
                .iter()
                .map(|(o, a)| json!({ "object": o.to_uppercase(), "action": a.to_uppercase() }))
                .collect::<Vec<_>>() } }),
        )
        .await?;
    created.data()?;
    for (object, action) in coach_grants {
        policy.grant("coach", object, action);
    }

    let schema = app
        .graphql(Some(&admin_token), INTROSPECTION, json!({}))
        .await?;
    let schema = schema.data()?["__schema"].clone();
    let introspected = Introspected {
        types: schema["types"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["name"].as_str()?.to_owned(), t.clone())))
            .collect(),
    };
    let declared: HashMap<(String, String), Option<FieldGuard>> = guards()?
        .into_iter()
        .map(|(ty, field, guard)| ((ty, field), guard))
        .collect();

    // Every field of every root type, each called by every role and anonymously.
    let mut checks = Vec::new();
    for (keyword, root) in [
        ("query", &schema["queryType"]),
        ("mutation", &schema["mutationType"]),
        ("subscription", &schema["subscriptionType"]),
    ] {
        let Some(root) = root["name"].as_str() else {
            continue;
        };
        for field in introspected.types[root]["fields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = field["name"].as_str().unwrap_or_default().to_owned();
            let guard = *declared
                .get(&(root.to_owned(), name.clone()))
                .with_context(|| format!("{root}.{name} is not in the SDL"))?;
            let (query, variables) = introspected.operation(keyword, field);
            for role in [
                None,
                Some("admin"),
                Some("manager"),
                Some("member"),
                Some("coach"),
            ] {
                let expected = match (guard, role) {
                    (None, _) => Outcome::Denied(format!(
                        "`{name}` declares no permission, so nobody may use it"
                    )),
                    (Some(FieldGuard::Public), _) => Outcome::Passed,
                    (Some(FieldGuard::Requires(_)), None) => Outcome::SignIn,
                    (Some(FieldGuard::Requires(p)), Some(role)) => {
                        if policy.allows(role, p.object.as_str(), p.action.as_str()) {
                            Outcome::Passed
                        } else {
                            Outcome::Denied(format!("your role may not {p}"))
                        }
                    }
                };
                checks.push((
                    format!("{root}.{name}"),
                    name.clone(),
                    role,
                    query.clone(),
                    variables.clone(),
                    expected,
                ));
            }
        }
    }
    anyhow::ensure!(
        checks.len() >= 5 * 11,
        "too few operations: {}",
        checks.len()
    );
    let expected_denials = checks
        .iter()
        .filter(|c| matches!(c.5, Outcome::Denied(_)))
        .count() as u64;
    let denials_before = app.state().authz.denials();

    let app = &app;
    let results: Vec<anyhow::Result<Option<String>>> = stream::iter(checks)
        .map(
            |(label, field, role, query, variables, expected)| async move {
                let token = match role {
                    Some(role) => Some(app.token_for(&fresh_user(app, company, role).await?)),
                    None => None,
                };
                let response = app.graphql(token.as_deref(), &query, variables).await?;
                let got = outcome(&response, &field);
                Ok((got != expected).then(|| {
                    format!(
                        "{label} as {}: expected {expected:?}, got {got:?} ({})",
                        role.unwrap_or("anonymous"),
                        response.body
                    )
                }))
            },
        )
        .buffer_unordered(6)
        .collect()
        .await;
    let mut failures = Vec::new();
    for result in results {
        if let Some(failure) = result? {
            failures.push(failure);
        }
    }
    anyhow::ensure!(
        failures.is_empty(),
        "{} calls went against policy.csv:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every denial was counted.
    anyhow::ensure!(
        app.state().authz.denials() - denials_before == expected_denials,
        "counted {} denials, expected {expected_denials}",
        app.state().authz.denials() - denials_before
    );
    Ok(())
}

// ---- custom roles and reloading ----------------------------------------------------------

const CREATE_ROLE: &str = "mutation($input: CreateRoleInput!) {
  createRole(input: $input) { name builtIn description grants { object action } createdAt }
}";
const DELETE_ROLE: &str = "mutation($name: String!) { deleteRole(name: $name) }";
const SET_ROLE: &str = "mutation($id: ID!, $role: String!) {
  updateUser(id: $id, input: { role: $role }) { id role }
}";
const ROLES: &str = "{ roles { name builtIn grants { object action } } }";

#[tokio::test]
async fn a_custom_role_is_created_assigned_used_and_deleted_without_a_restart() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let admin_token = app.token_for(&admin);
    let athlete = &members[0];

    let created = app
        .graphql(
            Some(&admin_token),
            CREATE_ROLE,
            json!({ "input": { "name": "coach", "description": "Trains the team",
                "grants": [
                    { "object": "USER", "action": "READ" },
                    { "object": "COMPANY", "action": "READ" },
                    { "object": "USER", "action": "READ" },
                ] } }),
        )
        .await?;
    let role = &created.data()?["createRole"];
    assert_eq!(role["name"], "coach");
    assert_eq!(role["builtIn"], false);
    assert_eq!(role["description"], "Trains the team");
    // Duplicates are dropped.
    assert_eq!(role["grants"].as_array().map(Vec::len), Some(2));

    let roles = app.graphql(Some(&admin_token), ROLES, json!({})).await?;
    let names: Vec<&str> = roles.data()?["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["admin", "manager", "member", "coach"]);
    let admin_role = &roles.data()?["roles"][0];
    assert_eq!(admin_role["builtIn"], true);
    assert!(
        admin_role["grants"]
            .as_array()
            .is_some_and(|g| g.contains(&json!({ "object": "USER", "action": "MANAGE" })))
    );

    let assigned = app
        .graphql(
            Some(&admin_token),
            SET_ROLE,
            json!({ "id": athlete.id, "role": "coach" }),
        )
        .await?;
    assert_eq!(assigned.data()?["updateUser"]["role"], "coach");

    // The old token names the old role: refused. A token with the new role works at once.
    let stale = app
        .graphql(Some(&app.token_for(athlete)), "{ me { id } }", json!({}))
        .await?;
    assert_eq!(stale.error_code(), Some("UNAUTHENTICATED"));
    let coach = app.token_for(&athlete.with_role("coach"));
    let me = app
        .graphql(Some(&coach), "{ me { role } company { name } }", json!({}))
        .await?;
    assert_eq!(me.data()?["me"]["role"], "coach");
    let profile = app
        .graphql(
            Some(&coach),
            "mutation { updateProfile(input: { displayName: \"Coach\" }) { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(profile.error_code(), Some("FORBIDDEN"));
    assert_eq!(
        profile.error_message(),
        Some("your role may not update user")
    );

    // Deleting a role in use is refused; once nobody holds it, it goes, and so do its powers.
    let refused = app
        .graphql(Some(&admin_token), DELETE_ROLE, json!({ "name": "coach" }))
        .await?;
    assert_eq!(refused.error_code(), Some("CONFLICT"));
    app.graphql(
        Some(&admin_token),
        SET_ROLE,
        json!({ "id": athlete.id, "role": "member" }),
    )
    .await?
    .data()?;
    let deleted = app
        .graphql(Some(&admin_token), DELETE_ROLE, json!({ "name": "coach" }))
        .await?;
    assert_eq!(deleted.data()?["deleteRole"], true);
    let again = app
        .graphql(Some(&admin_token), DELETE_ROLE, json!({ "name": "coach" }))
        .await?;
    assert_eq!(again.error_code(), Some("NOT_FOUND"));
    let unknown = app
        .graphql(
            Some(&admin_token),
            SET_ROLE,
            json!({ "id": athlete.id, "role": "coach" }),
        )
        .await?;
    assert_eq!(unknown.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        unknown.body["errors"][0]["extensions"]["path"],
        "input.role"
    );
    Ok(())
}

#[tokio::test]
async fn create_role_refuses_bad_names_duplicates_and_admin_powers() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let token = app.token_for(&admin);
    let create = |name: &str, grants: Value| {
        let token = token.clone();
        let app = &app;
        let variables = json!({ "input": { "name": name, "grants": grants } });
        async move { app.graphql(Some(&token), CREATE_ROLE, variables).await }
    };
    let read_users = json!([{ "object": "USER", "action": "READ" }]);

    for (name, path) in [
        ("admin", "input.name"),
        ("Coach", "input.name"),
        ("x", "input.name"),
    ] {
        let response = create(name, read_users.clone()).await?;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{name}");
        assert_eq!(
            response.body["errors"][0]["extensions"]["path"], path,
            "{name}"
        );
    }
    let escalation = create(
        "hr",
        json!([{ "object": "USER", "action": "READ" }, { "object": "USER", "action": "MANAGE" }]),
    )
    .await?;
    assert_eq!(escalation.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        escalation.body["errors"][0]["extensions"]["path"],
        "input.grants.1"
    );

    create("coach", read_users.clone()).await?.data()?;
    let duplicate = create("coach", read_users.clone()).await?;
    assert_eq!(duplicate.error_code(), Some("CONFLICT"));

    let member = app
        .graphql(
            Some(&app.token_for(&members[0])),
            CREATE_ROLE,
            json!({ "input": { "name": "sneaky", "grants": read_users } }),
        )
        .await?;
    assert_eq!(member.error_code(), Some("FORBIDDEN"));
    assert_eq!(
        member.error_message(),
        Some("your role may not manage company")
    );
    Ok(())
}

/// POSTs a GraphQL operation to a server at `addr`.
async fn graphql_at(
    app: &TestApp,
    addr: std::net::SocketAddr,
    token: &str,
    query: &str,
) -> anyhow::Result<GqlResponse> {
    let response = app
        .client
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await?;
    GqlResponse::from_reqwest(response).await
}

#[tokio::test]
async fn another_instance_learns_new_custom_roles_within_the_cache_ttl() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let second = server::start(app.config.clone()).await?;
    let (_, admin, members) = app.company_with_users("Acme", 2).await?;
    let admin_token = app.token_for(&admin);
    for (name, user) in [("coach", &members[0])] {
        app.graphql(
            Some(&admin_token),
            CREATE_ROLE,
            json!({ "input": { "name": name, "grants": [{ "object": "USER", "action": "READ" }] } }),
        )
        .await?
        .data()?;
        app.graphql(
            Some(&admin_token),
            SET_ROLE,
            json!({ "id": user.id, "role": name }),
        )
        .await?
        .data()?;
    }
    // The second instance loads the company's custom roles on first use...
    let coach = app.token_for(&members[0].with_role("coach"));
    graphql_at(&app, second.addr, &coach, "{ me { id } }")
        .await?
        .data()?;

    // ...so a role created afterwards on the first instance reaches it within the TTL.
    app.graphql(
        Some(&admin_token),
        CREATE_ROLE,
        json!({ "input": { "name": "scout", "grants": [{ "object": "COMPANY", "action": "READ" }] } }),
    )
    .await?
    .data()?;
    app.graphql(
        Some(&admin_token),
        SET_ROLE,
        json!({ "id": members[1].id, "role": "scout" }),
    )
    .await?
    .data()?;
    let scout = app.token_for(&members[1].with_role("scout"));
    // At once on the instance that made the change.
    app.graphql(Some(&scout), "{ company { id } }", json!({}))
        .await?
        .data()?;
    let ttl = server::authz::CUSTOM_ROLE_TTL;
    eventually(
        ttl + Duration::from_secs(5),
        "the second instance to know `scout`",
        || async {
            graphql_at(&app, second.addr, &scout, "{ company { id } }")
                .await
                .is_ok_and(|r| r.data().is_ok())
        },
    )
    .await?;
    second.shutdown().await
}

async fn copy_policies() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("policies-{}", Uuid::new_v4()));
    tokio::fs::create_dir_all(&dir).await?;
    for file in ["model.conf", "policy.csv"] {
        tokio::fs::copy(policy_dir().join(file), dir.join(file)).await?;
    }
    Ok(dir)
}

#[tokio::test]
async fn policy_files_reload_without_a_restart_and_on_sighup() -> anyhow::Result<()> {
    let dir = copy_policies().await?;
    let app = TestApp::spawn_with(|c| c.policy_dir = Some(dir.clone())).await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let token = app.token_for(&members[0]);
    let me = || app.graphql(Some(&token), "{ me { id } }", json!({}));
    me().await?.data()?;

    // Members lose `read user`, and reload_policies (what SIGHUP calls) applies it at once.
    let original = tokio::fs::read_to_string(dir.join("policy.csv")).await?;
    let revoked: String = original
        .lines()
        .filter(|line| line.trim() != "p, member, *, user, read")
        .map(|line| format!("{line}\n"))
        .collect();
    anyhow::ensure!(revoked != original, "the member's `user, read` line moved");
    tokio::fs::write(dir.join("policy.csv"), &revoked).await?;
    app.state().authz.reload_policies().await?;
    let denied = me().await?;
    assert_eq!(denied.error_code(), Some("FORBIDDEN"));
    assert_eq!(denied.error_message(), Some("your role may not read user"));

    // A broken file is refused and the policies in force stay.
    tokio::fs::write(dir.join("policy.csv"), "p, member, *, spaceship, fly\n").await?;
    assert!(app.state().authz.reload_policies().await.is_err());
    assert_eq!(me().await?.error_code(), Some("FORBIDDEN"));

    // The real signal, to this very process: every server in it reloads (harmless for the
    // others, whose files did not change); this one gets its `read user` back.
    tokio::fs::write(dir.join("policy.csv"), &original).await?;
    let reloads = app.state().authz.reloads();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -HUP failed");
    eventually(
        Duration::from_secs(10),
        "SIGHUP to reload the policies",
        || async { app.state().authz.reloads() > reloads },
    )
    .await?;
    me().await?.data()?;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Ok(())
}

#[tokio::test]
async fn the_roles_table_is_isolated_by_row_level_security() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, a_admin, _) = app.company_with_users("Acme", 0).await?;
    let (_, b_admin, _) = app.company_with_users("Globex", 0).await?;
    for (admin, name) in [(&a_admin, "coach-a"), (&b_admin, "coach-b")] {
        app.graphql(
            Some(&app.token_for(admin)),
            CREATE_ROLE,
            json!({ "input": { "name": name, "grants": [] } }),
        )
        .await?
        .data()?;
    }
    assert_eq!(
        app.assert_tenant_isolation("roles", &a_admin, &b_admin)
            .await?,
        1
    );
    assert_eq!(
        app.assert_tenant_isolation("roles", &b_admin, &a_admin)
            .await?,
        1
    );
    // Only admins write roles, whatever the guard says.
    let (_, _, members) = app.company_with_users("Initech", 1).await?;
    let inserted = app
        .execute_as(
            &members[0],
            &format!(
                "INSERT INTO roles (company_id, name) VALUES ('{}', 'rogue')",
                members[0].company_id
            ),
        )
        .await;
    assert!(inserted.is_err_and(|e| format!("{e:?}").contains("row-level security")));
    // Through GraphQL too: each company lists the built-in roles and its own custom role only.
    for (admin, own) in [(&a_admin, "coach-a"), (&b_admin, "coach-b")] {
        let listed: Vec<String> = app
            .graphql(Some(&app.token_for(admin)), ROLES, json!({}))
            .await?
            .data()?["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(listed, ["admin", "manager", "member", own]);
    }
    Ok(())
}

#[tokio::test]
async fn a_role_offered_by_a_pending_invitation_cannot_be_deleted() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    app.graphql(
        Some(&token),
        CREATE_ROLE,
        json!({ "input": { "name": "coach", "grants": [] } }),
    )
    .await?
    .data()?;
    app.graphql(
        Some(&token),
        "mutation($input: InviteUserInput!) { inviteUser(input: $input) { id role } }",
        json!({ "input": { "email": "new@acme.example", "role": "coach" } }),
    )
    .await?
    .data()?;
    let refused = app
        .graphql(Some(&token), DELETE_ROLE, json!({ "name": "coach" }))
        .await?;
    assert_eq!(refused.error_code(), Some("CONFLICT"));
    // Once the invitation has expired, the role can go.
    app.sql("UPDATE invitations SET expires_at = now() - interval '1 minute'")
        .await?;
    let deleted = app
        .graphql(Some(&token), DELETE_ROLE, json!({ "name": "coach" }))
        .await?;
    assert_eq!(deleted.data()?["deleteRole"], true);
    Ok(())
}
