//! The edges of the GraphQL WebSocket: a socket lives no longer than its credentials, speaks
//! the close codes of `graphql-transport-ws`, and is bounded (message size, subscriptions per
//! socket, sockets per user).

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use tests::{
    TestApp, TestUser,
    ws::{Incoming, WsClient, WsOutcome},
};

const EVENTS: &str = "subscription { friendEvents { kind requestId } }";
/// How long a condition is waited for before a test fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/graphql/ws")
}

fn bearer(token: &str) -> Value {
    json!({ "authorization": format!("Bearer {token}") })
}

/// An acknowledged `graphql-transport-ws` socket authenticated with `token`.
async fn acked(addr: SocketAddr, token: &str) -> anyhow::Result<Box<WsClient>> {
    match WsClient::connect(&url(addr), None, bearer(token)).await? {
        WsOutcome::Acked(client) => Ok(client),
        other => anyhow::bail!("connection was not acknowledged: {other:?}"),
    }
}

/// A token for `user` that expires `secs` seconds from now, and its `exp`.
fn token_expiring_in(app: &TestApp, user: &TestUser, secs: i64) -> (String, i64) {
    let mut claims = app.claims_for(user);
    let exp = chrono::Utc::now().timestamp() + secs;
    claims["exp"] = json!(exp);
    (app.sign(&claims), exp)
}

/// A token for `user` naming another live session of theirs, and that session's id.
async fn token_of_another_session(
    app: &TestApp,
    user: &TestUser,
) -> anyhow::Result<(String, uuid::Uuid)> {
    let session = app.create_session(user.company_id, user.id).await?;
    let mut claims = app.claims_for(user);
    claims["sid"] = json!(session);
    Ok((app.sign(&claims), session))
}

fn friend_event(request_id: uuid::Uuid) -> Value {
    json!({
        "kind": "REQUEST_CANCELLED",
        "request_id": request_id,
        "user_id": uuid::Uuid::nil(),
        "occurred_at": chrono::Utc::now(),
    })
}

/// Publishes warm-up friend events (request id nil) for `user` until subscription `id` of
/// `client` delivers one: a subscription starts asynchronously and nothing acknowledges it,
/// and this also proves the serving instance's pub/sub listener is up. Other messages of the
/// socket must be warm-up events too.
async fn until_live(
    app: &TestApp,
    client: &mut WsClient,
    user: &TestUser,
    id: &str,
) -> anyhow::Result<()> {
    let topic = server::friends::events::topic(user.id);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        app.state()
            .pubsub
            .publish(&topic, &friend_event(uuid::Uuid::nil()))
            .await;
        if let Ok(message) =
            tokio::time::timeout(Duration::from_millis(250), client.next_json()).await
        {
            let message = message?;
            anyhow::ensure!(
                message["type"] == "next"
                    && message["payload"]["data"]["friendEvents"]["requestId"]
                        == json!(uuid::Uuid::nil()),
                "{message}"
            );
            if message["id"] == id {
                return Ok(());
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "subscription {id} never became live"
        );
    }
}

/// Reads until the server closes the socket; fails unless it closes with `code`. Returns the
/// reason and the messages that came before.
async fn closed_with(client: &mut WsClient, code: u16) -> anyhow::Result<(String, Vec<Value>)> {
    let (frame, before) = client.until_closed().await?;
    match frame {
        Some((got, reason)) if got == code => Ok((reason, before)),
        other => anyhow::bail!("expected close code {code}, got {other:?} after {before:?}"),
    }
}

fn error_code(payload: &Value) -> &str {
    payload["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

/// Fails if any message before a close delivered a friend event with `request_id`.
fn never_delivered(before: &[Value], request_id: uuid::Uuid) -> anyhow::Result<()> {
    for message in before {
        anyhow::ensure!(
            message["payload"]["data"]["friendEvents"]["requestId"] != json!(request_id),
            "an event was delivered after the credentials ended: {message}"
        );
    }
    Ok(())
}

// --- A socket lives no longer than its credentials -------------------------------------------

#[tokio::test]
async fn operations_on_a_socket_are_refused_once_its_token_has_expired() -> anyhow::Result<()> {
    // A long leeway keeps the socket open past the token's expiry, so what is refused there is
    // each operation itself.
    let app = TestApp::spawn_with(|c| c.jwt_leeway_secs = 120).await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let (token, exp) = token_expiring_in(&app, ann, 5);
    let mut client = acked(app.addr, &token).await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut n = 0;
    loop {
        n += 1;
        let sent_at = chrono::Utc::now().timestamp_millis();
        let payload = client
            .run(&n.to_string(), "{ me { id } }", json!({}))
            .await?;
        if error_code(&payload) == "UNAUTHENTICATED" {
            break;
        }
        anyhow::ensure!(
            sent_at < exp * 1000,
            "a query sent after the token expired ran: {payload}"
        );
        anyhow::ensure!(payload["data"]["me"]["id"] == json!(ann.id), "{payload}");
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "queries still ran {PATIENCE:?} after the token expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mutation = client
        .run(
            "m",
            "mutation { updateProfile(input: {displayName: \"Too late\"}) { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(error_code(&mutation), "UNAUTHENTICATED", "{mutation}");
    let subscription = client.run("s", EVENTS, json!({})).await?;
    assert_eq!(
        error_code(&subscription),
        "UNAUTHENTICATED",
        "{subscription}"
    );
    Ok(())
}

#[tokio::test]
async fn the_socket_closes_4403_when_its_token_expires_plus_the_leeway() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.jwt_leeway_secs = 1).await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let (token, _) = token_expiring_in(&app, ann, 4);
    let mut client = acked(app.addr, &token).await?;
    client.subscribe("events", EVENTS, json!({})).await?;
    // A live subscription does not keep the socket open.
    let (reason, before) = closed_with(&mut client, 4403).await?;
    assert!(reason.contains("expired"), "{reason}");
    for message in &before {
        assert!(
            message["type"] == "complete"
                || message["payload"]["data"]["friendEvents"]["requestId"]
                    == json!(uuid::Uuid::nil()),
            "{message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires_while_the_socket_waits_out_the_leeway()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.jwt_leeway_secs = 120).await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let (token, exp) = token_expiring_in(&app, ann, 4);
    let mut client = acked(app.addr, &token).await?;
    client.subscribe("events", EVENTS, json!({})).await?;
    until_live(&app, &mut client, ann, "events").await?;
    // The subscription completes at the expiry; the socket stays open (for the leeway).
    loop {
        let message = tokio::time::timeout(PATIENCE, client.next_json()).await??;
        if message["type"] == "complete" {
            assert_eq!(message["id"], "events");
            break;
        }
        assert_eq!(
            message["payload"]["data"]["friendEvents"]["requestId"],
            json!(uuid::Uuid::nil()),
            "{message}"
        );
    }
    assert!(
        chrono::Utc::now().timestamp_millis() >= exp * 1000,
        "the subscription ended before its token expired"
    );
    let refused = client.run("after", "{ me { id } }", json!({})).await?;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED", "{refused}");
    Ok(())
}

#[tokio::test]
async fn logout_closes_every_socket_of_the_session_on_every_instance() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let peer = app.spawn_peer().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let token = app.token_for(ann);
    let mut here = acked(app.addr, &token).await?;
    let mut there = acked(peer.addr, &token).await?;
    here.subscribe("events", EVENTS, json!({})).await?;
    there.subscribe("events", EVENTS, json!({})).await?;
    until_live(&app, &mut here, ann, "events").await?;
    until_live(&app, &mut there, ann, "events").await?;
    let (other_token, _) = token_of_another_session(&app, ann).await?;
    let mut other = acked(peer.addr, &other_token).await?;

    let logout = app
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    // Nothing published after the logout reaches the session's sockets: they are closed.
    let marker = uuid::Uuid::new_v4();
    app.state()
        .pubsub
        .publish(
            &server::friends::events::topic(ann.id),
            &friend_event(marker),
        )
        .await;
    for client in [&mut here, &mut there] {
        let (reason, before) = closed_with(client, 4403).await?;
        assert!(reason.contains("revoked"), "{reason}");
        never_delivered(&before, marker)?;
    }
    // The user's other session is untouched.
    let me = other.run("me", "{ me { id } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["id"], json!(ann.id), "{me}");
    Ok(())
}

#[tokio::test]
async fn revoking_a_session_or_deactivating_the_user_closes_their_sockets() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let peer = app.spawn_peer().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let token = app.token_for(ann);
    let (second_token, second_session) = token_of_another_session(&app, ann).await?;
    let mut first = acked(app.addr, &token).await?;
    let mut second = acked(peer.addr, &second_token).await?;
    // Proves the peer's pub/sub listener is up before anything is announced.
    second.subscribe("events", EVENTS, json!({})).await?;
    until_live(&app, &mut second, ann, "events").await?;

    let revoked = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": second_session }),
        )
        .await?;
    assert_eq!(revoked.data()?["revokeSession"], true);
    let (reason, _) = closed_with(&mut second, 4403).await?;
    assert!(reason.contains("revoked"), "{reason}");
    let me = first.run("me", "{ me { id } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["id"], json!(ann.id), "{me}");

    let deactivated = app
        .graphql(
            Some(&app.token_for(&admin)),
            "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
            json!({ "id": ann.id }),
        )
        .await?;
    assert_eq!(deactivated.data()?["deactivateUser"]["isActive"], false);
    let (reason, _) = closed_with(&mut first, 4403).await?;
    assert!(reason.contains("revoked"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_role_change_closes_every_socket_of_the_user_on_every_instance() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let peer = app.spawn_peer().await?;
    let (_, admin, members) = app.company_with_users("Acme", 2).await?;
    let (ann, bob) = (&members[0], &members[1]);
    let (other_token, _) = token_of_another_session(&app, ann).await?;
    let mut here = acked(app.addr, &app.token_for(ann)).await?;
    let mut there = acked(peer.addr, &other_token).await?;
    there.subscribe("events", EVENTS, json!({})).await?;
    until_live(&app, &mut there, ann, "events").await?;
    let mut bystander = acked(peer.addr, &app.token_for(bob)).await?;

    let changed = app
        .graphql(
            Some(&app.token_for(&admin)),
            "mutation($id: ID!) { updateUser(id: $id, input: {role: \"manager\"}) { role } }",
            json!({ "id": ann.id }),
        )
        .await?;
    assert_eq!(changed.data()?["updateUser"]["role"], "manager");
    for client in [&mut here, &mut there] {
        let (reason, _) = closed_with(client, 4403).await?;
        assert!(reason.contains("role"), "{reason}");
    }
    let me = bystander.run("me", "{ me { id } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["id"], json!(bob.id), "{me}");
    Ok(())
}

// --- The close codes of graphql-transport-ws ---------------------------------------------------

#[tokio::test]
async fn a_socket_without_connection_init_in_time_is_closed_4408() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.ws_connection_init_timeout_secs = 1).await?;
    let mut client = WsClient::open(&url(app.addr), "graphql-transport-ws").await?;
    let (reason, before) = closed_with(&mut client, 4408).await?;
    assert!(before.is_empty(), "{before:?}");
    assert!(reason.contains("timeout"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn subscribe_before_connection_init_is_closed_4401() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let mut client = WsClient::open(&url(app.addr), "graphql-transport-ws").await?;
    client.subscribe("1", "{ __typename }", json!({})).await?;
    closed_with(&mut client, 4401).await?;
    Ok(())
}

#[tokio::test]
async fn an_operation_id_in_flight_cannot_be_reused_4409() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let mut client = acked(app.addr, &app.token_for(&members[0])).await?;
    // An id is free again once its operation completed.
    for _ in 0..2 {
        let me = client.run("q", "{ me { id } }", json!({})).await?;
        assert_eq!(me["data"]["me"]["id"], json!(members[0].id), "{me}");
    }
    client.subscribe("events", EVENTS, json!({})).await?;
    client.subscribe("events", EVENTS, json!({})).await?;
    let (reason, _) = closed_with(&mut client, 4409).await?;
    assert!(reason.contains("events"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn an_invalid_message_is_closed_4400() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    for garbage in [
        "this is not JSON",
        r#"{"type": "no_such_type"}"#,
        r#"{"type": "subscribe", "payload": {"query": "{ __typename }"}}"#,
    ] {
        let WsOutcome::Acked(mut client) =
            WsClient::connect(&url(app.addr), None, json!({})).await?
        else {
            anyhow::bail!("connection was not acknowledged");
        };
        client.send_text(garbage).await?;
        closed_with(&mut client, 4400).await?;
    }
    Ok(())
}

#[tokio::test]
async fn bad_credentials_at_connection_init_are_closed_4403() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let (expired, _) = token_expiring_in(&app, ann, -3600);
    let (revoked, session) = token_of_another_session(&app, ann).await?;
    app.sql(&format!(
        "UPDATE sessions SET revoked_at = now() WHERE id = '{session}'"
    ))
    .await?;
    for token in ["forged.token.here", expired.as_str(), revoked.as_str()] {
        let outcome = WsClient::connect(&url(app.addr), None, bearer(token)).await?;
        assert!(
            matches!(outcome, WsOutcome::Closed(Some(4403))),
            "{token}: {outcome:?}"
        );
    }
    let malformed = WsClient::connect(
        &url(app.addr),
        None,
        json!({ "authorization": "Basic abc" }),
    )
    .await?;
    assert!(
        matches!(malformed, WsOutcome::Closed(Some(4403))),
        "{malformed:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_connection_init_is_closed_4429() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let WsOutcome::Acked(mut client) = WsClient::connect(&url(app.addr), None, json!({})).await?
    else {
        anyhow::bail!("connection was not acknowledged");
    };
    client
        .send(json!({ "type": "connection_init", "payload": {} }))
        .await?;
    closed_with(&mut client, 4429).await?;
    Ok(())
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_still_works() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let mut client = WsClient::open(&url(app.addr), "graphql-ws").await?;
    client
        .send(json!({ "type": "connection_init", "payload": bearer(&app.token_for(ann)) }))
        .await?;
    assert_eq!(client.next_json().await?["type"], "connection_ack");
    client
        .send(json!({ "type": "start", "id": "1", "payload": { "query": "{ me { id } }" } }))
        .await?;
    let data = client.next_json().await?;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["payload"]["data"]["me"]["id"], json!(ann.id), "{data}");
    assert_eq!(client.next_json().await?["type"], "complete");

    // Refused credentials are a `connection_error`, as the legacy protocol has it, and the
    // socket is then closed properly.
    let mut refused = WsClient::open(&url(app.addr), "graphql-ws").await?;
    refused
        .send(json!({ "type": "connection_init", "payload": bearer("forged.token.here") }))
        .await?;
    let error = refused.next_json().await?;
    assert_eq!(error["type"], "connection_error", "{error}");
    let closed = refused.next_incoming().await?;
    assert!(
        matches!(&closed, Incoming::Closed(Some((4403, _)))),
        "{closed:?}"
    );
    Ok(())
}

// --- Limits --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_message_over_max_body_bytes_is_closed_1009() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 16 * 1024).await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let mut client = acked(app.addr, &app.token_for(&members[0])).await?;
    // Under the limit, a padded message is served...
    let padded = format!("{{ me {{ id }} }} # {}", "x".repeat(8 * 1024));
    let me = client.run("1", &padded, json!({})).await?;
    assert_eq!(me["data"]["me"]["id"], json!(members[0].id), "{me}");
    // ...over it, the socket is closed.
    let oversized = format!("{{ me {{ id }} }} # {}", "x".repeat(17 * 1024));
    client.subscribe("2", &oversized, json!({})).await?;
    let (reason, before) = closed_with(&mut client, 1009).await?;
    assert!(before.is_empty(), "{before:?}");
    assert!(reason.contains("MAX_BODY_BYTES"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn subscriptions_over_the_per_socket_limit_get_a_graphql_error() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.ws_max_subscriptions = 2).await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let mut client = acked(app.addr, &app.token_for(ann)).await?;
    client.subscribe("a", EVENTS, json!({})).await?;
    client.subscribe("b", EVENTS, json!({})).await?;
    let over = client.run("c", EVENTS, json!({})).await?;
    assert_eq!(error_code(&over), "BAD_USER_INPUT", "{over}");
    assert!(
        over["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("WS_MAX_SUBSCRIPTIONS")),
        "{over}"
    );
    // Queries and mutations do not count.
    let me = client.run("q", "{ me { id } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["id"], json!(ann.id), "{me}");
    // Completing one makes room for another.
    client.complete("a").await?;
    let completed = client.next_json().await?;
    assert_eq!(
        (&completed["type"], &completed["id"]),
        (&json!("complete"), &json!("a")),
        "{completed}"
    );
    client.subscribe("d", EVENTS, json!({})).await?;
    until_live(&app, &mut client, ann, "d").await?;
    Ok(())
}

#[tokio::test]
async fn sockets_over_the_per_user_limit_are_closed_1008() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.ws_max_sockets_per_user = 2).await?;
    let (_, _, members) = app.company_with_users("Acme", 2).await?;
    let (ann, bob) = (&members[0], &members[1]);
    let token = app.token_for(ann);
    let first = acked(app.addr, &token).await?;
    let _second = acked(app.addr, &token).await?;
    let third = WsClient::connect(&url(app.addr), None, bearer(&token)).await?;
    assert!(matches!(third, WsOutcome::Closed(Some(1008))), "{third:?}");
    // Anonymous sockets and other users are not affected.
    let _bob = acked(app.addr, &app.token_for(bob)).await?;
    let anonymous = WsClient::connect(&url(app.addr), None, json!({})).await?;
    assert!(matches!(anonymous, WsOutcome::Acked(_)), "{anonymous:?}");
    // A closed socket gives its place back (once the server has seen it close).
    first.close().await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match WsClient::connect(&url(app.addr), None, bearer(&token)).await? {
            WsOutcome::Acked(_) => break,
            WsOutcome::Closed(Some(1008)) => {}
            other => anyhow::bail!("unexpected outcome {other:?}"),
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "a closed socket never gave its place back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

// --- Shutdown -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_draining_instance_closes_every_socket_with_1001() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let peer = app.spawn_peer().await?;
    let mut signed_in = acked(peer.addr, &app.token_for(&admin)).await?;
    signed_in.subscribe("events", EVENTS, json!({})).await?;
    let mut other = acked(peer.addr, &app.token_for(&members[0])).await?;
    // Sockets of instances that keep running are not concerned.
    let mut elsewhere = acked(app.addr, &app.token_for(&members[0])).await?;
    peer.begin_drain();
    for client in [&mut signed_in, &mut other] {
        closed_with(client, 1001).await?;
    }
    let me = elsewhere.run("me", "{ me { id } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["id"], json!(members[0].id), "{me}");
    peer.shutdown().await?;
    Ok(())
}
