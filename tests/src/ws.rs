//! A minimal GraphQL WebSocket client for the tests: `graphql-transport-ws` by default, any
//! subprotocol with [`WsClient::open`], raw frames, and close codes.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

/// How long any one message is waited for.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

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

/// What the server sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Json(Value),
    /// A close frame (code and reason), or `None` when the connection ended without one.
    Closed(Option<(u16, String)>),
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
        let client = match Self::open_with(url, "graphql-transport-ws", origin).await? {
            Ok(client) => client,
            Err(status) => return Ok(WsOutcome::Refused(status)),
        };
        client.init(payload).await
    }

    /// Opens a socket with `protocol` and sends nothing; fails when the upgrade is refused.
    pub async fn open(url: &str, protocol: &str) -> anyhow::Result<Self> {
        match Self::open_with(url, protocol, None).await? {
            Ok(client) => Ok(client),
            Err(status) => anyhow::bail!("the upgrade was refused with {status}"),
        }
    }

    /// Opens a socket; `Err(status)` when the HTTP upgrade is refused.
    async fn open_with(
        url: &str,
        protocol: &str,
        origin: Option<&str>,
    ) -> anyhow::Result<Result<Self, u16>> {
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(protocol)?);
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin)?);
        }
        match connect_async(request).await {
            Ok((stream, _)) => Ok(Ok(Self { stream })),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Ok(Err(response.status().as_u16()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends `connection_init` with `payload` and waits for the acknowledgement.
    pub async fn init(mut self, payload: Value) -> anyhow::Result<WsOutcome> {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await?;
        match self.next_incoming().await? {
            Incoming::Json(message) if message["type"] == "connection_ack" => {
                Ok(WsOutcome::Acked(Box::new(self)))
            }
            Incoming::Json(message) => anyhow::bail!("expected connection_ack, got {message}"),
            Incoming::Closed(frame) => Ok(WsOutcome::Closed(frame.map(|(code, _)| code))),
        }
    }

    pub async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        self.send_text(&message.to_string()).await
    }

    /// Sends one text frame as it is.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.stream.send(Message::Text(text.into())).await?;
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

    /// Runs a query or mutation as operation `id` and returns its `payload` (data and
    /// errors), after the server completed it. The socket must carry nothing else meanwhile.
    pub async fn run(&mut self, id: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        self.subscribe(id, query, variables).await?;
        let next = self.next_json().await?;
        anyhow::ensure!(next["type"] == "next" && next["id"] == id, "{next}");
        let complete = self.next_json().await?;
        anyhow::ensure!(
            complete["type"] == "complete" && complete["id"] == id,
            "{complete}"
        );
        Ok(next["payload"].clone())
    }

    /// Ends operation `id` from the client's side.
    pub async fn complete(&mut self, id: &str) -> anyhow::Result<()> {
        self.send(json!({ "id": id, "type": "complete" })).await
    }

    /// Closes the socket from the client's side.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.stream.close(None).await?;
        Ok(())
    }

    /// The next GraphQL message (pings are answered and skipped), within 30 s.
    pub async fn next_json(&mut self) -> anyhow::Result<Value> {
        match self.next_incoming().await? {
            Incoming::Json(message) => Ok(message),
            Incoming::Closed(frame) => anyhow::bail!("socket closed ({frame:?})"),
        }
    }

    /// Reads until the server closes the socket (within 30 s of each message), returning the
    /// close frame and the messages that came before it.
    pub async fn until_closed(&mut self) -> anyhow::Result<(Option<(u16, String)>, Vec<Value>)> {
        let mut before = Vec::new();
        loop {
            match self.next_incoming().await? {
                Incoming::Json(message) => before.push(message),
                Incoming::Closed(frame) => return Ok((frame, before)),
            }
        }
    }

    /// The next message or close (pings are answered and skipped), within 30 s.
    pub async fn next_incoming(&mut self) -> anyhow::Result<Incoming> {
        loop {
            let message = tokio::time::timeout(MESSAGE_TIMEOUT, self.stream.next())
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
                    return Ok(Incoming::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ));
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}
