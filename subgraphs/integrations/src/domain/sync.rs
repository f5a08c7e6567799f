//! Sync rules: run modes and statuses, integration health and the circuit breaker,
//! per-field source-of-truth rules, record fingerprints and money in minor units. Pure
//! functions over plain values.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use portal_kit::{ApiError, ApiResult};

/// Remote failures in a row that open the circuit.
pub const BREAKER_THRESHOLD: i32 = 5;
/// Longest the circuit stays open.
pub const BREAKER_MAX_OPEN_MINUTES: i64 = 60;

/// How a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Everything the remote has, then on as incremental.
    Backfill,
    /// Changes since the integration's cursor (or a chosen one: a replay).
    Incremental,
}

impl RunMode {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backfill => "BACKFILL",
            Self::Incremental => "INCREMENTAL",
        }
    }

    /// Parses the storage form (unknown reads as incremental).
    pub fn from_db(value: &str) -> Self {
        if value == "BACKFILL" {
            Self::Backfill
        } else {
            Self::Incremental
        }
    }
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Pages are being pulled.
    Running,
    /// Done (records that failed are listed; the run went on past them).
    Succeeded,
    /// Stopped: credentials refused, the remote down for too long, the cursor expired.
    Failed,
}

impl RunStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses the storage form (unknown reads as failed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            _ => Self::Failed,
        }
    }
}

/// How an integration's remote is doing, from its last calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Never called.
    Unknown,
    /// The last call succeeded.
    Healthy,
    /// Recent calls failed, fewer than the breaker's threshold.
    Degraded,
    /// The circuit is open, or the credentials were refused.
    Failing,
}

impl Health {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Healthy => "HEALTHY",
            Self::Degraded => "DEGRADED",
            Self::Failing => "FAILING",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Self {
        match value {
            "HEALTHY" => Self::Healthy,
            "DEGRADED" => Self::Degraded,
            "FAILING" => Self::Failing,
            _ => Self::Unknown,
        }
    }
}

/// An integration's breaker state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breaker {
    /// Failures in a row.
    pub failures: i32,
    /// Open until then.
    pub open_until: Option<DateTime<Utc>>,
    /// Health it implies.
    pub health: Health,
}

impl Breaker {
    /// After a successful call.
    pub fn closed() -> Self {
        Self {
            failures: 0,
            open_until: None,
            health: Health::Healthy,
        }
    }

    /// After one more outage (`failures` before it), at `now`: from
    /// [`BREAKER_THRESHOLD`] failures on the circuit opens, for a minute, doubling with
    /// each further failure, at most an hour; while open nothing calls the remote, and
    /// the first call after it (half-open) closes it or opens it again for longer.
    pub fn after_outage(failures: i32, now: DateTime<Utc>) -> Self {
        let failures = failures.saturating_add(1);
        if failures < BREAKER_THRESHOLD {
            return Self {
                failures,
                open_until: None,
                health: Health::Degraded,
            };
        }
        let doublings = u32::try_from(failures - BREAKER_THRESHOLD)
            .unwrap_or(0)
            .min(6);
        let minutes = (1_i64 << doublings).min(BREAKER_MAX_OPEN_MINUTES);
        Self {
            failures,
            open_until: Some(now + Duration::minutes(minutes)),
            health: Health::Failing,
        }
    }

    /// After the remote refused the credentials: failing until they are replaced (no
    /// timed reopening: calling again cannot help).
    pub fn refused(failures: i32) -> Self {
        Self {
            failures: failures.saturating_add(1),
            open_until: None,
            health: Health::Failing,
        }
    }
}

/// What kind of error a remote call ended with: what a person can do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The credentials were refused or the authorization revoked: reconnect.
    AuthRevoked,
    /// The remote is limiting our calls: it passes by itself.
    RateLimited,
    /// The remote failed or could not be reached.
    RemoteDown,
    /// The remote refused a request, or answered something unreadable.
    BadData,
}

impl ErrorKind {
    /// The kind of `err`.
    pub fn of(err: &crate::connectors::RemoteError) -> Self {
        use crate::connectors::RemoteError;
        match err {
            RemoteError::Unauthorized(_) => Self::AuthRevoked,
            RemoteError::RateLimited { .. } => Self::RateLimited,
            RemoteError::Unavailable(_) => Self::RemoteDown,
            RemoteError::Rejected { .. } | RemoteError::Malformed(_) => Self::BadData,
        }
    }

    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthRevoked => "AUTH_REVOKED",
            Self::RateLimited => "RATE_LIMITED",
            Self::RemoteDown => "REMOTE_DOWN",
            Self::BadData => "BAD_DATA",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Option<Self> {
        match value {
            "AUTH_REVOKED" => Some(Self::AuthRevoked),
            "RATE_LIMITED" => Some(Self::RateLimited),
            "REMOTE_DOWN" => Some(Self::RemoteDown),
            "BAD_DATA" => Some(Self::BadData),
            _ => None,
        }
    }
}

/// Who wins when a field differs between the portal and the remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceOfTruth {
    /// The portal's value stands and is pushed to the remote.
    Portal,
    /// The remote's value is written into the portal.
    Remote,
}

impl SourceOfTruth {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portal => "PORTAL",
            Self::Remote => "REMOTE",
        }
    }

    /// Parses the storage form.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "PORTAL" => Some(Self::Portal),
            "REMOTE" => Some(Self::Remote),
            _ => None,
        }
    }
}

/// Portal fields a connector synchronizes both ways, with their default rule.
pub const SYNCED_FIELDS: [(&str, SourceOfTruth); 1] = [("Account.name", SourceOfTruth::Portal)];

/// Per-field rules: the defaults of [`SYNCED_FIELDS`], overridden by the integration's
/// settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRules(BTreeMap<String, SourceOfTruth>);

impl FieldRules {
    /// The rules in `settings` (`{"fieldRules": {"Account.name": "REMOTE"}}`), over the
    /// defaults.
    pub fn from_settings(settings: Option<&Value>) -> Self {
        let mut rules: BTreeMap<String, SourceOfTruth> = SYNCED_FIELDS
            .iter()
            .map(|(field, rule)| ((*field).to_owned(), *rule))
            .collect();
        if let Some(stored) = settings
            .and_then(|s| s.get("fieldRules"))
            .and_then(Value::as_object)
        {
            for (field, rule) in stored {
                if let (true, Some(rule)) = (
                    rules.contains_key(field),
                    rule.as_str().and_then(SourceOfTruth::parse),
                ) {
                    rules.insert(field.clone(), rule);
                }
            }
        }
        Self(rules)
    }

    /// Validated changes: each field must be one of [`SYNCED_FIELDS`].
    pub fn with_changes(
        mut self,
        field: &'static str,
        changes: &[(String, SourceOfTruth)],
    ) -> ApiResult<Self> {
        for (name, rule) in changes {
            if !self.0.contains_key(name) {
                let known: Vec<&str> = SYNCED_FIELDS.iter().map(|(f, _)| *f).collect();
                return Err(ApiError::invalid(
                    field,
                    format!("`{name}` is not synchronized; one of {}", known.join(", ")),
                ));
            }
            self.0.insert(name.clone(), *rule);
        }
        Ok(self)
    }

    /// The rule for `field` (the portal for a field without one).
    pub fn of(&self, field: &str) -> SourceOfTruth {
        self.0.get(field).copied().unwrap_or(SourceOfTruth::Portal)
    }

    /// Every rule, by field.
    pub fn iter(&self) -> impl Iterator<Item = (&str, SourceOfTruth)> {
        self.0.iter().map(|(field, rule)| (field.as_str(), *rule))
    }

    /// Their settings JSON (the value of `fieldRules`).
    pub fn to_value(&self) -> Value {
        let rules: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(field, rule)| (field.clone(), json!(rule.as_str())))
            .collect();
        Value::Object(rules)
    }
}

/// What a connector creates portal accounts with when a CRM company links to none: the
/// owner (a user of the tenant) and the currency. Without them, an unlinked company is
/// recorded as failed until someone links it by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccounts {
    /// The owner of created accounts.
    pub owner_id: Uuid,
    /// Their currency (ISO 4217).
    pub currency: String,
}

impl NewAccounts {
    /// The defaults in `settings` (`{"newAccounts": {"ownerId", "currency"}}`).
    pub fn from_settings(settings: Option<&Value>) -> Option<Self> {
        let stored = settings?.get("newAccounts")?;
        Some(Self {
            owner_id: stored
                .get("ownerId")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::parse_str(id).ok())?,
            currency: stored.get("currency").and_then(Value::as_str)?.to_owned(),
        })
    }

    /// Their settings JSON.
    pub fn to_value(&self) -> Value {
        json!({ "ownerId": self.owner_id, "currency": self.currency })
    }
}

/// Whether a CRM integration syncs contacts with users (`{"syncContacts": true}`).
pub fn syncs_contacts(settings: Option<&Value>) -> bool {
    settings
        .and_then(|s| s.get("syncContacts"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `settings` with `key` set to `value` (`None`: removed).
pub fn with_setting(settings: Option<&Value>, key: &str, value: Option<Value>) -> Value {
    let mut map = settings
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match value {
        Some(value) => map.insert(key.to_owned(), value),
        None => map.remove(key),
    };
    Value::Object(map)
}

/// A short stable hash of `value` (the remote fields a sync acted on): a record whose
/// fingerprint did not change is skipped.
pub fn fingerprint(value: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, value.to_string().as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Digits after the point of `currency`'s minor unit, as Stripe counts them.
pub fn minor_unit_exponent(currency: &str) -> u32 {
    const ZERO: [&str; 16] = [
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];
    let upper = currency.to_ascii_uppercase();
    if ZERO.contains(&upper.as_str()) {
        0
    } else if THREE.contains(&upper.as_str()) {
        3
    } else {
        2
    }
}

/// `amount` minor units of `currency` as a decimal amount (`2000` USD → `20.00`).
pub fn from_minor_units(amount: i64, currency: &str) -> Decimal {
    Decimal::new(amount, minor_unit_exponent(currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_follow_each_currency() {
        assert_eq!(from_minor_units(2000, "usd").to_string(), "20.00");
        assert_eq!(from_minor_units(500, "JPY").to_string(), "500");
        assert_eq!(from_minor_units(1230, "kwd").to_string(), "1.230");
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_backs_off() {
        let now = Utc::now();
        let mut failures = 0;
        for _ in 1..BREAKER_THRESHOLD {
            let state = Breaker::after_outage(failures, now);
            assert_eq!((state.health, state.open_until), (Health::Degraded, None));
            failures = state.failures;
        }
        let opened = Breaker::after_outage(failures, now);
        assert_eq!(opened.health, Health::Failing);
        assert_eq!(opened.open_until, Some(now + Duration::minutes(1)));
        let again = Breaker::after_outage(opened.failures, now);
        assert_eq!(again.open_until, Some(now + Duration::minutes(2)));
        let long = Breaker::after_outage(100, now);
        assert_eq!(long.open_until, Some(now + Duration::minutes(60)));
    }

    #[test]
    fn field_rules_default_and_override() -> ApiResult<()> {
        let rules = FieldRules::from_settings(None);
        assert_eq!(rules.of("Account.name"), SourceOfTruth::Portal);
        let changed = rules.with_changes(
            "input.fieldRules",
            &[("Account.name".into(), SourceOfTruth::Remote)],
        )?;
        let stored = with_setting(None, "fieldRules", Some(changed.to_value()));
        assert_eq!(
            FieldRules::from_settings(Some(&stored)).of("Account.name"),
            SourceOfTruth::Remote
        );
        let unknown = FieldRules::from_settings(None).with_changes(
            "input.fieldRules",
            &[("Account.status".into(), SourceOfTruth::Remote)],
        );
        assert!(unknown.is_err());
        Ok(())
    }

    #[test]
    fn fingerprints_change_with_the_value() {
        let a = fingerprint(&json!({ "status": "open" }));
        assert_eq!(a, fingerprint(&json!({ "status": "open" })));
        assert_ne!(a, fingerprint(&json!({ "status": "paid" })));
        assert_eq!(a.len(), 32);
    }
}
