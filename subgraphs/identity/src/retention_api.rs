//! The retention engine through GraphQL: every class of records with the tenant's period
//! and the platform's bounds (`retentionPeriods`), a dry run of what a sweep would delete
//! now (`retentionPreview`), setting a period (`setRetentionPeriod`) and sweeping now
//! (`runRetentionSweep`, a job). Who may: the policies' decision (auditors read, tenant
//! admins act).

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::json;

use portal_kit::context::{actor, db, meta};
use portal_kit::db::BeginWrite;
use portal_kit::jobs::{self, NewJob};
use portal_kit::retention::{self, Engine, Outcome, Setting};
use portal_kit::{ApiError, ApiResult};

use crate::jobs_api::Job;

/// A class of records the retention engine keeps for a period.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum RetentionClass {
    /// Sign-in sessions and their refresh tokens, from when they ended.
    Sessions,
    /// Mail the portal sent, from when it was sent.
    MailOutbox,
    /// Background jobs that finished, from when they finished.
    JobHistory,
    /// Webhook messages delivered or given up, with their attempts.
    WebhookDeliveries,
    /// Files the portal made (exports, report files, archives, evidence packs); the same
    /// setting as `Tenant.fileRetentionDays`.
    StoredFiles,
    /// Messages and whole threads, by the tenant's message retention rules per thread
    /// status (`setMessageRetentionRule`).
    Messages,
    /// Audit events, deleted in whole segments ending at a signed checkpoint.
    AuditEvents,
}

impl RetentionClass {
    fn class(self) -> retention::Class {
        match self {
            Self::Sessions => retention::SESSIONS,
            Self::MailOutbox => retention::MAIL_OUTBOX,
            Self::JobHistory => retention::JOB_HISTORY,
            Self::WebhookDeliveries => retention::WEBHOOK_DELIVERIES,
            Self::StoredFiles => retention::STORED_FILES,
            Self::Messages => retention::MESSAGES,
            Self::AuditEvents => retention::AUDIT_EVENTS,
        }
    }

    fn of(class: retention::Class) -> Option<Self> {
        [
            Self::Sessions,
            Self::MailOutbox,
            Self::JobHistory,
            Self::WebhookDeliveries,
            Self::StoredFiles,
            Self::Messages,
            Self::AuditEvents,
        ]
        .into_iter()
        .find(|c| c.class() == class)
    }
}

/// The tenant's retention period for one class.
#[derive(SimpleObject, Clone, Debug)]
pub struct RetentionPeriod {
    /// The class.
    pub class: RetentionClass,
    /// What it holds and when a record of it counts as ended.
    pub description: String,
    /// The period in force: records that ended longer ago are deleted (`null` for a class
    /// kept by rules of its own: see `configuredBy`).
    pub days: Option<i32>,
    /// Whether the tenant set it (else it is the platform's default).
    pub set_by_tenant: bool,
    /// The platform's default.
    pub default_days: i32,
    /// The shortest period the platform allows.
    pub minimum_days: i32,
    /// The longest period the platform allows.
    pub maximum_days: i32,
    /// For a class kept by rules of its own (messages: per thread status), the mutation
    /// that sets them.
    pub configured_by: Option<String>,
}

impl RetentionPeriod {
    fn of(setting: Setting) -> Option<Self> {
        Some(Self {
            class: RetentionClass::of(setting.class)?,
            description: setting.class.about.to_owned(),
            days: setting.class.rules.is_none().then_some(setting.days),
            set_by_tenant: setting.set_by_tenant,
            default_days: setting.default_days,
            minimum_days: setting.class.min_days,
            maximum_days: setting.class.max_days,
            configured_by: setting.class.rules.map(str::to_owned),
        })
    }
}

/// What a sweep of one class would delete now.
#[derive(SimpleObject, Clone, Debug)]
pub struct RetentionPreviewItem {
    /// The class.
    pub class: RetentionClass,
    /// Its period (`null` for a class kept by rules of its own).
    pub days: Option<i32>,
    /// Records that ended before this are due.
    pub cutoff: DateTime<Utc>,
    /// How many are due (records under a legal hold are not counted: they stay).
    pub due: i64,
}

impl RetentionPreviewItem {
    fn of(outcome: Outcome) -> Option<Self> {
        Some(Self {
            class: RetentionClass::of(outcome.setting.class)?,
            days: outcome
                .setting
                .class
                .rules
                .is_none()
                .then_some(outcome.setting.days),
            cutoff: outcome.cutoff,
            due: i64::try_from(outcome.count).unwrap_or(i64::MAX),
        })
    }
}

/// Input of `setRetentionPeriod`.
#[derive(InputObject)]
pub struct SetRetentionPeriodInput {
    /// The class.
    pub class: RetentionClass,
    /// The period in days, within the class's bounds; `null` returns to the default.
    pub days: Option<i32>,
}

fn engine<'a>(ctx: &'a Context<'_>) -> ApiResult<&'a Engine> {
    ctx.data::<Engine>()
        .map_err(|_| ApiError::internal("retention engine missing from schema data"))
}

/// Retention queries.
#[derive(Default)]
pub struct RetentionQuery;

#[Object]
impl RetentionQuery {
    /// The caller's tenant's retention period for every class of records, with the
    /// platform's bounds.
    async fn retention_periods(&self, ctx: &Context<'_>) -> ApiResult<Vec<RetentionPeriod>> {
        let settings = engine(ctx)?.settings(actor(ctx).tenant()?).await?;
        Ok(settings
            .into_iter()
            .filter_map(RetentionPeriod::of)
            .collect())
    }

    /// A dry run: what a sweep of the caller's tenant would delete now, class by class.
    /// Nothing changes.
    async fn retention_preview(&self, ctx: &Context<'_>) -> ApiResult<Vec<RetentionPreviewItem>> {
        let outcomes = engine(ctx)?
            .preview(actor(ctx).tenant()?, Utc::now())
            .await?;
        Ok(outcomes
            .into_iter()
            .filter_map(RetentionPreviewItem::of)
            .collect())
    }
}

/// Retention mutations.
#[derive(Default)]
pub struct RetentionMutation;

#[Object]
impl RetentionMutation {
    /// Sets the caller's tenant's retention period for one class (`days: null`: the
    /// platform's default). The next sweep applies it; `retentionPreview` says what it
    /// would delete. `BAD_USER_INPUT` outside the class's bounds.
    async fn set_retention_period(
        &self,
        ctx: &Context<'_>,
        input: SetRetentionPeriodInput,
    ) -> ApiResult<RetentionPeriod> {
        let setting = engine(ctx)?
            .set((actor(ctx), meta(ctx)), input.class.class(), input.days)
            .await?;
        RetentionPeriod::of(setting).ok_or_else(|| ApiError::internal("unknown class"))
    }

    /// Sweeps the caller's tenant now (a job: follow it with `job(id)`), instead of
    /// waiting for the daily sweep. The sweep is audited with what it deleted.
    async fn run_retention_sweep(&self, ctx: &Context<'_>) -> ApiResult<Job> {
        let actor = actor(ctx);
        let tenant = actor.tenant()?;
        let db = db(ctx)?;
        let now = Utc::now();
        let txn = db.begin_write().await.map_err(ApiError::from_db)?;
        let job = NewJob::new(retention::SWEEP_KIND, json!({ "tenantId": tenant }))
            .acting_for(actor)
            .max_attempts(3);
        let id = jobs::enqueue(&txn, now, job).await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(Job::from(jobs::get(db, Some(tenant), id).await?))
    }
}
