//! The HTTP edges, closed by default: CORS admits only configured origins, slow or silent
//! connections are cut, bad input is a clear error, and status codes say what happened.

use serde_json::json;
use tests::TestApp;

const PROFILE: &str = "mutation { updateProfile(input: {displayName: \"Pwned\"}) { displayName } }";

async fn preflight(
    app: &TestApp,
    origin: &str,
    headers: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", headers)
        .send()
        .await?)
}

#[tokio::test]
async fn without_cors_origins_no_cross_origin_request_is_allowed() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let port = app.addr.port();
    // Another site, another port of this host, a sibling name of this host.
    for origin in [
        "https://evil.example".to_owned(),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://evil.127.0.0.1.nip.io:{port}"),
    ] {
        let pre = preflight(&app, &origin, "authorization,content-type").await?;
        assert_eq!(pre.status(), 403, "{origin}");
        assert!(pre.headers().get("access-control-allow-origin").is_none());
        let response = app
            .graphql_with(
                &[("origin", origin.as_str())],
                Some(&token),
                PROFILE,
                json!({}),
            )
            .await?;
        assert_eq!(response.status, 403, "{origin}");
    }
    // Nothing ran.
    let me = app
        .graphql(Some(&token), "{ me { displayName } }", json!({}))
        .await?;
    assert_ne!(me.data()?["me"]["displayName"], "Pwned");
    // The server's own origin (GraphiQL) and clients without Origin pass.
    let own = format!("http://{}", app.addr);
    let response = app
        .graphql_with(
            &[("origin", own.as_str())],
            Some(&token),
            "{ me { id } }",
            json!({}),
        )
        .await?;
    assert!(response.data().is_ok());
    Ok(())
}

#[tokio::test]
async fn a_configured_origin_gets_credentials_and_the_common_client_headers() -> anyhow::Result<()>
{
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["https://app.example".into()]).await?;
    let asked = "authorization,content-type,traceparent,tracestate,baggage,sentry-trace,\
                 apollographql-client-name,apollographql-client-version,apollo-require-preflight,\
                 x-csrf-token,x-device-id";
    let pre = preflight(&app, "https://app.example", asked).await?;
    assert_eq!(pre.status(), 200);
    let header = |name: &str| {
        pre.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), "https://app.example");
    assert_eq!(header("access-control-allow-credentials"), "true");
    let allowed = header("access-control-allow-headers");
    for name in asked.split(',') {
        assert!(allowed.contains(name), "{name} not in {allowed}");
    }
    // Another origin is still refused.
    let other = preflight(&app, "https://app.example.evil.example", "content-type").await?;
    assert_eq!(other.status(), 403);
    Ok(())
}

#[tokio::test]
async fn the_allowed_request_headers_are_configurable() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.cors_origins = vec!["https://app.example".into()];
        c.cors_allow_headers = vec!["content-type".into(), "x-custom".into()];
    })
    .await?;
    let ok = preflight(&app, "https://app.example", "content-type,x-custom").await?;
    assert_eq!(ok.status(), 200);
    let refused = preflight(&app, "https://app.example", "traceparent").await?;
    assert_ne!(refused.status(), 200);
    Ok(())
}
