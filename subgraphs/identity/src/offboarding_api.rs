//! Tenant off-boarding through GraphQL: platform administrators off-board another tenant
//! (`offboardTenant`), follow it (`tenantOffboarding(s)`), cancel it before its data is
//! deleted, and download what is handed over — the tenant's archive and the evidence pack
//! of its audit log ending at a final signed checkpoint.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::identity::tenant_offboarding;
use portal_entities::platform::audit_checkpoint;
use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta};
use portal_kit::input;
use portal_kit::pagination::{Node, PageRequest};
use sea_orm::EntityTrait;

use crate::offboarding::{self, status};

portal_kit::file_object!(
    /// A file handed over when a tenant is off-boarded: its archive (a zip of every
    /// user's data and the tenant's own, with a signed manifest), or the evidence pack of
    /// its audit log ending at the final checkpoint.
    TenantOffboardingFile,
    rows: "Users in an archive; audit events in an evidence pack."
);

/// Where an off-boarding is.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum TenantOffboardingStatus {
    /// The tenant is frozen and its archive is being built.
    Exporting,
    /// The archive is ready; the data is deleted after `deleteAfter` (until then it can be
    /// cancelled).
    AwaitingDeletion,
    /// The tenant's data is being deleted.
    Deleting,
    /// Deleted everywhere; `finalCheckpoint` and `evidencePack` are ready.
    Completed,
    /// A legal hold in the tenant keeps its data (`result.holds`); the tenant is active
    /// again.
    Blocked,
    /// Cancelled before deletion; the tenant is active again.
    Cancelled,
    /// The archive could not be built (`failure`); the tenant is active again.
    Failed,
}

impl TenantOffboardingStatus {
    fn from_db(value: &str) -> Self {
        match value {
            status::EXPORTING => Self::Exporting,
            status::AWAITING_DELETION => Self::AwaitingDeletion,
            status::DELETING => Self::Deleting,
            status::COMPLETED => Self::Completed,
            status::BLOCKED => Self::Blocked,
            status::CANCELLED => Self::Cancelled,
            _ => Self::Failed,
        }
    }
}

/// The last signed checkpoint of an off-boarded tenant's audit log.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditCheckpointSummary {
    /// The checkpoint's id.
    pub id: ID,
    /// The last sequence number it covers.
    pub sequence: i64,
    /// The chain hash at `sequence` (hex).
    pub head_hash: String,
    /// The evidence key that signed it.
    pub key_id: String,
    /// The signed document (JSON), as the evidence pack's `checkpoints.jsonl` has it.
    pub document: String,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
}

/// Input of `offboardTenant`.
#[derive(InputObject)]
pub struct OffboardTenantInput {
    /// The tenant to off-board (not the caller's own).
    pub tenant_id: ID,
    /// The tenant's slug, typed again.
    pub confirm_slug: String,
    /// Days after this request before the data is deleted (0–90, 30 when omitted; never
    /// sooner than two hours, the revocation window); it can be cancelled until then.
    pub delete_after_days: Option<i32>,
}

/// The off-boarding of a tenant.
pub struct TenantOffboarding {
    row: tenant_offboarding::Model,
}

#[Object]
impl TenantOffboarding {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// The tenant off-boarded.
    async fn tenant_id(&self) -> ID {
        ID(self.row.tenant_id.to_string())
    }

    /// The tenant's slug when it was asked for.
    async fn tenant_slug(&self) -> &str {
        &self.row.tenant_slug
    }

    /// The tenant's name when it was asked for.
    async fn tenant_name(&self) -> &str {
        &self.row.tenant_name
    }

    /// Where it is.
    async fn status(&self) -> TenantOffboardingStatus {
        TenantOffboardingStatus::from_db(&self.row.status)
    }

    /// Who asked for it.
    async fn requested_by(&self) -> ID {
        ID(self.row.requested_by.to_string())
    }

    /// When it was asked for.
    async fn requested_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// The data is not deleted before this.
    async fn delete_after(&self) -> DateTime<Utc> {
        self.row.delete_after
    }

    /// When the archive was ready.
    async fn exported_at(&self) -> Option<DateTime<Utc>> {
        self.row.exported_at
    }

    /// When it completed, was cancelled, blocked or failed.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.completed_at
    }

    /// What the archive holds (users, records and files by part), what was deleted (by
    /// part, table by table), or the legal holds that block it.
    async fn result(&self) -> Option<Json<serde_json::Value>> {
        self.row.result.clone().map(Json)
    }

    /// Why it failed.
    async fn failure(&self) -> Option<&str> {
        self.row.failure.as_deref()
    }

    /// The tenant's archive, once ready and while it is kept.
    async fn archive(&self, ctx: &Context<'_>) -> ApiResult<Option<TenantOffboardingFile>> {
        let row = offboarding::file_of(db(ctx)?, &self.row, self.row.archive_file_id).await?;
        Ok(row.map(|row| TenantOffboardingFile { row }))
    }

    /// The evidence pack of the tenant's audit log, ending at the final checkpoint, once
    /// completed and while it is kept.
    async fn evidence_pack(&self, ctx: &Context<'_>) -> ApiResult<Option<TenantOffboardingFile>> {
        let row = offboarding::file_of(db(ctx)?, &self.row, self.row.evidence_file_id).await?;
        Ok(row.map(|row| TenantOffboardingFile { row }))
    }

    /// The final signed checkpoint of the tenant's audit log, once completed.
    async fn final_checkpoint(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<AuditCheckpointSummary>> {
        let Some(id) = self.row.final_checkpoint_id else {
            return Ok(None);
        };
        let found = audit_checkpoint::Entity::find_by_id(id)
            .one(db(ctx)?)
            .await
            .map_err(portal_kit::ApiError::from_db)?;
        Ok(found.map(|c| AuditCheckpointSummary {
            id: ID(c.id.to_string()),
            sequence: c.sequence,
            head_hash: c.head_hash,
            key_id: c.key_id,
            document: c.document,
            signed_at: c.created_at,
        }))
    }
}

impl Node for TenantOffboarding {
    fn cursor_id(&self) -> Uuid {
        self.row.id
    }
}

portal_kit::connection!(
    TenantOffboardingConnection,
    TenantOffboardingEdge,
    TenantOffboarding
);

/// Off-boarding queries.
#[derive(Default)]
pub struct OffboardingQuery;

#[Object]
impl OffboardingQuery {
    /// One tenant off-boarding (platform administrators).
    async fn tenant_offboarding(&self, ctx: &Context<'_>, id: ID) -> ApiResult<TenantOffboarding> {
        let id = input::id("id", &id)?;
        let row = offboarding::find(db(ctx)?, id).await?;
        Ok(TenantOffboarding { row })
    }

    /// Every tenant off-boarding, oldest first (platform administrators).
    async fn tenant_offboardings(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<TenantOffboardingConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = offboarding::list(db(ctx)?, page).await?;
        Ok(rows.map(|row| TenantOffboarding { row }).into())
    }
}

/// Off-boarding mutations.
#[derive(Default)]
pub struct OffboardingMutation;

#[Object]
impl OffboardingMutation {
    /// Off-boards another tenant: at once it is frozen — nobody signs in, API keys stop
    /// working, every session is revoked — and a job builds its archive (every user's
    /// data and the tenant's own); `deleteAfterDays` later its data is deleted in every
    /// part of the portal, its keys destroyed, and its audit log closed with a final
    /// signed checkpoint and handed over as an evidence pack. A legal hold in the tenant
    /// blocks it. `BAD_USER_INPUT` when the slug does not match or the tenant is the
    /// caller's own; `CONFLICT` while one is under way.
    async fn offboard_tenant(
        &self,
        ctx: &Context<'_>,
        input: OffboardTenantInput,
    ) -> ApiResult<TenantOffboarding> {
        let tenant_id = input::id("input.tenantId", &input.tenant_id)?;
        let row = offboarding::request(
            db(ctx)?,
            (actor(ctx), meta(ctx)),
            offboarding::Request {
                tenant_id,
                confirm_slug: input.confirm_slug,
                grace_days: input.delete_after_days,
            },
        )
        .await?;
        Ok(TenantOffboarding { row })
    }

    /// Cancels an off-boarding before its data is deleted: the tenant is active again
    /// (its users sign in anew) and the archive is discarded. `CONFLICT` once deletion
    /// has begun or it has ended.
    async fn cancel_tenant_offboarding(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<TenantOffboarding> {
        let id = input::id("id", &id)?;
        let row = offboarding::cancel(db(ctx)?, (actor(ctx), meta(ctx)), id).await?;
        Ok(TenantOffboarding { row })
    }
}
