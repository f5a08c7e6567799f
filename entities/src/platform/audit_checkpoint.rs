//! Table `audit_checkpoints`: signed (sequence, head hash, time) documents of each
//! tenant's audit chain. Append-only.

use sea_orm::entity::prelude::*;

/// One row of `audit_checkpoints`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The chain's tenant; `None` for the platform's own chain.
    pub tenant_id: Option<Uuid>,
    /// The last sequence number it covers (0 for a genesis checkpoint).
    pub sequence: i64,
    /// The chain hash at `sequence`, hex.
    pub head_hash: String,
    /// `genesis`, `periodic` or `final`.
    pub kind: String,
    /// The evidence key that signed it.
    pub key_id: String,
    /// The signed document (JSON).
    pub document: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
