//! Integrators: service accounts and their API keys.
//!
//! A key is `pk_<8 id characters>_<43 secret characters>` (256 random bits in the secret).
//! It is shown once, at creation; the database keeps its first 11 characters (the
//! *prefix*, to recognise it in listings and logs) and the SHA-256 of the whole key. A key
//! acts as its service account with the roles given to the key, until it expires, is
//! revoked, or its service account is disabled.

use portal_kit::db::BeginWrite;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::identity::{api_key, service_account, tenant};
use portal_kit::access_token::{API_KEY_PREFIX, ApiKeyResolver};
use portal_kit::audit::AuditEvent;
use portal_kit::secret::{random_bytes, token_hash};
use portal_kit::store::one_or_not_found;
use portal_kit::{Actor, ActorKind, ApiError, ApiResult, RequestMeta};

use crate::domain::PLATFORM_ADMIN;
use portal_kit::policy::POLICIES_ALL_TENANTS;

/// Length of the stored, visible prefix (`pk_` + 8 characters).
const PREFIX_LEN: usize = 11;

/// How long a resolved key is trusted before the database is asked again (bounds how
/// late a revocation takes effect at a gateway).
const CACHE_TTL: Duration = Duration::from_secs(2);

/// Most cached resolutions kept (beyond that the cache starts over).
const CACHE_CAPACITY: usize = 10_000;

/// How stale `last_used_at` may get before a use writes it again.
const LAST_USED_GRANULARITY: chrono::Duration = chrono::Duration::seconds(60);

/// The tenant of a person managing service accounts and keys. Who may is the policies'
/// decision; service accounts never do (a person answers for every key).
fn require_person(actor: &Actor) -> ApiResult<Uuid> {
    let tenant_id = actor.tenant()?;
    if actor.kind != ActorKind::User {
        return Err(ApiError::Forbidden);
    }
    Ok(tenant_id)
}

/// A fresh key: `(key, prefix, hash)`.
fn generate() -> ApiResult<(String, String, String)> {
    let id = URL_SAFE_NO_PAD.encode(random_bytes::<6>()?);
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let key = format!("{API_KEY_PREFIX}{id}_{secret}");
    let prefix = key[..PREFIX_LEN].to_owned();
    let hash = token_hash(&key);
    Ok((key, prefix, hash))
}

/// The stored form of a key's roles.
pub fn roles_of(row: &api_key::Model) -> Vec<String> {
    crate::domain::role_list(&row.roles)
}

/// Creates a service account in the actor's tenant (tenant admins).
pub async fn create_service_account(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    name: String,
    description: String,
) -> ApiResult<service_account::Model> {
    let tenant_id = require_person(actor)?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = service_account::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        name: Set(name),
        description: Set(description),
        status: Set("ACTIVE".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("service_account.create", "service_account", created.id)
        .with_details(json!({ "name": created.name }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Disables a service account: every key of it stops working (tenant admins).
pub async fn disable_service_account(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
) -> ApiResult<service_account::Model> {
    let tenant_id = require_person(actor)?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let scoped = service_account::Entity::find_by_id(id)
        .filter(service_account::Column::TenantId.eq(tenant_id));
    let current = one_or_not_found(&txn, scoped, "service account").await?;
    let mut active: service_account::ActiveModel = current.into();
    active.status = Set("DISABLED".into());
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("service_account.disable", "service_account", id)
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// The tenant's service accounts, oldest first (tenant admins).
pub async fn service_accounts(
    db: &DatabaseConnection,
    actor: &Actor,
) -> ApiResult<Vec<service_account::Model>> {
    let tenant_id = require_person(actor)?;
    service_account::Entity::find()
        .filter(service_account::Column::TenantId.eq(tenant_id))
        .order_by_asc(service_account::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// The keys of service account `id`, newest first.
pub async fn keys_of(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<Vec<api_key::Model>> {
    api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(tenant_id))
        .filter(api_key::Column::ServiceAccountId.eq(id))
        .order_by_desc(api_key::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// Validated input of a new key.
pub struct NewApiKey {
    /// The service account it belongs to.
    pub service_account_id: Uuid,
    /// A label.
    pub name: String,
    /// Role names it acts with (each must exist in the tenant).
    pub roles: Vec<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates a key; returns the key itself (shown once) and its row (tenant admins).
pub async fn create_api_key(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewApiKey,
) -> ApiResult<(String, api_key::Model)> {
    let tenant_id = require_person(actor)?;
    if new.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::invalid(
            "input.expiresAt",
            "must be in the future",
        ));
    }
    let mut roles = new.roles;
    roles.sort();
    roles.dedup();
    if roles.is_empty() || roles.len() > 20 {
        return Err(ApiError::invalid("input.roles", "must name 1 to 20 roles"));
    }
    if roles.iter().any(|r| r == PLATFORM_ADMIN) && !actor.has_grant(POLICIES_ALL_TENANTS) {
        return Err(ApiError::invalid(
            "input.roles",
            "cannot grant a role you do not hold",
        ));
    }
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let account = one_or_not_found(
        &txn,
        service_account::Entity::find_by_id(new.service_account_id)
            .filter(service_account::Column::TenantId.eq(tenant_id)),
        "service account",
    )
    .await?;
    if account.status != "ACTIVE" {
        return Err(ApiError::Conflict("the service account is disabled".into()));
    }
    crate::store::require_roles(&txn, tenant_id, &roles, "input.roles").await?;
    // Minting a credential is sensitive: a second factor confirmed in the last minutes.
    crate::mfa::require_step_up(db, actor).await?;
    let (key, prefix, hash) = generate()?;
    let created = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        service_account_id: Set(account.id),
        name: Set(new.name),
        prefix: Set(prefix),
        secret_hash: Set(hash),
        roles: Set(roles.join(",")),
        created_by: Set(actor.id),
        created_at: Set(Utc::now()),
        expires_at: Set(new.expires_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("api_key.create", "api_key", created.id)
        .with_details(json!({
            "serviceAccountId": account.id,
            "prefix": created.prefix,
            "roles": roles,
            "expiresAt": created.expires_at,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok((key, created))
}

/// Revokes a key of the actor's tenant (tenant admins); idempotent.
pub async fn revoke_api_key(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
) -> ApiResult<api_key::Model> {
    let tenant_id = require_person(actor)?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let scoped = api_key::Entity::find_by_id(id).filter(api_key::Column::TenantId.eq(tenant_id));
    let current = one_or_not_found(&txn, scoped, "API key").await?;
    if current.revoked_at.is_some() {
        return Ok(current);
    }
    let mut active: api_key::ActiveModel = current.into();
    active.revoked_at = Set(Some(Utc::now()));
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("api_key.revoke", "api_key", id)
        .with_details(json!({ "prefix": updated.prefix }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Resolves API keys against the database, caching each answer for two seconds.
pub struct DbApiKeys {
    db: DatabaseConnection,
    cache: Mutex<HashMap<String, (Instant, Option<Actor>)>>,
}

impl DbApiKeys {
    /// A resolver over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn lookup(&self, hash: &str) -> ApiResult<Option<Actor>> {
        let Some(key) = api_key::Entity::find()
            .filter(api_key::Column::SecretHash.eq(hash))
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?
        else {
            return Ok(None);
        };
        let now = Utc::now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now) {
            return Ok(None);
        }
        let account = service_account::Entity::find_by_id(key.service_account_id)
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let tenant = tenant::Entity::find_by_id(key.tenant_id)
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let usable = account.is_some_and(|a| a.status == "ACTIVE")
            && tenant.is_some_and(|t| t.status == "ACTIVE");
        if !usable {
            return Ok(None);
        }
        if key
            .last_used_at
            .is_none_or(|at| at < now - LAST_USED_GRANULARITY)
        {
            api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
                .filter(api_key::Column::Id.eq(key.id))
                .exec(&self.db)
                .await
                .map_err(ApiError::from_db)?;
        }
        Ok(Some(Actor {
            kind: ActorKind::Service,
            id: Some(key.service_account_id),
            tenant_id: Some(key.tenant_id),
            roles: roles_of(&key),
            session_id: None,
            grants: Vec::new(),
            delegation: None,
        }))
    }
}

#[async_trait::async_trait]
impl ApiKeyResolver for DbApiKeys {
    async fn resolve(&self, key: &str) -> Option<Actor> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 128 {
            return None;
        }
        let hash = token_hash(key);
        if let Some((at, actor)) = self.cache.lock().get(&hash)
            && at.elapsed() < CACHE_TTL
        {
            return actor.clone();
        }
        let actor = match self.lookup(&hash).await {
            Ok(actor) => actor,
            Err(err) => {
                tracing::warn!(?err, "resolving an API key failed");
                return None;
            }
        };
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(hash, (Instant::now(), actor.clone()));
        actor
    }
}
