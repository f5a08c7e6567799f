//! Table `files`.

use sea_orm::entity::prelude::*;

/// One row of `files`: a file kept in object storage, owned by an entity of one domain
/// (e.g. an `AccountExport` of the accounts subgraph).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The subgraph that owns it (`accounts`, …).
    pub domain: String,
    /// The GraphQL type of the owning entity (`AccountExport`, …).
    pub owner_type: String,
    pub owner_id: Uuid,
    /// The name a download is saved under.
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
    /// Data rows in it (exports), header excluded.
    pub row_count: Option<i64>,
    /// Its key in the object store.
    pub storage_key: String,
    /// GraphQL selection on the owning entity a download re-runs as the downloader: the
    /// fields the file's data came from, so field-level policies apply to the file too.
    pub access_selection: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// After this it is deleted (and no longer downloadable).
    pub expires_at: Option<DateTimeUtc>,
    /// The tenant key version that seals it; `None`: stored in the clear (exports and
    /// report files). Sealed files keep their content in chunks (`portal_kit::envelope`)
    /// and their name in `name_sealed` (`name` is then a placeholder).
    pub key_version: Option<i32>,
    #[sea_orm(column_type = "Blob", nullable)]
    pub name_sealed: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
