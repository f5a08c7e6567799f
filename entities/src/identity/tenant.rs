//! Table `tenants`.

use sea_orm::entity::prelude::*;

/// One row of `tenants`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub session_idle_timeout_secs: i32,
    pub session_absolute_timeout_secs: i32,
    /// Role names whose holders must use a second factor, comma-separated.
    pub mfa_required_roles: String,
    /// IANA time zone (schedules, chart buckets, quiet hours).
    pub time_zone: String,
    /// Days stored files (exports, report files) are kept; `None`: the platform's default.
    pub file_retention_days: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
