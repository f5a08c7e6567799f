//! Data exports of an account (or of a dashboard KPI, over every account the requester
//! sees): what can be exported (datasets and their columns), which exports are produced
//! in the request and which by a job, how a widget's data maps to a dataset, and the
//! download file's name.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use portal_kit::export::{CellKind, Column};
use portal_kit::{ApiError, ApiResult};

use super::layout::{Widget, WidgetKind};
use super::ledger::{EntryFilter, InvoiceFilter};
use super::series::Interval;

/// Exports of at most this many rows are written while the request waits; larger ones by
/// a job (the export is `QUEUED` and the client follows it with `accountExport`).
pub const INLINE_ROWS: u64 = 10_000;

/// Attempts a job gets to produce an export.
pub const JOB_ATTEMPTS: i32 = 3;

/// Exports of one user kept at once, per account (older ones must expire first).
pub const MAX_PENDING: u64 = 5;

/// The job kind that produces large exports.
pub const JOB_KIND: &str = "accounts.export";

/// What an export is of, with the request's validated parameters (stored with the export
/// so a job produces exactly what was asked).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dataset", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Dataset {
    /// Ledger entries, oldest first — or the newest `latest` (a ledger widget).
    LedgerEntries {
        /// Which entries.
        filter: EntryFilter,
        /// The newest this many entries only.
        latest: Option<u64>,
    },
    /// Invoices, oldest first — or the newest `latest` (an invoices widget).
    Invoices {
        /// Which invoices.
        filter: InvoiceFilter,
        /// The newest this many only.
        latest: Option<u64>,
    },
    /// The account's balance now (one row).
    Balance,
    /// The balance at the end of each bucket.
    BalanceHistory(SeriesRequest),
    /// Usage of a metric per bucket.
    Usage {
        /// The metric.
        metric: String,
        /// The buckets.
        #[serde(flatten)]
        series: SeriesRequest,
    },
    /// Ledger entries posted per bucket.
    Activity(SeriesRequest),
    /// A dashboard KPI over every account the requester sees (a `KPI` widget).
    Kpi {
        /// Which KPI.
        kpi: Kpi,
        /// IANA time zone its periods are cut in (`USAGE`: this month and the last).
        time_zone: String,
    },
}

/// A KPI of the dashboard (a `KPI` widget's `kpi` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kpi {
    /// Balances summed per currency.
    Balances,
    /// Open invoices not yet due, owed per currency.
    OpenInvoices,
    /// Open invoices past due, owed per currency.
    OverdueInvoices,
    /// Usage per metric, this month and the last.
    Usage,
}

impl Kpi {
    /// From a widget's `kpi` option.
    pub fn parse(option: &str) -> Option<Self> {
        Some(match option {
            "BALANCES" => Self::Balances,
            "OPEN_INVOICES" => Self::OpenInvoices,
            "OVERDUE_INVOICES" => Self::OverdueInvoices,
            "USAGE" => Self::Usage,
            _ => return None,
        })
    }
}

/// The buckets of a series export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesRequest {
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// Bucket width.
    pub interval: Interval,
    /// IANA time zone the buckets are cut in.
    pub time_zone: String,
}

impl Dataset {
    /// The dataset's name, as stored and in the API.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LedgerEntries { .. } => "LEDGER_ENTRIES",
            Self::Invoices { .. } => "INVOICES",
            Self::Balance => "BALANCE",
            Self::BalanceHistory(_) => "BALANCE_HISTORY",
            Self::Usage { .. } => "USAGE",
            Self::Activity(_) => "ACTIVITY",
            Self::Kpi { kpi, .. } => match kpi {
                Kpi::Balances => "KPI_BALANCES",
                Kpi::OpenInvoices => "KPI_OPEN_INVOICES",
                Kpi::OverdueInvoices => "KPI_OVERDUE_INVOICES",
                Kpi::Usage => "KPI_USAGE",
            },
        }
    }

    /// Checks what a job could otherwise only fail on later: a series' buckets (at most
    /// 1 000, a known time zone) and its metric's name. `BAD_USER_INPUT` naming `field`.
    pub fn check(&self, field: &'static str) -> ApiResult<()> {
        let series = match self {
            Self::BalanceHistory(series) | Self::Activity(series) => series,
            Self::Usage { metric, series } => {
                super::series::metric(field, metric)?;
                series
            }
            Self::Kpi { time_zone, .. } => {
                portal_kit::input::zone(field, time_zone)?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let zone = portal_kit::input::zone(field, &series.time_zone)?;
        super::series::buckets(series.from, series.to, series.interval, zone).map_err(|err| {
            match err {
                ApiError::BadUserInput { message, .. } => ApiError::invalid(field, message),
                other => other,
            }
        })?;
        Ok(())
    }

    /// Whether it is always small (the balance, a chart series of at most 1 000 buckets,
    /// a KPI's few totals): always produced in the request.
    pub fn is_small(&self) -> bool {
        !matches!(self, Self::LedgerEntries { .. } | Self::Invoices { .. })
    }

    /// The account's number names the file; a KPI is of no single account.
    pub fn is_of_account(&self) -> bool {
        !matches!(self, Self::Kpi { .. })
    }

    /// The root selection a download runs again as the downloader, next to
    /// `accountExport(id: $id)`: the fields this dataset's columns come from (the
    /// account's, or the dashboard's), so a role the policies deny them cannot download
    /// the file either (chart fields with a one-day range: only their permission
    /// matters).
    pub fn access_selection(&self) -> String {
        if let Self::Kpi { kpi, .. } = self {
            let fields = match kpi {
                Kpi::Balances => "balances { currency amount count }",
                Kpi::OpenInvoices => "openInvoices { count amountDue { currency amount count } }",
                Kpi::OverdueInvoices => {
                    "overdueInvoices { count amountDue { currency amount count } }"
                }
                Kpi::Usage => {
                    "currentPeriod { start } previousPeriod { start } usage { metric current previous }"
                }
            };
            return format!("dashboard {{ id {fields} }}");
        }
        const DAY: &str =
            "from: \"2000-01-01T00:00:00Z\", to: \"2000-01-02T00:00:00Z\", interval: DAY";
        let fields = match self {
            Self::LedgerEntries { .. } => "ledgerEntries(first: 1) { edges { node { id postedAt kind source amount currency balanceAfter reference description invoice { id } } } }".to_owned(),
            Self::Invoices { .. } => "invoices(first: 1) { edges { node { id number status periodStart periodEnd dueDate issuedAt currency amount amountPaid amountDue } } }".to_owned(),
            Self::Balance => "number balance currency".to_owned(),
            Self::BalanceHistory(_) => format!("balanceHistory({DAY}) {{ points {{ start end value }} }}"),
            Self::Usage { metric, .. } => format!(
                "usage(metric: {}, {DAY}) {{ points {{ start end value }} }}",
                serde_json::Value::String(metric.clone())
            ),
            Self::Activity(_) => format!("activity({DAY}) {{ points {{ start end value }} }}"),
            Self::Kpi { .. } => String::new(),
        };
        format!("accountExport(id: $id) {{ account {{ id {fields} }} }}")
    }

    /// Its columns, in order.
    pub fn columns(&self) -> &'static [Column] {
        match self {
            Self::LedgerEntries { .. } => LEDGER_COLUMNS,
            Self::Invoices { .. } => INVOICE_COLUMNS,
            Self::Balance => BALANCE_COLUMNS,
            Self::BalanceHistory(_) | Self::Usage { .. } => SERIES_COLUMNS,
            Self::Activity(_) => ACTIVITY_COLUMNS,
            Self::Kpi { kpi, .. } => match kpi {
                Kpi::Balances => BALANCES_KPI_COLUMNS,
                Kpi::OpenInvoices | Kpi::OverdueInvoices => INVOICES_KPI_COLUMNS,
                Kpi::Usage => USAGE_KPI_COLUMNS,
            },
        }
    }
}

const LEDGER_COLUMNS: &[Column] = &[
    Column::new("id", CellKind::Text),
    Column::new("postedAt", CellKind::Time),
    Column::new("kind", CellKind::Text),
    Column::new("source", CellKind::Text),
    Column::new("amount", CellKind::Decimal),
    Column::new("currency", CellKind::Text),
    Column::new("balanceAfter", CellKind::Decimal),
    Column::new("reference", CellKind::Text),
    Column::new("description", CellKind::Text),
    Column::new("invoiceId", CellKind::Text),
];

const INVOICE_COLUMNS: &[Column] = &[
    Column::new("id", CellKind::Text),
    Column::new("number", CellKind::Text),
    Column::new("status", CellKind::Text),
    Column::new("periodStart", CellKind::Date),
    Column::new("periodEnd", CellKind::Date),
    Column::new("dueDate", CellKind::Date),
    Column::new("issuedAt", CellKind::Time),
    Column::new("currency", CellKind::Text),
    Column::new("amount", CellKind::Decimal),
    Column::new("amountPaid", CellKind::Decimal),
    Column::new("amountDue", CellKind::Decimal),
];

const BALANCE_COLUMNS: &[Column] = &[
    Column::new("accountNumber", CellKind::Text),
    Column::new("asOf", CellKind::Time),
    Column::new("balance", CellKind::Decimal),
    Column::new("currency", CellKind::Text),
];

const SERIES_COLUMNS: &[Column] = &[
    Column::new("start", CellKind::Time),
    Column::new("end", CellKind::Time),
    Column::new("value", CellKind::Decimal),
];

const ACTIVITY_COLUMNS: &[Column] = &[
    Column::new("start", CellKind::Time),
    Column::new("end", CellKind::Time),
    Column::new("entries", CellKind::Integer),
];

const BALANCES_KPI_COLUMNS: &[Column] = &[
    Column::new("currency", CellKind::Text),
    Column::new("balance", CellKind::Decimal),
    Column::new("accounts", CellKind::Integer),
];

const INVOICES_KPI_COLUMNS: &[Column] = &[
    Column::new("currency", CellKind::Text),
    Column::new("amountDue", CellKind::Decimal),
    Column::new("invoices", CellKind::Integer),
];

const USAGE_KPI_COLUMNS: &[Column] = &[
    Column::new("metric", CellKind::Text),
    Column::new("currentPeriodStart", CellKind::Time),
    Column::new("current", CellKind::Decimal),
    Column::new("previousPeriodStart", CellKind::Time),
    Column::new("previous", CellKind::Decimal),
];

/// How an export is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportStatus {
    /// Waiting for a worker.
    Queued,
    /// Being written.
    Running,
    /// Downloadable.
    Ready,
    /// Gave up (the reason is kept).
    Failed,
    /// Was ready; its file has been deleted.
    Expired,
}

impl ExportStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Ready => "READY",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
        }
    }

    /// From the stored form; a `READY` export whose file is gone reads as `EXPIRED`.
    pub fn of(stored: &str, file_present: bool) -> Self {
        match stored {
            "QUEUED" => Self::Queued,
            "RUNNING" => Self::Running,
            "READY" if file_present => Self::Ready,
            "READY" => Self::Expired,
            _ => Self::Failed,
        }
    }
}

/// The download name: `<account number>-<dataset>-<UTC date and time>.<ext>` (a KPI's:
/// `dashboard-kpi-<kpi>-…`), reduced to characters safe in any file system and header.
pub fn file_name(
    account_number: Option<&str>,
    dataset: &Dataset,
    extension: &str,
    at: DateTime<Utc>,
) -> String {
    let number: String = account_number
        .unwrap_or("dashboard")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{number}-{}-{}.{extension}",
        dataset.name().to_ascii_lowercase().replace('_', "-"),
        at.format("%Y%m%dT%H%M%SZ")
    )
}

/// The dataset a widget shows, as of `now`, and its account (none for a `KPI` widget,
/// which shows the dashboard over every account the requester sees): its binding and
/// options become the export's parameters (a chart's range ends now).
pub fn of_widget(
    widget: &Widget,
    time_zone: &str,
    now: DateTime<Utc>,
) -> ApiResult<(Option<Uuid>, Dataset)> {
    let options = &widget.options;
    let number =
        |name: &str, default: i64| options.get(name).and_then(Value::as_i64).unwrap_or(default);
    let series = || {
        let interval = match options.get("interval").and_then(Value::as_str) {
            Some("HOUR") => Interval::Hour,
            Some("WEEK") => Interval::Week,
            Some("MONTH") => Interval::Month,
            _ => Interval::Day,
        };
        SeriesRequest {
            from: now - Duration::days(number("rangeDays", 30)),
            to: now,
            interval,
            time_zone: time_zone.to_owned(),
        }
    };
    let latest = u64::try_from(number("limit", 10)).ok();
    let dataset = match widget.kind {
        WidgetKind::Kpi => {
            let kpi = options
                .get("kpi")
                .and_then(Value::as_str)
                .and_then(Kpi::parse)
                .ok_or_else(|| ApiError::invalid("input.widgetId", "the widget names no KPI"))?;
            let time_zone = time_zone.to_owned();
            return Ok((None, Dataset::Kpi { kpi, time_zone }));
        }
        WidgetKind::Balance => Dataset::Balance,
        WidgetKind::BalanceHistory => Dataset::BalanceHistory(series()),
        WidgetKind::Usage => Dataset::Usage {
            metric: widget.binding.metric.clone().unwrap_or_default(),
            series: series(),
        },
        WidgetKind::Invoices => Dataset::Invoices {
            filter: InvoiceFilter {
                statuses: options
                    .get("statuses")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                    .unwrap_or_default(),
                ..InvoiceFilter::default()
            },
            latest,
        },
        WidgetKind::Ledger => Dataset::LedgerEntries {
            filter: EntryFilter::default(),
            latest,
        },
    };
    let account_id = widget
        .binding
        .account_id
        .ok_or_else(|| ApiError::invalid("input.widgetId", "the widget names no account"))?;
    Ok((Some(account_id), dataset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            file_name(Some("ACME/001 \"x\""), &Dataset::Balance, "csv", at),
            "ACME_001__x_-balance-20261206T080000Z.csv"
        );
    }

    #[test]
    fn parameters_round_trip_through_storage() -> serde_json::Result<()> {
        let dataset = Dataset::Usage {
            metric: "api_calls".into(),
            series: SeriesRequest {
                from: Utc::now() - Duration::days(1),
                to: Utc::now(),
                interval: Interval::Hour,
                time_zone: "Europe/Berlin".into(),
            },
        };
        let stored = serde_json::to_value(&dataset)?;
        assert_eq!(stored["dataset"], "USAGE");
        assert_eq!(serde_json::from_value::<Dataset>(stored)?, dataset);
        Ok(())
    }
}
