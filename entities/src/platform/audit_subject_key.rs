//! Table `audit_subject_keys`: one X25519 key pair per data subject, sealing the personal
//! data in audit events. Shredding a subject clears both halves and keeps the row (so no
//! new key is made for an erased subject).

use sea_orm::entity::prelude::*;

/// One row of `audit_subject_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_subject_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject_id: Uuid,
    pub tenant_id: Option<Uuid>,
    /// The escrow key the private half is sealed to.
    pub escrow_key_id: Option<String>,
    /// The raw public key, base64url without padding; `None` once shredded.
    pub public_key: Option<String>,
    /// The private half sealed to the escrow key; `None` once shredded.
    pub private_key_sealed: Option<String>,
    pub created_at: DateTimeUtc,
    pub shredded_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
