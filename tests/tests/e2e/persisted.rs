//! Automatic persisted queries (Apollo's protocol, the cache in Redis shared by every instance),
//! trusted documents (`TRUSTED_DOCUMENTS_FILE`, `TRUSTED_DOCUMENTS=only`), and bodies that are
//! not GraphQL requests.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tests::{
    GqlResponse, TestApp,
    ws::{WsClient, WsOutcome},
};
use uuid::Uuid;

const ME: &str = "query Me { me { email } }";
const PROFILE: &str =
    "mutation P { updateProfile(input: {displayName: \"Via GET\"}) { displayName } }";

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post(
    app_url: &str,
    client: &reqwest::Client,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<GqlResponse> {
    let mut request = client.post(format!("{app_url}/graphql")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    GqlResponse::from_reqwest(request.send().await?).await
}

async fn get(app: &TestApp, token: &str, params: &[(&str, String)]) -> anyhow::Result<GqlResponse> {
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(params)
        .bearer_auth(token)
        .send()
        .await?;
    GqlResponse::from_reqwest(response).await
}

#[tokio::test]
async fn a_hash_is_registered_once_then_runs_alone_on_every_instance() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let url = format!("http://{}", app.addr);
    // A document nobody registered: the client is told to send it.
    let query = format!("{ME} # {}", Uuid::new_v4());
    let hash = sha256(&query);
    let only_hash = json!({ "extensions": persisted(&hash) });
    let unknown = post(&url, &app.client, Some(&token), &only_hash).await?;
    assert_eq!(unknown.status, 200, "{:?}", unknown.body);
    assert_eq!(unknown.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));
    assert_eq!(unknown.error_message(), Some("PersistedQueryNotFound"));
    assert!(unknown.body.get("data").is_none());

    // A hash that is not the query's is refused, and registers nothing.
    let other = format!("{ME} # {}", Uuid::new_v4());
    let mismatch = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "query": other, "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(mismatch.status, 400, "{:?}", mismatch.body);
    assert_eq!(mismatch.error_code(), Some("BAD_REQUEST"));
    assert!(
        mismatch
            .error_message()
            .is_some_and(|m| m.contains("sha256"))
    );
    let still_unknown = post(&url, &app.client, Some(&token), &only_hash).await?;
    assert_eq!(
        still_unknown.error_code(),
        Some("PERSISTED_QUERY_NOT_FOUND")
    );

    // The query with its hash runs and registers it.
    let register = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "query": query, "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(register.data()?["me"]["email"], json!(admin.email));
    // From then on the hash alone runs it, here, over GET, and on another instance.
    let again = post(&url, &app.client, Some(&token), &only_hash).await?;
    assert_eq!(again.data()?["me"]["email"], json!(admin.email));
    let over_get = get(
        &app,
        &token,
        &[("extensions", persisted(&hash).to_string())],
    )
    .await?;
    assert_eq!(over_get.data()?["me"]["email"], json!(admin.email));
    let peer = app.spawn_peer().await?;
    let peer_url = format!("http://{}", peer.addr);
    let there = post(&peer_url, &app.client, Some(&token), &only_hash).await?;
    assert_eq!(there.data()?["me"]["email"], json!(admin.email));

    // A malformed extension is a clear error.
    let bad = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }),
    )
    .await?;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), Some("BAD_REQUEST"));
    Ok(())
}

#[tokio::test]
async fn a_persisted_mutation_is_still_refused_over_get() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let url = format!("http://{}", app.addr);
    let hash = sha256(PROFILE);
    // Registered over POST (where mutations belong)...
    let registered = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "query": PROFILE, "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(
        registered.data()?["updateProfile"]["displayName"],
        "Via GET"
    );
    app.graphql(
        Some(&token),
        "mutation { updateProfile(input: {displayName: \"Before\"}) { displayName } }",
        json!({}),
    )
    .await?
    .data()?;
    // ...its hash over GET is the mutation it names: 405, and nothing ran.
    let over_get = get(
        &app,
        &token,
        &[("extensions", persisted(&hash).to_string())],
    )
    .await?;
    assert_eq!(over_get.status, 405, "{:?}", over_get.body);
    let me = app
        .graphql(Some(&token), "{ me { displayName } }", json!({}))
        .await?;
    assert_eq!(me.data()?["me"]["displayName"], "Before");
    Ok(())
}

#[tokio::test]
async fn documents_over_the_size_limit_are_not_registered() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.persisted_query_max_bytes = 64).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let url = format!("http://{}", app.addr);
    let query = format!("{ME} # {}", "x".repeat(64));
    let hash = sha256(&query);
    let full = json!({ "query": query, "extensions": persisted(&hash) });
    assert!(
        post(&url, &app.client, Some(&token), &full)
            .await?
            .data()
            .is_ok()
    );
    let only_hash = json!({ "extensions": persisted(&hash) });
    let response = post(&url, &app.client, Some(&token), &only_hash).await?;
    assert_eq!(response.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));
    Ok(())
}

#[tokio::test]
async fn without_redis_every_hash_is_unknown_and_full_queries_still_run() -> anyhow::Result<()> {
    let mut app = TestApp::spawn_with_own_redis().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let url = format!("http://{}", app.addr);
    let hash = sha256(ME);
    let full = json!({ "query": ME, "extensions": persisted(&hash) });
    assert!(
        post(&url, &app.client, Some(&token), &full)
            .await?
            .data()
            .is_ok()
    );
    if let Some(redis) = app.own_redis.as_mut() {
        redis.stop();
    }
    let only_hash = json!({ "extensions": persisted(&hash) });
    let response = post(&url, &app.client, Some(&token), &only_hash).await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));
    // The client's retry with the query runs.
    let retry = post(&url, &app.client, Some(&token), &full).await?;
    assert_eq!(retry.data()?["me"]["email"], json!(admin.email));
    Ok(())
}

#[tokio::test]
async fn persisted_queries_run_over_the_websocket() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let ws_url = format!("ws://{}/graphql/ws", app.addr);
    let payload = json!({ "authorization": format!("Bearer {}", app.token_for(&admin)) });
    let WsOutcome::Acked(mut client) = WsClient::connect(&ws_url, None, payload).await? else {
        anyhow::bail!("connection was not acknowledged");
    };
    let query = format!("{ME} # {}", Uuid::new_v4());
    let hash = sha256(&query);
    let subscribe =
        |id: &str, payload: Value| json!({ "id": id, "type": "subscribe", "payload": payload });
    client
        .send(subscribe("1", json!({ "extensions": persisted(&hash) })))
        .await?;
    let unknown = client.next_json().await?;
    assert_eq!(unknown["type"], "next", "{unknown}");
    assert_eq!(
        unknown["payload"]["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    assert_eq!(client.next_json().await?["type"], "complete");
    // The id is free again: the retry with the query may use it.
    client
        .send(subscribe(
            "1",
            json!({ "query": query, "extensions": persisted(&hash) }),
        ))
        .await?;
    let ran = client.next_json().await?;
    assert_eq!(
        ran["payload"]["data"]["me"]["email"],
        json!(admin.email),
        "{ran}"
    );
    assert_eq!(client.next_json().await?["type"], "complete");
    client
        .send(subscribe("2", json!({ "extensions": persisted(&hash) })))
        .await?;
    let by_hash = client.next_json().await?;
    assert_eq!(
        by_hash["payload"]["data"]["me"]["email"],
        json!(admin.email),
        "{by_hash}"
    );
    Ok(())
}

fn manifest_file(entries: &Value) -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("trusted-{}.json", Uuid::new_v4()));
    std::fs::write(&path, entries.to_string())?;
    Ok(path)
}

const COMPANY: &str = "query Company { company { name } }";
const WRONG_SHA1: &str = "d6d0a5cf98ba69da4bd3a4c7e7e1e1a5e0cf0f0e";

#[tokio::test]
async fn with_trusted_documents_only_only_the_manifest_runs() -> anyhow::Result<()> {
    // graphql-codegen's client preset (sha256 ids) and Relay's (md5 ids).
    let md5_id = md5_hex(COMPANY);
    let path = manifest_file(&json!({ sha256(ME): ME, md5_id.clone(): COMPANY }))?;
    let app = TestApp::spawn_with(|c| {
        c.trusted_documents_file = Some(path.clone());
        c.trusted_documents = Some("only".into());
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let url = format!("http://{}", app.addr);
    // By documentId (either manifest), by Apollo's hash, or the trusted text in full.
    let by_id = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "documentId": sha256(ME) }),
    )
    .await?;
    assert_eq!(by_id.data()?["me"]["email"], json!(admin.email));
    let relay = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "documentId": md5_id }),
    )
    .await?;
    assert_eq!(relay.data()?["company"]["name"], "Acme");
    let apollo = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "extensions": persisted(&sha256(ME)) }),
    )
    .await?;
    assert_eq!(apollo.data()?["me"]["email"], json!(admin.email));
    let in_full = app.graphql(Some(&token), ME, json!({})).await?;
    assert_eq!(in_full.data()?["me"]["email"], json!(admin.email));
    let over_get = get(&app, &token, &[("documentId", sha256(ME))]).await?;
    assert_eq!(over_get.data()?["me"]["email"], json!(admin.email));

    // Anything else is refused before it is parsed (even a syntax error is not looked at),
    // and cannot be registered.
    for body in [
        json!({ "query": "{ me { id } }" }),
        json!({ "query": "{ this is not graphql" }),
        json!({ "documentId": "0".repeat(64) }),
        json!({ "query": "{ me { id } }", "extensions": persisted(&sha256("{ me { id } }")) }),
    ] {
        let refused = post(&url, &app.client, Some(&token), &body).await?;
        assert_eq!(refused.status, 400, "{body}: {:?}", refused.body);
        assert_eq!(
            refused.error_code(),
            Some("PERSISTED_QUERY_NOT_IN_LIST"),
            "{body}"
        );
    }
    let registered = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "extensions": persisted(&sha256("{ me { id } }")) }),
    )
    .await?;
    assert_eq!(registered.error_code(), Some("PERSISTED_QUERY_NOT_IN_LIST"));

    // The WebSocket applies the same list.
    let ws_url = format!("ws://{}/graphql/ws", app.addr);
    let payload = json!({ "authorization": format!("Bearer {token}") });
    let WsOutcome::Acked(mut client) = WsClient::connect(&ws_url, None, payload).await? else {
        anyhow::bail!("connection was not acknowledged");
    };
    let refused = client.run("1", "{ me { id } }", json!({})).await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_IN_LIST"
    );
    let trusted = client.run("2", ME, json!({})).await?;
    assert_eq!(trusted["data"]["me"]["email"], json!(admin.email));
    client
        .send(json!({ "id": "3", "type": "subscribe", "payload": { "extensions": { "documentId": sha256(ME) } } }))
        .await?;
    let by_id = client.next_json().await?;
    assert_eq!(
        by_id["payload"]["data"]["me"]["email"],
        json!(admin.email),
        "{by_id}"
    );
    let _ = std::fs::remove_file(path);
    Ok(())
}

#[tokio::test]
async fn with_a_manifest_allowed_other_documents_run_too() -> anyhow::Result<()> {
    let path = manifest_file(&json!({ sha256(ME): ME }))?;
    let app = TestApp::spawn_with(|c| c.trusted_documents_file = Some(path.clone())).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let url = format!("http://{}", app.addr);
    let by_id = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "documentId": sha256(ME) }),
    )
    .await?;
    assert_eq!(by_id.data()?["me"]["email"], json!(admin.email));
    let other = app
        .graphql(Some(&token), "{ company { name } }", json!({}))
        .await?;
    assert_eq!(other.data()?["company"]["name"], "Acme");
    let unknown = post(
        &url,
        &app.client,
        Some(&token),
        &json!({ "documentId": "f".repeat(64) }),
    )
    .await?;
    assert_eq!(unknown.error_code(), Some("PERSISTED_QUERY_NOT_FOUND"));
    let _ = std::fs::remove_file(path);
    Ok(())
}

#[tokio::test]
async fn a_bad_manifest_stops_the_start_with_a_clear_error() -> anyhow::Result<()> {
    let missing = std::env::temp_dir().join(format!("missing-{}.json", Uuid::new_v4()));
    let wrong_hash = manifest_file(&json!({ WRONG_SHA1: COMPANY }))?;
    let not_an_object = manifest_file(&json!([ME]))?;
    let valid = manifest_file(&json!({ sha256(ME): ME }))?;
    let cases = [
        (Some(missing), None, "cannot read the manifest"),
        (
            Some(wrong_hash.clone()),
            None,
            "is not the hash of its document",
        ),
        (Some(not_an_object.clone()), None, "not a JSON object"),
        (None, Some("only"), "needs TRUSTED_DOCUMENTS_FILE"),
        (
            Some(valid.clone()),
            Some("sometimes"),
            "use only, allow or off",
        ),
    ];
    for (file, mode, expected) in cases {
        let started = TestApp::spawn_with(|c| {
            c.trusted_documents_file = file.clone();
            c.trusted_documents = mode.map(str::to_owned);
        })
        .await;
        let Err(error) = started else {
            anyhow::bail!("the server started with {file:?} / {mode:?}");
        };
        let error = format!("{error:#}");
        assert!(error.contains(expected), "{expected}: {error}");
    }
    let _ = std::fs::remove_file(wrong_hash);
    let _ = std::fs::remove_file(not_an_object);
    let _ = std::fs::remove_file(valid);
    Ok(())
}

fn md5_hex(text: &str) -> String {
    hex::encode(<md5::Md5 as md5::Digest>::digest(text.as_bytes()))
}

#[tokio::test]
async fn a_json_body_that_is_not_a_graphql_request_is_400() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let url = format!("http://{}", app.addr);
    for body in [
        json!({ "foo": 1 }),
        json!([]),
        json!("x"),
        json!(1),
        json!(null),
        json!({ "query": 1 }),
        json!([{ "query": "{ __typename }" }, { "foo": 1 }]),
        json!({ "documentId": 7 }),
    ] {
        for accept in ["application/json", "application/graphql-response+json"] {
            let response = app
                .client
                .post(format!("{url}/graphql"))
                .header("accept", accept)
                .json(&body)
                .send()
                .await?;
            let response = GqlResponse::from_reqwest(response).await?;
            assert_eq!(
                response.status, 400,
                "{body} ({accept}): {:?}",
                response.body
            );
            assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{body}");
            assert!(
                response
                    .error_message()
                    .is_some_and(|m| m.contains("not a GraphQL request") || m.contains("empty")),
                "{body}: {:?}",
                response.body
            );
        }
    }
    // GET without a query says so too.
    let response = app
        .client
        .get(format!("{url}/graphql?foo=1"))
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    Ok(())
}
