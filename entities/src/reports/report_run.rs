//! Table `report_runs`.

use sea_orm::entity::prelude::*;

/// One row of `report_runs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub definition_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub status: String,
    pub row_count: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// Why it ran: `MANUAL` (asked for) or `SCHEDULED`.
    pub cause: String,
    /// The definition version it produced.
    pub definition_version: Option<i32>,
    /// The format it produced.
    pub format: Option<String>,
    /// Whom it read the data as (the definition's owner).
    pub run_as: Option<Uuid>,
    /// Its file, once it succeeded.
    pub file_id: Option<Uuid>,
    /// The file's size.
    pub bytes: Option<i64>,
    /// The full reason it failed (for admins; `error` is what users see).
    pub error_detail: Option<String>,
    /// The signed integrity manifest of its file (JSON text, exactly as signed and served).
    pub manifest: Option<String>,
    /// For a `DELIVERY` run: the recipient it is produced for (read as them).
    pub recipient_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
