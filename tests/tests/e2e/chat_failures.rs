//! Provider failures and limits: each gives the documented status, event or error.

use std::time::Duration;

use serde_json::json;
use tests::fake_llm::{End, FakeLlm, Reply, StreamScript};

use super::chat_support::{
    chat_app, create_conversation, member, next_event, send, send_ok, started, stored, subscribe,
    until_end,
};

fn status(code: u16, retry_after: Option<&str>) -> Reply {
    Reply::Status {
        code,
        retry_after: retry_after.map(str::to_owned),
    }
}

/// Sends a message while subscribed and returns the reply's id, the text of its deltas and
/// its final event. The provider holds the request until the subscriber saw the reply start
/// (live or by catch-up), so no event is missed however late the subscription becomes active.
async fn run_reply(
    app: &tests::TestApp,
    fake: &FakeLlm,
    token: &str,
) -> anyhow::Result<(String, String, serde_json::Value)> {
    let conversation = create_conversation(app, token, None).await?;
    let mut ws = subscribe(app.addr, token, &conversation).await?;
    fake.hold_next();
    let reply = send_ok(app, token, &conversation, "Hello").await?;
    started(&mut ws, &reply).await?;
    fake.release();
    let (text, _, end) = until_end(&mut ws).await?;
    Ok((reply, text, end))
}

#[tokio::test]
async fn an_error_status_fails_the_reply_with_a_reason() -> anyhow::Result<()> {
    let fake = FakeLlm::start(status(500, None)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (user, token) = member(&app, "Acme").await?;
    let (reply, text, end) = run_reply(&app, &fake, &token).await?;
    assert_eq!(text, "");
    assert_eq!(end["__typename"], "MessageFailed");
    assert_eq!(end["message"]["status"], "FAILED");
    assert!(
        end["reason"].as_str().unwrap_or_default().contains("500"),
        "{end}"
    );
    assert_eq!(stored(&app, &user, &reply).await?["status"], "failed");
    Ok(())
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_and_then_completes() -> anyhow::Result<()> {
    let fake = FakeLlm::start(Reply::Stream(StreamScript::tokens(["after ", "waiting"]))).await?;
    fake.push(status(429, Some("1")));
    fake.push(status(503, None));
    let app = chat_app(&fake, |c| c.llm_max_retries = 2).await?;
    let (user, token) = member(&app, "Acme").await?;
    let (reply, text, end) = run_reply(&app, &fake, &token).await?;
    assert_eq!(text, "after waiting");
    assert_eq!(end["message"]["status"], "COMPLETE");
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(
        stored(&app, &user, &reply).await?["content"],
        "after waiting"
    );
    Ok(())
}

#[tokio::test]
async fn retries_are_bounded() -> anyhow::Result<()> {
    let fake = FakeLlm::start(status(503, Some("0"))).await?;
    let app = chat_app(&fake, |c| c.llm_max_retries = 2).await?;
    let (_, token) = member(&app, "Acme").await?;
    let (_, _, end) = run_reply(&app, &fake, &token).await?;
    assert_eq!(end["message"]["status"], "FAILED");
    assert_eq!(fake.requests().len(), 3);
    Ok(())
}

#[tokio::test]
async fn failures_after_tokens_store_the_partial_text_as_failed() -> anyhow::Result<()> {
    let fake = FakeLlm::start(status(500, None)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (user, token) = member(&app, "Acme").await?;
    for (end, reason) in [
        (End::Drop, "broke"),
        (End::Malformed, "malformed"),
        (End::NoDone, "before it was complete"),
    ] {
        let script = StreamScript::tokens(["partial ", "text"]).end(end);
        fake.push(Reply::Stream(script));
        let (reply, text, event) = run_reply(&app, &fake, &token).await?;
        assert_eq!(text, "partial text", "{end:?}");
        assert_eq!(event["__typename"], "MessageFailed", "{end:?}");
        assert_eq!(event["message"]["content"], "partial text");
        assert!(
            event["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{end:?}: {event}"
        );
        let row = stored(&app, &user, &reply).await?;
        assert_eq!(row["status"], "failed");
        assert_eq!(row["content"], "partial text");
    }
    Ok(())
}

#[tokio::test]
async fn slow_tokens_within_the_idle_timeout_complete_and_silence_beyond_it_fails()
-> anyhow::Result<()> {
    let fake = FakeLlm::start(status(500, None)).await?;
    let app = chat_app(&fake, |c| c.llm_idle_timeout_ms = 2_000).await?;
    let (_, token) = member(&app, "Acme").await?;
    let slow = StreamScript::tokens(["slow ", "but ", "steady"]).delay(Duration::from_millis(50));
    fake.push(Reply::Stream(slow));
    let (_, text, end) = run_reply(&app, &fake, &token).await?;
    assert_eq!(text, "slow but steady");
    assert_eq!(end["message"]["status"], "COMPLETE");

    // Paused after a token and never released: the idle timeout ends it.
    let stuck = StreamScript::tokens(["first ", "never"]).pause_after(1);
    fake.push(Reply::Stream(stuck));
    let (_, text, end) = run_reply(&app, &fake, &token).await?;
    assert_eq!(text, "first ");
    assert_eq!(end["message"]["status"], "FAILED");
    assert!(
        end["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("silent"),
        "{end}"
    );
    Ok(())
}

#[tokio::test]
async fn no_first_token_within_the_timeout_fails_the_reply() -> anyhow::Result<()> {
    let never = StreamScript::tokens(["never"]).pause_after(0);
    let fake = FakeLlm::start(Reply::Stream(never)).await?;
    let app = chat_app(&fake, |c| {
        c.llm_first_token_timeout_ms = 1_000;
        c.llm_max_retries = 2;
    })
    .await?;
    let (_, token) = member(&app, "Acme").await?;
    let (_, text, end) = run_reply(&app, &fake, &token).await?;
    assert_eq!(text, "");
    assert_eq!(end["message"]["status"], "FAILED");
    // The timeout bounds the whole wait for the first token, retries included: no time is
    // left for another attempt.
    assert_eq!(fake.requests().len(), 1);
    assert!(
        end["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("within"),
        "{end}"
    );
    Ok(())
}

#[tokio::test]
async fn the_circuit_breaker_refuses_at_once_after_repeated_failures() -> anyhow::Result<()> {
    let fake = FakeLlm::start(status(500, None)).await?;
    let app = chat_app(&fake, |c| {
        c.llm_breaker_threshold = 2;
        c.llm_breaker_cool_down_secs = 600;
    })
    .await?;
    let (_, token) = member(&app, "Acme").await?;
    for _ in 0..2 {
        let (_, _, end) = run_reply(&app, &fake, &token).await?;
        assert_eq!(end["message"]["status"], "FAILED");
    }
    let conversation = create_conversation(&app, &token, None).await?;
    let refused = send(&app, &token, &conversation, "Anyone?").await?;
    assert_eq!(
        refused.error_code(),
        Some("UNAVAILABLE"),
        "{:?}",
        refused.body
    );
    // It says when the breaker lets replies try again.
    assert!(
        refused.body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some_and(|s| (1..=600).contains(&s)),
        "{:?}",
        refused.body
    );
    assert_eq!(fake.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn one_reply_streams_at_a_time_per_conversation() -> anyhow::Result<()> {
    let fake = FakeLlm::start(Reply::Stream(StreamScript::tokens(["a"]).pause_after(0))).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (_, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "first").await?;
    started(&mut ws, &reply).await?;
    let second = send(&app, &token, &conversation, "second").await?;
    assert_eq!(second.error_code(), Some("CONFLICT"));
    let clear = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { clearConversation(id: $id) { id } }",
            json!({ "id": conversation }),
        )
        .await?;
    assert_eq!(clear.error_code(), Some("CONFLICT"));
    fake.release();
    until_end(&mut ws).await?;
    send_ok(&app, &token, &conversation, "third").await?;
    Ok(())
}

#[tokio::test]
async fn message_length_rate_and_company_concurrency_are_limited() -> anyhow::Result<()> {
    let fake = FakeLlm::start(Reply::Stream(StreamScript::tokens(["a"]).pause_after(0))).await?;
    let app = chat_app(&fake, |c| {
        c.chat_max_message_chars = 10;
        c.chat_messages_per_minute = 2;
        c.chat_max_concurrent_per_company = 1;
    })
    .await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let (token, colleague) = (app.token_for(&members[0]), app.token_for(&admin));
    let conversation = create_conversation(&app, &token, None).await?;

    let long = send(&app, &token, &conversation, "far too long a message").await?;
    assert_eq!(long.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(long.body["errors"][0]["extensions"]["path"], "content");

    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "hi").await?;
    started(&mut ws, &reply).await?;
    // The company's one slot is taken, by someone else's reply too.
    let other = create_conversation(&app, &colleague, None).await?;
    let busy = send(&app, &colleague, &other, "me too").await?;
    assert_eq!(busy.error_code(), Some("RATE_LIMITED"), "{:?}", busy.body);
    fake.release();
    until_end(&mut ws).await?;

    // Messages per minute: the long one was refused before counting; two went through.
    let second = send(&app, &token, &conversation, "again").await?;
    second.data()?;
    let _ = next_event(&mut ws).await?;
    fake.release();
    until_end(&mut ws).await?;
    let third = send(&app, &token, &conversation, "and again").await?;
    assert_eq!(third.error_code(), Some("RATE_LIMITED"));
    Ok(())
}
