//! Table `invoices`.

use sea_orm::entity::prelude::*;

/// One row of `invoices`. Stored statuses are `OPEN`, `PAID` and `VOID`; "overdue" is an
/// open invoice past its due date, derived when read.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "invoices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub number: String,
    pub status: String,
    pub source: String,
    pub currency: String,
    pub amount_e4: i64,
    pub paid_e4: i64,
    pub period_start: Date,
    pub period_end: Date,
    pub due_date: Date,
    pub issued_at: DateTimeUtc,
    /// The `CHARGE` ledger entry the invoice posted.
    pub charge_entry_id: Uuid,
    pub settled_at: Option<DateTimeUtc>,
    pub voided_at: Option<DateTimeUtc>,
    pub void_reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
