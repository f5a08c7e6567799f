//! Table `tenant_offboardings`: the off-boarding of a tenant — a platform record that
//! outlives the tenant — with its progress, the files handed over (in the operator's
//! tenant), the final signed checkpoint of the tenant's audit log and what was deleted.

use sea_orm::entity::prelude::*;

/// One row of `tenant_offboardings`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_offboardings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The tenant off-boarded.
    pub tenant_id: Uuid,
    /// Its slug and name when the off-boarding was asked for (the tenant row is
    /// anonymized when its data is deleted).
    pub tenant_slug: String,
    pub tenant_name: String,
    /// The tenant of the platform administrator who asked: the handed-over files are its.
    pub operator_tenant_id: Uuid,
    pub requested_by: Uuid,
    /// `EXPORTING`, `AWAITING_DELETION`, `DELETING`, `COMPLETED`, `BLOCKED`, `CANCELLED`
    /// or `FAILED`.
    pub status: String,
    /// Not deleted before this instant (and not before the export is ready).
    pub delete_after: DateTimeUtc,
    pub archive_file_id: Option<Uuid>,
    pub evidence_file_id: Option<Uuid>,
    pub final_sequence: Option<i64>,
    pub final_head_hash: Option<String>,
    pub final_checkpoint_id: Option<Uuid>,
    /// What the archive holds, what was deleted, or the holds that block it.
    pub result: Option<Json>,
    pub failure: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub exported_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
