//! Authentication: turns request headers into the [`Actor`] every later stage trusts.
//!
//! The identity issue brings bearer access tokens and API keys. Until then the only way to
//! act as a user is the development header scheme below, which is OFF unless explicitly
//! enabled (`portal serve --demo` enables it and says so loudly in the log).

use axum::http::HeaderMap;
use uuid::Uuid;

use portal_kit::Actor;

use crate::response::GraphQLError;

/// Header naming the acting user (development scheme).
pub const DEV_USER_HEADER: &str = "x-portal-user-id";
/// Header naming the user's tenant (development scheme).
pub const DEV_TENANT_HEADER: &str = "x-portal-tenant-id";
/// Header listing the user's roles, comma-separated (development scheme).
pub const DEV_ROLES_HEADER: &str = "x-portal-roles";

/// How the gateway establishes who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// Everyone is anonymous (the safe default until tokens exist).
    AnonymousOnly,
    /// Trust `x-portal-user-id` / `x-portal-tenant-id` / `x-portal-roles` headers.
    /// For local demos and tests only: anyone can claim to be anyone.
    TrustDevHeaders,
}

impl Authentication {
    /// The actor of a request with `headers`.
    pub fn authenticate(self, headers: &HeaderMap) -> Result<Actor, GraphQLError> {
        match self {
            Self::AnonymousOnly => Ok(Actor::anonymous()),
            Self::TrustDevHeaders => dev_actor(headers),
        }
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
