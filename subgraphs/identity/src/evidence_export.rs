//! Evidence pack exports: an auditor (or tenant admin) asks for the tenant's audit chain as
//! an evidence pack (`exportAuditEvidence`); a job builds it ([`portal_kit::audit::pack`]),
//! zips it into a stored file, and the export's `file` gives a short-lived download link
//! whose use is checked again against the policies (`auditEvidenceExport(id)`).

use std::sync::Arc;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::identity::audit_evidence_export;
use portal_entities::platform::file;
use portal_kit::audit::{AuditEvent, pack};
use portal_kit::db::BeginWrite;
use portal_kit::evidence::EvidenceSigner;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::jobs::{self, NewJob};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::storage::{FileStore, object_key};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

/// The job kind that builds a pack.
pub const JOB_KIND: &str = "audit.evidence_export";

/// The owner type of a pack's stored file (its query field: `auditEvidenceExport`).
pub const FILE_OWNER: &str = "AuditEvidenceExport";

/// Exports a tenant may have waiting at once.
pub const MAX_PENDING: u64 = 3;

/// Attempts before the job gives up.
const JOB_ATTEMPTS: i32 = 4;

/// Lifecycle of an export (storage form).
pub mod status {
    /// Waiting for a worker.
    pub const QUEUED: &str = "QUEUED";
    /// Being built.
    pub const RUNNING: &str = "RUNNING";
    /// Its file can be downloaded.
    pub const READY: &str = "READY";
    /// It could not be built.
    pub const FAILED: &str = "FAILED";
}

/// Records a request for the caller's tenant's evidence pack, enqueues its job and audits
/// the request, in one transaction. `CONFLICT` when [`MAX_PENDING`] are already waiting.
pub async fn request(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
) -> ApiResult<audit_evidence_export::Model> {
    let tenant = actor.tenant()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let pending = audit_evidence_export::Entity::find()
        .filter(audit_evidence_export::Column::TenantId.eq(tenant))
        .filter(audit_evidence_export::Column::Status.is_in([status::QUEUED, status::RUNNING]))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if pending >= MAX_PENDING {
        return Err(ApiError::Conflict(format!(
            "{MAX_PENDING} evidence packs of this tenant are being built already; \
             try again when one is ready"
        )));
    }
    let row = audit_evidence_export::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant),
        requested_by: Set(actor.id),
        status: Set(status::QUEUED.to_owned()),
        sequence: Set(None),
        head_hash: Set(None),
        events: Set(None),
        file_id: Set(None),
        failure: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let job = NewJob::new(JOB_KIND, json!({ "exportId": row.id }))
        .acting_for(actor)
        .max_attempts(JOB_ATTEMPTS);
    jobs::enqueue(&txn, now, job).await?;
    AuditEvent::success(
        "audit_evidence.export_request",
        "audit_evidence_export",
        row.id,
    )
    .record(&txn, actor, meta)
    .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(row)
}

/// The export `id` of `tenant` (`NOT_FOUND` for another tenant's).
pub async fn find(
    db: &DatabaseConnection,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<audit_evidence_export::Model> {
    audit_evidence_export::Entity::find_by_id(id)
        .filter(audit_evidence_export::Column::TenantId.eq(tenant))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or_else(|| ApiError::NotFound("evidence export"))
}

/// The tenant's exports, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    tenant: Uuid,
    request: PageRequest,
) -> ApiResult<Page<audit_evidence_export::Model>> {
    let query = audit_evidence_export::Entity::find()
        .filter(audit_evidence_export::Column::TenantId.eq(tenant));
    request
        .fetch(db, query, audit_evidence_export::Column::Id)
        .await
}

/// The stored pack of `export`, while it is kept.
pub async fn file_of(
    db: &DatabaseConnection,
    export: &audit_evidence_export::Model,
) -> ApiResult<Option<file::Model>> {
    match export.file_id {
        Some(id) => portal_kit::storage::find(db, export.tenant_id, id, Utc::now()).await,
        None => Ok(None),
    }
}

/// Builds requested packs.
pub struct EvidenceExportJob {
    db: DatabaseConnection,
    signer: EvidenceSigner,
    files: FileStore,
}

impl EvidenceExportJob {
    /// The handler over `db`, signing with `signer`, keeping packs in `files`.
    pub fn new(db: DatabaseConnection, signer: EvidenceSigner, files: FileStore) -> Arc<Self> {
        Arc::new(Self { db, signer, files })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = JOB_KIND;

    async fn fail(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        export: &audit_evidence_export::Model,
        reason: &str,
    ) -> ApiResult<()> {
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        audit_evidence_export::Entity::update_many()
            .col_expr(
                audit_evidence_export::Column::Status,
                Expr::value(status::FAILED),
            )
            .col_expr(audit_evidence_export::Column::Failure, Expr::value(reason))
            .col_expr(
                audit_evidence_export::Column::FinishedAt,
                Expr::value(Utc::now()),
            )
            .filter(audit_evidence_export::Column::Id.eq(export.id))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        AuditEvent::failure(
            "audit_evidence.export_complete",
            "audit_evidence_export",
            Some(export.id),
        )
        .with_details(json!({ "reason": reason }))
        .record(&txn, actor, meta)
        .await?;
        txn.commit().await.map_err(ApiError::from_db)
    }

    async fn build(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        export: &audit_evidence_export::Model,
    ) -> ApiResult<()> {
        let files = pack::build(&self.db, &self.signer, Some(export.tenant_id)).await?;
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"])
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let sequence = manifest["sequence"].as_i64().unwrap_or_default();
        let head_hash = manifest["headHash"].as_str().unwrap_or_default().to_owned();
        let events = manifest["events"].as_i64().unwrap_or_default();
        let zipped = tokio::task::spawn_blocking(move || pack::zip(&files))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let scratch = self.files.scratch("zip");
        tokio::fs::write(scratch.path(), &zipped)
            .await
            .map_err(|e| ApiError::internal(format!("writing a pack: {e}")))?;
        let file_id = Uuid::now_v7();
        let stored = self
            .files
            .put(
                &object_key("identity", export.tenant_id, file_id),
                scratch.path(),
            )
            .await?;
        drop(scratch);
        let now = Utc::now();
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let claimed = audit_evidence_export::Entity::update_many()
            .col_expr(
                audit_evidence_export::Column::Status,
                Expr::value(status::READY),
            )
            .col_expr(
                audit_evidence_export::Column::Sequence,
                Expr::value(sequence),
            )
            .col_expr(
                audit_evidence_export::Column::HeadHash,
                Expr::value(head_hash.clone()),
            )
            .col_expr(audit_evidence_export::Column::Events, Expr::value(events))
            .col_expr(audit_evidence_export::Column::FileId, Expr::value(file_id))
            .col_expr(audit_evidence_export::Column::FinishedAt, Expr::value(now))
            .filter(audit_evidence_export::Column::Id.eq(export.id))
            .filter(audit_evidence_export::Column::Status.eq(status::RUNNING))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if claimed.rows_affected != 1 {
            drop(txn);
            self.files.remove(&stored.key).await.ok();
            return Ok(());
        }
        let name = format!("evidence-pack-{}-{sequence}.zip", now.format("%Y%m%d"));
        file::ActiveModel {
            id: Set(file_id),
            tenant_id: Set(export.tenant_id),
            domain: Set("identity".to_owned()),
            owner_type: Set(FILE_OWNER.to_owned()),
            owner_id: Set(export.id),
            name: Set(name),
            content_type: Set("application/zip".to_owned()),
            size_bytes: Set(stored.size),
            sha256: Set(stored.sha256.clone()),
            row_count: Set(Some(events)),
            storage_key: Set(stored.key.clone()),
            access_selection: Set(None),
            created_by: Set(export.requested_by),
            created_at: Set(now),
            expires_at: Set(Some(now + self.files.retention())),
            key_version: Set(None),
            name_sealed: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        AuditEvent::success(
            "audit_evidence.export_complete",
            "audit_evidence_export",
            export.id,
        )
        .with_details(json!({
            "sequence": sequence,
            "headHash": head_hash,
            "events": events,
            "fileId": file_id,
            "sha256": stored.sha256,
        }))
        .record(&txn, actor, meta)
        .await?;
        txn.commit().await.map_err(ApiError::from_db)
    }
}

#[async_trait::async_trait]
impl JobHandler for EvidenceExportJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let id = job.required_id("exportId")?;
        let (Some(tenant), Some(actor)) = (job.tenant_id, job.principal.as_ref()) else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let meta = job.audit_meta();
        let export = match find(&self.db, tenant, id).await {
            Ok(export) => export,
            Err(ApiError::NotFound(_)) => {
                return Err(JobError::Permanent("the export no longer exists".into()));
            }
            Err(err) => return Err(retry(err)),
        };
        if export.status != status::QUEUED && export.status != status::RUNNING {
            return Ok(());
        }
        audit_evidence_export::Entity::update_many()
            .col_expr(
                audit_evidence_export::Column::Status,
                Expr::value(status::RUNNING),
            )
            .filter(audit_evidence_export::Column::Id.eq(export.id))
            .filter(audit_evidence_export::Column::Status.eq(status::QUEUED))
            .exec(&self.db)
            .await
            .map_err(|err| retry(ApiError::from_db(err)))?;
        match self.build(actor, &meta, &export).await {
            Ok(()) => Ok(()),
            Err(err) if job.attempt >= JOB_ATTEMPTS => {
                tracing::error!(export = %export.id, error = ?err, "an evidence pack failed");
                self.fail(
                    actor,
                    &meta,
                    &export,
                    "the evidence pack could not be built",
                )
                .await
                .map_err(retry)?;
                Ok(())
            }
            Err(err) => Err(retry(err)),
        }
    }
}
