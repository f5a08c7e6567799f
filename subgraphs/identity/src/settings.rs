//! Identity's run-time settings (a leaf: no other module of this crate is imported).

use std::time::Duration;

use portal_kit::secret::DataKey;

/// Identity's run-time settings.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    /// The `iss` of access tokens; gateways accept only this issuer.
    pub issuer: String,
    /// Lifetime of an access token (at most one hour).
    pub access_token_ttl: Duration,
    /// Age at which the signing key is replaced.
    pub key_rotation: Duration,
    /// Seals secrets at rest (signing keys, TOTP secrets, queued emails).
    pub data_key: DataKey,
    /// Base URL of the portal's web front end, for links in emails (never taken from the
    /// request's Host header).
    pub public_url: String,
    /// The clock identity's timeouts are measured with — session lifetimes (idle and
    /// absolute), second-factor challenges, password-reset, invitation and email-change
    /// links, sign-in and reset throttling windows and locks; tests move it instead of
    /// sleeping or rewriting rows. Access tokens carry wall time: gateways verify them
    /// with theirs.
    pub clock: portal_kit::clock::SharedClock,
}

impl IdentitySettings {
    /// Defaults: issuer `portal`, 5-minute access tokens, 30-day key rotation.
    pub fn new(data_key: DataKey) -> Self {
        Self {
            issuer: "portal".into(),
            access_token_ttl: Duration::from_secs(300),
            key_rotation: Duration::from_secs(30 * 24 * 3600),
            data_key,
            public_url: "http://127.0.0.1:4000".into(),
            clock: portal_kit::clock::system(),
        }
    }
}
