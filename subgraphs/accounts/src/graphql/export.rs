//! Data exports: `exportAccountData` (a ledger range, an invoice list, a chart series or
//! the balance) and `exportWidgetData` (what a saved widget shows, a dashboard KPI
//! included), as CSV, XLSX or JSON; `accountExport` and `Account.exports` to follow them; each ready export's file
//! with its SHA-256, size, row count and a short-lived download link for the caller.
//!
//! Small exports (at most [`INLINE_ROWS`] rows, and every series) are written while the
//! mutation runs and come back `READY`; larger ones come back `QUEUED` and a job writes
//! them. Downloads re-check access: the portal serving `/files/…` asks `accountExport`,
//! as the link's holder with their current roles, before it sends a byte.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::accounts::{account, account_export};
use portal_entities::platform::file;
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::export::Format;
use portal_kit::input;
use portal_kit::scalars::DateTimeArg;
use portal_kit::storage::FileStore;
use portal_kit::{ApiError, ApiResult};

use super::ledger::{InvoiceFilter, LedgerEntryFilter};
use super::series::SeriesInterval;
use super::types::{Account, load_visible};
use crate::domain::export::{self as rules, Dataset, ExportStatus, INLINE_ROWS, SeriesRequest};
use crate::domain::series as series_rules;
use crate::store;
use crate::store::export as export_store;

/// A file format of exports.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ExportFormat {
    /// RFC 4180 CSV, UTF-8, header row; text that would start a spreadsheet formula is
    /// prefixed with `'`.
    Csv,
    /// An Excel workbook with typed cells (numbers, dates) and number formats.
    Xlsx,
    /// A JSON array of objects; decimals as strings (exact).
    Json,
}

impl From<ExportFormat> for Format {
    fn from(format: ExportFormat) -> Self {
        match format {
            ExportFormat::Csv => Self::Csv,
            ExportFormat::Xlsx => Self::Xlsx,
            ExportFormat::Json => Self::Json,
        }
    }
}

/// What an account export holds.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AccountExportDataset {
    /// Ledger entries (`ledgerFilter` applies), oldest first.
    LedgerEntries,
    /// Invoices (`invoiceFilter` applies), oldest first.
    Invoices,
    /// The balance now: one row.
    Balance,
    /// `balanceHistory` over `series`.
    BalanceHistory,
    /// `usage(metric)` over `series`.
    Usage,
    /// `activity` over `series`.
    Activity,
}

/// How an export is doing.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AccountExportStatus {
    /// Waiting for a worker (large exports).
    Queued,
    /// Being written.
    Running,
    /// Its file can be downloaded.
    Ready,
    /// It could not be written (`error` says why).
    Failed,
    /// It was ready; its file has since been deleted (retention).
    Expired,
}

impl From<ExportStatus> for AccountExportStatus {
    fn from(status: ExportStatus) -> Self {
        match status {
            ExportStatus::Queued => Self::Queued,
            ExportStatus::Running => Self::Running,
            ExportStatus::Ready => Self::Ready,
            ExportStatus::Failed => Self::Failed,
            ExportStatus::Expired => Self::Expired,
        }
    }
}

/// The buckets of a series export (as the `balanceHistory`, `usage` and `activity`
/// arguments).
#[derive(InputObject)]
pub struct ExportSeriesInput {
    /// Start of the range.
    pub from: DateTimeArg,
    /// End of the range.
    pub to: DateTimeArg,
    /// Bucket width.
    pub interval: SeriesInterval,
    /// IANA time zone the buckets are cut in (UTC when omitted).
    pub time_zone: Option<String>,
    /// The metric (`USAGE` only).
    pub metric: Option<String>,
}

/// What to export of an account.
#[derive(InputObject)]
pub struct ExportAccountDataInput {
    /// The account (one the caller may see).
    pub account_id: ID,
    /// What to export.
    pub dataset: AccountExportDataset,
    /// The file format.
    pub format: ExportFormat,
    /// Which ledger entries (`LEDGER_ENTRIES` only).
    pub ledger_filter: Option<LedgerEntryFilter>,
    /// Which invoices (`INVOICES` only).
    pub invoice_filter: Option<InvoiceFilter>,
    /// The range and buckets (`BALANCE_HISTORY`, `USAGE`, `ACTIVITY`: required).
    pub series: Option<ExportSeriesInput>,
}

/// Which widget's data to export.
#[derive(InputObject)]
pub struct ExportWidgetDataInput {
    /// One of the caller's saved layouts.
    pub layout_id: ID,
    /// The widget in it.
    pub widget_id: ID,
    /// The file format.
    pub format: ExportFormat,
    /// IANA time zone a chart's buckets are cut in (UTC when omitted).
    pub time_zone: Option<String>,
}

portal_kit::file_object!(
    /// A stored export file.
    ExportFile,
    rows: "Data rows in it (the header excluded)."
);

/// An export of an account's data, requested by the caller.
pub struct AccountExport {
    row: account_export::Model,
    file: Option<file::Model>,
}

#[Object]
impl AccountExport {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// The account exported (null for a dashboard KPI, which covers every account the
    /// caller sees, and if the caller may no longer see it).
    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        let Some(id) = self.row.account_id else {
            return Ok(None);
        };
        Ok(load_visible(ctx, id).await?.map(Account::from))
    }

    /// What it holds: `LEDGER_ENTRIES`, `INVOICES`, `BALANCE`, `BALANCE_HISTORY`, `USAGE`,
    /// `ACTIVITY`, or a dashboard KPI: `KPI_BALANCES`, `KPI_OPEN_INVOICES`,
    /// `KPI_OVERDUE_INVOICES`, `KPI_USAGE`.
    async fn dataset(&self) -> &str {
        &self.row.dataset
    }

    /// Its format.
    async fn format(&self) -> ExportFormat {
        match Format::from_db(&self.row.format) {
            Some(Format::Xlsx) => ExportFormat::Xlsx,
            Some(Format::Json) => ExportFormat::Json,
            _ => ExportFormat::Csv,
        }
    }

    /// How it is doing.
    async fn status(&self) -> AccountExportStatus {
        ExportStatus::of(&self.row.status, self.file.is_some()).into()
    }

    /// Data rows written (once ready).
    async fn row_count(&self) -> Option<i64> {
        self.row.row_count
    }

    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.row.error.as_deref()
    }

    /// When it was requested.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When it was ready or failed.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.finished_at
    }

    /// Its file, while it is `READY`.
    async fn file(&self) -> Option<ExportFile> {
        self.file.clone().map(|row| ExportFile { row })
    }
}

fn file_store<'c>(ctx: &'c Context<'_>) -> ApiResult<&'c FileStore> {
    ctx.data::<FileStore>()
        .map_err(|_| ApiError::internal("file store missing from schema data"))
}

/// The export with its file (if ready and not expired).
async fn with_file(ctx: &Context<'_>, row: account_export::Model) -> ApiResult<AccountExport> {
    let file = export_store::file_of(db(ctx)?, &row, Utc::now()).await?;
    Ok(AccountExport { row, file })
}

/// `Query.accountExport`: one of the caller's own exports (of an account it may still
/// see, or of a dashboard KPI).
pub async fn account_export(ctx: &Context<'_>, id: &ID) -> ApiResult<Option<AccountExport>> {
    let id = input::id("id", id)?;
    let caller = actor(ctx).principal()?;
    let row = match export_store::export_in(db(ctx)?, tenant_of(ctx)?, id).await {
        Ok(row) => row,
        Err(ApiError::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err),
    };
    if row.requested_by != caller {
        return Ok(None);
    }
    if let Some(account) = row.account_id
        && load_visible(ctx, account).await?.is_none()
    {
        return Ok(None);
    }
    Ok(Some(with_file(ctx, row).await?))
}

/// `Account.exports`: the caller's exports of the (visible) account, newest first.
pub async fn exports_of(
    ctx: &Context<'_>,
    account_id: Uuid,
    first: Option<i32>,
) -> ApiResult<Vec<AccountExport>> {
    let first = match first {
        None => 10,
        Some(n @ 1..=50) => n as u64,
        Some(_) => return Err(ApiError::invalid("first", "must be between 1 and 50")),
    };
    let caller = actor(ctx).principal()?;
    let (db, tenant) = (db(ctx)?, tenant_of(ctx)?);
    let rows = export_store::exports_of(db, tenant, account_id, caller, first).await?;
    let file_ids = rows.iter().filter_map(|row| row.file_id);
    let mut files = portal_kit::storage::find_many(db, tenant, file_ids, Utc::now()).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let file = row.file_id.and_then(|id| files.remove(&id));
            AccountExport { row, file }
        })
        .collect())
}

/// Validates what `exportAccountData` asks for.
fn dataset_of(input: ExportAccountDataInput) -> ApiResult<Dataset> {
    use AccountExportDataset as D;
    let only = |given: bool, field: &'static str, datasets: &str| {
        if given {
            Err(ApiError::invalid(
                field,
                format!("applies to {datasets} only"),
            ))
        } else {
            Ok(())
        }
    };
    let is_series = matches!(input.dataset, D::BalanceHistory | D::Usage | D::Activity);
    only(
        input.ledger_filter.is_some() && input.dataset != D::LedgerEntries,
        "input.ledgerFilter",
        "LEDGER_ENTRIES",
    )?;
    only(
        input.invoice_filter.is_some() && input.dataset != D::Invoices,
        "input.invoiceFilter",
        "INVOICES",
    )?;
    only(
        input.series.is_some() && !is_series,
        "input.series",
        "BALANCE_HISTORY, USAGE and ACTIVITY",
    )?;
    let series = |input: &ExportSeriesInput| -> ApiResult<SeriesRequest> {
        let from = input.from.parse("input.series.from")?;
        let to = input.to.parse("input.series.to")?;
        let zone = input::zone(
            "input.series.timeZone",
            input.time_zone.as_deref().unwrap_or("UTC"),
        )?;
        // Cut once now: a range of too many buckets is refused here, not in a job.
        series_rules::buckets(from, to, input.interval.into(), zone)?;
        Ok(SeriesRequest {
            from,
            to,
            interval: input.interval.into(),
            time_zone: zone.name().to_owned(),
        })
    };
    let needs_series = || {
        input
            .series
            .as_ref()
            .ok_or_else(|| ApiError::invalid("input.series", "is required for this dataset"))
    };
    Ok(match input.dataset {
        D::LedgerEntries => Dataset::LedgerEntries {
            filter: input.ledger_filter.unwrap_or_default().validate()?,
            latest: None,
        },
        D::Invoices => Dataset::Invoices {
            filter: input.invoice_filter.unwrap_or_default().validate()?,
            latest: None,
        },
        D::Balance => Dataset::Balance,
        D::BalanceHistory => Dataset::BalanceHistory(series(needs_series()?)?),
        D::Activity => Dataset::Activity(series(needs_series()?)?),
        D::Usage => {
            let given = needs_series()?;
            let metric = given
                .metric
                .as_deref()
                .ok_or_else(|| ApiError::invalid("input.series.metric", "is required for USAGE"))?;
            Dataset::Usage {
                metric: series_rules::metric("input.series.metric", metric)?,
                series: series(given)?,
            }
        }
    })
}

/// Starts an export of `dataset` of the visible account `account_id` (none: a dashboard
/// KPI over the accounts the caller sees): written now when small, else queued for a
/// job.
async fn start(
    ctx: &Context<'_>,
    account_id: Option<Uuid>,
    dataset: Dataset,
    format: Format,
) -> ApiResult<AccountExport> {
    let db = db(ctx)?;
    let account: Option<account::Model> = match account_id {
        Some(id) => Some(
            load_visible(ctx, id)
                .await?
                .ok_or(ApiError::NotFound("account"))?,
        ),
        None => None,
    };
    let in_request = match &account {
        _ if dataset.is_small() => true,
        Some(account) => {
            let rows = export_store::count_up_to(db, account, &dataset, INLINE_ROWS + 1).await?;
            rows <= INLINE_ROWS
        }
        None => {
            return Err(ApiError::internal(
                "an account's dataset without its account",
            ));
        }
    };
    let (actor, meta) = (actor(ctx), meta(ctx));
    let row = export_store::request(
        db,
        actor,
        meta,
        account.as_ref(),
        &dataset,
        format,
        in_request,
    )
    .await?;
    if !in_request {
        return Ok(AccountExport { row, file: None });
    }
    // Written by a task of its own: a client that hangs up does not leave it half done.
    let files = file_store(ctx)?.clone();
    let (db, actor, meta) = (db.clone(), actor.clone(), meta.clone());
    let written = tokio::spawn(async move {
        let produced =
            export_store::produce(&db, &files, &actor, &meta, &row, account.as_ref()).await;
        if let Err(err) = &produced {
            tracing::error!(export = %row.id, ?err, "writing an export failed");
            let reason = "the export could not be written";
            if let Err(err) = export_store::fail(&db, &actor, &meta, &row, reason).await {
                tracing::error!(export = %row.id, ?err, "recording a failed export failed");
            }
        }
        produced
    })
    .await
    .map_err(|err| ApiError::internal(format!("writing an export: {err}")))??;
    with_file(ctx, written).await
}

/// `Mutation.exportAccountData`.
pub async fn export_account_data(
    ctx: &Context<'_>,
    input: ExportAccountDataInput,
) -> ApiResult<AccountExport> {
    let account_id = input::id("input.accountId", &input.account_id)?;
    let format = input.format.into();
    let dataset = dataset_of(input)?;
    start(ctx, Some(account_id), dataset, format).await
}

/// `Mutation.exportWidgetData`: exports what a widget of one of the caller's layouts
/// shows, as of now (a KPI widget: the dashboard's totals over the accounts the caller
/// sees).
pub async fn export_widget_data(
    ctx: &Context<'_>,
    input: ExportWidgetDataInput,
) -> ApiResult<AccountExport> {
    let layout_id = input::id("input.layoutId", &input.layout_id)?;
    let widget_id = input::id("input.widgetId", &input.widget_id)?;
    let zone = input::zone(
        "input.timeZone",
        input.time_zone.as_deref().unwrap_or("UTC"),
    )?;
    let (tenant, caller) = (tenant_of(ctx)?, actor(ctx).principal()?);
    let layout = store::layout::own_layout(db(ctx)?, tenant, caller, layout_id).await?;
    let widget = store::layout::widgets_of(&layout)
        .into_iter()
        .find(|w| w.id == widget_id)
        .ok_or(ApiError::NotFound("widget"))?;
    let (account_id, dataset) = rules::of_widget(&widget, zone.name(), Utc::now())?;
    dataset.check("input.widgetId")?;
    start(ctx, account_id, dataset, input.format.into()).await
}

/// Export mutations.
#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// Exports an account's ledger entries, invoices, balance or a chart series as CSV,
    /// XLSX or JSON. Up to 10 000 rows (and every series) come back `READY` with the file;
    /// larger exports come back `QUEUED`: follow them with `accountExport(id)`.
    /// `BAD_USER_INPUT` for options that do not apply to the dataset; `CONFLICT` when five
    /// of the caller's exports are still waiting.
    async fn export_account_data(
        &self,
        ctx: &Context<'_>,
        input: ExportAccountDataInput,
    ) -> ApiResult<AccountExport> {
        export_account_data(ctx, input).await
    }

    /// Exports the data a widget of one of the caller's saved layouts shows (charts: the
    /// widget's range ending now, in `timeZone`; a KPI widget: its `dashboard` totals over
    /// every account the caller sees, usage periods cut in `timeZone`).
    async fn export_widget_data(
        &self,
        ctx: &Context<'_>,
        input: ExportWidgetDataInput,
    ) -> ApiResult<AccountExport> {
        export_widget_data(ctx, input).await
    }
}
