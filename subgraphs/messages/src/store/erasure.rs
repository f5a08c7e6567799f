//! Erasure of one person from messaging (the messages side of a GDPR erasure, driven by
//! the privacy workflow): what they wrote is removed — bodies, earlier versions,
//! attachments and their stored objects, search entries — and each of their messages stays
//! in its thread as a tombstone by the deleted user, so conversations keep their shape.
//! They leave every thread; threads they opened or were assigned no longer name them;
//! their notifications and preferences go.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use portal_entities::messages::{
    message, message_attachment, notification, notification_preference, notification_quiet_hours,
    thread, thread_participant,
};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use super::Store;

/// What an erasure removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Messages left as tombstones by the deleted user.
    pub messages: usize,
    /// Attachments removed (with their stored objects).
    pub attachments: usize,
    /// Threads the person left.
    pub threads_left: usize,
}

/// Erases `user` of `tenant_id` from messaging at `now`, in one transaction, audited by
/// the platform (the event names the user's id, nothing they wrote).
pub async fn erase_user(
    store: &Store,
    (tenant_id, user): (Uuid, Uuid),
    now: DateTime<Utc>,
    meta: &RequestMeta,
) -> ApiResult<Erased> {
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let ids: Vec<Uuid> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::AuthorId.eq(user))
        .into_tuple()
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let mut erased = Erased {
        messages: ids.len(),
        ..Erased::default()
    };
    let mut objects = Vec::new();
    for chunk in ids.chunks(500) {
        objects.extend(super::tombstone(&txn, tenant_id, chunk, now).await?.1);
    }
    // Uploads they declared but never attached.
    let loose = message_attachment::Entity::find()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::UploadedBy.eq(user))
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    objects.extend(loose.iter().filter_map(|a| a.storage_key.clone()));
    message_attachment::Entity::delete_many()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::UploadedBy.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    erased.attachments = objects.len();
    message::Entity::update_many()
        .col_expr(message::Column::AuthorId, Expr::value(Uuid::nil()))
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::AuthorId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    thread::Entity::update_many()
        .col_expr(thread::Column::CreatedBy, Expr::value(Uuid::nil()))
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(thread::Column::CreatedBy.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    thread::Entity::update_many()
        .col_expr(
            thread::Column::AssigneeId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(thread::Column::AssigneeId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    erased.threads_left = thread_participant::Entity::delete_many()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    notification::Entity::delete_many()
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    notification::Entity::update_many()
        .col_expr(
            notification::Column::ActorId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::ActorId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    notification_preference::Entity::delete_many()
        .filter(notification_preference::Column::TenantId.eq(tenant_id))
        .filter(notification_preference::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    notification_quiet_hours::Entity::delete_many()
        .filter(notification_quiet_hours::Column::TenantId.eq(tenant_id))
        .filter(notification_quiet_hours::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let platform = Actor {
        tenant_id: Some(tenant_id),
        ..Actor::anonymous()
    };
    AuditEvent::success("user_messages.erase", "user", user)
        .with_details(json!({
            "messages": erased.messages,
            "attachments": erased.attachments,
            "threadsLeft": erased.threads_left,
        }))
        .record(&txn, &platform, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    store.remove_objects(objects).await;
    Ok(erased)
}

/// Whether `db` holds nothing tying messaging rows to `user` any more (for the privacy
/// workflow's verification, and tests).
pub async fn holds_nothing_of(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<bool> {
    let authored = message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::AuthorId.eq(user))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    let member = thread_participant::Entity::find()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::UserId.eq(user))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    let notified = notification::Entity::find()
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(authored.is_none() && member.is_none() && notified.is_none())
}
