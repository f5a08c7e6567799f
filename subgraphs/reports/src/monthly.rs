//! The monthly documents tenants switch on — statements and a usage summary — for the
//! calendar month before the run, in the report's time zone. Like every run they read
//! through the gateway as their reader (the owner, or a recipient), so each reader gets
//! the accounts, amounts and usage they may see, and nothing here reads another domain's
//! tables.
//!
//! - **Statements** (`MONTHLY_STATEMENTS`, PDF): for every account the reader sees, a
//!   section starting a page — period, owner, currency, opening balance; the month's
//!   ledger entries with a running balance; the closing balance; the invoices open when
//!   it runs. Closing = current balance − entries posted since the month ended; opening =
//!   closing − the month's entries: exact, and the same whatever order entries were
//!   recorded in.
//! - **Usage summary** (`USAGE_SUMMARY`, any format): one row per account and metric with
//!   the month's quantity and the month before's.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use portal_kit::export::{Cell, CellKind, Column, Format, Heading, PdfDocument, TableWriter};
use portal_kit::gateway_client::GatewayClient;
use portal_kit::storage::{FileStore, object_key};
use portal_kit::{Actor, RequestMeta};

use crate::engine::{Failure, PAGE, Produced, refusal};

/// What a download of a statements file re-checks as the downloader (see
/// `Compiled::access_selection`): every field the statements read.
pub const STATEMENTS_ACCESS: &str = "accounts(first: 1) { edges { node { number name currency \
    balance owner { displayName } \
    ledgerEntries(first: 1) { edges { node { postedAt kind reference description amount } } } \
    invoices(first: 1) { edges { node { number issuedAt dueDate amount amountDue status } } } } } }";

/// What a download of a usage summary re-checks as the downloader.
pub const USAGE_ACCESS: &str = "accounts(first: 1) { edges { node { number name usageMetrics } } }";

/// A calendar month in a time zone: `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Month {
    /// Its first instant.
    pub start: DateTime<Utc>,
    /// The first instant of the next month.
    pub end: DateTime<Utc>,
    /// Its first and last day, as shown.
    pub days: (NaiveDate, NaiveDate),
    /// The zone it is cut in.
    pub zone: Tz,
}

impl Month {
    /// The month `year`-`month` in `zone`.
    pub fn of(year: i32, month: u32, zone: Tz) -> Option<Self> {
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        // Midnight exists on the 1st in every zone chrono-tz knows except a few historic
        // ones; `earliest` takes the first of an ambiguous pair.
        let local = |day: NaiveDate| {
            zone.from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
                .earliest()
                .map(|at| at.with_timezone(&Utc))
        };
        Some(Self {
            start: local(first)?,
            end: local(next)?,
            days: (first, next.pred_opt()?),
            zone,
        })
    }

    /// The whole month before the one `now` falls in, in `zone`; or the month `YYYY-MM`
    /// that `parameters.month` names.
    pub fn to_report(now: DateTime<Utc>, zone: Tz, parameters: &Value) -> Option<Self> {
        if let Some((year, month)) = parameters["month"]
            .as_str()
            .and_then(|text| text.split_once('-'))
            .and_then(|(y, m)| Some((y.parse().ok()?, m.parse().ok()?)))
        {
            return Self::of(year, month, zone);
        }
        let local = now.with_timezone(&zone);
        let (year, month) = if local.month() == 1 {
            (local.year() - 1, 12)
        } else {
            (local.year(), local.month() - 1)
        };
        Self::of(year, month, zone)
    }

    /// The month before this one.
    fn previous(&self) -> Option<Self> {
        let (year, month) = if self.days.0.month() == 1 {
            (self.days.0.year() - 1, 12)
        } else {
            (self.days.0.year(), self.days.0.month() - 1)
        };
        Self::of(year, month, self.zone)
    }

    /// `1 Nov 2026 – 30 Nov 2026 (Europe/Paris)`.
    pub fn label(&self) -> String {
        format!(
            "{} – {} ({})",
            self.days.0.format("%-d %b %Y"),
            self.days.1.format("%-d %b %Y"),
            self.zone.name()
        )
    }
}

async fn ask(
    gateway: &dyn GatewayClient,
    (actor, meta): (&Actor, &RequestMeta),
    query: &str,
    variables: Value,
) -> Result<Value, Failure> {
    let variables = match variables {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let response = gateway
        .query(actor, meta, query, variables)
        .await
        .map_err(|err| Failure::from(&err))?;
    if !response.errors.is_empty() {
        return Err(refusal(&response.errors));
    }
    Ok(response.data.unwrap_or_default())
}

/// Every node of a connection at `path` (from the data's root) of `query`, page by page
/// (`$after`), each handed to `each` as it comes.
async fn each_node(
    gateway: &dyn GatewayClient,
    reader: (&Actor, &RequestMeta),
    (query, path): (&str, &[&str]),
    variables: &Value,
    mut each: impl FnMut(&Value) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut after = Value::Null;
    loop {
        let mut variables = variables.clone();
        variables["after"] = after;
        let data = ask(gateway, reader, query, variables).await?;
        let mut connection = &data;
        for field in path {
            connection = &connection[*field];
        }
        if connection.is_null() {
            return Err(Failure::permanent(
                "the data is not visible to the user the report runs as",
                format!("`{}` was null", path.join(".")),
            ));
        }
        for edge in connection["edges"].as_array().into_iter().flatten() {
            each(&edge["node"])?;
        }
        match connection["pageInfo"]["endCursor"].as_str() {
            Some(cursor) if connection["pageInfo"]["hasNextPage"] == json!(true) => {
                after = Value::String(cursor.to_owned());
            }
            _ => return Ok(()),
        }
    }
}

const ACCOUNTS: &str = "query MonthlyAccounts($first: Int!, $after: String) {
  accounts(first: $first, after: $after) {
    edges { node { id number name currency balance owner { displayName } } }
    pageInfo { hasNextPage endCursor }
  }
}";

const ENTRIES: &str = "query StatementEntries($id: ID!, $from: DateTime!, $first: Int!, $after: String) {
  account(id: $id) {
    ledgerEntries(first: $first, after: $after, filter: { postedFrom: $from }, orderBy: POSTED_AT_ASC) {
      edges { node { postedAt kind reference description amount } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

const OPEN_INVOICES: &str = "query StatementInvoices($id: ID!, $first: Int!, $after: String) {
  account(id: $id) {
    invoices(first: $first, after: $after, filter: { statuses: [OPEN, OVERDUE] }, orderBy: ISSUED_AT_ASC) {
      edges { node { number issuedAt dueDate amount amountDue status } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

fn decimal(value: &Value) -> Decimal {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_default()
}

fn text(value: &Value) -> Cell {
    value
        .as_str()
        .map_or(Cell::Empty, |text| Cell::Text(text.to_owned()))
}

fn instant(value: &Value, zone: Tz) -> Option<DateTime<FixedOffset>> {
    let at = DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
    Some(at.with_timezone(&zone).fixed_offset())
}

fn date(value: &Value) -> Cell {
    value
        .as_str()
        .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .map_or(Cell::Empty, Cell::Date)
}

fn written(err: std::io::Error) -> Failure {
    Failure::writing(err)
}

/// The accounts the reader sees, a page at a time.
struct Accounts {
    after: Value,
    done: bool,
}

impl Accounts {
    fn new() -> Self {
        Self {
            after: Value::Null,
            done: false,
        }
    }

    /// The next page (`None` after the last).
    async fn next(
        &mut self,
        gateway: &dyn GatewayClient,
        reader: (&Actor, &RequestMeta),
    ) -> Result<Option<Vec<Value>>, Failure> {
        if self.done {
            return Ok(None);
        }
        let variables = json!({ "first": PAGE, "after": self.after });
        let data = ask(gateway, reader, ACCOUNTS, variables).await?;
        let connection = &data["accounts"];
        match connection["pageInfo"]["endCursor"].as_str() {
            Some(cursor) if connection["pageInfo"]["hasNextPage"] == json!(true) => {
                self.after = Value::String(cursor.to_owned());
            }
            _ => self.done = true,
        }
        Ok(Some(
            connection["edges"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|edge| edge["node"].clone())
                .collect(),
        ))
    }
}

/// Writes the statements of `month` for every account the reader sees into the store;
/// rows = statements.
pub async fn produce_statements(
    gateway: &dyn GatewayClient,
    files: &FileStore,
    reader: (&Actor, &RequestMeta),
    (month, heading): (&Month, Heading),
    (tenant_id, file_id): (Uuid, Uuid),
) -> Result<Produced, Failure> {
    let scratch = files.scratch("pdf");
    let mut doc = PdfDocument::create(scratch.path(), heading).map_err(written)?;
    let zone = month.zone;
    let entry_columns = [
        Column::new("Posted", CellKind::Time),
        Column::new("Kind", CellKind::Text),
        Column::new("Reference", CellKind::Text),
        Column::new("Description", CellKind::Text),
        Column::new("Amount", CellKind::Decimal),
        Column::new("Balance", CellKind::Decimal),
    ];
    let invoice_columns = [
        Column::new("Invoice", CellKind::Text),
        Column::new("Issued", CellKind::Time),
        Column::new("Due", CellKind::Date),
        Column::new("Amount", CellKind::Decimal),
        Column::new("Amount due", CellKind::Decimal),
        Column::new("Status", CellKind::Text),
    ];
    let mut statements = 0u64;
    let mut pages = Accounts::new();
    while let Some(page) = pages.next(gateway, reader).await? {
        for account in page {
            statements += 1;
            let id = account["id"].clone();
            if account["balance"].is_null() {
                return Err(Failure::permanent(
                    "the user the report runs as may not read `balance`",
                    format!("Account {} balance was null", account["number"]),
                ));
            }
            // Entries since the month began: the month's, and those after it (to step back
            // from today's balance to the month's close).
            let mut within = Vec::new();
            let mut since_end = Decimal::ZERO;
            each_node(
                gateway,
                reader,
                (ENTRIES, &["account", "ledgerEntries"]),
                &json!({ "id": id, "from": month.start.to_rfc3339(), "first": PAGE }),
                |entry| {
                    let at = instant(&entry["postedAt"], zone);
                    if at.is_some_and(|at| at.with_timezone(&Utc) >= month.end) {
                        since_end += decimal(&entry["amount"]);
                    } else {
                        within.push(entry.clone());
                    }
                    Ok(())
                },
            )
            .await?;
            let closing = decimal(&account["balance"]) - since_end;
            let moved: Decimal = within.iter().map(|e| decimal(&e["amount"])).sum();
            let opening = closing - moved;
            let currency = account["currency"].as_str().unwrap_or_default().to_owned();
            let money = |amount: Decimal| format!("{} {currency}", amount.round_dp(2));
            doc.section(
                &format!(
                    "{} — {}",
                    account["number"].as_str().unwrap_or_default(),
                    account["name"].as_str().unwrap_or_default()
                ),
                &[
                    ("Period".into(), month.label()),
                    (
                        "Account owner".into(),
                        account["owner"]["displayName"]
                            .as_str()
                            .unwrap_or("—")
                            .to_owned(),
                    ),
                    ("Opening balance".into(), money(opening)),
                    ("Closing balance".into(), money(closing)),
                ],
            )
            .map_err(written)?;
            if within.is_empty() {
                doc.line("No entries this month.", false).map_err(written)?;
            } else {
                doc.table(&entry_columns).map_err(written)?;
                let mut balance = opening;
                for entry in &within {
                    let amount = decimal(&entry["amount"]);
                    balance += amount;
                    doc.row(&[
                        instant(&entry["postedAt"], zone).map_or(Cell::Empty, Cell::Time),
                        text(&entry["kind"]),
                        text(&entry["reference"]),
                        text(&entry["description"]),
                        Cell::Decimal(amount),
                        Cell::Decimal(balance),
                    ])
                    .map_err(written)?;
                }
                doc.end_table();
            }
            doc.line(&format!("Closing balance: {}", money(closing)), true)
                .map_err(written)?;
            let mut open = Vec::new();
            each_node(
                gateway,
                reader,
                (OPEN_INVOICES, &["account", "invoices"]),
                &json!({ "id": id, "first": PAGE }),
                |invoice| {
                    open.push(vec![
                        text(&invoice["number"]),
                        instant(&invoice["issuedAt"], zone).map_or(Cell::Empty, Cell::Time),
                        date(&invoice["dueDate"]),
                        Cell::Decimal(decimal(&invoice["amount"])),
                        Cell::Decimal(decimal(&invoice["amountDue"])),
                        text(&invoice["status"]),
                    ]);
                    Ok(())
                },
            )
            .await?;
            if open.is_empty() {
                doc.line("No open invoices.", false).map_err(written)?;
            } else {
                doc.line("Open invoices", true).map_err(written)?;
                doc.table(&invoice_columns).map_err(written)?;
                for row in &open {
                    doc.row(row).map_err(written)?;
                }
                doc.end_table();
            }
        }
    }
    if statements == 0 {
        doc.section("No accounts", &[("Period".into(), month.label())])
            .map_err(written)?;
        doc.line("There is no account to make a statement of.", false)
            .map_err(written)?;
    }
    tokio::task::spawn_blocking(move || doc.finish())
        .await
        .map_err(|err| written(std::io::Error::other(err)))?
        .map_err(written)?;
    let stored = files
        .put(&object_key("reports", tenant_id, file_id), scratch.path())
        .await
        .map_err(|err| Failure::from(&err))?;
    Ok(Produced {
        stored,
        rows: statements,
    })
}

const USAGE: &str = "query MonthlyUsage($id: ID!, $metric: String!, $from: DateTime!, $to: DateTime!, $before: DateTime!, $zone: String!) {
  account(id: $id) {
    month: usage(metric: $metric, from: $from, to: $to, interval: DAY, timeZone: $zone) { points { value } }
    previous: usage(metric: $metric, from: $before, to: $from, interval: DAY, timeZone: $zone) { points { value } }
  }
}";

const METRICS: &str = "query UsageMetrics($id: ID!) { account(id: $id) { usageMetrics } }";

/// Writes the usage summary of `month` (one row per account the reader sees and metric)
/// in `format` into the store; rows = table rows.
pub async fn produce_usage_summary(
    gateway: &dyn GatewayClient,
    files: &FileStore,
    reader: (&Actor, &RequestMeta),
    (month, heading, format): (&Month, Heading, Format),
    (tenant_id, file_id): (Uuid, Uuid),
) -> Result<Produced, Failure> {
    let before = month.previous().ok_or_else(|| {
        Failure::permanent("the month before cannot be computed", "no previous month")
    })?;
    let scratch = files.scratch(format.extension());
    let columns = [
        Column::new("Account", CellKind::Text),
        Column::new("Name", CellKind::Text),
        Column::new("Metric", CellKind::Text),
        Column::new("Quantity", CellKind::Decimal),
        Column::new("Month before", CellKind::Decimal),
    ];
    let mut table =
        TableWriter::create_with(format, scratch.path(), &columns, heading).map_err(written)?;
    let sum = |series: &Value| -> Decimal {
        series["points"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| decimal(&p["value"]))
            .sum()
    };
    let mut pages = Accounts::new();
    while let Some(page) = pages.next(gateway, reader).await? {
        for account in page {
            let id = account["id"].clone();
            let metrics = ask(gateway, reader, METRICS, json!({ "id": id })).await?;
            for metric in metrics["account"]["usageMetrics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let usage = ask(
                    gateway,
                    reader,
                    USAGE,
                    json!({
                        "id": id, "metric": metric,
                        "from": month.start.to_rfc3339(), "to": month.end.to_rfc3339(),
                        "before": before.start.to_rfc3339(), "zone": month.zone.name(),
                    }),
                )
                .await?;
                table
                    .row(&[
                        text(&account["number"]),
                        text(&account["name"]),
                        text(metric),
                        Cell::Decimal(sum(&usage["account"]["month"])),
                        Cell::Decimal(sum(&usage["account"]["previous"])),
                    ])
                    .map_err(written)?;
            }
        }
    }
    let rows = tokio::task::spawn_blocking(move || table.finish())
        .await
        .map_err(|err| written(std::io::Error::other(err)))?
        .map_err(written)?;
    let stored = files
        .put(&object_key("reports", tenant_id, file_id), scratch.path())
        .await
        .map_err(|err| Failure::from(&err))?;
    Ok(Produced { stored, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_month_reported_is_the_one_before_in_the_reports_zone() {
        let zone: Tz = "Europe/Paris".parse().unwrap_or(Tz::UTC);
        // 1 Dec 00:30 in Paris is still 30 Nov in UTC: the month reported is November.
        let now = Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 30, 0)
            .single()
            .unwrap_or_default();
        let month = Month::to_report(now, zone, &json!({})).unwrap_or_else(|| unreachable!());
        assert_eq!(
            month.days.0,
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default()
        );
        assert_eq!(
            month.days.1,
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default()
        );
        assert_eq!(
            month.start,
            Utc.with_ymd_and_hms(2026, 10, 31, 23, 0, 0).unwrap()
        );
        assert_eq!(
            month.end,
            Utc.with_ymd_and_hms(2026, 11, 30, 23, 0, 0).unwrap()
        );
        assert_eq!(month.label(), "1 Nov 2026 – 30 Nov 2026 (Europe/Paris)");
        // January reports December of the year before; a named month wins.
        let january = Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap();
        let december =
            Month::to_report(january, Tz::UTC, &json!({})).unwrap_or_else(|| unreachable!());
        assert_eq!(
            december.days.0,
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default()
        );
        let named = Month::to_report(january, Tz::UTC, &json!({ "month": "2026-03" }));
        assert_eq!(
            named.map(|m| m.days.1),
            NaiveDate::from_ymd_opt(2026, 3, 31)
        );
        assert_eq!(
            december.previous().map(|m| m.days.0),
            NaiveDate::from_ymd_opt(2026, 11, 1)
        );
    }
}
