//! Table `report_deliveries`: each run delivered to a recipient — in the app (users) and
//! by email (small files attached, large ones as a link).

use sea_orm::entity::prelude::*;

/// One row of `report_deliveries`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub definition_id: Uuid,
    pub run_id: Uuid,
    pub recipient_id: Uuid,
    /// The user it went to; `None` for an external address.
    pub user_id: Option<Uuid>,
    /// The address the email went to.
    pub email: Option<String>,
    /// `ATTACHMENT` (the file is in the email) or `LINK` (the email links to it).
    pub via: String,
    /// The file delivered.
    pub file_id: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
