//! Access tokens: short-lived JWTs (EdDSA / Ed25519, with a key id) that the identity
//! subgraph issues at sign-in and refresh, and that the gateway verifies locally with the
//! current public keys — no round trip per request.
//!
//! A token alone is not enough at the gateway: [`AccessTokenVerifier`] also holds the set
//! of revoked sessions, fed from the database within a second of a revocation, so a
//! revoked session stops working long before its last token expires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::actor::{Actor, ActorKind};
use crate::error::ApiError;

/// The `aud` of every access token: the portal's API.
pub const AUDIENCE: &str = "portal-api";

/// The only algorithm issued or accepted (no `alg` confusion possible).
pub const ALGORITHM: &str = "EdDSA";

/// Clock skew tolerated when checking `exp`/`nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Prefix of integrator API keys (`pk_…`); a bearer credential with it is an API key.
pub const API_KEY_PREFIX: &str = "pk_";

/// Resolves integrator API keys to the service actor they act as.
#[async_trait::async_trait]
pub trait ApiKeyResolver: Send + Sync {
    /// The actor of `key`, or `None` when it is unknown, revoked, expired or its service
    /// account is disabled.
    async fn resolve(&self, key: &str) -> Option<Actor>;
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer (configured; the identity service).
    pub iss: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// The user.
    pub sub: Uuid,
    /// The user's tenant.
    pub tid: Uuid,
    /// The session this token belongs to.
    pub sid: Uuid,
    /// Role names held in the tenant when the token was issued.
    pub roles: Vec<String>,
    /// How the user authenticated (`pwd`, `otp`, `sso`).
    pub amr: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: Uuid,
}

/// A private signing key with its key id.
pub struct SigningKey {
    kid: String,
    key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    /// A key from its 32-byte Ed25519 seed.
    pub fn from_seed(kid: String, seed: &[u8; 32]) -> Result<Self, ApiError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let der = ed25519_dalek::SigningKey::from_bytes(seed)
            .to_pkcs8_der()
            .map_err(|err| ApiError::internal(format!("encoding signing key: {err}")))?;
        Ok(Self {
            kid,
            key: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }

    /// The public half of the key whose seed is `seed`, as base64url (the JWK `x`).
    pub fn public_key_of(seed: &[u8; 32]) -> String {
        let public = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key();
        URL_SAFE_NO_PAD.encode(public.as_bytes())
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|err| ApiError::internal(format!("signing access token: {err}")))
    }
}

/// Why a presented access token was refused. Clients only ever see "invalid token".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT, wrong algorithm, unknown key, bad signature, wrong issuer or audience.
    #[error("invalid access token")]
    Invalid,
    /// Past its expiry.
    #[error("expired access token")]
    Expired,
    /// Its session was revoked.
    #[error("revoked session")]
    Revoked,
    /// The key id is not (yet) known: the caller may refresh its keys and retry once.
    #[error("unknown signing key")]
    UnknownKey,
}

/// Verifies access tokens against the current public keys and revoked sessions.
pub struct AccessTokenVerifier {
    validation: Validation,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Revoked session → when it can be forgotten (no token of it can be valid after).
    revoked: RwLock<HashMap<Uuid, DateTime<Utc>>>,
    /// Set when a token named an unknown key, so the key feed reloads early.
    wished: AtomicBool,
    wish: Notify,
    /// Bumped whenever the keys are replaced.
    keys_version: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenVerifier")
            .field("keys", &self.keys.read().len())
            .field("revoked", &self.revoked.read().len())
            .finish()
    }
}

impl AccessTokenVerifier {
    /// A verifier accepting tokens of `issuer`, with no keys yet.
    pub fn new(issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            validation,
            keys: RwLock::new(HashMap::new()),
            revoked: RwLock::new(HashMap::new()),
            wished: AtomicBool::new(false),
            wish: Notify::new(),
            keys_version: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Waits (at most `patience`) for the keys to be reloaded after asking for it; for a
    /// token naming a key published since the last poll.
    pub async fn await_new_keys(&self, patience: std::time::Duration) {
        let mut changed = self.keys_version.subscribe();
        changed.mark_unchanged();
        self.wish_keys();
        let _ = tokio::time::timeout(patience, changed.changed()).await;
    }

    /// Asks the key feed to reload keys soon (a token named a key id not known yet).
    pub fn wish_keys(&self) {
        if !self.wished.swap(true, Ordering::AcqRel) {
            self.wish.notify_one();
        }
    }

    /// Completes when [`AccessTokenVerifier::wish_keys`] was called.
    pub async fn key_wanted(&self) {
        self.wish.notified().await;
    }

    /// Whether keys were wished for since the last call (and forgets the wish).
    pub fn take_key_wish(&self) -> bool {
        self.wished.swap(false, Ordering::AcqRel)
    }

    /// Replaces the verification keys: `(kid, base64url Ed25519 public key)`.
    pub fn set_keys(&self, keys: impl IntoIterator<Item = (String, String)>) {
        let keys = keys
            .into_iter()
            .filter_map(|(kid, x)| {
                let key = DecodingKey::from_ed_components(&x).ok()?;
                Some((kid, key))
            })
            .collect();
        *self.keys.write() = keys;
        self.keys_version
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Whether a key with id `kid` is known.
    pub fn knows_key(&self, kid: &str) -> bool {
        self.keys.read().contains_key(kid)
    }

    /// Marks sessions revoked until the paired instant (after which none of their tokens
    /// can still be valid), and forgets revocations whose instant has passed.
    pub fn revoke(&self, sessions: impl IntoIterator<Item = (Uuid, DateTime<Utc>)>) {
        let now = Utc::now();
        let mut revoked = self.revoked.write();
        revoked.extend(sessions);
        revoked.retain(|_, until| *until > now);
    }

    /// Whether `session` is known to be revoked.
    pub fn is_revoked(&self, session: Uuid) -> bool {
        self.revoked.read().contains_key(&session)
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let claims = {
            let keys = self.keys.read();
            let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
            jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
                .map_err(|err| match err.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                })?
                .claims
        };
        if self.is_revoked(claims.sid) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }
}

impl AccessClaims {
    /// The actor these claims name.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: Some(self.sub),
            tenant_id: Some(self.tid),
            roles: self.roles.clone(),
            session_id: Some(self.sid),
            grants: Vec::new(),
            delegation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> AccessClaims {
        let now = Utc::now().timestamp();
        AccessClaims {
            iss: "portal-test".into(),
            aud: AUDIENCE.into(),
            sub: Uuid::now_v7(),
            tid: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            roles: vec!["customer_user".into()],
            amr: vec!["pwd".into()],
            iat: now,
            exp: now + exp_in,
            jti: Uuid::now_v7(),
        }
    }

    fn verifier_with(kid: &str, seed: &[u8; 32]) -> AccessTokenVerifier {
        let verifier = AccessTokenVerifier::new("portal-test");
        verifier.set_keys([(kid.to_owned(), SigningKey::public_key_of(seed))]);
        verifier
    }

    #[test]
    fn tokens_verify_with_the_published_key_only() -> Result<(), ApiError> {
        let seed = [7u8; 32];
        let key = SigningKey::from_seed("k1".into(), &seed)?;
        let claims = claims(300);
        let token = key.sign(&claims)?;
        let verifier = verifier_with("k1", &seed);
        assert_eq!(verifier.verify(&token), Ok(claims.clone()));

        let other = verifier_with("k1", &[8u8; 32]);
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
        let unknown = verifier_with("k2", &seed);
        assert_eq!(unknown.verify(&token), Err(TokenError::UnknownKey));
        Ok(())
    }

    #[test]
    fn expired_revoked_foreign_and_tampered_tokens_are_refused() -> Result<(), ApiError> {
        let seed = [9u8; 32];
        let key = SigningKey::from_seed("k".into(), &seed)?;
        let verifier = verifier_with("k", &seed);
        assert_eq!(
            verifier.verify(&key.sign(&claims(-60))?),
            Err(TokenError::Expired)
        );

        let mut foreign = claims(300);
        foreign.iss = "someone-else".into();
        assert_eq!(
            verifier.verify(&key.sign(&foreign)?),
            Err(TokenError::Invalid)
        );
        let mut wrong_audience = claims(300);
        wrong_audience.aud = "other-api".into();
        assert_eq!(
            verifier.verify(&key.sign(&wrong_audience)?),
            Err(TokenError::Invalid)
        );

        let live = claims(300);
        let token = key.sign(&live)?;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = live.clone();
        forged.roles = vec!["platform_admin".into()];
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        assert_eq!(verifier.verify(&parts.join(".")), Err(TokenError::Invalid));

        // `alg: none` and HMAC tokens never verify.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k"}"#),
            parts[1]
        );
        assert_eq!(verifier.verify(&none), Err(TokenError::Invalid));

        verifier.revoke([(live.sid, Utc::now() + chrono::Duration::minutes(5))]);
        assert_eq!(verifier.verify(&token), Err(TokenError::Revoked));
        Ok(())
    }
}
