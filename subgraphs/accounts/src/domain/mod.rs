//! Account rules: numbers, currencies, statuses and exact money amounts.
//! Pure functions over plain values; no GraphQL, HTTP or database types.

pub mod export;
pub mod layout;
pub mod ledger;
pub mod series;

use rust_decimal::Decimal;
use uuid::Uuid;

use portal_kit::{ApiError, ApiResult};

/// A user of the caller's tenant who is active or invited.
pub use portal_kit::references::CURRENT_USER;

/// Decimal places every amount is stored with.
pub const MONEY_SCALE: u32 = 4;

/// ISO 4217 currencies accounts may be held in.
pub const CURRENCIES: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "IDR", "ILS",
    "INR", "JPY", "KRW", "MXN", "NOK", "NZD", "PLN", "SEK", "SGD", "THB", "TRY", "USD", "ZAR",
];

/// Lifecycle of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    /// In use.
    Open,
    /// Temporarily blocked.
    Suspended,
    /// Closed for good.
    Closed,
}

impl AccountStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Suspended => "SUSPENDED",
            Self::Closed => "CLOSED",
        }
    }

    /// Parses the storage form; unknown values read as `Suspended` (fail closed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "OPEN" => Self::Open,
            "CLOSED" => Self::Closed,
            _ => Self::Suspended,
        }
    }
}

/// Which accounts of a tenant a caller may see: every one (the `Account.all` grant), those
/// it owns or is a member of, or none (no principal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// Every account of the tenant.
    Everything,
    /// Accounts this user owns or is a member of.
    Member(Uuid),
    /// No account.
    Nobody,
}

impl Viewer {
    /// What `actor` may see: every account with the `Account.all` grant (the policies give
    /// it to staff), else those it owns or is a member of; nothing without a principal.
    pub fn of(actor: &portal_kit::Actor) -> Self {
        match actor.id {
            _ if actor.has_grant(portal_kit::policy::ACCOUNTS_ALL) => Self::Everything,
            Some(user) => Self::Member(user),
            None => Self::Nobody,
        }
    }

    /// Whether this viewer may see an account owned by `owner` with `members`.
    pub fn sees(self, owner: Uuid, members: &[Uuid]) -> bool {
        match self {
            Self::Everything => true,
            Self::Member(user) => owner == user || members.contains(&user),
            Self::Nobody => false,
        }
    }
}

/// An account number: 4–32 characters of `A-Z`, `0-9` and `-` (upper-cased).
pub fn account_number(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim().to_uppercase();
    let valid = (4..=32).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            "must be 4-32 characters of A-Z, 0-9 and -",
        ))
    }
}

/// A supported ISO 4217 currency code.
pub fn currency(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim().to_uppercase();
    if CURRENCIES.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            "must be a supported ISO 4217 currency code",
        ))
    }
}

/// An amount with at most [`MONEY_SCALE`] decimal places, as an integer of 10^-4 units.
pub fn amount_e4(field: &'static str, value: Decimal) -> ApiResult<i64> {
    let normalized = value.normalize();
    if normalized.scale() > MONEY_SCALE {
        return Err(ApiError::invalid(
            field,
            format!("must have at most {MONEY_SCALE} decimal places"),
        ));
    }
    let mut scaled = normalized;
    scaled.rescale(MONEY_SCALE);
    i64::try_from(scaled.mantissa()).map_err(|_| ApiError::invalid(field, "is out of range"))
}

/// The decimal value of an amount stored as 10^-4 units.
pub fn amount_from_e4(units: i64) -> Decimal {
    Decimal::new(units, MONEY_SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal literal")
    }

    #[test]
    fn amounts_round_trip_exactly() {
        for text in ["0", "1234.5678", "-0.0001", "99999999999.9999"] {
            let units = amount_e4("a", dec(text)).expect("valid amount");
            assert_eq!(amount_from_e4(units), dec(text).round_dp(4));
        }
        assert_eq!(amount_e4("a", dec("0.1")).ok(), Some(1000));
    }

    #[test]
    fn amounts_with_too_many_places_or_too_large_are_refused() {
        assert!(amount_e4("a", dec("0.00001")).is_err());
        assert!(amount_e4("a", dec("99999999999999999")).is_err());
    }

    #[test]
    fn currencies_and_numbers_are_checked() {
        assert_eq!(currency("c", "eur").ok().as_deref(), Some("EUR"));
        assert!(currency("c", "EURO").is_err());
        assert!(currency("c", "XXX").is_err());
        assert_eq!(
            account_number("n", "ac-0001").ok().as_deref(),
            Some("AC-0001")
        );
        assert!(account_number("n", "a b").is_err());
    }
}
