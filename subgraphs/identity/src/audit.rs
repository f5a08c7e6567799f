//! The audit trail as admins and auditors read it: filtered, paged, tenant-scoped, and
//! read-only (the database refuses updates and deletes of audit rows).

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::platform::audit_event;
use portal_kit::audit::personal;
use portal_kit::context::{actor, db};
use portal_kit::input;
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::scalars::DateTimeArg;
use portal_kit::{ApiError, ApiResult};

use crate::evidence_export;
use crate::store;

/// One recorded state change.
#[derive(SimpleObject)]
pub struct AuditEvent {
    /// Stable id (time-ordered).
    pub id: ID,
    /// What happened, e.g. `account.update`.
    pub action: String,
    /// Kind of object changed.
    pub target_type: String,
    /// The object changed.
    pub target_id: Option<ID>,
    /// `success` or `failure`.
    pub outcome: String,
    /// `user`, `service`, `anonymous` or `system`.
    pub actor_kind: String,
    /// Who acted.
    pub actor_id: Option<ID>,
    /// The gateway request id.
    pub request_id: Option<String>,
    /// The client's address; null when not recorded or when the actor was erased.
    pub source_ip: Option<String>,
    /// The client's user agent; null when not recorded or when the actor was erased.
    pub user_agent: Option<String>,
    /// Non-secret details (for updates: before and after). Personal members (an e-mail
    /// address, a name) are left out once their subject was erased.
    pub details: Option<Json<serde_json::Value>>,
    /// The pseudonymous data subject whose personal data this event holds (a user id, or
    /// the tenant's subject for anonymous callers and service accounts).
    pub subject_id: Option<ID>,
    /// Whether personal data was recorded that can no longer be read: its subject was
    /// erased (crypto-shredded). The event itself stays, and still verifies.
    pub personal_data_erased: bool,
    /// Its place in the tenant's tamper-evident chain; null for a moment after it is
    /// recorded, until the sequencer chains it.
    pub sequence: Option<i64>,
    /// Its chain hash (SHA-256, hex): what `portal audit verify` and the evidence pack
    /// check.
    pub chain_hash: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
}

impl AuditEvent {
    /// `row` with its personal data as `opened` where its subjects' keys still exist.
    pub fn of(row: audit_event::Model, opened: personal::Opened) -> Self {
        Self {
            id: ID(row.id.to_string()),
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id.map(|id| ID(id.to_string())),
            outcome: row.outcome,
            actor_kind: row.actor_kind,
            actor_id: row.actor_id.map(|id| ID(id.to_string())),
            request_id: row.request_id,
            source_ip: opened.source_ip,
            user_agent: opened.user_agent,
            details: opened.details.map(Json),
            subject_id: row.subject_id.map(|id| ID(id.to_string())),
            personal_data_erased: opened.erased,
            sequence: row.chain_seq,
            chain_hash: row.chain_hash,
            created_at: row.created_at,
            uuid: row.id,
        }
    }
}

impl Node for AuditEvent {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(AuditEventConnection, AuditEventEdge, AuditEvent);

/// Narrows the audit trail; every given criterion must hold.
#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    /// Exact action, e.g. `user.update`.
    pub action: Option<String>,
    /// Who acted.
    pub actor_id: Option<ID>,
    /// Which object was changed.
    pub target_id: Option<ID>,
    /// Not before this instant.
    pub from: Option<DateTimeArg>,
    /// Before this instant.
    pub to: Option<DateTimeArg>,
}

/// Audit queries.
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The caller's tenant's audit trail, oldest first (tenant admins and auditors).
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AuditEventConnection> {
        let actor = actor(ctx);
        let tenant_id = actor.tenant()?;
        let page = PageRequest::parse(first, after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let from = filter.from.map(|at| at.parse("filter.from")).transpose()?;
        let to = filter.to.map(|at| at.parse("filter.to")).transpose()?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(ApiError::invalid("filter.to", "must not be before `from`"));
        }
        let criteria = store::AuditCriteria {
            action: filter
                .action
                .map(|a| input::text("filter.action", &a, 64))
                .transpose()?,
            actor_id: filter
                .actor_id
                .map(|id| input::id("filter.actorId", &id))
                .transpose()?,
            target_id: filter
                .target_id
                .map(|id| input::id("filter.targetId", &id))
                .transpose()?,
            from,
            to,
        };
        let db = db(ctx)?;
        let rows = store::list_audit_events(db, tenant_id, &criteria, page).await?;
        let data_key = crate::sessions::authenticator(ctx)?
            .settings()
            .data_key
            .clone();
        let mut reader = personal::Reader::new(std::sync::Arc::new(
            portal_kit::envelope::LocalKeyProvider::new(data_key),
        ));
        Ok(reader.open_page(db, rows, AuditEvent::of).await?.into())
    }
}

portal_kit::file_object!(
    /// A stored evidence pack: a zip of `events.jsonl`, `checkpoints.jsonl`, `keys.json`,
    /// a signed `manifest.json` and a `README.md` (`portal audit verify --pack` checks it).
    EvidencePackFile,
    rows: "Audit events in it."
);

/// Where an evidence pack export is.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuditEvidenceExportStatus {
    /// Waiting for a worker.
    Queued,
    /// Being built.
    Running,
    /// Its file can be downloaded.
    Ready,
    /// It could not be built (`failure` says why).
    Failed,
}

/// A requested evidence pack of the tenant's audit log.
pub struct AuditEvidenceExport {
    row: portal_entities::identity::audit_evidence_export::Model,
    file: Option<portal_entities::platform::file::Model>,
}

#[Object]
impl AuditEvidenceExport {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Where it is.
    async fn status(&self) -> AuditEvidenceExportStatus {
        match self.row.status.as_str() {
            evidence_export::status::QUEUED => AuditEvidenceExportStatus::Queued,
            evidence_export::status::RUNNING => AuditEvidenceExportStatus::Running,
            evidence_export::status::READY => AuditEvidenceExportStatus::Ready,
            _ => AuditEvidenceExportStatus::Failed,
        }
    }

    /// Who asked for it.
    async fn requested_by(&self) -> Option<ID> {
        self.row.requested_by.map(|id| ID(id.to_string()))
    }

    /// When it was asked for.
    async fn requested_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When it was built or failed.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.finished_at
    }

    /// The last sequence number of the chain it covers (its signed head).
    async fn sequence(&self) -> Option<i64> {
        self.row.sequence
    }

    /// The chain hash at `sequence`, as its last checkpoint signed it.
    async fn head_hash(&self) -> Option<&str> {
        self.row.head_hash.as_deref()
    }

    /// Audit events in it.
    async fn events(&self) -> Option<i64> {
        self.row.events
    }

    /// Why it failed.
    async fn failure(&self) -> Option<&str> {
        self.row.failure.as_deref()
    }

    /// The pack, once ready and while it is kept.
    async fn file(&self) -> Option<EvidencePackFile> {
        self.file.clone().map(|row| EvidencePackFile { row })
    }
}

impl Node for AuditEvidenceExport {
    fn cursor_id(&self) -> Uuid {
        self.row.id
    }
}

portal_kit::connection!(
    AuditEvidenceExportConnection,
    AuditEvidenceExportEdge,
    AuditEvidenceExport
);

async fn with_file(
    db: &sea_orm::DatabaseConnection,
    row: portal_entities::identity::audit_evidence_export::Model,
) -> ApiResult<AuditEvidenceExport> {
    let file = evidence_export::file_of(db, &row).await?;
    Ok(AuditEvidenceExport { row, file })
}

/// Evidence pack queries.
#[derive(Default)]
pub struct EvidenceQuery;

#[Object]
impl EvidenceQuery {
    /// One evidence pack export of the caller's tenant (auditors and tenant admins).
    async fn audit_evidence_export(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<AuditEvidenceExport> {
        let id = input::id("id", &id)?;
        let db = db(ctx)?;
        let row = evidence_export::find(db, actor(ctx).tenant()?, id).await?;
        with_file(db, row).await
    }

    /// The caller's tenant's evidence pack exports, oldest first.
    async fn audit_evidence_exports(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AuditEvidenceExportConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let db = db(ctx)?;
        let rows = evidence_export::list(db, actor(ctx).tenant()?, page).await?;
        Ok(rows.try_map(|row| with_file(db, row)).await?.into())
    }
}

/// Evidence pack mutations.
#[derive(Default)]
pub struct EvidenceMutation;

#[Object]
impl EvidenceMutation {
    /// Asks for an evidence pack of the caller's tenant's audit log: the chain up to a head
    /// signed for the pack, the signed checkpoints and the published evidence keys, built
    /// by a job (follow `auditEvidenceExport(id)` until `READY`). `CONFLICT` while three
    /// are being built.
    async fn export_audit_evidence(&self, ctx: &Context<'_>) -> ApiResult<AuditEvidenceExport> {
        let row =
            evidence_export::request(db(ctx)?, actor(ctx), portal_kit::context::meta(ctx)).await?;
        Ok(AuditEvidenceExport { row, file: None })
    }
}
