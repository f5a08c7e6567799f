//! The one job runner for all deferred and scheduled work (mail, report runs, webhook
//! deliveries, syncs, retention sweeps): jobs are rows in `jobs`, enqueued in the
//! transaction of the change that wants them (a rolled-back change enqueues nothing),
//! claimed with a lease by any number of workers, retried with exponential backoff and
//! jitter, and dead-lettered after `max_attempts`. Delivery is at least once: handlers are
//! idempotent (an idempotency key also keeps a job from being enqueued twice).
//!
//! Claiming: PostgreSQL `FOR UPDATE SKIP LOCKED` (workers never block each other, never
//! get the same job) with `LISTEN/NOTIFY` wake-up; SQLite one atomic `UPDATE … RETURNING`
//! and polling. A job whose worker died is claimed again once its lease expires; running
//! jobs keep their lease alive with heartbeats. Cron schedules in IANA time zones live in
//! [`schedule`]. See `docs/jobs.md`.

pub mod runner;
pub mod schedule;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::platform::job;

use crate::actor::Actor;
use crate::error::{ApiError, ApiResult};

/// The PostgreSQL channel that wakes workers when a job is enqueued.
pub const NOTIFY_CHANNEL: &str = "portal_jobs";

/// Attempts before a job is dead-lettered, unless the job says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 8;

/// Lifecycle of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for `run_at` and a worker.
    Queued,
    /// Claimed by a worker whose lease has not expired.
    Running,
    /// Done.
    Succeeded,
    /// Failed `max_attempts` times: kept for inspection, retried only by hand.
    Dead,
    /// Cancelled by an administrator before it ran.
    Cancelled,
}

impl JobState {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the storage form (unknown values read as `Dead`: never run by accident).
    pub fn from_db(value: &str) -> Self {
        match value {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "cancelled" => Self::Cancelled,
            _ => Self::Dead,
        }
    }
}

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// What to do: the name a handler is registered under, e.g. `report.run`.
    pub kind: String,
    /// The handler's input (no secrets: seal them first).
    pub payload: Value,
    /// The tenant the work belongs to.
    pub tenant_id: Option<Uuid>,
    /// The principal the job acts for; its rights are re-read when it runs.
    pub principal: Option<Actor>,
    /// Not before this instant (now when `None`).
    pub run_at: Option<DateTime<Utc>>,
    /// Enqueue at most once per `(kind, key)`.
    pub idempotency_key: Option<String>,
    /// Attempts before dead-lettering.
    pub max_attempts: i32,
}

impl NewJob {
    /// A job of `kind` with `payload`, to run now, with the default attempts.
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            tenant_id: None,
            principal: None,
            run_at: None,
            idempotency_key: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Acting for `actor` in its tenant.
    pub fn acting_for(mut self, actor: &Actor) -> Self {
        self.tenant_id = actor.tenant_id;
        self.principal = Some(actor.clone());
        self
    }

    /// Not before `at`.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// At most once per `key` for this kind.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Dead-lettered after `attempts` failures.
    pub fn max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

/// Enqueues `new` through `db` — pass the transaction of the change that wants the work,
/// so the job exists exactly when the change commits. With an idempotency key that was
/// used before for this kind, nothing is added and the existing job's id is returned.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    new: NewJob,
) -> ApiResult<Uuid> {
    let id = Uuid::now_v7();
    let principal = new
        .principal
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|err| ApiError::internal(format!("serializing a job principal: {err}")))?;
    let row = job::ActiveModel {
        id: Set(id),
        tenant_id: Set(new.tenant_id),
        kind: Set(new.kind.clone()),
        payload: Set(new.payload),
        principal: Set(principal),
        state: Set(JobState::Queued.as_str().to_owned()),
        attempts: Set(0),
        max_attempts: Set(new.max_attempts),
        run_at: Set(new.run_at.unwrap_or(now)),
        lease_until: Set(None),
        worker: Set(None),
        idempotency_key: Set(new.idempotency_key.clone()),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
        // The job's spans join the trace of the work that enqueued it.
        traceparent: Set(crate::telemetry::current_trace().map(|trace| trace.header())),
    };
    let inserted = job::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([job::Column::Kind, job::Column::IdempotencyKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map_err(ApiError::from_db)?;
    let id = if inserted == 0 {
        let key = new.idempotency_key.unwrap_or_default();
        job::Entity::find()
            .filter(job::Column::Kind.eq(new.kind))
            .filter(job::Column::IdempotencyKey.eq(key))
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .map(|existing| existing.id)
            .ok_or_else(|| ApiError::internal("an idempotent job vanished"))?
    } else {
        id
    };
    crate::notify::announce(db, NOTIFY_CHANNEL, None).await?;
    Ok(id)
}

/// How long to wait before attempt `attempt + 1` after `attempt` failures: 2 s doubling
/// up to an hour, with ±20 % jitter so failed jobs do not retry in lockstep.
pub fn backoff(attempt: i32) -> Duration {
    let exponent = attempt.clamp(1, 12) - 1;
    let base_ms = (2_000_i64 << exponent).min(3_600_000);
    let jitter = rand::random_range(0.8..1.2);
    Duration::milliseconds((base_ms as f64 * jitter) as i64)
}

/// The job `id` of `tenant_id` (`None`: platform jobs), or `NOT_FOUND`.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    tenant_id: Option<Uuid>,
    id: Uuid,
) -> ApiResult<job::Model> {
    let scoped = match tenant_id {
        Some(tenant) => job::Entity::find_by_id(id).filter(job::Column::TenantId.eq(tenant)),
        None => job::Entity::find_by_id(id).filter(job::Column::TenantId.is_null()),
    };
    crate::store::one_or_not_found(db, scoped, "job").await
}

/// Which jobs to list.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Only in this state.
    pub state: Option<JobState>,
    /// Only of this kind.
    pub kind: Option<String>,
}

/// A page of the jobs of `tenant_id`, oldest first.
pub async fn list(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    filter: &JobFilter,
    page: crate::pagination::PageRequest,
) -> ApiResult<crate::pagination::Page<job::Model>> {
    let mut select = job::Entity::find().filter(job::Column::TenantId.eq(tenant_id));
    if let Some(state) = filter.state {
        select = select.filter(job::Column::State.eq(state.as_str()));
    }
    if let Some(kind) = &filter.kind {
        select = select.filter(job::Column::Kind.eq(kind.as_str()));
    }
    page.fetch(db, select, job::Column::Id).await
}

/// Puts a dead or cancelled job of `tenant_id` back in the queue to run now, with fresh
/// attempts (administrators); `CONFLICT` unless it is dead or cancelled at that moment.
pub async fn retry<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    tenant_id: Option<Uuid>,
    id: Uuid,
) -> ApiResult<job::Model> {
    use sea_orm::sea_query::Expr;
    get(db, tenant_id, id).await?;
    let changed = job::Entity::update_many()
        .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
        .col_expr(job::Column::Attempts, Expr::value(0))
        .col_expr(job::Column::RunAt, Expr::value(now))
        .col_expr(
            job::Column::FinishedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::State.is_in([JobState::Dead.as_str(), JobState::Cancelled.as_str()]))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    if changed.rows_affected == 0 {
        return Err(ApiError::Conflict(
            "only dead or cancelled jobs are retried".into(),
        ));
    }
    crate::notify::announce(db, NOTIFY_CHANNEL, None).await?;
    get(db, tenant_id, id).await
}

/// Cancels a queued job of `tenant_id` (administrators); `CONFLICT` unless it is still
/// queued at that moment (a worker may have claimed it meanwhile).
pub async fn cancel<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    tenant_id: Option<Uuid>,
    id: Uuid,
) -> ApiResult<job::Model> {
    use sea_orm::sea_query::Expr;
    get(db, tenant_id, id).await?;
    let changed = job::Entity::update_many()
        .col_expr(
            job::Column::State,
            Expr::value(JobState::Cancelled.as_str()),
        )
        .col_expr(job::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::State.eq(JobState::Queued.as_str()))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    if changed.rows_affected == 0 {
        return Err(ApiError::Conflict("only queued jobs are cancelled".into()));
    }
    get(db, tenant_id, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for (attempt, base) in [
            (1, 2_000),
            (2, 4_000),
            (3, 8_000),
            (12, 3_600_000),
            (40, 3_600_000),
        ] {
            let ms = backoff(attempt).num_milliseconds();
            assert!(
                ms >= base * 8 / 10 && ms <= base * 12 / 10,
                "{attempt}: {ms}"
            );
        }
    }
}
