//! Table `external_refs`: a record of an external system (through one integration) and
//! the portal entity it is synchronized with.

use sea_orm::entity::prelude::*;

/// One row of `external_refs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "external_refs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub integration_id: Uuid,
    /// The remote's name for the kind of record (`customer`, `invoice`, `company`).
    pub external_type: String,
    pub external_id: String,
    /// The portal's type (`Account`, `Invoice`, `Payment`, `LedgerEntry`, `User`).
    pub entity_type: String,
    pub entity_id: Uuid,
    /// Hash of the remote fields last synchronized (null for a link made by hand):
    /// a record whose fingerprint is unchanged is skipped.
    pub fingerprint: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
