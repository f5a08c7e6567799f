//! Dashboard layout persistence: a user's own layouts and the tenant's role defaults.
//! Every function takes the tenant; a user's layout is found only with its owner's id, so
//! another user's layout reads as missing.

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::accounts::dashboard_layout;
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::store::one_or_not_found;
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::layout::{MAX_LAYOUTS, Widget};

type Row = dashboard_layout::Model;

fn widgets_json(widgets: &[Widget]) -> ApiResult<Value> {
    serde_json::to_value(widgets).map_err(|e| ApiError::internal(format!("widgets: {e}")))
}

/// The widgets stored in `row` (a row that does not parse reads as no widgets).
pub fn widgets_of(row: &Row) -> Vec<Widget> {
    serde_json::from_value(row.widgets.clone()).unwrap_or_else(|err| {
        tracing::error!(layout = %row.id, %err, "stored widgets do not parse");
        Vec::new()
    })
}

/// The user's layouts, oldest first.
pub async fn own_layouts(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    owner: Uuid,
) -> ApiResult<Vec<Row>> {
    dashboard_layout::Entity::find()
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::OwnerId.eq(owner))
        .order_by_asc(dashboard_layout::Column::CreatedAt)
        .order_by_asc(dashboard_layout::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// One of the user's layouts.
pub async fn own_layout(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    owner: Uuid,
    id: Uuid,
) -> ApiResult<Row> {
    let scoped = dashboard_layout::Entity::find_by_id(id)
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::OwnerId.eq(owner));
    one_or_not_found(db, scoped, "dashboard layout").await
}

/// The tenant's role defaults, by role.
pub async fn defaults(db: &DatabaseConnection, tenant_id: Uuid) -> ApiResult<Vec<Row>> {
    dashboard_layout::Entity::find()
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::Role.is_not_null())
        .order_by_asc(dashboard_layout::Column::Role)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// The default for the first of `roles` (in their order) that has one.
pub async fn default_for(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    roles: &[String],
) -> ApiResult<Option<Row>> {
    let found = dashboard_layout::Entity::find()
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::Role.is_in(roles.iter().map(String::as_str)))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(roles
        .iter()
        .find_map(|role| {
            found
                .iter()
                .find(|row| row.role.as_deref() == Some(role.as_str()))
        })
        .cloned())
}

/// Saves a new layout of the actor's; `CONFLICT` beyond [`MAX_LAYOUTS`].
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    name: String,
    widgets: &[Widget],
) -> ApiResult<Row> {
    let (tenant_id, owner) = (actor.tenant()?, actor.principal()?);
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let kept = dashboard_layout::Entity::find()
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::OwnerId.eq(owner))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if kept >= MAX_LAYOUTS {
        return Err(ApiError::Conflict(format!(
            "a user keeps at most {MAX_LAYOUTS} dashboard layouts: delete one first"
        )));
    }
    let now = Utc::now();
    let created = dashboard_layout::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        owner_id: Set(Some(owner)),
        role: Set(None),
        name: Set(name),
        widgets: Set(widgets_json(widgets)?),
        version: Set(1),
        reset_from: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("dashboard_layout.create", "dashboard_layout", created.id)
        .with_details(json!({ "name": created.name, "widgets": widgets.len() }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Changes one of the actor's layouts if it is still at `version` (`CONFLICT` when
/// someone saved it since), bumping the version.
#[expect(
    clippy::too_many_arguments,
    reason = "one conditional update: the row, its expected version and the changes"
)]
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    version: i32,
    name: Option<String>,
    widgets: Option<&[Widget]>,
    reset_from: Option<Uuid>,
) -> ApiResult<Row> {
    let (tenant_id, owner) = (actor.tenant()?, actor.principal()?);
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let mut change = dashboard_layout::Entity::update_many()
        .col_expr(
            dashboard_layout::Column::Version,
            Expr::col(dashboard_layout::Column::Version).add(1),
        )
        .col_expr(dashboard_layout::Column::UpdatedAt, Utc::now().into());
    if let Some(name) = &name {
        change = change.col_expr(dashboard_layout::Column::Name, name.clone().into());
    }
    if let Some(widgets) = widgets {
        change = change.col_expr(
            dashboard_layout::Column::Widgets,
            widgets_json(widgets)?.into(),
        );
    }
    if let Some(from) = reset_from {
        change = change.col_expr(dashboard_layout::Column::ResetFrom, Some(from).into());
    }
    let changed = change
        .filter(dashboard_layout::Column::Id.eq(id))
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::OwnerId.eq(owner))
        .filter(dashboard_layout::Column::Version.eq(version))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if changed.rows_affected == 0 {
        // Missing (or another user's), or saved by someone else since `version`.
        let scoped = dashboard_layout::Entity::find_by_id(id)
            .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
            .filter(dashboard_layout::Column::OwnerId.eq(owner));
        let current = one_or_not_found(&txn, scoped, "dashboard layout").await?;
        return Err(ApiError::Conflict(format!(
            "the layout was changed since version {version} (now {}): reload it and apply your change again",
            current.version
        )));
    }
    let action = if reset_from.is_some() {
        "dashboard_layout.reset"
    } else {
        "dashboard_layout.update"
    };
    AuditEvent::success(action, "dashboard_layout", id)
        .with_details(json!({
            "fromVersion": version,
            "name": name,
            "widgets": widgets.map(<[Widget]>::len),
            "resetFrom": reset_from,
        }))
        .record(&txn, actor, meta)
        .await?;
    let scoped = dashboard_layout::Entity::find_by_id(id)
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id));
    let updated = one_or_not_found(&txn, scoped, "dashboard layout").await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Deletes one of the actor's layouts.
pub async fn delete(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
) -> ApiResult<()> {
    let (tenant_id, owner) = (actor.tenant()?, actor.principal()?);
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let removed = dashboard_layout::Entity::delete_many()
        .filter(dashboard_layout::Column::Id.eq(id))
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::OwnerId.eq(owner))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if removed.rows_affected == 0 {
        return Err(ApiError::NotFound("dashboard layout"));
    }
    AuditEvent::success("dashboard_layout.delete", "dashboard_layout", id)
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(())
}

/// Publishes the tenant's default layout for `role` (replacing the one before, whose
/// version it continues).
pub async fn publish_default(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    role: String,
    name: String,
    widgets: &[Widget],
) -> ApiResult<Row> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let existing = dashboard_layout::Entity::find()
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::Role.eq(role.as_str()))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let now = Utc::now();
    let published = match existing {
        Some(row) => {
            let version = row.version + 1;
            let mut active: dashboard_layout::ActiveModel = row.into();
            active.name = Set(name);
            active.widgets = Set(widgets_json(widgets)?);
            active.version = Set(version);
            active.updated_at = Set(now);
            active.update(&txn).await.map_err(ApiError::from_db)?
        }
        None => dashboard_layout::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant_id),
            owner_id: Set(None),
            role: Set(Some(role.clone())),
            name: Set(name),
            widgets: Set(widgets_json(widgets)?),
            version: Set(1),
            reset_from: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?,
    };
    AuditEvent::success("dashboard_layout.publish", "dashboard_layout", published.id)
        .with_details(
            json!({ "role": role, "version": published.version, "widgets": widgets.len() }),
        )
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(published)
}
