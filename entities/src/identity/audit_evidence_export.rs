//! Table `audit_evidence_exports`: requested evidence packs of a tenant's audit chain.

use sea_orm::entity::prelude::*;

/// One row of `audit_evidence_exports`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_evidence_exports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub requested_by: Option<Uuid>,
    /// `QUEUED`, `RUNNING`, `READY` or `FAILED`.
    pub status: String,
    /// The last sequence number the pack covers.
    pub sequence: Option<i64>,
    /// The chain hash at `sequence`.
    pub head_hash: Option<String>,
    /// Events in the pack.
    pub events: Option<i64>,
    /// The stored pack (a zip), once ready.
    pub file_id: Option<Uuid>,
    /// Why it failed.
    pub failure: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
