//! Ledger rules: entry kinds and their sign, amounts, idempotency keys, invoice states.
//! Pure functions over plain values; no GraphQL, HTTP or database types.
//!
//! Sign convention: an entry's amount is what it adds to the account's balance, the
//! customer's funds with the supplier. Charges and refunds take money off (negative),
//! payments and credits add it (positive); an adjustment goes the way it says.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_kit::actor::ActorKind;
use portal_kit::pagination::sorted::{SortKind, SortOrder};
use portal_kit::{ApiError, ApiResult};

use super::amount_e4;

/// Largest amount one entry, invoice or payment may carry (10^12 in the account's
/// currency): sums of many stay far from the 64-bit range.
pub const MAX_AMOUNT_E4: i64 = 1_000_000_000_000 * 10_000;

/// How far in the future a posting or receipt time may lie (clock skew of the caller).
pub const MAX_FUTURE: Duration = Duration::minutes(5);

/// What a ledger entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryKind {
    /// Money owed by the customer (an invoice posts one).
    Charge,
    /// Money received (posted by `recordPayment` only).
    Payment,
    /// Money granted to the customer.
    Credit,
    /// Money returned to the customer, out of the balance.
    Refund,
    /// A correction in either direction.
    Adjustment,
}

impl EntryKind {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "CHARGE",
            Self::Payment => "PAYMENT",
            Self::Credit => "CREDIT",
            Self::Refund => "REFUND",
            Self::Adjustment => "ADJUSTMENT",
        }
    }

    /// Parses the storage form; unknown values read as `Adjustment`.
    pub fn from_db(value: &str) -> Self {
        match value {
            "CHARGE" => Self::Charge,
            "PAYMENT" => Self::Payment,
            "CREDIT" => Self::Credit,
            "REFUND" => Self::Refund,
            _ => Self::Adjustment,
        }
    }
}

/// Which way an adjustment moves the balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Adds to the balance.
    Credit,
    /// Takes off the balance.
    Debit,
}

/// Where a ledger row came from: a person, or a billing system's sync (a service account).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Source {
    /// Entered by a user.
    Manual,
    /// Written by a billing connector's service account.
    BillingSync,
}

impl Source {
    /// The source of a row written by an actor of `kind`.
    pub fn of(kind: ActorKind) -> Self {
        match kind {
            ActorKind::Service => Self::BillingSync,
            _ => Self::Manual,
        }
    }

    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "MANUAL",
            Self::BillingSync => "BILLING_SYNC",
        }
    }

    /// Parses the storage form; unknown values read as `Manual`.
    pub fn from_db(value: &str) -> Self {
        match value {
            "BILLING_SYNC" => Self::BillingSync,
            _ => Self::Manual,
        }
    }
}

/// A positive amount of at most four decimal places and at most [`MAX_AMOUNT_E4`], in
/// 10^-4 units.
pub fn positive_amount(field: &'static str, value: Decimal) -> ApiResult<i64> {
    let units = amount_e4(field, value)?;
    if units <= 0 {
        return Err(ApiError::invalid(field, "must be greater than zero"));
    }
    if units > MAX_AMOUNT_E4 {
        return Err(ApiError::invalid(field, "is too large"));
    }
    Ok(units)
}

/// What an entry of `kind` for the positive `amount` adds to the balance. Payments come
/// only from `recordPayment`; only adjustments take (and need) a direction.
pub fn signed_amount(kind: EntryKind, direction: Option<Direction>, amount: i64) -> ApiResult<i64> {
    match (kind, direction) {
        (EntryKind::Payment, _) => Err(ApiError::invalid(
            "input.kind",
            "payments are recorded with recordPayment",
        )),
        (EntryKind::Adjustment, Some(Direction::Credit)) => Ok(amount),
        (EntryKind::Adjustment, Some(Direction::Debit)) => Ok(-amount),
        (EntryKind::Adjustment, None) => Err(ApiError::invalid(
            "input.direction",
            "is required for an adjustment (CREDIT or DEBIT)",
        )),
        (_, Some(_)) => Err(ApiError::invalid(
            "input.direction",
            "is only for adjustments: the kind decides the direction",
        )),
        (EntryKind::Charge | EntryKind::Refund, None) => Ok(-amount),
        (EntryKind::Credit, None) => Ok(amount),
    }
}

/// The account's currency, or `BAD_USER_INPUT` naming `field`: postings are never
/// converted.
pub fn same_currency(field: &'static str, given: &str, account: &str) -> ApiResult<()> {
    if given == account {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be the account's currency, {account}"),
        ))
    }
}

/// A client's idempotency key: 8–64 characters of `A-Z a-z 0-9 . _ : -` (a UUID fits).
pub fn idempotency_key(field: &'static str, raw: &str) -> ApiResult<String> {
    let valid = (8..=64).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 8-64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
        ))
    }
}

/// SHA-256 (hex) of a request's canonical form: a retry with the same key must carry the
/// same request, or it is refused.
pub fn request_hash(request: &Value) -> String {
    let bytes = serde_json::to_vec(request).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// A posting or receipt time: `now` when omitted, never more than [`MAX_FUTURE`] ahead,
/// not before 1970.
pub fn effective_time(
    field: &'static str,
    given: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ApiResult<DateTime<Utc>> {
    match given {
        None => Ok(now),
        Some(at) if at > now + MAX_FUTURE => {
            Err(ApiError::invalid(field, "must not lie in the future"))
        }
        Some(at) if at < DateTime::UNIX_EPOCH => {
            Err(ApiError::invalid(field, "must not be before 1970"))
        }
        Some(at) => Ok(at),
    }
}

/// An opening balance: at most [`MAX_AMOUNT_E4`] either way.
pub fn opening_balance(field: &'static str, value: Decimal) -> ApiResult<i64> {
    let units = amount_e4(field, value)?;
    if units.unsigned_abs() > MAX_AMOUNT_E4 as u64 {
        return Err(ApiError::invalid(field, "is too large"));
    }
    Ok(units)
}

/// An invoice number: 3–32 characters of `A-Z`, `0-9`, `-`, `/` and `_` (upper-cased).
pub fn invoice_number(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim().to_uppercase();
    let valid = (3..=32).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '-' | '/' | '_'));
    if valid {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            "must be 3-32 characters of A-Z, 0-9, '-', '/' and '_'",
        ))
    }
}

/// An invoice's billing period and due date: the period must not end before it starts,
/// and the invoice cannot fall due before the period starts.
pub fn invoice_dates(start: NaiveDate, end: NaiveDate, due: NaiveDate) -> ApiResult<()> {
    if end < start {
        return Err(ApiError::invalid(
            "input.periodEnd",
            "must not be before periodStart",
        ));
    }
    if due < start {
        return Err(ApiError::invalid(
            "input.dueDate",
            "must not be before periodStart",
        ));
    }
    Ok(())
}

/// An invoice's status as clients see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceStatus {
    /// Issued, not fully paid, not yet due.
    Open,
    /// Issued, not fully paid, past its due date (stored as open).
    Overdue,
    /// Fully paid.
    Paid,
    /// Cancelled; its charge was reversed.
    Void,
}

impl InvoiceStatus {
    /// The stored form (`OVERDUE` is stored as `OPEN`).
    pub fn stored(self) -> &'static str {
        match self {
            Self::Open | Self::Overdue => "OPEN",
            Self::Paid => "PAID",
            Self::Void => "VOID",
        }
    }

    /// The status of an invoice stored as `stored`, due on `due`, seen on `today`.
    pub fn of(stored: &str, due: NaiveDate, today: NaiveDate) -> Self {
        match stored {
            "PAID" => Self::Paid,
            "VOID" => Self::Void,
            _ if due < today => Self::Overdue,
            _ => Self::Open,
        }
    }
}

/// Columns a ledger list can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntrySort {
    /// Posting time.
    PostedAt,
    /// Signed amount.
    Amount,
}

/// Columns an invoice list can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceSort {
    /// Issue time.
    IssuedAt,
    /// Due date.
    DueDate,
    /// Invoiced amount.
    Amount,
}

/// Columns a payment list can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentSort {
    /// Receipt time.
    ReceivedAt,
    /// Amount.
    Amount,
}

/// Filters of an account's ledger; empty lists and `None` do not filter.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryFilter {
    /// Only these kinds.
    pub kinds: Vec<EntryKind>,
    /// Only these sources.
    pub sources: Vec<Source>,
    /// Posted at or after.
    pub posted_from: Option<DateTime<Utc>>,
    /// Posted before.
    pub posted_to: Option<DateTime<Utc>>,
    /// Exactly this reference.
    pub reference: Option<String>,
    /// Entries of this invoice.
    pub invoice_id: Option<Uuid>,
}

/// Filters of an account's invoices.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceFilter {
    /// Only these statuses (as clients see them: `OVERDUE` is an open invoice past due).
    pub statuses: Vec<InvoiceStatus>,
    /// Due on or after.
    pub due_from: Option<NaiveDate>,
    /// Due on or before.
    pub due_to: Option<NaiveDate>,
}

/// A sort order named `name` over a column of `kind`.
pub const fn order(name: &'static str, kind: SortKind, descending: bool) -> SortOrder {
    SortOrder {
        name,
        kind,
        descending,
    }
}

/// A `[from, to)` range of instants; either end may be open.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A validated `[from, to)` time range of a filter: `to` after `from` when both are given.
pub fn time_range(
    to_field: &'static str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> ApiResult<TimeRange> {
    match (from, to) {
        (Some(from), Some(to)) if to <= from => Err(ApiError::invalid(
            to_field,
            "must be after the start of the range",
        )),
        range => Ok(range),
    }
}

/// A validated inclusive date range of a filter: `to` not before `from`.
pub fn date_range(
    to_field: &'static str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> ApiResult<(Option<NaiveDate>, Option<NaiveDate>)> {
    match (from, to) {
        (Some(from), Some(to)) if to < from => Err(ApiError::invalid(
            to_field,
            "must not be before the start of the range",
        )),
        range => Ok(range),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal literal")
    }

    fn field_of(result: ApiResult<impl std::fmt::Debug>) -> &'static str {
        match result {
            Err(ApiError::BadUserInput { field, .. }) => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn only_positive_bounded_amounts_are_accepted() {
        assert_eq!(positive_amount("a", dec("12.3456")).ok(), Some(123_456));
        for bad in ["0", "-1", "0.00001", "1000000000000.0001"] {
            assert_eq!(
                field_of(positive_amount("input.amount", dec(bad))),
                "input.amount"
            );
        }
    }

    #[test]
    fn the_kind_decides_the_sign_and_adjustments_need_a_direction() {
        assert_eq!(signed_amount(EntryKind::Charge, None, 5).ok(), Some(-5));
        assert_eq!(signed_amount(EntryKind::Refund, None, 5).ok(), Some(-5));
        assert_eq!(signed_amount(EntryKind::Credit, None, 5).ok(), Some(5));
        let debit = signed_amount(EntryKind::Adjustment, Some(Direction::Debit), 5);
        assert_eq!(debit.ok(), Some(-5));
        assert_eq!(
            field_of(signed_amount(EntryKind::Adjustment, None, 5)),
            "input.direction"
        );
        let credit_with_direction = signed_amount(EntryKind::Credit, Some(Direction::Debit), 5);
        assert_eq!(field_of(credit_with_direction), "input.direction");
        assert_eq!(
            field_of(signed_amount(EntryKind::Payment, None, 5)),
            "input.kind"
        );
    }

    #[test]
    fn idempotency_keys_are_bounded_and_plain() {
        assert!(idempotency_key("k", "0190c0de-7a1b-7c3d-8e4f-001122334455").is_ok());
        for bad in ["short", "has space in it", "ünïcode-key", &"x".repeat(65)] {
            assert!(idempotency_key("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_open_invoice_past_its_due_date_is_overdue() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).expect("date");
        assert_eq!(
            InvoiceStatus::of("OPEN", day(10), day(10)),
            InvoiceStatus::Open
        );
        assert_eq!(
            InvoiceStatus::of("OPEN", day(9), day(10)),
            InvoiceStatus::Overdue
        );
        assert_eq!(
            InvoiceStatus::of("PAID", day(1), day(10)),
            InvoiceStatus::Paid
        );
        assert_eq!(
            InvoiceStatus::of("VOID", day(1), day(10)),
            InvoiceStatus::Void
        );
        assert!(invoice_dates(day(2), day(1), day(3)).is_err());
        assert!(invoice_dates(day(2), day(3), day(1)).is_err());
        assert!(invoice_dates(day(1), day(31), day(15)).is_ok());
    }

    #[test]
    fn times_and_ranges_are_checked() {
        let now = Utc::now();
        assert!(effective_time("t", Some(now + Duration::hours(1)), now).is_err());
        assert_eq!(effective_time("t", None, now).ok(), Some(now));
        assert!(time_range("to", Some(now), Some(now)).is_err());
        assert!(time_range("to", Some(now), None).is_ok());
    }
}
