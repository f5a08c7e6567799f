//! The retention engine: one place that decides how long each class of records is kept,
//! per tenant within the platform's bounds, and deletes what has outlived it — on a daily
//! schedule and on demand, each sweep audited, legal holds respected, and a dry run that
//! says what would go, class by class.
//!
//! A class of records ([`Class`]) is owned by the part of the portal that keeps it; that
//! part implements a [`Sweeper`] for it (sessions are identity's, webhook delivery logs
//! integrations', mail and job history the platform's). The [`Engine`] holds every
//! sweeper, the tenants' settings (`retention_settings`) and the sources of legal holds,
//! and is what GraphQL and the sweep job call.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::platform::{email_outbox, job, retention_setting};

use crate::actor::{Actor, RequestMeta};
use crate::audit::AuditEvent;
use crate::db::BeginWrite;
use crate::error::{ApiError, ApiResult};
use crate::jobs::runner::{JobContext, JobError, JobHandler};
use crate::jobs::schedule;
use crate::privacy::{Hold, PrivacyDomain};

/// A class of records with a retention period: its name and the platform's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// Its name (`SESSIONS`, …): the GraphQL enum value and the settings key.
    pub name: &'static str,
    /// What it holds and when a record of it counts as ended.
    pub about: &'static str,
    /// The shortest period a tenant may set, in days.
    pub min_days: i32,
    /// The period when the tenant has set none.
    pub default_days: i32,
    /// The longest period a tenant may set.
    pub max_days: i32,
    /// For a class whose periods are rules of its own (messages: per thread status), the
    /// mutation that sets them; the engine lists, previews and sweeps it, the period is
    /// not one number, and its sweeper takes the sweep's *now* as `cutoff`.
    pub rules: Option<&'static str>,
}

/// Sign-in sessions (with their refresh tokens), counted from when they ended.
pub const SESSIONS: Class = Class {
    name: "SESSIONS",
    about: "sign-in sessions and their refresh tokens, from when they ended (revoked, or \
            past the longest absolute timeout)",
    min_days: 30,
    default_days: 90,
    max_days: 730,
    rules: None,
};

/// Mail sent from the outbox.
pub const MAIL_OUTBOX: Class = Class {
    name: "MAIL_OUTBOX",
    about: "mail the portal sent (sealed bodies in the outbox), from when it was sent, and \
            mail it gave up on after every attempt, from when it was queued; mail still \
            being tried is never deleted",
    min_days: 1,
    default_days: 30,
    max_days: 365,
    rules: None,
};

/// Jobs that finished.
pub const JOB_HISTORY: Class = Class {
    name: "JOB_HISTORY",
    about: "background jobs that finished (succeeded, dead-lettered or cancelled), from \
            when they finished; jobs waiting or running are never deleted",
    min_days: 7,
    default_days: 30,
    max_days: 365,
    rules: None,
};

/// Webhook messages whose delivery ended, with their attempts.
pub const WEBHOOK_DELIVERIES: Class = Class {
    name: "WEBHOOK_DELIVERIES",
    about: "webhook messages delivered or given up, with their delivery attempts, from \
            when they were created or delivered, whichever is later; messages still being \
            delivered are never deleted",
    min_days: 7,
    default_days: 30,
    max_days: 365,
    rules: None,
};

/// Files the portal made (exports, report files, archives, evidence packs, compliance
/// reports). The period is the tenant's `fileRetentionDays` (the same setting), and its
/// default the platform's configured file retention ([`Engine::with_file_default`]).
pub const STORED_FILES: Class = Class {
    name: "STORED_FILES",
    about: "files the portal made (exports, report files, data archives, evidence packs, \
            compliance reports), from when they were made; attachments stay with their \
            messages",
    min_days: 1,
    default_days: 30,
    max_days: 3650,
    rules: None,
};

/// Messages, by the tenant's message retention rules (per thread status, delete or
/// anonymize; `setMessageRetentionRule`), legal holds respected.
pub const MESSAGES: Class = Class {
    name: "MESSAGES",
    about: "messages and whole threads, by the tenant's message retention rules per thread \
            status (delete or anonymize); threads under a legal hold stay",
    min_days: 1,
    default_days: 0,
    max_days: 36_500,
    rules: Some("setMessageRetentionRule"),
};

/// Audit events, deleted in whole segments ending at a signed checkpoint.
pub const AUDIT_EVENTS: Class = Class {
    name: "AUDIT_EVENTS",
    about: "audit events, from when they were recorded, deleted only in whole segments \
            ending at a signed checkpoint so that the rest still verifies; kept whole while \
            any legal hold exists in the tenant",
    min_days: 365,
    default_days: 2555,
    max_days: 3650,
    rules: None,
};

/// Every class, in the order they are listed and swept.
pub const CLASSES: [Class; 7] = [
    SESSIONS,
    MAIL_OUTBOX,
    JOB_HISTORY,
    WEBHOOK_DELIVERIES,
    STORED_FILES,
    MESSAGES,
    AUDIT_EVENTS,
];

/// The class named `name`.
pub fn class(name: &str) -> Option<Class> {
    CLASSES.iter().copied().find(|c| c.name == name)
}

/// What legal holds cover in a tenant, for sweepers to leave alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// People under a hold.
    pub users: Vec<Uuid>,
    /// Accounts under a hold.
    pub accounts: Vec<Uuid>,
    /// Threads under a hold.
    pub threads: Vec<Uuid>,
}

impl Held {
    /// Whether no hold exists.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.accounts.is_empty() && self.threads.is_empty()
    }

    /// What `holds` cover.
    pub fn from_holds(holds: &[Hold]) -> Self {
        let mut held = Self::default();
        for hold in holds {
            match hold.target_type.as_str() {
                "USER" => held.users.push(hold.target_id),
                "ACCOUNT" => held.accounts.push(hold.target_id),
                "THREAD" => held.threads.push(hold.target_id),
                _ => {}
            }
        }
        held
    }
}

/// Deletes the ended records of one class.
#[async_trait::async_trait]
pub trait Sweeper: Send + Sync {
    /// The class.
    fn class(&self) -> Class;

    /// How many records of `tenant` (`None`: the platform's own, of no tenant) ended
    /// before `cutoff` and are not `held`.
    async fn due(&self, tenant: Option<Uuid>, cutoff: DateTime<Utc>, held: &Held)
    -> ApiResult<u64>;

    /// Deletes at most `limit` of them (oldest first), each still ended when deleted; how
    /// many.
    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        held: &Held,
        limit: u64,
    ) -> ApiResult<u64>;
}

/// A tenant's period for one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The class.
    pub class: Class,
    /// The period in force, in days.
    pub days: i32,
    /// Whether the tenant set it (else it is the platform's default).
    pub set_by_tenant: bool,
    /// The platform's default for the class.
    pub default_days: i32,
}

/// What a sweep of one class would delete now, or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The class and its period.
    pub setting: Setting,
    /// Records that ended before this are due.
    pub cutoff: DateTime<Utc>,
    /// How many (due in a preview; deleted in a sweep).
    pub count: u64,
}

/// Records deleted per batch (each batch its own statement; a sweep runs until a batch
/// comes back short).
const BATCH: u64 = 500;

/// The retention engine.
#[derive(Clone)]
pub struct Engine {
    db: DatabaseConnection,
    sweepers: Arc<Vec<Arc<dyn Sweeper>>>,
    holds: Arc<Vec<Arc<dyn PrivacyDomain>>>,
    file_default_days: i32,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "classes",
                &self
                    .sweepers
                    .iter()
                    .map(|s| s.class().name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Engine {
    /// The engine over `db`, deleting through `sweepers` (one per class), respecting the
    /// legal holds `holds` keep.
    pub fn new(
        db: DatabaseConnection,
        sweepers: Vec<Arc<dyn Sweeper>>,
        holds: Vec<Arc<dyn PrivacyDomain>>,
    ) -> Self {
        Self {
            db,
            sweepers: Arc::new(sweepers),
            holds: Arc::new(holds),
            file_default_days: STORED_FILES.default_days,
        }
    }

    /// With `days` as the default of [`STORED_FILES`] (the platform's configured file
    /// retention, which files made without a tenant setting expire by).
    pub fn with_file_default(mut self, days: i32) -> Self {
        self.file_default_days = days.clamp(STORED_FILES.min_days, STORED_FILES.max_days);
        self
    }

    /// The platform's default for `class`.
    fn default_days(&self, class: Class) -> i32 {
        if class == STORED_FILES {
            self.file_default_days
        } else {
            class.default_days
        }
    }

    /// The tenant's file retention (`tenants.file_retention_days`): the period of
    /// [`STORED_FILES`], kept where files are made from.
    async fn file_days(&self, db: &impl ConnectionTrait, tenant: Uuid) -> ApiResult<Option<i32>> {
        use portal_entities::identity::tenant;
        Ok(tenant::Entity::find_by_id(tenant)
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .and_then(|t| t.file_retention_days))
    }

    /// The tenant's period for every class.
    pub async fn settings(&self, tenant: Uuid) -> ApiResult<Vec<Setting>> {
        let mut stored: BTreeMap<String, i32> = retention_setting::Entity::find()
            .filter(retention_setting::Column::TenantId.eq(tenant))
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|row| (row.class, row.days))
            .collect();
        stored.remove(STORED_FILES.name);
        if let Some(days) = self.file_days(&self.db, tenant).await? {
            stored.insert(STORED_FILES.name.to_owned(), days);
        }
        Ok(CLASSES
            .iter()
            .map(|class| match stored.get(class.name) {
                // A stored period outside bounds tightened since is clamped into them.
                Some(days) => Setting {
                    class: *class,
                    days: (*days).clamp(class.min_days, class.max_days),
                    set_by_tenant: true,
                    default_days: self.default_days(*class),
                },
                None => Setting {
                    class: *class,
                    days: self.default_days(*class),
                    set_by_tenant: false,
                    default_days: self.default_days(*class),
                },
            })
            .collect())
    }

    /// Sets the actor's tenant's period for `class` (`None`: back to the platform's
    /// default), audited as `retention.update` with the period before and after.
    pub async fn set(
        &self,
        (actor, meta): (&Actor, &RequestMeta),
        class: Class,
        days: Option<i32>,
    ) -> ApiResult<Setting> {
        let tenant = actor.tenant()?;
        if let Some(mutation) = class.rules {
            return Err(ApiError::invalid(
                "input.class",
                format!(
                    "{} is kept by rules of its own: set them with {mutation}",
                    class.name
                ),
            ));
        }
        if let Some(days) = days
            && !(class.min_days..=class.max_days).contains(&days)
        {
            return Err(ApiError::invalid(
                "input.days",
                format!(
                    "{} is kept between {} and {} days",
                    class.name, class.min_days, class.max_days
                ),
            ));
        }
        let before = self
            .settings(tenant)
            .await?
            .into_iter()
            .find(|s| s.class == class)
            .map_or(self.default_days(class), |s| s.days);
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        match days {
            // Files' period is the tenant's file retention: one setting, wherever it is set.
            _ if class == STORED_FILES => {
                use portal_entities::identity::tenant;
                tenant::Entity::update_many()
                    .col_expr(
                        tenant::Column::FileRetentionDays,
                        sea_orm::sea_query::Expr::value(days),
                    )
                    .col_expr(
                        tenant::Column::UpdatedAt,
                        sea_orm::sea_query::Expr::value(Utc::now()),
                    )
                    .filter(tenant::Column::Id.eq(tenant))
                    .exec(&txn)
                    .await
                    .map_err(ApiError::from_db)?;
            }
            Some(days) => {
                retention_setting::Entity::insert(retention_setting::ActiveModel {
                    tenant_id: Set(tenant),
                    class: Set(class.name.to_owned()),
                    days: Set(days),
                    updated_by: Set(actor.id),
                    updated_at: Set(Utc::now()),
                })
                .on_conflict(
                    OnConflict::columns([
                        retention_setting::Column::TenantId,
                        retention_setting::Column::Class,
                    ])
                    .update_columns([
                        retention_setting::Column::Days,
                        retention_setting::Column::UpdatedBy,
                        retention_setting::Column::UpdatedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(ApiError::from_db)?;
            }
            None => {
                retention_setting::Entity::delete_many()
                    .filter(retention_setting::Column::TenantId.eq(tenant))
                    .filter(retention_setting::Column::Class.eq(class.name))
                    .exec(&txn)
                    .await
                    .map_err(ApiError::from_db)?;
            }
        }
        let after = days.unwrap_or(self.default_days(class));
        AuditEvent::success("retention.update", "tenant", tenant)
            .with_details(json!({
                "class": class.name,
                "before": { "days": before },
                "after": { "days": after, "default": days.is_none() },
            }))
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(Setting {
            class,
            days: after,
            set_by_tenant: days.is_some(),
            default_days: self.default_days(class),
        })
    }

    /// What the legal holds of `tenant` cover.
    async fn held(&self, tenant: Uuid) -> ApiResult<Held> {
        let mut holds = Vec::new();
        for source in self.holds.iter() {
            holds.extend(source.tenant_holds(tenant).await?);
        }
        Ok(Held::from_holds(&holds))
    }

    fn sweeper(&self, class: Class) -> Option<&Arc<dyn Sweeper>> {
        self.sweepers.iter().find(|s| s.class() == class)
    }

    /// A dry run: what a sweep of `tenant` at `now` would delete, class by class (legal
    /// holds respected). Nothing changes.
    pub async fn preview(&self, tenant: Uuid, now: DateTime<Utc>) -> ApiResult<Vec<Outcome>> {
        let held = self.held(tenant).await?;
        let mut outcomes = Vec::new();
        for setting in self.settings(tenant).await? {
            let Some(sweeper) = self.sweeper(setting.class) else {
                continue;
            };
            let cutoff = now - Duration::days(i64::from(setting.days));
            outcomes.push(Outcome {
                setting,
                cutoff,
                count: sweeper.due(Some(tenant), cutoff, &held).await?,
            });
        }
        Ok(outcomes)
    }

    /// Deletes what has outlived its period in `tenant` at `now`, class by class (legal
    /// holds respected), and audits the sweep in the tenant's log as `retention.sweep`
    /// with what went. A class that fails does not stop the others; the first failure is
    /// returned after the sweep is audited.
    pub async fn sweep(
        &self,
        tenant: Uuid,
        now: DateTime<Utc>,
        (actor, meta): (&Actor, &RequestMeta),
    ) -> ApiResult<Vec<Outcome>> {
        let held = self.held(tenant).await?;
        let settings = self.settings(tenant).await?;
        self.sweep_scope(Some(tenant), (settings, &held), now, (actor, meta))
            .await
    }

    /// Deletes the platform's own records (of no tenant: its jobs, its mail) that outlived
    /// the default periods, audited in the platform's log.
    pub async fn sweep_platform(
        &self,
        now: DateTime<Utc>,
        (actor, meta): (&Actor, &RequestMeta),
    ) -> ApiResult<Vec<Outcome>> {
        let settings = CLASSES
            .iter()
            .map(|class| Setting {
                class: *class,
                days: self.default_days(*class),
                set_by_tenant: false,
                default_days: self.default_days(*class),
            })
            .collect();
        self.sweep_scope(None, (settings, &Held::default()), now, (actor, meta))
            .await
    }

    async fn sweep_scope(
        &self,
        tenant: Option<Uuid>,
        (settings, held): (Vec<Setting>, &Held),
        now: DateTime<Utc>,
        (actor, meta): (&Actor, &RequestMeta),
    ) -> ApiResult<Vec<Outcome>> {
        let mut outcomes = Vec::new();
        let mut failed = None;
        for setting in settings {
            let Some(sweeper) = self.sweeper(setting.class) else {
                continue;
            };
            let cutoff = now - Duration::days(i64::from(setting.days));
            let mut count = 0;
            loop {
                match sweeper.sweep(tenant, cutoff, held, BATCH).await {
                    Ok(deleted) => {
                        count += deleted;
                        if deleted < BATCH {
                            break;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(
                            class = setting.class.name,
                            ?tenant,
                            ?err,
                            "a retention sweep failed"
                        );
                        failed.get_or_insert(err);
                        break;
                    }
                }
            }
            outcomes.push(Outcome {
                setting,
                cutoff,
                count,
            });
        }
        let details: serde_json::Map<String, Value> = outcomes
            .iter()
            .map(|o| {
                (
                    o.setting.class.name.to_owned(),
                    json!({ "days": o.setting.days, "cutoff": o.cutoff, "deleted": o.count }),
                )
            })
            .collect();
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let details = json!({ "classes": details, "complete": failed.is_none() });
        let event = match tenant {
            Some(tenant) => {
                AuditEvent::success("retention.sweep", "tenant", tenant).in_tenant(tenant)
            }
            None => AuditEvent::access("retention.sweep", "platform", None),
        };
        event
            .with_details(details)
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        match failed {
            Some(err) => Err(err),
            None => Ok(outcomes),
        }
    }

    /// Every tenant that is active (off-boarded tenants have nothing left to sweep).
    async fn tenants(&self) -> ApiResult<Vec<Uuid>> {
        use portal_entities::identity::tenant;
        tenant::Entity::find()
            .select_only()
            .column(tenant::Column::Id)
            .filter(tenant::Column::Status.eq("ACTIVE"))
            .order_by_asc(tenant::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)
    }
}

/// The sweep job's kind.
pub const SWEEP_KIND: &str = "retention.sweep";

/// Sweeps the payload's `tenantId`, or every active tenant (the daily schedule).
pub struct SweepJob {
    engine: Engine,
}

impl SweepJob {
    /// The handler over `engine`.
    pub fn new(engine: Engine) -> Arc<Self> {
        Arc::new(Self { engine })
    }
}

#[async_trait::async_trait]
impl JobHandler for SweepJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err| JobError::Retry(format!("{err:?}"));
        let meta = job.audit_meta();
        if let Some(tenant) = job.payload_id("tenantId")? {
            // One tenant (on demand, or a tenant the daily run could not finish): retried
            // on its own.
            let actor = job.principal.clone().unwrap_or_else(|| Actor {
                tenant_id: Some(tenant),
                ..Actor::anonymous()
            });
            return self
                .engine
                .sweep(tenant, Utc::now(), (&actor, &meta))
                .await
                .map(|_| ())
                .map_err(retry);
        }
        // The daily run: every active tenant, then the platform's own records. A tenant
        // that fails gets a run of its own in an hour; the others are not swept twice.
        let tenants = self.engine.tenants().await.map_err(retry)?;
        for tenant in tenants {
            let actor = Actor {
                tenant_id: Some(tenant),
                ..Actor::anonymous()
            };
            if let Err(err) = self.engine.sweep(tenant, Utc::now(), (&actor, &meta)).await {
                tracing::warn!(%tenant, ?err, "a tenant's retention sweep failed; retrying it alone");
                let mut again = crate::jobs::NewJob::new(SWEEP_KIND, json!({ "tenantId": tenant }))
                    .max_attempts(5);
                again.tenant_id = Some(tenant);
                again.run_at = Some(Utc::now() + Duration::hours(1));
                crate::jobs::enqueue(&self.engine.db, Utc::now(), again)
                    .await
                    .map_err(retry)?;
            }
        }
        self.engine
            .sweep_platform(Utc::now(), (&Actor::anonymous(), &meta))
            .await
            .map(|_| ())
            .map_err(retry)
    }
}

/// Makes sure the daily sweep of every tenant is scheduled (one schedule for the
/// deployment, at 03:17 UTC).
pub async fn schedule_daily(db: &impl ConnectionTrait) -> ApiResult<()> {
    schedule::upsert(
        db,
        Utc::now(),
        SWEEP_KIND,
        schedule::NewSchedule {
            name: SWEEP_KIND.to_owned(),
            kind: SWEEP_KIND.to_owned(),
            payload: json!({}),
            tenant_id: None,
            principal: None,
            cron: "17 3 * * *".to_owned(),
            time_zone: "UTC".to_owned(),
        },
    )
    .await
    .map(|_| ())
}

/// How many rows of `E` match `condition` (a sweeper's `due`).
pub async fn count<E: EntityTrait>(
    db: &impl ConnectionTrait,
    condition: Condition,
) -> ApiResult<u64>
where
    E::Model: Sync,
{
    E::find()
        .filter(condition)
        .count(db)
        .await
        .map_err(ApiError::from_db)
}

/// The ids (column `id`) of at most `limit` rows of `E` matching `condition`, oldest by
/// `order` first: what a sweeper's batch deletes.
pub async fn oldest<E: EntityTrait>(
    db: &impl ConnectionTrait,
    (id, order): (E::Column, E::Column),
    condition: Condition,
    limit: u64,
) -> ApiResult<Vec<Uuid>> {
    E::find()
        .select_only()
        .column(id)
        .filter(condition)
        .order_by_asc(order)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// The condition "of `tenant`" on a nullable tenant column (`None`: the platform's own).
fn of_tenant<C: ColumnTrait>(column: C, tenant: Option<Uuid>) -> Condition {
    match tenant {
        Some(tenant) => Condition::all().add(column.eq(tenant)),
        None => Condition::all().add(column.is_null()),
    }
}

/// Mail of the outbox: sent, or given up.
pub struct SentMail {
    db: DatabaseConnection,
}

impl SentMail {
    /// The sweeper over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { db })
    }

    /// Sent before `cutoff`, or given up (every attempt made) and queued before it.
    fn ended(tenant: Option<Uuid>, cutoff: DateTime<Utc>) -> Condition {
        let given_up = Condition::all()
            .add(email_outbox::Column::SentAt.is_null())
            .add(email_outbox::Column::Attempts.gte(crate::mail::MAX_ATTEMPTS))
            .add(email_outbox::Column::CreatedAt.lt(cutoff));
        of_tenant(email_outbox::Column::TenantId, tenant).add(
            Condition::any()
                .add(email_outbox::Column::SentAt.lt(cutoff))
                .add(given_up),
        )
    }
}

#[async_trait::async_trait]
impl Sweeper for SentMail {
    fn class(&self) -> Class {
        MAIL_OUTBOX
    }

    async fn due(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
    ) -> ApiResult<u64> {
        count::<email_outbox::Entity>(&self.db, Self::ended(tenant, cutoff)).await
    }

    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
        limit: u64,
    ) -> ApiResult<u64> {
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let ids = oldest::<email_outbox::Entity>(
            &txn,
            (email_outbox::Column::Id, email_outbox::Column::CreatedAt),
            Self::ended(tenant, cutoff),
            limit,
        )
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // Their dead delivery jobs go with them: a job deleted without its mail would let
        // the next start queue the mail again; mail deleted without its job leaves a job
        // that finds nothing to send.
        job::Entity::delete_many()
            .filter(job::Column::Kind.eq(crate::mail::DELIVER_KIND))
            .filter(job::Column::State.ne(crate::jobs::JobState::Running.as_str()))
            .filter(job::Column::IdempotencyKey.is_in(ids.iter().map(Uuid::to_string)))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        let deleted = email_outbox::Entity::delete_many()
            .filter(email_outbox::Column::Id.is_in(ids))
            .filter(Self::ended(tenant, cutoff))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(deleted)
    }
}

/// Jobs that finished.
pub struct JobHistory {
    db: DatabaseConnection,
}

impl JobHistory {
    /// The sweeper over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { db })
    }

    /// Finished before `cutoff`: succeeded, dead or cancelled — except a dead mail
    /// delivery, which goes with its mail (see [`SentMail`]).
    fn ended(tenant: Option<Uuid>, cutoff: DateTime<Utc>) -> Condition {
        use crate::jobs::JobState;
        let undelivered_mail = Condition::all()
            .add(job::Column::Kind.eq(crate::mail::DELIVER_KIND))
            .add(job::Column::State.eq(JobState::Dead.as_str()));
        of_tenant(job::Column::TenantId, tenant)
            .add(job::Column::State.is_in([
                JobState::Succeeded.as_str(),
                JobState::Dead.as_str(),
                JobState::Cancelled.as_str(),
            ]))
            .add(job::Column::FinishedAt.lt(cutoff))
            .add(undelivered_mail.not())
    }
}

#[async_trait::async_trait]
impl Sweeper for JobHistory {
    fn class(&self) -> Class {
        JOB_HISTORY
    }

    async fn due(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
    ) -> ApiResult<u64> {
        count::<job::Entity>(&self.db, Self::ended(tenant, cutoff)).await
    }

    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
        limit: u64,
    ) -> ApiResult<u64> {
        let ids = oldest::<job::Entity>(
            &self.db,
            (job::Column::Id, job::Column::FinishedAt),
            Self::ended(tenant, cutoff),
            limit,
        )
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // Only what is still finished: a job retried meanwhile is not history.
        Ok(job::Entity::delete_many()
            .filter(job::Column::Id.is_in(ids))
            .filter(Self::ended(tenant, cutoff))
            .exec(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected)
    }
}

/// Files the portal made (they have an expiry; attachments have none and go with their
/// messages).
pub struct MadeFiles {
    db: DatabaseConnection,
    store: crate::storage::FileStore,
}

impl MadeFiles {
    /// The sweeper over `db`, deleting objects from `store`.
    pub fn new(db: DatabaseConnection, store: crate::storage::FileStore) -> Arc<Self> {
        Arc::new(Self { db, store })
    }

    fn ended(tenant: Uuid, cutoff: DateTime<Utc>) -> Condition {
        use portal_entities::platform::file;
        Condition::all()
            .add(file::Column::TenantId.eq(tenant))
            .add(file::Column::ExpiresAt.is_not_null())
            .add(file::Column::CreatedAt.lt(cutoff))
    }
}

#[async_trait::async_trait]
impl Sweeper for MadeFiles {
    fn class(&self) -> Class {
        STORED_FILES
    }

    async fn due(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
    ) -> ApiResult<u64> {
        let Some(tenant) = tenant else { return Ok(0) };
        count::<portal_entities::platform::file::Entity>(&self.db, Self::ended(tenant, cutoff))
            .await
    }

    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
        limit: u64,
    ) -> ApiResult<u64> {
        use portal_entities::platform::file;
        let Some(tenant) = tenant else { return Ok(0) };
        let ids = oldest::<file::Entity>(
            &self.db,
            (file::Column::Id, file::Column::CreatedAt),
            Self::ended(tenant, cutoff),
            limit,
        )
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // Unreachable at once (no link works), then objects and rows deleted; what cannot
        // be removed now the scheduled purge finishes.
        let now = Utc::now();
        crate::storage::expire_now(&self.db, tenant, &ids, now).await?;
        crate::storage::purge(&self.db, &self.store, tenant, &ids, now).await?;
        Ok(ids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_lies_within_its_bounds() {
        for class in CLASSES.iter().filter(|c| c.rules.is_none()) {
            assert!(
                class.min_days >= 1
                    && class.min_days <= class.default_days
                    && class.default_days <= class.max_days,
                "{}",
                class.name
            );
        }
        assert_eq!(class("SESSIONS"), Some(SESSIONS));
        assert_eq!(class("sessions"), None);
    }

    #[test]
    fn holds_are_sorted_by_what_they_cover() {
        let id = Uuid::now_v7();
        let held = Held::from_holds(&[
            Hold {
                id: Uuid::now_v7(),
                target_type: "USER".into(),
                target_id: id,
            },
            Hold {
                id: Uuid::now_v7(),
                target_type: "THREAD".into(),
                target_id: id,
            },
        ]);
        assert_eq!(held.users, vec![id]);
        assert_eq!(held.threads, vec![id]);
        assert!(held.accounts.is_empty());
    }
}
