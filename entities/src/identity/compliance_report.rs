//! Table `compliance_reports`: requested SOC 2 reports of a tenant (access review,
//! privileged actions, policy changes, sign-in failures, key rotations) over a period.

use sea_orm::entity::prelude::*;

/// One row of `compliance_reports`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "compliance_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `ACCESS_REVIEW`, `PRIVILEGED_ACTIONS`, `POLICY_CHANGES`, `SIGN_IN_FAILURES` or
    /// `KEY_ROTATIONS`.
    pub kind: String,
    /// The period it covers: from (inclusive) …
    pub period_from: DateTimeUtc,
    /// … to (exclusive).
    pub period_to: DateTimeUtc,
    /// `CSV` or `PDF`.
    pub format: String,
    pub requested_by: Option<Uuid>,
    /// `QUEUED`, `RUNNING`, `READY` or `FAILED`.
    pub status: String,
    /// Rows in the report.
    pub row_count: Option<i64>,
    /// The stored zip, once ready.
    pub file_id: Option<Uuid>,
    /// Why it failed.
    pub failure: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
