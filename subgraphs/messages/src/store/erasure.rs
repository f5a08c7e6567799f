//! Erasure of one person from messaging (the messages side of a GDPR erasure, driven by
//! the privacy workflow): what they wrote is removed — bodies, earlier versions,
//! attachments and their stored objects, search entries — and each of their messages stays
//! in its thread as a tombstone by the deleted user, so conversations keep their shape.
//! They leave every thread; threads they opened lose the subject they wrote (and its
//! search entries); threads they opened or were assigned no longer name them;
//! their notifications and preferences go.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
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

/// The subject a thread keeps once the person who opened it is erased.
pub const ERASED_SUBJECT: &str = "(subject erased)";

/// What an erasure removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Messages left as tombstones by the deleted user.
    pub messages: usize,
    /// Attachments removed (with their stored objects).
    pub attachments: usize,
    /// Threads the person left.
    pub threads_left: usize,
    /// Threads (and notifications of others) that named them as who opened, was assigned
    /// or caused them, no longer naming them.
    pub threads_untied: usize,
    /// Their notifications, preferences and quiet hours.
    pub notifications: usize,
}

/// Erases `user` of `tenant_id` from messaging at `now`, in one transaction, audited as
/// `actor` (the event names the user's id, nothing they wrote).
pub async fn erase_user(
    store: &Store,
    (tenant_id, user): (Uuid, Uuid),
    now: DateTime<Utc>,
    (actor, meta): (&Actor, &RequestMeta),
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
    // The subjects of threads they opened are their words too: replaced, and out of the
    // subject index.
    let opened: Vec<Uuid> = thread::Entity::find()
        .select_only()
        .column(thread::Column::Id)
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(thread::Column::CreatedBy.eq(user))
        .into_tuple()
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    for chunk in opened.chunks(500) {
        thread::Entity::update_many()
            .col_expr(
                thread::Column::SubjectSealed,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .col_expr(thread::Column::KeyVersion, Expr::value(Option::<i32>::None))
            .col_expr(
                thread::Column::LegacySubject,
                Expr::value(Some(ERASED_SUBJECT.to_owned())),
            )
            .filter(thread::Column::TenantId.eq(tenant_id))
            .filter(thread::Column::Id.is_in(chunk.iter().copied()))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        super::subject_search::unindex(&txn, tenant_id, chunk).await?;
    }
    erased.threads_untied = thread::Entity::update_many()
        .col_expr(thread::Column::CreatedBy, Expr::value(Uuid::nil()))
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(thread::Column::CreatedBy.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    erased.threads_untied += thread::Entity::update_many()
        .col_expr(
            thread::Column::AssigneeId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(thread::Column::AssigneeId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    erased.threads_left = thread_participant::Entity::delete_many()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    erased.notifications = notification::Entity::delete_many()
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    erased.threads_untied += notification::Entity::update_many()
        .col_expr(
            notification::Column::ActorId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::ActorId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    erased.notifications += notification_preference::Entity::delete_many()
        .filter(notification_preference::Column::TenantId.eq(tenant_id))
        .filter(notification_preference::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    erased.notifications += notification_quiet_hours::Entity::delete_many()
        .filter(notification_quiet_hours::Column::TenantId.eq(tenant_id))
        .filter(notification_quiet_hours::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected as usize;
    AuditEvent::success("user_messages.erase", "user", user)
        .with_details(json!({
            "messages": erased.messages,
            "attachments": erased.attachments,
            "threadsLeft": erased.threads_left,
            "threadsUntied": erased.threads_untied,
            "notifications": erased.notifications,
        }))
        .record(&txn, actor, meta)
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

/// The threads `user` is tied to — takes part in, opened, is assigned or wrote in — with
/// the account each is about.
pub async fn threads_of(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<Vec<(Uuid, Option<Uuid>)>> {
    let part_of = sea_orm::sea_query::Query::select()
        .column(thread_participant::Column::ThreadId)
        .from(thread_participant::Entity)
        .and_where(Expr::col(thread_participant::Column::TenantId).eq(tenant_id))
        .and_where(Expr::col(thread_participant::Column::UserId).eq(user))
        .to_owned();
    let wrote_in = sea_orm::sea_query::Query::select()
        .column(message::Column::ThreadId)
        .from(message::Entity)
        .and_where(Expr::col(message::Column::TenantId).eq(tenant_id))
        .and_where(Expr::col(message::Column::AuthorId).eq(user))
        .to_owned();
    thread::Entity::find()
        .select_only()
        .columns([thread::Column::Id, thread::Column::AccountId])
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(
            sea_orm::Condition::any()
                .add(thread::Column::CreatedBy.eq(user))
                .add(thread::Column::AssigneeId.eq(user))
                .add(thread::Column::Id.in_subquery(part_of))
                .add(thread::Column::Id.in_subquery(wrote_in)),
        )
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)
}
