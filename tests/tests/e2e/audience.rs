//! Audience segmentation end to end: the SQL the compiler writes agrees with the in-memory
//! evaluation on random filters over odd data, injection attempts change nothing, other
//! companies never leak in, and company fields are admin business.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proptest::{
    prelude::*,
    test_runner::{Config as PropConfig, TestRunner},
};
use serde_json::{Value, json};
use server::audience::{
    FieldType, Registry,
    eval::{Subject, matches},
    parse,
};
use tests::{TestApp, TestUser};

const SIZE_AND_PAGE: &str = "query($f: JSON) {
  audienceSize(filter: $f)
  audience(filter: $f, first: 100) { totalCount users { id } pageInfo { hasNextPage } }
}";

const FIELDS: [(&str, &str); 5] = [
    ("plan", "string"),
    ("score", "number"),
    ("vip", "boolean"),
    ("renewal", "date"),
    ("tags", "string_list"),
];

/// `n` users of `company` whose attributes include every odd case: missing keys, JSON nulls,
/// values of the wrong type, malformed dates, mixed-case e-mail domains, never-active users.
async fn seed_odd_users(
    app: &TestApp,
    company: uuid::Uuid,
    prefix: &str,
    n: u32,
) -> anyhow::Result<()> {
    app.sql(&format!(
        r#"INSERT INTO users (company_id, email, display_name, role, is_active, created_at, last_active_at, attributes)
        SELECT '{company}', '{prefix}' || g || '@' || (ARRAY['example.com', 'Example.COM', 'acme.io', 'other.net'])[1 + g % 4],
               'P' || g, (ARRAY['member', 'member', 'manager'])[1 + g % 3], g % 5 <> 0,
               now() - make_interval(days => (g * 37) % 700, hours => 12),
               CASE WHEN g % 4 = 0 THEN NULL ELSE now() - make_interval(days => (g * 13) % 90, hours => 12) END,
               jsonb_strip_nulls(jsonb_build_object(
                 'plan', (ARRAY['"free"', '"pro"', '"enterprise"', '5', 'null', NULL, '"pro "'])[1 + g % 7]::jsonb,
                 'score', (ARRAY['10', '50', '70.5', '"50"', NULL, '0', '100'])[1 + (g / 2) % 7]::jsonb,
                 'vip', (ARRAY['true', 'false', '"true"', NULL])[1 + (g / 3) % 4]::jsonb,
                 'renewal', (ARRAY['"2026-02-01"', '"2026-06-01"', '"2026-09-30"', '"March"', '"2026-13-45"', NULL, '20260601'])[1 + (g / 5) % 7]::jsonb,
                 'tags', (ARRAY['["vip", "beta"]', '["churn-risk"]', '[]', '"vip"', '["beta", 3]', NULL, '["vip"]'])[1 + (g / 7) % 7]::jsonb
               )) || CASE WHEN g % 11 = 0 THEN '{{"plan": null}}'::jsonb ELSE '{{}}'::jsonb END
        FROM generate_series(1, {n}) g"#
    ))
    .await?;
    Ok(())
}

async fn declare_fields(app: &TestApp, company: uuid::Uuid) -> anyhow::Result<()> {
    for (name, ty) in FIELDS {
        app.sql(&format!(
            "INSERT INTO audience_fields (company_id, name, type) VALUES ('{company}', '{name}', '{ty}')"
        ))
        .await?;
    }
    Ok(())
}

fn registry() -> Registry {
    Registry::with_attributes(FIELDS.iter().filter_map(|(name, ty)| {
        FieldType::parse(ty).map(|ty| ((*name).to_owned(), ty, String::new()))
    }))
}

async fn subjects(app: &TestApp, admin: &TestUser) -> anyhow::Result<Vec<(String, Subject)>> {
    let rows = app
        .query_as(
            admin,
            &format!(
                "SELECT id, role, email, created_at, last_active_at, is_active, attributes \
                 FROM users WHERE company_id = '{}'",
                admin.company_id
            ),
        )
        .await?;
    let time = |v: &Value| -> Option<DateTime<Utc>> {
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    rows.iter()
        .map(|row| {
            Ok((
                row["id"].as_str().unwrap_or_default().to_owned(),
                Subject {
                    role: row["role"].as_str().unwrap_or_default().to_owned(),
                    email: row["email"].as_str().unwrap_or_default().to_owned(),
                    created_at: time(&row["created_at"])
                        .ok_or_else(|| anyhow::anyhow!("created_at"))?,
                    last_active_at: time(&row["last_active_at"]),
                    is_active: row["is_active"].as_bool().unwrap_or_default(),
                    attributes: row["attributes"].clone(),
                },
            ))
        })
        .collect()
}

/// Conditions over every field and operator, with values that hit the seeded data.
fn conditions() -> Vec<Value> {
    let c = |field: &str, op: &str, value: Value| {
        if value.is_null() {
            json!({"field": field, "op": op})
        } else {
            json!({"field": field, "op": op, "value": value})
        }
    };
    let mut out = Vec::new();
    for op in ["exists", "not_exists"] {
        for field in [
            "plan",
            "score",
            "vip",
            "renewal",
            "tags",
            "last_active_at",
            "role",
        ] {
            out.push(c(field, op, Value::Null));
        }
    }
    out.extend([
        c("plan", "eq", json!("pro")),
        c("plan", "neq", json!("pro")),
        c("plan", "in", json!(["pro", "enterprise"])),
        c("plan", "not_in", json!(["free"])),
        c("plan", "starts_with", json!("pr")),
        c("score", "eq", json!(50)),
        c("score", "neq", json!(50)),
        c("score", "gt", json!(10)),
        c("score", "gte", json!(50)),
        c("score", "lt", json!(70.5)),
        c("score", "lte", json!(10)),
        c("score", "between", json!([10, 70])),
        c("score", "in", json!([0, 100])),
        c("score", "not_in", json!([50])),
        c("vip", "eq", json!(true)),
        c("vip", "neq", json!(true)),
        c("renewal", "before", json!("2026-06-01")),
        c("renewal", "after", json!("2026-06-01")),
        c("renewal", "gte", json!("2026-06-01")),
        c("renewal", "lte", json!("2026-02-01")),
        c("renewal", "between", json!(["2026-02-01", "2026-06-01"])),
        c("renewal", "within_last_days", json!(3650)),
        c("tags", "contains", json!("vip")),
        c("tags", "contains_any", json!(["beta", "churn-risk"])),
        c("tags", "contains_all", json!(["vip", "beta"])),
        c("role", "eq", json!("manager")),
        c("role", "neq", json!("manager")),
        c("role", "in", json!(["manager", "admin"])),
        c("role", "starts_with", json!("mem")),
        c("email_domain", "eq", json!("EXAMPLE.com")),
        c("email_domain", "not_in", json!(["acme.io"])),
        c("email_domain", "starts_with", json!("oth")),
        c("created_at", "within_last_days", json!(300)),
        c("created_at", "after", json!("2026-01-01")),
        c("last_active_at", "within_last_days", json!(30)),
        c("last_active_at", "before", json!("2026-11-01T00:00:00Z")),
        c("is_active", "eq", json!(true)),
        c("is_active", "neq", json!(true)),
    ]);
    out
}

fn filters() -> impl Strategy<Value = Value> {
    let leaf = prop::sample::select(conditions());
    let node = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({ "all": v })),
            prop::collection::vec(inner, 1..4).prop_map(|v| json!({ "any": v })),
        ]
    });
    (prop::option::of(node.clone()), prop::option::of(node)).prop_map(|(include, exclude)| {
        let mut doc = serde_json::Map::new();
        if let Some(i) = include {
            doc.insert("include".into(), i);
        }
        if let Some(e) = exclude {
            doc.insert("exclude".into(), e);
        }
        Value::Object(doc)
    })
}

async fn check(
    app: &TestApp,
    token: &str,
    people: &[(String, Subject)],
    doc: Value,
) -> Result<(), String> {
    let filter = parse(&doc, &registry(), Utc::now()).map_err(|e| format!("{doc}: {e:?}"))?;
    let expected: BTreeSet<&str> = people
        .iter()
        .filter(|(_, s)| matches(&filter, s))
        .map(|(id, _)| id.as_str())
        .collect();
    let response = app
        .graphql(Some(token), SIZE_AND_PAGE, json!({ "f": doc }))
        .await
        .map_err(|e| e.to_string())?;
    let data = response.data().map_err(|e| format!("{doc}: {e}"))?;
    let got: BTreeSet<&str> = data["audience"]["users"]
        .as_array()
        .map(|users| users.iter().filter_map(|u| u["id"].as_str()).collect())
        .unwrap_or_default();
    if got != expected || data["audienceSize"] != json!(expected.len()) {
        return Err(format!(
            "{doc}: SQL gave {} ({:?}), memory {} ({:?})",
            data["audienceSize"],
            got,
            expected.len(),
            expected
        ));
    }
    if data["audience"]["totalCount"] != json!(expected.len()) {
        return Err(format!(
            "{doc}: totalCount {}",
            data["audience"]["totalCount"]
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_filters_select_exactly_what_in_memory_evaluation_selects() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (a, admin, _) = app.company_with_users("Acme", 0).await?;
    let (b, _, _) = app.company_with_users("Globex", 0).await?;
    for (company, prefix) in [(a, "a"), (b, "b")] {
        declare_fields(&app, company).await?;
        seed_odd_users(&app, company, prefix, 90).await?;
    }
    let people = subjects(&app, &admin).await?;
    assert_eq!(
        people.len(),
        91,
        "only Acme's users are visible to its admin"
    );
    let token = app.token_for(&admin);
    check(&app, &token, &people, json!({}))
        .await
        .map_err(anyhow::Error::msg)?;

    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(PropConfig {
        cases: 48,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&filters(), |doc| {
            handle
                .block_on(check(&app, &token, &people, doc))
                .map_err(TestCaseError::fail)
        })
    });
    outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[tokio::test]
async fn injection_attempts_are_rejected_or_bound_and_change_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Acme", 3).await?;
    declare_fields(&app, company).await?;
    let token = app.token_for(&admin);
    let evil = "x' OR '1'='1'; DELETE FROM users; --";
    let rejected = [
        (
            json!({"include": {"field": "plan'; DROP TABLE users; --", "op": "eq", "value": "x"}}),
            "include.field",
        ),
        (
            json!({"include": {"field": "attributes->>'plan'", "op": "eq", "value": "x"}}),
            "include.field",
        ),
        (
            json!({"include": {"field": "plan", "op": "= 'x' OR 1=1 --", "value": "x"}}),
            "include.op",
        ),
        (
            json!({"include": {"field": "plan", "op": "eq", "value": {"$ne": null}}}),
            "include.value",
        ),
        (
            json!({"include": {"field": "tags", "op": "contains", "value": ["a']) OR true --"]}}),
            "include.value",
        ),
        (
            json!({"include": {"any": [{"field": "plan", "op": "eq", "value": "a", "sql": "1=1"}]}}),
            "include.any[0].sql",
        ),
    ];
    for (doc, path) in rejected {
        let response = app
            .graphql(Some(&token), SIZE_AND_PAGE, json!({ "f": doc }))
            .await?;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{doc}");
        assert_eq!(
            response.body["errors"][0]["extensions"]["path"], path,
            "{doc}"
        );
    }
    for doc in [
        json!({"include": {"field": "plan", "op": "eq", "value": evil}}),
        json!({"include": {"field": "plan", "op": "starts_with", "value": evil}}),
        json!({"include": {"field": "tags", "op": "contains_any", "value": [evil, "\\\"}"]}}),
        json!({"include": {"field": "role", "op": "in", "value": [evil]}}),
        json!({"include": {"field": "email_domain", "op": "eq", "value": "%' --"}}),
    ] {
        let response = app
            .graphql(Some(&token), SIZE_AND_PAGE, json!({ "f": doc }))
            .await?;
        assert_eq!(response.data()?["audienceSize"], 0, "{doc}");
    }
    let bad_field = app
        .graphql(
            Some(&token),
            "mutation { defineAudienceField(input: {name: \"x') --\", type: STRING}) { name } }",
            json!({}),
        )
        .await?;
    assert_eq!(bad_field.error_code(), Some("BAD_USER_INPUT"));
    let users = app
        .query_as(&admin, "SELECT count(*) AS n FROM users")
        .await?;
    assert_eq!(users[0]["n"], 4);
    let fields = app
        .query_as(&admin, "SELECT count(*) AS n FROM audience_fields")
        .await?;
    assert_eq!(fields[0]["n"], 5);
    Ok(())
}

#[tokio::test]
async fn audiences_never_include_other_companies_users() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (a, a_admin, _) = app.company_with_users("Acme", 2).await?;
    let (b, _, b_members) = app.company_with_users("Globex", 2).await?;
    app.sql(&format!(
        "UPDATE users SET attributes = '{{\"plan\": \"pro\"}}' WHERE company_id IN ('{a}', '{b}')"
    ))
    .await?;
    declare_fields(&app, a).await?;
    let token = app.token_for(&a_admin);
    for doc in [
        json!({}),
        json!({"include": {"field": "plan", "op": "eq", "value": "pro"}}),
        json!({"exclude": {"field": "role", "op": "eq", "value": "nobody"}}),
        json!({"include": {"field": "email_domain", "op": "eq", "value": "globex.example"}}),
    ] {
        let response = app
            .graphql(Some(&token), SIZE_AND_PAGE, json!({ "f": doc }))
            .await?;
        let data = response.data()?;
        let ids: Vec<&str> = data["audience"]["users"]
            .as_array()
            .map(|u| u.iter().filter_map(|u| u["id"].as_str()).collect())
            .unwrap_or_default();
        for outsider in &b_members {
            assert!(!ids.contains(&outsider.id.to_string().as_str()), "{doc}");
        }
        assert!(data["audienceSize"].as_u64().unwrap_or(99) <= 3, "{doc}");
    }
    // Globex's fields are not Acme's: unknown field.
    let other = app
        .graphql(
            Some(&app.token_for(&b_members[0])),
            SIZE_AND_PAGE,
            json!({"f": {"include": {"all": [{"field": "plan", "op": "eq", "value": "pro"}]}}}),
        )
        .await?;
    assert_eq!(
        other.body["errors"][0]["extensions"]["path"],
        "include.all[0].field"
    );
    Ok(())
}

#[tokio::test]
async fn filter_mistakes_report_their_path_and_pages_follow_cursors() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Acme", 4).await?;
    declare_fields(&app, company).await?;
    let token = app.token_for(&admin);
    let doc = json!({"include": {"all": [
        {"field": "plan", "op": "in", "value": ["pro"]},
        {"field": "role", "op": "eq", "value": "member"},
        {"field": "last_active_at", "op": "within_last_days", "value": "thirty"}
    ]}});
    let response = app
        .graphql(
            Some(&token),
            "query($f: JSON) { audienceSize(filter: $f) }",
            json!({"f": doc}),
        )
        .await?;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        response.body["errors"][0]["extensions"]["path"],
        "include.all[2].value"
    );

    let page = "query($after: String) { audience(first: 2, after: $after) { totalCount users { id } pageInfo { hasNextPage endCursor } } }";
    let mut after = Value::Null;
    let mut seen = BTreeSet::new();
    loop {
        let response = app
            .graphql(Some(&token), page, json!({"after": after}))
            .await?;
        let audience = &response.data()?["audience"];
        assert_eq!(audience["totalCount"], 5);
        for user in audience["users"].as_array().into_iter().flatten() {
            assert!(seen.insert(user["id"].to_string()));
        }
        if audience["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = audience["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 5);
    Ok(())
}

#[tokio::test]
async fn admins_define_company_fields_and_others_may_not() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, members) = app.company_with_users("Acme", 1).await?;
    let manager = app
        .create_user(company, "manager@acme.example", "manager")
        .await?;
    let define = "mutation($input: AudienceFieldInput!) { defineAudienceField(input: $input) { name type builtIn operators } }";
    let input = json!({"input": {"name": "plan", "type": "STRING", "description": "Plan"}});
    let created = app
        .graphql(Some(&app.token_for(&admin)), define, input.clone())
        .await?;
    assert_eq!(created.data()?["defineAudienceField"]["type"], "STRING");
    let again = app
        .graphql(Some(&app.token_for(&admin)), define, input.clone())
        .await?;
    assert_eq!(again.error_code(), Some("CONFLICT"));
    for user in [&manager, &members[0]] {
        let input = json!({"input": {"name": "tier", "type": "NUMBER"}});
        let refused = app
            .graphql(Some(&app.token_for(user)), define, input)
            .await?;
        assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{}", user.role);
    }
    let builtin = json!({"input": {"name": "role", "type": "STRING"}});
    let refused = app
        .graphql(Some(&app.token_for(&admin)), define, builtin)
        .await?;
    assert_eq!(
        refused.body["errors"][0]["extensions"]["path"],
        "input.name"
    );

    let listed = app
        .graphql(
            Some(&app.token_for(&members[0])),
            "{ audienceFields { name type builtIn } }",
            json!({}),
        )
        .await?;
    let names: Vec<&str> = listed.data()?["audienceFields"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "created_at",
            "email_domain",
            "is_active",
            "last_active_at",
            "role",
            "plan"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn seeded_companies_are_deterministic_and_their_admin_can_segment() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let admin_url = app
        .config
        .database_admin_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no admin URL"))?;
    let one = server::seed::seed(&admin_url, "Seeded one", 300, "seed-password-1").await?;
    let two = server::seed::seed(&admin_url, "Seeded two", 300, "seed-password-1").await?;
    assert_eq!(one.users, 300);
    let login = app.login(&one.admin_email, "seed-password-1").await?;
    let token = login.data()?["login"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let doc = json!({
        "include": {"all": [{"field": "plan", "op": "in", "value": ["pro", "enterprise"]},
                            {"field": "last_active_at", "op": "within_last_days", "value": 120}]},
        "exclude": {"field": "tags", "op": "contains", "value": "churn-risk"}
    });
    let size = app
        .graphql(
            Some(&token),
            "query($f: JSON) { audienceSize(filter: $f) }",
            json!({"f": doc}),
        )
        .await?;
    let size = size.data()?["audienceSize"].as_u64().unwrap_or_default();
    assert!(size > 0 && size < 300, "{size}");
    // The same row numbers draw the same attributes in both companies.
    let counts = |company: uuid::Uuid| {
        format!(
            "SELECT count(*) FILTER (WHERE attributes->>'plan' = 'pro') AS pro, \
                    count(*) FILTER (WHERE attributes->'tags' ? 'churn-risk') AS churn, \
                    count(*) FILTER (WHERE role = 'manager') AS managers \
             FROM users WHERE company_id = '{company}' AND role <> 'admin'"
        )
    };
    let rows_one = sea_orm::ConnectionTrait::query_one_raw(
        &app.admin,
        sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, counts(one.company_id)),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no row"))?;
    let rows_two = sea_orm::ConnectionTrait::query_one_raw(
        &app.admin,
        sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, counts(two.company_id)),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no row"))?;
    for column in ["pro", "churn", "managers"] {
        let a: i64 = rows_one.try_get("", column)?;
        let b: i64 = rows_two.try_get("", column)?;
        assert_eq!(a, b, "{column}");
    }
    let fields = app
        .graphql(Some(&token), "{ audienceFields { name } }", json!({}))
        .await?;
    assert_eq!(
        fields.data()?["audienceFields"].as_array().map(Vec::len),
        Some(11)
    );
    Ok(())
}
