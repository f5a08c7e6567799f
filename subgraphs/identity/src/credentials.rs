//! Writes to credentials and sessions that several flows share (sign-in, password
//! changes and resets, deactivation). A leaf: queries only, no other flow imported.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use portal_entities::identity::{credential, session, user};
use portal_kit::{ApiError, ApiResult};

use crate::domain::RevokeReason;

/// Revokes every live session of `user_id` (deactivation); no audit of its own — the
/// caller audits the change that caused it.
pub async fn revoke_all_of_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    reason: RevokeReason,
) -> ApiResult<u64> {
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(Utc::now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(result.rows_affected)
}

/// Stores `hash` as the password of `user`.
pub async fn set_password_in(
    db: &impl ConnectionTrait,
    user: &user::Model,
    hash: String,
) -> ApiResult<()> {
    let existing = credential::Entity::find_by_id(user.id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    let row = credential::ActiveModel {
        user_id: Set(user.id),
        tenant_id: Set(user.tenant_id),
        password_hash: Set(hash),
        updated_at: Set(Utc::now()),
    };
    if existing.is_some() {
        row.update(db).await.map_err(ApiError::from_db)?;
    } else {
        row.insert(db).await.map_err(ApiError::from_db)?;
    }
    Ok(())
}
