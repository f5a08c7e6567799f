//! Table `audit_events`: append-only (a row's chain fields are set once, after commit).

use sea_orm::entity::prelude::*;

/// One row of `audit_events`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Option<Json>,
    pub created_at: DateTimeUtc,
    /// Its place in its tenant's hash chain (from 1); `None` until the sequencer chains it.
    pub chain_seq: Option<i64>,
    /// The chain hash of the event before it (64 zeros for the first), hex.
    pub chain_prev: Option<String>,
    /// SHA-256 over `chain_prev` and the event's canonical encoding, hex.
    pub chain_hash: Option<String>,
    /// The data subject whose key seals `subject_personal` (a user id, or a tenant's
    /// unattributed subject).
    pub subject_id: Option<Uuid>,
    /// The actor's personal data (address, user agent), sealed to the actor's subject key.
    pub actor_personal: Option<String>,
    /// Personal data about `subject_id` from the details, sealed to its key.
    pub subject_personal: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
