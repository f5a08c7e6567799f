//! What every part of the portal shares to be observable: the W3C trace context a request
//! carries ([`TraceContext`]), the span each request's log lines are written in
//! ([`request_span`]), how spans join exported traces ([`TraceBridge`]), and the names of the metrics it records ([`metric`]).
//!
//! Metrics are recorded through the `metrics` facade: with no recorder installed (no
//! metrics listener configured) a recording is a no-op.

use std::fmt::Write as _;

/// A W3C trace context (`traceparent`): which trace a request belongs to and the span
/// that called it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

impl TraceContext {
    /// The context of a `traceparent` header (version `00`, or a later version read as
    /// `00` as the specification asks), or `None` when it is malformed or all-zero.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let value = traceparent.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || version.eq_ignore_ascii_case("ff") {
            return None;
        }
        // Version 00 has exactly four parts; later versions may append more.
        if version == "00" && rest.is_some() {
            return None;
        }
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !(lower_hex(version) && lower_hex(trace) && lower_hex(span) && lower_hex(flags)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flag = [0u8; 1];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        hex::decode_to_slice(flags, &mut flag).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flag[0] & 1 == 1,
        })
    }

    /// A new trace (the request came without a usable `traceparent`).
    pub fn root() -> Self {
        let mut trace_id: [u8; 16] = rand::random();
        let mut span_id: [u8; 8] = rand::random();
        // Never all-zero (invalid by the specification).
        trace_id[15] |= 1;
        span_id[7] |= 1;
        Self {
            trace_id,
            span_id,
            sampled: true,
        }
    }

    /// The context of `traceparent` if it is usable, else a new trace.
    pub fn continue_or_root(traceparent: Option<&str>) -> Self {
        traceparent.and_then(Self::parse).unwrap_or_else(Self::root)
    }

    /// A context in the same trace for a call this span makes (a new span id).
    pub fn child(&self) -> Self {
        let mut span_id: [u8; 8] = rand::random();
        span_id[7] |= 1;
        Self { span_id, ..*self }
    }

    /// The trace id, as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id, as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex::encode(self.span_id)
    }

    /// Whether the caller asked for this trace to be recorded.
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// A context from its parts (an exporter's span context).
    pub fn from_parts(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Self {
        Self {
            trace_id,
            span_id,
            sampled,
        }
    }

    /// The trace id's bytes.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id's bytes.
    pub fn span_id_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    /// The `traceparent` header value for this context.
    pub fn header(&self) -> String {
        let mut out = String::with_capacity(55);
        let _ = write!(
            out,
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            u8::from(self.sampled)
        );
        out
    }
}

/// How spans join exported traces. The binary installs one when it exports traces
/// (OpenTelemetry, `portal/src/telemetry.rs`); without one, trace contexts are propagated
/// and logged, and nothing is exported.
pub trait TraceBridge: Send + Sync {
    /// Makes `span` a child of the remote `parent` (when given) and returns the span's own
    /// context; `None` when the span is not exported.
    fn adopt(&self, span: &tracing::Span, parent: Option<TraceContext>) -> Option<TraceContext>;

    /// The context of the exported span the caller is in.
    fn current(&self) -> Option<TraceContext>;
}

static BRIDGE: std::sync::OnceLock<Box<dyn TraceBridge>> = std::sync::OnceLock::new();

/// Installs the process's [`TraceBridge`] (once; later calls are ignored).
pub fn install_bridge(bridge: Box<dyn TraceBridge>) {
    let _ = BRIDGE.set(bridge);
}

fn bridge() -> Option<&'static dyn TraceBridge> {
    BRIDGE.get().map(|bridge| bridge.as_ref())
}

tokio::task_local! {
    /// The trace of the request (or job) the task works for.
    static CURRENT_TRACE: TraceContext;
}

/// The trace context of the work being done now: the current exported span's when traces
/// are exported, else that of the request or job being served (`None` outside them).
pub fn current_trace() -> Option<TraceContext> {
    bridge()
        .and_then(|bridge| bridge.current())
        .or_else(|| CURRENT_TRACE.try_with(|trace| *trace).ok())
}

/// A span for work continuing `parent` (a remote caller's, or the request that enqueued a
/// job): joined to the exported trace when there is one, and its context, which the span
/// records as `trace_id`.
pub fn adopt(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let trace = bridge()
        .and_then(|bridge| bridge.adopt(span, parent))
        .unwrap_or_else(|| parent.map_or_else(TraceContext::root, |parent| parent.child()));
    span.record("trace_id", tracing::field::display(trace.trace_id()));
    trace
}

/// Runs `future` as work of `trace` ([`current_trace`] answers it inside).
pub async fn in_trace<F: std::future::Future>(trace: TraceContext, future: F) -> F::Output {
    CURRENT_TRACE.scope(trace, future).await
}

/// Spawns `future` on the runtime as part of the caller's span and trace (what a
/// DataLoader spawns its batches with, so its queries belong to the request).
pub fn spawn_traced(
    future: futures::future::BoxFuture<'static, ()>,
) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument as _;
    let span = tracing::Span::current();
    match CURRENT_TRACE.try_with(|trace| *trace) {
        Ok(trace) => tokio::spawn(CURRENT_TRACE.scope(trace, future).instrument(span)),
        Err(_) => tokio::spawn(future.instrument(span)),
    }
}

/// Who a request is in the logs and traces: its request id (the client's `x-request-id`
/// when it is a plain token of at most 64 characters, else a new one) and its trace
/// context (a child of the client's `traceparent`, else a new trace).
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The request id, echoed in `x-request-id`.
    pub request_id: String,
    /// This request's span in its trace.
    pub trace: TraceContext,
}

impl RequestContext {
    /// The context [`observe`] put in `extensions`, else one read from `headers`.
    pub fn of(extensions: &axum::http::Extensions, headers: &axum::http::HeaderMap) -> Self {
        extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self::from_headers(headers))
    }

    /// The context of a request with `headers`.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        Self {
            request_id: request_id(headers),
            trace: TraceContext::continue_or_root(traceparent(headers)).child(),
        }
    }
}

/// The client's `x-request-id` when it is a plain token of at most 64 characters, else
/// a new one.
fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn traceparent(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

/// Middleware for every HTTP app of the portal: gives the request its [`RequestContext`],
/// runs it inside its [`request_span`], echoes `x-request-id`, and counts it (by route
/// template, never the raw path, and status) with its latency.
pub async fn observe(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let began = std::time::Instant::now();
    let route = if metrics_on() {
        request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned())
    } else {
        String::new()
    };
    let request_id = request_id(request.headers());
    let span = request_span(&request, &request_id);
    let incoming = traceparent(request.headers()).and_then(TraceContext::parse);
    let trace = adopt(&span, incoming);
    let context = RequestContext { request_id, trace };
    let id = axum::http::HeaderValue::from_str(&context.request_id).ok();
    request.extensions_mut().insert(context);
    let mut response = in_trace(trace, next.run(request))
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    if let Some(id) = id {
        response.headers_mut().entry("x-request-id").or_insert(id);
    }
    if !metrics_on() {
        return response;
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!(metric::HTTP_REQUESTS, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(metric::HTTP_DURATION, "route" => route)
        .record(began.elapsed().as_secs_f64());
    response
}

/// The span a request's work is done in: every log line written inside it carries the
/// request id and the trace id (recorded by [`adopt`]); as an exported span, a server
/// span named after the method and route, with the GraphQL operation's name and type
/// recorded by the gateway. Never a variable, header or token.
pub fn request_span(request: &axum::extract::Request, request_id: &str) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |path| path.as_str());
    // ERROR level: always enabled, so that lines at any level carry the request's ids.
    tracing::error_span!(
        "request",
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        graphql.operation.name = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
    )
}

static METRICS_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns metrics recording on (the binary does, once it installed a recorder).
pub fn enable_metrics() {
    METRICS_ON.store(true, std::sync::atomic::Ordering::Release);
}

/// Whether metrics are recorded: without a recorder, callers skip even building labels,
/// so metrics that are off cost one load per call site.
#[inline]
pub fn metrics_on() -> bool {
    METRICS_ON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one failed authentication by its reason (`token_expired`, `sign_in`, `mfa`, …):
/// credentials refused by the gateway, and the failures identity audits as `auth.*`.
pub fn auth_failure(reason: &'static str) {
    if !metrics_on() {
        return;
    }
    metrics::counter!(metric::AUTH_FAILURES, "reason" => reason).increment(1);
}

/// Counts one webhook delivery attempt by its outcome.
pub fn webhook_delivery(outcome: &'static str) {
    if !metrics_on() {
        return;
    }
    metrics::counter!(metric::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// The names of the portal's metrics (Prometheus naming: base units, `_total` counters).
pub mod metric {
    /// Counter: GraphQL operations by `operation` (name, bounded), `type` and `outcome`.
    pub const OPERATIONS: &str = "portal_graphql_operations_total";
    /// Histogram (seconds): GraphQL operation latency, same labels.
    pub const OPERATION_DURATION: &str = "portal_graphql_operation_duration_seconds";
    /// Counter: HTTP requests by `route` and `status`.
    pub const HTTP_REQUESTS: &str = "portal_http_requests_total";
    /// Histogram (seconds): HTTP request latency by `route`.
    pub const HTTP_DURATION: &str = "portal_http_request_duration_seconds";
    /// Histogram (seconds): subgraph fetch latency by `subgraph` and `outcome`.
    pub const SUBGRAPH_DURATION: &str = "portal_subgraph_fetch_duration_seconds";
    /// Counter: failed subgraph fetches by `subgraph` and `code`.
    pub const SUBGRAPH_ERRORS: &str = "portal_subgraph_fetch_errors_total";
    /// Counter: operation cache lookups by `result` (`hit`, `miss`).
    pub const PLAN_CACHE: &str = "portal_plan_cache_lookups_total";
    /// Gauge: requests waiting for an execution slot.
    pub const ADMISSION_WAITING: &str = "portal_admission_waiting";
    /// Gauge: operations executing now.
    pub const ADMISSION_RUNNING: &str = "portal_admission_running";
    /// Histogram (seconds): how long requests waited for an execution slot.
    pub const ADMISSION_WAIT: &str = "portal_admission_wait_seconds";
    /// Counter: requests turned away after waiting too long for a slot.
    pub const ADMISSION_REJECTED: &str = "portal_admission_rejected_total";
    /// Gauge: subscriptions open on this gateway.
    pub const SUBSCRIPTIONS: &str = "portal_subscriptions_open";
    /// Counter: failed authentications by `reason`.
    pub const AUTH_FAILURES: &str = "portal_auth_failures_total";
    /// Counter: fields denied by the policies, by `coordinate` (`Type.field`).
    pub const RBAC_DENIALS: &str = "portal_rbac_denials_total";
    /// Gauge: database connections by `state` (`idle`, `in_use`) and the pool's `max`.
    pub const DB_CONNECTIONS: &str = "portal_db_connections";
    /// Gauge: jobs waiting to run by `kind` (due now).
    pub const JOBS_QUEUED: &str = "portal_jobs_queued";
    /// Gauge: age in seconds of the oldest job due and not yet started, by `kind`.
    pub const JOBS_OLDEST_AGE: &str = "portal_jobs_oldest_queued_age_seconds";
    /// Gauge: jobs running now (leased), by `kind`.
    pub const JOBS_RUNNING: &str = "portal_jobs_running";
    /// Counter: job attempts by `kind` and `outcome` (`succeeded`, `retried`, `dead`).
    pub const JOB_OUTCOMES: &str = "portal_jobs_finished_total";
    /// Histogram (seconds): how long one job attempt ran, by `kind`.
    pub const JOB_DURATION: &str = "portal_job_duration_seconds";
    /// Counter: requests refused by a rate limit, by `scope` (`ip`, `user`, `api_key`,
    /// `tenant`).
    pub const RATE_LIMITED: &str = "portal_rate_limited_total";
    /// Counter: rate limit checks the process decided alone because Redis did not answer.
    pub const RATE_LIMIT_FALLBACKS: &str = "portal_rate_limit_fallbacks_total";
    /// Counter: webhook delivery attempts by `outcome` (`delivered`, `failed`, `gone`,
    /// `refused`).
    pub const WEBHOOK_DELIVERIES: &str = "portal_webhook_deliveries_total";

    /// Every metric above.
    pub const ALL: &[&str] = &[
        OPERATIONS,
        OPERATION_DURATION,
        HTTP_REQUESTS,
        HTTP_DURATION,
        SUBGRAPH_DURATION,
        SUBGRAPH_ERRORS,
        PLAN_CACHE,
        ADMISSION_WAITING,
        ADMISSION_RUNNING,
        ADMISSION_WAIT,
        ADMISSION_REJECTED,
        SUBSCRIPTIONS,
        AUTH_FAILURES,
        RBAC_DENIALS,
        DB_CONNECTIONS,
        JOBS_QUEUED,
        JOBS_OLDEST_AGE,
        JOBS_RUNNING,
        JOB_OUTCOMES,
        JOB_DURATION,
        RATE_LIMITED,
        RATE_LIMIT_FALLBACKS,
        WEBHOOK_DELIVERIES,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_values() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceContext::parse(header).expect("valid");
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.header(), header);
        assert!(parsed.sampled());
        let child = parsed.child();
        assert_eq!(child.trace_id(), parsed.trace_id());
        assert_ne!(child.span_id(), parsed.span_id());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
        // A later version is read as far as version 00 goes.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some_and(|c| !c.sampled())
        );
        let root = TraceContext::root();
        assert_eq!(TraceContext::parse(&root.header()), Some(root));
    }
}
