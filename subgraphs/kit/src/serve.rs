//! Serving one subgraph over HTTP: `POST /graphql` for the gateway, `GET /health`.
//!
//! Every GraphQL request must carry an internal token signed by the gateway for this very
//! subgraph ([`crate::internal_token`]). The token is checked from the headers alone,
//! before any of the body is read: without a valid one the request is refused with 401
//! and costs nothing. Bodies must be JSON and at most [`MAX_BODY_BYTES`]. The actor the
//! token names is handed to resolvers as request data.

use std::sync::Arc;

use async_graphql::Executor;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::actor::{Actor, RequestMeta};
use crate::error::ErrorCode;
use crate::internal_token::{self, InternalTokenKey};

/// Largest request body a subgraph accepts.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

struct Gatekeeper {
    name: &'static str,
    key: InternalTokenKey,
}

/// The HTTP app of the subgraph `name` whose schema is `executor`, trusting tokens signed
/// with `key` for `name`.
pub fn router<E: Executor + 'static>(
    name: &'static str,
    executor: E,
    key: InternalTokenKey,
) -> Router {
    let gatekeeper = Arc::new(Gatekeeper { name, key });
    let graphql = post(graphql::<E>)
        .with_state(Arc::new(executor))
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

async fn graphql<E: Executor>(
    State(executor): State<Arc<E>>,
    Extension((actor, meta)): Extension<(Actor, RequestMeta)>,
    request: GraphQLRequest,
) -> Response {
    let request = request.into_inner().data(actor).data(meta);
    GraphQLResponse::from(executor.execute(request).await).into_response()
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
