//! Audience segmentation end to end: injection attempts change nothing, other companies never
//! leak in, mistakes carry their path, company fields are admin business, and seeding is
//! deterministic. The property test (SQL and bitmaps = in-memory evaluation) is in
//! `audience/property.rs`, the bitmaps' upkeep in `audience/bitmaps.rs`.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tests::TestApp;

mod bitmaps;
mod property;

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

pub(super) async fn declare_fields(app: &TestApp, company: uuid::Uuid) -> anyhow::Result<()> {
    for (name, ty) in FIELDS {
        app.sql(&format!(
            "INSERT INTO audience_fields (company_id, name, type) VALUES ('{company}', '{name}', '{ty}')"
        ))
        .await?;
    }
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
    let one = devservices::seed::seed(&admin_url, "Seeded one", 300, "seed-password-1").await?;
    let two = devservices::seed::seed(&admin_url, "Seeded two", 300, "seed-password-1").await?;
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

#[tokio::test]
async fn attribute_containment_is_leakproof_so_rls_lets_it_use_the_gin_index() -> anyhow::Result<()>
{
    // Under RLS, PostgreSQL keeps non-LEAKPROOF conditions out of index scans: `attributes @>`
    // could then never use users_attributes_idx. The migrations mark it LEAKPROOF.
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let rows = app
        .query_as(
            &admin,
            "SELECT proleakproof AS leakproof FROM pg_proc \
             WHERE oid = 'pg_catalog.jsonb_contains(jsonb, jsonb)'::regprocedure",
        )
        .await?;
    assert_eq!(rows[0]["leakproof"], true);
    Ok(())
}
