//! Audience conditions over activities: mistakes carry their path, and an audience aggregates
//! only activities shared with the whole company (for admins too), never across a block and
//! never another company's — through the API and through the view PostgreSQL gives requests.
//! The property test (SQL = in-memory evaluation) covers them in `audience/property.rs`.

use serde_json::{Value, json};
use tests::{TestApp, TestUser};
use uuid::Uuid;

const SIZE_AND_PAGE: &str = "query($f: JSON) {
  audienceSize(filter: $f)
  audience(filter: $f, first: 100) { totalCount users { id } }
}";

/// Defines `sleep` (score: number, label: string) in `company`; its id.
async fn define_sleep(app: &TestApp, company: Uuid) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    app.sql(&format!(
        r#"INSERT INTO activity_kinds (company_id, id, name, metrics) VALUES ('{company}', '{id}', 'sleep',
             '[{{"name": "score", "type": "number"}}, {{"name": "label", "type": "string"}}]')"#
    ))
    .await?;
    Ok(id)
}

async fn record(
    app: &TestApp,
    user: &TestUser,
    kind: Uuid,
    score: i64,
    visibility: &str,
) -> anyhow::Result<()> {
    app.sql(&format!(
        "INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics, visibility)
         VALUES ('{}', '{}', '{kind}', now() - interval '1 day', '{{\"score\": {score}}}', '{visibility}')",
        user.company_id, user.id
    ))
    .await?;
    Ok(())
}

fn max_score(op: &str, value: i64) -> Value {
    json!({"include": {"activity": "sleep", "metric": "score", "aggregate": "max",
                       "within_last_days": 30, "op": op, "value": value}})
}

/// The ids an audience query answers, after checking its count agrees.
async fn audience(app: &TestApp, caller: &TestUser, filter: Value) -> anyhow::Result<Vec<String>> {
    let response = app
        .graphql(
            Some(&app.token_for(caller)),
            SIZE_AND_PAGE,
            json!({ "f": filter }),
        )
        .await?;
    let data = response.data()?;
    let ids: Vec<String> = data["audience"]["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(data["audienceSize"], json!(ids.len()), "{filter}");
    assert_eq!(data["audience"]["totalCount"], json!(ids.len()), "{filter}");
    Ok(ids)
}

#[tokio::test]
async fn activity_conditions_say_what_is_wrong_and_where() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Acme", 1).await?;
    define_sleep(&app, company).await?;
    let token = app.token_for(&admin);
    let condition = |changes: Value| {
        let mut c = json!({"activity": "sleep", "metric": "score", "aggregate": "avg",
                           "within_last_days": 30, "op": "lt", "value": 70});
        for (key, value) in changes.as_object().into_iter().flatten() {
            if value.is_null() {
                c.as_object_mut().map(|c| c.remove(key));
            } else {
                c[key] = value.clone();
            }
        }
        json!({"include": {"all": [{"field": "role", "op": "exists"}, c]}})
    };
    let cases = [
        (
            json!({"activity": "swim"}),
            "include.all[1].activity",
            "unknown activity kind",
        ),
        (
            json!({"metric": "depth"}),
            "include.all[1].metric",
            "unknown metric",
        ),
        (
            json!({"metric": "label"}),
            "include.all[1].metric",
            "not a number",
        ),
        (
            json!({"aggregate": "median"}),
            "include.all[1].aggregate",
            "unknown aggregate",
        ),
        (
            json!({"metric": null}),
            "include.all[1].metric",
            "needs a number metric",
        ),
        (
            json!({"within_last_days": -1}),
            "include.all[1].within_last_days",
            "days",
        ),
        (
            json!({"op": "starts_with"}),
            "include.all[1].op",
            "not valid",
        ),
        (
            json!({"value": "low"}),
            "include.all[1].value",
            "expected a number",
        ),
    ];
    for (changes, path, message) in cases {
        let filter = condition(changes.clone());
        let response = app
            .graphql(Some(&token), SIZE_AND_PAGE, json!({ "f": filter }))
            .await?;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{changes}");
        assert_eq!(
            response.body["errors"][0]["extensions"]["path"], path,
            "{changes}"
        );
        let text = response.error_message().unwrap_or_default();
        assert!(text.contains(message), "{changes}: {text}");
    }
    // The example of the documentation is valid.
    let ok = app
        .graphql(
            Some(&token),
            SIZE_AND_PAGE,
            json!({ "f": condition(json!({})) }),
        )
        .await?;
    assert_eq!(ok.data()?["audienceSize"], 0);
    Ok(())
}

#[tokio::test]
async fn audiences_aggregate_only_what_is_shared_with_the_company() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, people) = app.company_with_users("Acme", 3).await?;
    let (other, _, outsiders) = app.company_with_users("Globex", 1).await?;
    let (member, ann, bob) = (&people[0], &people[1], &people[2]);
    let sleep = define_sleep(&app, company).await?;
    let their_sleep = define_sleep(&app, other).await?;
    record(&app, ann, sleep, 50, "company").await?;
    record(&app, ann, sleep, 100, "private").await?;
    record(&app, ann, sleep, 90, "friends").await?;
    record(&app, bob, sleep, 70, "company").await?;
    record(&app, &outsiders[0], their_sleep, 95, "company").await?;
    // The member and Ann are friends: still, friends-only activities stay out of audiences.
    app.sql(&format!(
        "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by)
         VALUES ('{company}', LEAST('{m}'::uuid, '{a}'::uuid), GREATEST('{m}'::uuid, '{a}'::uuid), 'accepted', '{m}')",
        m = member.id,
        a = ann.id
    ))
    .await?;
    let ann_id = ann.id.to_string();
    let bob_id = bob.id.to_string();
    for caller in [&admin, member] {
        assert_eq!(
            audience(&app, caller, max_score("eq", 50)).await?,
            std::slice::from_ref(&ann_id)
        );
        assert!(
            audience(&app, caller, max_score("gte", 90))
                .await?
                .is_empty()
        );
        let mut both = audience(&app, caller, max_score("gte", 50)).await?;
        both.sort();
        let mut want = vec![ann_id.clone(), bob_id.clone()];
        want.sort();
        assert_eq!(both, want);
    }
    // PostgreSQL alone: the view requests read holds the company's shared activities only.
    for caller in [&admin, member] {
        let rows = app
            .query_as(
                caller,
                "SELECT user_id, metrics FROM audience_activities ORDER BY metrics ->> 'score'",
            )
            .await?;
        assert_eq!(
            rows,
            [
                json!({"user_id": ann.id, "metrics": {"score": 50}}),
                json!({"user_id": bob.id, "metrics": {"score": 70}}),
            ]
        );
    }
    // Never across a block, whoever blocked whom, for the member and for PostgreSQL alone.
    app.sql(&format!(
        "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, blocked_by)
         VALUES ('{company}', LEAST('{m}'::uuid, '{b}'::uuid), GREATEST('{m}'::uuid, '{b}'::uuid), 'blocked', '{b}', '{b}')",
        m = member.id,
        b = bob.id
    ))
    .await?;
    assert_eq!(
        audience(&app, member, max_score("gte", 50)).await?,
        std::slice::from_ref(&ann_id)
    );
    let rows = app
        .query_as(member, "SELECT user_id FROM audience_activities")
        .await?;
    assert_eq!(rows, [json!({"user_id": ann.id})]);
    // The other company sees only its own.
    let theirs = app
        .query_as(&outsiders[0], "SELECT company_id FROM audience_activities")
        .await?;
    assert_eq!(theirs, [json!({"company_id": other})]);
    Ok(())
}
