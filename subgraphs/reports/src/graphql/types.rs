//! Reports' wire types: `ReportDefinition` and `ReportRun` (both `@key(fields: "id")`),
//! their enums and connections.

use async_graphql::{ComplexObject, Context, Enum, ID, Json, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_run};
use portal_kit::loader::{load, load_page};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiError, ApiResult};

use super::federation::{Account, User};
use super::loaders::{DefinitionsById, RunsByDefinition};
use crate::domain::{ReportFormat, ReportKind, ReportRunStatus};

/// What a report is about.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ReportKind")]
pub enum ReportKindGql {
    /// Transactions and balances of one account over a period.
    AccountStatement,
    /// Balances of many accounts at a point in time.
    BalanceSummary,
    /// Activity (changes) over a period.
    Activity,
    /// Defined entirely by its parameters.
    Custom,
}

impl From<ReportKind> for ReportKindGql {
    fn from(kind: ReportKind) -> Self {
        match kind {
            ReportKind::AccountStatement => Self::AccountStatement,
            ReportKind::BalanceSummary => Self::BalanceSummary,
            ReportKind::Activity => Self::Activity,
            ReportKind::Custom => Self::Custom,
        }
    }
}

impl From<ReportKindGql> for ReportKind {
    fn from(kind: ReportKindGql) -> Self {
        match kind {
            ReportKindGql::AccountStatement => Self::AccountStatement,
            ReportKindGql::BalanceSummary => Self::BalanceSummary,
            ReportKindGql::Activity => Self::Activity,
            ReportKindGql::Custom => Self::Custom,
        }
    }
}

/// File format a report is rendered in.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ReportFormat")]
pub enum ReportFormatGql {
    /// Comma-separated values.
    Csv,
    /// Excel workbook.
    Xlsx,
    /// PDF document.
    Pdf,
}

impl From<ReportFormat> for ReportFormatGql {
    fn from(format: ReportFormat) -> Self {
        match format {
            ReportFormat::Csv => Self::Csv,
            ReportFormat::Xlsx => Self::Xlsx,
            ReportFormat::Pdf => Self::Pdf,
        }
    }
}

impl From<ReportFormatGql> for ReportFormat {
    fn from(format: ReportFormatGql) -> Self {
        match format {
            ReportFormatGql::Csv => Self::Csv,
            ReportFormatGql::Xlsx => Self::Xlsx,
            ReportFormatGql::Pdf => Self::Pdf,
        }
    }
}

/// Lifecycle of one report run.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ReportRunStatus")]
pub enum ReportRunStatusGql {
    /// Requested, waiting for the runner.
    Queued,
    /// Being produced.
    Running,
    /// Produced.
    Succeeded,
    /// Gave up; see the run's error.
    Failed,
}

impl From<ReportRunStatus> for ReportRunStatusGql {
    fn from(status: ReportRunStatus) -> Self {
        match status {
            ReportRunStatus::Queued => Self::Queued,
            ReportRunStatus::Running => Self::Running,
            ReportRunStatus::Succeeded => Self::Succeeded,
            ReportRunStatus::Failed => Self::Failed,
        }
    }
}

/// A saved report: what to produce, in which format, and optionally on which schedule.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ReportDefinition {
    /// Stable id.
    pub id: ID,
    /// Display name.
    pub name: String,
    /// What the report is about.
    pub kind: ReportKindGql,
    /// Output format.
    pub format: ReportFormatGql,
    /// Cron expression (5 fields) the report runs on, or null for on-demand reports.
    pub schedule: Option<String>,
    /// Kind-specific parameters (a JSON object).
    pub parameters: Json<Value>,
    /// When the definition was created.
    pub created_at: DateTime<Utc>,
    /// When the definition last changed.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    account_id: Option<Uuid>,
    #[graphql(skip)]
    owner_id: Uuid,
}

impl From<report_definition::Model> for ReportDefinition {
    fn from(row: report_definition::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            kind: ReportKind::from_db(&row.kind).into(),
            format: ReportFormat::from_db(&row.format).into(),
            schedule: row.schedule,
            parameters: Json(row.parameters),
            created_at: row.created_at,
            updated_at: row.updated_at,
            uuid: row.id,
            account_id: row.account_id,
            owner_id: row.owner_id,
        }
    }
}

impl Node for ReportDefinition {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl ReportDefinition {
    /// The account the report is about (resolved by the accounts subgraph), if any.
    async fn account(&self) -> Option<Account> {
        self.account_id.map(Account::stub)
    }

    /// The user who owns the definition (resolved by the identity subgraph).
    async fn owner(&self) -> User {
        User::stub(self.owner_id)
    }

    /// Runs of this report, oldest first.
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ReportRunConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let found = load_page::<RunsByDefinition>(ctx, self.uuid, page).await?;
        Ok(found.map(ReportRun::from).into())
    }
}

portal_kit::connection!(
    ReportDefinitionConnection,
    ReportDefinitionEdge,
    ReportDefinition
);

/// One production of a report definition.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ReportRun {
    /// Stable id.
    pub id: ID,
    /// Lifecycle status.
    pub status: ReportRunStatusGql,
    /// Rows in the produced report, once it succeeded.
    pub row_count: Option<i64>,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// When the run was requested.
    pub created_at: DateTime<Utc>,
    /// When the runner started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it succeeded or failed.
    pub finished_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    definition_id: Uuid,
}

impl From<report_run::Model> for ReportRun {
    fn from(row: report_run::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            status: ReportRunStatus::from_db(&row.status).into(),
            row_count: row.row_count,
            error: row.error,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            uuid: row.id,
            definition_id: row.definition_id,
        }
    }
}

impl Node for ReportRun {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl ReportRun {
    /// The report definition this run produces.
    async fn definition(&self, ctx: &Context<'_>) -> ApiResult<ReportDefinition> {
        load::<DefinitionsById>(ctx, self.definition_id)
            .await?
            .map(ReportDefinition::from)
            .ok_or(ApiError::NotFound("report definition"))
    }
}

portal_kit::connection!(ReportRunConnection, ReportRunEdge, ReportRun);
