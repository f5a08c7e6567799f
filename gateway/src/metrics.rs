//! The gateway's metrics: what it records, with labels of bounded cardinality (operation
//! names are clients' choice, so only the first [`OperationNames::DEFAULT_CAPACITY`]
//! distinct names of valid operations get a series of their own; later ones are grouped as
//! `other`). Names are in [`portal_kit::telemetry::metric`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use parking_lot::Mutex;
use portal_kit::telemetry::metric;

use crate::response::Response;

/// The operation names that get a label of their own.
pub struct OperationNames {
    known: Mutex<HashSet<String>>,
    capacity: usize,
}

impl Default for OperationNames {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl OperationNames {
    /// How many distinct operation names get a series by default.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// At most `capacity` distinct names.
    pub fn new(capacity: usize) -> Self {
        Self {
            known: Mutex::new(HashSet::new()),
            capacity,
        }
    }

    /// The label for the operation `name` of a valid document: the name itself while
    /// there is room (or it already has one), `other` once the set is full, `anonymous`
    /// for an unnamed operation. Only `authenticated` callers add names, so that
    /// anonymous traffic cannot fill the set with names of its own.
    pub fn label(&self, name: Option<&str>, authenticated: bool) -> String {
        let Some(name) = name else {
            return "anonymous".to_owned();
        };
        let mut known = self.known.lock();
        if known.contains(name) {
            return name.to_owned();
        }
        if authenticated && known.len() < self.capacity {
            known.insert(name.to_owned());
            return name.to_owned();
        }
        "other".to_owned()
    }
}

/// How an operation ended: `ok` (data, no errors), `partial` (data and errors), `error`
/// (no data: refused or failed as a whole).
pub fn outcome(response: &Response) -> &'static str {
    match (&response.data, response.errors.is_empty()) {
        (Some(_), true) => "ok",
        (Some(_), false) => "partial",
        (None, _) => "error",
    }
}

/// Whether finished operations are recorded at all (metrics on, or debug logging).
pub fn operations_observed() -> bool {
    portal_kit::telemetry::metrics_on() || tracing::enabled!(tracing::Level::DEBUG)
}

/// Records one finished operation (and logs it at debug level).
pub fn operation(name: String, kind: &'static str, outcome: &'static str, took: Duration) {
    tracing::debug!(
        operation = %name,
        kind,
        outcome,
        took_ms = took.as_secs_f64() * 1e3,
        "operation finished"
    );
    if !portal_kit::telemetry::metrics_on() {
        return;
    }
    let labels = [
        ("operation", name),
        ("type", kind.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    counter!(metric::OPERATIONS, &labels).increment(1);
    histogram!(metric::OPERATION_DURATION, &labels).record(took.as_secs_f64());
}

/// Records one subgraph fetch: its latency, and its error code when it failed.
pub fn subgraph_fetch(subgraph: &str, began: Instant, failed: Option<&'static str>) {
    if !portal_kit::telemetry::metrics_on() {
        return;
    }
    let took = began.elapsed().as_secs_f64();
    let outcome = if failed.is_some() { "error" } else { "ok" };
    histogram!(
        metric::SUBGRAPH_DURATION,
        "subgraph" => subgraph.to_owned(),
        "outcome" => outcome
    )
    .record(took);
    if let Some(code) = failed {
        counter!(metric::SUBGRAPH_ERRORS, "subgraph" => subgraph.to_owned(), "code" => code)
            .increment(1);
    }
}

/// Records an operation cache lookup.
pub fn plan_cache(hit: bool) {
    if !portal_kit::telemetry::metrics_on() {
        return;
    }
    counter!(metric::PLAN_CACHE, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

/// Records fields the policies denied.
pub fn denied(coordinates: &[(String, String)]) {
    if !portal_kit::telemetry::metrics_on() {
        return;
    }
    for (type_name, field) in coordinates {
        counter!(metric::RBAC_DENIALS, "coordinate" => format!("{type_name}.{field}")).increment(1);
    }
}

/// Records a failed authentication.
pub fn auth_failure(reason: &'static str) {
    portal_kit::telemetry::auth_failure(reason);
}

/// A subscription opened (`+1`) or ended (`-1`).
pub fn subscriptions(change: f64) {
    if !portal_kit::telemetry::metrics_on() {
        return;
    }
    gauge!(metric::SUBSCRIPTIONS).increment(change);
}

/// A request waiting for an execution slot: counted in `portal_admission_waiting` until
/// it ends or is dropped (a client that gave up).
pub struct Waiting {
    began: Instant,
    ended: bool,
}

impl Waiting {
    /// A request starts waiting.
    pub fn start() -> Self {
        if portal_kit::telemetry::metrics_on() {
            gauge!(metric::ADMISSION_WAITING).increment(1.0);
        }
        Self {
            began: Instant::now(),
            ended: false,
        }
    }

    /// It stopped waiting: admitted, or turned away.
    pub fn end(mut self, admitted: bool) {
        self.ended = true;
        if !portal_kit::telemetry::metrics_on() {
            return;
        }
        gauge!(metric::ADMISSION_WAITING).decrement(1.0);
        histogram!(metric::ADMISSION_WAIT).record(self.began.elapsed().as_secs_f64());
        if !admitted {
            counter!(metric::ADMISSION_REJECTED).increment(1);
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.ended && portal_kit::telemetry::metrics_on() {
            gauge!(metric::ADMISSION_WAITING).decrement(1.0);
        }
    }
}

/// Operations holding an execution slot (`portal_admission_running`).
pub struct Admission;

impl Admission {
    /// An operation took an execution slot.
    pub fn started() {
        if !portal_kit::telemetry::metrics_on() {
            return;
        }
        gauge!(metric::ADMISSION_RUNNING).increment(1.0);
    }

    /// An operation gave its execution slot back.
    pub fn finished() {
        if !portal_kit::telemetry::metrics_on() {
            return;
        }
        gauge!(metric::ADMISSION_RUNNING).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_beyond_the_capacity_are_grouped() {
        let names = OperationNames::new(2);
        assert_eq!(names.label(Some("X"), false), "other");
        assert_eq!(names.label(Some("A"), true), "A");
        assert_eq!(names.label(Some("A"), false), "A");
        assert_eq!(names.label(Some("B"), true), "B");
        assert_eq!(names.label(Some("C"), true), "other");
        assert_eq!(names.label(Some("A"), true), "A");
        assert_eq!(names.label(None, true), "anonymous");
    }
}
