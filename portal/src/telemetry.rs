//! Making a portal process observable: its log format, its Prometheus metrics on a listener
//! of their own (never the public one), and readiness.
//!
//! Metrics recorded anywhere in the process (the names are in
//! [`portal_kit::telemetry::metric`]) are kept by one recorder, installed only when a
//! metrics listener is configured; without one, recording costs a no-op call. Gauges of
//! state that lives in the database (queued jobs, their age) and in the connection pool
//! are read when Prometheus scrapes, so they are never stale and cost nothing between
//! scrapes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use metrics::gauge;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use portal_kit::telemetry::metric;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (the default), each prefixed with the spans it was written in.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines: the request id and trace id of the
    /// request a line belongs to are fields of its `spans`.
    Json,
}

/// Where and how spans are exported (OTLP over HTTP, protobuf).
#[derive(Clone, Debug)]
pub struct TraceExport {
    /// The collector's base URL (`http://collector:4318`); spans go to `/v1/traces`.
    pub endpoint: String,
    /// `service.name` of this process's spans.
    pub service: String,
    /// Share of new traces kept (0–1); a caller's sampling decision is followed.
    pub sample_ratio: f64,
}

/// The process's telemetry pipeline; [`Telemetry::shutdown`] flushes spans not yet sent.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (waits for the exporter, at most its timeout).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(err) = provider.force_flush()
        {
            tracing::warn!(%err, "flushing spans failed");
        }
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("stopping the span exporter failed: {err}");
        }
    }
}

/// Installs the process's subscriber: log lines to standard error in `format`, filtered by
/// `RUST_LOG` (default: `info`, with the database drivers at `warn`), and — with `export`
/// — spans exported over OTLP, each request's joined to its caller's trace.
pub fn init(format: LogFormat, export: Option<&TraceExport>) -> anyhow::Result<Telemetry> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Each layer filters for itself: `RUST_LOG=warn` quiets the lines, not the traces.
    // (The request and job spans are created at ERROR level, so that every line keeps
    // its request and trace ids whatever the level.)
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into())
    };
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines.with_filter(filter()).boxed(),
        LogFormat::Json => lines
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .flatten_event(true)
            .with_filter(filter())
            .boxed(),
    };
    let (spans, provider) = match export {
        Some(export) => {
            let (layer, provider) = span_exporter(export)?;
            // The portal's spans; not the HTTP and database libraries' own (nor the
            // exporter's, which would trace itself).
            let traced = tracing_subscriber::EnvFilter::new(
                "info,sqlx=off,sea_orm=off,hyper=off,hyper_util=off,h2=off,reqwest=off,tower=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off",
            );
            (Some(layer.with_filter(traced)), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .try_init()
        .context("installing the log subscriber")?;
    if let Some(export) = export {
        portal_kit::telemetry::install_bridge(Box::new(OtelBridge));
        tracing::info!(endpoint = %export.endpoint, service = %export.service, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

type SpanLayer<S> = tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>;

/// The layer that turns spans into OpenTelemetry spans, and the provider that batches
/// them to the collector (on a thread of its own).
fn span_exporter<S>(
    export: &TraceExport,
) -> anyhow::Result<(SpanLayer<S>, opentelemetry_sdk::trace::SdkTracerProvider)>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::trace::Sampler;
    let endpoint = format!("{}/v1/traces", export.endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .context("the OTLP span exporter")?;
    let ratio = export.sample_ratio.clamp(0.0, 1.0);
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(export.service.clone())
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("portal"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false);
    Ok((layer, provider))
}

/// Joins spans to OpenTelemetry traces for the kit ([`portal_kit::telemetry::TraceBridge`]).
struct OtelBridge;

impl portal_kit::telemetry::TraceBridge for OtelBridge {
    fn adopt(
        &self,
        span: &tracing::Span,
        parent: Option<portal_kit::telemetry::TraceContext>,
    ) -> Option<portal_kit::telemetry::TraceContext> {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        };
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        if let Some(parent) = parent {
            let flags = if parent.sampled() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let remote = SpanContext::new(
                TraceId::from_bytes(parent.trace_id_bytes()),
                SpanId::from_bytes(parent.span_id_bytes()),
                flags,
                true,
                TraceState::default(),
            );
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        context_of(span)
    }

    fn current(&self) -> Option<portal_kit::telemetry::TraceContext> {
        context_of(&tracing::Span::current())
    }
}

fn context_of(span: &tracing::Span) -> Option<portal_kit::telemetry::TraceContext> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = span.context();
    let otel = context.span();
    let span_context = otel.span_context();
    span_context.is_valid().then(|| {
        portal_kit::telemetry::TraceContext::from_parts(
            span_context.trace_id().to_bytes(),
            span_context.span_id().to_bytes(),
            span_context.is_sampled(),
        )
    })
}

/// Latency buckets (seconds) for every duration histogram: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Job durations run longer: 10 ms to an hour.
const JOB_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Installs the process's metrics recorder; the handle renders what it holds.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .context("latency buckets")?
        .set_buckets_for_metric(Matcher::Full(metric::JOB_DURATION.to_owned()), JOB_BUCKETS)
        .context("job buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    portal_kit::telemetry::enable_metrics();
    describe();
    // Histograms are drained into their buckets by upkeep.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The `# HELP` text of each metric.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        metric::OPERATIONS,
        "GraphQL operations by operation name, type and outcome"
    );
    describe_histogram!(
        metric::OPERATION_DURATION,
        Unit::Seconds,
        "GraphQL operation latency"
    );
    describe_counter!(metric::HTTP_REQUESTS, "HTTP requests by route and status");
    describe_histogram!(metric::HTTP_DURATION, Unit::Seconds, "HTTP request latency");
    describe_histogram!(
        metric::SUBGRAPH_DURATION,
        Unit::Seconds,
        "Subgraph fetch latency by subgraph and outcome"
    );
    describe_counter!(
        metric::SUBGRAPH_ERRORS,
        "Failed subgraph fetches by subgraph and code"
    );
    describe_counter!(metric::PLAN_CACHE, "Operation cache lookups (hit or miss)");
    describe_gauge!(
        metric::ADMISSION_WAITING,
        "Requests waiting for an execution slot"
    );
    describe_gauge!(metric::ADMISSION_RUNNING, "Operations executing now");
    describe_histogram!(
        metric::ADMISSION_WAIT,
        Unit::Seconds,
        "Time requests waited for an execution slot"
    );
    describe_counter!(
        metric::ADMISSION_REJECTED,
        "Requests turned away after waiting too long for a slot"
    );
    describe_gauge!(metric::SUBSCRIPTIONS, "Subscriptions open on this gateway");
    describe_counter!(metric::AUTH_FAILURES, "Failed authentications by reason");
    describe_counter!(
        metric::RBAC_DENIALS,
        "Fields denied by the policies, by coordinate"
    );
    describe_gauge!(
        metric::DB_CONNECTIONS,
        "Database connections by state (idle, in_use) and the pool's max"
    );
    describe_gauge!(metric::JOBS_QUEUED, "Jobs due and waiting to run, by kind");
    describe_gauge!(
        metric::JOBS_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest job due and not yet started, by kind"
    );
    describe_gauge!(metric::JOBS_RUNNING, "Jobs running now, by kind");
    describe_counter!(
        metric::JOB_OUTCOMES,
        "Job attempts by kind and outcome (succeeded, retried, dead)"
    );
    describe_histogram!(
        metric::JOB_DURATION,
        Unit::Seconds,
        "How long one job attempt ran"
    );
    describe_counter!(
        metric::WEBHOOK_DELIVERIES,
        "Webhook delivery attempts by outcome"
    );
    describe_counter!(
        metric::RATE_LIMITED,
        "Requests refused by a rate limit, by scope"
    );
    describe_counter!(
        metric::RATE_LIMIT_FALLBACKS,
        "Rate limit checks decided by this process because Redis did not answer"
    );
}

/// Reads gauges of state kept elsewhere (the database, the pool) when metrics are
/// scraped.
#[derive(Clone, Default)]
pub struct Collector {
    db: Option<DatabaseConnection>,
    max_connections: u32,
    jobs: bool,
}

impl Collector {
    /// Reads the pool of `db` (of at most `max_connections`); with `jobs`, the job queue
    /// too (the processes that run jobs report it).
    pub fn new(db: DatabaseConnection, max_connections: u32, jobs: bool) -> Self {
        Self {
            db: Some(db),
            max_connections,
            jobs,
        }
    }

    async fn collect(&self) {
        let Some(db) = &self.db else {
            return;
        };
        let (size, idle) = match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DatabaseBackend::Sqlite => {
                let pool = db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => return,
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        gauge!(metric::DB_CONNECTIONS, "state" => "idle").set(f64::from(idle));
        gauge!(metric::DB_CONNECTIONS, "state" => "in_use").set(f64::from(size - idle));
        gauge!(metric::DB_CONNECTIONS, "state" => "max").set(f64::from(self.max_connections));
        if self.jobs
            && let Err(err) = jobs(db).await
        {
            tracing::warn!(%err, "reading the job queue for metrics failed");
        }
    }
}

/// The job queue's gauges: due jobs and the oldest one's age per kind, and running jobs.
async fn jobs(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let now = chrono::Utc::now();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DatabaseBackend::Postgres => {
                    "SELECT kind, state, COUNT(*) AS n, MIN(run_at) AS oldest FROM jobs \
                     WHERE (state = 'queued' AND run_at <= $1) OR state = 'running' \
                     GROUP BY kind, state"
                }
                _ => {
                    "SELECT kind, state, COUNT(*) AS n, MIN(run_at) AS oldest FROM jobs \
                     WHERE (state = 'queued' AND run_at <= ?) OR state = 'running' \
                     GROUP BY kind, state"
                }
            },
            [now.into()],
        ))
        .await?;
    // Kinds seen before and empty now drop to zero rather than keeping their last value.
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for kind in seen.iter() {
        gauge!(metric::JOBS_QUEUED, "kind" => kind.clone()).set(0.0);
        gauge!(metric::JOBS_OLDEST_AGE, "kind" => kind.clone()).set(0.0);
        gauge!(metric::JOBS_RUNNING, "kind" => kind.clone()).set(0.0);
    }
    for row in rows {
        let kind: String = row.try_get("", "kind")?;
        let state: String = row.try_get("", "state")?;
        let count: i64 = row.try_get("", "n")?;
        if !seen.contains(&kind) {
            seen.push(kind.clone());
        }
        if state == "running" {
            gauge!(metric::JOBS_RUNNING, "kind" => kind).set(count as f64);
            continue;
        }
        gauge!(metric::JOBS_QUEUED, "kind" => kind.clone()).set(count as f64);
        let oldest: Option<chrono::DateTime<chrono::Utc>> = row.try_get("", "oldest").ok();
        let age = oldest.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1e3);
        gauge!(metric::JOBS_OLDEST_AGE, "kind" => kind).set(age);
    }
    Ok(())
}

struct Exporter {
    handle: PrometheusHandle,
    collector: Collector,
}

/// Serves `GET /metrics` (Prometheus text format) on `listen` until the process ends.
/// The listener is separate from the public one: put it where only Prometheus reaches.
pub async fn serve_metrics(
    listen: SocketAddr,
    handle: PrometheusHandle,
    collector: Collector,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics listener {listen}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(Arc::new(Exporter { handle, collector }));
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "the metrics listener stopped");
        }
    });
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(bound)
}

async fn render(State(exporter): State<Arc<Exporter>>) -> Response {
    // A slow database delays the scrape by at most this, never fails it.
    let _ = tokio::time::timeout(Duration::from_secs(2), exporter.collector.collect()).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exporter.handle.render(),
    )
        .into_response()
}

/// One readiness check: `Err` says what is not ready.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/ready` checks, and whether the process is shutting down (then it is not ready,
/// whatever the checks say, so balancers stop sending it work while it drains).
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Check)>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// The last answer, reused for a second: probes from many balancers cost one round of
    /// checks.
    last: Arc<std::sync::Mutex<Option<Checked>>>,
}

/// When a round of checks ran, and the checks that failed.
type Checked = (std::time::Instant, Vec<String>);

/// How long one round of readiness checks answers for.
const READY_FOR: Duration = Duration::from_secs(1);

impl Readiness {
    /// Also checks `name` with `check`.
    pub fn check(mut self, name: &str, check: Check) -> Self {
        self.checks.push((name.to_owned(), check));
        self
    }

    /// Checks that `db` answers.
    pub fn database(self, db: DatabaseConnection) -> Self {
        self.check(
            "database",
            Arc::new(move || {
                let db = db.clone();
                Box::pin(async move { db.ping().await.map_err(|err| err.to_string()) })
            }),
        )
    }

    /// Checks that each of `urls` (subgraphs' GraphQL endpoints) answers its `/health`.
    pub fn subgraphs(mut self, urls: std::collections::BTreeMap<String, String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        for (name, url) in urls {
            let health = health_url(&url);
            let http = http.clone();
            self.checks.push((
                format!("subgraph {name}"),
                Arc::new(move || {
                    let http = http.clone();
                    let health = health.clone();
                    Box::pin(async move {
                        match http.get(&health).send().await {
                            Ok(answer) if answer.status().is_success() => Ok(()),
                            Ok(answer) => Err(format!("answered {}", answer.status())),
                            Err(err) => Err(format!("unreachable: {err}")),
                        }
                    })
                }),
            ));
        }
        self
    }

    /// From now on the process is not ready: it is shutting down.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// `GET /ready`: `200` when every check passes, else `503` with what failed. (`GET
    /// /health`, served by every app, only says that the process is alive.)
    pub fn routes(self) -> Router {
        Router::new()
            .route("/ready", get(ready))
            .with_state(Arc::new(self))
    }
}

/// `…/graphql` → `…/health`.
fn health_url(graphql: &str) -> String {
    match graphql.strip_suffix("/graphql") {
        Some(base) => format!("{base}/health"),
        None => format!("{}/health", graphql.trim_end_matches('/')),
    }
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> Response {
    if readiness
        .stopping
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return unready(&["process".to_owned()], "shutting down");
    }
    let cached = readiness
        .last
        .lock()
        .ok()
        .and_then(|last| last.clone())
        .filter(|(at, _)| at.elapsed() < READY_FOR);
    let failed = match cached {
        Some((_, failed)) => failed,
        None => {
            let checks = readiness.checks.iter().map(|(name, check)| async move {
                let result = tokio::time::timeout(Duration::from_secs(3), check())
                    .await
                    .unwrap_or_else(|_| Err("no answer within 3 s".to_owned()));
                (name.clone(), result)
            });
            let mut failed = Vec::new();
            for (name, result) in futures::future::join_all(checks).await {
                if let Err(why) = result {
                    // The reasons (addresses, driver errors) go to the log, not to callers.
                    tracing::warn!(check = %name, reason = %why, "not ready");
                    failed.push(name);
                }
            }
            if let Ok(mut last) = readiness.last.lock() {
                *last = Some((std::time::Instant::now(), failed.clone()));
            }
            failed
        }
    };
    if failed.is_empty() {
        return (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(serde_json::json!({ "status": "ready" })),
        )
            .into_response();
    }
    unready(&failed, "unavailable")
}

fn unready(failed: &[String], why: &str) -> Response {
    let failed: serde_json::Map<String, serde_json::Value> = failed
        .iter()
        .map(|name| (name.clone(), serde_json::Value::from(why)))
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "status": "unavailable", "failed": failed })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric names the docs and the dashboard use exist, and every metric is
    /// documented.
    #[test]
    fn the_docs_and_the_dashboard_name_real_metrics() {
        let docs = include_str!("../../docs/operations.md");
        let dashboard = include_str!("../../docs/grafana/portal.json");
        for (name, text) in [("operations.md", docs), ("portal.json", dashboard)] {
            let mut rest = text;
            while let Some(at) = rest.find("portal_") {
                let word: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                rest = &rest[at + word.len().max(1)..];
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(&word);
                // Crate names (portal_gateway::…) are not metrics.
                if metric::ALL.contains(&base) {
                    continue;
                }
                let is_crate = ["portal_gateway", "portal_kit", "portal_identity"]
                    .iter()
                    .any(|c| base.starts_with(c));
                assert!(is_crate, "{name} names an unknown metric `{base}`");
            }
        }
        for metric in metric::ALL {
            assert!(
                docs.contains(metric),
                "operations.md does not list {metric}"
            );
        }
    }

    #[test]
    fn health_urls_sit_beside_the_graphql_endpoint() {
        assert_eq!(
            health_url("http://127.0.0.1:4002/graphql"),
            "http://127.0.0.1:4002/health"
        );
        assert_eq!(health_url("http://h:1/"), "http://h:1/health");
    }
}
