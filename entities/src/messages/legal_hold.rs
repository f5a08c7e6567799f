//! Table `legal_holds`: an account or thread whose messages retention must not delete or
//! anonymize, while the hold is not released.

use sea_orm::entity::prelude::*;

/// One row of `legal_holds`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "legal_holds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `ACCOUNT` or `THREAD`.
    pub target_type: String,
    pub target_id: Uuid,
    /// Why (a matter, a request): shown to admins and auditors.
    pub reason: String,
    pub placed_by: Uuid,
    pub placed_at: DateTimeUtc,
    pub released_by: Option<Uuid>,
    pub released_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
