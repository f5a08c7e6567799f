//! Table `evidence_keys`: the Ed25519 keys that sign evidence (report manifests, audit
//! checkpoints); private halves sealed with the data key. Rows are never deleted: every
//! key stays published so that what it signed keeps verifying.

use sea_orm::entity::prelude::*;

/// One row of `evidence_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "evidence_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub algorithm: String,
    /// The raw public key, base64url without padding.
    pub public_key: String,
    pub private_key_sealed: String,
    /// When it started signing.
    pub created_at: DateTimeUtc,
    /// When it stopped signing; `None` while it signs.
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
