//! Reports persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.

use portal_kit::db::BeginWrite;
use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Select, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::platform::{audit_event, file};
use portal_entities::reports::{report_definition, report_run};
use portal_kit::audit::AuditEvent;
use portal_kit::jobs::schedule::{self, NewSchedule};
use portal_kit::jobs::{self, NewJob};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::storage::Stored;
use portal_kit::store::{one_or_not_found, ranked_rows_by_parent, rows_by_ids, rows_by_parent};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::{ReportFormat, ReportKind, ReportRunStatus};

pub mod delivery;
pub mod erasure;

/// Validated fields of a new report definition.
pub struct NewDefinition {
    /// Display name.
    pub name: String,
    /// What the report is about.
    pub kind: ReportKind,
    /// Output format.
    pub format: ReportFormat,
    /// Normalized cron schedule, if the report runs on a schedule.
    pub schedule: Option<String>,
    /// Parameters object.
    pub parameters: Value,
    /// The account the report is about (accounts' id), if any.
    pub account_id: Option<Uuid>,
    /// What a custom report reads (validated against the supergraph).
    pub query: Option<Value>,
    /// IANA time zone the schedule is read in.
    pub time_zone: String,
}

/// Validated changes to a report definition; `None` leaves a field as it is.
#[derive(Default)]
pub struct DefinitionChanges {
    /// New display name.
    pub name: Option<String>,
    /// New output format.
    pub format: Option<ReportFormat>,
    /// New schedule: `Some(None)` removes it.
    pub schedule: Option<Option<String>>,
    /// New parameters object.
    pub parameters: Option<Value>,
    /// New query (validated against the supergraph).
    pub query: Option<Value>,
    /// New time zone of the schedule.
    pub time_zone: Option<String>,
    /// Pauses (`true`) or resumes (`false`) the schedule.
    pub paused: Option<bool>,
}

/// When a tenant's monthly documents are made: the 1st of each month at 00:00.
pub const MONTHLY_SCHEDULE: &str = "0 0 1 * *";

/// Switches the tenant's monthly document of `kind` on (creating it, owned by the actor,
/// the first time) or off (pausing it); `None` when switched off and never on. Marked as
/// the tenant's by `parameters.automation`.
pub async fn switch_monthly(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    kind: ReportKind,
    enabled: bool,
    time_zone: Option<String>,
) -> ApiResult<Option<report_definition::Model>> {
    let tenant_id = actor.tenant()?;
    let existing = report_definition::Entity::find()
        .filter(report_definition::Column::TenantId.eq(tenant_id))
        .filter(report_definition::Column::Kind.eq(kind.as_str()))
        .order_by_asc(report_definition::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .find(|d| d.parameters["automation"] == Value::Bool(true));
    match (existing, enabled) {
        (Some(found), _) => {
            let changes = DefinitionChanges {
                paused: Some(!enabled),
                // Given explicitly, or the tenant's as it is now.
                time_zone,
                schedule: Some(Some(MONTHLY_SCHEDULE.to_owned())),
                ..Default::default()
            };
            update_definition(db, actor, meta, found.id, changes)
                .await
                .map(Some)
        }
        (None, false) => Ok(None),
        (None, true) => {
            let name = match kind {
                ReportKind::MonthlyStatements => "Monthly statements",
                _ => "Monthly usage summary",
            };
            let new = NewDefinition {
                name: name.to_owned(),
                kind,
                format: ReportFormat::Pdf,
                schedule: Some(MONTHLY_SCHEDULE.to_owned()),
                parameters: serde_json::json!({ "automation": true }),
                account_id: None,
                query: None,
                time_zone: time_zone.unwrap_or_else(|| "UTC".to_owned()),
            };
            create_definition(db, actor, meta, new).await.map(Some)
        }
    }
}

/// The job kind a report's schedule enqueues at each occurrence.
pub const SCHEDULE_JOB: &str = "reports.scheduled";

/// The name of a definition's job schedule.
pub fn schedule_name(definition: Uuid) -> String {
    format!("report:{definition}")
}

/// Keeps a definition's job schedule in step with it: there, on its cron expression and
/// time zone, while it has a schedule that is not paused; gone otherwise. The schedule's
/// jobs act for the owner (whose standing each run reads afresh).
async fn sync_schedule(
    txn: &impl ConnectionTrait,
    row: &report_definition::Model,
) -> ApiResult<()> {
    let name = schedule_name(row.id);
    match (&row.schedule, row.paused) {
        (Some(cron), false) => {
            let schedule = NewSchedule {
                name,
                kind: SCHEDULE_JOB.to_owned(),
                payload: json!({ "definitionId": row.id }),
                tenant_id: Some(row.tenant_id),
                principal: Some(Actor::user(row.owner_id, row.tenant_id, Vec::new())),
                cron: cron.clone(),
                time_zone: row.time_zone.clone(),
            };
            schedule::upsert(txn, Utc::now(), "input.schedule", schedule).await
        }
        _ => schedule::remove(txn, &name).await,
    }
}

/// Gives every scheduled, unpaused definition that lacks its job schedule one (definitions
/// saved before schedules ran, or inserted by the demo data); how many it adopted. Run by
/// workers when they start.
pub async fn adopt_schedules(db: &DatabaseConnection) -> ApiResult<usize> {
    use portal_entities::platform::job_schedule;
    let scheduled = report_definition::Entity::find()
        .filter(report_definition::Column::Schedule.is_not_null())
        .filter(report_definition::Column::Paused.eq(false))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    // The report schedules there are, in one query.
    let kept: std::collections::HashSet<String> = job_schedule::Entity::find()
        .filter(job_schedule::Column::Kind.eq(SCHEDULE_JOB))
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .map(|schedule| schedule.name)
        .collect();
    let mut adopted = 0;
    for definition in scheduled {
        if !kept.contains(&schedule_name(definition.id)) {
            sync_schedule(db, &definition).await?;
            adopted += 1;
        }
    }
    Ok(adopted)
}

/// One report definition of the tenant.
pub async fn definition(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<report_definition::Model> {
    let scoped = report_definition::Entity::find_by_id(id)
        .filter(report_definition::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "report definition").await
}

/// Report definitions of the tenant among `ids`, in one query.
pub async fn definitions_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, report_definition::Model>> {
    rows_by_ids(
        db,
        definitions_in(tenant_id),
        report_definition::Column::Id,
        ids,
    )
    .await
}

/// A page of the tenant's report definitions, only those `owner` owns when given.
pub async fn list_definitions(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    owner: Option<Uuid>,
    page: PageRequest,
) -> ApiResult<Page<report_definition::Model>> {
    let mut scoped = definitions_in(tenant_id);
    if let Some(owner) = owner {
        scoped = scoped.filter(report_definition::Column::OwnerId.eq(owner));
    }
    page.fetch(db, scoped, report_definition::Column::Id).await
}

/// The same page of report definitions for each of `account_ids`, in one query.
///
/// Reads every definition of those accounts after the cursor and cuts each account's
/// list to the page size in memory: accounts have few report definitions, and one query
/// beats one per account.
pub async fn pages_by_account(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<report_definition::Model>>> {
    let (account, id) = (
        report_definition::Column::AccountId,
        report_definition::Column::Id,
    );
    let scoped = definitions_in(tenant_id);
    let rows = rows_by_parent(db, scoped, account, account_ids, id, page).await?;
    Ok(page.pages(rows))
}

/// The tenant's report definitions.
fn definitions_in(tenant_id: Uuid) -> Select<report_definition::Entity> {
    report_definition::Entity::find().filter(report_definition::Column::TenantId.eq(tenant_id))
}

/// Creates a report definition in the actor's tenant, owned by the actor.
pub async fn create_definition(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewDefinition,
) -> ApiResult<report_definition::Model> {
    let tenant_id = actor.tenant()?;
    let owner_id = actor.principal()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = report_definition::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        account_id: Set(new.account_id),
        owner_id: Set(owner_id),
        name: Set(new.name),
        kind: Set(new.kind.as_str().to_owned()),
        format: Set(new.format.as_str().to_owned()),
        schedule: Set(new.schedule),
        parameters: Set(new.parameters),
        created_at: Set(now),
        updated_at: Set(now),
        query: Set(new.query),
        version: Set(1),
        time_zone: Set(new.time_zone),
        paused: Set(false),
        external_delivery_allowed_by: Set(None),
        external_delivery_allowed_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    sync_schedule(&txn, &created).await?;
    AuditEvent::success("report_definition.create", "report_definition", created.id)
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Applies `changes` to a report definition of the actor's tenant.
///
/// The audit event names the changed fields; parameter values are not copied into it.
pub async fn update_definition(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: DefinitionChanges,
) -> ApiResult<report_definition::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = definition(&txn, tenant_id, id).await?;
    let before = json!({
        "name": current.name,
        "format": current.format,
        "schedule": current.schedule,
        "timeZone": current.time_zone,
        "paused": current.paused,
    });
    let parameters_changed = changes.parameters.is_some();
    let query_changed = changes.query.is_some();
    // What a run produces changes with these: runs record the version they produced.
    let new_version = (parameters_changed || query_changed || changes.format.is_some())
        .then_some(current.version + 1);
    let mut active: report_definition::ActiveModel = current.into();
    if let Some(version) = new_version {
        active.version = Set(version);
    }
    if let Some(query) = changes.query {
        active.query = Set(Some(query));
    }
    if let Some(time_zone) = changes.time_zone {
        active.time_zone = Set(time_zone);
    }
    if let Some(paused) = changes.paused {
        active.paused = Set(paused);
    }
    if let Some(name) = changes.name {
        active.name = Set(name);
    }
    if let Some(format) = changes.format {
        active.format = Set(format.as_str().to_owned());
    }
    if let Some(schedule) = changes.schedule {
        active.schedule = Set(schedule);
    }
    if let Some(parameters) = changes.parameters {
        active.parameters = Set(parameters);
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    sync_schedule(&txn, &updated).await?;
    let after = json!({
        "name": updated.name,
        "format": updated.format,
        "schedule": updated.schedule,
        "timeZone": updated.time_zone,
        "paused": updated.paused,
    });
    AuditEvent::success("report_definition.update", "report_definition", id)
        .with_details(json!({
            "before": before,
            "after": after,
            "parametersChanged": parameters_changed,
            "queryChanged": query_changed,
            "version": updated.version,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Report runs of the tenant among `ids`, in one query.
pub async fn runs_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, report_run::Model>> {
    rows_by_ids(db, runs_in(tenant_id), report_run::Column::Id, ids).await
}

/// The same page of runs for each of `definition_ids`, oldest first, in one query.
///
/// A definition on a schedule gathers runs without bound, so unlike [`pages_by_account`]
/// this does not read every run after the cursor: the database keeps at most `first + 1`
/// runs per definition (see [`ranked_rows_by_parent`]). Every id in `definition_ids` gets
/// a page, empty when it has no runs.
pub async fn pages_by_definition(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    definition_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<report_run::Model>>> {
    let (definition, id) = (report_run::Column::DefinitionId, report_run::Column::Id);
    let scoped = runs_in(tenant_id);
    let rows = ranked_rows_by_parent(db, scoped, definition, definition_ids, id, page).await?;
    Ok(page.pages(rows))
}

/// The tenant's report runs.
fn runs_in(tenant_id: Uuid) -> Select<report_run::Entity> {
    report_run::Entity::find().filter(report_run::Column::TenantId.eq(tenant_id))
}

/// The job kind that produces report runs.
pub const RUN_JOB: &str = "reports.run";

/// Attempts a run gets (a gateway that could not be reached is tried again).
pub const RUN_ATTEMPTS: i32 = 3;

/// Why a run happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Someone asked for it.
    Manual,
    /// Its schedule came due.
    Scheduled,
}

impl Cause {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "MANUAL",
            Self::Scheduled => "SCHEDULED",
        }
    }
}

/// Queues a run of a report definition of the actor's tenant, requested by the actor, and
/// the job that produces it, in one transaction.
pub async fn request_run(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    definition_id: Uuid,
    cause: Cause,
) -> ApiResult<report_run::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = definition(&txn, tenant_id, definition_id).await?;
    let now = Utc::now();
    let created = report_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        definition_id: Set(definition_id),
        // A scheduled run was asked for by nobody (its job acts for the owner).
        requested_by: Set(match cause {
            Cause::Manual => actor.id,
            Cause::Scheduled => None,
        }),
        status: Set(ReportRunStatus::Queued.as_str().to_owned()),
        row_count: Set(None),
        error: Set(None),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        cause: Set(cause.as_str().to_owned()),
        definition_version: Set(Some(found.version)),
        format: Set(Some(found.format.clone())),
        run_as: Set(Some(found.owner_id)),
        file_id: Set(None),
        bytes: Set(None),
        error_detail: Set(None),
        manifest: Set(None),
        recipient_id: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let job = NewJob::new(RUN_JOB, json!({ "runId": created.id }))
        .acting_for(actor)
        .max_attempts(RUN_ATTEMPTS);
    jobs::enqueue(&txn, now, job).await?;
    AuditEvent::success("report_run.request", "report_run", created.id)
        .with_details(json!({ "definitionId": definition_id, "cause": cause.as_str() }))
        .record(&txn, actor, meta)
        .await?;
    if cause == Cause::Scheduled {
        delivery::request_delivery_runs(&txn, actor, meta, &found).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// One report run of the tenant.
pub async fn run_in(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<report_run::Model> {
    one_or_not_found(
        db,
        runs_in(tenant_id).filter(report_run::Column::Id.eq(id)),
        "report run",
    )
    .await
}

/// Marks a waiting run `RUNNING` as of now, reading as `actor` (the definition's owner)
/// the definition `version` in `format`, audited as `report_run.start` (its event tells
/// subscribers); `false` when it is no longer waiting (finished by an earlier attempt).
pub async fn start_run(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    run: &report_run::Model,
    (version, format): (i32, &str),
) -> ApiResult<bool> {
    let run_as = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let updated = report_run::Entity::update_many()
        .col_expr(report_run::Column::Status, Expr::value("RUNNING"))
        .col_expr(report_run::Column::StartedAt, Expr::value(Utc::now()))
        .col_expr(report_run::Column::RunAs, Expr::value(run_as))
        .col_expr(report_run::Column::DefinitionVersion, Expr::value(version))
        .col_expr(report_run::Column::Format, Expr::value(format))
        .filter(report_run::Column::Id.eq(run.id))
        .filter(report_run::Column::Status.is_in(["QUEUED", "RUNNING"]))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if updated.rows_affected != 1 {
        return Ok(false);
    }
    AuditEvent::success("report_run.start", "report_run", run.id)
        .with_details(json!({ "definitionId": run.definition_id, "version": version }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(true)
}

/// A produced run's file, as it will be recorded.
pub struct RunFile {
    /// Its id (the object key's last part).
    pub id: Uuid,
    /// Download name.
    pub name: String,
    /// Media type.
    pub content_type: String,
    /// Where it is stored, its size and SHA-256.
    pub stored: Stored,
    /// Data rows in it.
    pub rows: i64,
    /// When it is deleted.
    pub expires_at: chrono::DateTime<Utc>,
    /// Its signed integrity manifest (JSON text).
    pub manifest: String,
    /// What a download re-checks as the downloader besides the run (see
    /// `Compiled::access_selection`).
    pub access_selection: Option<String>,
}

/// Where a completed run's file goes besides its run: the deliveries to record with it
/// and the key that seals their emails.
pub struct Deliver<'a> {
    /// The deliveries.
    pub planned: Vec<delivery::Planned>,
    /// Seals the emails in the outbox.
    pub mail_key: &'a portal_kit::secret::DataKey,
}

/// Records a run's file and marks the run `SUCCEEDED` (only if it is still `RUNNING`:
/// `false` otherwise), audited as `report_run.complete` for `actor`.
pub async fn complete_run(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    run: &report_run::Model,
    produced: RunFile,
    deliver: Deliver<'_>,
) -> ApiResult<bool> {
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let claimed = report_run::Entity::update_many()
        .col_expr(report_run::Column::Status, Expr::value("SUCCEEDED"))
        .col_expr(report_run::Column::RowCount, Expr::value(produced.rows))
        .col_expr(report_run::Column::Bytes, Expr::value(produced.stored.size))
        .col_expr(report_run::Column::FileId, Expr::value(produced.id))
        .col_expr(report_run::Column::Manifest, Expr::value(produced.manifest))
        .col_expr(report_run::Column::FinishedAt, Expr::value(now))
        .filter(report_run::Column::Id.eq(run.id))
        .filter(report_run::Column::Status.eq("RUNNING"))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if claimed.rows_affected != 1 {
        return Ok(false);
    }
    file::ActiveModel {
        id: Set(produced.id),
        tenant_id: Set(run.tenant_id),
        domain: Set("reports".to_owned()),
        owner_type: Set(FILE_OWNER.to_owned()),
        owner_id: Set(run.id),
        name: Set(produced.name),
        content_type: Set(produced.content_type),
        size_bytes: Set(produced.stored.size),
        sha256: Set(produced.stored.sha256.clone()),
        row_count: Set(Some(produced.rows)),
        storage_key: Set(produced.stored.key.clone()),
        access_selection: Set(produced.access_selection.clone()),
        created_by: Set(run.requested_by),
        created_at: Set(now),
        expires_at: Set(Some(produced.expires_at)),
        key_version: Set(None),
        name_sealed: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("report_run.complete", "report_run", run.id)
        .with_details(json!({
            "definitionId": run.definition_id,
            "fileId": produced.id,
            "rows": produced.rows,
            "bytes": produced.stored.size,
            "sha256": produced.stored.sha256,
        }))
        .record(&txn, actor, meta)
        .await?;
    delivery::record_deliveries(
        &txn,
        (actor, meta),
        deliver.mail_key,
        (run, produced.id),
        deliver.planned,
    )
    .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(true)
}

/// Marks a waiting or running run `FAILED` with `shown` (for everyone who may see it) and
/// `detail` (for admins), audited as `report_run.fail` — unless it already finished.
pub async fn fail_run(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    run: &report_run::Model,
    shown: &str,
    detail: &str,
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let failed = report_run::Entity::update_many()
        .col_expr(report_run::Column::Status, Expr::value("FAILED"))
        .col_expr(report_run::Column::Error, Expr::value(shown))
        .col_expr(report_run::Column::ErrorDetail, Expr::value(detail))
        .col_expr(report_run::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(report_run::Column::Id.eq(run.id))
        .filter(report_run::Column::Status.is_in(["QUEUED", "RUNNING"]))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if failed.rows_affected != 1 {
        return Ok(());
    }
    AuditEvent::success("report_run.fail", "report_run", run.id)
        .with_details(json!({ "definitionId": run.definition_id, "reason": shown }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// The audit actions a definition's access log shows.
pub const ACCESS_ACTIONS: [&str; 4] = [
    "report.preview",
    "report_run.request",
    "report_run.view",
    "file.download",
];

/// Whether `who` viewed the run `run` of the tenant (`report_run.view`) since `since` (a
/// range of the tenant's audit index by time).
pub async fn viewed_since(
    db: &DatabaseConnection,
    (tenant_id, who, run): (Uuid, Uuid, Uuid),
    since: chrono::DateTime<Utc>,
) -> ApiResult<bool> {
    use sea_orm::PaginatorTrait;
    let seen = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant_id))
        .filter(audit_event::Column::CreatedAt.gte(since))
        .filter(audit_event::Column::Action.eq("report_run.view"))
        .filter(audit_event::Column::TargetId.eq(run))
        .filter(audit_event::Column::ActorId.eq(who))
        .count(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(seen > 0)
}

/// A page of the access log of `definition_id`, oldest first: its previews, its runs
/// requested and viewed, its runs' files downloaded — read from the audit trail, where
/// each was recorded when it happened.
pub async fn access_log(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    definition_id: Uuid,
    page: PageRequest,
) -> ApiResult<Page<audit_event::Model>> {
    use audit_event::Column as A;
    use sea_orm::Condition;
    use sea_orm::sea_query::Query as Sql;
    let runs_of = |column: report_run::Column| {
        Sql::select()
            .column(column)
            .from(report_run::Entity)
            .and_where(report_run::Column::TenantId.eq(tenant_id))
            .and_where(report_run::Column::DefinitionId.eq(definition_id))
            .and_where(column.is_not_null())
            .to_owned()
    };
    let about = Condition::any()
        .add(
            Condition::all()
                .add(A::TargetType.eq("report_definition"))
                .add(A::TargetId.eq(definition_id)),
        )
        .add(
            Condition::all()
                .add(A::TargetType.eq("report_run"))
                .add(A::TargetId.in_subquery(runs_of(report_run::Column::Id))),
        )
        .add(
            Condition::all()
                .add(A::TargetType.eq("file"))
                .add(A::TargetId.in_subquery(runs_of(report_run::Column::FileId))),
        );
    let scoped = audit_event::Entity::find()
        .filter(A::TenantId.eq(tenant_id))
        .filter(A::Action.is_in(ACCESS_ACTIONS))
        .filter(about);
    page.fetch(db, scoped, A::Id).await
}

/// The owner type of report files: downloads are re-checked through `Query.reportRun`.
pub const FILE_OWNER: &str = "ReportRun";

/// The file of a run, unless it has expired at `now`.
pub async fn file_of(
    db: &impl ConnectionTrait,
    run: &report_run::Model,
    now: chrono::DateTime<Utc>,
) -> ApiResult<Option<file::Model>> {
    match run.file_id {
        Some(id) => portal_kit::storage::find(db, run.tenant_id, id, now).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use portal_kit::pagination::encode_cursor;
    use sea_orm::{Database, DbBackend, Schema};

    use super::*;

    async fn runs_table() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        let table = Schema::new(DbBackend::Sqlite).create_table_from_entity(report_run::Entity);
        db.execute(&table).await.expect("create table");
        db
    }

    async fn add_run(db: &DatabaseConnection, tenant_id: Uuid, definition_id: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        report_run::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id),
            definition_id: Set(definition_id),
            requested_by: Set(None),
            status: Set(ReportRunStatus::Queued.as_str().to_owned()),
            row_count: Set(None),
            error: Set(None),
            created_at: Set(Utc::now()),
            started_at: Set(None),
            finished_at: Set(None),
            cause: Set("MANUAL".into()),
            definition_version: Set(None),
            format: Set(None),
            run_as: Set(None),
            file_id: Set(None),
            bytes: Set(None),
            error_detail: Set(None),
            manifest: Set(None),
            recipient_id: Set(None),
        }
        .insert(db)
        .await
        .expect("insert run");
        id
    }

    fn ids(page: &Page<report_run::Model>) -> Vec<Uuid> {
        page.items.iter().map(|row| row.id).collect()
    }

    #[tokio::test]
    async fn pages_by_definition_cuts_each_definition_to_its_own_page() {
        let db = runs_table().await;
        let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let (busy, quiet, idle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut busy_runs = Vec::new();
        for _ in 0..5 {
            busy_runs.push(add_run(&db, tenant, busy).await);
        }
        let quiet_run = add_run(&db, tenant, quiet).await;
        add_run(&db, other_tenant, idle).await;

        let first_two = PageRequest::parse(Some(2), None).expect("page");
        let pages = pages_by_definition(&db, tenant, &[busy, quiet, idle], first_two)
            .await
            .expect("pages");
        assert_eq!(pages.len(), 3);
        assert_eq!(ids(&pages[&busy]), busy_runs[..2]);
        assert!(pages[&busy].has_next_page);
        assert_eq!(ids(&pages[&quiet]), [quiet_run]);
        assert!(!pages[&quiet].has_next_page);
        // Another tenant's runs are invisible.
        assert!(pages[&idle].items.is_empty());

        let cursor = encode_cursor(busy_runs[2]);
        let rest = PageRequest::parse(Some(2), Some(&cursor)).expect("page");
        let pages = pages_by_definition(&db, tenant, &[busy], rest)
            .await
            .expect("pages");
        assert_eq!(ids(&pages[&busy]), busy_runs[3..]);
        assert!(!pages[&busy].has_next_page);
    }
}
