//! GraphQL over WebSocket: the `graphql-transport-ws` protocol of the `graphql-ws`
//! library, at `GET /graphql` with `Upgrade: websocket`.
//!
//! - The client has [`INIT_WAIT`] to send `connection_init`; its payload may carry the
//!   credential (`authorization: "Bearer …"` or `x-api-key`), else the upgrade request's
//!   headers do. A refused credential closes with 4403; the gateway answers
//!   `connection_ack`.
//! - `subscribe` runs any operation (a query or mutation answers with one `next`); each
//!   subscription is authorized as it starts and re-checked while it lasts (see
//!   [`crate::subscribe`]), so a revoked session or an expired token ends it with an
//!   `UNAUTHENTICATED` `next` and `complete`.
//! - The protocol's close codes: 4400 invalid message, 4401 subscribe before the ack,
//!   4403 credential refused, 4406 subprotocol not acceptable, 4408 no `connection_init`
//!   in time, 4409 a subscription id in use, 4429 a second `connection_init`, and 1001
//!   when the gateway shuts down (after completing every stream) — 1013 when it is full.
//! - Limits: [`Limits::max_websocket_connections`], subscriptions per connection and per
//!   principal; a client that does not read its messages for [`WRITE_PATIENCE`] is
//!   disconnected (its subscriptions' own buffers end them with `SLOW_CONSUMER` before).
//!
//! [`Limits::max_websocket_connections`]: crate::limits::Limits::max_websocket_connections

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response as HttpResponse;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use portal_kit::RequestMeta;

use crate::gateway::AllowedOperations;
use crate::response::{GraphQLError, Request};
use crate::subgraph::Caller;
use crate::transport::AppState;

/// The subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// How long a new connection may take to send `connection_init`.
pub const INIT_WAIT: Duration = Duration::from_secs(3);

/// How long one message may wait for a client that does not read before the connection
/// is dropped.
pub const WRITE_PATIENCE: Duration = Duration::from_secs(30);

/// How often the gateway pings an open connection (dead peers are noticed).
pub const PING_EVERY: Duration = Duration::from_secs(30);

/// Messages waiting for the socket, per connection.
const OUTGOING: usize = 32;

/// Open WebSocket connections of one gateway.
#[derive(Default)]
pub struct Connections(pub(crate) AtomicUsize);

impl Connections {
    /// How many are open.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

struct ConnectionSlot(Arc<AppState>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.gateway.websockets().0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts the upgrade of a `GET /graphql` request.
pub fn upgrade(
    state: Arc<AppState>,
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
    meta: RequestMeta,
) -> HttpResponse {
    let limit = state.gateway.limits().max_websocket_connections;
    let full = state.gateway.websockets().0.fetch_add(1, Ordering::AcqRel) >= limit;
    let slot = ConnectionSlot(state.clone());
    let closing = *state.gateway.closing().borrow();
    let credentials = crate::auth::credential_headers(headers, None);
    upgrade
        .protocols([PROTOCOL])
        // Small buffers: most connections idle; a large message grows them as it arrives
        // (read in chunks of this size).
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(crate::transport::MAX_BODY_BYTES)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            if full || closing {
                let mut socket = socket;
                let _ = socket
                    .send(close(
                        1013,
                        "the gateway is at its connection limit; retry later",
                    ))
                    .await;
                return;
            }
            if socket.protocol().is_none() {
                let mut socket = socket;
                let _ = socket.send(close(4406, "Subprotocol not acceptable")).await;
                return;
            }
            Connection::new(state, credentials, meta)
                .serve(socket)
                .await;
        })
}

/// A client message of the protocol.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

/// What ends a connection: a close code and reason.
struct Close(u16, String);

struct Connection {
    state: Arc<AppState>,
    /// Shared by the connection's subscriptions (each re-checks them).
    credentials: Arc<HeaderMap>,
    meta: RequestMeta,
    out: Option<mpsc::Sender<Message>>,
    active: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl Connection {
    fn new(state: Arc<AppState>, credentials: HeaderMap, meta: RequestMeta) -> Self {
        Self {
            state,
            credentials: Arc::new(credentials),
            meta,
            out: None,
            active: HashMap::new(),
        }
    }

    async fn serve(mut self, socket: WebSocket) {
        let (mut sink, mut source) = socket.split();
        // `futures`' channels: an empty one holds a few hundred bytes less than Tokio's
        // (which allocate a block of 32 slots up front), in every idle connection.
        let (out, mut outgoing) = mpsc::channel::<Message>(OUTGOING);
        self.out = Some(out.clone());
        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.next().await {
                let last = matches!(message, Message::Close(_));
                match tokio::time::timeout(WRITE_PATIENCE, sink.send(message)).await {
                    Ok(Ok(())) if !last => {}
                    _ => break,
                }
            }
            let _ = sink.close().await;
        });
        // The connection's own sender (each operation gets a clone of `self.out`).
        let mut own = out;
        let ended = self.run(&mut source, &mut own).await;
        for (_, task) in self.active.drain() {
            task.abort();
        }
        if let Some(Close(code, reason)) = ended {
            let _ = own.send(close(code, &reason)).await;
        }
        drop(own);
        self.out = None;
        let _ = writer.await;
    }

    /// Runs the protocol until the connection ends; `Some` closes it with that code.
    async fn run(
        &mut self,
        source: &mut futures::stream::SplitStream<WebSocket>,
        out: &mut mpsc::Sender<Message>,
    ) -> Option<Close> {
        // Boxed, like `handle` below: what authenticating takes is held only while it runs,
        // not for the life of every idle connection.
        if let Err(close) = Box::pin(self.initialise(source, out)).await {
            return close;
        }
        let (done, mut finished) = mpsc::unbounded::<String>();
        let mut closing = self.state.gateway.closing();
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                received = source.next() => {
                    heard = tokio::time::Instant::now();
                    let text = match received {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            return Some(Close(4400, "Binary messages are not supported".into()));
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
                    };
                    if let Err(close) = Box::pin(self.handle(&text, &done)).await {
                        return Some(close);
                    }
                }
                Some(id) = finished.next() => {
                    self.active.remove(&id);
                }
                () = crate::subscribe::closed(&mut closing) => {
                    // Every stream completes itself; wait for their `complete`s to go out.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    while !self.active.is_empty() {
                        match tokio::time::timeout_at(deadline, finished.next()).await {
                            Ok(Some(id)) => {
                                self.active.remove(&id);
                            }
                            _ => break,
                        }
                    }
                    return Some(Close(1001, "the gateway is shutting down".into()));
                }
                _ = ping.tick() => {
                    // A peer that answered nothing (not even a pong) for two pings is gone.
                    if heard.elapsed() > PING_EVERY * 2 {
                        return None;
                    }
                    // A full queue is busy, not dead: that ping can be skipped.
                    let _ = out.try_send(Message::Ping(Default::default()));
                }
            }
        }
    }

    /// Waits for `connection_init` and acknowledges it.
    async fn initialise(
        &mut self,
        source: &mut futures::stream::SplitStream<WebSocket>,
        out: &mut mpsc::Sender<Message>,
    ) -> Result<(), Option<Close>> {
        let deadline = tokio::time::Instant::now() + INIT_WAIT;
        loop {
            let received = match tokio::time::timeout_at(deadline, source.next()).await {
                Err(_) => {
                    return Err(Some(Close(
                        4408,
                        "Connection initialisation timeout".into(),
                    )));
                }
                Ok(received) => received,
            };
            let text = match received {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Binary(_))) => {
                    return Err(Some(Close(
                        4400,
                        "Binary messages are not supported".into(),
                    )));
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(None),
            };
            let message = parse(&text).map_err(Some)?;
            match message.kind.as_str() {
                "connection_init" => {
                    if let Some(payload) = &message.payload {
                        let Value::Object(payload) = payload else {
                            return Err(Some(Close(
                                4400,
                                "Invalid message received: the payload must be an object".into(),
                            )));
                        };
                        let from_payload =
                            crate::auth::credential_headers(&HeaderMap::new(), Some(payload));
                        if !from_payload.is_empty() {
                            self.credentials = Arc::new(from_payload);
                        }
                    }
                    if let Err(error) = self
                        .state
                        .authentication
                        .authenticate(&self.credentials)
                        .await
                    {
                        tracing::info!(error = %error.message, "WebSocket connection refused");
                        return Err(Some(Close(4403, "Forbidden".into())));
                    }
                    send(out, json!({ "type": "connection_ack" })).await;
                    return Ok(());
                }
                "ping" => {
                    send(out, json!({ "type": "pong" })).await;
                }
                "pong" => {}
                "subscribe" => return Err(Some(Close(4401, "Unauthorized".into()))),
                _ => return Err(Some(invalid("unexpected message type"))),
            }
        }
    }

    /// Handles one message after the acknowledgement.
    async fn handle(
        &mut self,
        text: &str,
        done: &mpsc::UnboundedSender<String>,
    ) -> Result<(), Close> {
        let message = parse(text)?;
        match message.kind.as_str() {
            "ping" => {
                if let Some(out) = &mut self.out {
                    send(out, json!({ "type": "pong" })).await;
                }
            }
            "pong" => {}
            "connection_init" => {
                return Err(Close(4429, "Too many initialisation requests".into()));
            }
            "subscribe" => {
                let id = message
                    .id
                    .filter(|id| !id.is_empty() && id.len() <= 128)
                    .ok_or_else(|| invalid("`subscribe` needs an `id` (1-128 characters)"))?;
                let request = message
                    .payload
                    .and_then(|payload| serde_json::from_value::<Request>(payload).ok())
                    .ok_or_else(|| invalid("`subscribe` needs a payload with a `query`"))?;
                if self.active.contains_key(&id) {
                    return Err(Close(4409, format!("Subscriber for {id} already exists")));
                }
                self.start(id, request, done.clone());
            }
            "complete" => {
                if let Some(id) = message.id
                    && let Some(task) = self.active.remove(&id)
                {
                    task.abort();
                }
            }
            _ => return Err(invalid("unexpected message type")),
        }
        Ok(())
    }

    /// Starts the operation `id`: its responses as `next`, then `complete` — or `error`
    /// when it is refused before it runs.
    fn start(&mut self, id: String, request: Request, done: mpsc::UnboundedSender<String>) {
        let Some(mut out) = self.out.clone() else {
            return;
        };
        let max = self.state.gateway.limits().max_subscriptions_per_connection;
        if self.active.len() >= max {
            let error = GraphQLError::new(
                format!("at most {max} operations may run on one connection"),
                "TOO_MANY_SUBSCRIPTIONS",
            );
            tokio::spawn(async move {
                send(
                    &mut out,
                    json!({ "id": id, "type": "error", "payload": [error] }),
                )
                .await;
            });
            return;
        }
        let state = self.state.clone();
        let credentials = self.credentials.clone();
        let mut meta = self.meta.clone();
        meta.request_id = Some(uuid::Uuid::now_v7().to_string());
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            // Opening runs boxed: its large future is freed once the stream runs, so an
            // idle subscription holds little more than its stream.
            let opened = Box::pin(open(state, credentials, meta, request)).await;
            match opened {
                Err(errors) => {
                    let error = json!({ "id": task_id, "type": "error", "payload": errors });
                    send(&mut out, error).await;
                }
                Ok(mut responses) => {
                    while let Some(response) = responses.next().await {
                        let next = json!({ "id": task_id, "type": "next", "payload": response });
                        if !send(&mut out, next).await {
                            break;
                        }
                    }
                    send(&mut out, json!({ "id": task_id, "type": "complete" })).await;
                }
            }
            let _ = done.unbounded_send(task_id);
        });
        self.active.insert(id, task);
    }
}

/// Authenticates `credentials` again (they may have lapsed since `connection_init`) and
/// starts `request`: its responses, or the errors that refuse it.
async fn open(
    state: Arc<AppState>,
    credentials: Arc<HeaderMap>,
    meta: RequestMeta,
    mut request: Request,
) -> Result<crate::subscribe::Responses, Vec<GraphQLError>> {
    let actor = state
        .authentication
        .authenticate(&credentials)
        .await
        .map_err(|error| vec![error])?;
    // Each operation on a socket counts against the same limits as a request would.
    if let Some(limiter) = &state.rate_limiter {
        let mut checks = crate::transport::principal_limits(&actor, &credentials);
        if let Some(ip) = &meta.source_ip {
            checks.insert(
                0,
                (
                    crate::rate_limit::Scope::Ip,
                    ip.parse()
                        .map(crate::rate_limit::address_key)
                        .unwrap_or_else(|_| ip.clone()),
                ),
            );
        }
        if let Err(refusal) = limiter.check(&checks).await {
            return Err(vec![crate::transport::rate_limited_error(&refusal)]);
        }
    }
    let caller = Caller { actor, meta };
    state
        .gateway
        .persisted_queries()
        .resolve(&mut request)
        .map_err(|error| vec![error])?;
    let recheck = crate::transport::recheck(&state.authentication, credentials);
    state
        .gateway
        .subscribe(request, &caller, AllowedOperations::Streaming, recheck)
        .await
        .map_err(|refused| refused.errors)
}

/// Queues `message` for the socket; `false` when the connection is gone. Every operation
/// sends through a sender of its own (a `futures` channel's bound counts per sender).
async fn send(out: &mut mpsc::Sender<Message>, message: Value) -> bool {
    let text = serde_json::to_string(&message).unwrap_or_default();
    out.send(Message::Text(Utf8Bytes::from(text))).await.is_ok()
}

fn parse(text: &str) -> Result<ClientMessage, Close> {
    serde_json::from_str::<ClientMessage>(text).map_err(|_| invalid("not a protocol message"))
}

fn invalid(why: &str) -> Close {
    Close(4400, format!("Invalid message received: {why}"))
}

fn close(code: u16, reason: &str) -> Message {
    // A close frame's reason holds at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    }))
}
