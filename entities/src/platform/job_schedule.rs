//! Table `job_schedules` (see `docs/jobs.md`).

use sea_orm::entity::prelude::*;

/// One row of `job_schedules`: a job kind enqueued on a cron schedule.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "job_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub payload: Json,
    pub principal: Option<Json>,
    /// Five-field cron expression.
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub time_zone: String,
    pub enabled: bool,
    pub next_run_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
