//! Scalar arguments taken as the client wrote them and parsed by the resolver, which knows
//! the argument's name: an unparsable or overflowing `Decimal` or `DateTime` is then
//! `BAD_USER_INPUT` naming the field, never a bare scalar error.
//!
//! These are input-side types sharing their GraphQL names with the output scalars
//! (`rust_decimal::Decimal`, `chrono::DateTime<Utc>`); schemas that use them register
//! [`SHARED_SCALARS`] with `ignore_name_conflicts`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::error::{ApiError, ApiResult};

/// Scalar names both an output type and an argument type of this module carry.
pub const SHARED_SCALARS: [&str; 3] = ["Decimal", "DateTime", "Date"];

/// A `Decimal` argument, unparsed (see [`DecimalArg::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecimalArg(String);

#[Scalar(name = "Decimal")]
impl ScalarType for DecimalArg {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(text) => Ok(Self(text)),
            Value::Number(number) => Ok(Self(number.to_string())),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

impl DecimalArg {
    /// The exact decimal, or `BAD_USER_INPUT` naming `field` (not a number, or more
    /// than 28 significant digits).
    pub fn parse(&self, field: &'static str) -> ApiResult<Decimal> {
        let text = self.0.trim();
        text.parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(text))
            .map_err(|_| {
                ApiError::invalid(
                    field,
                    "must be a decimal number of at most 28 significant digits",
                )
            })
    }
}

impl From<&str> for DecimalArg {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// A `DateTime` argument, unparsed (see [`DateTimeArg::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateTimeArg(String);

/// Implement the DateTime<Utc> scalar
///
/// The input/output is a string in RFC3339 format.
#[Scalar(name = "DateTime")]
impl ScalarType for DateTimeArg {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(text) => Ok(Self(text)),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

impl DateTimeArg {
    /// The instant, or `BAD_USER_INPUT` naming `field` (not RFC 3339).
    pub fn parse(&self, field: &'static str) -> ApiResult<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(self.0.trim())
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid(
                    field,
                    "must be an RFC 3339 date and time, e.g. 2026-01-31T12:00:00Z",
                )
            })
    }
}

impl From<&str> for DateTimeArg {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// A calendar date without a time zone, `YYYY-MM-DD` (ISO 8601), as returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub NaiveDate);

/// A calendar date, `YYYY-MM-DD` (ISO 8601).
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Self)
                .map_err(|_| InputValueError::custom("must be a date, e.g. 2026-01-31")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// A `Date` argument, unparsed (see [`DateArg::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateArg(String);

#[Scalar(name = "Date")]
impl ScalarType for DateArg {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(text) => Ok(Self(text)),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

impl DateArg {
    /// The date, or `BAD_USER_INPUT` naming `field` (not `YYYY-MM-DD`).
    pub fn parse(&self, field: &'static str) -> ApiResult<NaiveDate> {
        NaiveDate::parse_from_str(self.0.trim(), "%Y-%m-%d")
            .map_err(|_| ApiError::invalid(field, "must be a date, e.g. 2026-01-31"))
    }
}

impl From<&str> for DateArg {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: ApiError) -> &'static str {
        match err {
            ApiError::BadUserInput { field, .. } => field,
            _ => "",
        }
    }

    #[test]
    fn decimals_that_overflow_or_do_not_parse_name_the_field() {
        assert_eq!(
            DecimalArg::from("12.5").parse("a").ok(),
            Some(Decimal::new(125, 1))
        );
        for bad in ["99999999999999999999999999999", "1,5", "", "NaN"] {
            let err = DecimalArg::from(bad).parse("input.amount").err();
            assert_eq!(err.map(field_of), Some("input.amount"), "{bad}");
        }
    }

    #[test]
    fn date_times_must_be_rfc3339() {
        assert!(
            DateTimeArg::from("2026-01-31T12:00:00+01:00")
                .parse("f")
                .is_ok()
        );
        let err = DateTimeArg::from("yesterday").parse("filter.from").err();
        assert_eq!(err.map(field_of), Some("filter.from"));
    }

    #[test]
    fn dates_must_be_iso_calendar_dates() {
        assert_eq!(
            DateArg::from("2026-02-28").parse("d").ok(),
            NaiveDate::from_ymd_opt(2026, 2, 28)
        );
        for bad in ["2026-02-30", "28.02.2026", "2026-02-28T00:00:00Z"] {
            let err = DateArg::from(bad).parse("input.dueDate").err();
            assert_eq!(err.map(field_of), Some("input.dueDate"), "{bad}");
        }
    }
}
