//! Authentication: turns request headers into the [`Actor`] every later stage trusts.
//!
//! - `Authorization: Bearer <access token>`: a JWT issued by identity, verified locally
//!   against the current public keys and the revoked-session set
//!   ([`AccessTokenVerifier`], kept current by identity's feed).
//! - Development headers (`x-portal-user-id`, `x-portal-tenant-id`, `x-portal-roles`):
//!   OFF unless explicitly enabled (`portal serve --demo`), since anyone can claim to be
//!   anyone with them.
//! - `Authorization: Bearer pk_…` or `X-API-Key: pk_…`: an integrator's API key, acting
//!   as its service account with the key's roles ([`ApiKeyResolver`]).
//! - `X-Portal-Delegation: <internal token>`: a platform component (a worker running a
//!   scheduled report) acting for a user or service account who is not present. The token
//!   is signed with the internal secret only the portal's own processes hold, is
//!   addressed to the gateway, lives a minute, and must name its [`Delegation`] (who acts,
//!   what for), which audit events then record. Off unless the internal secret is
//!   configured ([`Authentication::with_delegation`]).
//! - Nothing: the anonymous actor (which can sign in and little else).
//!
//! A presented but invalid credential is never downgraded to anonymous: it is refused
//! with `401` and `UNAUTHENTICATED`, so a client learns at once that it must refresh.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::{Map, Value};
use uuid::Uuid;

use portal_kit::access_token::{API_KEY_PREFIX, AccessTokenVerifier, ApiKeyResolver, TokenError};
use portal_kit::internal_token::InternalTokenKey;
use portal_kit::{Actor, ActorKind};

use crate::response::GraphQLError;

/// Header naming the acting user (development scheme).
pub const DEV_USER_HEADER: &str = "x-portal-user-id";
/// Header naming the user's tenant (development scheme).
pub const DEV_TENANT_HEADER: &str = "x-portal-tenant-id";
/// Header listing the user's roles, comma-separated (development scheme).
pub const DEV_ROLES_HEADER: &str = "x-portal-roles";

/// How long a request naming an unknown signing key waits for the keys to be reloaded.
const KEY_RELOAD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Header that may carry an integrator's API key (instead of `Authorization: Bearer`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// Header carrying a delegated credential: an internal token addressed to
/// [`GATEWAY_AUDIENCE`] whose actor names its delegation.
pub const DELEGATION_HEADER: &str = "x-portal-delegation";

/// The audience of internal tokens the gateway accepts (delegated credentials).
pub const GATEWAY_AUDIENCE: &str = "gateway";

/// How the gateway establishes who is calling.
#[derive(Clone, Default)]
pub struct Authentication {
    tokens: Option<Arc<AccessTokenVerifier>>,
    api_keys: Option<Arc<dyn ApiKeyResolver>>,
    delegation: Option<InternalTokenKey>,
    dev_headers: bool,
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authentication")
            .field("tokens", &self.tokens.is_some())
            .field("api_keys", &self.api_keys.is_some())
            .field("delegation", &self.delegation.is_some())
            .field("dev_headers", &self.dev_headers)
            .finish()
    }
}

impl Authentication {
    /// Everyone is anonymous (no verifier configured).
    pub fn anonymous_only() -> Self {
        Self::default()
    }

    /// Bearer access tokens verified by `verifier`.
    pub fn tokens(verifier: Arc<AccessTokenVerifier>) -> Self {
        Self {
            tokens: Some(verifier),
            ..Self::default()
        }
    }

    /// Also accept integrators' API keys, resolved by `resolver`.
    pub fn with_api_keys(mut self, resolver: Arc<dyn ApiKeyResolver>) -> Self {
        self.api_keys = Some(resolver);
        self
    }

    /// Also accept delegated credentials signed with `key` (the internal secret).
    pub fn with_delegation(mut self, key: InternalTokenKey) -> Self {
        self.delegation = Some(key);
        self
    }

    /// Also trust the development identity headers. For local demos and tests only.
    pub fn with_dev_headers(mut self) -> Self {
        self.dev_headers = true;
        self
    }

    /// Whether development headers are trusted.
    pub fn trusts_dev_headers(&self) -> bool {
        self.dev_headers
    }

    /// The actor of a request with `headers` (a failure is counted by its reason).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Actor, GraphQLError> {
        self.identify(headers).await.map_err(|(reason, error)| {
            crate::metrics::auth_failure(reason);
            error
        })
    }

    async fn identify(&self, headers: &HeaderMap) -> Result<Actor, (&'static str, GraphQLError)> {
        if let Some(value) = headers.get(DELEGATION_HEADER) {
            return self
                .delegated(value.to_str().unwrap_or("").trim())
                .map_err(|error| ("delegation_invalid", error));
        }
        if let Some(value) = headers.get(API_KEY_HEADER) {
            return self
                .api_key(value.to_str().unwrap_or("").trim())
                .await
                .map_err(|error| ("api_key_invalid", error));
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            return self.bearer(value.to_str().unwrap_or("")).await;
        }
        if self.dev_headers {
            return dev_actor(headers).map_err(|error| ("dev_headers_malformed", error));
        }
        Ok(Actor::anonymous())
    }

    async fn bearer(&self, value: &str) -> Result<Actor, (&'static str, GraphQLError)> {
        let invalid = || GraphQLError::new("invalid or expired access token", "UNAUTHENTICATED");
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
        else {
            return Err((
                "authorization_malformed",
                GraphQLError::new(
                    "the Authorization header must be `Bearer <token>`",
                    "UNAUTHENTICATED",
                ),
            ));
        };
        if token.starts_with(API_KEY_PREFIX) {
            return self
                .api_key(token)
                .await
                .map_err(|error| ("api_key_invalid", error));
        }
        let Some(verifier) = &self.tokens else {
            return Err(("token_not_accepted", invalid()));
        };
        let verified = match verifier.verify(token) {
            Err(TokenError::UnknownKey) => {
                // A key published since the last poll (or a made-up key id): have the
                // feed reload now — it does so at most twice a second — and look again.
                verifier.await_new_keys(KEY_RELOAD_PATIENCE).await;
                verifier.verify(token)
            }
            other => other,
        };
        verified.map(|claims| claims.actor()).map_err(|err| {
            let reason = match err {
                TokenError::Expired => "token_expired",
                TokenError::Revoked => "session_revoked",
                TokenError::UnknownKey => "token_unknown_key",
                TokenError::Invalid => "token_invalid",
            };
            (reason, invalid())
        })
    }
}

impl Authentication {
    /// Whether `headers` carry a valid internal token addressed to the gateway (one of the
    /// portal's own processes calling).
    pub fn is_internal(&self, headers: &HeaderMap) -> bool {
        let token = headers
            .get(portal_kit::internal_token::HEADER)
            .and_then(|v| v.to_str().ok());
        match (&self.delegation, token) {
            (Some(key), Some(token)) => key.verify(GATEWAY_AUDIENCE, token.trim()).is_ok(),
            _ => false,
        }
    }

    /// The actor a delegated credential names: a user or service account of a tenant,
    /// marked with its delegation. Grants are the gateway's to decide, never the token's.
    fn delegated(&self, token: &str) -> Result<Actor, GraphQLError> {
        let refused = || GraphQLError::new("invalid delegated credential", "UNAUTHENTICATED");
        let key = self.delegation.as_ref().ok_or_else(refused)?;
        let (mut actor, _) = key.verify(GATEWAY_AUDIENCE, token).map_err(|_| refused())?;
        let acting_for_someone = matches!(actor.kind, ActorKind::User | ActorKind::Service)
            && actor.id.is_some()
            && actor.tenant_id.is_some()
            && actor.delegation.is_some();
        if !acting_for_someone {
            return Err(refused());
        }
        actor.grants.clear();
        Ok(actor)
    }

    async fn api_key(&self, key: &str) -> Result<Actor, GraphQLError> {
        let resolved = match &self.api_keys {
            Some(resolver) => resolver.resolve(key).await,
            None => None,
        };
        resolved.ok_or_else(|| {
            GraphQLError::new("invalid, expired or revoked API key", "UNAUTHENTICATED")
        })
    }
}

fn dev_actor(headers: &HeaderMap) -> Result<Actor, GraphQLError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(user), Some(tenant)) = (header(DEV_USER_HEADER), header(DEV_TENANT_HEADER)) else {
        return Ok(Actor::anonymous());
    };
    let parse = |raw: &str| {
        Uuid::parse_str(raw.trim())
            .map_err(|_| GraphQLError::new("malformed identity headers", "UNAUTHENTICATED"))
    };
    let roles = header(DEV_ROLES_HEADER)
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Actor::user(parse(user)?, parse(tenant)?, roles))
}

/// The credential headers of a request, or of a WebSocket `connection_init` payload (its
/// keys read case-insensitively, as headers are): what a stream is authenticated with,
/// and re-checked with while it lasts.
pub fn credential_headers(headers: &HeaderMap, payload: Option<&Map<String, Value>>) -> HeaderMap {
    const NAMES: [&str; 5] = [
        "authorization",
        API_KEY_HEADER,
        DEV_USER_HEADER,
        DEV_TENANT_HEADER,
        DEV_ROLES_HEADER,
    ];
    let mut out = HeaderMap::new();
    for name in NAMES {
        let header = HeaderName::from_static(name);
        let value = match payload {
            Some(payload) => payload
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| value.as_str())
                .and_then(|value| HeaderValue::from_str(value).ok()),
            None => headers.get(&header).cloned(),
        };
        if let Some(value) = value {
            out.insert(header, value);
        }
    }
    out
}
