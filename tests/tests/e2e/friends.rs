//! Friendships: every transition and its invalid variants, and truly concurrent requests.

use serde_json::{Value, json};
use tests::{GqlResponse, TestApp, TestUser};

pub const SEND: &str = "mutation($to: ID!, $message: String) {
  sendFriendRequest(userId: $to, message: $message) { id status message from { id } to { id } }
}";
pub const RESPOND: &str = "mutation($id: ID!, $accept: Boolean!) {
  respondToFriendRequest(requestId: $id, accept: $accept) { id status respondedAt }
}";
const CANCEL: &str = "mutation($id: ID!) { cancelFriendRequest(requestId: $id) }";
const REMOVE: &str = "mutation($user: ID!) { removeFriend(userId: $user) }";
pub const BLOCK: &str = "mutation($user: ID!) { blockUser(userId: $user) }";
const UNBLOCK: &str = "mutation($user: ID!) { unblockUser(userId: $user) }";
const STATUS: &str = "query($id: ID!) { user(id: $id) { friendshipStatus } }";
const REQUESTS: &str = "query($d: FriendRequestDirection!) {
  friendRequests(direction: $d) { edges { node { id message from { id } to { id } } } }
}";
const FRIENDS: &str = "{ friends { edges { node { id } } totalCount } }";
const BLOCKED: &str = "{ blockedUsers { edges { node { id } } } }";

/// Runs `query` as `user`.
pub async fn run(
    app: &TestApp,
    user: &TestUser,
    query: &str,
    variables: Value,
) -> anyhow::Result<GqlResponse> {
    app.graphql(Some(&app.token_for(user)), query, variables)
        .await
}

/// Sends a request from `from` to `to` and returns its id.
pub async fn request(app: &TestApp, from: &TestUser, to: &TestUser) -> anyhow::Result<String> {
    let sent = run(app, from, SEND, json!({ "to": to.id })).await?;
    Ok(sent.data()?["sendFriendRequest"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Makes `a` and `b` friends.
pub async fn befriend(app: &TestApp, a: &TestUser, b: &TestUser) -> anyhow::Result<()> {
    let id = request(app, a, b).await?;
    let accepted = run(app, b, RESPOND, json!({ "id": id, "accept": true })).await?;
    anyhow::ensure!(
        accepted.data()?["respondToFriendRequest"]["status"] == "ACCEPTED",
        "{}",
        accepted.body
    );
    Ok(())
}

async fn status(app: &TestApp, viewer: &TestUser, of: &TestUser) -> anyhow::Result<Value> {
    let response = run(app, viewer, STATUS, json!({ "id": of.id })).await?;
    Ok(response.data()?["user"]["friendshipStatus"].clone())
}

fn ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn requests_are_sent_listed_accepted_and_removed() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, m) = app.company_with_users("Acme", 2).await?;
    let (ann, bob) = (&m[0], &m[1]);

    let sent = run(
        &app,
        ann,
        SEND,
        json!({ "to": bob.id, "message": " hi Bob " }),
    )
    .await?;
    let request = &sent.data()?["sendFriendRequest"];
    assert_eq!(request["status"], "PENDING");
    assert_eq!(request["message"], "hi Bob");
    assert_eq!(request["from"]["id"], json!(ann.id));
    assert_eq!(request["to"]["id"], json!(bob.id));
    let id = request["id"].clone();
    assert_eq!(status(&app, ann, bob).await?, "PENDING_OUTGOING");
    assert_eq!(status(&app, bob, ann).await?, "PENDING_INCOMING");

    let incoming = run(&app, bob, REQUESTS, json!({ "d": "INCOMING" })).await?;
    assert_eq!(
        ids(&incoming.data()?["friendRequests"]),
        vec![id.as_str().unwrap_or_default()]
    );
    let outgoing = run(&app, bob, REQUESTS, json!({ "d": "OUTGOING" })).await?;
    assert!(ids(&outgoing.data()?["friendRequests"]).is_empty());
    let outgoing = run(&app, ann, REQUESTS, json!({ "d": "OUTGOING" })).await?;
    assert_eq!(ids(&outgoing.data()?["friendRequests"]).len(), 1);

    let accepted = run(&app, bob, RESPOND, json!({ "id": id, "accept": true })).await?;
    assert_eq!(
        accepted.data()?["respondToFriendRequest"]["status"],
        "ACCEPTED"
    );
    assert!(accepted.data()?["respondToFriendRequest"]["respondedAt"].is_string());
    assert_eq!(status(&app, ann, bob).await?, "FRIENDS");
    let friends = run(&app, ann, FRIENDS, json!({})).await?;
    assert_eq!(ids(&friends.data()?["friends"]), vec![bob.id.to_string()]);
    assert_eq!(friends.data()?["friends"]["totalCount"], 1);

    let removed = run(&app, bob, REMOVE, json!({ "user": ann.id })).await?;
    assert_eq!(removed.data()?["removeFriend"], true);
    assert_eq!(status(&app, ann, bob).await?, "NONE");
    let again = run(&app, bob, REMOVE, json!({ "user": ann.id })).await?;
    assert_eq!(again.error_code(), Some("NOT_FOUND"));
    Ok(())
}

#[tokio::test]
async fn invalid_requests_fail_with_clear_codes() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, m) = app.company_with_users("Acme", 3).await?;
    let (_, _, other) = app.company_with_users("Globex", 1).await?;
    let (ann, bob, cat) = (&m[0], &m[1], &m[2]);

    let to_self = run(&app, ann, SEND, json!({ "to": ann.id })).await?;
    assert_eq!(to_self.error_code(), Some("BAD_USER_INPUT"));
    let elsewhere = run(&app, ann, SEND, json!({ "to": other[0].id })).await?;
    assert_eq!(elsewhere.error_code(), Some("NOT_FOUND"));
    let unknown = run(&app, ann, SEND, json!({ "to": uuid::Uuid::new_v4() })).await?;
    assert_eq!(unknown.error_code(), Some("NOT_FOUND"));
    let malformed = run(&app, ann, SEND, json!({ "to": "nope" })).await?;
    assert_eq!(malformed.error_code(), Some("BAD_USER_INPUT"));
    let long = run(
        &app,
        ann,
        SEND,
        json!({ "to": bob.id, "message": "x".repeat(501) }),
    )
    .await?;
    assert_eq!(long.error_code(), Some("BAD_USER_INPUT"));

    let id = request(&app, ann, bob).await?;
    let twice = run(&app, ann, SEND, json!({ "to": bob.id })).await?;
    assert_eq!(twice.error_code(), Some("CONFLICT"));
    // The sender cannot answer their own request, nor the recipient cancel it.
    let own = run(&app, ann, RESPOND, json!({ "id": id, "accept": true })).await?;
    assert_eq!(own.error_code(), Some("FORBIDDEN"));
    let cancel_theirs = run(&app, bob, CANCEL, json!({ "id": id })).await?;
    assert_eq!(cancel_theirs.error_code(), Some("FORBIDDEN"));
    // Someone outside the pair cannot even see it.
    let stranger = run(&app, cat, RESPOND, json!({ "id": id, "accept": true })).await?;
    assert_eq!(stranger.error_code(), Some("NOT_FOUND"));

    let accepted = run(&app, bob, RESPOND, json!({ "id": id, "accept": true })).await?;
    assert_eq!(
        accepted.data()?["respondToFriendRequest"]["status"],
        "ACCEPTED"
    );
    let again = run(&app, bob, RESPOND, json!({ "id": id, "accept": true })).await?;
    assert_eq!(again.error_code(), Some("CONFLICT"));
    let befriended = run(&app, bob, SEND, json!({ "to": ann.id })).await?;
    assert_eq!(befriended.error_code(), Some("CONFLICT"));
    let cancel_accepted = run(&app, ann, CANCEL, json!({ "id": id })).await?;
    assert_eq!(cancel_accepted.error_code(), Some("CONFLICT"));

    // Declining removes the request; cancelling withdraws it.
    let declined_id = request(&app, cat, ann).await?;
    let declined = run(
        &app,
        ann,
        RESPOND,
        json!({ "id": declined_id, "accept": false }),
    )
    .await?;
    assert_eq!(
        declined.data()?["respondToFriendRequest"]["status"],
        "DECLINED"
    );
    assert_eq!(status(&app, cat, ann).await?, "NONE");
    let cancelled_id = request(&app, cat, ann).await?;
    let cancelled = run(&app, cat, CANCEL, json!({ "id": cancelled_id })).await?;
    assert_eq!(cancelled.data()?["cancelFriendRequest"], true);
    let gone = run(&app, cat, CANCEL, json!({ "id": cancelled_id })).await?;
    assert_eq!(gone.error_code(), Some("NOT_FOUND"));
    Ok(())
}

#[tokio::test]
async fn a_blocked_pair_cannot_reach_each_other_and_learns_only_not_found() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, m) = app.company_with_users("Acme", 2).await?;
    let (ann, bob) = (&m[0], &m[1]);
    befriend(&app, ann, bob).await?;

    let blocked = run(&app, ann, BLOCK, json!({ "user": bob.id })).await?;
    assert_eq!(blocked.data()?["blockUser"], true);
    let twice = run(&app, ann, BLOCK, json!({ "user": bob.id })).await?;
    assert_eq!(twice.data()?["blockUser"], true);
    assert_eq!(status(&app, ann, bob).await?, "BLOCKED");
    // The blocked user sees no trace of the block.
    assert_eq!(status(&app, bob, ann).await?, "NONE");
    let listed = run(&app, ann, BLOCKED, json!({})).await?;
    assert_eq!(
        ids(&listed.data()?["blockedUsers"]),
        vec![bob.id.to_string()]
    );
    let friends = run(&app, ann, FRIENDS, json!({})).await?;
    assert!(ids(&friends.data()?["friends"]).is_empty());

    for (from, to) in [(ann, bob), (bob, ann)] {
        let sent = run(&app, from, SEND, json!({ "to": to.id })).await?;
        assert_eq!(sent.error_code(), Some("NOT_FOUND"), "{}", sent.body);
    }
    let block_back = run(&app, bob, BLOCK, json!({ "user": ann.id })).await?;
    assert_eq!(block_back.error_code(), Some("NOT_FOUND"));
    let unblock_theirs = run(&app, bob, UNBLOCK, json!({ "user": ann.id })).await?;
    assert_eq!(unblock_theirs.error_code(), Some("NOT_FOUND"));
    let remove = run(&app, bob, REMOVE, json!({ "user": ann.id })).await?;
    assert_eq!(remove.error_code(), Some("NOT_FOUND"));
    let self_block = run(&app, ann, BLOCK, json!({ "user": ann.id })).await?;
    assert_eq!(self_block.error_code(), Some("BAD_USER_INPUT"));

    let unblocked = run(&app, ann, UNBLOCK, json!({ "user": bob.id })).await?;
    assert_eq!(unblocked.data()?["unblockUser"], true);
    assert_eq!(status(&app, ann, bob).await?, "NONE");
    let unblock_again = run(&app, ann, UNBLOCK, json!({ "user": bob.id })).await?;
    assert_eq!(unblock_again.error_code(), Some("NOT_FOUND"));
    request(&app, bob, ann).await?;
    assert_eq!(status(&app, ann, bob).await?, "PENDING_INCOMING");
    Ok(())
}

#[tokio::test]
async fn two_users_asking_each_other_at_once_become_friends() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, _, _) = app.company_with_users("Acme", 0).await?;
    for round in 0..5 {
        let ann = app
            .create_user(company, &format!("ann{round}@acme.example"), "member")
            .await?;
        let bob = app
            .create_user(company, &format!("bob{round}@acme.example"), "member")
            .await?;
        let (a, b) = tokio::join!(
            run(&app, &ann, SEND, json!({ "to": bob.id })),
            run(&app, &bob, SEND, json!({ "to": ann.id })),
        );
        let (a, b) = (a?, b?);
        let mut statuses = vec![
            a.data()?["sendFriendRequest"]["status"].clone(),
            b.data()?["sendFriendRequest"]["status"].clone(),
        ];
        statuses.sort_by_key(|s| s.to_string());
        assert_eq!(
            statuses,
            vec![json!("ACCEPTED"), json!("PENDING")],
            "round {round}"
        );
        assert_eq!(
            a.data()?["sendFriendRequest"]["id"],
            b.data()?["sendFriendRequest"]["id"],
            "one row per pair"
        );
        assert_eq!(status(&app, &ann, &bob).await?, "FRIENDS");
        assert_eq!(status(&app, &bob, &ann).await?, "FRIENDS");
        let rows = app
            .query_as(
                &ann,
                &format!(
                    "SELECT status FROM friendships WHERE {} IN (user_a, user_b) AND {} IN (user_a, user_b)",
                    format_args!("'{}'", ann.id),
                    format_args!("'{}'", bob.id)
                ),
            )
            .await?;
        assert_eq!(rows.len(), 1, "round {round}: {rows:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_database_rejects_inconsistent_friendships() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, m) = app.company_with_users("Acme", 2).await?;
    let (_, _, other) = app.company_with_users("Globex", 1).await?;
    let (lo, hi) = if m[0].id < m[1].id {
        (&m[0], &m[1])
    } else {
        (&m[1], &m[0])
    };
    let insert = |a: &TestUser, b: &TestUser, company: uuid::Uuid| {
        format!(
            "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) \
             VALUES ('{company}', '{}', '{}', 'pending', '{}')",
            a.id, b.id, a.id
        )
    };
    // Self-friendship, the wrong order (a duplicate of the pair), another company's user.
    assert!(app.sql(&insert(lo, lo, lo.company_id)).await.is_err());
    assert!(app.sql(&insert(hi, lo, lo.company_id)).await.is_err());
    assert!(
        app.sql(&insert(lo, &other[0], lo.company_id))
            .await
            .is_err()
    );
    app.sql(&insert(lo, hi, lo.company_id)).await?;
    assert!(app.sql(&insert(lo, hi, lo.company_id)).await.is_err());
    // A member cannot write a row they are not part of, nor a block in someone else's name.
    let forged = app
        .execute_as(
            &other[0],
            &format!(
                "UPDATE friendships SET status = 'accepted' WHERE user_a = '{}'",
                lo.id
            ),
        )
        .await?;
    assert_eq!(forged, 0);
    let blocked_for_them = app
        .execute_as(
            lo,
            &format!(
                "UPDATE friendships SET status = 'blocked', blocked_by = '{}' WHERE user_a = '{}'",
                hi.id, lo.id
            ),
        )
        .await;
    assert!(blocked_for_them.is_err());
    Ok(())
}

#[tokio::test]
async fn friend_lists_page_by_display_name() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, m) = app.company_with_users("Acme", 4).await?;
    let me = &m[0];
    for friend in &m[1..] {
        befriend(&app, me, friend).await?;
    }
    const PAGE: &str = "query($after: String) {
      friends(first: 2, after: $after) { edges { node { displayName } } pageInfo { hasNextPage endCursor } totalCount }
    }";
    let first = run(&app, me, PAGE, json!({})).await?;
    let page = &first.data()?["friends"];
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let second = run(
        &app,
        me,
        PAGE,
        json!({ "after": page["pageInfo"]["endCursor"] }),
    )
    .await?;
    let rest = &second.data()?["friends"];
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    let names: Vec<Value> = [page, rest]
        .iter()
        .flat_map(|p| p["edges"].as_array().cloned().unwrap_or_default())
        .map(|e| e["node"]["displayName"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("member1"), json!("member2"), json!("member3")]
    );
    let searched = run(
        &app,
        me,
        "{ friends(search: \"member2\") { totalCount } }",
        json!({}),
    )
    .await?;
    assert_eq!(searched.data()?["friends"]["totalCount"], 1);
    let bad = run(&app, me, PAGE, json!({ "after": "garbage" })).await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    Ok(())
}
