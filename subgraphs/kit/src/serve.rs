//! Serving one subgraph over HTTP: `POST /graphql` for the gateway, `GET /health`.
//!
//! Every GraphQL request must carry an internal token signed by the gateway
//! ([`crate::internal_token`]); the actor it names is handed to resolvers as request data.
//! Requests without a valid token are refused with 401 before any resolver runs.

use std::sync::Arc;

use async_graphql::Executor;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ErrorCode;
use crate::internal_token::{self, InternalTokenKey};

struct SubgraphState<E> {
    executor: E,
    key: InternalTokenKey,
}

/// The HTTP app of a subgraph whose schema is `executor`, trusting tokens signed with `key`.
pub fn router<E: Executor + 'static>(executor: E, key: InternalTokenKey) -> Router {
    let state = Arc::new(SubgraphState { executor, key });
    Router::new()
        .route("/graphql", post(graphql::<E>))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
}

async fn graphql<E: Executor>(
    State(state): State<Arc<SubgraphState<E>>>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let token = headers
        .get(internal_token::HEADER)
        .and_then(|value| value.to_str().ok());
    let verified = token.map(|token| state.key.verify(token));
    let (actor, meta) = match verified {
        Some(Ok(claims)) => claims,
        Some(Err(err)) => {
            tracing::warn!(error = %err, "subgraph request with an invalid internal token");
            return unauthenticated();
        }
        None => return unauthenticated(),
    };
    let request = request.into_inner().data(actor).data(meta);
    GraphQLResponse::from(state.executor.execute(request).await).into_response()
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
