//! Reports' wire types: `ReportDefinition` and `ReportRun` (both `@key(fields: "id")`),
//! their enums and connections.

use async_graphql::{ComplexObject, Context, Enum, ID, Json, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_run};
use portal_kit::context::db;
use portal_kit::loader::{load, load_page};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiError, ApiResult};

use super::federation::{Account, User};
use super::loaders::{DefinitionsById, RunsByDefinition};
use super::query_input::ReportQueryGql;
use crate::domain::kinds;
use crate::domain::query::ReportQuery;
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
    /// Every account's statement of the month before (opening balance, entries, closing
    /// balance, open invoices), a PDF document with a section per account.
    MonthlyStatements,
    /// Every account's usage per metric in the month before, and the month before that.
    UsageSummary,
}

impl From<ReportKind> for ReportKindGql {
    fn from(kind: ReportKind) -> Self {
        match kind {
            ReportKind::AccountStatement => Self::AccountStatement,
            ReportKind::BalanceSummary => Self::BalanceSummary,
            ReportKind::Activity => Self::Activity,
            ReportKind::Custom => Self::Custom,
            ReportKind::MonthlyStatements => Self::MonthlyStatements,
            ReportKind::UsageSummary => Self::UsageSummary,
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
            ReportKindGql::MonthlyStatements => Self::MonthlyStatements,
            ReportKindGql::UsageSummary => Self::UsageSummary,
        }
    }
}

/// File format a report is rendered in.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ReportFormat")]
pub enum ReportFormatGql {
    /// RFC 4180 CSV, UTF-8, formula-injection safe.
    Csv,
    /// An Excel workbook with typed cells, number formats and a frozen header.
    Xlsx,
    /// A paginated PDF table: title, header row on every page, page numbers, embedded fonts.
    Pdf,
    /// A JSON array of objects keyed by column label; decimals as exact strings.
    Json,
    /// Newline-delimited JSON: one such object per line, for large reports (read as a
    /// stream).
    Ndjson,
}

impl From<ReportFormat> for ReportFormatGql {
    fn from(format: ReportFormat) -> Self {
        match format {
            ReportFormat::Csv => Self::Csv,
            ReportFormat::Xlsx => Self::Xlsx,
            ReportFormat::Pdf => Self::Pdf,
            ReportFormat::Json => Self::Json,
            ReportFormat::Ndjson => Self::Ndjson,
        }
    }
}

impl From<ReportFormatGql> for ReportFormat {
    fn from(format: ReportFormatGql) -> Self {
        match format {
            ReportFormatGql::Csv => Self::Csv,
            ReportFormatGql::Xlsx => Self::Xlsx,
            ReportFormatGql::Pdf => Self::Pdf,
            ReportFormatGql::Json => Self::Json,
            ReportFormatGql::Ndjson => Self::Ndjson,
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
    /// IANA time zone the schedule is read in.
    pub time_zone: String,
    /// Whether the schedule is paused.
    pub paused: bool,
    /// Kind-specific parameters (a JSON object).
    pub parameters: Json<Value>,
    /// When the definition was created.
    pub created_at: DateTime<Utc>,
    /// When the definition last changed.
    pub updated_at: DateTime<Utc>,
    /// Goes up whenever what it produces changes (query, parameters, format); each run
    /// records the version it produced.
    pub version: i32,
    #[graphql(skip)]
    saved_query: Option<Value>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    account_id: Option<Uuid>,
    #[graphql(skip)]
    owner_id: Uuid,
    #[graphql(skip)]
    external: Option<super::delivery::ExternalDeliveryConsent>,
}

impl From<report_definition::Model> for ReportDefinition {
    fn from(row: report_definition::Model) -> Self {
        let external = super::delivery::consent(&row);
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            kind: ReportKind::from_db(&row.kind).into(),
            format: ReportFormat::from_db(&row.format).into(),
            schedule: row.schedule,
            time_zone: row.time_zone,
            paused: row.paused,
            parameters: Json(row.parameters),
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version,
            saved_query: row.query,
            uuid: row.id,
            account_id: row.account_id,
            owner_id: row.owner_id,
            external,
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

    /// The user who owns the definition (resolved by the identity subgraph). Runs read the
    /// data as this user, with the roles they hold when the run starts.
    async fn owner(&self) -> User {
        User::stub(self.owner_id)
    }

    /// Who receives its scheduled runs, oldest first.
    async fn recipients(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Vec<super::delivery::ReportRecipient>> {
        let found = load::<super::loaders::RecipientsByDefinition>(ctx, self.uuid).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(super::delivery::ReportRecipient::from)
            .collect())
    }

    /// A tenant admin's consent to deliver it to external addresses; null: not allowed.
    async fn external_delivery(&self) -> Option<super::delivery::ExternalDeliveryConsent> {
        self.external.clone()
    }

    /// When the schedule next starts a run (null for on-demand or paused reports).
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        if self.paused {
            return None;
        }
        crate::domain::next_run(self.schedule.as_deref()?, &self.time_zone, Utc::now())
    }

    /// The schedule in words (`At 06:00 on Monday`), or null for on-demand reports.
    async fn schedule_description(&self) -> Option<String> {
        crate::domain::describe_schedule(self.schedule.as_deref()?)
    }

    /// What the report reads: the saved query of a `CUSTOM` report, the kind's own query
    /// otherwise (null when it cannot be made, e.g. an account report without an account).
    async fn query(&self) -> Option<ReportQueryGql> {
        let saved: Option<ReportQuery> = self
            .saved_query
            .clone()
            .and_then(|q| serde_json::from_value(q).ok());
        let kind = ReportKind::from(self.kind);
        kinds::query_of(kind, saved, self.account_id, &self.parameters.0)
            .ok()
            .map(|q| ReportQueryGql::of(&q))
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
    /// Why it ran: `MANUAL` (asked for), `SCHEDULED` (its schedule came due; read as the
    /// owner), or `DELIVERY` (the same occurrence, produced for one recipient, read as them).
    pub cause: String,
    /// The definition version it produced.
    pub definition_version: Option<i32>,
    /// The format it produced.
    pub format: Option<ReportFormatGql>,
    /// Bytes in its file.
    pub bytes: Option<i64>,
    /// The full reason it failed, with the gateway's errors and their paths (for admins;
    /// `error` is what everyone sees).
    pub error_detail: Option<String>,
    /// The signed integrity manifest of its file, once it succeeded: a JSON document (its
    /// SHA-256, size, rows, report, definition version, when and for whom) signed with the
    /// portal's evidence key. Save it next to the file as `<file>.manifest.json` and check
    /// both offline with `portal verify-report` against the keys published at
    /// `/.well-known/portal-evidence-keys.json`. Kept after the file expires.
    pub manifest: Option<String>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    definition_id: Uuid,
    #[graphql(skip)]
    tenant_id: Uuid,
    #[graphql(skip)]
    requested_by: Option<Uuid>,
    #[graphql(skip)]
    run_as: Option<Uuid>,
    #[graphql(skip)]
    file_id: Option<Uuid>,
    #[graphql(skip)]
    recipient_id: Option<Uuid>,
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
            cause: row.cause,
            definition_version: row.definition_version,
            format: row
                .format
                .as_deref()
                .map(|f| ReportFormat::from_db(f).into()),
            bytes: row.bytes,
            error_detail: row.error_detail,
            manifest: row.manifest,
            uuid: row.id,
            definition_id: row.definition_id,
            tenant_id: row.tenant_id,
            requested_by: row.requested_by,
            run_as: row.run_as,
            file_id: row.file_id,
            recipient_id: row.recipient_id,
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

    /// Who asked for it (null for a scheduled run).
    async fn requested_by(&self) -> Option<User> {
        self.requested_by.map(User::stub)
    }

    /// Whom it read the data as (the definition's owner when it ran).
    async fn run_as(&self) -> Option<User> {
        self.run_as.map(User::stub)
    }

    /// How long it took, once finished.
    async fn duration_ms(&self) -> Option<i64> {
        Some((self.finished_at? - self.started_at?).num_milliseconds())
    }

    /// Where its file was delivered (to recipients, in the app and by email), oldest first.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Vec<super::delivery::ReportDelivery>> {
        let found = load::<super::loaders::DeliveriesByRun>(ctx, self.uuid).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(super::delivery::ReportDelivery::from)
            .collect())
    }

    /// For a `DELIVERY` run: the recipient it was produced for (and read as).
    async fn recipient(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<super::delivery::ReportRecipient>> {
        let Some(id) = self.recipient_id else {
            return Ok(None);
        };
        match crate::store::delivery::recipient(db(ctx)?, self.tenant_id, id).await {
            Ok(found) => Ok(Some(found.into())),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Its file, while it is kept (null before it succeeded and after retention).
    async fn file(&self, ctx: &Context<'_>) -> ApiResult<Option<ReportFile>> {
        let Some(id) = self.file_id else {
            return Ok(None);
        };
        let found = portal_kit::storage::find(db(ctx)?, self.tenant_id, id, Utc::now()).await?;
        Ok(found.map(|row| ReportFile { row }))
    }
}

portal_kit::connection!(ReportRunConnection, ReportRunEdge, ReportRun);

portal_kit::file_object!(
    /// A report run's file.
    ReportFile,
    rows: "Data rows in it (groups, for a grouped report)."
);
