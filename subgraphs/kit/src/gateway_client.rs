//! How platform components query the supergraph *as a principal*: a report run reads its
//! rows through the gateway as the report's owner, so field policies, tenant isolation
//! and row rules apply exactly as they do to the owner's own requests, and no component
//! reads another domain's tables.
//!
//! [`GatewayClient`] is implemented by the portal: in one process it calls the gateway
//! directly; across processes it sends each request over HTTP with a delegated credential
//! (an internal token addressed to the gateway, minted per request, naming the actor and
//! its [`crate::actor::Delegation`]). Subgraph schemas are built before the gateway that
//! composes them exists, so they hold a [`LateGateway`] that the portal fills in once the
//! gateway is up.

use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::actor::{Actor, RequestMeta};
use crate::error::{ApiError, ApiResult};

/// A GraphQL response: data and errors, as the gateway answers them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GraphResponse {
    /// The data (absent when the request failed before execution).
    #[serde(default)]
    pub data: Option<Value>,
    /// Errors, possibly alongside partial data.
    #[serde(default)]
    pub errors: Vec<GraphError>,
}

/// One GraphQL error.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GraphError {
    /// Its message.
    pub message: String,
    /// Where in the response it applies.
    #[serde(default)]
    pub path: Option<Vec<Value>>,
    /// `code` and other facts.
    #[serde(default)]
    pub extensions: Option<Map<String, Value>>,
}

impl GraphError {
    /// Its `extensions.code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }

    /// Its path joined with dots (`accounts.edges.0.node.balance`), or empty.
    pub fn path_text(&self) -> String {
        self.path
            .iter()
            .flatten()
            .map(|segment| match segment {
                Value::String(name) => name.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Queries the supergraph through the gateway.
#[async_trait::async_trait]
pub trait GatewayClient: Send + Sync {
    /// Runs the query (never a mutation or subscription) `query` with `variables` as
    /// `actor`, through the gateway's authentication of delegated actors, authorization
    /// and planning. `Err` only when the gateway could not be asked or answered nonsense;
    /// GraphQL errors come back in the response.
    async fn query(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse>;

    /// Runs the mutation `query` with `variables` as `actor` (a connector's service
    /// account writing what it synchronizes), through the same authentication,
    /// authorization and planning as any client's mutation — so the owning domain's
    /// validation, audit events and domain events apply.
    async fn mutate(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse>;

    /// The supergraph's SDL as the gateway serves it now (for validating documents before
    /// they are stored).
    async fn supergraph_sdl(&self) -> ApiResult<Arc<str>>;
}

/// A [`GatewayClient`] set once the gateway exists; until then every call fails with an
/// internal error (no request can reach a subgraph before its gateway is up).
#[derive(Clone, Default)]
pub struct LateGateway {
    inner: Arc<OnceLock<Arc<dyn GatewayClient>>>,
}

impl std::fmt::Debug for LateGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateGateway")
            .field("set", &self.inner.get().is_some())
            .finish()
    }
}

impl LateGateway {
    /// A client ready at once.
    pub fn ready(client: Arc<dyn GatewayClient>) -> Self {
        let late = Self::default();
        late.set(client);
        late
    }

    /// Fills it in (later calls are ignored: the first gateway stays).
    pub fn set(&self, client: Arc<dyn GatewayClient>) {
        if self.inner.set(client).is_err() {
            tracing::debug!("the gateway client was already set");
        }
    }

    fn get(&self) -> ApiResult<&Arc<dyn GatewayClient>> {
        self.inner
            .get()
            .ok_or_else(|| ApiError::internal("the gateway is not up yet"))
    }
}

#[async_trait::async_trait]
impl GatewayClient for LateGateway {
    async fn query(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse> {
        self.get()?.query(actor, meta, query, variables).await
    }

    async fn mutate(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse> {
        self.get()?.mutate(actor, meta, query, variables).await
    }

    async fn supergraph_sdl(&self) -> ApiResult<Arc<str>> {
        self.get()?.supergraph_sdl().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unset_gateway_fails_instead_of_waiting() {
        let late = LateGateway::default();
        let actor = Actor::anonymous();
        let asked = late
            .query(
                &actor,
                &RequestMeta::default(),
                "{ __typename }",
                Map::new(),
            )
            .await;
        assert!(matches!(asked, Err(ApiError::Internal(_))));
    }

    #[test]
    fn error_paths_read_as_dotted_text() {
        let error: GraphError = serde_json::from_value(serde_json::json!({
            "message": "denied",
            "path": ["accounts", "edges", 0, "node", "balance"],
            "extensions": { "code": "FORBIDDEN" }
        }))
        .unwrap_or_default();
        assert_eq!(error.code(), Some("FORBIDDEN"));
        assert_eq!(error.path_text(), "accounts.edges.0.node.balance");
    }
}
