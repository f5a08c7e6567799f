//! Administrators' view of the tenant's background jobs (`docs/jobs.md`): list them by
//! state and kind, retry a dead or cancelled one, cancel a queued one. Who may is the
//! policies' decision; every change is audited. Payloads and principals are not shown.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use portal_kit::db::BeginWrite;
use uuid::Uuid;

use portal_entities::platform::job;
use portal_kit::audit::AuditEvent;
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::input;
use portal_kit::jobs::{self, JobFilter, JobState};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::subscription::{Updates, events, follow};
use portal_kit::{ApiError, ApiResult};

/// Lifecycle of a background job.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "JobState")]
pub enum JobStateGql {
    /// Waiting for its time and a worker.
    Queued,
    /// A worker holds it.
    Running,
    /// Done.
    Succeeded,
    /// Failed all its attempts; kept for inspection until retried.
    Dead,
    /// Cancelled before it ran.
    Cancelled,
}

impl From<JobState> for JobStateGql {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Queued => Self::Queued,
            JobState::Running => Self::Running,
            JobState::Succeeded => Self::Succeeded,
            JobState::Dead => Self::Dead,
            JobState::Cancelled => Self::Cancelled,
        }
    }
}

impl From<JobStateGql> for JobState {
    fn from(state: JobStateGql) -> Self {
        match state {
            JobStateGql::Queued => Self::Queued,
            JobStateGql::Running => Self::Running,
            JobStateGql::Succeeded => Self::Succeeded,
            JobStateGql::Dead => Self::Dead,
            JobStateGql::Cancelled => Self::Cancelled,
        }
    }
}

/// A unit of background work of the tenant (mail delivery, report runs, …).
#[derive(SimpleObject, Clone)]
pub struct Job {
    /// Stable id.
    pub id: ID,
    /// What it does, e.g. `mail.deliver`.
    pub kind: String,
    /// Where it is in its life.
    pub state: JobStateGql,
    /// Runs so far (the current one included while running).
    pub attempts: i32,
    /// Runs before it is dead-lettered.
    pub max_attempts: i32,
    /// Not before this instant.
    pub run_at: DateTime<Utc>,
    /// Why the last run failed, if it did.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it succeeded, died or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    uuid: Uuid,
}

impl From<job::Model> for Job {
    fn from(row: job::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            kind: row.kind,
            state: JobState::from_db(&row.state).into(),
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            uuid: row.id,
        }
    }
}

impl Node for Job {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(JobConnection, JobEdge, Job);

/// Narrows the job list; every given criterion must hold.
#[derive(InputObject, Default)]
pub struct JobFilterInput {
    /// Only jobs in this state.
    pub state: Option<JobStateGql>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
}

/// Job queries.
#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// The caller's tenant's background jobs, oldest first.
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        filter: Option<JobFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<JobConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let criteria = JobFilter {
            state: filter.state.map(JobState::from),
            kind: filter
                .kind
                .map(|k| input::text("filter.kind", &k, 64))
                .transpose()?,
        };
        let rows = jobs::list(db(ctx)?, tenant_of(ctx)?, &criteria, page).await?;
        Ok(rows.map(Job::from).into())
    }

    /// One background job of the caller's tenant, or null.
    async fn job(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Job>> {
        let id = input::id("id", &id)?;
        match jobs::get(db(ctx)?, Some(tenant_of(ctx)?), id).await {
            Ok(row) => Ok(Some(row.into())),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// Job mutations (audited).
#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Runs a dead or cancelled job again, now, with fresh attempts.
    async fn retry_job(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Job> {
        change(ctx, id, "job.retry").await
    }

    /// Cancels a queued job before it runs.
    async fn cancel_job(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Job> {
        change(ctx, id, "job.cancel").await
    }
}

async fn change(ctx: &Context<'_>, id: ID, action: &'static str) -> ApiResult<Job> {
    let id = input::id("id", &id)?;
    let tenant = Some(tenant_of(ctx)?);
    let now = Utc::now();
    let txn = db(ctx)?.begin_write().await.map_err(ApiError::from_db)?;
    let changed = if action == "job.retry" {
        jobs::retry(&txn, now, tenant, id).await?
    } else {
        jobs::cancel(&txn, now, tenant, id).await?
    };
    AuditEvent::success(action, "job", id)
        .with_details(serde_json::json!({ "kind": changed.kind }))
        .record(&txn, actor(ctx), meta(ctx))
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(changed.into())
}

/// Job subscriptions.
#[derive(Default)]
pub struct JobSubscription;

#[async_graphql::Subscription]
impl JobSubscription {
    /// The job `id` of the caller's tenant as it is after each change: every finished
    /// attempt (succeeded, failed and queued again, dead-lettered), a retry or a
    /// cancellation. `NOT_FOUND` for a job of another tenant or none.
    async fn job_updated(&self, ctx: &Context<'_>, id: ID) -> Result<Updates<Job>, ApiError> {
        let id = input::id("id", &id)?;
        let subscribed = events(ctx)?;
        let tenant = tenant_of(ctx)?;
        let db = db(ctx)?.clone();
        jobs::get(&db, Some(tenant), id).await?;
        Ok(follow(
            subscribed,
            tenant,
            move |event| event.subject_type == "job" && event.subject_id == Some(id),
            move |_event| {
                let db = db.clone();
                async move { Ok(Some(jobs::get(&db, Some(tenant), id).await?.into())) }
            },
        ))
    }
}
