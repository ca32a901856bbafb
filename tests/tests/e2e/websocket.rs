//! GraphQL over WebSocket: authentication in `connection_init`, the `Origin` check.

use serde_json::json;
use tests::{
    TestApp,
    ws::{WsClient, WsOutcome},
};

#[tokio::test]
async fn operations_over_the_socket_run_as_the_connection_init_user() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let url = format!("ws://{}/graphql/ws", app.addr);
    let payload = json!({ "authorization": format!("Bearer {}", app.token_for(&admin)) });
    let WsOutcome::Acked(mut client) = WsClient::connect(&url, None, payload).await? else {
        anyhow::bail!("connection was not acknowledged");
    };
    client
        .subscribe("1", "{ me { email } company { name } }", json!({}))
        .await?;
    let next = client.next_json().await?;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["payload"]["data"]["me"]["email"], json!(admin.email));
    assert_eq!(next["payload"]["data"]["company"]["name"], "Acme");
    let complete = client.next_json().await?;
    assert_eq!(complete["type"], "complete");
    Ok(())
}

#[tokio::test]
async fn an_anonymous_socket_cannot_read_data() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let url = format!("ws://{}/graphql/ws", app.addr);
    let WsOutcome::Acked(mut client) = WsClient::connect(&url, None, json!({})).await? else {
        anyhow::bail!("connection was not acknowledged");
    };
    client.subscribe("1", "{ me { email } }", json!({})).await?;
    let next = client.next_json().await?;
    assert_eq!(
        next["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{next}"
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_token_in_connection_init_closes_the_socket() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let url = format!("ws://{}/graphql/ws", app.addr);
    let outcome = WsClient::connect(
        &url,
        None,
        json!({ "authorization": "Bearer forged.token.here" }),
    )
    .await?;
    // Closed with 4403 (Forbidden) and the reason; the socket is never acknowledged.
    assert!(
        matches!(outcome, WsOutcome::Closed(Some(4403))),
        "{outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_a_configured_one_allowed() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["https://app.example".into()]).await?;
    let url = format!("ws://{}/graphql/ws", app.addr);
    let refused = WsClient::connect(&url, Some("https://evil.example"), json!({})).await?;
    assert!(matches!(refused, WsOutcome::Refused(403)), "{refused:?}");
    let allowed = WsClient::connect(&url, Some("https://app.example"), json!({})).await?;
    assert!(matches!(allowed, WsOutcome::Acked(_)), "{allowed:?}");
    let same_origin =
        WsClient::connect(&url, Some(&format!("http://{}", app.addr)), json!({})).await?;
    assert!(
        matches!(same_origin, WsOutcome::Acked(_)),
        "{same_origin:?}"
    );
    Ok(())
}
