//! Retention rules: what becomes of messages once they are older than a tenant allows, per
//! thread status, and what a legal hold names. Pure functions over plain values.

use chrono::{DateTime, Duration, Utc};

use portal_kit::{ApiError, ApiResult};

/// What retention does with a message past its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionAction {
    /// Gone: a thread whose messages are all past their time is removed with everything
    /// in it; otherwise each such message becomes a tombstone (body, earlier versions,
    /// attachments and search entries removed).
    Delete,
    /// Kept, but no longer tied to a person: the author becomes the deleted-user
    /// tombstone, earlier versions are removed, attachments lose their uploader.
    Anonymize,
}

impl RetentionAction {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "DELETE",
            Self::Anonymize => "ANONYMIZE",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Option<Self> {
        match value {
            "DELETE" => Some(Self::Delete),
            "ANONYMIZE" => Some(Self::Anonymize),
            _ => None,
        }
    }
}

/// The shortest retention a rule may set: a day (a typo of `0` must not empty a tenant).
pub const MIN_DAYS: i32 = 1;
/// The longest: a hundred years.
pub const MAX_DAYS: i32 = 36_500;

/// `BAD_USER_INPUT` on `field` unless `days` is within [`MIN_DAYS`]..=[`MAX_DAYS`].
pub fn check_days(field: &'static str, days: i32) -> ApiResult<i32> {
    if !(MIN_DAYS..=MAX_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            field,
            format!("between {MIN_DAYS} and {MAX_DAYS} days"),
        ));
    }
    Ok(days)
}

/// Messages posted before this instant are past a retention of `days` at `now`.
pub fn cutoff(now: DateTime<Utc>, days: i32) -> DateTime<Utc> {
    now - Duration::days(i64::from(days))
}

/// What a legal hold is placed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldTarget {
    /// Every thread about an account.
    Account,
    /// One thread.
    Thread,
    /// Every message a person wrote (and blocks their erasure).
    User,
}

impl HoldTarget {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "ACCOUNT",
            Self::Thread => "THREAD",
            Self::User => "USER",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Option<Self> {
        match value {
            "ACCOUNT" => Some(Self::Account),
            "THREAD" => Some(Self::Thread),
            "USER" => Some(Self::User),
            _ => None,
        }
    }
}

/// Longest accepted reason of a legal hold, in characters.
pub const REASON_MAX: usize = 1_000;

/// The trimmed reason of a hold; `BAD_USER_INPUT` on `field` when empty or too long.
pub fn hold_reason(field: &'static str, reason: &str) -> ApiResult<String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid(field, "say why the hold is placed"));
    }
    if reason.chars().count() > REASON_MAX {
        return Err(ApiError::invalid(
            field,
            format!("at most {REASON_MAX} characters"),
        ));
    }
    Ok(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_bounded() {
        assert!(check_days("d", 0).is_err());
        assert!(check_days("d", -5).is_err());
        assert!(check_days("d", MAX_DAYS + 1).is_err());
        assert_eq!(check_days("d", 30).ok(), Some(30));
    }

    #[test]
    fn the_cutoff_is_days_before_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(cutoff(now, 30).to_rfc3339(), "2026-11-06T12:00:00+00:00");
    }

    #[test]
    fn holds_need_a_reason() {
        assert!(hold_reason("r", "   ").is_err());
        assert!(hold_reason("r", &"x".repeat(REASON_MAX + 1)).is_err());
        assert_eq!(
            hold_reason("r", " Matter 42 ").ok().as_deref(),
            Some("Matter 42")
        );
    }

    #[test]
    fn storage_forms_round_trip() {
        for action in [RetentionAction::Delete, RetentionAction::Anonymize] {
            assert_eq!(RetentionAction::from_db(action.as_str()), Some(action));
        }
        for target in [HoldTarget::Account, HoldTarget::Thread, HoldTarget::User] {
            assert_eq!(HoldTarget::from_db(target.as_str()), Some(target));
        }
        assert_eq!(RetentionAction::from_db("SHRED"), None);
    }
}
