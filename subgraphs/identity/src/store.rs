//! Identity persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.

use portal_kit::db::BeginWrite;
use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::identity::{role, tenant, user, user_role};
use portal_entities::platform::audit_event;
use portal_kit::audit::AuditEvent;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::store::{one_or_not_found, rows_by_ids};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::credentials::revoke_all_of_user;
use crate::domain::RevokeReason;
use crate::domain::{
    DEFAULT_ABSOLUTE_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS, SessionTimeouts, UserStatus,
};
use crate::settings::IdentitySettings;

/// Validated fields of a new user.
pub struct NewUser {
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub display_name: String,
}

/// Validated changes to a user; `None` leaves a field as it is.
#[derive(Default)]
pub struct UserChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New status.
    pub status: Option<UserStatus>,
    /// New own time zone: `Some(None)` follows the tenant's again.
    pub time_zone: Option<Option<String>>,
}

/// The tenant `tenant_id`.
/// Refuses (`BAD_USER_INPUT` on `field`) unless every role named in `names` exists in the
/// tenant (repeated names count once).
pub async fn require_roles<'a>(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    names: impl IntoIterator<Item = &'a String>,
    field: &'static str,
) -> ApiResult<()> {
    let wanted: std::collections::BTreeSet<&String> = names.into_iter().collect();
    let known = sea_orm::PaginatorTrait::count(
        role::Entity::find()
            .filter(role::Column::TenantId.eq(tenant_id))
            .filter(role::Column::Name.is_in(wanted.iter().map(|name| name.to_string()))),
        db,
    )
    .await
    .map_err(ApiError::from_db)?;
    if known != wanted.len() as u64 {
        return Err(ApiError::invalid(
            field,
            "every role must exist in the tenant",
        ));
    }
    Ok(())
}

pub async fn tenant(db: &impl ConnectionTrait, tenant_id: Uuid) -> ApiResult<tenant::Model> {
    one_or_not_found(db, tenant::Entity::find_by_id(tenant_id), "tenant").await
}

/// Validated changes to the actor's tenant.
pub struct TenantChanges {
    /// New display name.
    pub name: Option<String>,
    /// New session timeouts.
    pub timeouts: SessionTimeouts,
    /// New list of roles that require a second factor.
    pub mfa_required_roles: Option<Vec<String>>,
    /// New IANA time zone.
    pub time_zone: Option<String>,
    /// New file retention in days: `Some(None)` returns to the platform's default.
    pub file_retention_days: Option<Option<i32>>,
}

/// Changes the actor's tenant (tenant admins only).
pub async fn update_tenant(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    changes: TenantChanges,
) -> ApiResult<tenant::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = one_or_not_found(&txn, tenant::Entity::find_by_id(tenant_id), "tenant").await?;
    let before = tenant_settings(&current);
    let idle = changes
        .timeouts
        .idle
        .unwrap_or(current.session_idle_timeout_secs);
    let absolute = changes
        .timeouts
        .absolute
        .unwrap_or(current.session_absolute_timeout_secs);
    if idle > absolute {
        return Err(ApiError::invalid(
            "input.sessionIdleTimeoutSeconds",
            "must not exceed the absolute timeout",
        ));
    }
    if let Some(roles) = &changes.mfa_required_roles {
        require_roles(&txn, tenant_id, roles, "input.mfaRequiredRoles").await?;
    }
    let mut active: tenant::ActiveModel = current.into();
    if let Some(mut roles) = changes.mfa_required_roles {
        roles.sort();
        roles.dedup();
        active.mfa_required_roles = Set(roles.join(","));
    }
    if let Some(name) = changes.name {
        active.name = Set(name);
    }
    if let Some(zone) = changes.time_zone {
        active.time_zone = Set(zone);
    }
    if let Some(days) = changes.file_retention_days {
        active.file_retention_days = Set(days);
    }
    active.session_idle_timeout_secs = Set(idle);
    active.session_absolute_timeout_secs = Set(absolute);
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("tenant.update", "tenant", tenant_id)
        .with_details(json!({ "before": before, "after": tenant_settings(&updated) }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

fn tenant_settings(tenant: &tenant::Model) -> serde_json::Value {
    json!({
        "name": tenant.name,
        "sessionIdleTimeoutSeconds": tenant.session_idle_timeout_secs,
        "sessionAbsoluteTimeoutSeconds": tenant.session_absolute_timeout_secs,
        "mfaRequiredRoles": tenant.mfa_required_roles,
        "timeZone": tenant.time_zone,
        "fileRetentionDays": tenant.file_retention_days,
    })
}

/// One user of the tenant.
pub async fn user(db: &impl ConnectionTrait, tenant_id: Uuid, id: Uuid) -> ApiResult<user::Model> {
    let scoped = user::Entity::find_by_id(id).filter(user::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "user").await
}

/// Users of the tenant among `ids`, in one query.
pub async fn users_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, user::Model>> {
    let scoped = user::Entity::find().filter(user::Column::TenantId.eq(tenant_id));
    rows_by_ids(db, scoped, user::Column::Id, ids).await
}

/// A page of the tenant's users.
pub async fn list_users(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    email: Option<&str>,
    page: PageRequest,
) -> ApiResult<Page<user::Model>> {
    let mut select = user::Entity::find().filter(user::Column::TenantId.eq(tenant_id));
    if let Some(email) = email {
        select = select.filter(user::Column::Email.eq(email));
    }
    page.fetch(db, select, user::Column::Id).await
}

/// Creates a user in the actor's tenant (status `INVITED`).
pub async fn create_user(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewUser,
    settings: &IdentitySettings,
) -> ApiResult<user::Model> {
    let tenant_id = actor.tenant()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let tenant_row = tenant(&txn, tenant_id).await?;
    let created = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        email: Set(new.email),
        display_name: Set(new.display_name),
        status: Set(UserStatus::Invited.as_str().to_owned()),
        time_zone: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    // The invitation leaves with the user: same transaction, through the outbox.
    crate::recovery::invite_in(&txn, settings, &tenant_row, &created).await?;
    AuditEvent::success("user.create", "user", created.id)
        .with_details(json!({ "invited": true }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Applies `changes` to a user of the actor's tenant.
pub async fn update_user(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: UserChanges,
) -> ApiResult<user::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = user(&txn, tenant_id, id).await?;
    // Erasure is final: no admin re-enables, renames or otherwise revives an erased user.
    crate::domain::not_erased(&current.status)?;
    let before = json!({
        "displayName": current.display_name,
        "status": current.status,
        "timeZone": current.time_zone,
    });
    let mut active: user::ActiveModel = current.into();
    if let Some(name) = changes.display_name {
        active.display_name = Set(name);
    }
    if let Some(zone) = changes.time_zone {
        active.time_zone = Set(zone);
    }
    if let Some(status) = changes.status {
        active.status = Set(status.as_str().to_owned());
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    let after = json!({
        "displayName": updated.display_name,
        "status": updated.status,
        "timeZone": updated.time_zone,
    });
    // Deactivation is immediate: the user's sessions end with it.
    let sessions_revoked = if UserStatus::from_db(&updated.status) == UserStatus::Disabled {
        revoke_all_of_user(&txn, id, RevokeReason::UserDeactivated).await?
    } else {
        0
    };
    AuditEvent::success("user.update", "user", id)
        .with_details(json!({
            "before": before,
            "after": after,
            "sessionsRevoked": sessions_revoked,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// A page of the tenant's roles.
pub async fn list_roles(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    page: PageRequest,
) -> ApiResult<Page<role::Model>> {
    let select = role::Entity::find().filter(role::Column::TenantId.eq(tenant_id));
    page.fetch(db, select, role::Column::Id).await
}

/// Creates a tenant with a first administrator role; for platform administrators only.
pub async fn create_tenant(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    slug: String,
    name: String,
) -> ApiResult<tenant::Model> {
    // Who may create tenants is the policies' decision; never an anonymous caller.
    actor.principal()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = tenant::ActiveModel {
        id: Set(Uuid::now_v7()),
        slug: Set(slug),
        name: Set(name),
        status: Set("ACTIVE".to_owned()),
        session_idle_timeout_secs: Set(DEFAULT_IDLE_TIMEOUT_SECS),
        session_absolute_timeout_secs: Set(DEFAULT_ABSOLUTE_TIMEOUT_SECS),
        mfa_required_roles: Set(String::new()),
        time_zone: Set("UTC".into()),
        file_retention_days: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    role::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(created.id),
        name: Set("tenant_admin".to_owned()),
        description: Set("Administers the tenant: users, roles, integrations".to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("tenant.create", "tenant", created.id)
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Roles held by each of `user_ids` (tenant-scoped), in two queries.
pub async fn roles_of_users(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    user_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<role::Model>>> {
    let links = user_role::Entity::find()
        .filter(user_role::Column::TenantId.eq(tenant_id))
        .filter(user_role::Column::UserId.is_in(user_ids))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let scoped = role::Entity::find().filter(role::Column::TenantId.eq(tenant_id));
    let role_ids = links.iter().map(|link| link.role_id);
    let roles = rows_by_ids(db, scoped, role::Column::Id, role_ids).await?;
    let mut by_user: HashMap<Uuid, Vec<role::Model>> = HashMap::new();
    for link in links {
        if let Some(role) = roles.get(&link.role_id) {
            by_user.entry(link.user_id).or_default().push(role.clone());
        }
    }
    for list in by_user.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(by_user)
}

/// Creates a role in the actor's tenant.
pub async fn create_role(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    name: String,
    description: String,
) -> ApiResult<role::Model> {
    let tenant_id = actor.tenant()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = role::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        name: Set(name),
        description: Set(description),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("role.create", "role", created.id)
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Changes a role's description.
pub async fn update_role(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    description: String,
) -> ApiResult<role::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let scoped = role::Entity::find_by_id(id).filter(role::Column::TenantId.eq(tenant_id));
    let current = one_or_not_found(&txn, scoped, "role").await?;
    let before = current.description.clone();
    let mut active: role::ActiveModel = current.into();
    active.description = Set(description.clone());
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("role.update", "role", id)
        .with_details(json!({ "description": { "before": before, "after": description } }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Criteria of an audit trail query; every given one must hold.
#[derive(Default)]
pub struct AuditCriteria {
    /// Exact action.
    pub action: Option<String>,
    /// Who acted.
    pub actor_id: Option<Uuid>,
    /// Which object changed.
    pub target_id: Option<Uuid>,
    /// Not before.
    pub from: Option<chrono::DateTime<Utc>>,
    /// Before.
    pub to: Option<chrono::DateTime<Utc>>,
}

/// A page of the tenant's audit events matching `criteria`.
pub async fn list_audit_events(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    criteria: &AuditCriteria,
    page: PageRequest,
) -> ApiResult<Page<audit_event::Model>> {
    let mut select =
        audit_event::Entity::find().filter(audit_event::Column::TenantId.eq(tenant_id));
    if let Some(action) = &criteria.action {
        select = select.filter(audit_event::Column::Action.eq(action.as_str()));
    }
    if let Some(actor_id) = criteria.actor_id {
        select = select.filter(audit_event::Column::ActorId.eq(actor_id));
    }
    if let Some(target_id) = criteria.target_id {
        select = select.filter(audit_event::Column::TargetId.eq(target_id));
    }
    if let Some(from) = criteria.from {
        select = select.filter(audit_event::Column::CreatedAt.gte(from));
    }
    if let Some(to) = criteria.to {
        select = select.filter(audit_event::Column::CreatedAt.lt(to));
    }
    page.fetch(db, select, audit_event::Column::Id).await
}

/// Gives `user_id` the role `role_id` (both of the actor's tenant); idempotent.
pub async fn assign_role(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    user_id: Uuid,
    role_id: Uuid,
) -> ApiResult<user::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let target = user(&txn, tenant_id, user_id).await?;
    crate::domain::not_erased(&target.status)?;
    let role = role_in_tenant(&txn, tenant_id, role_id).await?;
    let existing = user_role::Entity::find_by_id((user_id, role_id))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if existing.is_none() {
        user_role::ActiveModel {
            user_id: Set(user_id),
            role_id: Set(role_id),
            tenant_id: Set(tenant_id),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        AuditEvent::success("role.assign", "user", user_id)
            .with_details(json!({ "role": role.name, "roleId": role_id }))
            .record(&txn, actor, meta)
            .await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(target)
}

/// Takes the role `role_id` from `user_id` (both of the actor's tenant); idempotent.
pub async fn unassign_role(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    user_id: Uuid,
    role_id: Uuid,
) -> ApiResult<user::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let target = user(&txn, tenant_id, user_id).await?;
    let role = role_in_tenant(&txn, tenant_id, role_id).await?;
    let removed = user_role::Entity::delete_many()
        .filter(user_role::Column::UserId.eq(user_id))
        .filter(user_role::Column::RoleId.eq(role_id))
        .filter(user_role::Column::TenantId.eq(tenant_id))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if removed.rows_affected > 0 {
        AuditEvent::success("role.unassign", "user", user_id)
            .with_details(json!({ "role": role.name, "roleId": role_id }))
            .record(&txn, actor, meta)
            .await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(target)
}

async fn role_in_tenant(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    role_id: Uuid,
) -> ApiResult<role::Model> {
    let scoped = role::Entity::find_by_id(role_id).filter(role::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "role").await
}
