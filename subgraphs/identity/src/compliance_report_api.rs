//! SOC 2 compliance reports through GraphQL: auditors (and tenant admins, who inherit the
//! role) ask for a report of one kind over a period, follow it, and download a zip of the
//! report and its signed integrity manifest.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::identity::compliance_report;
use portal_entities::platform::file;
use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta};
use portal_kit::export::Format;
use portal_kit::input;
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::scalars::DateTimeArg;

use crate::compliance_reports::{self, ReportKind, status};

portal_kit::file_object!(
    /// A compliance report: a zip of the report (`<kind>.csv` or `.pdf`), a
    /// `manifest.json` signed with the evidence key (the report's SHA-256, period, SOC 2
    /// criteria, the audit chain's head), `keys.json` and a `README.md` on checking it.
    ComplianceReportFile,
    rows: "Rows in the report."
);

/// A SOC 2 report.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ComplianceReportKind {
    /// Every user with status, roles, last sign-in, second factor and SSO links, as the
    /// report is made (CC6.2, CC6.3).
    AccessReview,
    /// Changes of the period to who may do what and to the tenant's configuration
    /// (CC6.1, CC7.2, CC8.1).
    PrivilegedActions,
    /// Policy rules added and removed in the period (CC8.1).
    PolicyChanges,
    /// Failed sign-ins, step-ups and second factors, and lockouts, of the period (CC6.1,
    /// CC7.2).
    SignInFailures,
    /// Keys and secrets created, rotated, revoked and destroyed in the period (CC6.1,
    /// CC6.7).
    KeyRotations,
}

impl From<ComplianceReportKind> for ReportKind {
    fn from(kind: ComplianceReportKind) -> Self {
        match kind {
            ComplianceReportKind::AccessReview => Self::AccessReview,
            ComplianceReportKind::PrivilegedActions => Self::PrivilegedActions,
            ComplianceReportKind::PolicyChanges => Self::PolicyChanges,
            ComplianceReportKind::SignInFailures => Self::SignInFailures,
            ComplianceReportKind::KeyRotations => Self::KeyRotations,
        }
    }
}

impl From<ReportKind> for ComplianceReportKind {
    fn from(kind: ReportKind) -> Self {
        match kind {
            ReportKind::AccessReview => Self::AccessReview,
            ReportKind::PrivilegedActions => Self::PrivilegedActions,
            ReportKind::PolicyChanges => Self::PolicyChanges,
            ReportKind::SignInFailures => Self::SignInFailures,
            ReportKind::KeyRotations => Self::KeyRotations,
        }
    }
}

/// The file format of a compliance report.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ComplianceReportFormat {
    /// Comma-separated values (RFC 4180), for spreadsheets and scripts.
    Csv,
    /// A paginated PDF table, for reading and filing.
    Pdf,
}

/// Where a compliance report is.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ComplianceReportStatus {
    /// Waiting for a worker.
    Queued,
    /// Being built.
    Running,
    /// Built: `file` holds it.
    Ready,
    /// It could not be built (`failure` says why).
    Failed,
}

/// Input of `requestComplianceReport`.
#[derive(InputObject)]
pub struct RequestComplianceReportInput {
    /// Which report.
    pub kind: ComplianceReportKind,
    /// The period's start (inclusive; not in the future).
    pub from: DateTimeArg,
    /// The period's end (exclusive; at most 400 days after `from`).
    pub to: DateTimeArg,
    /// CSV (the default) or PDF.
    pub format: Option<ComplianceReportFormat>,
}

/// A requested compliance report of the tenant.
pub struct ComplianceReport {
    row: compliance_report::Model,
    file: Option<file::Model>,
}

#[Object]
impl ComplianceReport {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Which report.
    async fn kind(&self) -> Option<ComplianceReportKind> {
        ReportKind::from_db(&self.row.kind).map(ComplianceReportKind::from)
    }

    /// The period's start.
    async fn from(&self) -> DateTime<Utc> {
        self.row.period_from
    }

    /// The period's end (exclusive).
    async fn to(&self) -> DateTime<Utc> {
        self.row.period_to
    }

    /// Its format.
    async fn format(&self) -> ComplianceReportFormat {
        if self.row.format == Format::Pdf.as_str() {
            ComplianceReportFormat::Pdf
        } else {
            ComplianceReportFormat::Csv
        }
    }

    /// Where it is.
    async fn status(&self) -> ComplianceReportStatus {
        match self.row.status.as_str() {
            status::QUEUED => ComplianceReportStatus::Queued,
            status::RUNNING => ComplianceReportStatus::Running,
            status::READY => ComplianceReportStatus::Ready,
            _ => ComplianceReportStatus::Failed,
        }
    }

    /// Who asked for it.
    async fn requested_by(&self) -> Option<ID> {
        self.row.requested_by.map(|id| ID(id.to_string()))
    }

    /// When it was asked for.
    async fn requested_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When it was built or failed.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.finished_at
    }

    /// Rows in the report.
    async fn rows(&self) -> Option<i64> {
        self.row.row_count
    }

    /// Why it failed.
    async fn failure(&self) -> Option<&str> {
        self.row.failure.as_deref()
    }

    /// The zip, once ready and while it is kept.
    async fn file(&self) -> Option<ComplianceReportFile> {
        self.file.clone().map(|row| ComplianceReportFile { row })
    }
}

impl Node for ComplianceReport {
    fn cursor_id(&self) -> Uuid {
        self.row.id
    }
}

portal_kit::connection!(
    ComplianceReportConnection,
    ComplianceReportEdge,
    ComplianceReport
);

async fn with_file(
    db: &sea_orm::DatabaseConnection,
    row: compliance_report::Model,
) -> ApiResult<ComplianceReport> {
    let file = compliance_reports::file_of(db, &row).await?;
    Ok(ComplianceReport { row, file })
}

/// Compliance report queries.
#[derive(Default)]
pub struct ComplianceReportQuery;

#[Object]
impl ComplianceReportQuery {
    /// One compliance report of the caller's tenant (auditors and tenant admins).
    async fn compliance_report(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ComplianceReport> {
        let id = input::id("id", &id)?;
        let db = db(ctx)?;
        let row = compliance_reports::find(db, actor(ctx).tenant()?, id).await?;
        with_file(db, row).await
    }

    /// The caller's tenant's compliance reports, oldest first.
    async fn compliance_reports(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ComplianceReportConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let db = db(ctx)?;
        let rows = compliance_reports::list(db, actor(ctx).tenant()?, page).await?;
        Ok(rows.try_map(|row| with_file(db, row)).await?.into())
    }
}

/// Compliance report mutations.
#[derive(Default)]
pub struct ComplianceReportMutation;

#[Object]
impl ComplianceReportMutation {
    /// Asks for a SOC 2 report of the caller's tenant over a period, built by a job
    /// (follow `complianceReport(id)` until `READY`). `BAD_USER_INPUT` for an empty,
    /// future or longer than 400-day period; `CONFLICT` while five are being built.
    async fn request_compliance_report(
        &self,
        ctx: &Context<'_>,
        input: RequestComplianceReportInput,
    ) -> ApiResult<ComplianceReport> {
        let from = input.from.parse("input.from")?;
        let to = input.to.parse("input.to")?;
        let format = match input.format.unwrap_or(ComplianceReportFormat::Csv) {
            ComplianceReportFormat::Csv => Format::Csv,
            ComplianceReportFormat::Pdf => Format::Pdf,
        };
        let row = compliance_reports::request(
            db(ctx)?,
            (actor(ctx), meta(ctx)),
            input.kind.into(),
            (from, to),
            format,
        )
        .await?;
        Ok(ComplianceReport { row, file: None })
    }
}
