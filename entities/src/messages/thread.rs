//! Table `threads`. The subject is sealed with the tenant's data key (`subject_sealed`
//! under `key_version`); `legacy_subject` holds plaintext written before encryption until
//! the reseal job seals it.

use sea_orm::entity::prelude::*;

/// One row of `threads`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "threads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Option<Uuid>,
    pub created_by: Uuid,
    /// `OPEN`, `WAITING`, `RESOLVED` or `CLOSED`.
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub legacy_subject: Option<String>,
    #[sea_orm(column_type = "Blob", nullable)]
    pub subject_sealed: Option<Vec<u8>>,
    pub key_version: Option<i32>,
    /// The staff member the thread is assigned to.
    pub assignee_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
