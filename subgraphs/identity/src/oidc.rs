//! Single sign-on: an OpenID Connect relying party per tenant.
//!
//! Authorization code flow with PKCE (S256), `state` and `nonce`:
//! 1. `start` creates a pending login — state (stored hashed), nonce, PKCE verifier
//!    (sealed) — and returns the provider's authorization URL (from its discovery
//!    document) with redirect URI `<public_url>/sso/callback`.
//! 2. The browser comes back with `code` and `state`; `complete` claims the pending login
//!    once, exchanges the code (client secret + PKCE verifier) at the token endpoint, and
//!    validates the ID token against the provider's JWKS: signature (asymmetric algorithms
//!    only), issuer, audience (the client id), expiry, and the nonce.
//! 3. The user is found by the provider's `sub` (or provisioned just in time from the
//!    verified email), roles follow the provider's groups through the configured mapping,
//!    and a session starts.

use portal_kit::db::BeginWrite;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::identity::{
    oidc_login, oidc_provider, role, tenant, user, user_identity, user_role,
};
use portal_kit::audit::AuditEvent;
use portal_kit::secret::{DataKey, random_bytes, token_hash};
use portal_kit::store::one_or_not_found;
use portal_kit::{Actor, ActorKind, ApiError, ApiResult, RequestMeta};

use crate::domain::{PLATFORM_ADMIN, UserStatus};
use crate::settings::IdentitySettings;

/// How long a started SSO sign-in may take.
const LOGIN_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// The purpose client secrets are sealed for.
const SECRET_PURPOSE: &str = "identity.oidc_client_secret";

/// The purpose PKCE verifiers are sealed for.
const VERIFIER_PURPOSE: &str = "identity.oidc_pkce_verifier";

/// Clock skew tolerated on ID token times, in seconds.
const LEEWAY_SECS: u64 = 60;

/// The message of every failed SSO completion.
const SSO_FAILED: &str = "single sign-on failed; start again";

/// An HTTP client for providers: no redirects, short timeouts.
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; make sure one is installed
    // (idempotent: the binary installs the same one at start).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// Validated provider settings.
pub struct ProviderInput {
    /// Short name, unique in the tenant (`okta`).
    pub name: String,
    /// Issuer URL; discovery at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (sealed at rest).
    pub client_secret: String,
    /// Claim carrying the user's groups.
    pub groups_claim: String,
    /// Provider group → portal role.
    pub group_roles: BTreeMap<String, String>,
    /// Roles every user of this provider gets.
    pub default_roles: Vec<String>,
}

/// An issuer URL: https, or http on the loopback interface (local development, tests).
pub fn issuer_url(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim().trim_end_matches('/').to_owned();
    let url = reqwest::Url::parse(&value).map_err(|_| ApiError::invalid(field, "must be a URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !ok || url.query().is_some() || url.fragment().is_some() {
        return Err(ApiError::invalid(
            field,
            "must be an https URL without query or fragment",
        ));
    }
    Ok(value)
}

/// Creates or replaces the tenant's provider `name` (tenant admins, after step-up).
pub async fn configure(
    db: &DatabaseConnection,
    data_key: &DataKey,
    actor: &Actor,
    meta: &RequestMeta,
    input: ProviderInput,
) -> ApiResult<oidc_provider::Model> {
    let tenant_id = actor.tenant()?;
    if actor.kind != ActorKind::User {
        return Err(ApiError::Forbidden);
    }
    let mut wanted: BTreeSet<&String> = input.group_roles.values().collect();
    wanted.extend(input.default_roles.iter());
    if wanted.iter().any(|r| r.as_str() == PLATFORM_ADMIN) {
        return Err(ApiError::invalid(
            "input.groupRoles",
            "cannot map to platform_admin",
        ));
    }
    crate::store::require_roles(db, tenant_id, wanted, "input.groupRoles").await?;
    crate::mfa::require_step_up(db, actor).await?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let existing = oidc_provider::Entity::find()
        .filter(oidc_provider::Column::TenantId.eq(tenant_id))
        .filter(oidc_provider::Column::Name.eq(input.name.as_str()))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let row = oidc_provider::ActiveModel {
        id: Set(existing.as_ref().map_or_else(Uuid::now_v7, |p| p.id)),
        tenant_id: Set(tenant_id),
        name: Set(input.name.clone()),
        issuer: Set(input.issuer.clone()),
        client_id: Set(input.client_id.clone()),
        client_secret_sealed: Set(data_key.seal(SECRET_PURPOSE, input.client_secret.as_bytes())?),
        scopes: Set("openid email profile".into()),
        groups_claim: Set(input.groups_claim.clone()),
        group_roles: Set(serde_json::to_string(&input.group_roles).unwrap_or_default()),
        default_roles: Set(input.default_roles.join(",")),
        enabled: Set(true),
        created_at: Set(existing.as_ref().map_or(now, |p| p.created_at)),
        updated_at: Set(now),
    };
    let saved = if existing.is_some() {
        row.update(&txn).await
    } else {
        row.insert(&txn).await
    }
    .map_err(ApiError::from_db)?;
    AuditEvent::success("sso.provider_configure", "oidc_provider", saved.id)
        .with_details(json!({
            "name": saved.name,
            "issuer": saved.issuer,
            "clientId": saved.client_id,
            "groupRoles": input.group_roles,
            "defaultRoles": input.default_roles,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(saved)
}

/// The tenant's providers (tenant admins).
pub async fn providers(
    db: &DatabaseConnection,
    actor: &Actor,
) -> ApiResult<Vec<oidc_provider::Model>> {
    let tenant_id = actor.tenant()?;
    oidc_provider::Entity::find()
        .filter(oidc_provider::Column::TenantId.eq(tenant_id))
        .order_by_asc(oidc_provider::Column::Name)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// Whether an endpoint named by the discovery document may be called: https, or plain
/// http on the loopback interface when the issuer itself is there (local development);
/// never an address literal of a private or link-local network (no requests into the
/// portal's own network on a provider's say-so).
fn endpoint_allowed(issuer: &str, endpoint: &str) -> bool {
    let (Ok(issuer), Ok(url)) = (reqwest::Url::parse(issuer), reqwest::Url::parse(endpoint)) else {
        return false;
    };
    let loopback =
        |u: &reqwest::Url| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() == "http" {
        return loopback(&url) && loopback(&issuer);
    }
    if url.scheme() != "https" {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => {
            !(ip.is_private() || ip.is_loopback() || ip.is_link_local() || ip.is_unspecified())
        }
        Some(url::Host::Ipv6(ip)) => !(ip.is_loopback() || ip.is_unspecified()),
        Some(url::Host::Domain(domain)) => domain != "localhost",
        None => false,
    }
}

async fn discover(http: &reqwest::Client, issuer: &str) -> ApiResult<Discovery> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let failed = |why: String| {
        tracing::warn!(%issuer, %why, "OIDC discovery failed");
        ApiError::AuthenticationFailed("the identity provider is unreachable or misconfigured")
    };
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    let discovery: Discovery = response.json().await.map_err(|e| failed(e.to_string()))?;
    if discovery.issuer.trim_end_matches('/') != issuer {
        return Err(failed("discovery names another issuer".into()));
    }
    for endpoint in [
        &discovery.authorization_endpoint,
        &discovery.token_endpoint,
        &discovery.jwks_uri,
    ] {
        if !endpoint_allowed(issuer, endpoint) {
            return Err(failed(format!("endpoint {endpoint} is not allowed")));
        }
    }
    Ok(discovery)
}

/// Where the provider sends the browser back to.
pub fn redirect_uri(public_url: &str) -> String {
    format!("{}/sso/callback", public_url.trim_end_matches('/'))
}

/// Starts an SSO sign-in at the tenant's provider; returns `(authorization URL, state)`.
pub async fn start(
    db: &DatabaseConnection,
    http: &reqwest::Client,
    settings: &IdentitySettings,
    tenant_slug: &str,
    provider_name: &str,
) -> ApiResult<(String, String)> {
    let (data_key, public_url) = (&settings.data_key, settings.public_url.as_str());
    let not_found = || ApiError::NotFound("identity provider");
    let tenant = tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(tenant_slug.trim().to_lowercase()))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|t| t.status == "ACTIVE")
        .ok_or_else(not_found)?;
    let provider = oidc_provider::Entity::find()
        .filter(oidc_provider::Column::TenantId.eq(tenant.id))
        .filter(oidc_provider::Column::Name.eq(provider_name.trim()))
        .filter(oidc_provider::Column::Enabled.eq(true))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or_else(not_found)?;
    let discovery = discover(http, &provider.issuer).await?;
    let state = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let nonce = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    // The login's lifetime runs on identity's clock.
    let now = settings.clock.now();
    oidc_login::ActiveModel {
        state_hash: Set(token_hash(&state)),
        tenant_id: Set(tenant.id),
        provider_id: Set(provider.id),
        nonce: Set(nonce.clone()),
        code_verifier_sealed: Set(data_key.seal(VERIFIER_PURPOSE, verifier.as_bytes())?),
        created_at: Set(now),
        expires_at: Set(now + LOGIN_TTL),
        used_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    let mut url = reqwest::Url::parse(&discovery.authorization_endpoint).map_err(|_| {
        ApiError::AuthenticationFailed("the identity provider is unreachable or misconfigured")
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", &redirect_uri(public_url))
        .append_pair("scope", &provider.scopes)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok((url.to_string(), state))
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
}

/// What a verified ID token says about the user.
#[derive(Debug)]
pub struct VerifiedIdentity {
    /// The provider's stable subject.
    pub subject: String,
    /// Verified email, normalized.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Groups from the configured claim.
    pub groups: Vec<String>,
}

/// Validates `id_token` against the provider's JWKS, issuer, audience, expiry and
/// `nonce`.
pub async fn verify_id_token(
    http: &reqwest::Client,
    jwks_uri: &str,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    groups_claim: &str,
    id_token: &str,
) -> ApiResult<VerifiedIdentity> {
    let refuse = |why: &str| {
        tracing::warn!(%issuer, why, "ID token refused");
        ApiError::AuthenticationFailed(SSO_FAILED)
    };
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| refuse("malformed"))?;
    let asymmetric = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    if !asymmetric.contains(&header.alg) {
        return Err(refuse("algorithm not allowed"));
    }
    let jwks: JwkSet = http
        .get(jwks_uri)
        .send()
        .await
        .map_err(|_| refuse("JWKS unreachable"))?
        .json()
        .await
        .map_err(|_| refuse("JWKS unreadable"))?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| refuse("no matching key"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| refuse("unusable key"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .map_err(|err| refuse(&format!("{:?}", err.kind())))?
        .claims;
    // With several audiences, the token must have been issued to us (`azp`).
    if claims["aud"].is_array() && claims["azp"].as_str() != Some(client_id) {
        return Err(refuse("azp"));
    }
    let nonce_ok = claims["nonce"]
        .as_str()
        .is_some_and(|n| constant_time_eq(n.as_bytes(), nonce.as_bytes()));
    if !nonce_ok {
        return Err(refuse("nonce"));
    }
    let subject = claims["sub"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| refuse("sub"))?
        .to_owned();
    // Only an email the provider says it verified identifies anyone.
    let email = claims["email"]
        .as_str()
        .filter(|_| claims["email_verified"].as_bool() == Some(true))
        .and_then(|e| crate::domain::email("email", e).ok());
    let groups = claims[groups_claim]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    Ok(VerifiedIdentity {
        subject,
        email,
        name: claims["name"]
            .as_str()
            .map(|n| n.chars().take(200).collect()),
        groups,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Finishes an SSO sign-in: claims the pending login once, exchanges `code`, verifies
/// the ID token, provisions or finds the user and syncs mapped roles. Returns the tenant
/// and user to start a session for.
pub async fn complete(
    db: &DatabaseConnection,
    http: &reqwest::Client,
    settings: &IdentitySettings,
    meta: &RequestMeta,
    state: &str,
    code: &str,
) -> ApiResult<(tenant::Model, user::Model)> {
    let (data_key, public_url) = (&settings.data_key, settings.public_url.as_str());
    let failed = || ApiError::AuthenticationFailed(SSO_FAILED);
    let hash = token_hash(state.trim());
    let login = oidc_login::Entity::find_by_id(hash.clone())
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|l| l.used_at.is_none() && l.expires_at > settings.clock.now())
        .ok_or_else(failed)?;
    let claimed = oidc_login::Entity::update_many()
        .col_expr(oidc_login::Column::UsedAt, Expr::value(Utc::now()))
        .filter(oidc_login::Column::StateHash.eq(hash))
        .filter(oidc_login::Column::UsedAt.is_null())
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    if claimed.rows_affected != 1 {
        return Err(failed());
    }
    let provider = oidc_provider::Entity::find_by_id(login.provider_id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|p| p.enabled && p.tenant_id == login.tenant_id)
        .ok_or_else(failed)?;
    let tenant =
        one_or_not_found(db, tenant::Entity::find_by_id(login.tenant_id), "tenant").await?;
    let audit_failure = |reason: String| {
        let tenant_id = tenant.id;
        let provider_id = provider.id;
        async move {
            AuditEvent::failure("auth.sso", "oidc_provider", Some(provider_id))
                .in_tenant(tenant_id)
                .with_details(json!({ "reason": reason }))
                .record(db, &Actor::anonymous(), meta)
                .await
        }
    };
    let discovery = discover(http, &provider.issuer).await?;
    let verifier = data_key
        .open(VERIFIER_PURPOSE, &login.code_verifier_sealed)
        .map_err(|_| failed())?;
    let secret = data_key
        .open(SECRET_PURPOSE, &provider.client_secret_sealed)
        .map_err(|_| ApiError::internal("OIDC client secret cannot be opened"))?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.trim()),
        ("redirect_uri", &redirect_uri(public_url)),
        ("code_verifier", &String::from_utf8_lossy(&verifier)),
    ];
    let response = http
        .post(&discovery.token_endpoint)
        .basic_auth(&provider.client_id, Some(String::from_utf8_lossy(&secret)))
        .form(&form)
        .send()
        .await
        .map_err(|_| failed())?;
    if !response.status().is_success() {
        audit_failure(format!("token endpoint answered {}", response.status())).await?;
        return Err(failed());
    }
    let tokens: TokenResponse = response.json().await.map_err(|_| failed())?;
    let identity = match verify_id_token(
        http,
        &discovery.jwks_uri,
        &provider.issuer,
        &provider.client_id,
        &login.nonce,
        &provider.groups_claim,
        &tokens.id_token,
    )
    .await
    {
        Ok(identity) => identity,
        Err(err) => {
            audit_failure("id token refused".into()).await?;
            return Err(err);
        }
    };
    match provision(db, meta, &tenant, &provider, &identity).await {
        Ok(user) => Ok((tenant, user)),
        Err(err) => {
            audit_failure("user not active or not linkable".into()).await?;
            Err(err)
        }
    }
}

/// Finds the user linked to the provider subject, or links the user with the verified
/// email, or creates one (just in time); then grants the roles the provider's groups map
/// to and withdraws mapped roles whose group is gone. Roles outside the mapping stay.
async fn provision(
    db: &DatabaseConnection,
    meta: &RequestMeta,
    tenant: &tenant::Model,
    provider: &oidc_provider::Model,
    identity: &VerifiedIdentity,
) -> ApiResult<user::Model> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let now = Utc::now();
    let linked = user_identity::Entity::find_by_id((provider.id, identity.subject.clone()))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let user = match linked {
        Some(link) => {
            one_or_not_found(
                &txn,
                user::Entity::find_by_id(link.user_id).filter(user::Column::TenantId.eq(tenant.id)),
                "user",
            )
            .await?
        }
        None => {
            let email = identity
                .email
                .clone()
                .ok_or(ApiError::AuthenticationFailed(SSO_FAILED))?;
            let existing = user::Entity::find()
                .filter(user::Column::TenantId.eq(tenant.id))
                .filter(user::Column::Email.eq(email.as_str()))
                .one(&txn)
                .await
                .map_err(ApiError::from_db)?;
            let user = match existing {
                // Only an invited user who never signed in is linked by email; an account
                // in use is linked by an admin, never by whoever controls that address at
                // some provider.
                Some(user)
                    if UserStatus::from_db(&user.status) == UserStatus::Invited
                        && portal_entities::identity::credential::Entity::find_by_id(user.id)
                            .one(&txn)
                            .await
                            .map_err(ApiError::from_db)?
                            .is_none() =>
                {
                    let mut active: user::ActiveModel = user.into();
                    active.status = Set(UserStatus::Active.as_str().into());
                    active.updated_at = Set(now);
                    active.update(&txn).await.map_err(ApiError::from_db)?
                }
                Some(_) => return Err(ApiError::AuthenticationFailed(SSO_FAILED)),
                None => {
                    let created = user::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        tenant_id: Set(tenant.id),
                        email: Set(email.clone()),
                        display_name: Set(identity.name.clone().unwrap_or_else(|| email.clone())),
                        status: Set(UserStatus::Active.as_str().into()),
                        time_zone: Set(None),
                        created_at: Set(now),
                        updated_at: Set(now),
                    }
                    .insert(&txn)
                    .await
                    .map_err(ApiError::from_db)?;
                    let actor = Actor::user(created.id, tenant.id, Vec::new());
                    AuditEvent::success("user.provision", "user", created.id)
                        .with_details(json!({ "provider": provider.name }))
                        .record(&txn, &actor, meta)
                        .await?;
                    created
                }
            };
            user_identity::ActiveModel {
                provider_id: Set(provider.id),
                subject: Set(identity.subject.clone()),
                user_id: Set(user.id),
                tenant_id: Set(tenant.id),
                created_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(ApiError::from_db)?;
            user
        }
    };
    if UserStatus::from_db(&user.status) != UserStatus::Active {
        // Deactivated: nothing of this sign-in is kept (the transaction rolls back).
        return Err(ApiError::AuthenticationFailed(SSO_FAILED));
    }
    sync_roles(&txn, meta, tenant, provider, identity, &user).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(user)
}

async fn sync_roles(
    txn: &sea_orm::DatabaseTransaction,
    meta: &RequestMeta,
    tenant: &tenant::Model,
    provider: &oidc_provider::Model,
    identity: &VerifiedIdentity,
    user: &user::Model,
) -> ApiResult<()> {
    let mapping: BTreeMap<String, String> =
        serde_json::from_str(&provider.group_roles).unwrap_or_default();
    let defaults: BTreeSet<String> = crate::domain::role_list(&provider.default_roles)
        .into_iter()
        .collect();
    let mut granted: BTreeSet<String> = identity
        .groups
        .iter()
        .filter_map(|g| mapping.get(g).cloned())
        .collect();
    granted.extend(defaults.iter().cloned());
    let managed: BTreeSet<String> = mapping.values().cloned().chain(defaults).collect();
    let roles = role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant.id))
        .filter(role::Column::Name.is_in(managed.iter().cloned()))
        .all(txn)
        .await
        .map_err(ApiError::from_db)?;
    let held: BTreeSet<Uuid> = user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user.id))
        .all(txn)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .map(|link| link.role_id)
        .collect();
    let actor = Actor::user(user.id, tenant.id, Vec::new());
    for role in roles {
        let wanted = granted.contains(&role.name);
        if wanted && !held.contains(&role.id) {
            user_role::ActiveModel {
                user_id: Set(user.id),
                role_id: Set(role.id),
                tenant_id: Set(tenant.id),
                created_at: Set(Utc::now()),
            }
            .insert(txn)
            .await
            .map_err(ApiError::from_db)?;
            AuditEvent::success("role.assign", "user", user.id)
                .with_details(json!({ "role": role.name, "via": provider.name }))
                .record(txn, &actor, meta)
                .await?;
        } else if !wanted && held.contains(&role.id) {
            user_role::Entity::delete_many()
                .filter(user_role::Column::UserId.eq(user.id))
                .filter(user_role::Column::RoleId.eq(role.id))
                .exec(txn)
                .await
                .map_err(ApiError::from_db)?;
            AuditEvent::success("role.unassign", "user", user.id)
                .with_details(json!({ "role": role.name, "via": provider.name }))
                .record(txn, &actor, meta)
                .await?;
        }
    }
    Ok(())
}
