//! Validation of plain input values shared by every subgraph (ids, bounded texts).
//! Domain rules (what a valid currency or email is) live in each subgraph's `domain`.

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The UUID inside a GraphQL `ID` argument, or `BAD_USER_INPUT` naming `field`.
pub fn id(field: &'static str, raw: &ID) -> ApiResult<Uuid> {
    Uuid::parse_str(raw.as_str())
        .map_err(|_| ApiError::invalid(field, "must be an id returned by this API"))
}

/// An IANA time zone name (`Europe/Berlin`, `UTC`), or `BAD_USER_INPUT` naming `field`.
pub fn time_zone(field: &'static str, raw: &str) -> ApiResult<String> {
    zone(field, raw).map(|zone| zone.name().to_owned())
}

/// The IANA time zone named `raw`, or `BAD_USER_INPUT` naming `field`.
pub fn zone(field: &'static str, raw: &str) -> ApiResult<chrono_tz::Tz> {
    raw.trim()
        .parse::<chrono_tz::Tz>()
        .map_err(|_| ApiError::invalid(field, "must be an IANA time zone such as Europe/Berlin"))
}

/// A trimmed, non-empty text of at most `max` characters without control characters.
pub fn text(field: &'static str, raw: &str, max: usize) -> ApiResult<String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// Like [`text`], but multi-line: newlines and tabs are allowed, other controls are not.
pub fn long_text(field: &'static str, raw: &str, max: usize) -> ApiResult<String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("t", " Ada ", 10).ok().as_deref(), Some("Ada"));
        assert!(text("t", "   ", 10).is_err());
        assert!(text("t", "abcdefghijk", 10).is_err());
        assert!(text("t", "a\u{0}b", 10).is_err());
        assert!(long_text("t", "line one\nline two", 100).is_ok());
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(id("id", &ID::from("nope")).is_err());
        let uuid = Uuid::now_v7();
        assert_eq!(id("id", &ID::from(uuid.to_string())).ok(), Some(uuid));
    }
}
