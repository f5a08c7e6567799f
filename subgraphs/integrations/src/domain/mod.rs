//! Integration rules: kinds, statuses, provider names, webhook URLs and event types,
//! and external ids. Pure functions over plain values; no GraphQL, HTTP or database
//! types.

pub mod catalogue;
pub mod sync;
pub mod webhooks;

use portal_kit::input;
use portal_kit::references::Referent;
use portal_kit::{ApiError, ApiResult};

/// An account an external id may refer to: visible to the caller in its
/// tenant (accounts' row rules apply) and open.
pub const OPEN_ACCOUNT: Referent = Referent {
    typename: "Account",
    status_field: "status",
    usable: &["OPEN"],
    noun: "account",
};

/// Longest accepted integration name, in characters.
pub const NAME_MAX: usize = 200;
/// Longest accepted webhook description, in characters.
pub const DESCRIPTION_MAX: usize = 500;
/// Longest accepted webhook URL, in characters.
pub const URL_MAX: usize = 2048;
/// Most event types one webhook endpoint may subscribe to.
pub const EVENT_TYPES_MAX: usize = 50;
/// Longest accepted event type, in characters.
pub const EVENT_TYPE_MAX_LEN: usize = 100;
/// Longest accepted external id, in characters.
pub const EXTERNAL_ID_MAX: usize = 200;

/// What an external system is to the portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationKind {
    /// Customer relationship management.
    Crm,
    /// Billing and invoicing.
    Billing,
}

impl IntegrationKind {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crm => "CRM",
            Self::Billing => "BILLING",
        }
    }

    /// Parses the storage form; unknown values read as `Crm`.
    pub fn from_db(value: &str) -> Self {
        match value {
            "BILLING" => Self::Billing,
            _ => Self::Crm,
        }
    }
}

/// Lifecycle of an integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationStatus {
    /// Synchronizing.
    Active,
    /// Switched off by a user.
    Paused,
    /// Stopped after a failure.
    Error,
}

impl IntegrationStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Paused => "PAUSED",
            Self::Error => "ERROR",
        }
    }

    /// Parses the storage form; unknown values read as `Error` (fail closed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "ACTIVE" => Self::Active,
            "PAUSED" => Self::Paused,
            _ => Self::Error,
        }
    }
}

/// The remote's name for the record an account is linked to: what a link made by hand
/// (`linkExternalRef`) is, so that sync finds it.
pub fn account_type_of(provider: &str) -> &'static str {
    match provider {
        "stripe" => "customer",
        "hubspot" => "company",
        _ => "account",
    }
}

/// A provider name: 2–64 characters of `a-z`, `0-9`, `_` and `-`.
pub fn provider(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim();
    let valid = (2..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 2-64 characters of a-z, 0-9, _ and -",
        ))
    }
}

/// A webhook description: at most [`DESCRIPTION_MAX`] characters; blank means none.
pub fn description(field: &'static str, raw: &str) -> ApiResult<String> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    input::text(field, raw, DESCRIPTION_MAX)
}

/// An external system's id for a record: one line of at most [`EXTERNAL_ID_MAX`]
/// characters.
pub fn external_id(field: &'static str, raw: &str) -> ApiResult<String> {
    input::text(field, raw, EXTERNAL_ID_MAX)
}

/// A webhook target: an absolute `https` URL (`http` only for `localhost` and
/// `127.0.0.1`) of at most [`URL_MAX`] ASCII characters, with a host, without
/// credentials, whitespace or backslashes.
pub fn webhook_url(field: &'static str, raw: &str) -> ApiResult<String> {
    let invalid = |message: &str| ApiError::invalid(field, message);
    let value = raw.trim();
    if value.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if value.len() > URL_MAX {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {URL_MAX} characters"),
        ));
    }
    if !value.is_ascii()
        || value
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(invalid(
            "must be ASCII without whitespace (percent-encode, use punycode hosts)",
        ));
    }
    if value.contains('\\') {
        return Err(invalid("must not contain backslashes"));
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(invalid("must be an absolute URL"));
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(invalid("must not contain credentials"));
    }
    let host = url_host(authority).ok_or_else(|| invalid("must have a valid host and port"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(value.to_owned()),
        "http" if is_loopback_name(&host) => Ok(value.to_owned()),
        "http" => Err(invalid("must use https (http only for localhost)")),
        _ => Err(invalid("must be an https URL")),
    }
}

/// The lower-cased host of a URL authority (`host`, `host:port`, `[v6]`, `[v6]:port`),
/// or `None` when the host is empty or malformed or the port is invalid.
fn url_host(authority: &str) -> Option<String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        let valid = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        valid.then_some(())?;
        (format!("[{inner}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        valid.then_some(())?;
        (host.to_owned(), port)
    };
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        valid.then_some(())?;
    }
    Some(host.to_ascii_lowercase())
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost" || host == "127.0.0.1"
}

/// Webhook event types: 1 to [`EVENT_TYPES_MAX`] names like `account.updated`
/// (`[a-z]+(\.[a-z_]+)+`) from the webhook [`catalogue`], duplicates dropped, order kept.
pub fn event_types(field: &'static str, raw: &[String]) -> ApiResult<Vec<String>> {
    if raw.is_empty() || raw.len() > EVENT_TYPES_MAX {
        return Err(ApiError::invalid(
            field,
            format!("must list 1 to {EVENT_TYPES_MAX} event types"),
        ));
    }
    let mut types: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let name = name.trim();
        if !is_event_type(name) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "each event type must look like `account.updated` (a-z and _, \
                     dot-separated, at most {EVENT_TYPE_MAX_LEN} characters)"
                ),
            ));
        }
        if catalogue::find(name).is_none() {
            return Err(ApiError::invalid(
                field,
                format!(
                    "`{name}` is not an event type webhooks deliver (see docs/integrations.md)"
                ),
            ));
        }
        if !types.iter().any(|t| t == name) {
            types.push(name.to_owned());
        }
    }
    Ok(types)
}

fn is_event_type(name: &str) -> bool {
    let mut parts = name.split('.');
    let head_ok = parts
        .next()
        .is_some_and(|head| !head.is_empty() && head.chars().all(|c| c.is_ascii_lowercase()));
    let tail: Vec<&str> = parts.collect();
    name.len() <= EVENT_TYPE_MAX_LEN
        && head_ok
        && !tail.is_empty()
        && tail.iter().all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn provider_names_use_lowercase_letters_digits_underscores_and_dashes() {
        for ok in ["hubspot", "sales-force", "zoho_crm2", "ab"] {
            assert!(provider("p", ok).is_ok(), "{ok} refused");
        }
        for bad in ["a", "HubSpot", "sales force", "crm.io", "", &"x".repeat(65)] {
            assert!(provider("p", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn https_urls_with_a_host_are_accepted() {
        for ok in [
            "https://hooks.example.com/portal",
            "https://hooks.example.com:8443/a/b?x=1#frag",
            "HTTPS://Example.COM",
            "https://[2001:db8::1]:443/hook",
        ] {
            assert_eq!(webhook_url("u", ok).ok().as_deref(), Some(ok));
        }
    }

    #[test]
    fn plain_http_is_accepted_only_for_localhost() {
        assert!(webhook_url("u", "http://localhost:8080/hook").is_ok());
        assert!(webhook_url("u", "http://127.0.0.1/hook").is_ok());
        assert!(webhook_url("u", "http://LOCALHOST/hook").is_ok());
        assert!(webhook_url("u", "http://example.com/hook").is_err());
        assert!(webhook_url("u", "http://localhost.evil.com/hook").is_err());
        assert!(webhook_url("u", "http://127.0.0.1.nip.io/").is_err());
    }

    #[test]
    fn urls_with_credentials_whitespace_or_odd_hosts_are_refused() {
        for bad in [
            "",
            "example.com/hook",
            "ftp://example.com/file",
            "javascript://example.com/%0aalert(1)",
            "https://user:pass@example.com/",
            "https://@example.com/",
            "https://exa mple.com/",
            "https://example.com/a b",
            "https://",
            "https:///path",
            "https://example..com/",
            "https://example.com:/",
            "https://example.com:99999/",
            "https://example.com:0/",
            "https://%65xample.com/",
            "https://example.com\\@evil.com/",
            "https://bücher.example/",
            "https://[]/",
            "https://[::1/",
        ] {
            assert!(webhook_url("u", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn urls_longer_than_2048_characters_are_refused() {
        let base = "https://example.com/";
        let fits = format!("{base}{}", "a".repeat(URL_MAX - base.len()));
        assert!(webhook_url("u", &fits).is_ok());
        assert!(webhook_url("u", &format!("{fits}a")).is_err());
    }

    #[test]
    fn event_types_are_catalogue_names_and_duplicates_are_dropped() {
        let given = strings(&["account.updated", "message.posted", "account.updated"]);
        assert_eq!(
            event_types("e", &given).ok(),
            Some(strings(&["account.updated", "message.posted"]))
        );
        for bad in [
            "account",
            "Account.updated",
            "account.",
            ".updated",
            "account..x",
            "a.b1",
            "report_run.finished",
            "thread.message_posted",
            "job.succeeded",
            "user.password_changed",
        ] {
            assert!(
                event_types("e", &strings(&[bad])).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn between_one_and_fifty_event_types_are_required() {
        assert!(event_types("e", &[]).is_err());
        let fifty: Vec<String> = (0..EVENT_TYPES_MAX)
            .map(|_| "account.updated".into())
            .collect();
        assert!(event_types("e", &fifty).is_ok());
        let fifty_one: Vec<String> = (0..=EVENT_TYPES_MAX)
            .map(|_| "account.updated".into())
            .collect();
        assert!(event_types("e", &fifty_one).is_err());
    }

    #[test]
    fn blank_descriptions_mean_none_and_long_ones_are_refused() {
        assert_eq!(description("d", "   ").ok().as_deref(), Some(""));
        assert_eq!(
            description("d", " CRM sync ").ok().as_deref(),
            Some("CRM sync")
        );
        assert!(description("d", &"x".repeat(DESCRIPTION_MAX + 1)).is_err());
    }

    #[test]
    fn unknown_stored_statuses_read_as_error() {
        assert_eq!(
            IntegrationStatus::from_db("BROKEN"),
            IntegrationStatus::Error
        );
        assert_eq!(
            IntegrationStatus::from_db("PAUSED"),
            IntegrationStatus::Paused
        );
    }
}
