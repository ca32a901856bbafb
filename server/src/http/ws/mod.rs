//! GraphQL over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`). The `Origin`
//! is checked against the configured origins at the upgrade; the caller authenticates in
//! `connection_init` with `payload.authorization = "Bearer <token>"` (or the access cookie).
//!
//! async-graphql's protocol state machine (`async_graphql::http::WebSocket`) runs the
//! operations; around it this module keeps what it does not: the protocol's close codes, the
//! limits, and a socket that lives no longer than its credentials. It selects on the socket's
//! own end events (no `connection_init` in time; the access token expiring; the session's
//! revocation or the user's role change, announced on pub/sub from any instance) and closes
//! the socket with the code they call for.

mod executor;
mod protocol;
mod sockets;

use std::{sync::Arc, time::Duration};

use async_graphql::{
    Data as GqlData,
    http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage},
};
use async_graphql_poem::GraphQLProtocol;
use futures_util::{SinkExt, StreamExt, future::BoxFuture};
use poem::{
    IntoResponse, Request, Response, handler,
    http::StatusCode,
    web::{
        Data,
        websocket::{Message, WebSocket, WebSocketConfig, WebSocketStream},
    },
};
use tokio::sync::oneshot;

pub use sockets::{SocketRegistry, SocketSlot};

use self::{
    executor::{SocketCredentials, SocketExecutor},
    protocol::{CloseFrame, Socket},
};
use crate::{
    auth::{self, RequestMeta, Viewer, viewer::AccessExpiry},
    error::{AppError, RequestId},
    graphql::{
        AppSchema,
        live::{self, ConnectionWatched, CredentialWatch},
    },
    state::AppState,
};

/// The close codes this server ends a GraphQL WebSocket with.
pub mod close {
    /// The client went away or ended the connection (`connection_terminate`).
    pub const NORMAL: u16 = 1000;
    /// A broken WebSocket frame.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The user already holds `WS_MAX_SOCKETS_PER_USER` sockets on this instance.
    pub const POLICY: u16 = 1008;
    /// A message larger than `MAX_BODY_BYTES`.
    pub const TOO_BIG: u16 = 1009;
    /// Authentication could not be checked (an internal error).
    pub const INTERNAL: u16 = 1011;
    /// Authentication could not be checked now (PostgreSQL or Redis unavailable): retry.
    pub const TRY_AGAIN: u16 = 1013;
    /// A message that is not a message of the protocol.
    pub const BAD_REQUEST: u16 = 4400;
    /// `subscribe` before `connection_init`.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Bad credentials at `connection_init`; the access token expired; the session was revoked
    /// or the user's role changed.
    pub const FORBIDDEN: u16 = 4403;
    /// No `connection_init` within `WS_CONNECTION_INIT_TIMEOUT_SECS`.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// A `subscribe` with the id of an operation still in flight.
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    /// A second `connection_init`.
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The server is shutting down: reconnect (to another instance) and catch up.
    pub const GOING_AWAY: u16 = 1001;
}

/// How long sending a close frame may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Close reasons must fit a control frame (125 bytes, 2 of them the code).
const MAX_REASON_BYTES: usize = 123;

/// `GET /graphql/ws`.
#[handler]
pub async fn graphql_ws(
    req: &Request,
    websocket: WebSocket,
    protocol: GraphQLProtocol,
    Data(state): Data<&AppState>,
    Data(schema): Data<&AppSchema>,
    Data(sockets): Data<&SocketRegistry>,
) -> Response {
    if !super::origin::origin_allowed(req, &state.config.cors_origins) {
        return (
            StatusCode::FORBIDDEN,
            "this Origin may not open a GraphQL WebSocket",
        )
            .into_response();
    }
    let max_bytes = state.config.max_body_bytes;
    let connection = Connection {
        state: state.clone(),
        schema: schema.clone(),
        sockets: sockets.clone(),
        protocol: protocol.0,
        meta: RequestMeta::from_request(req, state.config.cookies_secure()),
        request_id: req.extensions().get::<RequestId>().cloned(),
    };
    websocket
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .config(socket_config(max_bytes))
        .on_upgrade(crate::metrics::websocket(move |stream| {
            connection.serve(stream)
        }))
        .into_response()
}

/// The WebSocket layer's buffers. The read buffer is allocated for every socket, and as much
/// of it as one read may fill is zeroed every time the socket is polled (for every event it
/// sends): 128 KiB by default. Clients send little (`connection_init`, `subscribe`, pings), so
/// 1 KiB does; a larger message is read in several reads, into a buffer grown for it. What is
/// sent is written out at once (every send flushes anyway), so the write buffer holds one
/// frame.
const READ_BUFFER_BYTES: usize = 1024;

fn socket_config(max_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(max_bytes))
        .max_frame_size(Some(max_bytes))
}

/// What a socket is opened with.
struct Connection {
    state: AppState,
    schema: AppSchema,
    sockets: SocketRegistry,
    protocol: WebSocketProtocols,
    meta: RequestMeta,
    request_id: Option<RequestId>,
}

/// What an acknowledged socket holds until it closes.
struct Live {
    /// Its place among its user's sockets.
    slot: Option<SocketSlot>,
    /// What ends its credentials (none for an anonymous socket), and the token that tells its
    /// subscriptions they ended.
    watch: Option<(CredentialWatch, ConnectionWatched)>,
}

/// The next thing to send.
enum Outgoing {
    Text(String),
    Close(CloseFrame),
}

impl Connection {
    async fn serve(self, stream: WebSocketStream) {
        let (mut sink, source) = stream.split();
        let socket = Arc::new(Socket::new(self.protocol));
        let messages =
            protocol::client_messages(source, socket.clone(), self.state.config.max_body_bytes);
        let executor = SocketExecutor::new(self.schema.clone(), self.state.clone(), socket.clone());
        let init_timeout = Duration::from_secs(self.state.config.ws_connection_init_timeout_secs);
        let (live_tx, mut live_rx) = oneshot::channel::<Live>();
        let protocol = self.protocol;
        // A draining instance closes every socket, so clients reconnect elsewhere and catch up.
        let draining = self.state.draining.clone();
        let init = {
            let socket = socket.clone();
            move |payload| self.connection_init(payload, socket, live_tx)
        };
        let graphql =
            async_graphql::http::WebSocket::from_message_stream(executor, messages, protocol)
                .on_connection_init(init);
        futures_util::pin_mut!(graphql);

        // Until acknowledged, the socket ends when the init timeout does; then when its
        // credentials do.
        let mut ending: BoxFuture<'static, CloseFrame> = Box::pin(async move {
            tokio::time::sleep(init_timeout).await;
            (
                close::INIT_TIMEOUT,
                "Connection initialisation timeout".to_owned(),
            )
        });
        let mut init_settled = false;
        let mut _held: Option<SocketSlot> = None;
        let mut going_away = Box::pin(async move {
            draining.cancelled().await;
            (close::GOING_AWAY, "the server is shutting down".to_owned())
        });
        loop {
            let outgoing = tokio::select! {
                biased;
                frame = &mut going_away => Outgoing::Close(frame),
                frame = &mut ending => Outgoing::Close(frame),
                live = &mut live_rx, if !init_settled => {
                    init_settled = true;
                    // Err: the init was refused, and async-graphql is about to say so.
                    if let Ok(live) = live {
                        _held = live.slot;
                        ending = match live.watch {
                            Some((watch, ConnectionWatched(ended))) => Box::pin(async move {
                                let why = watch.ended().await;
                                ended.cancel();
                                (close::FORBIDDEN, why.message().to_owned())
                            }),
                            None => Box::pin(std::future::pending()),
                        };
                    }
                    continue;
                }
                message = graphql.next() => match message {
                    Some(WsMessage::Text(text)) => Outgoing::Text(text),
                    Some(WsMessage::Close(code, reason)) => {
                        Outgoing::Close(socket.take_closing().unwrap_or((code, reason)))
                    }
                    None => match socket.take_closing() {
                        Some(frame) => Outgoing::Close(frame),
                        // The WebSocket layer has answered the client's close frame.
                        None if socket.peer_closed() => break,
                        None => Outgoing::Close((close::NORMAL, String::new())),
                    },
                },
            };
            match outgoing {
                Outgoing::Text(text) => {
                    // A client that stops reading must not keep its socket past its end.
                    tokio::select! {
                        biased;
                        frame = &mut ending => {
                            send_close(&mut sink, frame).await;
                            break;
                        }
                        sent = sink.send(Message::Text(text)) => {
                            if sent.is_err() {
                                break;
                            }
                        }
                    }
                }
                Outgoing::Close(frame) => {
                    send_close(&mut sink, frame).await;
                    break;
                }
            }
        }
    }

    /// `connection_init`: resolves the caller, takes a slot among the user's sockets and
    /// starts watching the credentials; the returned data is every operation's context.
    async fn connection_init(
        self,
        payload: serde_json::Value,
        socket: Arc<Socket>,
        live: oneshot::Sender<Live>,
    ) -> async_graphql::Result<GqlData> {
        let state = &self.state;
        let authorization = payload
            .get("authorization")
            .or_else(|| payload.get("Authorization"))
            .and_then(|v| v.as_str());
        let refuse = |error: AppError| socket.refuse(init_close_code(&error), error.message());
        let (viewer, expiry) = auth::viewer::resolve_with_expiry(
            &state.jwt,
            &state.sessions,
            authorization,
            self.meta.access_cookie.as_deref(),
        )
        .await
        .map_err(refuse)?;
        let mut data = GqlData::default();
        let mut held = Live {
            slot: None,
            watch: None,
        };
        if let Viewer::User(principal) = &viewer {
            // Within the leeway a token still verifies, but its operations would be refused.
            if expiry.is_some_and(|exp| live::now_ms() >= live::expiry_ms(exp)) {
                return Err(refuse(AppError::Unauthenticated(
                    live::Ended::Expired.message().into(),
                )));
            }
            let Some(slot) = self.sockets.acquire(principal.user_id) else {
                return Err(socket.refuse(
                    close::POLICY,
                    format!(
                        "this user already holds {} open sockets (WS_MAX_SOCKETS_PER_USER)",
                        self.sockets.max_per_user()
                    ),
                ));
            };
            // Operations are refused from the token's expiry; the socket closes after the
            // leeway too.
            let close_at = expiry.map(|exp| live::close_deadline_ms(state, exp));
            let watch = CredentialWatch::start(state, principal, close_at);
            // Checked again now that the watch listens: a revocation announced since the first
            // check is not missed (it is stored before it is announced).
            state
                .sessions
                .check(principal.company_id, principal.session_id)
                .await
                .map_err(refuse)?;
            data.insert(SocketCredentials {
                company_id: principal.company_id,
                session_id: principal.session_id,
                expires_ms: expiry.map(live::expiry_ms),
            });
            let watched = ConnectionWatched::default();
            data.insert(watched.clone());
            held = Live {
                slot: Some(slot),
                watch: Some((watch, watched)),
            };
        }
        if let Some(exp) = expiry {
            data.insert(AccessExpiry(exp));
        }
        data.insert(viewer);
        data.insert(self.meta);
        if let Some(id) = self.request_id {
            data.insert(id);
        }
        // The socket may be gone already; then nothing is left to hold.
        let _ = live.send(held);
        Ok(data)
    }
}

/// The close code for credentials refused at `connection_init`.
fn init_close_code(error: &AppError) -> u16 {
    match error {
        AppError::Unauthenticated(_) | AppError::Forbidden(_) => close::FORBIDDEN,
        AppError::Unavailable(_) | AppError::RateLimited { .. } => close::TRY_AGAIN,
        _ => close::INTERNAL,
    }
}

async fn send_close<S>(sink: &mut S, (code, reason): CloseFrame)
where
    S: futures_util::Sink<Message> + Unpin,
{
    tracing::debug!(code, reason, "closing a GraphQL WebSocket");
    let reason = truncate(reason, MAX_REASON_BYTES);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::close_with(code, reason))).await;
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short".into(), 123), "short");
        let long = "é".repeat(100);
        let cut = truncate(long, MAX_REASON_BYTES);
        assert!(cut.len() <= MAX_REASON_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
