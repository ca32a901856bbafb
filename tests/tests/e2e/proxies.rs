//! Behind a proxy (`TRUSTED_PROXIES`): per-IP limits and the sessions' recorded address take
//! the client the trusted proxy names, the rightmost address it did not append itself; a
//! peer that is not trusted is the client whatever it forwards.

use ipnet::IpNet;
use serde_json::json;
use server::config::ForwardedHeader;
use tests::{GqlResponse, TestApp};

const RESET: &str = "mutation($email: String!) { requestPasswordReset(email: $email) }";

/// `requestPasswordReset` (limited per client IP) with `headers`; every call names another
/// address, so only the per-IP limit counts.
async fn reset(app: &TestApp, headers: &[(&str, &str)]) -> anyhow::Result<GqlResponse> {
    let email = format!("{}@nowhere.example", uuid::Uuid::new_v4().simple());
    app.graphql_with(headers, None, RESET, json!({ "email": email }))
        .await
}

fn limited(response: &GqlResponse) -> bool {
    response.error_code() == Some("RATE_LIMITED")
}

fn allowed(response: &GqlResponse) -> bool {
    response.body["data"]["requestPasswordReset"] == json!(true)
}

#[tokio::test]
async fn behind_a_trusted_proxy_limits_count_the_forwarded_client() -> anyhow::Result<()> {
    // The tests' requests come from 127.0.0.1: here that is the load balancer.
    let loopback: IpNet = "127.0.0.0/8".parse()?;
    let app = TestApp::spawn_with(|config| {
        config.trusted_proxies = vec![loopback];
        config.rate_limit_reset_per_ip = 1;
    })
    .await?;
    let xff = "x-forwarded-for";
    let first = reset(&app, &[(xff, "203.0.113.1")]).await?;
    assert!(allowed(&first), "{:?}", first.body);
    // The same client again, even with a forged address in front of what the proxy appended.
    let again = reset(&app, &[(xff, "203.0.113.1")]).await?;
    assert!(limited(&again), "{:?}", again.body);
    let forged = reset(&app, &[(xff, "198.51.100.99, 203.0.113.1")]).await?;
    assert!(limited(&forged), "{:?}", forged.body);
    // Another client behind the same proxy has a limit of its own.
    let other = reset(&app, &[(xff, "203.0.113.2")]).await?;
    assert!(allowed(&other), "{:?}", other.body);
    // Two proxies in a row, both trusted: the client is the address the outer one appended.
    let chained = reset(&app, &[(xff, "203.0.113.3, 127.0.0.9")]).await?;
    assert!(allowed(&chained), "{:?}", chained.body);
    // Without a header, or with one that cannot be read, the client is the proxy itself.
    let direct = reset(&app, &[]).await?;
    assert!(allowed(&direct), "{:?}", direct.body);
    let garbled = reset(&app, &[(xff, "203.0.113.4, not-an-address")]).await?;
    assert!(limited(&garbled), "{:?}", garbled.body);
    Ok(())
}

#[tokio::test]
async fn an_untrusted_peer_is_the_client_whatever_it_forwards() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|config| config.rate_limit_reset_per_ip = 1).await?;
    assert!(
        app.config.trusted_proxies.is_empty(),
        "trusts none by default"
    );
    let first = reset(&app, &[("x-forwarded-for", "203.0.113.1")]).await?;
    assert!(allowed(&first), "{:?}", first.body);
    let other = reset(&app, &[("x-forwarded-for", "203.0.113.2")]).await?;
    assert!(limited(&other), "{:?}", other.body);
    let forwarded = reset(&app, &[("forwarded", "for=203.0.113.3")]).await?;
    assert!(limited(&forwarded), "{:?}", forwarded.body);
    Ok(())
}

/// The address a session was signed in from, as stored.
async fn session_ip(app: &TestApp, email: &str) -> anyhow::Result<Option<String>> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT s.ip FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1",
            [email.into()],
        ))
        .await?;
    Ok(row.and_then(|row| row.try_get::<Option<String>>("", "ip").ok().flatten()))
}

#[tokio::test]
async fn with_forwarded_configured_sessions_record_its_client() -> anyhow::Result<()> {
    let proxy: IpNet = "127.0.0.1/32".parse()?;
    let app = TestApp::spawn_with(|config| {
        config.trusted_proxies = vec![proxy];
        config.trusted_proxy_header = ForwardedHeader::Forwarded;
    })
    .await?;
    let sign_up = "mutation($email: String!) { signUp(input: {companyName: \"Proxied\", \
                   email: $email, password: \"correct horse battery\", displayName: \"P\"}) \
                   { accessToken } }";
    let headers = [
        (
            "forwarded",
            r#"for="[2001:db8::17]:4711";proto=https, for=127.0.0.1"#,
        ),
        // Only the configured header counts: a proxy passes the other on untouched.
        ("x-forwarded-for", "198.51.100.7"),
    ];
    let signed_up = app
        .graphql_with(
            &headers,
            None,
            sign_up,
            json!({ "email": "fwd@proxied.example" }),
        )
        .await?;
    signed_up.data()?;
    assert_eq!(
        session_ip(&app, "fwd@proxied.example").await?.as_deref(),
        Some("2001:db8::17")
    );
    Ok(())
}
