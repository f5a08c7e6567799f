//! Table `audit_escrow_keys`: the X25519 keys that data subjects' private keys are sealed
//! to, so that any process can make a subject key and only holders of the data key can
//! open one.

use sea_orm::entity::prelude::*;

/// One row of `audit_escrow_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_escrow_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The raw public key, base64url without padding.
    pub public_key: String,
    /// The private half sealed with the data key.
    pub private_key_sealed: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
