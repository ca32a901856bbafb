//! GraphQL over Server-Sent Events (graphql-sse, distinct connections): every operation as an
//! event stream of `next` results and a `complete`, authenticated as HTTP requests are, and
//! ended when the caller's credentials end. Read with a real HTTP client streaming the body,
//! parsed by `eventsource-stream` as a browser's `EventSource` would parse it.

use std::{net::SocketAddr, pin::Pin, time::Duration};

use eventsource_stream::Eventsource as _;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tests::{GqlResponse, TestApp, TestUser, fake_llm::FakeLlm};

use super::chat_support::{EVENTS, chat_app, create_conversation, member, send_ok};

/// How long a condition is waited for before a test fails.
const PATIENCE: Duration = Duration::from_secs(30);
const FRIEND_EVENTS: &str = "subscription { friendEvents { kind requestId } }";

type Events = Pin<Box<dyn Stream<Item = anyhow::Result<(String, Value)>> + Send>>;

/// An open event stream.
struct EventStream {
    content_type: String,
    events: Events,
}

/// What a request for an event stream got: the stream, or an ordinary JSON response.
enum Opened {
    Stream(EventStream),
    Refused(GqlResponse),
}

impl Opened {
    fn stream(self) -> anyhow::Result<EventStream> {
        match self {
            Self::Stream(stream) => Ok(stream),
            Self::Refused(response) => {
                anyhow::bail!("refused with {}: {}", response.status, response.body)
            }
        }
    }

    fn refused(self) -> anyhow::Result<GqlResponse> {
        match self {
            Self::Refused(response) => Ok(response),
            Self::Stream(stream) => {
                anyhow::bail!("got an event stream ({})", stream.content_type)
            }
        }
    }
}

/// Sends `request` (its own client: no overall timeout while the body streams).
async fn open(request: reqwest::RequestBuilder) -> anyhow::Result<Opened> {
    let response = request.send().await?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if response.status() != reqwest::StatusCode::OK
        || !content_type.starts_with("text/event-stream")
    {
        return Ok(Opened::Refused(GqlResponse::from_reqwest(response).await?));
    }
    let events = response.bytes_stream().eventsource().map(|event| {
        let event = event.map_err(|e| anyhow::anyhow!("event stream: {e}"))?;
        let data = if event.data.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&event.data)
                .map_err(|e| anyhow::anyhow!("`data` is not JSON ({e}): {}", event.data))?
        };
        Ok((event.event, data))
    });
    Ok(Opened::Stream(EventStream {
        content_type,
        events: Box::pin(events),
    }))
}

impl EventStream {
    /// The next event (its type and data), or `None` at the end of the body.
    async fn next(&mut self) -> anyhow::Result<Option<(String, Value)>> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(Some(event)) => event.map(Some),
            Ok(None) => Ok(None),
            Err(_) => anyhow::bail!("no event within {PATIENCE:?}"),
        }
    }

    /// The data of the next event, which must be a `next`.
    async fn next_result(&mut self) -> anyhow::Result<Value> {
        match self.next().await? {
            Some((event, data)) if event == "next" => Ok(data),
            other => anyhow::bail!("expected a `next` event, got {other:?}"),
        }
    }

    /// Reads to the end of the body, which must be `complete` then nothing: the `next`
    /// results before it.
    async fn until_complete(&mut self) -> anyhow::Result<Vec<Value>> {
        let mut results = Vec::new();
        loop {
            match self.next().await? {
                Some((event, data)) if event == "next" => results.push(data),
                Some((event, _)) if event == "complete" => break,
                other => anyhow::bail!("unexpected {other:?} after {results:?}"),
            }
        }
        anyhow::ensure!(
            self.next().await?.is_none(),
            "the body goes on after `complete`"
        );
        Ok(results)
    }
}

fn stream_post(addr: SocketAddr, path: &str, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("accept", "text/event-stream")
        .json(body)
}

fn code(result: &Value) -> &str {
    result["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
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

/// Publishes warm-up friend events (request id nil) for `user` until the stream delivers one:
/// nothing acknowledges that a subscription listens, and this also proves that the serving
/// instance's pub/sub listener is up.
async fn until_live(
    app: &TestApp,
    stream: &mut EventStream,
    user: uuid::Uuid,
) -> anyhow::Result<()> {
    let topic = server::friends::events::topic(user);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        app.state()
            .pubsub
            .publish(&topic, &friend_event(uuid::Uuid::nil()))
            .await;
        if let Ok(event) =
            tokio::time::timeout(Duration::from_millis(250), stream.events.next()).await
        {
            let (event, data) = event.ok_or_else(|| anyhow::anyhow!("the stream ended"))??;
            anyhow::ensure!(
                event == "next"
                    && data["data"]["friendEvents"]["requestId"] == json!(uuid::Uuid::nil()),
                "{event}: {data}"
            );
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the subscription never became live"
        );
    }
}

/// Reads to the end: warm-up events, then one `next` whose error says why the stream ended,
/// then `complete`. Returns that error.
async fn ended_with_error(stream: &mut EventStream) -> anyhow::Result<Value> {
    let mut results = stream.until_complete().await?;
    let last = results
        .pop()
        .ok_or_else(|| anyhow::anyhow!("`complete` without a last `next`"))?;
    for result in results {
        anyhow::ensure!(
            result["data"]["friendEvents"]["requestId"] == json!(uuid::Uuid::nil()),
            "an event was delivered after the credentials ended: {result}"
        );
    }
    anyhow::ensure!(last["data"].is_null(), "{last}");
    Ok(last["errors"][0].clone())
}

#[tokio::test]
async fn queries_and_mutations_stream_one_result_then_complete() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let ann = &members[0];
    let token = app.token_for(ann);

    let mut stream = open(
        stream_post(
            app.addr,
            "/graphql/stream",
            &json!({ "query": "{ me { id email } }" }),
        )
        .bearer_auth(&token),
    )
    .await?
    .stream()?;
    assert_eq!(stream.content_type, "text/event-stream");
    let results = stream.until_complete().await?;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["data"]["me"]["id"], json!(ann.id));
    assert_eq!(results[0]["data"]["me"]["email"], json!(ann.email));

    // GET with the parameters in the query string.
    let url = format!(
        "http://{}/graphql/stream?query={}",
        app.addr, "%7B%20me%20%7B%20id%20%7D%20%7D"
    );
    let mut stream = open(reqwest::Client::new().get(url).bearer_auth(&token))
        .await?
        .stream()?;
    let results = stream.until_complete().await?;
    assert_eq!(results[0]["data"]["me"]["id"], json!(ann.id));

    // A mutation, with its result.
    let mut stream = open(
        stream_post(
            app.addr,
            "/graphql/stream",
            &json!({ "query": "mutation { addKnowledge(content: \"Streams work.\") { content } }" }),
        )
        .bearer_auth(&token),
    )
    .await?
    .stream()?;
    let results = stream.until_complete().await?;
    assert_eq!(
        results[0]["data"]["addKnowledge"]["content"],
        "Streams work."
    );

    // The operation's own errors (syntax, limits) are results of the stream, with their codes.
    let mut stream = open(
        stream_post(
            app.addr,
            "/graphql/stream",
            &json!({ "query": "{ me { id " }),
        )
        .bearer_auth(&token),
    )
    .await?
    .stream()?;
    let results = stream.until_complete().await?;
    assert_eq!(code(&results[0]), "BAD_USER_INPUT", "{results:?}");
    assert!(results[0].get("data").is_none(), "{results:?}");

    // What is not a request at all, a batch, or a mutation over GET: ordinary JSON errors.
    let bad = open(stream_post(
        app.addr,
        "/graphql/stream",
        &json!({ "foo": 1 }),
    ))
    .await?
    .refused()?;
    assert_eq!(
        (bad.status, bad.error_code()),
        (400, Some("BAD_USER_INPUT"))
    );
    let batch = json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]);
    let refused = open(stream_post(app.addr, "/graphql/stream", &batch).bearer_auth(&token))
        .await?
        .refused()?;
    assert_eq!(refused.status, 400);
    assert!(
        refused.error_message().unwrap_or("").contains("batch"),
        "{:?}",
        refused.body
    );
    let url = format!(
        "http://{}/graphql/stream?query={}",
        app.addr, "mutation%20%7B%20logout%20%7D"
    );
    let refused = open(reqwest::Client::new().get(url).bearer_auth(&token))
        .await?
        .refused()?;
    assert_eq!(refused.status, 405);
    Ok(())
}

#[tokio::test]
async fn accept_text_event_stream_on_graphql_negotiates_a_stream() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let token = app.token_for(&members[0]);
    let query = json!({ "query": "{ me { id } }" });

    let mut stream = open(stream_post(app.addr, "/graphql", &query).bearer_auth(&token))
        .await?
        .stream()?;
    let results = stream.until_complete().await?;
    assert_eq!(results[0]["data"]["me"]["id"], json!(members[0].id));

    // JSON listed first, or not asked for a stream: the usual JSON response.
    for accept in [
        "application/json, text/event-stream",
        "application/graphql-response+json",
    ] {
        let response = reqwest::Client::new()
            .post(app.url("/graphql"))
            .header("accept", accept)
            .bearer_auth(&token)
            .json(&query)
            .send()
            .await?;
        let response = GqlResponse::from_reqwest(response).await?;
        assert_eq!(response.status, 200, "{accept}");
        assert!(
            response.content_type.starts_with("application/"),
            "{accept}: {}",
            response.content_type
        );
        assert_eq!(response.data()?["me"]["id"], json!(members[0].id));
    }

    // A subscription over GET /graphql, as a stream (a plain GET may carry queries only).
    let url = format!(
        "http://{}/graphql?query={}",
        app.addr, "subscription%20%7B%20friendEvents%20%7B%20kind%20requestId%20%7D%20%7D"
    );
    let mut stream = open(
        reqwest::Client::new()
            .get(&url)
            .header("accept", "text/event-stream")
            .bearer_auth(&token),
    )
    .await?
    .stream()?;
    until_live(&app, &mut stream, members[0].id).await?;
    let refused = open(reqwest::Client::new().get(&url).bearer_auth(&token))
        .await?
        .refused()?;
    assert_eq!(refused.status, 405);
    Ok(())
}

#[tokio::test]
async fn a_chat_reply_streams_as_next_events() -> anyhow::Result<()> {
    let tokens = ["Streamed ", "over ", "server-", "sent ", "events."];
    let fake = FakeLlm::start(tests::fake_llm::Reply::Stream(
        tests::fake_llm::StreamScript::tokens(tokens).pause_after(0),
    ))
    .await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (_, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut stream = open(
        stream_post(
            app.addr,
            "/graphql/stream",
            &json!({ "query": EVENTS, "variables": { "id": conversation } }),
        )
        .bearer_auth(&token),
    )
    .await?
    .stream()?;
    let reply = send_ok(&app, &token, &conversation, "Hello").await?;
    // The reply is held before its first token: the subscription sees it start, live or as
    // it joins.
    let started = stream.next_result().await?;
    let event = &started["data"]["conversationEvents"];
    assert_eq!(event["__typename"], "MessageStarted", "{started}");
    assert_eq!(event["message"]["id"], json!(reply));
    fake.release();
    let mut text = String::new();
    let mut deltas = 0;
    let end = loop {
        let result = stream.next_result().await?;
        let event = result["data"]["conversationEvents"].clone();
        match event["__typename"].as_str() {
            Some("MessageDelta") => {
                deltas += 1;
                text.push_str(event["text"].as_str().unwrap_or_default());
            }
            Some("MessageCompleted") => break event,
            _ => anyhow::bail!("unexpected {result}"),
        }
    };
    assert_eq!(text, tokens.concat());
    assert!(deltas >= 2, "{deltas} deltas");
    assert_eq!(end["message"]["status"], "COMPLETE");
    assert_eq!(end["message"]["content"], json!(tokens.concat()));

    // Signing out ends the stream: a last result saying why, then `complete`.
    let logout = app
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    let results = stream.until_complete().await?;
    let last = results
        .last()
        .ok_or_else(|| anyhow::anyhow!("no last result"))?;
    assert_eq!(code(last), "UNAUTHENTICATED", "{results:?}");
    assert!(
        last["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("revoked"),
        "{last}"
    );
    Ok(())
}

#[tokio::test]
async fn a_subscription_needs_credentials_that_are_good() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let body = json!({ "query": FRIEND_EVENTS });

    let anonymous = open(stream_post(app.addr, "/graphql/stream", &body))
        .await?
        .refused()?;
    assert_eq!(
        (anonymous.status, anonymous.error_code()),
        (401, Some("UNAUTHENTICATED"))
    );
    assert_eq!(
        anonymous
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let mut expired_claims = app.claims_for(&members[0]);
    expired_claims["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    for token in ["forged.token.here".to_owned(), app.sign(&expired_claims)] {
        let refused = open(stream_post(app.addr, "/graphql/stream", &body).bearer_auth(&token))
            .await?
            .refused()?;
        assert_eq!(
            (refused.status, refused.error_code()),
            (401, Some("UNAUTHENTICATED")),
            "{:?}",
            refused.body
        );
    }
    // A revoked session.
    let (revoked, session) = token_of_another_session(&app, &members[0]).await?;
    app.sql(&format!(
        "UPDATE sessions SET revoked_at = now() WHERE id = '{session}'"
    ))
    .await?;
    let refused = open(stream_post(app.addr, "/graphql/stream", &body).bearer_auth(&revoked))
        .await?
        .refused()?;
    assert_eq!(refused.status, 401, "{:?}", refused.body);

    // Anonymous queries stream as they are answered over plain HTTP.
    let mut stream = open(stream_post(
        app.addr,
        "/graphql/stream",
        &json!({ "query": "{ me { id } }" }),
    ))
    .await?
    .stream()?;
    let results = stream.until_complete().await?;
    assert_eq!(code(&results[0]), "UNAUTHENTICATED", "{results:?}");
    Ok(())
}

#[tokio::test]
async fn revocation_a_role_change_or_the_token_expiring_end_streams_on_every_instance()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let peer = app.spawn_peer().await?;
    let (_, admin, members) = app.company_with_users("Acme", 2).await?;
    let (ann, bob) = (&members[0], &members[1]);
    let body = json!({ "query": FRIEND_EVENTS });

    // Revoked from the other instance.
    let (second, session) = token_of_another_session(&app, ann).await?;
    let mut stream = open(stream_post(peer.addr, "/graphql/stream", &body).bearer_auth(&second))
        .await?
        .stream()?;
    until_live(&app, &mut stream, ann.id).await?;
    let revoked = app
        .graphql(
            Some(&app.token_for(ann)),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": session }),
        )
        .await?;
    assert_eq!(revoked.data()?["revokeSession"], true);
    let error = ended_with_error(&mut stream).await?;
    assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{error}");
    assert!(
        error["message"].as_str().unwrap_or("").contains("revoked"),
        "{error}"
    );

    // The user's role changes.
    let mut stream =
        open(stream_post(peer.addr, "/graphql/stream", &body).bearer_auth(app.token_for(bob)))
            .await?
            .stream()?;
    until_live(&app, &mut stream, bob.id).await?;
    let changed = app
        .graphql(
            Some(&app.token_for(&admin)),
            "mutation($id: ID!) { updateUser(id: $id, input: {role: \"manager\"}) { role } }",
            json!({ "id": bob.id }),
        )
        .await?;
    assert_eq!(changed.data()?["updateUser"]["role"], "manager");
    let error = ended_with_error(&mut stream).await?;
    assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{error}");
    assert!(
        error["message"].as_str().unwrap_or("").contains("role"),
        "{error}"
    );

    // The access token expires.
    let mut claims = app.claims_for(ann);
    claims["exp"] = json!(chrono::Utc::now().timestamp() + 5);
    let mut stream =
        open(stream_post(app.addr, "/graphql/stream", &body).bearer_auth(app.sign(&claims)))
            .await?
            .stream()?;
    let error = ended_with_error(&mut stream).await?;
    assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{error}");
    assert!(
        error["message"].as_str().unwrap_or("").contains("expired"),
        "{error}"
    );
    peer.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn cookie_streams_follow_the_csrf_rule_and_end_at_logout() -> anyhow::Result<()> {
    const ACCESS: &str = "__Host-access_token";
    const CSRF: &str = "__Host-csrf_token";
    let app = TestApp::spawn().await?;
    app.sign_up("Acme", "ann@acme.example", "correct horse battery")
        .await?;
    let login = app
        .graphql(
            None,
            "mutation { login(input: { email: \"ann@acme.example\", password: \"correct horse battery\", cookie: true }) { user { id } } }",
            json!({}),
        )
        .await?;
    let user_id = login.data()?["login"]["user"]["id"].clone();
    let access = login.cookie(ACCESS).unwrap_or_default();
    let csrf = login.cookie(CSRF).unwrap_or_default();
    assert!(!access.is_empty() && !csrf.is_empty());
    let cookie = format!("{ACCESS}={access}; {CSRF}={csrf}");

    // A query needs nothing more than the cookie.
    let mut stream = open(
        stream_post(
            app.addr,
            "/graphql/stream",
            &json!({ "query": "{ me { id } }" }),
        )
        .header("cookie", &cookie),
    )
    .await?
    .stream()?;
    assert_eq!(
        stream.until_complete().await?[0]["data"]["me"]["id"],
        user_id
    );

    // A subscription riding on the cookie must prove it comes from the page.
    let body = json!({ "query": FRIEND_EVENTS });
    let refused = open(stream_post(app.addr, "/graphql/stream", &body).header("cookie", &cookie))
        .await?
        .refused()?;
    assert_eq!(
        (refused.status, refused.error_code()),
        (403, Some("FORBIDDEN"))
    );
    let refused = open(
        stream_post(app.addr, "/graphql/stream", &body)
            .header("cookie", &cookie)
            .header("x-csrf-token", "not-the-token"),
    )
    .await?
    .refused()?;
    assert_eq!(refused.status, 403);
    let mut stream = open(
        stream_post(app.addr, "/graphql/stream", &body)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf),
    )
    .await?
    .stream()?;
    until_live(&app, &mut stream, serde_json::from_value(user_id)?).await?;

    // Signing out with the cookie ends the stream of its session.
    let logout = app
        .graphql_with(
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            None,
            "mutation { logout }",
            json!({}),
        )
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    let error = ended_with_error(&mut stream).await?;
    assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{error}");
    Ok(())
}

#[tokio::test]
async fn a_draining_instance_ends_its_streams() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let peer = app.spawn_peer().await?;
    let token = app.token_for(&members[0]);
    let body = json!({ "query": FRIEND_EVENTS });
    let mut draining = open(stream_post(peer.addr, "/graphql/stream", &body).bearer_auth(&token))
        .await?
        .stream()?;
    let mut elsewhere = open(stream_post(app.addr, "/graphql/stream", &body).bearer_auth(&token))
        .await?
        .stream()?;
    until_live(&app, &mut draining, members[0].id).await?;
    until_live(&app, &mut elsewhere, members[0].id).await?;
    peer.begin_drain();
    let error = ended_with_error(&mut draining).await?;
    assert_eq!(error["extensions"]["code"], "UNAVAILABLE", "{error}");
    // Streams of instances that keep running go on.
    until_live(&app, &mut elsewhere, members[0].id).await?;
    peer.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn subscription_streams_count_with_sockets_against_the_per_user_limit() -> anyhow::Result<()>
{
    let app = TestApp::spawn_with(|c| c.ws_max_sockets_per_user = 1).await?;
    let (_, _, members) = app.company_with_users("Acme", 2).await?;
    let token = app.token_for(&members[0]);
    let body = json!({ "query": FRIEND_EVENTS });
    let mut first = open(stream_post(app.addr, "/graphql/stream", &body).bearer_auth(&token))
        .await?
        .stream()?;
    until_live(&app, &mut first, members[0].id).await?;
    let refused = open(stream_post(app.addr, "/graphql/stream", &body).bearer_auth(&token))
        .await?
        .refused()?;
    assert_eq!(
        (refused.status, refused.error_code()),
        (429, Some("RATE_LIMITED")),
        "{:?}",
        refused.body
    );
    assert!(
        refused
            .error_message()
            .unwrap_or("")
            .contains("WS_MAX_SOCKETS_PER_USER")
    );
    // Queries do not hold a stream open, and other users have slots of their own.
    let mut query = open(
        stream_post(
            app.addr,
            "/graphql/stream",
            &json!({ "query": "{ me { id } }" }),
        )
        .bearer_auth(&token),
    )
    .await?
    .stream()?;
    assert_eq!(
        query.until_complete().await?[0]["data"]["me"]["id"],
        json!(members[0].id)
    );
    let mut other = open(
        stream_post(app.addr, "/graphql/stream", &body).bearer_auth(app.token_for(&members[1])),
    )
    .await?
    .stream()?;
    until_live(&app, &mut other, members[1].id).await?;
    // Closing the stream gives its slot back, once the server notices (writing to it: the
    // events published here, or the keep-alive).
    drop(first);
    let topic = server::friends::events::topic(members[0].id);
    tests::eventually(PATIENCE, "the slot to be given back", || async {
        app.state()
            .pubsub
            .publish(&topic, &friend_event(uuid::Uuid::nil()))
            .await;
        let Ok(Opened::Stream(mut again)) =
            open(stream_post(app.addr, "/graphql/stream", &body).bearer_auth(&token)).await
        else {
            return false;
        };
        until_live(&app, &mut again, members[0].id).await.is_ok()
    })
    .await?;
    Ok(())
}
