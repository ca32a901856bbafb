//! The property test: for random filters over users with odd data, the SQL the compiler
//! writes selects exactly what the in-memory evaluation of the same filter selects.

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

use super::{FIELDS, SIZE_AND_PAGE, declare_fields};

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
                 FROM audience_users WHERE company_id = '{}'",
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
