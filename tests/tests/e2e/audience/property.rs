//! The property test: for random filters over users with odd data, what the server counts and
//! lists selects exactly what the in-memory evaluation of the same filter selects, both ways of
//! counting (the bitmaps of `audience_bits`, and the SQL over the users' rows), before and after
//! writes of every kind, for an admin and for a member (who segments only those who share their
//! profile, less a blocked pair).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proptest::{
    prelude::*,
    test_runner::{Config as PropConfig, TestRunner},
};
use serde_json::{Value, json};
use server::audience::{
    FieldType, Registry, bits,
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

/// The people `caller` may segment, as the audience views show them to the caller.
async fn subjects(app: &TestApp, caller: &TestUser) -> anyhow::Result<Vec<(String, Subject)>> {
    let view = if caller.role == "admin" {
        "audience_users_admin"
    } else {
        "audience_users"
    };
    let rows = app
        .query_as(
            caller,
            &format!(
                "SELECT id, role, email, created_at, last_active_at, is_active, attributes \
                 FROM {view} WHERE company_id = '{}'",
                caller.company_id
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
                    activities: Vec::new(),
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

/// The conditions the bitmaps count (every condition of the filter must be one of those).
fn bitmap_conditions() -> Vec<Value> {
    conditions()
        .into_iter()
        .filter(|c| {
            let doc = json!({ "include": c });
            parse(&doc, &registry(), Utc::now())
                .is_ok_and(|f| bits::count(&f, uuid::Uuid::nil()).is_some())
        })
        .collect()
}

fn filters_of(conditions: Vec<Value>) -> impl Strategy<Value = Value> {
    let leaf = prop::sample::select(conditions);
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

/// `cases` random filters of `conditions` for `caller`, each checked against the evaluation of
/// the people the caller may segment (as `audience_users` shows them to the caller).
async fn property(
    app: &TestApp,
    caller: &TestUser,
    conditions: Vec<Value>,
    cases: u32,
) -> anyhow::Result<()> {
    let people = subjects(app, caller).await?;
    let token = app.token_for(caller);
    check(app, &token, &people, json!({}))
        .await
        .map_err(anyhow::Error::msg)?;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(PropConfig {
        cases,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&filters_of(conditions), |doc| {
            handle
                .block_on(check(app, &token, &people, doc))
                .map_err(TestCaseError::fail)
        })
    });
    outcome.map_err(|e| anyhow::anyhow!("{} ({}): {e}", caller.role, caller.email))
}

/// Writes of every kind to `company`'s users, each touching some of them (chosen by `id`, so
/// different each run): attributes changed, removed, retyped; e-mail addresses, roles, active
/// state and activity; privacy; users deleted and new ones inserted.
async fn write_everything(app: &TestApp, company: uuid::Uuid, prefix: &str) -> anyhow::Result<()> {
    let some = |k: u32, r: u32| {
        // Never the callers of the test (they have sessions), whose tokens must stay valid.
        format!(
            "company_id = '{company}' AND abs(hashtext(id::text)) % {k} = {r} \
             AND id NOT IN (SELECT user_id FROM sessions)"
        )
    };
    app.sql(&format!(
        r#"UPDATE users SET attributes = attributes || '{{"plan": "pro", "score": 50}}' WHERE {};
           UPDATE users SET attributes = attributes - 'tags' WHERE {};
           UPDATE users SET attributes = jsonb_set(attributes, '{{tags}}', '["vip", "vip", "churn-risk"]') WHERE {};
           UPDATE users SET attributes = attributes || '{{"plan": ["pro"], "vip": "true", "renewal": "2026-06-01"}}' WHERE {};
           UPDATE users SET email = 'moved-' || id || '@Other.NET' WHERE {};
           UPDATE users SET role = CASE WHEN role = 'manager' THEN 'member' ELSE 'manager' END WHERE {};
           UPDATE users SET is_active = NOT is_active, last_active_at = CASE WHEN last_active_at IS NULL THEN now() END WHERE {};
           UPDATE users SET profile_visibility = 'private' WHERE {};
           UPDATE users SET visible_attributes = ARRAY['plan'] WHERE {};
           UPDATE users SET display_name = display_name || '.' WHERE {};
           DELETE FROM users WHERE {};"#,
        some(5, 0),
        some(7, 1),
        some(6, 2),
        some(9, 3),
        some(8, 4),
        some(10, 5),
        some(6, 1),
        some(9, 6),
        some(11, 7),
        some(3, 0),
        some(13, 8),
    ))
    .await?;
    seed_odd_users(app, company, prefix, 6).await
}

/// The member numbers and bitmaps are exactly what `users` holds now: every user one number,
/// every bitmap the terms `app.audience_terms` gives for the users of its segment.
pub(super) async fn assert_bitmaps_match_users(app: &TestApp) -> anyhow::Result<()> {
    let differences = sea_orm::ConnectionTrait::query_one_raw(
        &app.admin,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "WITH expected AS (
                 SELECT m.company_id, t.term, m.member / 1024 AS seg,
                        bit_or(set_bit(B'0'::bit(1024), m.member % 1024, 1)) AS bits
                 FROM users u
                 JOIN audience_members m ON m.company_id = u.company_id AND m.user_id = u.id
                 CROSS JOIN LATERAL app.audience_terms(u.attributes, u.role, u.email, u.is_active,
                     u.last_active_at, u.profile_visibility = 'company' AND u.visible_attributes IS NULL) AS t (term)
                 GROUP BY 1, 2, 3)
             SELECT (SELECT count(*) FROM expected e FULL JOIN audience_bits b
                         ON b.company_id = e.company_id AND b.term = e.term AND b.seg = e.seg
                     WHERE e.bits IS DISTINCT FROM b.bits) AS bitmaps,
                    (SELECT count(*) FROM users u FULL JOIN audience_members m
                         ON m.company_id = u.company_id AND m.user_id = u.id
                     WHERE u.id IS NULL OR m.user_id IS NULL) AS members",
        ),
    )
    .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    let bitmaps: i64 = differences.try_get("", "bitmaps")?;
    let members: i64 = differences.try_get("", "members")?;
    anyhow::ensure!(
        bitmaps == 0 && members == 0,
        "{bitmaps} bitmaps and {members} member numbers differ from users"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_filters_select_exactly_what_in_memory_evaluation_selects() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (a, admin, members) = app.company_with_users("Acme", 1).await?;
    let (b, _, _) = app.company_with_users("Globex", 0).await?;
    for (company, prefix) in [(a, "a"), (b, "b")] {
        declare_fields(&app, company).await?;
        seed_odd_users(&app, company, prefix, 80).await?;
    }
    let people = subjects(&app, &admin).await?;
    assert_eq!(
        people.len(),
        82,
        "only Acme's users are visible to its admin"
    );
    assert_bitmaps_match_users(&app).await?;
    let countable = bitmap_conditions();
    assert!(countable.len() >= 25, "{countable:?}");
    property(&app, &admin, conditions(), 40).await?;
    property(&app, &admin, countable.clone(), 32).await?;

    // The member segments only those who share their whole profile, less a blocked pair.
    let member = &members[0];
    app.sql(&format!(
        "UPDATE users SET profile_visibility = 'friends' WHERE company_id = '{a}' AND email LIKE 'a1%';
         INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, blocked_by)
         SELECT '{a}', LEAST(u.id, '{m}'::uuid), GREATEST(u.id, '{m}'::uuid), 'blocked', u.id, u.id
         FROM users u WHERE u.company_id = '{a}' AND u.email LIKE 'a2@%'",
        m = member.id
    ))
    .await?;
    let visible = subjects(&app, member).await?;
    assert!(
        visible.len() < people.len() - 5
            && visible.iter().any(|(id, _)| *id == member.id.to_string()),
        "{} of {}",
        visible.len(),
        people.len()
    );
    property(&app, member, conditions(), 24).await?;
    property(&app, member, countable.clone(), 24).await?;

    // After writes of every kind, in both companies, both ways of counting still agree.
    write_everything(&app, a, "a-new").await?;
    write_everything(&app, b, "b-new").await?;
    assert_bitmaps_match_users(&app).await?;
    property(&app, &admin, conditions(), 24).await?;
    property(&app, &admin, countable.clone(), 24).await?;
    property(&app, member, countable, 24).await?;
    Ok(())
}
