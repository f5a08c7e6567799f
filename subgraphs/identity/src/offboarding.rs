//! Tenant off-boarding: a platform administrator off-boards another tenant. At once the
//! tenant is frozen (status `OFFBOARDING`: no sign-in, no API key, every session revoked);
//! a job (`tenant.offboard`, in the portal's `offboarding` module) exports everything —
//! every user's archive and the tenant's own data — and, once the grace period has passed,
//! deletes the tenant's data in every subgraph, shreds its keys, signs a final checkpoint of
//! its audit log and hands over the archive and the evidence pack as files of the
//! operator's tenant. Until deletion begins, the off-boarding can be cancelled.
//!
//! This module keeps the record (`tenant_offboardings`) and identity's own part of the
//! deletion.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::identity::{session, tenant, tenant_offboarding};
use portal_entities::platform::{casbin_rule, file};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::jobs::{self, NewJob};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::privacy::TenantErasure;
use portal_kit::privacy::tenant::{self as tenant_tables, TenantTable};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

/// The job that exports, then deletes, an off-boarded tenant.
pub const JOB_KIND: &str = "tenant.offboard";

/// The owner type of handed-over files (`tenantOffboarding(id)` answers for them).
pub const FILE_OWNER: &str = "TenantOffboarding";

/// Attempts of one run of the job before it is retried by a fresh run.
pub const JOB_ATTEMPTS: i32 = 8;

/// The longest grace period between the export and the deletion.
pub const MAX_GRACE_DAYS: i32 = 90;

/// The grace period when none is given.
pub const DEFAULT_GRACE_DAYS: i32 = 30;

/// How long after the freeze the deletion waits at least (gateways keep refusing the
/// tokens of revoked sessions from the rows revoked in the last two hours).
pub const REVOCATION_WINDOW: Duration = Duration::hours(2);

/// The tenant status while it is being off-boarded (nobody signs in).
pub const TENANT_OFFBOARDING: &str = "OFFBOARDING";

/// The status of an off-boarded tenant's remaining row.
pub const TENANT_DELETED: &str = "DELETED";

/// Where an off-boarding is.
pub mod status {
    /// The archive is being built.
    pub const EXPORTING: &str = "EXPORTING";
    /// The archive is ready; deletion waits for `delete_after`.
    pub const AWAITING_DELETION: &str = "AWAITING_DELETION";
    /// The tenant's data is being deleted (no way back).
    pub const DELETING: &str = "DELETING";
    /// Deleted; the final checkpoint is signed and the evidence pack ready.
    pub const COMPLETED: &str = "COMPLETED";
    /// A legal hold in the tenant keeps its data; the tenant is active again.
    pub const BLOCKED: &str = "BLOCKED";
    /// Cancelled before deletion; the tenant is active again.
    pub const CANCELLED: &str = "CANCELLED";
    /// The export could not be made; the tenant is active again.
    pub const FAILED: &str = "FAILED";

    /// Statuses of an off-boarding still under way.
    pub const OPEN: [&str; 3] = [EXPORTING, AWAITING_DELETION, DELETING];
}

/// What `offboardTenant` asks for.
#[derive(Clone, Debug)]
pub struct Request {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its slug, typed again by the operator.
    pub confirm_slug: String,
    /// Days between the export and the deletion.
    pub grace_days: Option<i32>,
}

/// Off-boards `request.tenant_id` for `actor` (a platform administrator of another
/// tenant: the policies decide who calls it): freezes the tenant, revokes its sessions,
/// records the off-boarding and enqueues its job, in one transaction.
pub async fn request(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    request: Request,
) -> ApiResult<tenant_offboarding::Model> {
    let operator_tenant = actor.tenant()?;
    let operator = actor.principal()?;
    if request.tenant_id == operator_tenant {
        return Err(ApiError::invalid(
            "input.tenantId",
            "a tenant cannot be off-boarded from within itself",
        ));
    }
    let grace = request.grace_days.unwrap_or(DEFAULT_GRACE_DAYS);
    if !(0..=MAX_GRACE_DAYS).contains(&grace) {
        return Err(ApiError::invalid(
            "input.deleteAfterDays",
            format!("between 0 and {MAX_GRACE_DAYS}"),
        ));
    }
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = tenant::Entity::find_by_id(request.tenant_id)
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?
        .filter(|t| t.status != TENANT_DELETED)
        .ok_or(ApiError::NotFound("tenant"))?;
    if found.slug != request.confirm_slug.trim() {
        return Err(ApiError::invalid(
            "input.confirmSlug",
            "does not match the tenant's slug",
        ));
    }
    // Its handed-over files and jobs live in the operator's tenant: an operator tenant of
    // an off-boarding under way stays until that one ends.
    let operating = tenant_offboarding::Entity::find()
        .filter(tenant_offboarding::Column::OperatorTenantId.eq(found.id))
        .filter(tenant_offboarding::Column::Status.is_in(status::OPEN))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if operating > 0 {
        return Err(ApiError::Conflict(
            "this tenant is off-boarding another tenant; wait until that ends".into(),
        ));
    }
    // Frozen first, and only from ACTIVE: of two requests at once, the second finds the
    // tenant frozen (the row lock orders them) and is refused.
    if !freeze_tenant(&txn, found.id, now).await? {
        return Err(ApiError::Conflict(
            "this tenant is being off-boarded already".into(),
        ));
    }
    let row = tenant_offboarding::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(found.id),
        tenant_slug: Set(found.slug.clone()),
        tenant_name: Set(found.name.clone()),
        operator_tenant_id: Set(operator_tenant),
        requested_by: Set(operator),
        status: Set(status::EXPORTING.to_owned()),
        // Never sooner than the revocation window: every gateway has seen the sessions
        // revoked, and every access token issued before the freeze has expired, before the
        // sessions are deleted.
        delete_after: Set((now + Duration::days(i64::from(grace))).max(now + REVOCATION_WINDOW)),
        archive_file_id: Set(None),
        evidence_file_id: Set(None),
        final_sequence: Set(None),
        final_head_hash: Set(None),
        final_checkpoint_id: Set(None),
        result: Set(None),
        failure: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        exported_at: Set(None),
        completed_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let revoked = revoke_sessions(&txn, found.id).await?;
    jobs::enqueue(&txn, now, job(actor, row.id, None)).await?;
    let details = json!({
        "tenantId": found.id,
        "tenantSlug": found.slug,
        "deleteAfter": row.delete_after,
        "sessionsRevoked": revoked,
    });
    AuditEvent::success("tenant.offboard_request", "tenant_offboarding", row.id)
        .with_details(details.clone())
        .record(&txn, actor, meta)
        .await?;
    // The tenant's own log says so too: its chain ends with what happened to it.
    AuditEvent::access("tenant.offboard_start", "tenant", Some(found.id))
        .in_tenant(found.id)
        .with_details(json!({ "offboardingId": row.id, "deleteAfter": row.delete_after }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(row)
}

/// Freezes `tenant` if it is active: status `OFFBOARDING` (sign-in, refresh and API keys
/// refuse it); whether it was active.
async fn freeze_tenant(
    txn: &DatabaseTransaction,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    Ok(tenant::Entity::update_many()
        .col_expr(tenant::Column::Status, Expr::value(TENANT_OFFBOARDING))
        .col_expr(tenant::Column::UpdatedAt, Expr::value(now))
        .filter(tenant::Column::Id.eq(tenant))
        .filter(tenant::Column::Status.eq("ACTIVE"))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected
        == 1)
}

/// Revokes every live session of `tenant`; how many.
async fn revoke_sessions(txn: &DatabaseTransaction, tenant: Uuid) -> ApiResult<u64> {
    let live: Vec<Uuid> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::TenantId.eq(tenant))
        .filter(session::Column::RevokedAt.is_null())
        .into_tuple()
        .all(txn)
        .await
        .map_err(ApiError::from_db)?;
    for chunk in live.chunks(500) {
        crate::sessions::revoke_in(txn, chunk, crate::sessions::RevokeReason::Revoked).await?;
    }
    Ok(live.len() as u64)
}

/// The job that carries off-boarding `id` on, for `actor`, not before `at`. It belongs to
/// no tenant: nobody but the platform lists, retries or cancels it.
pub fn job(actor: &Actor, id: Uuid, at: Option<DateTime<Utc>>) -> NewJob {
    let mut job = NewJob::new(JOB_KIND, json!({ "offboardingId": id }))
        .acting_for(actor)
        .max_attempts(JOB_ATTEMPTS);
    job.tenant_id = None;
    job.run_at = at;
    job
}

/// Makes a frozen tenant active again (the off-boarding was cancelled, blocked or failed).
async fn thaw(txn: &DatabaseTransaction, tenant: Uuid, now: DateTime<Utc>) -> ApiResult<()> {
    tenant::Entity::update_many()
        .col_expr(tenant::Column::Status, Expr::value("ACTIVE"))
        .col_expr(tenant::Column::UpdatedAt, Expr::value(now))
        .filter(tenant::Column::Id.eq(tenant))
        .filter(tenant::Column::Status.eq(TENANT_OFFBOARDING))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// One off-boarding.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<tenant_offboarding::Model> {
    tenant_offboarding::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("tenant offboarding"))
}

/// Every off-boarding, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    request: PageRequest,
) -> ApiResult<Page<tenant_offboarding::Model>> {
    request
        .fetch(
            db,
            tenant_offboarding::Entity::find(),
            tenant_offboarding::Column::Id,
        )
        .await
}

/// A handed-over file of `row` (`id`: its archive or evidence pack), while it is kept.
pub async fn file_of(
    db: &impl ConnectionTrait,
    row: &tenant_offboarding::Model,
    id: Option<Uuid>,
) -> ApiResult<Option<file::Model>> {
    let Some(id) = id else { return Ok(None) };
    portal_kit::storage::find(db, row.operator_tenant_id, id, Utc::now()).await
}

/// Cancels an off-boarding whose deletion has not begun: the tenant is active again (its
/// users sign in anew) and the archive made so far is discarded.
pub async fn cancel(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    id: Uuid,
) -> ApiResult<tenant_offboarding::Model> {
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let row = find(&txn, id).await?;
    let cancelled = tenant_offboarding::Entity::update_many()
        .col_expr(
            tenant_offboarding::Column::Status,
            Expr::value(status::CANCELLED),
        )
        .col_expr(tenant_offboarding::Column::UpdatedAt, Expr::value(now))
        .col_expr(tenant_offboarding::Column::CompletedAt, Expr::value(now))
        .filter(tenant_offboarding::Column::Id.eq(id))
        .filter(
            tenant_offboarding::Column::Status
                .is_in([status::EXPORTING, status::AWAITING_DELETION]),
        )
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if cancelled.rows_affected != 1 {
        return Err(ApiError::Conflict(format!(
            "an off-boarding that is {} cannot be cancelled",
            row.status
        )));
    }
    thaw(&txn, row.tenant_id, now).await?;
    let files: Vec<Uuid> = [row.archive_file_id, row.evidence_file_id]
        .into_iter()
        .flatten()
        .collect();
    portal_kit::storage::expire_now(&txn, row.operator_tenant_id, &files, now).await?;
    AuditEvent::success("tenant.offboard_cancel", "tenant_offboarding", id)
        .with_details(json!({ "tenantId": row.tenant_id }))
        .record(&txn, actor, meta)
        .await?;
    AuditEvent::access("tenant.offboard_cancel", "tenant", Some(row.tenant_id))
        .in_tenant(row.tenant_id)
        .with_details(json!({ "offboardingId": id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    find(db, id).await
}

/// Records the archive of an exporting off-boarding (a file of the operator's tenant,
/// written in `txn` by the caller) and moves it to `AWAITING_DELETION`; whether it did
/// (not when it was cancelled meanwhile).
pub async fn exported(
    txn: &DatabaseTransaction,
    row: &tenant_offboarding::Model,
    archive_file_id: Uuid,
    summary: Value,
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<bool> {
    let now = Utc::now();
    let moved = tenant_offboarding::Entity::update_many()
        .col_expr(
            tenant_offboarding::Column::Status,
            Expr::value(status::AWAITING_DELETION),
        )
        .col_expr(
            tenant_offboarding::Column::ArchiveFileId,
            Expr::value(archive_file_id),
        )
        .col_expr(tenant_offboarding::Column::Result, Expr::value(summary))
        .col_expr(tenant_offboarding::Column::ExportedAt, Expr::value(now))
        .col_expr(tenant_offboarding::Column::UpdatedAt, Expr::value(now))
        .filter(tenant_offboarding::Column::Id.eq(row.id))
        .filter(tenant_offboarding::Column::Status.eq(status::EXPORTING))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    if moved.rows_affected != 1 {
        return Ok(false);
    }
    AuditEvent::success("tenant.offboard_export", "tenant_offboarding", row.id)
        .with_details(json!({ "tenantId": row.tenant_id, "fileId": archive_file_id }))
        .record(txn, actor, meta)
        .await?;
    Ok(true)
}

/// Ends an off-boarding that has not begun deleting as `BLOCKED` (legal holds, named in
/// `result`) or `FAILED` (`failure`), and makes the tenant active again.
pub async fn stop(
    db: &DatabaseConnection,
    row: &tenant_offboarding::Model,
    (outcome, result, failure): (&'static str, Option<Value>, Option<&str>),
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<()> {
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let mut update = tenant_offboarding::Entity::update_many()
        .col_expr(tenant_offboarding::Column::Status, Expr::value(outcome))
        .col_expr(tenant_offboarding::Column::UpdatedAt, Expr::value(now))
        .col_expr(tenant_offboarding::Column::CompletedAt, Expr::value(now))
        .col_expr(
            tenant_offboarding::Column::Failure,
            Expr::value(failure.map(str::to_owned)),
        );
    if let Some(result) = &result {
        update = update.col_expr(
            tenant_offboarding::Column::Result,
            Expr::value(result.clone()),
        );
    }
    let stopped = update
        .filter(tenant_offboarding::Column::Id.eq(row.id))
        .filter(
            tenant_offboarding::Column::Status
                .is_in([status::EXPORTING, status::AWAITING_DELETION]),
        )
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if stopped.rows_affected != 1 {
        return Ok(());
    }
    thaw(&txn, row.tenant_id, now).await?;
    let files: Vec<Uuid> = row.archive_file_id.into_iter().collect();
    portal_kit::storage::expire_now(&txn, row.operator_tenant_id, &files, now).await?;
    let action = if outcome == status::BLOCKED {
        "tenant.offboard_block"
    } else {
        "tenant.offboard_fail"
    };
    AuditEvent::failure(action, "tenant_offboarding", Some(row.id))
        .with_details(json!({
            "tenantId": row.tenant_id,
            "holds": result.as_ref().and_then(|r| r.get("holds")).cloned(),
            "reason": failure,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// Moves an off-boarding whose grace period has passed at `now` to `DELETING` (no way back
/// from here); whether it is deleting now (it was, or it moved).
pub async fn begin_deletion(
    db: &DatabaseConnection,
    row: &tenant_offboarding::Model,
    now: DateTime<Utc>,
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<bool> {
    if row.status == status::DELETING {
        return Ok(true);
    }
    if row.status != status::AWAITING_DELETION || row.delete_after > now {
        return Ok(false);
    }
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let moved = tenant_offboarding::Entity::update_many()
        .col_expr(
            tenant_offboarding::Column::Status,
            Expr::value(status::DELETING),
        )
        .col_expr(tenant_offboarding::Column::UpdatedAt, Expr::value(now))
        .filter(tenant_offboarding::Column::Id.eq(row.id))
        .filter(tenant_offboarding::Column::Status.eq(status::AWAITING_DELETION))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if moved.rows_affected != 1 {
        return Ok(false);
    }
    AuditEvent::success("tenant.offboard_delete", "tenant_offboarding", row.id)
        .with_details(json!({ "tenantId": row.tenant_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(true)
}

/// What the end of a deletion records.
#[derive(Clone, Debug)]
pub struct Completion {
    /// The evidence pack (a file of the operator's tenant, inserted in the same
    /// transaction by the caller).
    pub evidence_file_id: Uuid,
    /// The final checkpoint: its id, sequence and head hash.
    pub checkpoint: (Uuid, i64, String),
    /// What was deleted, domain by domain, and what the archive held.
    pub result: Value,
}

/// Completes a deleting off-boarding, in the caller's transaction; whether it did.
pub async fn complete(
    txn: &DatabaseTransaction,
    row: &tenant_offboarding::Model,
    done: Completion,
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<bool> {
    let now = Utc::now();
    let (checkpoint, sequence, head) = done.checkpoint;
    let moved = tenant_offboarding::Entity::update_many()
        .col_expr(
            tenant_offboarding::Column::Status,
            Expr::value(status::COMPLETED),
        )
        .col_expr(
            tenant_offboarding::Column::EvidenceFileId,
            Expr::value(done.evidence_file_id),
        )
        .col_expr(
            tenant_offboarding::Column::FinalCheckpointId,
            Expr::value(checkpoint),
        )
        .col_expr(
            tenant_offboarding::Column::FinalSequence,
            Expr::value(sequence),
        )
        .col_expr(
            tenant_offboarding::Column::FinalHeadHash,
            Expr::value(head.clone()),
        )
        .col_expr(tenant_offboarding::Column::Result, Expr::value(done.result))
        .col_expr(tenant_offboarding::Column::UpdatedAt, Expr::value(now))
        .col_expr(tenant_offboarding::Column::CompletedAt, Expr::value(now))
        .filter(tenant_offboarding::Column::Id.eq(row.id))
        .filter(tenant_offboarding::Column::Status.eq(status::DELETING))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    if moved.rows_affected != 1 {
        return Ok(false);
    }
    AuditEvent::success("tenant.offboard_complete", "tenant_offboarding", row.id)
        .with_details(json!({
            "tenantId": row.tenant_id,
            "finalSequence": sequence,
            "finalHeadHash": head,
            "evidenceFileId": done.evidence_file_id,
        }))
        .record(txn, actor, meta)
        .await?;
    Ok(true)
}

/// Identity's part of deleting `tenant`: in one transaction, audited in the tenant's log
/// as `identity.tenant_erase` — refresh tokens of its sessions, its policy rules (and the
/// policy revision bumped so every gateway reloads), every row of `tables`, and the
/// tenant's row anonymized into a `DELETED` tombstone (its id stays: the audit log and
/// the off-boarding record name it; its slug is free again).
pub async fn erase_tenant(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    tables: &[Box<dyn TenantTable>],
    by: &TenantErasure,
) -> ApiResult<portal_kit::privacy::DomainErasure> {
    use portal_entities::identity::{auth_throttle, refresh_token};
    use sea_orm::sea_query::Query;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let mut deleted = Vec::new();
    // Sign-in and reset throttles are keyed by slug and address, not by tenant: found by
    // the slug while the tenant still has it.
    if let Some(found) = tenant::Entity::find_by_id(tenant_id)
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?
        .filter(|t| t.status != TENANT_DELETED)
    {
        let throttles = auth_throttle::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(
                        auth_throttle::Column::Key
                            .starts_with(crate::throttle::account_key(&found.slug, "")),
                    )
                    .add(
                        auth_throttle::Column::Key
                            .starts_with(crate::throttle::reset_key(&found.slug, "")),
                    ),
            )
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
        deleted.push(("auth_throttles".to_owned(), throttles));
    }
    let refresh = refresh_token::Entity::delete_many()
        .filter(
            refresh_token::Column::SessionId.in_subquery(
                Query::select()
                    .column(session::Column::Id)
                    .from(session::Entity)
                    .and_where(session::Column::TenantId.eq(tenant_id))
                    .to_owned(),
            ),
        )
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    deleted.push(("refresh_tokens".to_owned(), refresh));
    let domain = tenant_id.to_string();
    let rules = casbin_rule::Entity::delete_many()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(casbin_rule::Column::Ptype.eq("p"))
                        .add(casbin_rule::Column::V1.eq(domain.as_str())),
                )
                .add(
                    Condition::all()
                        .add(casbin_rule::Column::Ptype.eq("g"))
                        .add(casbin_rule::Column::V2.eq(domain.as_str())),
                ),
        )
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    deleted.push(("casbin_rule".to_owned(), rules));
    if rules > 0 {
        crate::policy_store::bump_revision(&txn).await?;
    }
    deleted.extend(tenant_tables::delete_tables(&txn, tenant_id, tables).await?);
    let now = Utc::now();
    let tombstoned = tenant::Entity::update_many()
        .col_expr(tenant::Column::Status, Expr::value(TENANT_DELETED))
        .col_expr(
            tenant::Column::Slug,
            Expr::value(format!("offboarded-{}", tenant_id.simple())),
        )
        .col_expr(tenant::Column::Name, Expr::value("Off-boarded tenant"))
        .col_expr(tenant::Column::MfaRequiredRoles, Expr::value(""))
        .col_expr(tenant::Column::UpdatedAt, Expr::value(now))
        .filter(tenant::Column::Id.eq(tenant_id))
        .filter(tenant::Column::Status.ne(TENANT_DELETED))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    deleted.push(("tenants (anonymized)".to_owned(), tombstoned));
    deleted.retain(|(_, count)| *count > 0);
    if !deleted.is_empty() {
        tenant_tables::record(&txn, ("identity.tenant_erase", tenant_id), &deleted, by).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(tenant_tables::erasure_of(&deleted))
}
