//! Table `payments`.

use sea_orm::entity::prelude::*;

/// One row of `payments`: money received for an account, optionally settling an invoice.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub invoice_id: Option<Uuid>,
    /// The `PAYMENT` ledger entry the payment posted.
    pub ledger_entry_id: Uuid,
    pub source: String,
    pub currency: String,
    pub amount_e4: i64,
    pub received_at: DateTimeUtc,
    pub reference: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
