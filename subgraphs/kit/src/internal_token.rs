//! Short-lived tokens by which the gateway vouches for the actor of a subgraph request.
//!
//! Format: `base64url(json claims) "." base64url(HMAC-SHA256(secret, first part))`. The
//! secret is shared by the gateway and the subgraphs (configuration); a subgraph refuses any
//! HTTP request whose token is missing, forged, expired or addressed to another subgraph
//! (the `aud` claim names the one subgraph a token is for, so a token one subgraph
//! receives cannot be replayed against another). Tokens live for a minute: they cover one
//! gateway request, never a session.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::actor::{Actor, RequestMeta};

/// Header that carries the internal token on gateway → subgraph requests.
pub const HEADER: &str = "x-portal-internal-token";

/// How long an issued token stays valid, in seconds.
const LIFETIME_SECS: i64 = 60;

/// Why a token was refused. Deliberately coarse: callers learn nothing useful from it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InternalTokenError {
    /// Not of the `claims.signature` form, or not decodable.
    #[error("malformed internal token")]
    Malformed,
    /// The signature does not match.
    #[error("invalid internal token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("expired internal token")]
    Expired,
    /// Addressed to another subgraph.
    #[error("internal token for another audience")]
    WrongAudience,
}

/// Clock skew tolerated between gateway and subgraph hosts, in seconds.
const LEEWAY_SECS: i64 = 5;

#[derive(Serialize, Deserialize)]
struct Claims {
    aud: String,
    actor: Actor,
    #[serde(default)]
    meta: RequestMeta,
    exp: i64,
}

/// Signs and verifies internal tokens with one shared secret.
#[derive(Clone)]
pub struct InternalTokenKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for InternalTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalTokenKey(..)")
    }
}

impl InternalTokenKey {
    /// A key from the shared secret (at least 32 bytes are expected; config validates it).
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Self { mac }
    }

    /// A token naming `actor` for one request to the subgraph `audience`, valid for a
    /// minute.
    pub fn sign(&self, audience: &str, actor: &Actor, meta: &RequestMeta) -> String {
        let claims = Claims {
            aud: audience.to_owned(),
            actor: actor.clone(),
            meta: meta.clone(),
            exp: Utc::now().timestamp() + LIFETIME_SECS,
        };
        // Serializing plain data structs to JSON cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{body}.{signature}")
    }

    /// The actor and request facts a valid token for `audience` names.
    pub fn verify(
        &self,
        audience: &str,
        token: &str,
    ) -> Result<(Actor, RequestMeta), InternalTokenError> {
        let (body, signature) = token.split_once('.').ok_or(InternalTokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| InternalTokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| InternalTokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| InternalTokenError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&json).map_err(|_| InternalTokenError::Malformed)?;
        if claims.exp + LEEWAY_SECS < Utc::now().timestamp() {
            return Err(InternalTokenError::Expired);
        }
        if claims.aud != audience {
            return Err(InternalTokenError::WrongAudience);
        }
        Ok((claims.actor, claims.meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn actor() -> Actor {
        Actor::user(Uuid::now_v7(), Uuid::now_v7(), vec!["customer_user".into()])
    }

    #[test]
    fn signed_token_round_trips_the_actor() {
        let key = InternalTokenKey::new(b"0123456789abcdef0123456789abcdef");
        let actor = actor();
        let token = key.sign("accounts", &actor, &RequestMeta::default());
        assert_eq!(key.verify("accounts", &token).map(|(a, _)| a), Ok(actor));
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let key = InternalTokenKey::new(b"0123456789abcdef0123456789abcdef");
        let other = InternalTokenKey::new(b"another-secret-another-secret-xx");
        let token = other.sign("accounts", &actor(), &RequestMeta::default());
        assert_eq!(
            key.verify("accounts", &token),
            Err(InternalTokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_claims_are_rejected() {
        let key = InternalTokenKey::new(b"0123456789abcdef0123456789abcdef");
        let token = key.sign("accounts", &actor(), &RequestMeta::default());
        let (_, signature) = token.split_once('.').unwrap_or_default();
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"actor":{"kind":"user"},"exp":99999999999}"#);
        let forged = format!("{forged_body}.{signature}");
        assert_eq!(
            key.verify("accounts", &forged),
            Err(InternalTokenError::BadSignature)
        );
        assert_eq!(
            key.verify("accounts", "garbage"),
            Err(InternalTokenError::Malformed)
        );
    }

    #[test]
    fn token_for_one_subgraph_is_refused_by_another() {
        let key = InternalTokenKey::new(b"0123456789abcdef0123456789abcdef");
        let token = key.sign("reports", &actor(), &RequestMeta::default());
        assert_eq!(
            key.verify("accounts", &token),
            Err(InternalTokenError::WrongAudience)
        );
    }
}
