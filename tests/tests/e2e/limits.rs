//! Query limits: depth, complexity, aliases, body size and batch size, each with a clear error
//! naming the limit, and the server keeps serving.

use serde_json::json;
use tests::TestApp;

async fn still_serving(app: &TestApp, token: &str) -> anyhow::Result<()> {
    let response = app.graphql(Some(token), "{ me { id } }", json!({})).await?;
    anyhow::ensure!(
        response.data().is_ok(),
        "server stopped serving: {:?}",
        response.body
    );
    Ok(())
}

#[tokio::test]
async fn an_over_deep_query_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(14),
        "} ".repeat(14)
    );
    let response = app.graphql(Some(&token), &deep, json!({})).await?;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    let message = response.error_message().unwrap_or_default();
    assert!(message.contains("depth limit of 15"), "{message}");
    still_serving(&app, &token).await
}

#[tokio::test]
async fn an_over_complex_query_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let page = "users(first: 100) { edges { cursor node { id email displayName role isActive createdAt } } }";
    let query = format!("{{ a: {page} b: {page} c: {page} }}");
    let response = app.graphql(Some(&token), &query, json!({})).await?;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    let message = response.error_message().unwrap_or_default();
    assert!(message.contains("complexity limit of 2000"), "{message}");
    // A reasonable page is fine.
    let fine = app
        .graphql(Some(&token), &format!("{{ {page} }}"), json!({}))
        .await?;
    assert!(fine.data().is_ok());
    still_serving(&app, &token).await
}

#[tokio::test]
async fn too_many_aliases_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let fields: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
    let response = app
        .graphql(Some(&token), &format!("{{ {fields} }}"), json!({}))
        .await?;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    let message = response.error_message().unwrap_or_default();
    assert!(message.contains("limit of 30"), "{message}");
    let thirty: String = (0..30).map(|i| format!("a{i}: __typename ")).collect();
    assert!(
        app.graphql(Some(&token), &format!("{{ {thirty} }}"), json!({}))
            .await?
            .data()
            .is_ok()
    );
    still_serving(&app, &token).await
}

#[tokio::test]
async fn an_oversized_body_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let padding = " ".repeat(1024 * 1024);
    let body = format!("{{\"query\": \"{{ me {{ id }} }}{padding}\"}}");
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let response = tests::GqlResponse::from_reqwest(response).await?;
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    assert!(
        response
            .error_message()
            .unwrap_or_default()
            .contains("1048576 bytes")
    );
    still_serving(&app, &token).await
}

#[tokio::test]
async fn an_oversized_batch_is_refused_and_a_small_one_runs() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let batch = |n: usize| {
        json!(
            (0..n)
                .map(|_| json!({ "query": "{ me { email } }" }))
                .collect::<Vec<_>>()
        )
    };

    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&batch(11))
        .send()
        .await?;
    let response = tests::GqlResponse::from_reqwest(response).await?;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    assert!(
        response
            .error_message()
            .unwrap_or_default()
            .contains("limit of 10")
    );

    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&batch(3))
        .send()
        .await?;
    let response = tests::GqlResponse::from_reqwest(response).await?;
    let items = response.body.as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|item| item["data"]["me"]["email"] == json!(admin.email))
    );
    still_serving(&app, &token).await
}

#[tokio::test]
async fn limits_are_configurable() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.graphql_max_depth = 2).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let response = app
        .graphql(
            Some(&token),
            "{ users { edges { node { id } } } }",
            json!({}),
        )
        .await?;
    assert!(
        response
            .error_message()
            .unwrap_or_default()
            .contains("depth limit of 2")
    );
    still_serving(&app, &token).await
}
