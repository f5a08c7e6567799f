//! Table `policy_coordinates`: the field coordinates of the supergraph being served.

use sea_orm::entity::prelude::*;

/// One row of `policy_coordinates`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "policy_coordinates")]
pub struct Model {
    /// `Type.field`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub coordinate: String,
    /// `read` or `write`.
    pub action: String,
    pub seen_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
