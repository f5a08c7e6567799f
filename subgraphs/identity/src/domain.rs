//! Identity rules: what a valid email, display name, role name or status is.
//! Pure functions over plain values; no GraphQL, HTTP or database types.

use portal_kit::{ApiError, ApiResult};
use uuid::Uuid;

/// The role that may manage tenants across the platform.
pub const PLATFORM_ADMIN: &str = "platform_admin";

/// The role that administers one tenant.
pub const TENANT_ADMIN: &str = "tenant_admin";

/// Lifecycle of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStatus {
    /// Invited, has not signed in yet.
    Invited,
    /// May sign in.
    Active,
    /// Deactivated: may not sign in.
    Disabled,
    /// Erased (GDPR Art. 17): the row stays, anonymized, as the deleted user other
    /// records point to. Final: nobody signs in as it, and no admin re-enables, re-invites
    /// or changes it.
    Erased,
}

impl UserStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "INVITED",
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
            Self::Erased => "ERASED",
        }
    }

    /// Parses the storage form; unknown values read as `Disabled` (fail closed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "INVITED" => Self::Invited,
            "ACTIVE" => Self::Active,
            "ERASED" => Self::Erased,
            _ => Self::Disabled,
        }
    }

    /// Whether a reset or invitation link may be sent to and redeemed by the user.
    pub fn may_recover(self) -> bool {
        matches!(self, Self::Invited | Self::Active)
    }
}

/// Refuses (`CONFLICT`) any change to a user whose stored status is `ERASED`: erasure is
/// final.
pub fn not_erased(stored_status: &str) -> ApiResult<()> {
    if UserStatus::from_db(stored_status) == UserStatus::Erased {
        return Err(ApiError::Conflict(
            "this user was erased: the account cannot be changed or used again".into(),
        ));
    }
    Ok(())
}

/// Name an erased (or otherwise deleted) user is shown with.
pub const DELETED_USER_NAME: &str = "Deleted user";

/// The sign-in email an erased user is left with: unique in the tenant, on a reserved
/// domain no mail reaches (RFC 2606), saying nothing about the person.
pub fn erased_email(user_id: Uuid) -> String {
    format!("erased-{user_id}@erased.invalid")
}

/// Default seconds without activity after which a session ends.
pub const DEFAULT_IDLE_TIMEOUT_SECS: i32 = 1800;

/// Default seconds after sign-in after which a session ends.
pub const DEFAULT_ABSOLUTE_TIMEOUT_SECS: i32 = 43_200;

/// Validated session timeouts; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// Idle timeout in seconds.
    pub idle: Option<i32>,
    /// Absolute timeout in seconds.
    pub absolute: Option<i32>,
}

/// Session timeouts within sane bounds: idle 5 minutes to a day, absolute 15 minutes to
/// 30 days. Whether idle ≤ absolute is checked against the stored values by the store.
/// Longest file retention a tenant may set, in days (ten years).
pub const RETENTION_DAYS_MAX: i32 = 3650;

/// A file retention in days: 1 to [`RETENTION_DAYS_MAX`].
pub fn retention_days(field: &'static str, days: i32) -> ApiResult<i32> {
    if (1..=RETENTION_DAYS_MAX).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be between 1 and {RETENTION_DAYS_MAX} days"),
        ))
    }
}

pub fn session_timeouts(idle: Option<i32>, absolute: Option<i32>) -> ApiResult<SessionTimeouts> {
    if let Some(idle) = idle
        && !(300..=86_400).contains(&idle)
    {
        return Err(ApiError::invalid(
            "input.sessionIdleTimeoutSeconds",
            "must be between 300 and 86400",
        ));
    }
    if let Some(absolute) = absolute
        && !(900..=2_592_000).contains(&absolute)
    {
        return Err(ApiError::invalid(
            "input.sessionAbsoluteTimeoutSeconds",
            "must be between 900 and 2592000",
        ));
    }
    Ok(SessionTimeouts { idle, absolute })
}

/// A normalized, validated email address (trimmed, lower-cased).
pub fn email(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim().to_lowercase();
    let valid = value.len() <= 320
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !value.chars().any(char::is_whitespace);
    if valid {
        Ok(value)
    } else {
        Err(ApiError::invalid(field, "must be an email address"))
    }
}

/// A role name: 2–64 characters of `a-z`, `0-9` and `_`, starting with a letter.
pub fn role_name(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim();
    let valid = (2..=64).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 2-64 characters of a-z, 0-9 and _, starting with a letter",
        ))
    }
}

/// Role names stored as one comma-separated column (key roles, a tenant's MFA roles, a
/// provider's default roles), as a list.
pub fn role_list(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Role names a tenant cannot create: the platform's own role and the implicit roles of
/// the authorization policies (rules naming them hold in every tenant).
pub const RESERVED_ROLES: [&str; 3] = [PLATFORM_ADMIN, "public", "authenticated"];

/// A role name a tenant may create: [`role_name`], and not one of [`RESERVED_ROLES`].
pub fn new_role_name(field: &'static str, raw: &str) -> ApiResult<String> {
    let name = role_name(field, raw)?;
    if RESERVED_ROLES.contains(&name.as_str()) {
        return Err(ApiError::invalid(field, "is reserved"));
    }
    Ok(name)
}

/// A tenant slug: 3–63 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn slug(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim();
    let valid = (3..=63).contains(&value.len())
        && !value.starts_with('-')
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 3-63 characters of a-z, 0-9 and -, not starting or ending with -",
        ))
    }
}

/// Why a session ended, as stored and audited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user signed out.
    SignOut,
    /// The user or an admin revoked it.
    Revoked,
    /// A used refresh token was presented again.
    RefreshReuse,
    /// Idle for longer than the tenant allows.
    IdleTimeout,
    /// Older than the tenant allows.
    AbsoluteTimeout,
    /// The password changed or was reset.
    PasswordChanged,
    /// The user was deactivated.
    UserDeactivated,
    /// The user was erased (GDPR Art. 17).
    UserErased,
}

impl RevokeReason {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignOut => "sign_out",
            Self::Revoked => "revoked",
            Self::RefreshReuse => "refresh_reuse",
            Self::IdleTimeout => "idle_timeout",
            Self::AbsoluteTimeout => "absolute_timeout",
            Self::PasswordChanged => "password_changed",
            Self::UserDeactivated => "user_deactivated",
            Self::UserErased => "user_erased",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_garbage_is_refused() {
        assert_eq!(
            email("e", "  Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "a@b@c.com",
        ] {
            assert!(email("e", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn erased_is_a_status_of_its_own_and_final() {
        assert_eq!(UserStatus::from_db("ERASED"), UserStatus::Erased);
        assert_eq!(UserStatus::Erased.as_str(), "ERASED");
        assert!(!UserStatus::Erased.may_recover());
        assert!(!UserStatus::Disabled.may_recover());
        assert!(UserStatus::Invited.may_recover());
        assert!(not_erased("ERASED").is_err());
        assert!(not_erased("DISABLED").is_ok());
        // A valid address, so that nothing choking on invalid ones trips over it.
        let erased = erased_email(Uuid::now_v7());
        assert_eq!(email("e", &erased).ok(), Some(erased));
    }

    #[test]
    fn role_names_and_slugs_have_a_strict_alphabet() {
        assert!(role_name("r", "billing_admin").is_ok());
        assert!(role_name("r", "Billing").is_err());
        assert!(role_name("r", "1admin").is_err());
        assert!(slug("s", "acme-corp").is_ok());
        assert!(slug("s", "-acme").is_err());
        assert!(slug("s", "ac").is_err());
    }
}
