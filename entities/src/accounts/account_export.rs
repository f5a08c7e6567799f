//! Table `account_exports`.

use sea_orm::entity::prelude::*;

/// One row of `account_exports`: an export of an account's data (or of a dashboard KPI)
/// requested by a user.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "account_exports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The account; null for a dashboard KPI (every account the requester sees).
    pub account_id: Option<Uuid>,
    pub requested_by: Uuid,
    /// `LEDGER_ENTRIES`, `INVOICES`, `BALANCE`, `BALANCE_HISTORY`, `USAGE`, `ACTIVITY`,
    /// `KPI_BALANCES`, `KPI_OPEN_INVOICES`, `KPI_OVERDUE_INVOICES`, `KPI_USAGE`.
    pub dataset: String,
    /// `CSV`, `XLSX`, `JSON`.
    pub format: String,
    /// The validated request (range, filters, interval, time zone, metric).
    pub parameters: Json,
    /// `QUEUED`, `RUNNING`, `READY`, `FAILED`.
    pub status: String,
    pub row_count: Option<i64>,
    /// The file, once `READY`.
    pub file_id: Option<Uuid>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
