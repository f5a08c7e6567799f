//! Table `data_subject_requests`: GDPR requests about one person of a tenant.

use sea_orm::entity::prelude::*;

/// One row of `data_subject_requests`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "data_subject_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The person (a user id).
    pub subject_id: Uuid,
    /// `ACCESS` (an archive of their data) or `ERASURE`.
    pub kind: String,
    /// Who asked: the person, or an admin on their behalf.
    pub requested_by: Option<Uuid>,
    /// `AWAITING_VERIFICATION`, `QUEUED`, `RUNNING`, `COMPLETED`, `FAILED`, `EXPIRED`.
    pub status: String,
    /// SHA-256 of the one-time verification token mailed to the person.
    pub verification_hash: Option<String>,
    pub verification_expires_at: Option<DateTimeUtc>,
    pub verified_at: Option<DateTimeUtc>,
    /// When the answer is due (30 days after the request).
    pub due_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    /// The archive of an access request.
    pub file_id: Option<Uuid>,
    /// What each domain held (counts by collection), or erased, anonymized and kept.
    pub result: Option<Json>,
    pub failure: Option<String>,
    pub created_at: DateTimeUtc,
    /// An erasure in progress: the person's identifiers, sealed under the data key (set
    /// when erasing begins, cleared when it completes).
    pub erasure_sealed: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
