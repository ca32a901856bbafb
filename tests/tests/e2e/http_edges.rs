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

/// Reads from `stream` until the server closes it (or `within` passes); what it answered.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt as _;
    let mut answer = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the server kept the connection open"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn a_client_that_dribbles_its_headers_is_cut_off() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let app = TestApp::spawn_with(|c| c.http_header_timeout_secs = 1).await?;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await?;
    // Slowloris: one header line every 200 ms, never the blank line that ends them.
    let dribble = async {
        for i in 0..300 {
            if stream
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        false
    };
    let cut = tokio::time::timeout(std::time::Duration::from_secs(50), dribble)
        .await
        .unwrap_or(false);
    assert!(cut, "the server kept reading headers for a minute");
    Ok(())
}

#[tokio::test]
async fn a_request_whose_body_never_finishes_times_out() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let app = TestApp::spawn_with(|c| c.http_request_timeout_secs = 1).await?;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await?;
    stream
        .write_all(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":",
        )
        .await?;
    let answer = read_until_closed(&mut stream, std::time::Duration::from_secs(30)).await?;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_silent_kept_alive_connection_is_closed() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let app = TestApp::spawn_with(|c| c.http_idle_timeout_secs = 1).await?;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    // The answer comes, then the connection is closed once it has been silent long enough.
    let answer = read_until_closed(&mut stream, std::time::Duration::from_secs(30)).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_nul_character_anywhere_in_the_input_is_bad_user_input_with_its_path()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let update =
        "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName } }";
    for (variables, path) in [
        (
            json!({ "input": { "displayName": "a\u{0}b" } }),
            "input.displayName",
        ),
        (
            json!({ "input": { "attributes": { "plan": ["ok", "x\u{0}"] } } }),
            "input.attributes.plan.1",
        ),
    ] {
        let response = app.graphql(Some(&token), update, variables).await?;
        assert_eq!(
            response.error_code(),
            Some("BAD_USER_INPUT"),
            "{}",
            response.body
        );
        assert_eq!(response.body["errors"][0]["extensions"]["path"], path);
    }
    // In a literal argument of the document too.
    let literal = app
        .graphql(
            Some(&token),
            "mutation { updateProfile(input: {displayName: \"a\\u0000b\"}) { displayName } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        literal.error_code(),
        Some("BAD_USER_INPUT"),
        "{}",
        literal.body
    );
    assert_eq!(
        literal.body["errors"][0]["extensions"]["path"],
        "input.displayName"
    );
    // Nothing was written.
    let me = app
        .graphql(Some(&token), "{ me { displayName } }", json!({}))
        .await?;
    assert_eq!(me.data()?["me"]["displayName"], "admin");
    Ok(())
}

#[tokio::test]
async fn unauthenticated_is_401_whatever_made_it_so() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    // A token whose role is no longer the user's: refused inside the request transaction.
    let stale = members[0].with_role("manager");
    let response = app
        .graphql(Some(&app.token_for(&stale)), "{ me { id } }", json!({}))
        .await?;
    assert_eq!(response.status, 401, "{}", response.body);
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    // No token at all, for a field that needs one.
    let anonymous = app.graphql(None, "{ me { id } }", json!({})).await?;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    // A deactivated user's token.
    app.sql(&format!(
        "UPDATE users SET is_active = false WHERE id = '{}'",
        members[0].id
    ))
    .await?;
    let response = app
        .graphql(
            Some(&app.token_for(&members[0])),
            "{ me { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(response.status, 401, "{}", response.body);
    // A signed-in request that succeeds stays 200.
    let fine = app
        .graphql(Some(&app.token_for(&admin)), "{ me { id } }", json!({}))
        .await?;
    assert_eq!(fine.status, 200);
    Ok(())
}

#[tokio::test]
async fn a_saturated_pool_is_503_with_retry_after_not_401() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_max_connections = 1;
        // Long enough for the server to start on a loaded machine, short for the test.
        c.db_acquire_timeout_ms = 2_000;
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    // Hold the pool's only connection.
    let held = app.request_tx(&admin, server::db::Access::ReadOnly).await?;
    let response = app
        .graphql(Some(&app.token_for(&admin)), "{ me { id } }", json!({}))
        .await?;
    drop(held);
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(
        response.headers.get("retry-after").is_some(),
        "{:?}",
        response.headers
    );
    assert_eq!(response.error_code(), Some("UNAVAILABLE"));
    Ok(())
}

#[tokio::test]
async fn the_acquire_wait_is_paid_once_per_operation_not_per_root_field() -> anyhow::Result<()> {
    // Four root fields that each waited the acquire timeout would take 8 s, past the request
    // timeout (408); waiting once, the operation answers 503 well within it.
    let app = TestApp::spawn_with(|c| {
        c.db_max_connections = 1;
        c.db_acquire_timeout_ms = 2_000;
        c.http_request_timeout_secs = 6;
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    // Let the session be cached, so the only waits are the operation's own.
    app.graphql(Some(&token), "{ me { id } }", json!({}))
        .await?
        .data()?;
    let held = app.request_tx(&admin, server::db::Access::ReadOnly).await?;
    let response = app
        .graphql(
            Some(&token),
            "{ a: me { id } b: company { id } c: me { email } d: company { name } }",
            json!({}),
        )
        .await?;
    drop(held);
    assert_eq!(response.status, 503, "{}", response.body);
    let errors = response.body["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(errors.len(), 4, "{}", response.body);
    assert!(
        errors
            .iter()
            .all(|e| e["extensions"]["code"] == "UNAVAILABLE")
    );
    Ok(())
}
