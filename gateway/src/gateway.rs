//! The gateway proper: one loaded supergraph plus subgraph clients, executing client
//! requests through the pipeline parse → validate → plan → execute → project.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use graphql_tools::static_graphql::schema::Document as SchemaDocument;
use hive_router_query_planner::planner::Planner;
use hive_router_query_planner::utils::parsing::safe_parse_schema;
use parking_lot::RwLock;

use hive_router_query_planner::planner::plan_nodes::QueryPlan;

use crate::authz::{Authorizer, DecisionCache, Decisions, Mode, with_implicit_roles};
use crate::execute::Execution;
use crate::introspection::Introspection;
use crate::overrides::{OverrideLabels, Variant};
use crate::plan::{self, CachedOperation, OperationCache};
use crate::project::Projection;
use crate::request::{self, PreparedOperation};
use crate::response::{GraphQLError, Request, Response};
use crate::schema::{OperationKind, SchemaIndex};
use crate::subgraph::{Caller, SubgraphClients, SubgraphSettings};

pub use crate::limits::Limits;

/// Why a supergraph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SupergraphError {
    /// Not a parsable schema.
    #[error("the supergraph SDL does not parse: {0}")]
    Parse(String),
    /// The planner refused it.
    #[error("the planner cannot load the supergraph: {0}")]
    Planner(String),
}

/// A loaded supergraph: the planner, the API schema and everything derived from them.
/// Built once per supergraph, never per request.
pub struct Supergraph {
    /// The supergraph SDL it was loaded from.
    pub sdl: String,
    planner: Planner,
    api_schema: Arc<SchemaDocument>,
    index: SchemaIndex,
    introspection: Introspection,
    operations: OperationCache,
    decisions: DecisionCache,
    overrides: OverrideLabels,
    events: std::collections::HashMap<String, Arc<crate::events::EventSource>>,
}

impl Supergraph {
    /// How the subscription field `field` follows events, when it is event-driven
    /// (`@events`).
    pub fn event_source(&self, field: &str) -> Option<&Arc<crate::events::EventSource>> {
        self.events.get(field)
    }

    /// The API schema, indexed (what clients see).
    pub fn index(&self) -> &SchemaIndex {
        &self.index
    }

    /// The API schema (the supergraph as clients see it: no federation internals, no
    /// `@inaccessible` elements).
    pub fn api_schema(&self) -> &SchemaDocument {
        &self.api_schema
    }

    /// Parses and validates `query` against the API schema within `limits`, selecting
    /// `operation_name` (the checks a request gets before planning; for tooling and tests
    /// that check documents without running them).
    pub fn validate(
        &self,
        query: &str,
        operation_name: Option<&str>,
        limits: &Limits,
    ) -> Result<(), Vec<crate::response::GraphQLError>> {
        let document = crate::request::parse(query, limits.max_tokens).map_err(|e| vec![e])?;
        crate::request::prepare(&self.api_schema, document, operation_name, limits).map(|_| ())
    }

    /// Loads `sdl`: a supergraph from [`crate::compose::compose`] or from another composer
    /// (root types without `@join__type`, as Federation 1 composition writes them, are
    /// normalized first).
    pub fn load(sdl: &str, limits: &Limits) -> Result<Self, SupergraphError> {
        let normalized = crate::compose::normalize(sdl).map_err(SupergraphError::Parse)?;
        let document =
            safe_parse_schema(&normalized).map_err(|e| SupergraphError::Parse(e.to_string()))?;
        let planner = crate::compose::load_planner(&document).map_err(SupergraphError::Planner)?;
        let api_schema = planner.consumer_schema.document.clone();
        let index = SchemaIndex::from_document(&api_schema);
        let introspection = Introspection::new(&api_schema, &index);
        Ok(Self {
            sdl: sdl.to_owned(),
            planner,
            api_schema,
            index,
            introspection,
            operations: OperationCache::new(limits.plan_cache_size),
            decisions: DecisionCache::default(),
            overrides: OverrideLabels::of(&document),
            events: crate::events::event_sources(&document),
        })
    }

    /// Subgraph URLs named by the supergraph's `join__Graph` enum, by subgraph name.
    pub fn subgraph_urls(&self) -> std::collections::BTreeMap<String, String> {
        self.planner
            .supergraph
            .subgraph_endpoint_map
            .iter()
            .map(|(name, url)| (name.clone(), url.clone()))
            .collect()
    }
}

/// Which operations a transport may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowedOperations {
    /// Queries and mutations (a single response).
    All,
    /// Queries only (GET requests).
    QueriesOnly,
    /// Queries, mutations and subscriptions (a stream of responses).
    Streaming,
    /// Queries and subscriptions (a stream over GET: nothing that changes state).
    StreamingReadOnly,
}

/// A supergraph together with the clients of its subgraphs: what one request runs on.
pub struct Served {
    /// The supergraph.
    pub supergraph: Supergraph,
    /// Clients of its subgraphs, by name.
    pub clients: SubgraphClients,
}

/// The gateway: a hot-swappable supergraph with the clients of its subgraphs.
pub struct Gateway {
    current: RwLock<Arc<Served>>,
    limits: Limits,
    settings: SubgraphSettings,
    admission: tokio::sync::Semaphore,
    authz: Option<Arc<Authorizer>>,
    override_labels: Arc<BTreeSet<String>>,
    persisted: crate::persisted::PersistedQueries,
    subscriptions: Arc<crate::subscribe::OpenSubscriptions>,
    websockets: crate::ws::Connections,
    closing: tokio::sync::watch::Sender<bool>,
    events: Option<Arc<crate::events::EventRouter>>,
    operation_names: crate::metrics::OperationNames,
}

impl Gateway {
    /// A gateway serving `supergraph` through `clients`.
    pub fn new(
        supergraph: Supergraph,
        clients: SubgraphClients,
        limits: Limits,
        settings: SubgraphSettings,
    ) -> Self {
        Self {
            current: RwLock::new(Arc::new(Served {
                supergraph,
                clients,
            })),
            admission: tokio::sync::Semaphore::new(limits.max_concurrent_operations),
            limits,
            settings,
            authz: None,
            override_labels: Arc::default(),
            persisted: Default::default(),
            subscriptions: Arc::default(),
            websockets: Default::default(),
            closing: tokio::sync::watch::Sender::new(false),
            events: None,
            operation_names: Default::default(),
        }
    }

    /// Follows event-driven subscription fields (`@events`) on `feed`, the process's
    /// feed of committed domain events; without one, they stream from their subgraph.
    pub fn with_events(mut self, feed: Arc<portal_kit::events::feed::EventFeed>) -> Self {
        self.events = Some(crate::events::EventRouter::new(feed));
        self
    }

    /// The router of event-driven subscriptions, if the gateway follows events.
    pub fn events(&self) -> Option<&Arc<crate::events::EventRouter>> {
        self.events.as_ref()
    }

    /// The WebSocket connections open on this gateway.
    pub fn websockets(&self) -> &crate::ws::Connections {
        &self.websockets
    }

    /// The subscriptions open on this gateway.
    pub fn open_subscriptions(&self) -> &Arc<crate::subscribe::OpenSubscriptions> {
        &self.subscriptions
    }

    /// Completes every open stream (subscriptions end as if their source had) and
    /// refuses new ones: the first step of a graceful shutdown.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Whether [`Gateway::close_streams`] was called; changes when it is.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Documents clients registered by hash (automatic persisted queries).
    pub fn persisted_queries(&self) -> &crate::persisted::PersistedQueries {
        &self.persisted
    }

    /// Treats these custom progressive-override labels (`@override(label: "…")`) as
    /// active: the fields they label are resolved by their new subgraph.
    pub fn with_override_labels(mut self, labels: BTreeSet<String>) -> Self {
        self.override_labels = Arc::new(labels);
        self
    }

    /// Enforces field-level authorization with `authorizer` on every operation.
    pub fn with_authorizer(mut self, authorizer: Arc<Authorizer>) -> Self {
        self.authz = Some(authorizer);
        self
    }

    /// The authorizer, when field-level authorization is on.
    pub fn authorizer(&self) -> Option<&Arc<Authorizer>> {
        self.authz.as_ref()
    }

    /// What is currently served.
    pub fn current(&self) -> Arc<Served> {
        self.current.read().clone()
    }

    /// Serves `supergraph` through `clients` from now on; requests in flight finish on
    /// what they started with.
    pub fn replace(&self, supergraph: Supergraph, clients: SubgraphClients) {
        *self.current.write() = Arc::new(Served {
            supergraph,
            clients,
        });
    }

    /// Waits (first come, first served) for one of the `max_concurrent_operations` slots;
    /// `None` after `wait` without one. The transport takes the slot before reading the
    /// request body, so queued requests hold no parsed input.
    pub async fn admit(&self, wait: std::time::Duration) -> Option<Admitted<'_>> {
        // The common case costs no queue bookkeeping.
        if let Ok(permit) = self.admission.try_acquire() {
            return Some(Admitted::new(permit));
        }
        // Counted while it waits, also when the client gives up (the future is dropped).
        let waiting = crate::metrics::Waiting::start();
        let permit = tokio::time::timeout(wait, self.admission.acquire())
            .await
            .ok()
            .and_then(Result::ok);
        waiting.end(permit.is_some());
        permit.map(Admitted::new)
    }

    /// Whether the gateway is shutting down (it finishes what it started, and its
    /// readiness check fails so that balancers stop sending it work).
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs one client request for `caller`.
    pub async fn execute(
        &self,
        request: Request,
        caller: &Caller,
        allowed: AllowedOperations,
    ) -> Response {
        let began = std::time::Instant::now();
        match self.start(request, caller, allowed).await {
            Ok(started) => {
                // Names only: never the document or its variables.
                let prepared = &started.operation.prepared;
                let span = tracing::Span::current();
                if let Some(name) = prepared.name.as_deref() {
                    span.record("graphql.operation.name", name);
                }
                span.record("graphql.operation.type", prepared.kind.as_str());
                let response = self.run(&started).await;
                if !crate::metrics::operations_observed() {
                    return response;
                }
                let prepared = &started.operation.prepared;
                crate::metrics::operation(
                    self.operation_names
                        .label(prepared.name.as_deref(), caller.actor.id.is_some()),
                    prepared.kind.as_str(),
                    crate::metrics::outcome(&response),
                    began.elapsed(),
                );
                response
            }
            Err(response) => {
                // Refused before it ran: its name is the client's word, not a valid
                // operation's, so it gets no series of its own.
                if !crate::metrics::operations_observed() {
                    return response;
                }
                crate::metrics::operation(
                    "refused".to_owned(),
                    "unknown",
                    "error",
                    began.elapsed(),
                );
                response
            }
        }
    }

    /// Runs a started operation to its response.
    pub(crate) async fn run(&self, started: &Started<'_>) -> Response {
        use tracing::Instrument as _;
        let span = tracing::info_span!("graphql.execute");
        self.run_plan(started).instrument(span).await
    }

    async fn run_plan(&self, started: &Started<'_>) -> Response {
        let served = &started.served;
        let execution = Execution::new(
            &served.supergraph.index,
            &served.clients,
            &started.caller,
            &started.variables,
            &self.settings,
        );
        let (data, errors) = execution.run(started.plan.node.as_ref()).await;
        started.respond(data, errors)
    }

    /// How subgraphs are called (timeouts, error exposure).
    pub(crate) fn subgraph_settings(&self) -> &SubgraphSettings {
        &self.settings
    }

    /// Prepares (or takes from the cache), checks, authorizes and plans `request` for
    /// `caller`; `Err` is the response that refuses it.
    pub(crate) async fn start<'c>(
        &self,
        request: Request,
        caller: &'c Caller,
        allowed: AllowedOperations,
    ) -> Result<Started<'c>, Response> {
        let served = self.current();
        let supergraph = &served.supergraph;
        let name = request.operation_name.as_deref();
        let variant = supergraph.overrides.draw();
        let cached = supergraph.operations.get(&request.query, name);
        crate::metrics::plan_cache(cached.is_some());
        let prepare_span = tracing::info_span!(
            "graphql.prepare",
            cache = if cached.is_some() { "hit" } else { "miss" }
        );
        let operation = match cached {
            Some(operation) => operation,
            None => {
                // Parsing, validation and planning are CPU work: off the reactor, and a
                // panic in them becomes an error for this request only.
                let for_task = served.clone();
                let query = request.query.clone();
                let operation_name = request.operation_name.clone();
                let limits = self.limits.clone();
                let labels = self.override_labels.clone();
                let span = prepare_span.clone();
                let prepared = tokio::task::spawn_blocking(move || {
                    let _entered = span.enter();
                    prepare(
                        &for_task.supergraph,
                        &query,
                        operation_name.as_deref(),
                        &limits,
                        (variant, &labels),
                    )
                })
                .await;
                match prepared {
                    Ok(Ok(operation)) => {
                        supergraph
                            .operations
                            .insert(&request.query, name, operation)
                    }
                    Ok(Err(errors)) => return Err(Response { errors, data: None }),
                    Err(err) => {
                        tracing::error!(error = %err, "preparing an operation failed");
                        return Err(Response::request_error(plan::planning_failed()));
                    }
                }
            }
        };
        let prepared = &operation.prepared;
        check_allowed(prepared, allowed).map_err(Response::request_error)?;
        if supergraph.index.root_type(prepared.kind).is_none() {
            return Err(Response::request_error(GraphQLError::new(
                "the schema does not support this operation type",
                "GRAPHQL_VALIDATION_FAILED",
            )));
        }
        drop(prepare_span);
        let granted = tracing::Instrument::instrument(
            self.authorized_plan(&served, &operation, caller, variant),
            tracing::info_span!("graphql.authorize"),
        )
        .await
        .map_err(Response::request_error)?;
        // The caller's grants (powers the subgraphs' row rules consult) go with the actor.
        let caller = match granted.grants {
            Some(grants) => {
                let mut with_grants = caller.clone();
                with_grants.actor.grants = grants;
                Cow::Owned(with_grants)
            }
            None => Cow::Borrowed(caller),
        };
        let variables = prepared
            .variables(&supergraph.index, request.variables)
            .map_err(Response::request_error)?;
        Ok(Started {
            served,
            operation,
            caller,
            plan: granted.plan,
            denied: granted.denied,
            variables,
            variant,
        })
    }

    /// What `caller` may run of `operation` now: the plan (without the fields it may not
    /// use, where the mode filters) and the decisions projection nulls them by, and the
    /// grants it holds. `Err` refuses the operation.
    pub(crate) async fn authorized_plan(
        &self,
        served: &Arc<Served>,
        operation: &Arc<CachedOperation>,
        caller: &Caller,
        variant: Variant,
    ) -> Result<Granted, GraphQLError> {
        let supergraph = &served.supergraph;
        let decided = self.authz.as_ref().map(|authz| {
            let decisions = decisions_for(authz, supergraph, &caller.actor);
            (authz, decisions)
        });
        let grants = match &decided {
            Some((_, decisions)) if !decisions.grants().is_empty() => {
                Some(decisions.grants().to_vec())
            }
            _ => None,
        };
        let authorized = match decided {
            Some((authz, decisions)) => {
                self.authorize(authz, served, operation, caller, decisions, variant)
                    .await?
            }
            None => None,
        };
        let (plan, denied) = match authorized {
            Some((filtered, decisions)) => (filtered, Some(decisions)),
            None => (self.plan_for(served, operation, variant).await?, None),
        };
        Ok(Granted {
            plan,
            denied,
            grants,
        })
    }
}

/// An execution slot held (counted in the metrics while held).
pub struct Admitted<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl<'a> Admitted<'a> {
    fn new(permit: tokio::sync::SemaphorePermit<'a>) -> Self {
        crate::metrics::Admission::started();
        Self { _permit: permit }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        crate::metrics::Admission::finished();
    }
}

/// What authorization grants one caller for one operation.
pub(crate) struct Granted {
    /// The plan to run.
    pub plan: Arc<QueryPlan>,
    /// The decisions denied fields are nulled by (none denied: `None`).
    pub denied: Option<Arc<Decisions>>,
    /// The caller's grants, if it holds any.
    pub grants: Option<Vec<String>>,
}

/// An operation ready to run: prepared, authorized and planned for its caller.
pub(crate) struct Started<'c> {
    /// What it runs on.
    pub served: Arc<Served>,
    /// The operation.
    pub operation: Arc<CachedOperation>,
    /// Who runs it, with the grants it holds.
    pub caller: Cow<'c, Caller>,
    /// Its plan for this caller.
    pub plan: Arc<QueryPlan>,
    /// The decisions that null denied fields, if any are denied.
    pub denied: Option<Arc<Decisions>>,
    /// The coerced variables.
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// The override variant drawn.
    pub variant: Variant,
}

impl Started<'_> {
    /// Owns its caller, to outlive the request (a subscription).
    pub fn into_owned(self) -> Started<'static> {
        Started {
            served: self.served,
            operation: self.operation,
            caller: Cow::Owned(self.caller.into_owned()),
            plan: self.plan,
            denied: self.denied,
            variables: self.variables,
            variant: self.variant,
        }
    }

    /// The client's response: `data` projected onto the client's selection (denied fields
    /// nulled with `FORBIDDEN`), after `errors`.
    pub fn respond(&self, data: serde_json::Value, mut errors: Vec<GraphQLError>) -> Response {
        let supergraph = &self.served.supergraph;
        let prepared = &self.operation.prepared;
        let root_type = supergraph.index.root_type(prepared.kind).unwrap_or("Query");
        let projected = Projection::new(
            &supergraph.index,
            prepared.fragments(),
            &self.variables,
            &mut errors,
            Some(&supergraph.introspection),
        )
        .with_denied(self.denied.as_deref())
        .root(root_type, prepared.selection_set(), &data);
        Response {
            errors,
            data: Some(projected),
        }
    }
}

/// What authorization decided for one request: nothing denied (`None`), or the plan
/// without the denied fields and the decisions projection nulls them by.
type Authorized = Option<(Arc<QueryPlan>, Arc<Decisions>)>;

impl Gateway {
    /// The plan of `operation` for the override `variant` this request drew (planned on
    /// first use, off the reactor).
    async fn plan_for(
        &self,
        served: &Arc<Served>,
        operation: &Arc<CachedOperation>,
        variant: Variant,
    ) -> Result<Arc<QueryPlan>, GraphQLError> {
        if variant == operation.variant {
            return Ok(operation.plan.clone());
        }
        if let Some(plan) = operation.variants.lock().get(&variant) {
            return Ok(plan.clone());
        }
        let planned = self
            .plan_off_reactor(served, operation, variant, Default::default())
            .await?;
        operation.variants.lock().insert(variant, planned.clone());
        Ok(planned)
    }

    /// Plans `operation` without the `denied` coordinates for the override `variant`, on
    /// a blocking thread (planning is CPU work; a panic in it fails this request only).
    async fn plan_off_reactor(
        &self,
        served: &Arc<Served>,
        operation: &Arc<CachedOperation>,
        variant: Variant,
        denied: std::collections::HashSet<(String, String)>,
    ) -> Result<Arc<QueryPlan>, GraphQLError> {
        let served = served.clone();
        let operation = operation.clone();
        let labels = self.override_labels.clone();
        tokio::task::spawn_blocking(move || {
            let supergraph = &served.supergraph;
            let prepared = &operation.prepared;
            let stripped = (!denied.is_empty()).then(|| {
                let root = supergraph.index.root_type(prepared.kind).unwrap_or("Query");
                crate::authz::strip(&prepared.document, &supergraph.index, root, &denied)
            });
            plan::plan(
                &supergraph.planner,
                stripped.as_ref().unwrap_or(&prepared.document),
                prepared.name.as_deref(),
                supergraph.overrides.context(variant, &labels),
            )
        })
        .await
        .map_err(|_| plan::planning_failed())?
    }

    /// Checks every field coordinate of `operation` for `caller`'s roles in its tenant.
    async fn authorize(
        &self,
        authz: &Authorizer,
        served: &Arc<Served>,
        operation: &Arc<CachedOperation>,
        caller: &Caller,
        decisions: Arc<crate::authz::Decisions>,
        variant: Variant,
    ) -> Result<Authorized, GraphQLError> {
        let actor = &caller.actor;
        let denied: Vec<(String, String)> = operation
            .coordinates
            .iter()
            .filter(|(t, f)| decisions.denies(t, f))
            .cloned()
            .collect();
        if denied.is_empty() {
            return Ok(None);
        }
        crate::metrics::denied(&denied);
        let names: Vec<String> = denied.iter().map(|(t, f)| format!("{t}.{f}")).collect();
        let refuse = || {
            GraphQLError::new(format!("not allowed: {}", names.join(", ")), "FORBIDDEN")
                .with_extension("coordinates", serde_json::json!(names))
        };
        match authz.mode() {
            Mode::DryRun => {
                tracing::info!(
                    actor = ?actor.id,
                    tenant = ?actor.tenant_id,
                    denied = ?names,
                    "authorization dry run: would deny"
                );
                Ok(None)
            }
            Mode::Reject => Err(refuse()),
            Mode::Filter if operation.prepared.kind == OperationKind::Mutation => Err(refuse()),
            // A subscription streams its root field: without it there is nothing to send.
            Mode::Filter
                if operation.prepared.kind == OperationKind::Subscription
                    && denied.iter().any(|(t, _)| {
                        served
                            .supergraph
                            .index
                            .root_type(OperationKind::Subscription)
                            == Some(t.as_str())
                    }) =>
            {
                Err(refuse())
            }
            Mode::Filter => {
                let key = (denied, variant);
                if let Some(plan) = operation.filtered.lock().get(&key) {
                    return Ok(Some((plan.clone(), decisions)));
                }
                let planned = self
                    .plan_off_reactor(served, operation, variant, key.0.iter().cloned().collect())
                    .await?;
                operation.filtered.lock().insert(key, planned.clone());
                Ok(Some((planned, decisions)))
            }
        }
    }
}

/// The compiled decisions for `actor`'s roles in its tenant (cached per policy revision).
fn decisions_for(
    authz: &Authorizer,
    supergraph: &Supergraph,
    actor: &portal_kit::Actor,
) -> Arc<crate::authz::Decisions> {
    let roles = with_implicit_roles(&actor.roles, actor.tenant_id.is_some());
    let domain = actor
        .tenant_id
        .map_or_else(|| "-".to_owned(), |t| t.to_string());
    supergraph.decisions.get(
        &authz.policies(),
        &supergraph.index,
        &domain,
        &roles,
        authz.checks_introspection(),
    )
}

/// Parses, checks, validates and plans `query` against `supergraph`.
fn prepare(
    supergraph: &Supergraph,
    query: &str,
    operation_name: Option<&str>,
    limits: &Limits,
    (variant, labels): (Variant, &BTreeSet<String>),
) -> Result<CachedOperation, Vec<GraphQLError>> {
    let validating = tracing::info_span!("graphql.validate").entered();
    let document = request::parse(query, limits.max_tokens).map_err(|e| vec![e])?;
    let prepared = request::prepare(&supergraph.api_schema, document, operation_name, limits)?;
    drop(validating);
    let _planning = tracing::info_span!("graphql.plan").entered();
    let plan = plan::plan(
        &supergraph.planner,
        &prepared.document,
        prepared.name.as_deref(),
        supergraph.overrides.context(variant, labels),
    )
    .map_err(|e| vec![e])?;
    let root = supergraph
        .index
        .root_type(prepared.kind)
        .unwrap_or("Query")
        .to_owned();
    let coordinates = crate::authz::operation_coordinates(
        &supergraph.index,
        &root,
        prepared.selection_set(),
        &prepared.fragments(),
        true,
    );
    Ok(CachedOperation {
        prepared,
        plan,
        variant,
        variants: Default::default(),
        coordinates,
        filtered: Default::default(),
    })
}

fn check_allowed(
    prepared: &PreparedOperation,
    allowed: AllowedOperations,
) -> Result<(), GraphQLError> {
    use AllowedOperations::*;
    let read_only = matches!(allowed, QueriesOnly | StreamingReadOnly);
    if read_only && prepared.kind == OperationKind::Mutation
        || allowed == QueriesOnly && prepared.kind != OperationKind::Query
    {
        return Err(GraphQLError::new(
            "only queries may be sent this way (with GET, or with a delegated credential)",
            "METHOD_NOT_ALLOWED",
        ));
    }
    if prepared.kind == OperationKind::Subscription && matches!(allowed, All | QueriesOnly) {
        return Err(GraphQLError::new(
            "subscriptions need a streaming transport: a WebSocket (graphql-transport-ws), \
             or `Accept: text/event-stream` or `multipart/mixed`",
            "OPERATION_NOT_SUPPORTED",
        ));
    }
    Ok(())
}
