//! Field-level RBAC policies in the database, edited at run time by admins: rules are
//! `casbin_rule` rows, and every change bumps `policy_revisions` so that gateways reload
//! within a second. Edits are validated against the coordinates the gateways publish
//! (`policy_coordinates`), confined to the editor's tenant, and may not grant more than
//! the editor holds.

use portal_kit::db::BeginWrite;
use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::identity::role;
use portal_entities::platform::{casbin_rule, policy_coordinate, policy_revision};
use portal_kit::audit::AuditEvent;
use portal_kit::policy::{
    ANY_DOMAIN, AUTHENTICATED_ROLE, Action, Effect, Explanation, Policies, key_match,
    with_implicit_roles,
};
use portal_kit::{Actor, ActorKind, ApiError, ApiResult, RequestMeta};

use crate::domain::PLATFORM_ADMIN;
use portal_kit::policy::{GRANT_PREFIX, POLICIES_ALL_TENANTS};

/// Every stored rule, as a policy (with the stored revision).
pub async fn load(db: &impl ConnectionTrait) -> ApiResult<Policies> {
    let revision = policy_revision::Entity::find_by_id(1)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .map_or(0, |r| r.revision);
    let rows = casbin_rule::Entity::find()
        .order_by_asc(casbin_rule::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i + 1, vec![r.ptype, r.v0, r.v1, r.v2, r.v3, r.v4, r.v5]));
    Policies::from_rows(rows, revision).map_err(|err| ApiError::internal(err.to_string()))
}

/// Records the coordinates of the supergraph a gateway serves (`Type.field` → action).
pub async fn publish_coordinates(
    db: &DatabaseConnection,
    coordinates: impl IntoIterator<Item = (String, Action)>,
) -> ApiResult<()> {
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    policy_coordinate::Entity::delete_many()
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    for (coordinate, action) in coordinates {
        policy_coordinate::ActiveModel {
            coordinate: Set(coordinate),
            action: Set(action.as_str().to_owned()),
            seen_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
    }
    txn.commit().await.map_err(ApiError::from_db)
}

/// What rules may name: the field coordinates the gateways publish, and the grants.
async fn catalog(db: &DatabaseConnection) -> ApiResult<BTreeMap<String, Action>> {
    let rows = policy_coordinate::Entity::find()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let grants = portal_kit::policy::GRANTS
        .iter()
        .map(|(name, action, _)| (format!("{GRANT_PREFIX}{name}"), *action));
    Ok(rows
        .into_iter()
        .map(|r| {
            let action = if r.action == "write" {
                Action::Write
            } else {
                Action::Read
            };
            (r.coordinate, action)
        })
        .chain(grants)
        .collect())
}

/// A stored rule.
#[derive(Clone, Debug)]
pub struct StoredRule {
    /// Row id.
    pub id: Uuid,
    /// `p` fields.
    pub role: String,
    /// Tenant id or `*`.
    pub domain: String,
    /// Coordinate pattern.
    pub object: String,
    /// `read` / `write`.
    pub action: String,
    /// `allow` / `deny`.
    pub effect: String,
}

impl From<casbin_rule::Model> for StoredRule {
    fn from(row: casbin_rule::Model) -> Self {
        Self {
            id: row.id,
            role: row.v0,
            domain: row.v1,
            object: row.v2,
            action: row.v3,
            effect: if row.v4.is_empty() {
                "allow".into()
            } else {
                row.v4
            },
        }
    }
}

/// Whether the actor edits policies for every tenant (the `Policy.allTenants` grant).
fn is_platform_admin(actor: &Actor) -> bool {
    actor.kind == ActorKind::User && actor.has_grant(POLICIES_ALL_TENANTS)
}

/// The tenant whose policies the actor edits. Who may edit is the policies' decision
/// (`Mutation.addPolicyRule`, …); service accounts never do (people answer for policy).
fn require_admin(actor: &Actor) -> ApiResult<Uuid> {
    let tenant = actor.tenant()?;
    if actor.kind != ActorKind::User {
        return Err(ApiError::Forbidden);
    }
    Ok(tenant)
}

/// The `p` rules that apply in the actor's tenant (global ones and its own), optionally
/// of one role (tenant admins, platform admins and auditors).
pub async fn rules(
    db: &DatabaseConnection,
    actor: &Actor,
    role_name: Option<&str>,
) -> ApiResult<Vec<StoredRule>> {
    let tenant = actor.tenant()?;
    let mut select = casbin_rule::Entity::find()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(
            casbin_rule::Column::V1
                .eq(ANY_DOMAIN)
                .or(casbin_rule::Column::V1.eq(tenant.to_string())),
        );
    if let Some(role_name) = role_name {
        select = select.filter(casbin_rule::Column::V0.eq(role_name));
    }
    Ok(select
        .order_by_asc(casbin_rule::Column::V0)
        .order_by_asc(casbin_rule::Column::V2)
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .map(StoredRule::from)
        .collect())
}

/// A rule to add.
pub struct NewRule {
    /// Role name.
    pub role: String,
    /// `Type.field`, `Type.*` (or `*` for platform admins).
    pub object: String,
    /// Read or write.
    pub action: Action,
    /// Allow or deny.
    pub effect: Effect,
    /// For every tenant (platform admins only).
    pub all_tenants: bool,
}

/// The PostgreSQL channel on which policy changes are announced to gateways.
pub const CHANNEL: &str = "portal_policies";

/// Bumps the revision and, on PostgreSQL, announces it (`NOTIFY`, delivered at commit).
pub async fn bump_revision(db: &impl ConnectionTrait) -> ApiResult<i64> {
    let updated = policy_revision::Entity::update_many()
        .col_expr(
            policy_revision::Column::Revision,
            Expr::col(policy_revision::Column::Revision).add(1),
        )
        .col_expr(policy_revision::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(policy_revision::Column::Id.eq(1))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    if updated.rows_affected == 0 {
        policy_revision::ActiveModel {
            id: Set(1),
            revision: Set(1),
            updated_at: Set(Utc::now()),
        }
        .insert(db)
        .await
        .map_err(ApiError::from_db)?;
    }
    let revision = policy_revision::Entity::find_by_id(1)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .map_or(0, |r| r.revision);
    portal_kit::notify::announce(db, CHANNEL, Some(&revision.to_string())).await?;
    Ok(revision)
}

/// The roles an actor holds for policy purposes (explicit and implicit).
pub fn held_roles(actor: &Actor) -> Vec<String> {
    with_implicit_roles(&actor.roles, actor.tenant_id.is_some())
}

/// Adds a rule after validating it: the role exists in the tenant, the object names
/// existing coordinates with the right action, and a tenant admin grants nothing it does
/// not hold itself. Audited with the rule; gateways apply it within a second.
pub async fn add_rule(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewRule,
) -> ApiResult<StoredRule> {
    let tenant = require_admin(actor)?;
    let platform = is_platform_admin(actor);
    if new.all_tenants && !platform {
        return Err(ApiError::Forbidden);
    }
    let domain = if new.all_tenants {
        ANY_DOMAIN.to_owned()
    } else {
        tenant.to_string()
    };
    let role_exists = new.role == AUTHENTICATED_ROLE
        || role::Entity::find()
            .filter(role::Column::TenantId.eq(tenant))
            .filter(role::Column::Name.eq(new.role.as_str()))
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .is_some();
    if !role_exists && !platform {
        return Err(ApiError::invalid(
            "input.role",
            "no such role in the tenant",
        ));
    }
    if new.role == PLATFORM_ADMIN && !platform {
        return Err(ApiError::Forbidden);
    }
    let catalog = catalog(db).await?;
    let matched: Vec<(&String, &Action)> = catalog
        .iter()
        .filter(|(coordinate, _)| key_match(coordinate, &new.object))
        .collect();
    // `Type.field` or `Type.*`; a `*` anywhere else would be a prefix wildcard over types.
    let shape_ok = new.object == "*"
        || new.object.split_once('.').is_some_and(|(t, f)| {
            !t.is_empty() && !t.contains('*') && !f.is_empty() && (f == "*" || !f.contains('*'))
        });
    if !shape_ok || matched.is_empty() {
        return Err(ApiError::invalid(
            "input.object",
            "must be Type.field or Type.* naming fields of the supergraph, or a grant:…",
        ));
    }
    if new.object == "*" && !platform {
        return Err(ApiError::invalid(
            "input.object",
            "only platform admins write `*` rules",
        ));
    }
    if !matched.iter().any(|(_, action)| **action == new.action) {
        return Err(ApiError::invalid(
            "input.action",
            "the object has no field used for this action (mutation fields are write, the rest read)",
        ));
    }
    if new.effect == Effect::Allow && !platform {
        // Nobody grants more than they hold.
        let policies = load(db).await?;
        let held = policies.closure(&held_roles(actor), &domain);
        let beyond: Vec<&String> = matched
            .iter()
            .filter(|(_, action)| **action == new.action)
            .filter(|(coordinate, action)| !policies.allows(&held, &domain, coordinate, **action))
            .map(|(coordinate, _)| *coordinate)
            .collect();
        if !beyond.is_empty() {
            return Err(ApiError::invalid(
                "input.object",
                format!(
                    "cannot grant what you do not hold yourself: {}",
                    beyond
                        .iter()
                        .take(5)
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let row = casbin_rule::ActiveModel {
        id: Set(Uuid::now_v7()),
        ptype: Set("p".into()),
        v0: Set(new.role.clone()),
        v1: Set(domain.clone()),
        v2: Set(new.object.clone()),
        v3: Set(new.action.as_str().into()),
        v4: Set(new.effect.as_str().into()),
        v5: Set(String::new()),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let revision = bump_revision(&txn).await?;
    let rule = StoredRule::from(row);
    AuditEvent::success("policy.add", "policy_rule", rule.id)
        .with_details(json!({
            "before": null,
            "after": rule_json(&rule),
            "revision": revision,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(rule)
}

fn rule_json(rule: &StoredRule) -> serde_json::Value {
    json!({
        "role": rule.role,
        "domain": rule.domain,
        "object": rule.object,
        "action": rule.action,
        "effect": rule.effect,
    })
}

/// Removes a rule: tenant admins only their tenant's rules, platform admins any.
pub async fn remove_rule(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
) -> ApiResult<StoredRule> {
    let tenant = require_admin(actor)?;
    let platform = is_platform_admin(actor);
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = casbin_rule::Entity::find_by_id(id)
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?
        .map(StoredRule::from)
        .filter(|r| platform || r.domain == tenant.to_string())
        .ok_or(ApiError::NotFound("policy rule"))?;
    casbin_rule::Entity::delete_by_id(id)
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let revision = bump_revision(&txn).await?;
    AuditEvent::success("policy.remove", "policy_rule", id)
        .with_details(json!({
            "before": rule_json(&found),
            "after": null,
            "revision": revision,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(found)
}

/// Why a user of the actor's tenant may or may not use `coordinate` (tenant admins,
/// auditors, platform admins).
pub async fn explain(
    db: &DatabaseConnection,
    actor: &Actor,
    user_id: Uuid,
    coordinate: &str,
) -> ApiResult<(Action, Explanation)> {
    let tenant = actor.tenant()?;
    crate::store::user(db, tenant, user_id).await?;
    let action = catalog(db)
        .await?
        .get(coordinate)
        .copied()
        .ok_or_else(|| ApiError::invalid("coordinate", "no such field in the supergraph"))?;
    let roles: Vec<String> = crate::store::roles_of_users(db, tenant, [user_id])
        .await?
        .remove(&user_id)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    let holder = Actor::user(user_id, tenant, roles);
    let policies = load(db).await?;
    Ok((
        action,
        policies.explain(
            &held_roles(&holder),
            &tenant.to_string(),
            coordinate,
            action,
        ),
    ))
}
