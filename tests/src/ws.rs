//! A minimal `graphql-transport-ws` client for the tests.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

/// An open GraphQL WebSocket.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection attempt ended.
#[derive(Debug)]
pub enum WsOutcome {
    Acked(Box<WsClient>),
    /// The server closed the socket, with this close code.
    Closed(Option<u16>),
    /// The HTTP upgrade was refused with this status.
    Refused(u16),
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsClient")
    }
}

impl WsClient {
    /// Connects with `graphql-transport-ws`, sends `connection_init` with `payload`, and waits
    /// for the acknowledgement.
    pub async fn connect(
        url: &str,
        origin: Option<&str>,
        payload: Value,
    ) -> anyhow::Result<WsOutcome> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin)?);
        }
        let (stream, _) = match connect_async(request).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Ok(WsOutcome::Refused(response.status().as_u16()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut client = Self { stream };
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await?;
        match client.next_message().await? {
            Incoming::Json(message) if message["type"] == "connection_ack" => {
                Ok(WsOutcome::Acked(Box::new(client)))
            }
            Incoming::Json(message) => anyhow::bail!("expected connection_ack, got {message}"),
            Incoming::Closed(code) => Ok(WsOutcome::Closed(code)),
        }
    }

    pub async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        self.stream
            .send(Message::Text(message.to_string().into()))
            .await?;
        Ok(())
    }

    /// Starts an operation with id `id`.
    pub async fn subscribe(
        &mut self,
        id: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<()> {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })).await
    }

    /// The next GraphQL message (pings are answered and skipped), within 30 s.
    pub async fn next_json(&mut self) -> anyhow::Result<Value> {
        match self.next_message().await? {
            Incoming::Json(message) => Ok(message),
            Incoming::Closed(code) => anyhow::bail!("socket closed ({code:?})"),
        }
    }

    async fn next_message(&mut self) -> anyhow::Result<Incoming> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.stream.next())
                .await
                .context("no WebSocket message within 30 s")?;
            match message {
                None => return Ok(Incoming::Closed(None)),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text)?;
                    if value["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await?;
                        continue;
                    }
                    return Ok(Incoming::Json(value));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Incoming::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

enum Incoming {
    Json(Value),
    Closed(Option<u16>),
}
