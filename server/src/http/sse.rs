//! GraphQL over Server-Sent Events, as the `graphql-sse` protocol's "distinct connections"
//! mode describes: one operation per request (`POST /graphql/stream`, `GET /graphql/stream`,
//! or `/graphql` with `Accept: text/event-stream`), each of its results an `event: next` with
//! the result as `data`, then `event: complete`. Queries and mutations give one result;
//! subscriptions give one per event, until the client closes the stream.
//!
//! A request is read, checked and authenticated exactly as a plain HTTP request is (the same
//! functions of [`super::graphql`]): what is refused before the operation runs (a body that is
//! not a GraphQL request, bad credentials, the CSRF rule of cookie sign-in, an unknown
//! persisted document, an anonymous subscription) is an ordinary JSON error response with its
//! status code. Errors of the operation itself (syntax, validation, depth and cost limits)
//! come as a `next` event holding `errors`, as the protocol requires, then `complete`.
//!
//! A stream lives no longer than its caller's credentials, as a WebSocket does: it watches
//! them ([`CredentialWatch`]: the access token's expiry, the session's revocation, the user's
//! role change, announced on pub/sub from any instance) and, when they end, sends a last
//! `next` whose error has `extensions.code` `UNAUTHENTICATED`, then `complete`. A draining
//! instance ends every stream the same way with `UNAVAILABLE`: reconnect (to another
//! instance). Idle streams get a comment line every [`KEEP_ALIVE`], so that proxies keep them.

use std::time::Duration;

use async_graphql::{Request as GqlRequest, Response as GqlResponse, parser::types::OperationType};
use futures_util::{
    StreamExt,
    future::BoxFuture,
    stream::{self, BoxStream},
};
use poem::{
    IntoResponse, Request, Response,
    http::StatusCode,
    web::sse::{Event, SSE},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    graphql::{
        Format, ResponseBody, auth_error, authenticate, mark_status, operation_type, preparer,
        request_error, writes,
    },
    ws::{SocketRegistry, SocketSlot},
};
use crate::{
    auth::Viewer,
    error::{AppError, code},
    graphql::{
        AppSchema, give_codes,
        live::{self, ConnectionWatched, CredentialWatch},
    },
    state::AppState,
};

/// The media type of an event stream.
const EVENT_STREAM: &str = "text/event-stream";

/// How long a stream may stay silent before it gets a comment line (`:`), well within the
/// idle timeouts of common proxies and load balancers (60 s and more).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Whether the request asks for an event stream: `text/event-stream` listed in `Accept` before
/// either JSON media type (or without them).
pub(super) fn wanted(req: &Request) -> bool {
    let accept = req
        .headers()
        .get(poem::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .find(|mime| {
            mime.eq_ignore_ascii_case(EVENT_STREAM)
                || mime.eq_ignore_ascii_case("application/json")
                || mime.eq_ignore_ascii_case("application/graphql-response+json")
        })
        .is_some_and(|mime| mime.eq_ignore_ascii_case(EVENT_STREAM))
}

/// Runs `request` (its document settled) as an event stream, or answers why not.
pub(super) async fn respond(
    req: &Request,
    state: &AppState,
    schema: &AppSchema,
    sockets: &SocketRegistry,
    format: Format,
    request: GqlRequest,
) -> Response {
    let caller = match authenticate(req, state, format, writes(&request)).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let subscription = operation_type(&request) == Some(OperationType::Subscription);
    let mut slot = None;
    let mut watch = None;
    match &caller.viewer {
        Viewer::User(principal) => {
            // Within the leeway a token still verifies, but its operations would be refused.
            if caller
                .expiry
                .is_some_and(|exp| live::now_ms() >= live::expiry_ms(exp))
            {
                let error = AppError::Unauthenticated(live::Ended::Expired.message().into());
                return auth_error(format, &error);
            }
            // A subscription holds its stream open: it counts among the user's live
            // connections, as a WebSocket does.
            if subscription {
                let Some(taken) = sockets.acquire(principal.user_id) else {
                    let mut response = request_error(
                        format,
                        StatusCode::TOO_MANY_REQUESTS,
                        code::RATE_LIMITED,
                        &format!(
                            "this user already holds {} open subscription streams and sockets \
                             (WS_MAX_SOCKETS_PER_USER); close one first",
                            sockets.max_per_user()
                        ),
                    );
                    mark_status(&mut response, StatusCode::TOO_MANY_REQUESTS, None);
                    return response;
                };
                slot = Some(taken);
            }
            let started =
                CredentialWatch::start(state, principal, caller.expiry.map(live::expiry_ms));
            // Checked again now that the watch listens: a revocation announced since the
            // first check is not missed (it is stored before it is announced).
            if let Err(error) = state
                .sessions
                .check(principal.company_id, principal.session_id)
                .await
            {
                return auth_error(format, &error);
            }
            watch = Some(started);
        }
        Viewer::Anonymous if subscription => {
            let mut response = request_error(
                format,
                StatusCode::UNAUTHORIZED,
                code::UNAUTHENTICATED,
                "subscriptions need a signed-in caller: send `Authorization: Bearer <token>` \
                 (or the access cookie)",
            );
            mark_status(&mut response, StatusCode::UNAUTHORIZED, None);
            return response;
        }
        Viewer::Anonymous => {}
    }
    let mut request = preparer(state, &caller)(request);
    // The subscriptions of the stream end with the stream's watch (see `live::bounded`).
    let ending: BoxFuture<'static, Ending> = match watch {
        Some(watch) => {
            let watched = ConnectionWatched::default();
            request = request.data(watched.clone());
            Box::pin(async move {
                let why = watch.ended().await;
                watched.0.cancel();
                Ending::Credentials(why)
            })
        }
        None => Box::pin(std::future::pending()),
    };
    let live = Live {
        responses: crate::graphql::run::execute_stream(schema, request, None),
        ending,
        draining: state.draining.clone(),
        _slot: slot,
    };
    SSE::new(events(live))
        .keep_alive(KEEP_ALIVE)
        .into_response()
}

/// What ends a stream before its operation does.
enum Ending {
    Credentials(live::Ended),
    Draining,
}

/// A stream whose operation runs.
struct Live {
    responses: BoxStream<'static, GqlResponse>,
    ending: BoxFuture<'static, Ending>,
    draining: CancellationToken,
    /// Its place among the user's live connections, for a subscription.
    _slot: Option<SocketSlot>,
}

enum Phase {
    Live(Box<Live>),
    /// The last `next` went out: `complete` follows.
    Completing,
    Done,
}

/// The events of a stream: each result as `next`, then `complete`. Whatever ends the stream
/// first is given back as soon as it does (the operation and the watch are dropped with it).
fn events(live: Live) -> impl futures_util::Stream<Item = Event> + Send + 'static {
    stream::unfold(Phase::Live(Box::new(live)), |phase| async move {
        match phase {
            Phase::Done => None,
            Phase::Completing => Some((complete(), Phase::Done)),
            Phase::Live(mut live) => {
                let Live {
                    responses,
                    ending,
                    draining,
                    ..
                } = &mut *live;
                let step = tokio::select! {
                    biased;
                    () = draining.cancelled() => Err(Ending::Draining),
                    why = ending => Err(why),
                    response = responses.next() => Ok(response),
                };
                match step {
                    Ok(Some(response)) => Some((next(response), Phase::Live(live))),
                    Ok(None) => Some((complete(), Phase::Done)),
                    Err(ending) => {
                        drop(live);
                        Some((ended(ending), Phase::Completing))
                    }
                }
            }
        }
    })
}

fn next(mut response: GqlResponse) -> Event {
    give_codes(&mut response.errors);
    let data = serde_json::to_string(&ResponseBody(&response)).unwrap_or_else(|error| {
        json!({ "errors": [{
            "message": format!("the result could not be written: {error}"),
            "extensions": { "code": code::INTERNAL },
        }] })
        .to_string()
    });
    Event::message(data).event_type("next")
}

/// The last `next` of a stream ended before its operation: why, and what to do.
fn ended(ending: Ending) -> Event {
    let (message, code) = match ending {
        Ending::Credentials(why) => (why.message(), code::UNAUTHENTICATED),
        Ending::Draining => (
            "the server is shutting down; reconnect (to another instance)",
            code::UNAVAILABLE,
        ),
    };
    let data = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    Event::message(data.to_string()).event_type("next")
}

/// `event: complete` with an empty `data:` line: parsers that follow the Server-Sent Events
/// specification (a browser's `EventSource`, most libraries) drop an event without data, and
/// graphql-sse's client reads an empty one as none. (poem writes a `data:` line per line of the
/// data: one empty line.)
fn complete() -> Event {
    Event::message("\n").event_type("complete")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(accept: &str) -> bool {
        let req = Request::builder().header("accept", accept).finish();
        wanted(&req)
    }

    #[test]
    fn an_event_stream_is_what_accept_lists_first() {
        assert!(accepting("text/event-stream"));
        assert!(accepting("text/event-stream, application/json;q=0.9"));
        assert!(accepting("Text/Event-Stream; charset=utf-8"));
        assert!(!accepting("application/json, text/event-stream"));
        assert!(!accepting("application/graphql-response+json"));
        assert!(!accepting("*/*"));
        assert!(!accepting(""));
    }

    #[test]
    fn events_are_written_as_the_protocol_says() {
        let response = GqlResponse::new(
            async_graphql::Value::from_json(json!({ "me": { "id": "1" } }))
                .unwrap_or(async_graphql::Value::Null),
        );
        assert_eq!(
            next(response).to_string(),
            "event: next\ndata: {\"data\":{\"me\":{\"id\":\"1\"}}}\n\n"
        );
        assert_eq!(complete().to_string(), "event: complete\ndata: \n\n");
        let last = ended(Ending::Credentials(live::Ended::Revoked)).to_string();
        assert!(last.starts_with("event: next\ndata: "), "{last}");
        assert!(last.contains("\"code\":\"UNAUTHENTICATED\""), "{last}");
    }
}
