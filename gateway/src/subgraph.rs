//! Transports to subgraphs: HTTP (process-per-role) and whatever in-process transport the
//! all-in-one binary plugs in. The executor only sees [`SubgraphClient`].

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use portal_kit::internal_token::{self, InternalTokenKey};
use portal_kit::{Actor, RequestMeta};

use crate::response::GraphQLError;

/// Who a subgraph request is made for.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The authenticated actor.
    pub actor: Actor,
    /// Request facts for audit events.
    pub meta: RequestMeta,
}

/// One request to a subgraph.
#[derive(Clone, Debug, Serialize)]
pub struct SubgraphRequest {
    /// The operation text from the query plan.
    pub query: String,
    /// Variables: forwarded client variables plus representations.
    pub variables: Map<String, Value>,
}

/// A subgraph's GraphQL response.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SubgraphResponse {
    /// Data, if any.
    #[serde(default)]
    pub data: Option<Value>,
    /// Errors, if any.
    #[serde(default)]
    pub errors: Vec<GraphQLError>,
}

/// Why a subgraph could not be asked or did not answer with GraphQL.
#[derive(Debug, thiserror::Error)]
pub enum SubgraphError {
    /// Connection refused, reset, DNS, …
    #[error("subgraph unreachable")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No answer within the configured timeout.
    #[error("subgraph timed out")]
    Timeout,
    /// An answer that is not a GraphQL response (HTTP status, body).
    #[error("subgraph returned an invalid response (HTTP {status})")]
    InvalidResponse {
        /// HTTP status received.
        status: u16,
    },
}

/// A way to send GraphQL requests to one subgraph.
pub trait SubgraphClient: Send + Sync {
    /// Sends `request` on behalf of `caller`.
    fn execute<'a>(
        &'a self,
        request: SubgraphRequest,
        caller: &'a Caller,
    ) -> BoxFuture<'a, Result<SubgraphResponse, SubgraphError>>;
}

/// Subgraph clients by subgraph name.
pub type SubgraphClients = std::collections::HashMap<String, Arc<dyn SubgraphClient>>;

/// A subgraph reached over HTTP, with pooled keep-alive connections and a timeout. Each
/// request carries an internal token naming the caller.
pub struct HttpSubgraph {
    client: reqwest::Client,
    url: String,
    key: InternalTokenKey,
    timeout: Duration,
}

impl HttpSubgraph {
    /// A client for the subgraph at `url`, signing with `key`.
    pub fn new(
        client: reqwest::Client,
        url: String,
        key: InternalTokenKey,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            url,
            key,
            timeout,
        }
    }
}

impl SubgraphClient for HttpSubgraph {
    fn execute<'a>(
        &'a self,
        request: SubgraphRequest,
        caller: &'a Caller,
    ) -> BoxFuture<'a, Result<SubgraphResponse, SubgraphError>> {
        Box::pin(async move {
            let token = self.key.sign(&caller.actor, &caller.meta);
            let sent = self
                .client
                .post(&self.url)
                .header(internal_token::HEADER, token)
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&request)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(classify)?;
            let status = sent.status().as_u16();
            let body = sent.bytes().await.map_err(classify)?;
            serde_json::from_slice::<SubgraphResponse>(&body)
                .map_err(|_| SubgraphError::InvalidResponse { status })
        })
    }
}

fn classify(err: reqwest::Error) -> SubgraphError {
    if err.is_timeout() {
        SubgraphError::Timeout
    } else {
        SubgraphError::Unreachable(Box::new(err))
    }
}
