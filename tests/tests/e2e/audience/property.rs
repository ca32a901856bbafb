//! The property test: for random filters over users with odd data, what the server counts and
//! lists selects exactly what the in-memory evaluation of the same filter selects, both ways of
//! counting (the bitmaps of `audience_bits`, and the SQL over the users' rows), before and after
//! writes of every kind, for an admin and for a member (who segments only those who share their
//! profile, less a blocked pair). Conditions over activities are among them: the evaluator gets
//! each person's activities from the tables as the superuser reads them, filtered by the rule
//! (shared with the whole company, never across a block with the caller), so that the view the
//! SQL reads is checked too.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proptest::{
    prelude::*,
    test_runner::{Config as PropConfig, TestRunner},
};
use serde_json::{Value, json};
use server::audience::{
    ActivityKind, FieldType, MetricType, Registry, bits,
    eval::{Activity, Subject, matches},
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

/// Two activity kinds for `company`, and 0 to 5 activities for each of its users: odd
/// visibilities, times inside and outside the windows, metrics missing or present (integers, so
/// that sums are exact in `float8`, in SQL as in memory).
async fn seed_activities(app: &TestApp, company: uuid::Uuid) -> anyhow::Result<()> {
    app.sql(&format!(
        r#"INSERT INTO activity_kinds (company_id, name, metrics) VALUES
             ('{company}', 'sleep', '[{{"name": "score", "type": "number"}}, {{"name": "duration_min", "type": "integer", "unit": "min"}}, {{"name": "label", "type": "string"}}]'),
             ('{company}', 'Run', '[{{"name": "km", "type": "number"}}]')
           ON CONFLICT DO NOTHING"#
    ))
    .await?;
    add_activities(app, company, "true").await
}

/// Activities for the users of `company` that `which` (SQL over `u` and `g`, the user's number
/// in the company) picks.
async fn add_activities(app: &TestApp, company: uuid::Uuid, which: &str) -> anyhow::Result<()> {
    app.sql(&format!(
        r#"INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics, visibility)
           SELECT u.company_id, u.id, k.id,
                  now() - make_interval(days => ((g * 7 + i * 11) % 70)::int, hours => 1),
                  CASE WHEN k.name = 'Run' THEN jsonb_build_object('km', (g + i) % 12)
                       ELSE jsonb_strip_nulls(jsonb_build_object(
                              'score', (ARRAY[40, 50, 60, 70, 80, 90, 100, NULL])[1 + (g * 3 + i) % 8],
                              'duration_min', (ARRAY[300, 420, 480, NULL, 510])[1 + (g + i * 2) % 5],
                              'label', CASE WHEN i % 2 = 0 THEN 'x' END)) END,
                  (ARRAY['company', 'company', 'friends', 'private', 'company'])[1 + (g + i) % 5]
           FROM (SELECT u.*, row_number() OVER (ORDER BY u.id) AS g FROM users u
                 WHERE u.company_id = '{company}') u
           CROSS JOIN LATERAL generate_series(1, (u.g % 6)::int) i
           JOIN activity_kinds k ON k.company_id = u.company_id
                                AND k.name = CASE WHEN i % 3 = 0 THEN 'Run' ELSE 'sleep' END
           WHERE {which}"#
    ))
    .await?;
    Ok(())
}

/// The activity kinds of `company`, as the registry of a filter takes them.
async fn activity_kinds(app: &TestApp, company: uuid::Uuid) -> anyhow::Result<Vec<ActivityKind>> {
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        &app.admin,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT id, name, metrics FROM activity_kinds WHERE company_id = '{company}'"),
        ),
    )
    .await?;
    rows.iter()
        .map(|row| {
            let metrics: Value = row.try_get("", "metrics")?;
            Ok(ActivityKind {
                id: row.try_get("", "id")?,
                name: row.try_get("", "name")?,
                metrics: metrics
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let ty = match m["type"].as_str() {
                            Some("number" | "integer") => MetricType::Number,
                            other => MetricType::Other(other.unwrap_or_default().to_owned()),
                        };
                        (m["name"].as_str().unwrap_or_default().to_owned(), ty)
                    })
                    .collect(),
            })
        })
        .collect()
}

/// The registry of `company`'s filters: the declared fields and its activity kinds.
async fn registry_of(app: &TestApp, company: uuid::Uuid) -> anyhow::Result<Registry> {
    Ok(registry().with_activity_kinds(activity_kinds(app, company).await?))
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
    // Every activity of the company, as the superuser reads it, with the people in a blocked
    // pair with the caller: the rule, applied here, decides which ones the caller aggregates.
    let activities = sea_orm::ConnectionTrait::query_all_raw(
        &app.admin,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT a.user_id::text AS user_id, k.name, a.occurred_at, a.metrics, a.visibility,
                        EXISTS (SELECT 1 FROM friendships f
                                WHERE f.company_id = a.company_id AND f.status = 'blocked'
                                  AND f.user_a = LEAST(a.user_id, '{me}'::uuid)
                                  AND f.user_b = GREATEST(a.user_id, '{me}'::uuid)) AS blocked
                 FROM activities a JOIN activity_kinds k ON k.company_id = a.company_id AND k.id = a.kind_id
                 WHERE a.company_id = '{company}'",
                me = caller.id,
                company = caller.company_id
            ),
        ),
    )
    .await?;
    let mut by_user: std::collections::HashMap<String, Vec<Activity>> = Default::default();
    for row in &activities {
        let visibility: String = row.try_get("", "visibility")?;
        let blocked: bool = row.try_get("", "blocked")?;
        if visibility != "company" || blocked {
            continue;
        }
        let occurred_at: chrono::DateTime<chrono::FixedOffset> = row.try_get("", "occurred_at")?;
        by_user
            .entry(row.try_get("", "user_id")?)
            .or_default()
            .push(Activity {
                kind: row.try_get("", "name")?,
                occurred_at: occurred_at.with_timezone(&Utc),
                metrics: row.try_get("", "metrics")?,
            });
    }
    rows.iter()
        .map(|row| {
            let id = row["id"].as_str().unwrap_or_default().to_owned();
            let activities = by_user.remove(&id).unwrap_or_default();
            Ok((
                id,
                Subject {
                    role: row["role"].as_str().unwrap_or_default().to_owned(),
                    email: row["email"].as_str().unwrap_or_default().to_owned(),
                    created_at: time(&row["created_at"])
                        .ok_or_else(|| anyhow::anyhow!("created_at"))?,
                    last_active_at: time(&row["last_active_at"]),
                    is_active: row["is_active"].as_bool().unwrap_or_default(),
                    attributes: row["attributes"].clone(),
                    activities,
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
    out.extend(activity_conditions());
    out
}

/// Conditions over the seeded activities: every aggregate, windows that cut through them, every
/// number operator.
fn activity_conditions() -> Vec<Value> {
    let a = |kind: &str,
             metric: Option<&str>,
             aggregate: &str,
             days: i64,
             op: &str,
             value: Value| {
        let mut c =
            json!({"activity": kind, "aggregate": aggregate, "within_last_days": days, "op": op});
        if let Some(metric) = metric {
            c["metric"] = json!(metric);
        }
        if !value.is_null() {
            c["value"] = value;
        }
        c
    };
    vec![
        a("sleep", Some("score"), "avg", 30, "lt", json!(70)),
        a("sleep", Some("score"), "avg", 60, "gte", json!(65)),
        a("sleep", Some("score"), "avg", 45, "eq", json!(70)),
        a("sleep", Some("score"), "avg", 20, "exists", Value::Null),
        a("sleep", Some("score"), "avg", 20, "not_exists", Value::Null),
        a("sleep", Some("score"), "sum", 30, "gt", json!(100)),
        a(
            "sleep",
            Some("score"),
            "sum",
            70,
            "between",
            json!([100, 250]),
        ),
        a("sleep", Some("score"), "min", 45, "lte", json!(50)),
        a("sleep", Some("score"), "max", 60, "eq", json!(90)),
        a("sleep", Some("score"), "max", 60, "neq", json!(90)),
        a("sleep", Some("score"), "min", 60, "in", json!([40, 60])),
        a("sleep", Some("score"), "max", 60, "not_in", json!([100])),
        a(
            "sleep",
            Some("duration_min"),
            "max",
            60,
            "between",
            json!([300, 480]),
        ),
        a("sleep", Some("duration_min"), "avg", 35, "gt", json!(420)),
        a("sleep", Some("score"), "count", 30, "lt", json!(2)),
        a("SLEEP", None, "count", 60, "eq", json!(0)),
        a("sleep", None, "count", 14, "gte", json!(1)),
        a("Run", Some("km"), "sum", 40, "gte", json!(10)),
        a("run", None, "count", 70, "gt", json!(1)),
    ]
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
    registry: &Registry,
    doc: Value,
) -> Result<(), String> {
    let filter = parse(&doc, registry, Utc::now()).map_err(|e| format!("{doc}: {e:?}"))?;
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
    let registry = registry_of(app, caller.company_id).await?;
    let token = app.token_for(caller);
    check(app, &token, &people, &registry, json!({}))
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
                .block_on(check(app, &token, &people, &registry, doc))
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
    seed_odd_users(app, company, prefix, 6).await?;
    let some_activities = |k: u32, r: u32| {
        format!("company_id = '{company}' AND abs(hashtext(id::text)) % {k} = {r}")
    };
    app.sql(&format!(
        r#"UPDATE activities SET visibility = CASE WHEN visibility = 'company' THEN 'private' ELSE 'company' END WHERE {};
           UPDATE activities SET metrics = metrics - 'score' WHERE {};
           UPDATE activities SET occurred_at = occurred_at - interval '25 days' WHERE {};
           DELETE FROM activities WHERE {};"#,
        some_activities(5, 0),
        some_activities(7, 1),
        some_activities(6, 2),
        some_activities(9, 3),
    ))
    .await?;
    add_activities(app, company, "u.g % 4 = 0").await
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
        seed_activities(&app, company).await?;
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
