//! Activities through the API: kinds (admins only), recording checked against the kind with the
//! offending metric named, changes and deletions of one's own only, imports all or nothing,
//! shares, who reads which activity (friend, non-friend, blocked either way, admin, coach it is
//! shared with, another company), the friends' feed newest first over pages, comparisons and
//! leaderboards.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tests::{GqlResponse, TestApp, TestUser};

use crate::friends::{BLOCK, befriend, run};

pub const DEFINE: &str = "mutation($input: DefineActivityKindInput!) {
  defineActivityKind(input: $input) { id name metrics { name type unit } }
}";
pub const RECORD: &str = "mutation($input: RecordActivityInput!) {
  recordActivity(input: $input) { id kind userId occurredAt metrics note visibility }
}";
const UPDATE: &str = "mutation($id: ID!, $input: UpdateActivityInput!) {
  updateActivity(id: $id, input: $input) { id metrics note visibility }
}";
const DELETE: &str = "mutation($id: ID!) { deleteActivity(id: $id) }";
const IMPORT: &str =
    "mutation($a: [RecordActivityInput!]!) { importActivities(activities: $a) { imported } }";
pub const SHARE: &str = "mutation($id: ID!, $users: [ID!]!) {
  shareActivity(id: $id, withUserIds: $users) { id sharedWith }
}";
const ACTIVITIES: &str = "query($user: ID, $kind: String, $first: Int, $after: String) {
  activities(userId: $user, kind: $kind, first: $first, after: $after) {
    edges { cursor node { id note kind user { id } } }
    pageInfo { hasNextPage endCursor }
  }
}";
const FEED: &str = "query($first: Int, $after: String) {
  friendFeed(first: $first, after: $after) {
    edges { node { id userId occurredAt } }
    pageInfo { hasNextPage endCursor }
  }
}";
const FEED_BACK: &str = "query($last: Int, $before: String) {
  friendFeed(last: $last, before: $before) {
    edges { node { id userId occurredAt } }
    pageInfo { hasPreviousPage startCursor }
  }
}";
const COMPARE: &str = "query($kind: String!, $metric: String!, $agg: ActivityAggregate!) {
  compareWithFriends(kind: $kind, metric: $metric, aggregate: $agg) { userId value activityCount rank }
}";
const LEADERBOARD: &str = "query($kind: String!, $metric: String!, $agg: ActivityAggregate!, $scope: LeaderboardScope!, $first: Int) {
  leaderboard(kind: $kind, metric: $metric, aggregate: $agg, scope: $scope, first: $first) { userId value activityCount rank }
}";

/// The code and path of the first error of `response`.
pub fn error(response: &GqlResponse) -> (String, String) {
    let error = &response.body["errors"][0]["extensions"];
    (
        error["code"].as_str().unwrap_or_default().to_owned(),
        error["path"]
            .as_str()
            .or(error["field"].as_str())
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Defines the kind `sleep` (score: NUMBER, minutes: INTEGER in min, mood: STRING) as `admin`.
pub async fn define_sleep(app: &TestApp, admin: &TestUser) -> anyhow::Result<()> {
    let defined = run(
        app,
        admin,
        DEFINE,
        json!({ "input": { "name": "sleep", "metrics": [
            { "name": "score", "type": "NUMBER" },
            { "name": "minutes", "type": "INTEGER", "unit": "min" },
            { "name": "mood", "type": "STRING" },
        ] } }),
    )
    .await?;
    defined.data()?;
    Ok(())
}

/// Records a sleep of `user`'s with `score` at `at`, visible as `visibility`; its id.
pub async fn record(
    app: &TestApp,
    user: &TestUser,
    score: f64,
    at: &str,
    visibility: &str,
    note: &str,
) -> anyhow::Result<String> {
    let recorded = run(
        app,
        user,
        RECORD,
        json!({ "input": { "kind": "sleep", "occurredAt": at, "metrics": { "score": score },
                           "note": note, "visibility": visibility } }),
    )
    .await?;
    Ok(recorded.data()?["recordActivity"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn notes(connection: &Value) -> BTreeSet<String> {
    connection["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["note"].as_str().map(str::to_owned))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn admins_define_kinds_and_bad_definitions_name_their_field() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 1).await?;
    define_sleep(&app, &admin).await?;

    let kinds = run(
        &app,
        &m[0],
        "{ activityKinds { name metrics { name type unit } } }",
        json!({}),
    )
    .await?;
    assert_eq!(
        kinds.data()?["activityKinds"],
        json!([{ "name": "sleep", "metrics": [
            { "name": "score", "type": "NUMBER", "unit": null },
            { "name": "minutes", "type": "INTEGER", "unit": "min" },
            { "name": "mood", "type": "STRING", "unit": null },
        ] }])
    );

    let by_member = run(
        &app,
        &m[0],
        DEFINE,
        json!({ "input": { "name": "run", "metrics": [{ "name": "km", "type": "NUMBER" }] } }),
    )
    .await?;
    assert_eq!(error(&by_member).0, "FORBIDDEN", "{}", by_member.body);

    let again = run(
        &app,
        &admin,
        DEFINE,
        json!({ "input": { "name": "SLEEP", "metrics": [{ "name": "x", "type": "NUMBER" }] } }),
    )
    .await?;
    assert_eq!(
        error(&again),
        ("CONFLICT".into(), "name".into()),
        "{}",
        again.body
    );

    for (metrics, path) in [
        (json!([]), "input.metrics"),
        (
            json!([{ "name": "Score", "type": "NUMBER" }]),
            "input.metrics.0.name",
        ),
        (
            json!([{ "name": "a", "type": "NUMBER" }, { "name": "a", "type": "BOOLEAN" }]),
            "input.metrics.1.name",
        ),
        (
            json!([{ "name": "a", "type": "NUMBER", "unit": "u".repeat(21) }]),
            "input.metrics.0.unit",
        ),
    ] {
        let bad = run(
            &app,
            &admin,
            DEFINE,
            json!({ "input": { "name": "run", "metrics": metrics } }),
        )
        .await?;
        assert_eq!(
            error(&bad),
            ("BAD_USER_INPUT".into(), path.into()),
            "{}",
            bad.body
        );
    }
    Ok(())
}

#[tokio::test]
async fn recorded_metrics_are_checked_against_the_kind_with_the_metric_named() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 1).await?;
    define_sleep(&app, &admin).await?;
    let ann = &m[0];
    let input = |metrics: Value| json!({ "input": { "kind": "Sleep", "occurredAt": "2026-11-01T07:00:00Z", "metrics": metrics } });
    let ok = run(
        &app,
        ann,
        RECORD,
        input(json!({ "score": 81.5, "minutes": 420 })),
    )
    .await?;
    let ok = ok.data()?["recordActivity"].clone();
    assert_eq!(ok["kind"], "sleep");
    assert_eq!(ok["visibility"], "PRIVATE");
    assert_eq!(ok["userId"], json!(ann.id));
    for (metrics, path) in [
        (json!({ "score": "great" }), "metrics.score"),
        (json!({ "minutes": 7.5 }), "metrics.minutes"),
        (json!({ "score": null }), "metrics.score"),
        (json!({ "steps": 1000 }), "metrics.steps"),
        (json!({ "mood": 3 }), "metrics.mood"),
        (json!([1]), "metrics"),
    ] {
        let bad = run(&app, ann, RECORD, input(metrics.clone())).await?;
        assert_eq!(
            error(&bad),
            ("BAD_USER_INPUT".into(), path.into()),
            "{metrics}: {}",
            bad.body
        );
    }
    let unknown = run(
        &app,
        ann,
        RECORD,
        json!({ "input": { "kind": "swim", "occurredAt": "2026-11-01T07:00:00Z", "metrics": {} } }),
    )
    .await?;
    assert_eq!(error(&unknown), ("BAD_USER_INPUT".into(), "kind".into()));
    // Nothing was written by the refused ones.
    let rows = app.query_as(ann, "SELECT id FROM activities").await?;
    assert_eq!(rows.len(), 1);
    Ok(())
}

#[tokio::test]
async fn only_the_owner_changes_or_deletes_an_activity() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 2).await?;
    define_sleep(&app, &admin).await?;
    let (ann, bob) = (&m[0], &m[1]);
    let id = record(&app, ann, 70.0, "2026-11-01T07:00:00Z", "COMPANY", "mine").await?;

    let changed = run(
        &app,
        ann,
        UPDATE,
        json!({ "id": id, "input": { "metrics": { "score": 75 }, "note": null, "visibility": "FRIENDS" } }),
    )
    .await?;
    let changed = changed.data()?["updateActivity"].clone();
    assert_eq!(changed["metrics"], json!({ "score": 75 }));
    assert_eq!(changed["note"], Value::Null);
    assert_eq!(changed["visibility"], "FRIENDS");

    let bad = run(
        &app,
        ann,
        UPDATE,
        json!({ "id": id, "input": { "metrics": { "score": true } } }),
    )
    .await?;
    assert_eq!(
        error(&bad),
        ("BAD_USER_INPUT".into(), "input.metrics.score".into())
    );

    // Bob may read it (company-visible before, now friends-only: he reads nothing) and may
    // change it in no case; the admin neither.
    let other = record(&app, ann, 60.0, "2026-11-02T07:00:00Z", "COMPANY", "public").await?;
    for (caller, expected) in [(bob, "FORBIDDEN"), (&admin, "FORBIDDEN")] {
        let update = run(
            &app,
            caller,
            UPDATE,
            json!({ "id": other, "input": { "note": "x" } }),
        )
        .await?;
        assert_eq!(error(&update).0, expected, "{}", update.body);
        let delete = run(&app, caller, DELETE, json!({ "id": other })).await?;
        assert_eq!(error(&delete).0, expected, "{}", delete.body);
    }
    let unseen = run(&app, bob, DELETE, json!({ "id": id })).await?;
    assert_eq!(error(&unseen).0, "NOT_FOUND", "{}", unseen.body);

    let deleted = run(&app, ann, DELETE, json!({ "id": id })).await?;
    assert_eq!(deleted.data()?["deleteActivity"], true);
    let rows = app.query_as(ann, "SELECT id FROM activities").await?;
    assert_eq!(rows.len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_import_is_all_or_nothing_and_names_the_bad_item() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 1).await?;
    define_sleep(&app, &admin).await?;
    let ann = &m[0];
    let item = |i: usize, score: Value| {
        json!({ "kind": "sleep", "occurredAt": format!("2026-10-{:02}T07:00:00Z", i % 28 + 1),
                "metrics": { "score": score }, "visibility": "FRIENDS" })
    };
    let mut batch: Vec<Value> = (0..1000).map(|i| item(i, json!(i))).collect();
    batch[613] = item(613, json!("bad"));
    let refused = run(&app, ann, IMPORT, json!({ "a": batch })).await?;
    assert_eq!(
        error(&refused),
        (
            "BAD_USER_INPUT".into(),
            "activities.613.metrics.score".into()
        ),
        "{}",
        refused.body
    );
    assert!(
        app.query_as(ann, "SELECT id FROM activities")
            .await?
            .is_empty()
    );

    batch[613] = item(613, json!(613));
    let imported = run(&app, ann, IMPORT, json!({ "a": batch })).await?;
    assert_eq!(imported.data()?["importActivities"]["imported"], 1000);
    assert_eq!(
        app.query_as(ann, "SELECT id FROM activities").await?.len(),
        1000
    );

    batch.push(item(1000, json!(1)));
    let too_many = run(&app, ann, IMPORT, json!({ "a": batch })).await?;
    assert_eq!(
        error(&too_many),
        ("BAD_USER_INPUT".into(), "activities".into())
    );
    Ok(())
}

/// The fixture of visibility: `owner` has one activity of each visibility and a private one
/// shared with `coach`; `friend` is their friend, `stranger` is not, `blocked` was blocked by
/// the owner and `blocker` blocked the owner (both had been friends); `outsider` is the admin
/// of another company.
pub struct Fixture {
    pub admin: TestUser,
    pub owner: TestUser,
    pub friend: TestUser,
    pub stranger: TestUser,
    pub blocked: TestUser,
    pub blocker: TestUser,
    pub coach: TestUser,
    pub outsider: TestUser,
}

pub async fn fixture(app: &TestApp) -> anyhow::Result<Fixture> {
    let (_, admin, m) = app.company_with_users("Acme", 6).await?;
    let (_, outsider, _) = app.company_with_users("Globex", 0).await?;
    let mut m = m.into_iter();
    let mut next = || m.next().ok_or_else(|| anyhow::anyhow!("too few members"));
    let f = Fixture {
        owner: next()?,
        friend: next()?,
        stranger: next()?,
        blocked: next()?,
        blocker: next()?,
        coach: next()?,
        admin,
        outsider,
    };
    define_sleep(app, &f.admin).await?;
    for other in [&f.friend, &f.blocked, &f.blocker] {
        befriend(app, &f.owner, other).await?;
    }
    run(app, &f.owner, BLOCK, json!({ "user": f.blocked.id }))
        .await?
        .data()?;
    run(app, &f.blocker, BLOCK, json!({ "user": f.owner.id }))
        .await?
        .data()?;
    for (visibility, note) in [
        ("PRIVATE", "private"),
        ("FRIENDS", "friends"),
        ("COMPANY", "company"),
    ] {
        record(
            app,
            &f.owner,
            70.0,
            "2026-11-01T07:00:00Z",
            visibility,
            note,
        )
        .await?;
    }
    let shared = record(
        app,
        &f.owner,
        80.0,
        "2026-11-02T07:00:00Z",
        "PRIVATE",
        "shared",
    )
    .await?;
    let sharing = run(
        app,
        &f.owner,
        SHARE,
        json!({ "id": shared, "users": [f.coach.id, f.blocked.id] }),
    )
    .await?;
    let sharing = sharing.data()?["shareActivity"]["sharedWith"].clone();
    let mut expected = vec![f.coach.id.to_string(), f.blocked.id.to_string()];
    expected.sort();
    anyhow::ensure!(sharing == json!(expected), "{sharing}");
    Ok(f)
}

/// Who reads which of the owner's activities, by note.
pub fn expected_reads(f: &Fixture) -> Vec<(&TestUser, &'static str, BTreeSet<String>)> {
    vec![
        (
            &f.owner,
            "owner",
            set(&["private", "friends", "company", "shared"]),
        ),
        (&f.friend, "friend", set(&["friends", "company"])),
        (&f.stranger, "non-friend", set(&["company"])),
        // Shared with, but blocked: a block wins over a share.
        (&f.blocked, "blocked by the owner", set(&[])),
        (&f.blocker, "who blocked the owner", set(&[])),
        (
            &f.coach,
            "coach it is shared with",
            set(&["company", "shared"]),
        ),
        (&f.admin, "admin", set(&["company"])),
        (&f.outsider, "another company's admin", set(&[])),
    ]
}

#[tokio::test]
async fn who_reads_an_activity_through_the_api() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let f = fixture(&app).await?;
    for (reader, who, expected) in expected_reads(&f) {
        let response = run(&app, reader, ACTIVITIES, json!({ "user": f.owner.id })).await?;
        let seen = notes(&response.data()?["activities"]);
        assert_eq!(seen, expected, "{who}: {}", response.body);
    }
    // The owner's shares are the owner's to see.
    let shared = run(&app, &f.coach, ACTIVITIES, json!({ "user": f.owner.id })).await?;
    let node = shared.data()?["activities"]["edges"][0]["node"].clone();
    assert_eq!(node["note"], "shared");
    assert_eq!(node["user"]["id"], json!(f.owner.id));
    Ok(())
}

#[tokio::test]
async fn the_friend_feed_pages_newest_first_over_readable_activities() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 4).await?;
    define_sleep(&app, &admin).await?;
    let (me, ann, bob, eve) = (&m[0], &m[1], &m[2], &m[3]);
    befriend(&app, me, ann).await?;
    befriend(&app, me, bob).await?;
    let mut expected = Vec::new();
    for day in 1..=9 {
        let (who, visibility) = match day % 3 {
            0 => (ann, "FRIENDS"),
            1 => (bob, "COMPANY"),
            _ => (ann, "PRIVATE"),
        };
        let at = format!("2026-11-{day:02}T07:00:00Z");
        let id = record(&app, who, day as f64, &at, visibility, "n").await?;
        if visibility != "PRIVATE" {
            expected.push(id);
        }
    }
    // Not a friend: never in the feed, however visible.
    record(&app, eve, 1.0, "2026-11-20T07:00:00Z", "COMPANY", "n").await?;
    expected.reverse();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = run(&app, me, FEED, json!({ "first": 2, "after": after })).await?;
        let feed = page.data()?["friendFeed"].clone();
        for edge in feed["edges"].as_array().into_iter().flatten() {
            seen.push(edge["node"]["id"].as_str().unwrap_or_default().to_owned());
        }
        if feed["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = feed["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, expected);

    let bad = run(&app, me, FEED, json!({ "first": 101 })).await?;
    assert_eq!(error(&bad), ("BAD_USER_INPUT".into(), "first".into()));
    Ok(())
}

/// The ids of a page of the feed, and its cursor onwards (`endCursor` forward, `startCursor`
/// backward) when there are more.
fn feed_page(feed: &Value, more: &str, cursor: &str) -> (Vec<String>, Option<String>) {
    let ids = feed["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["node"]["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let next = (feed["pageInfo"][more] == true)
        .then(|| feed["pageInfo"][cursor].as_str().map(str::to_owned))
        .flatten();
    (ids, next)
}

#[tokio::test]
async fn the_feed_merges_every_friends_newest_whoever_has_most_of_them() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 6).await?;
    define_sleep(&app, &admin).await?;
    let (me, ann, bob, cat, dan, eve) = (&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
    for friend in [ann, bob, cat, dan] {
        befriend(&app, me, friend).await?;
    }
    // (occurred at, id) of what the feed shows; ann has most of the newest, cat's newest is
    // private (and not shown), bob and dan have one at the same time (ordered by id).
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut add = async |who: &TestUser, day: u32, visibility: &str, shown: bool| {
        let at = format!("2026-11-{day:02}T07:00:00Z");
        let id = record(&app, who, 50.0, &at, visibility, "n").await?;
        if shown {
            expected.push((at, id.clone()));
        }
        anyhow::Ok(id)
    };
    for day in 20..=27 {
        add(ann, day, "COMPANY", true).await?;
    }
    for day in [1, 5, 12] {
        add(bob, day, "FRIENDS", true).await?;
    }
    add(cat, 28, "PRIVATE", false).await?;
    add(cat, 3, "FRIENDS", true).await?;
    let shared = add(cat, 15, "PRIVATE", true).await?;
    add(dan, 12, "COMPANY", true).await?;
    add(eve, 29, "COMPANY", false).await?;
    run(&app, cat, SHARE, json!({ "id": shared, "users": [me.id] }))
        .await?
        .data()?;
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    for size in [1, 2, 3, 5, 20] {
        let (mut seen, mut after) = (Vec::new(), None::<String>);
        loop {
            let page = run(&app, me, FEED, json!({ "first": size, "after": after })).await?;
            let (ids, next) = feed_page(&page.data()?["friendFeed"], "hasNextPage", "endCursor");
            seen.extend(ids);
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, expected, "pages of {size}, forward");

        let (mut seen, mut before) = (Vec::new(), None::<String>);
        loop {
            let page = run(
                &app,
                me,
                FEED_BACK,
                json!({ "last": size, "before": before }),
            )
            .await?;
            let (ids, next) = feed_page(
                &page.data()?["friendFeed"],
                "hasPreviousPage",
                "startCursor",
            );
            seen.splice(0..0, ids);
            match next {
                Some(cursor) => before = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, expected, "pages of {size}, backward");
    }
    Ok(())
}

#[tokio::test]
async fn comparisons_rank_the_caller_and_friends_over_what_the_caller_reads() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 5).await?;
    define_sleep(&app, &admin).await?;
    let (me, ann, bob, cat, eve) = (&m[0], &m[1], &m[2], &m[3], &m[4]);
    for friend in [ann, bob, cat] {
        befriend(&app, me, friend).await?;
    }
    record(&app, me, 70.0, "2026-11-01T07:00:00Z", "PRIVATE", "").await?;
    record(&app, me, 80.0, "2026-11-02T07:00:00Z", "PRIVATE", "").await?;
    record(&app, ann, 90.0, "2026-11-01T07:00:00Z", "FRIENDS", "").await?;
    record(&app, bob, 60.0, "2026-11-01T07:00:00Z", "COMPANY", "").await?;
    record(&app, bob, 100.0, "2026-11-02T07:00:00Z", "FRIENDS", "").await?;
    // Cat's is private: Cat does not share sleep with the caller, so Cat is left out.
    record(&app, cat, 99.0, "2026-11-01T07:00:00Z", "PRIVATE", "").await?;
    // Eve is no friend.
    record(&app, eve, 95.0, "2026-11-01T07:00:00Z", "COMPANY", "").await?;

    let compared = run(
        &app,
        me,
        COMPARE,
        json!({ "kind": "sleep", "metric": "score", "agg": "AVG" }),
    )
    .await?;
    assert_eq!(
        compared.data()?["compareWithFriends"],
        json!([
            { "userId": ann.id, "value": 90.0, "activityCount": 1, "rank": 1 },
            { "userId": bob.id, "value": 80.0, "activityCount": 2, "rank": 2 },
            { "userId": me.id, "value": 75.0, "activityCount": 2, "rank": 3 },
        ])
    );
    let summed = run(
        &app,
        me,
        COMPARE,
        json!({ "kind": "sleep", "metric": "score", "agg": "SUM" }),
    )
    .await?;
    let values: Vec<Value> = summed.data()?["compareWithFriends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["value"].clone())
        .collect();
    assert_eq!(values, [json!(160.0), json!(150.0), json!(90.0)]);

    // Someone without friends or activities still sees themselves.
    let alone = run(
        &app,
        eve,
        COMPARE,
        json!({ "kind": "sleep", "metric": "minutes", "agg": "MAX" }),
    )
    .await?;
    assert_eq!(
        alone.data()?["compareWithFriends"],
        json!([{ "userId": eve.id, "value": null, "activityCount": 1, "rank": 1 }])
    );

    let company = run(
        &app,
        me,
        LEADERBOARD,
        json!({ "kind": "sleep", "metric": "score", "agg": "MAX", "scope": "COMPANY", "first": 2 }),
    )
    .await?;
    assert_eq!(
        company.data()?["leaderboard"],
        json!([
            { "userId": eve.id, "value": 95.0, "activityCount": 1, "rank": 1 },
            { "userId": bob.id, "value": 60.0, "activityCount": 1, "rank": 2 },
        ])
    );
    let friends = run(
        &app,
        me,
        LEADERBOARD,
        json!({ "kind": "sleep", "metric": "score", "agg": "COUNT", "scope": "FRIENDS" }),
    )
    .await?;
    let counts: Vec<(Value, Value)> = friends.data()?["leaderboard"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (s["userId"].clone(), s["value"].clone()))
        .collect();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert_eq!(counts[2], (json!(ann.id), json!(1.0)));

    for (metric, agg, path) in [("mood", "AVG", "metric"), ("steps", "COUNT", "metric")] {
        let bad = run(
            &app,
            me,
            COMPARE,
            json!({ "kind": "sleep", "metric": metric, "agg": agg }),
        )
        .await?;
        assert_eq!(
            error(&bad),
            ("BAD_USER_INPUT".into(), path.into()),
            "{}",
            bad.body
        );
    }
    Ok(())
}
