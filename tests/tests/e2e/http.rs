//! GraphQL over HTTP: media types, status codes, GET for queries only, and CSRF hardening.

use serde_json::json;
use tests::{GqlResponse, TestApp};

#[tokio::test]
async fn get_runs_queries() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ me { email } }")])
        .bearer_auth(app.token_for(&admin))
        .send()
        .await?;
    let response = GqlResponse::from_reqwest(response).await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.data()?["me"]["email"], json!(admin.email));
    Ok(())
}

#[tokio::test]
async fn mutations_over_get_are_method_not_allowed() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    for query in [
        "mutation { logout }",
        "subscription { events }",
        "query Q { me { id } } mutation M { x }",
    ] {
        let mut request = app
            .client
            .get(app.url("/graphql"))
            .query(&[("query", query)]);
        if query.contains("mutation M") {
            request = request.query(&[("operationName", "M")]);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 405, "{query}");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some("POST")
        );
        let response = GqlResponse::from_reqwest(response).await?;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    }
    Ok(())
}

#[tokio::test]
async fn simple_cross_site_content_types_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let body = json!({ "query": "{ me { id } }" }).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ] {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(app.token_for(&admin))
            .body(body.clone());
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = GqlResponse::from_reqwest(request.send().await?).await?;
        assert_eq!(response.status, 415, "{content_type}");
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    }
    let ok = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.token_for(&admin))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await?;
    assert_eq!(ok.status(), 200);
    Ok(())
}

#[tokio::test]
async fn graphql_response_json_is_negotiated_with_spec_status_codes() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let post = |accept: &'static str, query: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("accept", accept)
            .json(&json!({ "query": query }))
            .send()
    };

    let ok = GqlResponse::from_reqwest(
        post("application/graphql-response+json", "{ me { id } }").await?,
    )
    .await?;
    assert_eq!(ok.status, 200);
    assert!(
        ok.content_type
            .starts_with("application/graphql-response+json"),
        "{}",
        ok.content_type
    );

    // A request error (here: a syntax error) has no `data` entry: 400 with the new media type,
    // 200 with application/json.
    let bad =
        GqlResponse::from_reqwest(post("application/graphql-response+json", "{ me { id }").await?)
            .await?;
    assert_eq!(bad.status, 400);
    assert!(bad.body.get("data").is_none());
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));

    let legacy = GqlResponse::from_reqwest(post("application/json", "{ nope }").await?).await?;
    assert_eq!(legacy.status, 200);
    assert!(legacy.content_type.starts_with("application/json"));
    assert_eq!(legacy.error_code(), Some("BAD_USER_INPUT"));
    Ok(())
}

#[tokio::test]
async fn a_body_that_is_not_a_graphql_request_is_bad_request() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{\"nope\": ")
        .send()
        .await?;
    let response = GqlResponse::from_reqwest(response).await?;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    Ok(())
}

#[tokio::test]
async fn responses_carry_a_request_id() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let given = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await?;
    assert_eq!(
        given
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
    let generated = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await?;
    let id = generated
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(id.len(), 36, "{id}");
    Ok(())
}

#[tokio::test]
async fn graphiql_is_served_at_the_root() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let response = app.client.get(app.url("/")).send().await?;
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await?;
    assert!(page.to_lowercase().contains("graphiql"));
    assert!(page.contains("/graphql/ws"));
    Ok(())
}
