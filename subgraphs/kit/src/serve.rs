//! Serving one subgraph over HTTP: `POST /graphql` for the gateway, `GET /health`.
//!
//! Every GraphQL request must carry an internal token signed by the gateway for this very
//! subgraph ([`crate::internal_token`]). The token is checked from the headers alone,
//! before any of the body is read: without a valid one the request is refused with 401
//! and costs nothing. A request that accepts `text/event-stream` gets the operation's
//! responses as server-sent events — how the gateway follows a subscription over HTTP. Bodies must be JSON and at most [`MAX_BODY_BYTES`]. The actor the
//! token names is handed to resolvers as request data.
//!
//! When the subgraph shuts down ([`router_until`]), its open event streams end at once
//! *without* `complete`: the gateway tells each client `SUBGRAPH_STREAM_ENDED`, and the
//! client subscribes again (to a replica that is up) instead of taking the end as final.

use std::sync::Arc;

use async_graphql::Executor;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::actor::{Actor, RequestMeta};
use crate::error::ErrorCode;
use crate::internal_token::{self, InternalTokenKey};

/// Largest request body a subgraph accepts.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

struct Gatekeeper {
    name: &'static str,
    key: InternalTokenKey,
}

/// Tells a subgraph's HTTP app that it shuts down (`true`).
pub type Closing = tokio::sync::watch::Receiver<bool>;

/// The HTTP app of the subgraph `name` whose schema is `executor`, trusting tokens signed
/// with `key` for `name`.
pub fn router<E: Executor + 'static>(
    name: &'static str,
    executor: E,
    key: InternalTokenKey,
) -> Router {
    router_until(name, executor, key, None)
}

/// [`router`] whose open event streams end when `closing` (if any) turns `true`.
pub fn router_until<E: Executor + 'static>(
    name: &'static str,
    executor: E,
    key: InternalTokenKey,
    closing: Option<Closing>,
) -> Router {
    let gatekeeper = Arc::new(Gatekeeper { name, key });
    let graphql = post(graphql::<E>)
        .with_state(Arc::new(Endpoint { executor, closing }))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(middleware::from_fn_with_state(gatekeeper, admit));
    Router::new()
        .route("/graphql", graphql)
        .route("/health", get(|| async { "ok" }))
}

/// Checks the internal token and the media type from the headers, before the body.
async fn admit(
    State(gatekeeper): State<Arc<Gatekeeper>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(internal_token::HEADER)
        .and_then(|value| value.to_str().ok());
    let claims = match token.map(|token| gatekeeper.key.verify(gatekeeper.name, token)) {
        Some(Ok(claims)) => claims,
        Some(Err(err)) => {
            tracing::warn!(error = %err, "subgraph request with an invalid internal token");
            return unauthenticated();
        }
        None => return unauthenticated(),
    };
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    request.extensions_mut().insert(claims);
    next.run(request).await
}

/// What the GraphQL route serves: the schema, and when to end its streams.
struct Endpoint<E> {
    executor: E,
    closing: Option<Closing>,
}

async fn graphql<E: Executor>(
    State(endpoint): State<Arc<Endpoint<E>>>,
    Extension((actor, meta)): Extension<(Actor, RequestMeta)>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    tracing::debug!(
        actor_kind = ?actor.kind,
        streaming = wants_event_stream(&headers),
        "subgraph request"
    );
    let largest = crate::pagination::largest_page_for(&actor);
    let request = crate::variables::leave_out_absent(request.into_inner())
        .data(actor)
        .data(meta);
    if wants_event_stream(&headers) {
        // The answer starts once the field follows events: nothing committed later is
        // missed by the gateway that asked.
        let (ready, opened) = crate::subscription::ready_signal();
        let responses = endpoint.executor.execute_stream(request.data(ready), None);
        let responses = crate::subscription::until_ready(responses, opened).await;
        return event_stream(responses, endpoint.closing.clone());
    }
    let response =
        crate::pagination::with_largest_page_of(largest, endpoint.executor.execute(request)).await;
    GraphQLResponse::from(response).into_response()
}

/// Whether the gateway asks for a subscription's events (`Accept: text/event-stream`).
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// How often an idle event stream carries a comment, so dead connections are noticed.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// A subscription's responses as server-sent events (the `graphql-sse` protocol's
/// distinct-connections mode): `next` per response, `complete` at the end, comments as
/// heartbeats. Ends without `complete` when `closing` turns `true`.
fn event_stream(
    responses: BoxStream<'static, async_graphql::Response>,
    closing: Option<Closing>,
) -> Response {
    use futures::StreamExt;
    let events = responses
        .map(|response| {
            let data = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
            sse_event("next", &data)
        })
        .chain(futures::stream::once(async { sse_event("complete", "") }));
    let shut_down = async move {
        match closing {
            // A dropped sender closes too: the process is going away.
            Some(mut closing) => {
                let _ = closing.wait_for(|closing| *closing).await;
            }
            None => std::future::pending().await,
        }
    };
    let events = events.take_until(Box::pin(shut_down));
    let body = with_heartbeats(events, HEARTBEAT, Bytes::from_static(b":\n\n"))
        .map(Ok::<_, std::convert::Infallible>);
    let mut response = Response::new(axum::body::Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `items`, with `heartbeat` whenever nothing was sent for `every`; ends with `items`.
pub fn with_heartbeats(
    items: impl futures::Stream<Item = Bytes> + Send + 'static,
    every: std::time::Duration,
    heartbeat: Bytes,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    use futures::StreamExt;
    let items = Box::pin(items);
    futures::stream::unfold(Some(items), move |items| {
        let heartbeat = heartbeat.clone();
        async move {
            let mut items = items?;
            match tokio::time::timeout(every, items.next()).await {
                Ok(Some(item)) => Some((item, Some(items))),
                Ok(None) => None,
                Err(_) => Some((heartbeat, Some(items))),
            }
        }
    })
}

/// One server-sent event: `event: <name>` and `data:` lines (one per line of `data`).
pub fn sse_event(name: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + name.len() + 16);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

fn unauthenticated() -> Response {
    let body = serde_json::json!({
        "errors": [{
            "message": "subgraph requests must come from the gateway",
            "extensions": { "code": ErrorCode::Unauthenticated.as_str() }
        }]
    });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}
