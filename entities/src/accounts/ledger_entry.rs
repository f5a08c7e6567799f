//! Table `ledger_entries`.

use sea_orm::entity::prelude::*;

/// One row of `ledger_entries`: a posting that moved an account's balance. Never updated
/// or deleted; a mistake is corrected by another entry.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub source: String,
    /// What the entry adds to the balance, times 10^4 (negative for charges and refunds).
    pub amount_e4: i64,
    /// The account's balance right after this entry was recorded, times 10^4.
    pub balance_after_e4: i64,
    pub currency: String,
    pub posted_at: DateTimeUtc,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub invoice_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the request that created the entry under `idempotency_key`.
    pub request_hash: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
