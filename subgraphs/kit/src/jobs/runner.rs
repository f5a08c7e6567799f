//! Workers: claim a batch of due jobs with a lease, run each with its handler as the
//! principal it was enqueued for, keep the lease alive while it runs, and record the
//! outcome — done, retried later with backoff, or dead-lettered.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter, Statement, Value,
};
use serde_json::Value as Json;
use uuid::Uuid;

use portal_entities::platform::job;

use super::{JobState, NOTIFY_CHANNEL, backoff};
use crate::actor::Actor;
use crate::clock::SharedClock;
use crate::db::BeginWrite;
use crate::error::{ApiError, ApiResult};

/// What a handler gets: the job and who it acts for.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The job's id.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its input.
    pub payload: Json,
    /// The tenant the work belongs to.
    pub tenant_id: Option<Uuid>,
    /// The principal it acts for (re-check its rights before acting).
    pub principal: Option<Actor>,
    /// 1 on the first run, 2 on the first retry, …
    pub attempt: i32,
}

impl JobContext {
    /// The request facts for audit events this job's work records. With the principal as
    /// the actor, every such event names both who it was for and which job did it: the
    /// job stands where a request id would (`job:<id>`), the worker and kind as the agent.
    pub fn audit_meta(&self) -> crate::actor::RequestMeta {
        crate::actor::RequestMeta {
            request_id: Some(format!("job:{}", self.id)),
            source_ip: None,
            user_agent: Some(format!("portal-worker ({})", self.kind)),
            traceparent: None,
        }
    }

    /// The tenant the job belongs to; a permanent failure for a job without one.
    pub fn tenant(&self) -> Result<Uuid, JobError> {
        self.tenant_id
            .ok_or_else(|| JobError::Permanent("the job belongs to no tenant".into()))
    }

    /// The id the payload holds under `field`, if any; a permanent failure when the field
    /// is there but holds no id.
    pub fn payload_id(&self, field: &str) -> Result<Option<Uuid>, JobError> {
        match self.payload.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(value) => value
                .as_str()
                .and_then(|v| Uuid::parse_str(v).ok())
                .map(Some)
                .ok_or_else(|| JobError::Permanent(format!("the job's `{field}` is no id"))),
        }
    }

    /// The id the payload must hold under `field`; a permanent failure without it.
    pub fn required_id(&self, field: &str) -> Result<Uuid, JobError> {
        self.payload_id(field)?
            .ok_or_else(|| JobError::Permanent(format!("the job names no `{field}`")))
    }
}

/// Why a run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying (a remote was down, a lock was busy).
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help (bad input, lost rights): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
    /// Not now, but at a known time (a resource held elsewhere until then); counts as an
    /// attempt like [`JobError::Retry`].
    #[error("{reason}")]
    RetryAt {
        /// Why.
        reason: String,
        /// When to run again.
        at: chrono::DateTime<chrono::Utc>,
    },
}

/// Runs jobs of one kind. Runs are at least once: make them idempotent.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    /// Does the work of `job`.
    async fn run(&self, job: &JobContext) -> Result<(), JobError>;
}

/// A worker: handlers by kind, and how it claims.
pub struct Runner {
    db: DatabaseConnection,
    clock: SharedClock,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    worker: String,
    lease: Duration,
    batch: u64,
    poll: std::time::Duration,
    /// The handlers running now, to stop them when their leases are given back.
    running: parking_lot::Mutex<HashMap<Uuid, tokio::task::AbortHandle>>,
}

impl Runner {
    /// A worker over `db` reading time from `clock`, with a fresh worker id, a 30 s lease,
    /// batches of 16 and a 250 ms poll.
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self {
            db,
            clock,
            handlers: HashMap::new(),
            worker: format!("worker-{}", Uuid::now_v7()),
            lease: Duration::seconds(30),
            batch: 16,
            poll: std::time::Duration::from_millis(250),
            running: Default::default(),
        }
    }

    /// Runs jobs of `kind` with `handler`.
    pub fn handle(mut self, kind: &str, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(kind.to_owned(), handler);
        self
    }

    /// Leases last `lease` (heartbeats renew them every third of it).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Claims at most `batch` jobs at a time.
    pub fn batch(mut self, batch: u64) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Looks for work at least every `poll` (the only wake-up on SQLite).
    pub fn poll(mut self, poll: std::time::Duration) -> Self {
        self.poll = poll;
        self
    }

    /// This worker's id (recorded on the jobs it runs).
    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    /// Claims up to a batch of due jobs of the kinds this worker handles — queued ones
    /// whose time has come, and running ones whose lease has expired (their worker died) —
    /// leasing them to this worker. Jobs past their attempts are dead-lettered instead.
    pub async fn claim(&self) -> ApiResult<Vec<job::Model>> {
        if self.handlers.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let backend = self.db.get_database_backend();
        let kinds: Vec<Value> = self
            .handlers
            .keys()
            .map(|k| Value::from(k.as_str()))
            .collect();
        let head: Vec<Value> = vec![
            (now + self.lease).into(),
            self.worker.clone().into(),
            now.into(),
        ];
        let limit = Value::from(self.batch as i64);
        let (sql, values) = if backend == DatabaseBackend::Postgres {
            let kind_list: Vec<String> = (4..4 + kinds.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, \
                 worker = $2, updated_at = $3 WHERE id IN (SELECT id FROM jobs \
                 WHERE kind IN ({}) AND ((state = 'queued' AND run_at <= $3) \
                 OR (state = 'running' AND lease_until < $3)) \
                 ORDER BY run_at LIMIT ${} FOR UPDATE SKIP LOCKED) RETURNING *",
                kind_list.join(", "),
                4 + kinds.len()
            );
            let values: Vec<Value> = head.into_iter().chain(kinds).chain([limit]).collect();
            (sql, values)
        } else {
            // One statement: SQLite runs it under its single writer lock, atomically.
            let sql = format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, \
                 worker = ?, updated_at = ? WHERE id IN (SELECT id FROM jobs \
                 WHERE kind IN ({}) AND ((state = 'queued' AND run_at <= ?) \
                 OR (state = 'running' AND lease_until < ?)) \
                 ORDER BY run_at LIMIT ?) RETURNING *",
                vec!["?"; kinds.len()].join(", ")
            );
            let values: Vec<Value> = head
                .into_iter()
                .chain(kinds)
                .chain([now.into(), now.into(), limit])
                .collect();
            (sql, values)
        };
        let claimed = job::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut runnable = Vec::with_capacity(claimed.len());
        for job in claimed {
            if job.attempts > job.max_attempts {
                self.finish(
                    &job,
                    Err(JobError::Permanent(
                        "its worker stopped while running it too often".into(),
                    )),
                )
                .await?;
            } else {
                runnable.push(job);
            }
        }
        Ok(runnable)
    }

    /// Claims one batch, runs it (concurrently) and records the outcomes; returns how
    /// many jobs ran.
    pub async fn run_once(self: &Arc<Self>) -> ApiResult<usize> {
        let claimed = self.claim().await?;
        let count = claimed.len();
        let runs = claimed.into_iter().map(|job| {
            let runner = self.clone();
            tokio::spawn(async move { runner.run_one(job).await })
        });
        let mut outcomes = Vec::with_capacity(count);
        for run in runs.collect::<Vec<_>>() {
            outcomes.push(run.await);
        }
        for outcome in outcomes {
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = ?err, "recording a job outcome failed"),
                Err(err) => tracing::error!(%err, "a job handler panicked"),
            }
        }
        Ok(count)
    }

    async fn run_one(self: Arc<Self>, job: job::Model) -> ApiResult<()> {
        let Some(handler) = self.handlers.get(&job.kind).cloned() else {
            return Ok(());
        };
        // A job never runs as somebody else: a principal that does not read back is fatal.
        let principal = match job.principal.clone().map(serde_json::from_value::<Actor>) {
            None => None,
            Some(Ok(actor)) => Some(actor),
            Some(Err(_)) => {
                let unreadable = JobError::Permanent("its principal cannot be read".into());
                return self.finish(&job, Err(unreadable)).await;
            }
        };
        let context = JobContext {
            id: job.id,
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            tenant_id: job.tenant_id,
            principal,
            attempt: job.attempts,
        };
        let heartbeat = self.clone().heartbeat(job.id);
        let began = std::time::Instant::now();
        // ERROR level: always enabled, like the request span (see `telemetry`).
        let span = tracing::error_span!(
            "job",
            otel.name = %format_args!("job {}", job.kind),
            otel.kind = "consumer",
            job_id = %job.id,
            kind = %job.kind,
            attempt = job.attempts,
            tenant_id = job.tenant_id.map(tracing::field::display),
            trace_id = tracing::field::Empty,
        );
        // The job continues the trace of the request that enqueued it.
        let enqueued_by = job
            .traceparent
            .as_deref()
            .and_then(crate::telemetry::TraceContext::parse);
        let trace = crate::telemetry::adopt(&span, enqueued_by);
        let task = tokio::spawn(tracing::Instrument::instrument(
            crate::telemetry::in_trace(trace, async move { handler.run(&context).await }),
            span,
        ));
        self.running.lock().insert(job.id, task.abort_handle());
        let joined = task.await;
        self.running.lock().remove(&job.id);
        heartbeat.abort();
        let outcome = match joined {
            Ok(outcome) => outcome,
            // Stopped by `release_leases`: its lease was given back, nothing to record.
            Err(err) if err.is_cancelled() => return Ok(()),
            // A panicking handler is a failed attempt, not a lost job.
            Err(err) => Err(JobError::Retry(format!("the handler panicked: {err}"))),
        };
        metrics::histogram!(crate::telemetry::metric::JOB_DURATION, "kind" => job.kind.clone())
            .record(began.elapsed().as_secs_f64());
        self.finish(&job, outcome).await
    }

    /// Renews the lease of `id` every third of the lease while the job runs.
    fn heartbeat(self: Arc<Self>, id: Uuid) -> tokio::task::JoinHandle<()> {
        let every = (self.lease / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let renewed = job::Entity::update_many()
                    .col_expr(
                        job::Column::LeaseUntil,
                        sea_orm::sea_query::Expr::value(self.clock.now() + self.lease),
                    )
                    .filter(job::Column::Id.eq(id))
                    .filter(job::Column::Worker.eq(self.worker.as_str()))
                    .filter(job::Column::State.eq(JobState::Running.as_str()))
                    .exec(&self.db)
                    .await;
                if let Err(err) = renewed {
                    tracing::warn!(%err, %id, "renewing a job lease failed");
                }
            }
        })
    }

    /// Records the outcome of this worker's run of `job` (nothing, if the lease was lost
    /// and another worker has it now).
    async fn finish(&self, job: &job::Model, outcome: Result<(), JobError>) -> ApiResult<()> {
        use sea_orm::sea_query::Expr;
        let now = self.clock.now();
        let update = job::Entity::update_many()
            .filter(job::Column::Id.eq(job.id))
            .filter(job::Column::Worker.eq(self.worker.as_str()))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                job::Column::LeaseUntil,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            );
        let (update, event) = match outcome {
            Ok(()) => (
                update
                    .col_expr(
                        job::Column::State,
                        Expr::value(JobState::Succeeded.as_str()),
                    )
                    .col_expr(job::Column::FinishedAt, Expr::value(Some(now))),
                "job.succeeded",
            ),
            Err(err) => {
                let dead =
                    matches!(err, JobError::Permanent(_)) || job.attempts >= job.max_attempts;
                tracing::warn!(id = %job.id, kind = %job.kind, attempt = job.attempts, dead, error = %err, "job failed");
                let retry_at = match &err {
                    JobError::RetryAt { at, .. } => (*at).max(now),
                    _ => now + backoff(job.attempts),
                };
                let message: String = err.to_string().chars().take(2_000).collect();
                let update = update.col_expr(job::Column::LastError, Expr::value(message));
                if dead {
                    (
                        update
                            .col_expr(job::Column::State, Expr::value(JobState::Dead.as_str()))
                            .col_expr(job::Column::FinishedAt, Expr::value(Some(now))),
                        "job.dead_lettered",
                    )
                } else {
                    (
                        update
                            .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
                            .col_expr(job::Column::RunAt, Expr::value(retry_at)),
                        "job.failed",
                    )
                }
            }
        };
        // The new state and its event commit together (subscribers of `jobUpdated` read
        // the event, then the row).
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let updated = update.exec(&txn).await.map_err(ApiError::from_db)?;
        if updated.rows_affected == 1 {
            crate::events::write(
                &txn,
                crate::events::NewEvent {
                    tenant_id: job.tenant_id,
                    event_type: event.to_owned(),
                    subject_type: "job",
                    subject_id: Some(job.id),
                    actor: &Actor::anonymous(),
                    actor_kind: "system",
                    payload: serde_json::json!({ "kind": job.kind, "attempt": job.attempts }),
                    // Wall time, like the event's id: the feed windows on both.
                    occurred_at: chrono::Utc::now(),
                },
            )
            .await?;
        }
        txn.commit().await.map_err(ApiError::from_db)?;
        if updated.rows_affected == 1 {
            let outcome = match event {
                "job.succeeded" => "succeeded",
                "job.dead_lettered" => "dead",
                _ => "retried",
            };
            metrics::counter!(
                crate::telemetry::metric::JOB_OUTCOMES,
                "kind" => job.kind.clone(),
                "outcome" => outcome
            )
            .increment(1);
        }
        Ok(())
    }

    /// Stops this worker's running handlers and gives their leases back, for another
    /// worker to take at once: what a worker that stops before its jobs finish does. The
    /// attempt counts (a job that never finishes within a shutdown's grace period is
    /// dead-lettered after its attempts, not retried for ever); jobs are at least once, so
    /// a stopped handler's work is done again by the next one.
    pub async fn release_leases(&self) -> ApiResult<u64> {
        use sea_orm::sea_query::Expr;
        for (_, handler) in self.running.lock().drain() {
            handler.abort();
        }
        let now = self.clock.now();
        let released = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
            .col_expr(
                job::Column::LeaseUntil,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .col_expr(job::Column::Worker, Expr::value(Option::<String>::None))
            .col_expr(job::Column::RunAt, Expr::value(now))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Worker.eq(self.worker.as_str()))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        Ok(released.rows_affected)
    }

    /// Runs this worker until the process ends: enqueues due schedules, claims and runs
    /// batches, and waits for a `NOTIFY` (PostgreSQL) or the poll interval between them.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.spawn_until(tokio::sync::watch::channel(false).1)
    }

    /// [`Runner::spawn`] until `stop` turns `true`: then it claims nothing more, and the
    /// task ends once the batch it is running has finished.
    pub fn spawn_until(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let wake = crate::notify::wake_on_notify(&self.db, NOTIFY_CHANNEL);
        tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    return;
                }
                if let Err(err) = super::schedule::enqueue_due(&self.db, self.clock.now()).await {
                    tracing::warn!(error = ?err, "enqueueing scheduled jobs failed");
                }
                match self.run_once().await {
                    Ok(ran) if ran as u64 >= self.batch => continue,
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = ?err, "claiming jobs failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(self.poll) => {}
                    () = wake.notified() => {}
                    () = async {
                        // A dropped sender never stops the worker.
                        if stop.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    } => {}
                }
            }
        })
    }
}
