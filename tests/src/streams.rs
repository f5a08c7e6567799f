//! Test clients of the gateway's streaming transports: GraphQL over WebSocket
//! (`graphql-transport-ws`), over server-sent events and over `multipart/mixed`.

use std::time::Duration;

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// How long a test waits for one message before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `graphql-transport-ws` client connection.
pub struct WsClient {
    socket: Socket,
}

/// How a WebSocket connection ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    /// The close code.
    pub code: u16,
    /// The reason.
    pub reason: String,
}

impl WsClient {
    /// Opens a WebSocket to `endpoint` (an `http://…/graphql` URL) offering `protocol`.
    pub async fn open(endpoint: &str, protocol: Option<&str>) -> anyhow::Result<Self> {
        let url = endpoint.replacen("http://", "ws://", 1);
        let mut request = url.into_client_request()?;
        if let Some(protocol) = protocol {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_str(protocol)?);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { socket })
    }

    /// Opens a connection and completes `connection_init` with `payload`; fails unless the
    /// gateway acknowledges.
    pub async fn connect(endpoint: &str, payload: Value) -> anyhow::Result<Self> {
        let mut client = Self::open(endpoint, Some("graphql-transport-ws")).await?;
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await?;
        let ack = client.next().await?;
        anyhow::ensure!(ack["type"] == "connection_ack", "not acknowledged: {ack}");
        Ok(client)
    }

    /// Sends one protocol message.
    pub async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await?;
        Ok(())
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Starts operation `id`.
    pub async fn subscribe(
        &mut self,
        id: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<()> {
        self.send(json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables }
        }))
        .await
    }

    /// The next protocol message (skipping WebSocket pings); fails on close or timeout.
    pub async fn next(&mut self) -> anyhow::Result<Value> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .context("no message in time")?
                .context("connection ended")??;
            match message {
                Message::Text(text) => return Ok(serde_json::from_str(&text)?),
                Message::Close(frame) => anyhow::bail!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Waits for the connection to close and returns how.
    pub async fn closed(&mut self) -> anyhow::Result<Closed> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .context("not closed in time")?;
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ok(Closed {
                        code: u16::from(frame.code),
                        reason: frame.reason.to_string(),
                    });
                }
                Some(Ok(Message::Close(None))) | None => {
                    return Ok(Closed {
                        code: 1005,
                        reason: String::new(),
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => anyhow::bail!("connection failed: {err}"),
            }
        }
    }
}

/// An open server-sent events or multipart stream of GraphQL responses.
pub struct HttpStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    events: portal_gateway::sse::SseDecoder,
    pending: std::collections::VecDeque<(String, Value)>,
    multipart: bool,
    /// The response's status.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: String,
}

/// `Accept` of Apollo's multipart subscription protocol.
pub const MULTIPART_ACCEPT: &str = "multipart/mixed;subscriptionSpec=\"1.0\", application/json";

impl HttpStream {
    /// Posts `query` to `endpoint` with `accept` (`text/event-stream` or
    /// [`MULTIPART_ACCEPT`]) and `headers`.
    pub async fn post(
        http: &reqwest::Client,
        endpoint: &str,
        accept: &str,
        headers: &[(&str, String)],
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Self> {
        let mut request = http
            .post(endpoint)
            .header("accept", accept)
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            status: response.status().as_u16(),
            multipart: content_type.starts_with("multipart/mixed"),
            content_type,
            response,
            buffer: Vec::new(),
            events: Default::default(),
            pending: Default::default(),
        })
    }

    /// The body of a refused request.
    pub async fn body(self) -> anyhow::Result<Value> {
        Ok(self.response.json().await?)
    }

    /// The next event: `("next", response)` / `("complete", null)` for SSE, `("part",
    /// json)` for multipart (heartbeats `{}` included), `("end", null)` at the end.
    pub async fn next(&mut self) -> anyhow::Result<(String, Value)> {
        loop {
            if let Some(event) = self.take()? {
                return Ok(event);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .context("no event in time")??;
            match chunk {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(("end".into(), Value::Null)),
            }
        }
    }

    /// The next event that is not a heartbeat.
    pub async fn next_data(&mut self) -> anyhow::Result<(String, Value)> {
        loop {
            let (kind, value) = self.next().await?;
            if !(kind == "part" && value == json!({})) {
                return Ok((kind, value));
            }
        }
    }

    fn take(&mut self) -> anyhow::Result<Option<(String, Value)>> {
        if self.multipart {
            let text = String::from_utf8_lossy(&self.buffer).to_string();
            // Parts: "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{json}".
            let Some(start) = text.find("\r\n--graphql") else {
                return Ok(None);
            };
            let after = &text[start + "\r\n--graphql".len()..];
            if after.starts_with("--") {
                self.buffer.clear();
                return Ok(Some(("end".into(), Value::Null)));
            }
            let Some(body_at) = after.find("\r\n\r\n") else {
                return Ok(None);
            };
            let body = &after[body_at + 4..];
            let end = body.find("\r\n--graphql").unwrap_or(body.len());
            let Ok(json) = serde_json::from_str::<Value>(&body[..end]) else {
                return Ok(None);
            };
            let consumed = start + "\r\n--graphql".len() + body_at + 4 + end;
            self.buffer.drain(..consumed.min(self.buffer.len()));
            return Ok(Some(("part".into(), json)));
        }
        // Server-sent events: the gateway's own decoder (comments are heartbeats).
        for event in self.events.push(&std::mem::take(&mut self.buffer))? {
            let value = if event.data.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&event.data)?
            };
            self.pending.push_back((event.name, value));
        }
        Ok(self.pending.pop_front())
    }
}
