//! Messages persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.
//!
//! Audit events of message changes name the thread and message but never copy a body.

use portal_kit::db::BeginWrite;
use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::messages::{message, thread, thread_participant};
use portal_kit::audit::AuditEvent;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::store::{one_or_not_found, ranked_rows_by_parent, rows_by_ids, rows_by_parent};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::{self, ThreadStatus};

/// Validated fields of a new thread and its first message.
pub struct NewThread {
    /// Subject line.
    pub subject: String,
    /// Body of the first message.
    pub body: String,
    /// The account the thread is about (accounts' id), if any.
    pub account_id: Option<Uuid>,
    /// Every participant, the creator included (see [`domain::participants`]).
    pub participant_ids: Vec<Uuid>,
}

/// Validated changes to a thread; `None` leaves a field as it is.
#[derive(Default)]
pub struct ThreadChanges {
    /// New subject line.
    pub subject: Option<String>,
    /// New status.
    pub status: Option<ThreadStatus>,
}

/// One thread of the tenant.
pub async fn thread(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<thread::Model> {
    let scoped = thread::Entity::find_by_id(id).filter(thread::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "thread").await
}

/// Threads of the tenant among `ids`, in one query.
pub async fn threads_by_ids(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, thread::Model>> {
    let scoped = thread::Entity::find().filter(thread::Column::TenantId.eq(tenant_id));
    rows_by_ids(db, scoped, thread::Column::Id, ids).await
}

/// The participants of each of `thread_ids`, in the order they joined, in one query.
pub async fn participants_of_threads(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    thread_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<Uuid>>> {
    let rows = thread_participant::Entity::find()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::ThreadId.is_in(thread_ids))
        .order_by_asc(thread_participant::Column::CreatedAt)
        .order_by_asc(thread_participant::Column::UserId)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_thread: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for row in rows {
        by_thread
            .entry(row.thread_id)
            .or_default()
            .push(row.user_id);
    }
    Ok(by_thread)
}

/// Whether `user_id` takes part in the thread `thread_id` of the tenant.
pub async fn is_participant(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_id: Uuid,
    user_id: Uuid,
) -> ApiResult<bool> {
    let found = thread_participant::Entity::find_by_id((thread_id, user_id))
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(found.is_some())
}

/// The same page of threads for each of `user_ids`: the threads each takes part in,
/// oldest first, in two queries (participations, then their threads).
///
/// Reads every participation of those users after the cursor and cuts each user's list
/// to the page size in memory before loading the threads.
pub async fn pages_by_participant(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    user_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<thread::Model>>> {
    let scoped = thread_participant::Entity::find()
        .filter(thread_participant::Column::TenantId.eq(tenant_id));
    let (user, thread) = (
        thread_participant::Column::UserId,
        thread_participant::Column::ThreadId,
    );
    let links_by_user = rows_by_parent(db, scoped, user, user_ids, thread, page).await?;
    let wanted = links_by_user.values().flatten().map(|link| link.thread_id);
    let threads = threads_by_ids(db, tenant_id, wanted).await?;
    Ok(links_by_user
        .into_iter()
        .map(|(user, links)| {
            let rows = links
                .iter()
                .filter_map(|link| threads.get(&link.thread_id).cloned())
                .collect();
            (user, page.page(rows))
        })
        .collect())
}

/// Opens a thread in the actor's tenant with its participants and first message.
pub async fn create_thread(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewThread,
) -> ApiResult<thread::Model> {
    let tenant_id = actor.tenant()?;
    let creator = actor.principal()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = thread::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        account_id: Set(new.account_id),
        created_by: Set(creator),
        subject: Set(new.subject),
        status: Set(ThreadStatus::Open.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let participant_count = new.participant_ids.len();
    let links = new
        .participant_ids
        .into_iter()
        .map(|user_id| thread_participant::ActiveModel {
            thread_id: Set(created.id),
            user_id: Set(user_id),
            tenant_id: Set(tenant_id),
            created_at: Set(now),
        });
    thread_participant::Entity::insert_many(links)
        .exec_without_returning(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let first = insert_message(&txn, tenant_id, created.id, creator, new.body).await?;
    AuditEvent::success("thread.create", "thread", created.id)
        .with_details(json!({
            "participantCount": participant_count,
            "firstMessageId": first.id,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Applies `changes` to a thread of the actor's tenant.
pub async fn update_thread(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: ThreadChanges,
) -> ApiResult<thread::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = thread(&txn, tenant_id, id).await?;
    let before = json!({ "subject": current.subject, "status": current.status });
    let mut active: thread::ActiveModel = current.into();
    if let Some(subject) = changes.subject {
        active.subject = Set(subject);
    }
    if let Some(status) = changes.status {
        active.status = Set(status.as_str().to_owned());
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    let after = json!({ "subject": updated.subject, "status": updated.status });
    AuditEvent::success("thread.update", "thread", id)
        .with_details(json!({ "before": before, "after": after }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// One message of the tenant.
pub async fn message(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<message::Model> {
    let scoped = message::Entity::find_by_id(id).filter(message::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "message").await
}

/// Messages of the tenant among `ids`, in one query.
pub async fn messages_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, message::Model>> {
    let scoped = message::Entity::find().filter(message::Column::TenantId.eq(tenant_id));
    rows_by_ids(db, scoped, message::Column::Id, ids).await
}

/// The same page of messages for each of `thread_ids`, oldest first, in one query.
///
/// Threads gather messages without bound, so unlike [`pages_by_participant`] this does
/// not read every message after the cursor: the database keeps at most `first + 1`
/// messages per thread (see [`ranked_rows_by_parent`]). Every id in `thread_ids` gets a
/// page, empty when it has no messages.
pub async fn pages_by_thread(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    thread_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<message::Model>>> {
    let scoped = message::Entity::find().filter(message::Column::TenantId.eq(tenant_id));
    let (thread, id) = (message::Column::ThreadId, message::Column::Id);
    let rows = ranked_rows_by_parent(db, scoped, thread, thread_ids, id, page).await?;
    Ok(page.pages(rows))
}

/// Posts a message by the actor to a thread of its tenant (see [`domain::may_post`]).
pub async fn post_message(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    thread_id: Uuid,
    body: String,
) -> ApiResult<message::Model> {
    let tenant_id = actor.tenant()?;
    let author = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = thread(&txn, tenant_id, thread_id).await?;
    let participant = is_participant(&txn, tenant_id, thread_id, author).await?;
    domain::may_post(participant, ThreadStatus::from_db(&current.status))?;
    let posted = insert_message(&txn, tenant_id, thread_id, author, body).await?;
    let mut active: thread::ActiveModel = current.into();
    active.updated_at = Set(posted.created_at);
    active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("message.post", "message", posted.id)
        .with_details(json!({ "threadId": thread_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(posted)
}

/// Replaces the body of a message of the actor's tenant (see [`domain::may_edit`]).
pub async fn edit_message(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    body: String,
) -> ApiResult<message::Model> {
    let tenant_id = actor.tenant()?;
    let editor = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = message(&txn, tenant_id, id).await?;
    let status = ThreadStatus::from_db(&thread(&txn, tenant_id, current.thread_id).await?.status);
    domain::may_edit(editor, current.author_id, status)?;
    let thread_id = current.thread_id;
    let mut active: message::ActiveModel = current.into();
    active.body = Set(body);
    active.edited_at = Set(Some(Utc::now()));
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("message.edit", "message", id)
        .with_details(json!({ "threadId": thread_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

async fn insert_message(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_id: Uuid,
    author_id: Uuid,
    body: String,
) -> ApiResult<message::Model> {
    message::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        thread_id: Set(thread_id),
        author_id: Set(author_id),
        body: Set(body),
        created_at: Set(Utc::now()),
        edited_at: Set(None),
    }
    .insert(txn)
    .await
    .map_err(ApiError::from_db)
}

#[cfg(test)]
mod tests {
    use portal_kit::pagination::encode_cursor;
    use sea_orm::{Database, DbBackend, Schema};

    use super::*;

    async fn messages_table() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        let table = Schema::new(DbBackend::Sqlite).create_table_from_entity(message::Entity);
        db.execute(&table).await.expect("create table");
        db
    }

    async fn add_message(db: &DatabaseConnection, tenant_id: Uuid, thread_id: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        message::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id),
            thread_id: Set(thread_id),
            author_id: Set(Uuid::now_v7()),
            body: Set("hello".into()),
            created_at: Set(Utc::now()),
            edited_at: Set(None),
        }
        .insert(db)
        .await
        .expect("insert message");
        id
    }

    fn ids(page: &Page<message::Model>) -> Vec<Uuid> {
        page.items.iter().map(|row| row.id).collect()
    }

    #[tokio::test]
    async fn pages_by_thread_cuts_each_thread_to_its_own_page() {
        let db = messages_table().await;
        let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let (busy, quiet, foreign) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut busy_messages = Vec::new();
        for _ in 0..5 {
            busy_messages.push(add_message(&db, tenant, busy).await);
        }
        let quiet_message = add_message(&db, tenant, quiet).await;
        add_message(&db, other_tenant, foreign).await;

        let first_two = PageRequest::parse(Some(2), None).expect("page");
        let pages = pages_by_thread(&db, tenant, &[busy, quiet, foreign], first_two)
            .await
            .expect("pages");
        assert_eq!(pages.len(), 3);
        assert_eq!(ids(&pages[&busy]), busy_messages[..2]);
        assert!(pages[&busy].has_next_page);
        assert_eq!(ids(&pages[&quiet]), [quiet_message]);
        assert!(!pages[&quiet].has_next_page);
        // Another tenant's messages are invisible.
        assert!(pages[&foreign].items.is_empty());

        let cursor = encode_cursor(busy_messages[2]);
        let rest = PageRequest::parse(Some(2), Some(&cursor)).expect("page");
        let pages = pages_by_thread(&db, tenant, &[busy], rest)
            .await
            .expect("pages");
        assert_eq!(ids(&pages[&busy]), busy_messages[3..]);
        assert!(!pages[&busy].has_next_page);
    }
}
