//! With Redis stopped, sign-in still works (the rate limiter falls back to memory) and
//! revocations are still honoured (PostgreSQL is the source of truth).

use serde_json::json;
use tests::TestApp;

#[tokio::test]
async fn login_works_and_revocation_holds_while_redis_is_down() -> anyhow::Result<()> {
    let mut app = TestApp::spawn_with_own_redis().await?;
    let payload = app
        .sign_up("Acme", "ann@acme.example", "correct horse battery")
        .await?;
    let first_access = payload["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Cache the session as active while Redis is up.
    assert!(
        app.graphql(Some(&first_access), "{ me { id } }", json!({}))
            .await?
            .data()
            .is_ok()
    );

    if let Some(redis) = app.own_redis.as_mut() {
        redis.stop();
    }
    let login = app
        .login("ann@acme.example", "correct horse battery")
        .await?;
    let access = login.data()?["login"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        app.graphql(Some(&access), "{ me { id } }", json!({}))
            .await?
            .data()
            .is_ok()
    );

    let logout = app
        .graphql(Some(&first_access), "mutation { logout }", json!({}))
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    let after = app
        .graphql(Some(&first_access), "{ me { id } }", json!({}))
        .await?;
    assert_eq!(after.error_code(), Some("UNAUTHENTICATED"));
    Ok(())
}
