//! The two ways platform components query the supergraph as a principal
//! ([`portal_kit::gateway_client::GatewayClient`]): directly in the gateway's process, or
//! over HTTP from another process (a worker) with a delegated credential per request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use portal_gateway::auth::{DELEGATION_HEADER, GATEWAY_AUDIENCE};
use portal_gateway::gateway::{AllowedOperations, Gateway};
use portal_gateway::response::Request;
use portal_gateway::subgraph::Caller;
use portal_kit::gateway_client::{GatewayClient, GraphError, GraphResponse};
use portal_kit::internal_token::{self, InternalTokenKey};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

/// The gateway of this process.
pub struct InProcess {
    gateway: Arc<Gateway>,
}

impl InProcess {
    /// Queries through `gateway`.
    pub fn new(gateway: Arc<Gateway>) -> Arc<Self> {
        Arc::new(Self { gateway })
    }
}

impl InProcess {
    async fn run(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
        allowed: AllowedOperations,
    ) -> GraphResponse {
        let request = Request {
            query: query.to_owned(),
            operation_name: None,
            variables: Some(variables),
            extensions: None,
        };
        let caller = Caller {
            actor: Actor {
                // The gateway decides grants from the roles, as for any request.
                grants: Vec::new(),
                ..actor.clone()
            },
            meta: meta.clone(),
        };
        let response = self.gateway.execute(request, &caller, allowed).await;
        // Only the errors change shape; the data is passed on as it is.
        let errors = response
            .errors
            .into_iter()
            .map(|error| GraphError {
                message: error.message,
                path: error
                    .path
                    .and_then(|path| serde_json::to_value(path).ok())
                    .and_then(|path| serde_json::from_value(path).ok()),
                extensions: error.extensions.map(|extensions| *extensions),
            })
            .collect();
        GraphResponse {
            data: response.data,
            errors,
        }
    }
}

#[async_trait::async_trait]
impl GatewayClient for InProcess {
    async fn query(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse> {
        Ok(self
            .run(
                actor,
                meta,
                query,
                variables,
                AllowedOperations::QueriesOnly,
            )
            .await)
    }

    async fn mutate(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse> {
        if !actor.may_write() {
            return Err(ApiError::internal(
                "a reading delegate cannot send mutations",
            ));
        }
        Ok(self
            .run(actor, meta, query, variables, AllowedOperations::All)
            .await)
    }

    async fn supergraph_sdl(&self) -> ApiResult<Arc<str>> {
        Ok(Arc::from(self.gateway.current().supergraph.sdl.as_str()))
    }
}

/// A gateway in another process, at `endpoint` (its `/graphql` URL).
pub struct OverHttp {
    endpoint: String,
    key: InternalTokenKey,
    http: reqwest::Client,
}

impl OverHttp {
    /// Queries the gateway at `endpoint`, minting each request's credential with `key`
    /// (the internal secret).
    pub fn new(endpoint: &str, key: InternalTokenKey) -> anyhow::Result<Arc<Self>> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            // A redirect would carry the credential to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Arc::new(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            key,
            http,
        }))
    }

    fn base(&self) -> &str {
        self.endpoint
            .strip_suffix("/graphql")
            .unwrap_or(&self.endpoint)
    }
}

fn unreachable_gateway(err: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("asking the gateway: {err}"))
}

impl OverHttp {
    async fn post(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse> {
        let credential = self.key.sign(GATEWAY_AUDIENCE, actor, meta);
        let response = self
            .http
            .post(&self.endpoint)
            .header(DELEGATION_HEADER, credential)
            .header(reqwest::header::ACCEPT, "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(unreachable_gateway)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable_gateway)?;
        // GraphQL-over-HTTP answers errors with 4xx and a GraphQL body; anything else
        // (a proxy's page, a 5xx) is not an answer.
        serde_json::from_slice::<GraphResponse>(&body)
            .map_err(|err| unreachable_gateway(format!("status {status}, unreadable body ({err})")))
    }
}

#[async_trait::async_trait]
impl GatewayClient for OverHttp {
    async fn query(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse> {
        // Sent as a reader, so the gateway refuses anything but queries.
        let mut reader = actor.clone();
        if let Some(delegation) = reader.delegation.as_mut() {
            delegation.writes = false;
        }
        self.post(&reader, meta, query, variables).await
    }

    async fn mutate(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Map<String, Value>,
    ) -> ApiResult<GraphResponse> {
        if !actor.may_write() {
            return Err(ApiError::internal(
                "a reading delegate cannot send mutations",
            ));
        }
        self.post(actor, meta, query, variables).await
    }

    async fn supergraph_sdl(&self) -> ApiResult<Arc<str>> {
        let token = self.key.sign(
            GATEWAY_AUDIENCE,
            &Actor::anonymous(),
            &RequestMeta::default(),
        );
        let response = self
            .http
            .get(format!("{}/internal/supergraph", self.base()))
            .header(internal_token::HEADER, token)
            .send()
            .await
            .map_err(unreachable_gateway)?;
        if !response.status().is_success() {
            return Err(unreachable_gateway(format!(
                "the supergraph answered {}",
                response.status()
            )));
        }
        let text = response.text().await.map_err(unreachable_gateway)?;
        Ok(Arc::from(text))
    }
}
