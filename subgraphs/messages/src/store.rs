//! Messages persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.
//!
//! Audit events of message changes name the thread and message but never copy a body.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement, WindowStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    FromQueryResult, Iterable, QueryFilter, QueryOrder, QueryTrait, Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::messages::{message, thread, thread_participant};
use portal_kit::audit::AuditEvent;
use portal_kit::pagination::{Page, PageRequest};
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
    thread::Entity::find_by_id(id)
        .filter(thread::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("thread"))
}

/// Threads of the tenant among `ids`, in one query.
pub async fn threads_by_ids(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, thread::Model>> {
    let rows = thread::Entity::find()
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(thread::Column::Id.is_in(ids))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
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
    let mut select = thread_participant::Entity::find()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::UserId.is_in(user_ids.iter().copied()));
    if let Some(after) = page.after {
        select = select.filter(thread_participant::Column::ThreadId.gt(after));
    }
    let links = select
        .order_by_asc(thread_participant::Column::ThreadId)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut ids_by_user: HashMap<Uuid, Vec<Uuid>> =
        user_ids.iter().map(|id| (*id, Vec::new())).collect();
    for link in links {
        let list = ids_by_user.entry(link.user_id).or_default();
        if (list.len() as u64) <= page.first {
            list.push(link.thread_id);
        }
    }
    let wanted = ids_by_user.values().flatten().copied().collect::<Vec<_>>();
    let threads = threads_by_ids(db, tenant_id, wanted).await?;
    Ok(ids_by_user
        .into_iter()
        .map(|(user, ids)| {
            let rows = ids
                .iter()
                .filter_map(|id| threads.get(id).cloned())
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
    let txn = db.begin().await.map_err(ApiError::from_db)?;
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
    let txn = db.begin().await.map_err(ApiError::from_db)?;
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
    message::Entity::find_by_id(id)
        .filter(message::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("message"))
}

/// Messages of the tenant among `ids`, in one query.
pub async fn messages_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, message::Model>> {
    let rows = message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::Id.is_in(ids))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

/// The same page of messages for each of `thread_ids`, oldest first, in one query.
///
/// Threads gather messages without bound, so unlike [`pages_by_participant`] this does
/// not read every message after the cursor: `ROW_NUMBER()` over each thread's messages
/// keeps at most `first + 1` rows per thread (SQLite and PostgreSQL alike). Every id in
/// `thread_ids` gets a page, empty when it has no messages.
pub async fn pages_by_thread(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    thread_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<message::Model>>> {
    let query = messages_page_query(tenant_id, thread_ids, page);
    let rows = message::Model::find_by_statement(db.get_database_backend().build(&query))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_thread: HashMap<Uuid, Vec<message::Model>> =
        thread_ids.iter().map(|id| (*id, Vec::new())).collect();
    for row in rows {
        by_thread.entry(row.thread_id).or_default().push(row);
    }
    Ok(by_thread
        .into_iter()
        .map(|(thread, rows)| (thread, page.page(rows)))
        .collect())
}

/// The query of [`pages_by_thread`]: the messages of `thread_ids` after the cursor,
/// ranked per thread, at most `first + 1` of each.
fn messages_page_query(tenant_id: Uuid, thread_ids: &[Uuid], page: PageRequest) -> SelectStatement {
    let mut ranked = message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::ThreadId.is_in(thread_ids.iter().copied()));
    if let Some(after) = page.after {
        ranked = ranked.filter(message::Column::Id.gt(after));
    }
    let mut ranked = ranked.into_query();
    ranked.expr_window_as(
        Expr::cust("ROW_NUMBER()"),
        WindowStatement::partition_by(message::Column::ThreadId)
            .order_by(message::Column::Id, Order::Asc)
            .take(),
        PAGE_RANK,
    );
    Query::select()
        .columns(message::Column::iter())
        .from_subquery(ranked, RANKED)
        .and_where(Expr::col(PAGE_RANK).lte(page.first + 1))
        .order_by(message::Column::Id, Order::Asc)
        .to_owned()
}

/// Alias of the ranked messages subquery of [`pages_by_thread`].
const RANKED: &str = "ranked";
/// Column of a row's position within its thread's messages after the cursor.
const PAGE_RANK: &str = "page_rank";

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
    let txn = db.begin().await.map_err(ApiError::from_db)?;
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
    let txn = db.begin().await.map_err(ApiError::from_db)?;
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

    #[test]
    fn messages_page_query_ranks_per_thread_in_sql() {
        let page = PageRequest::parse(Some(2), None).expect("page");
        let sql = DbBackend::Postgres
            .build(&messages_page_query(Uuid::nil(), &[Uuid::max()], page))
            .sql;
        assert!(
            sql.contains(
                r#"ROW_NUMBER() OVER ( PARTITION BY "thread_id" ORDER BY "id" ASC ) AS "page_rank""#
            ),
            "{sql}"
        );
        assert!(sql.contains(r#"WHERE "page_rank" <= $3"#), "{sql}");
    }
}
