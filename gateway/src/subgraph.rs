//! Transports to subgraphs: HTTP (process-per-role) and whatever in-process transport the
//! all-in-one binary plugs in. The executor only sees [`SubgraphClient`].

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
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
    /// This transport cannot carry subscriptions.
    #[error("subscriptions are not supported by this subgraph transport")]
    SubscriptionsUnsupported,
}

impl SubgraphError {
    /// The error code clients see for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout => "SUBGRAPH_TIMEOUT",
            Self::Unreachable(_) => "SUBGRAPH_UNAVAILABLE",
            Self::InvalidResponse { .. } => "SUBGRAPH_INVALID_RESPONSE",
            Self::SubscriptionsUnsupported => "OPERATION_NOT_SUPPORTED",
        }
    }
}

/// A subgraph subscription: one response per event, until the subgraph ends it (or the
/// stream is dropped, which ends it upstream).
pub type SubgraphStream = BoxStream<'static, SubgraphResponse>;

/// A way to send GraphQL requests to one subgraph.
pub trait SubgraphClient: Send + Sync {
    /// Sends `request` on behalf of `caller`.
    fn execute<'a>(
        &'a self,
        request: SubgraphRequest,
        caller: &'a Caller,
    ) -> BoxFuture<'a, Result<SubgraphResponse, SubgraphError>>;

    /// Opens the subscription `request` on behalf of `caller`; it is authorized once, when
    /// opened (the gateway re-checks the client's session while it lasts).
    fn subscribe<'a>(
        &'a self,
        request: SubgraphRequest,
        caller: &'a Caller,
    ) -> BoxFuture<'a, Result<SubgraphStream, SubgraphError>> {
        let _ = (request, caller);
        Box::pin(async { Err(SubgraphError::SubscriptionsUnsupported) })
    }
}

/// What clients see of errors that subgraphs return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorExposure {
    /// Errors carrying a deliberate client code (`BAD_USER_INPUT`, `NOT_FOUND`, …) pass
    /// through; every other message is replaced (the original is logged).
    #[default]
    Mask,
    /// Every subgraph message is replaced; codes and paths stay.
    MaskAll,
    /// Subgraph messages pass through unchanged (trusted subgraphs, debugging).
    Expose,
}

/// Codes a subgraph uses for deliberate, client-safe errors.
pub const CLIENT_ERROR_CODES: &[&str] = &[
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "CONFLICT",
    "RATE_LIMITED",
    "STEP_UP_REQUIRED",
    "SLOW_CONSUMER",
];

/// Message that replaces a masked subgraph error.
pub const MASKED_MESSAGE: &str = "subgraph error (details in the gateway log)";

/// How the gateway treats subgraphs: timeouts and error exposure.
#[derive(Clone, Debug)]
pub struct SubgraphSettings {
    /// Timeout of one subgraph request unless `timeouts` names the subgraph.
    pub timeout: Duration,
    /// Per-subgraph timeouts.
    pub timeouts: std::collections::HashMap<String, Duration>,
    /// What clients see of subgraph errors.
    pub errors: ErrorExposure,
}

impl Default for SubgraphSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            timeouts: Default::default(),
            errors: ErrorExposure::Mask,
        }
    }
}

impl SubgraphSettings {
    /// The timeout for `service`.
    pub fn timeout_for(&self, service: &str) -> Duration {
        self.timeouts.get(service).copied().unwrap_or(self.timeout)
    }

    /// Calls the subgraph `service` of `clients` with `call`, within its timeout: the
    /// answer, or the error a client sees (`SUBGRAPH_UNAVAILABLE` when it is not
    /// configured, else the failure's code), naming the subgraph.
    pub async fn call<'a, T>(
        &self,
        clients: &'a SubgraphClients,
        service: &str,
        call: impl FnOnce(&'a Arc<dyn SubgraphClient>) -> BoxFuture<'a, Result<T, SubgraphError>>,
    ) -> Result<T, GraphQLError> {
        let failed = |message: String, code: &str| {
            GraphQLError::new(message, code).with_extension("serviceName", Value::from(service))
        };
        let Some(client) = clients.get(service) else {
            return Err(failed(
                format!("subgraph `{service}` is not configured"),
                "SUBGRAPH_UNAVAILABLE",
            ));
        };
        let began = std::time::Instant::now();
        let span = tracing::info_span!(
            "subgraph_fetch",
            otel.name = %format_args!("subgraph {service}"),
            otel.kind = "client",
            subgraph = service,
            attempt = 1,
            outcome = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        let answered = tracing::Instrument::instrument(
            tokio::time::timeout(self.timeout_for(service), call(client)),
            span.clone(),
        )
        .await
        .unwrap_or(Err(SubgraphError::Timeout));
        span.record(
            "outcome",
            answered.as_ref().err().map_or("ok", SubgraphError::code),
        );
        crate::metrics::subgraph_fetch(
            service,
            began,
            answered.as_ref().err().map(SubgraphError::code),
        );
        answered.map_err(|err| {
            tracing::warn!(service, error = ?err, "subgraph request failed");
            failed(format!("subgraph `{service}` failed: {err}"), err.code())
        })
    }

    /// `error` as clients may see it.
    pub fn exposed(&self, mut error: GraphQLError, service: &str) -> GraphQLError {
        let deliberate = error
            .code()
            .is_some_and(|code| CLIENT_ERROR_CODES.contains(&code));
        let mask = match self.errors {
            ErrorExposure::Expose => false,
            ErrorExposure::Mask => !deliberate,
            ErrorExposure::MaskAll => true,
        };
        if mask {
            tracing::warn!(service, message = %error.message, path = ?error.path, extensions = ?error.extensions, "subgraph error masked");
            error.message = MASKED_MESSAGE.to_owned();
        }
        if self.errors != ErrorExposure::Expose
            && let Some(extensions) = error.extensions.as_mut()
        {
            // Extensions can carry stack traces or SQL: keep only what clients may use.
            extensions.retain(|key, _| matches!(key.as_str(), "code" | "field"));
        }
        error
    }
}

/// Subgraph clients by subgraph name.
pub type SubgraphClients = std::collections::HashMap<String, Arc<dyn SubgraphClient>>;

/// A subgraph reached over HTTP, with pooled keep-alive connections. Each request to a
/// subgraph that shares the gateway's secret carries an internal token naming the caller.
/// (Timeouts are the executor's, for every transport.)
pub struct HttpSubgraph {
    client: reqwest::Client,
    name: String,
    url: String,
    key: Option<InternalTokenKey>,
}

impl HttpSubgraph {
    /// A client for the subgraph `name` at `url`, signing tokens for it with `key`; with
    /// none (a subgraph that shares no secret with the gateway: someone else's), requests
    /// carry no internal token, so nothing about the caller reaches it.
    pub fn new(
        client: reqwest::Client,
        name: String,
        url: String,
        key: Option<InternalTokenKey>,
    ) -> Self {
        Self {
            client,
            name,
            url,
            key,
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
            let sent = self
                .post(caller, &request, "application/json")
                .send()
                .await
                .map_err(classify)?;
            let status = sent.status().as_u16();
            tracing::Span::current().record("http.response.status_code", status);
            let graphql_response = sent
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/graphql-response+json"));
            // Only a 2xx, or a GraphQL response media type, is a GraphQL answer; anything
            // else (a 401 from a misconfigured secret, a proxy's 502) is a failed call.
            if !(sent.status().is_success() || graphql_response) {
                if status == 401 {
                    tracing::error!(url = %self.url, "subgraph refused the gateway's token: check internal.token_secret and clocks");
                }
                return Err(SubgraphError::InvalidResponse { status });
            }
            let body = read_capped(sent, MAX_RESPONSE_BYTES).await?;
            serde_json::from_slice::<SubgraphResponse>(&body)
                .map_err(|_| SubgraphError::InvalidResponse { status })
        })
    }

    fn subscribe<'a>(
        &'a self,
        request: SubgraphRequest,
        caller: &'a Caller,
    ) -> BoxFuture<'a, Result<SubgraphStream, SubgraphError>> {
        Box::pin(async move {
            let sent = self
                .post(caller, &request, "text/event-stream")
                .send()
                .await
                .map_err(classify)?;
            let status = sent.status().as_u16();
            let events = sent
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !sent.status().is_success() || !events {
                return Err(SubgraphError::InvalidResponse { status });
            }
            Ok(subgraph_events(sent))
        })
    }
}

impl HttpSubgraph {
    fn post(
        &self,
        caller: &Caller,
        request: &SubgraphRequest,
        accept: &str,
    ) -> reqwest::RequestBuilder {
        let mut post = self.client.post(&self.url);
        if let Some(key) = &self.key {
            let token = key.sign(&self.name, &caller.actor, &caller.meta);
            post = post.header(internal_token::HEADER, token);
        }
        // The subgraph's work joins the client's trace, as a child of this fetch.
        let trace = portal_kit::telemetry::current_trace().unwrap_or_else(|| caller.meta.trace());
        post = post.header("traceparent", trace.header());
        if let Some(id) = &caller.meta.request_id {
            post = post.header("x-request-id", id);
        }
        post.header(reqwest::header::ACCEPT, accept).json(request)
    }
}

/// Reads a subgraph's subscription events (`next` responses until `complete`).
fn subgraph_events(response: reqwest::Response) -> SubgraphStream {
    use futures::StreamExt;
    let state = (
        response,
        crate::sse::SseDecoder::default(),
        std::collections::VecDeque::new(),
    );
    futures::stream::unfold(Some(state), |state| async move {
        let (mut response, mut decoder, mut pending) = state?;
        loop {
            if let Some(event) = pending.pop_front() {
                let crate::sse::SseEvent { name, data } = event;
                match name.as_str() {
                    "next" => {
                        let parsed = serde_json::from_str::<SubgraphResponse>(&data)
                            .unwrap_or_else(|_| {
                                broken_stream("an event that is not a GraphQL response")
                            });
                        return Some((parsed, Some((response, decoder, pending))));
                    }
                    "complete" => return None,
                    _ => continue,
                }
            }
            // Subgraphs send a heartbeat every 15 s: silence far longer is a dead peer.
            let chunk = match tokio::time::timeout(STREAM_SILENCE, response.chunk()).await {
                Ok(chunk) => chunk,
                Err(_) => return Some((broken_stream("the subgraph went silent"), None)),
            };
            match chunk {
                Ok(Some(chunk)) => match decoder.push(&chunk) {
                    Ok(events) => pending.extend(events),
                    Err(_) => return Some((broken_stream("an event too large"), None)),
                },
                // The connection ended without `complete`: the subgraph went away.
                Ok(None) | Err(_) => {
                    return Some((broken_stream("the subgraph closed the stream"), None));
                }
            }
        }
    })
    .boxed()
}

/// How long a subgraph's event stream may stay silent (no event, no heartbeat) before it
/// counts as broken.
const STREAM_SILENCE: std::time::Duration = std::time::Duration::from_secs(45);

/// The response that ends a subscription whose subgraph stream broke.
fn broken_stream(why: &str) -> SubgraphResponse {
    tracing::warn!(why, "subgraph subscription stream broken");
    SubgraphResponse {
        data: None,
        errors: vec![GraphQLError::new(
            "the subscription's source ended unexpectedly; subscribe again",
            "SUBGRAPH_STREAM_ENDED",
        )],
    }
}

/// Largest subgraph response the gateway reads.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, SubgraphError> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > cap {
            return Err(SubgraphError::InvalidResponse { status });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(err: reqwest::Error) -> SubgraphError {
    if err.is_timeout() {
        SubgraphError::Timeout
    } else {
        SubgraphError::Unreachable(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(errors: ErrorExposure) -> SubgraphSettings {
        SubgraphSettings {
            errors,
            ..SubgraphSettings::default()
        }
    }

    #[test]
    fn masking_keeps_deliberate_client_errors_and_hides_the_rest() {
        let client = GraphQLError::new("invalid `input.currency`", "BAD_USER_INPUT");
        let leak = GraphQLError::new("relation \"accounts\" does not exist", "INTERNAL");
        let mask = settings(ErrorExposure::Mask);
        assert_eq!(mask.exposed(client.clone(), "a").message, client.message);
        assert_eq!(mask.exposed(leak.clone(), "a").message, MASKED_MESSAGE);
        assert_eq!(mask.exposed(leak.clone(), "a").code(), Some("INTERNAL"));
        let all = settings(ErrorExposure::MaskAll);
        assert_eq!(all.exposed(client.clone(), "a").message, MASKED_MESSAGE);
        let expose = settings(ErrorExposure::Expose);
        assert_eq!(expose.exposed(leak.clone(), "a").message, leak.message);
    }

    #[test]
    fn per_subgraph_timeouts_override_the_default() {
        let mut settings = SubgraphSettings::default();
        settings
            .timeouts
            .insert("slow".into(), Duration::from_millis(50));
        assert_eq!(settings.timeout_for("slow"), Duration::from_millis(50));
        assert_eq!(settings.timeout_for("other"), Duration::from_secs(10));
    }
}
