//! The per-socket protocol state that async-graphql's `WebSocket` does not keep: whether
//! `connection_init` came, which operation ids are in flight, how many subscriptions run, and
//! the close frame the socket must end with when this side decided to end it.
//!
//! Client messages pass through [`Socket::admit`] before async-graphql sees them. With
//! `graphql-transport-ws` it enforces the protocol's rules (4400 invalid message, 4401
//! subscribe before `connection_init`, 4409 a duplicate operation id, 4429 a second
//! `connection_init`); the legacy `graphql-ws` is passed through as async-graphql has always
//! handled it.

use std::{
    collections::HashSet,
    io,
    sync::{Mutex, MutexGuard, PoisonError},
};

use async_graphql::http::{ClientMessage, WebSocketProtocols};
use futures_util::{Stream, StreamExt};
use poem::web::websocket::Message;

use super::close;

/// A close frame: code and reason.
pub type CloseFrame = (u16, String);

/// The id a `subscribe` message gave its operation, carried in the request's data so that the
/// operation frees its id when it ends.
#[derive(Debug, Clone)]
pub struct OperationId(pub String);

/// See the module documentation.
#[derive(Debug)]
pub struct Socket {
    protocol: WebSocketProtocols,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    initialised: bool,
    /// Ids of the operations in flight (`graphql-transport-ws` only).
    operations: HashSet<String>,
    subscriptions: usize,
    /// The first reason this side found to close the socket.
    closing: Option<CloseFrame>,
    /// The client sent a close frame (which the WebSocket layer answers by itself).
    peer_closed: bool,
}

impl Socket {
    pub fn new(protocol: WebSocketProtocols) -> Self {
        Self {
            protocol,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that the socket must close with `code` (the first such decision wins) and
    /// returns the reason as an error for async-graphql.
    pub fn refuse(&self, code: u16, reason: impl Into<String>) -> async_graphql::Error {
        let reason = reason.into();
        let mut state = self.lock();
        if state.closing.is_none() {
            state.closing = Some((code, reason.clone()));
        }
        async_graphql::Error::new(reason)
    }

    /// The close frame this side decided on, if any.
    pub fn take_closing(&self) -> Option<CloseFrame> {
        self.lock().closing.take()
    }

    pub fn peer_closed(&self) -> bool {
        self.lock().peer_closed
    }

    /// Checks a client message; `None` when the socket must close (the frame is recorded).
    fn admit(&self, bytes: &[u8]) -> Option<serde_json::Result<ClientMessage>> {
        let message = ClientMessage::from_bytes(bytes);
        if self.protocol == WebSocketProtocols::SubscriptionsTransportWS {
            return Some(message);
        }
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                self.refuse(
                    close::BAD_REQUEST,
                    format!("Invalid message received: {error}"),
                );
                return None;
            }
        };
        let mut state = self.lock();
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if state.initialised {
                    drop(state);
                    self.refuse(close::TOO_MANY_INITS, "Too many initialisation requests");
                    return None;
                }
                state.initialised = true;
                Some(Ok(ClientMessage::ConnectionInit { payload }))
            }
            ClientMessage::Start { id, mut payload } => {
                if !state.initialised {
                    drop(state);
                    self.refuse(close::UNAUTHORIZED, "Unauthorized");
                    return None;
                }
                if !state.operations.insert(id.clone()) {
                    drop(state);
                    self.refuse(
                        close::SUBSCRIBER_EXISTS,
                        format!("Subscriber for {id} already exists"),
                    );
                    return None;
                }
                payload.data.insert(OperationId(id.clone()));
                Some(Ok(ClientMessage::Start { id, payload }))
            }
            other => Some(Ok(other)),
        }
    }

    /// Counts one more subscription, unless `max` (0: unlimited) run already.
    pub fn try_add_subscription(&self, max: usize) -> bool {
        let mut state = self.lock();
        if max != 0 && state.subscriptions >= max {
            return false;
        }
        state.subscriptions += 1;
        true
    }

    /// An operation ended: its id may be used again, and a subscription no longer counts.
    pub fn release(&self, id: Option<&str>, subscription: bool) {
        let mut state = self.lock();
        if let Some(id) = id {
            state.operations.remove(id);
        }
        if subscription {
            state.subscriptions = state.subscriptions.saturating_sub(1);
        }
    }

    /// A read from the socket failed: a message over the size limit, or a broken frame.
    fn read_failed(&self, error: &io::Error, max_bytes: usize) {
        // The WebSocket layer reports its limits only in the error's text ("Space limit
        // exceeded: Message too long: ...").
        let text = error.to_string();
        if text.contains("too long") || text.contains("Space limit") {
            self.refuse(
                close::TOO_BIG,
                format!("messages are limited to {max_bytes} bytes (MAX_BODY_BYTES)"),
            );
        } else {
            self.refuse(close::PROTOCOL_ERROR, text);
        }
    }
}

/// The client's messages from `source`, checked by `socket`; the stream ends when the client
/// goes away or the socket must close.
pub fn client_messages<S>(
    source: S,
    socket: std::sync::Arc<Socket>,
    max_bytes: usize,
) -> impl Stream<Item = serde_json::Result<ClientMessage>> + Send + 'static
where
    S: Stream<Item = io::Result<Message>> + Send + Unpin + 'static,
{
    futures_util::stream::unfold(source, move |mut source| {
        let socket = socket.clone();
        async move {
            loop {
                let bytes = match source.next().await? {
                    Ok(Message::Text(text)) => text.into_bytes(),
                    Ok(Message::Binary(bytes)) => bytes,
                    Ok(Message::Close(_)) => {
                        socket.lock().peer_closed = true;
                        return None;
                    }
                    // Pings are answered by the WebSocket layer.
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Err(error) => {
                        socket.read_failed(&error, max_bytes);
                        return None;
                    }
                };
                let message = socket.admit(&bytes)?;
                return Some((message, source));
            }
        }
    })
    .fuse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport_ws() -> Socket {
        Socket::new(WebSocketProtocols::GraphQLWS)
    }

    fn subscribe(id: &str) -> Vec<u8> {
        serde_json::json!({"id": id, "type": "subscribe", "payload": {"query": "{ __typename }"}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn subscribe_before_init_is_unauthorized() {
        let socket = transport_ws();
        assert!(socket.admit(&subscribe("1")).is_none());
        assert_eq!(
            socket.take_closing().map(|c| c.0),
            Some(close::UNAUTHORIZED)
        );
    }

    #[test]
    fn an_id_in_flight_cannot_be_reused_until_released() {
        let socket = transport_ws();
        assert!(
            socket
                .admit(br#"{"type":"connection_init"}"#)
                .is_some_and(|m| m.is_ok())
        );
        assert!(socket.admit(&subscribe("1")).is_some_and(|m| m.is_ok()));
        socket.release(Some("1"), false);
        assert!(socket.admit(&subscribe("1")).is_some_and(|m| m.is_ok()));
        assert!(socket.admit(&subscribe("1")).is_none());
        assert_eq!(
            socket.take_closing().map(|c| c.0),
            Some(close::SUBSCRIBER_EXISTS)
        );
    }

    #[test]
    fn invalid_messages_close_with_4400_but_legacy_ones_pass_to_async_graphql() {
        let socket = transport_ws();
        assert!(socket.admit(b"{\"type\":\"nonsense\"}").is_none());
        assert_eq!(socket.take_closing().map(|c| c.0), Some(close::BAD_REQUEST));
        let legacy = Socket::new(WebSocketProtocols::SubscriptionsTransportWS);
        assert!(legacy.admit(b"not json").is_some_and(|m| m.is_err()));
        assert!(legacy.take_closing().is_none());
    }

    #[test]
    fn subscriptions_are_counted_up_to_the_limit() {
        let socket = transport_ws();
        assert!(socket.try_add_subscription(2));
        assert!(socket.try_add_subscription(2));
        assert!(!socket.try_add_subscription(2));
        socket.release(None, true);
        assert!(socket.try_add_subscription(2));
        assert!(socket.try_add_subscription(0));
    }
}
