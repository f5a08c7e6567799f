//! Report rules: kinds, formats, run statuses, cron schedules and report parameters.
//! Pure functions over plain values; no GraphQL, HTTP or database types.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub mod kinds;
pub mod manifest;
pub mod query;
pub mod rows;
pub mod schema;

use portal_kit::references::Referent;
use portal_kit::{ApiError, ApiResult};

/// An account a report may refer to: visible to the caller in its
/// tenant (accounts' row rules apply) and open.
pub const OPEN_ACCOUNT: Referent = Referent {
    typename: "Account",
    status_field: "status",
    usable: &["OPEN"],
    noun: "account",
};

/// Longest accepted report name, in characters.
pub const NAME_MAX: usize = 200;
/// Longest accepted schedule, in characters.
pub const SCHEDULE_MAX: usize = 100;
/// Largest accepted parameters object, in bytes of compact JSON.
pub const PARAMETERS_MAX_BYTES: usize = 10 * 1024;

/// What a report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// Transactions and balances of one account over a period.
    AccountStatement,
    /// Balances of many accounts at a point in time.
    BalanceSummary,
    /// Activity (changes) over a period.
    Activity,
    /// Defined entirely by its parameters.
    Custom,
    /// Every account's statement of the month before (PDF).
    MonthlyStatements,
    /// Every account's usage per metric in the month before.
    UsageSummary,
}

impl ReportKind {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountStatement => "ACCOUNT_STATEMENT",
            Self::BalanceSummary => "BALANCE_SUMMARY",
            Self::Activity => "ACTIVITY",
            Self::Custom => "CUSTOM",
            Self::MonthlyStatements => "MONTHLY_STATEMENTS",
            Self::UsageSummary => "USAGE_SUMMARY",
        }
    }

    /// Whether it is one of the monthly documents (no query: see `monthly`).
    pub fn is_monthly(self) -> bool {
        matches!(self, Self::MonthlyStatements | Self::UsageSummary)
    }

    /// Parses the storage form; unknown values read as `Custom`.
    pub fn from_db(value: &str) -> Self {
        match value {
            "ACCOUNT_STATEMENT" => Self::AccountStatement,
            "BALANCE_SUMMARY" => Self::BalanceSummary,
            "ACTIVITY" => Self::Activity,
            "MONTHLY_STATEMENTS" => Self::MonthlyStatements,
            "USAGE_SUMMARY" => Self::UsageSummary,
            _ => Self::Custom,
        }
    }
}

/// File format a report is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Comma-separated values.
    Csv,
    /// Excel workbook.
    Xlsx,
    /// PDF document.
    Pdf,
    /// A JSON array of objects.
    Json,
    /// Newline-delimited JSON (one object per line): for large reports.
    Ndjson,
}

impl ReportFormat {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "CSV",
            Self::Xlsx => "XLSX",
            Self::Pdf => "PDF",
            Self::Json => "JSON",
            Self::Ndjson => "NDJSON",
        }
    }

    /// Parses the storage form; unknown values read as `Csv` (the plainest format).
    pub fn from_db(value: &str) -> Self {
        match value {
            "XLSX" => Self::Xlsx,
            "PDF" => Self::Pdf,
            "JSON" => Self::Json,
            "NDJSON" => Self::Ndjson,
            _ => Self::Csv,
        }
    }
}

/// Lifecycle of one report run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportRunStatus {
    /// Requested, waiting for the runner.
    Queued,
    /// Being produced.
    Running,
    /// Produced.
    Succeeded,
    /// Gave up; see the run's error.
    Failed,
}

impl ReportRunStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses the storage form; unknown values read as `Failed` (fail closed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "QUEUED" => Self::Queued,
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            _ => Self::Failed,
        }
    }
}

/// A cron schedule: five space-separated fields (minute, hour, day of month, month, day
/// of week; names such as `MON` or `JAN`, ranges, lists and steps), every value in range,
/// at most [`SCHEDULE_MAX`] characters. Runs of spaces are collapsed to one.
pub fn schedule(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim();
    if value.chars().count() > SCHEDULE_MAX {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {SCHEDULE_MAX} characters"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-' | '?');
    if !value.chars().all(|c| c == ' ' || allowed(c)) {
        return Err(ApiError::invalid(
            field,
            "must be a cron expression: 5 fields of numbers, names, *, /, , and - separated by spaces",
        ));
    }
    let fields: Vec<&str> = value.split(' ').filter(|part| !part.is_empty()).collect();
    if fields.len() != 5 {
        return Err(ApiError::invalid(
            field,
            "must be a cron expression of 5 space-separated fields (minute hour day month weekday)",
        ));
    }
    let normalized = fields.join(" ");
    croner::Cron::from_str(&normalized).map_err(|err| {
        ApiError::invalid(field, format!("is not a valid cron expression: {err}"))
    })?;
    Ok(normalized)
}

/// In words (`At 06:00 on Monday`), for people reading a definition.
pub fn describe_schedule(cron: &str) -> Option<String> {
    croner::Cron::from_str(cron).ok().map(|c| c.describe())
}

/// The next time after `now` that a report scheduled by `cron` in `time_zone` runs.
pub fn next_run(cron: &str, time_zone: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    portal_kit::jobs::schedule::next_after(cron, time_zone, now).ok()
}

/// The monthly documents' rules: statements are PDF; `parameters.month`, when given,
/// is `YYYY-MM` (a past month to make the document of, rather than the month before).
pub fn check_monthly(kind: ReportKind, format: ReportFormat, parameters: &Value) -> ApiResult<()> {
    if !kind.is_monthly() {
        return Ok(());
    }
    if kind == ReportKind::MonthlyStatements && format != ReportFormat::Pdf {
        return Err(ApiError::invalid(
            "input.format",
            "statements are PDF documents",
        ));
    }
    match &parameters["month"] {
        Value::Null => Ok(()),
        Value::String(text)
            if text.len() == 7
                && chrono::NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").is_ok() =>
        {
            Ok(())
        }
        _ => Err(ApiError::invalid(
            "input.parameters",
            "`month` must be a month as YYYY-MM",
        )),
    }
}

/// Longest accepted recipient address, in characters (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;

/// An external recipient's address, trimmed and lower-cased: one `@`, a local part and a
/// dotted domain, no spaces, control characters, quotes, commas or angle brackets (it goes
/// into a mail header as it is).
pub fn recipient_email(field: &'static str, raw: &str) -> ApiResult<String> {
    let address = raw.trim().to_lowercase();
    let bad = |why: &str| {
        Err(ApiError::invalid(
            field,
            format!("is not a usable email address: {why}"),
        ))
    };
    if address.is_empty() || address.chars().count() > EMAIL_MAX {
        return bad("empty or too long");
    }
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"'<>,;:()[]\\".contains(c))
    {
        return bad("it holds spaces or characters an address cannot");
    }
    let Some((local, domain)) = address.split_once('@') else {
        return bad("no @");
    };
    let labels: Vec<&str> = domain.split('.').collect();
    if local.is_empty()
        || domain.contains('@')
        || labels.len() < 2
        || labels
            .iter()
            .any(|label| label.is_empty() || label.starts_with('-'))
    {
        return bad("the part after @ is not a domain name");
    }
    Ok(address)
}

/// Report parameters: a JSON object of at most [`PARAMETERS_MAX_BYTES`] bytes when
/// serialized; an empty object when omitted.
pub fn parameters(field: &'static str, raw: Option<Value>) -> ApiResult<Value> {
    let value = raw.unwrap_or_else(|| Value::Object(Map::new()));
    if !value.is_object() {
        return Err(ApiError::invalid(field, "must be a JSON object"));
    }
    let size = serde_json::to_vec(&value)
        .map_err(|_| ApiError::invalid(field, "must be serializable JSON"))?
        .len();
    if size > PARAMETERS_MAX_BYTES {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {PARAMETERS_MAX_BYTES} bytes as JSON"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recipient_addresses_are_checked_and_normalized() {
        assert_eq!(
            recipient_email("e", "  Ada.Lovelace@Example.COM ")
                .ok()
                .as_deref(),
            Some("ada.lovelace@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "ada@exa mple.com",
            "Ada <ada@example.com>",
            "a,b@example.com",
            "ada@example.com\r\nBcc: x@y.z",
            "ada@.example.com",
        ] {
            assert!(recipient_email("e", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn common_cron_expressions_are_accepted_and_spaces_collapsed() {
        for ok in [
            "0 6 * * 1-5",
            "*/15 * * * *",
            "0 0 1,15 * *",
            "30 2 * * 0",
            "0 6 * * MON",
            "0 6 1 JAN-MAR *",
        ] {
            assert_eq!(schedule("s", ok).ok().as_deref(), Some(ok));
        }
        assert_eq!(
            schedule("s", "  0  6 * *   1 ").ok().as_deref(),
            Some("0 6 * * 1")
        );
    }

    #[test]
    fn cron_expressions_with_wrong_field_count_or_characters_are_refused() {
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "99 99 * * *",
            "0 24 * * *",
            "0 6 32 * *",
            "0 6 * 13 *",
            "0 6 * * FUNDAY",
            "@daily",
            "0\t6 * * *",
            "0 6 * * 1;rm",
        ] {
            assert!(schedule("s", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn schedules_run_at_their_local_time_and_say_so() {
        let now = DateTime::parse_from_rfc3339("2026-03-27T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        // Monday 06:00 in Berlin: the Monday after summer time starts is at UTC+2.
        let next = next_run("0 6 * * MON", "Europe/Berlin", now).map(|t| t.to_rfc3339());
        assert_eq!(next.as_deref(), Some("2026-03-30T04:00:00+00:00"));
        assert!(describe_schedule("0 6 * * MON").is_some_and(|d| !d.is_empty()));
    }

    #[test]
    fn schedules_longer_than_one_hundred_characters_are_refused() {
        let long = format!("{} * * * *", "1,".repeat(60) + "1");
        assert!(schedule("s", &long).is_err());
    }

    #[test]
    fn omitted_parameters_become_an_empty_object() {
        assert_eq!(parameters("p", None).ok(), Some(json!({})));
        let given = json!({ "from": "2024-01-01", "accounts": [1, 2] });
        assert_eq!(parameters("p", Some(given.clone())).ok(), Some(given));
    }

    #[test]
    fn parameters_that_are_not_an_object_are_refused() {
        for bad in [
            json!([1, 2]),
            json!("text"),
            json!(3),
            json!(null),
            json!(true),
        ] {
            assert!(
                parameters("p", Some(bad.clone())).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn parameters_larger_than_ten_kilobytes_are_refused() {
        let big = json!({ "blob": "x".repeat(PARAMETERS_MAX_BYTES) });
        assert!(parameters("p", Some(big)).is_err());
        let fits = json!({ "blob": "x".repeat(PARAMETERS_MAX_BYTES - 20) });
        assert!(parameters("p", Some(fits)).is_ok());
    }

    #[test]
    fn unknown_stored_statuses_read_as_failed() {
        assert_eq!(ReportRunStatus::from_db("???"), ReportRunStatus::Failed);
        for status in [
            ReportRunStatus::Queued,
            ReportRunStatus::Running,
            ReportRunStatus::Succeeded,
            ReportRunStatus::Failed,
        ] {
            assert_eq!(ReportRunStatus::from_db(status.as_str()), status);
        }
    }
}
