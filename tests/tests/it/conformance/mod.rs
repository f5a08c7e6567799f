//! Federation v2 conformance: small async-graphql subgraphs with in-memory data, served
//! over real HTTP, composed and put behind a real gateway. Every test compares the whole
//! response, key order included, with what the Federation spec and the GraphQL spec say
//! a client should receive.
//!
//! ```ignore
//! let gateway = Supergraph::new()
//!     .subgraph("products", products::schema())
//!     .subgraph("reviews", reviews::schema())
//!     .start()
//!     .await?;
//! let response = gateway.query("{ products { name reviews { body } } }", json!({})).await;
//! assert_json(&response, json!({ "data": { … } }));
//! assert_eq!(gateway.requests("reviews").entity_batches().len(), 1);
//! ```
//!
//! Subgraph error messages go through the gateway's default masking, so subgraphs that
//! want their messages seen use client codes (`FORBIDDEN`, `NOT_FOUND`). Messages the
//! gateway words itself are redacted before comparing ([`redact_messages`]).
//!
//! Tests the gateway does not pass yet are `#[ignore = "gateway: …"]`, with the
//! discrepancy in the reason; they document what to fix.

mod abstract_types;
mod compound_keys;
mod entities;
mod errors;
mod federation1;
mod inaccessible;
mod introspection;
mod keys;
mod missing_keys;
mod mutations;
mod operations;
mod override_field;
mod requires_arguments;
mod requires_provides;
mod resilience;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_graphql::{Executor, ObjectType, Schema, SubscriptionType};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use portal::GatewayOptions;
use portal_gateway::auth::Authentication;
use portal_gateway::compose::{self, SubgraphSdl};
use portal_gateway::gateway::Limits;
use portal_gateway::subgraph::SubgraphSettings;
use portal_kit::internal_token::InternalTokenKey;

/// The Federation v2 SDL of `schema` (what `_service { sdl }` would return).
pub fn federation_sdl<Q, M, S>(schema: &Schema<Q, M, S>) -> String
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    schema.sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .federation()
            .compose_directive(),
    )
}

/// Requests one subgraph received, in order (`{"query": …, "variables": …}` each).
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<Value>>>);

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, Vec<Value>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Value> {
        self.lock().clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The representation lists received (one per `_entities` selection: a batched
    /// request with several aliased `_entities` contributes several).
    pub fn entity_batches(&self) -> Vec<Vec<Value>> {
        self.lock()
            .iter()
            .filter_map(|r| r["variables"].as_object())
            .flat_map(|variables| variables.iter())
            .filter(|(name, _)| *name == "representations" || name.starts_with("__batch_reps"))
            .filter_map(|(_, value)| value.as_array().cloned())
            .collect()
    }
}

struct PendingSubgraph {
    name: String,
    sdl: String,
    router: Router,
    log: RequestLog,
}

/// A supergraph under construction: subgraphs, then [`Supergraph::start`].
pub struct Supergraph {
    subgraphs: Vec<PendingSubgraph>,
    timeout: Duration,
    handwritten: Option<SupergraphTemplate>,
    override_labels: std::collections::BTreeSet<String>,
    limits: Limits,
    cors_origins: Vec<String>,
}

/// Makes a hand-written supergraph from the subgraphs' URLs (by name).
type SupergraphTemplate = Box<dyn FnOnce(&BTreeMap<String, String>) -> String>;

impl Default for Supergraph {
    fn default() -> Self {
        Self::new()
    }
}

impl Supergraph {
    /// No subgraphs yet; a 5 s subgraph timeout.
    pub fn new() -> Self {
        Self {
            subgraphs: Vec::new(),
            timeout: Duration::from_secs(5),
            handwritten: None,
            override_labels: Default::default(),
            limits: Limits::default(),
            cors_origins: Vec::new(),
        }
    }

    /// Adds subgraph `name` served by `schema`, composed from the schema's own SDL.
    pub fn subgraph<Q, M, S>(self, name: &str, schema: Schema<Q, M, S>) -> Self
    where
        Q: ObjectType + 'static,
        M: ObjectType + 'static,
        S: SubscriptionType + 'static,
    {
        let sdl = federation_sdl(&schema);
        self.subgraph_with_sdl(name, schema, sdl)
    }

    /// Adds subgraph `name` served by `executor` and composed from `sdl` (for directives
    /// async-graphql cannot express; `sdl` must describe what `executor` serves).
    pub fn subgraph_with_sdl<E: Executor + 'static>(
        mut self,
        name: &str,
        executor: E,
        sdl: impl Into<String>,
    ) -> Self {
        let log = RequestLog::default();
        let state = Arc::new(SubgraphState {
            executor,
            log: log.clone(),
        });
        let router = Router::new()
            .route("/graphql", post(subgraph_handler::<E>))
            .with_state(state);
        self.subgraphs.push(PendingSubgraph {
            name: name.to_owned(),
            sdl: sdl.into(),
            router,
            log,
        });
        self
    }

    /// Serves a hand-written supergraph (made from the subgraphs' URLs) instead of
    /// composing one: for supergraphs other composers produce, e.g. Federation 1.
    pub fn handwritten(
        mut self,
        template: impl FnOnce(&BTreeMap<String, String>) -> String + 'static,
    ) -> Self {
        self.handwritten = Some(Box::new(template));
        self
    }

    /// How long the gateway waits for a subgraph.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// At most `n` operations executing at once (the rest queue).
    pub fn max_concurrent_operations(mut self, n: usize) -> Self {
        self.limits.max_concurrent_operations = n;
        self
    }

    /// Lets pages of `origin` call the gateway from the browser.
    pub fn cors_origin(mut self, origin: &str) -> Self {
        self.cors_origins.push(origin.to_owned());
        self
    }

    /// Treats the custom progressive-override label `label` as active.
    pub fn override_label(mut self, label: &str) -> Self {
        self.override_labels.insert(label.to_owned());
        self
    }

    /// Serves every subgraph on its own socket, composes them and starts a gateway.
    pub async fn start(self) -> anyhow::Result<TestGateway> {
        let mut urls = BTreeMap::new();
        let mut inputs = Vec::new();
        let mut running = HashMap::new();
        for subgraph in self.subgraphs {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}/graphql", listener.local_addr()?);
            let (stop, stopped) = oneshot::channel::<()>();
            let router = subgraph.router;
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
            urls.insert(subgraph.name.clone(), url.clone());
            inputs.push(SubgraphSdl {
                name: subgraph.name.clone(),
                url,
                sdl: subgraph.sdl,
            });
            running.insert(
                subgraph.name,
                RunningSubgraph {
                    log: subgraph.log,
                    stop: Some(stop),
                    task,
                },
            );
        }
        let supergraph = match self.handwritten {
            Some(template) => template(&urls),
            None => compose::compose(&inputs)?,
        };
        let key = InternalTokenKey::new(b"0123456789abcdef0123456789abcdef");
        let clients = portal::http_clients(&urls, &key)?;
        let options = GatewayOptions {
            rate_limiter: None,
            authentication: Authentication::anonymous_only(),
            limits: self.limits,
            subgraphs: SubgraphSettings {
                timeout: self.timeout,
                ..SubgraphSettings::default()
            },
            ide: None,
            authorizer: None,
            trusted_proxies: Vec::new(),
            override_labels: self.override_labels,
            cors_origins: self.cors_origins,
            events: None,
            files: None,
            gateway_client: Default::default(),
            keys: None,
            connectors: Default::default(),
        };
        let (router, _) = portal::gateway_app(&supergraph, clients, &options)?;
        let (addr, gateway_task) = portal_tests::serve(router).await?;
        Ok(TestGateway {
            endpoint: format!("http://{addr}/graphql"),
            http: reqwest::Client::new(),
            supergraph,
            subgraphs: running,
            gateway_task,
        })
    }
}

struct RunningSubgraph {
    log: RequestLog,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// A running gateway in front of running subgraphs.
pub struct TestGateway {
    endpoint: String,
    http: reqwest::Client,
    /// The composed supergraph SDL.
    pub supergraph: String,
    subgraphs: HashMap<String, RunningSubgraph>,
    gateway_task: JoinHandle<()>,
}

impl TestGateway {
    /// The gateway's GraphQL endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `query` with `variables` and returns the JSON response.
    pub async fn query(&self, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables });
        match self.http.post(&self.endpoint).json(&body).send().await {
            Ok(response) => response
                .json()
                .await
                .unwrap_or_else(|e| json!({ "test harness": format!("not JSON: {e}") })),
            Err(e) => json!({ "test harness": format!("request failed: {e}") }),
        }
    }

    /// The requests subgraph `name` has received.
    pub fn requests(&self, name: &str) -> RequestLog {
        self.subgraphs
            .get(name)
            .map(|s| s.log.clone())
            .unwrap_or_default()
    }

    /// Stops subgraph `name` (graceful: open connections are closed, the port refuses).
    pub async fn stop_subgraph(&mut self, name: &str) {
        let Some(subgraph) = self.subgraphs.get_mut(name) else {
            return;
        };
        if let Some(stop) = subgraph.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut subgraph.task)
            .await
            .is_err()
        {
            subgraph.task.abort();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.gateway_task.abort();
        for subgraph in self.subgraphs.values() {
            subgraph.task.abort();
        }
    }
}

struct SubgraphState<E> {
    executor: E,
    log: RequestLog,
}

async fn subgraph_handler<E: Executor>(
    State(state): State<Arc<SubgraphState<E>>>,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let request = request.into_inner();
    let variables = serde_json::to_value(&request.variables).unwrap_or(Value::Null);
    state
        .log
        .lock()
        .push(json!({ "query": request.query, "variables": variables }));
    GraphQLResponse::from(state.executor.execute(request).await)
}

/// Asserts `actual` equals `expected`, key order included (serde_json's map equality
/// ignores order, so this compares the serialized forms).
#[track_caller]
pub fn assert_json(actual: &Value, expected: Value) {
    let actual = serde_json::to_string_pretty(actual).unwrap_or_default();
    let expected = serde_json::to_string_pretty(&expected).unwrap_or_default();
    assert!(
        actual == expected,
        "response differs\n--- observed\n{actual}\n--- expected\n{expected}"
    );
}

/// Asserts `actual` equals `expected` ignoring the order of object keys (for what the
/// gateway sends subgraphs, where the order is the planner's business).
#[track_caller]
pub fn assert_json_unordered(actual: &Value, expected: Value) {
    assert!(
        *actual == expected,
        "value differs\n--- observed\n{actual:#}\n--- expected\n{expected:#}"
    );
}

/// `response` with every error message replaced by `"…"`: for errors the gateway words
/// itself, where only the structure (path, extensions) is part of the contract.
pub fn redact_messages(response: &Value) -> Value {
    let mut response = response.clone();
    if let Some(errors) = response.get_mut("errors").and_then(Value::as_array_mut) {
        for error in errors {
            if let Some(message) = error.get_mut("message") {
                *message = json!("…");
            }
        }
    }
    response
}

/// The messages of `response`'s errors.
pub fn messages(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}
