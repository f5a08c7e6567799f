//! Table `message_attachments`: a file declared for a thread (`AWAITING_UPLOAD`), received
//! and sealed (`SCANNING`), then `CLEAN` (its `files` row, same id, makes it downloadable)
//! or `QUARANTINED` (never downloadable). Attached to a message once posted with it.

use sea_orm::entity::prelude::*;

/// One row of `message_attachments`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "message_attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub thread_id: Uuid,
    pub message_id: Option<Uuid>,
    pub uploaded_by: Uuid,
    /// The file name, sealed with the tenant key (purpose `file.name`, bound to this id).
    #[sea_orm(column_type = "Blob")]
    pub name_sealed: Vec<u8>,
    pub key_version: i32,
    /// The most bytes the upload may send (the tenant's limit when it was declared).
    pub max_bytes: i64,
    pub state: String,
    /// Detected from the content's first bytes.
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: Option<String>,
    pub storage_key: Option<String>,
    /// What the malware scan said (signature name when quarantined).
    #[sea_orm(column_type = "Text", nullable)]
    pub scan_detail: Option<String>,
    pub created_at: DateTimeUtc,
    pub upload_expires_at: DateTimeUtc,
    pub uploaded_at: Option<DateTimeUtc>,
    pub scanned_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
