//! Messages persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.
//!
//! Subjects and bodies are sealed ([`sealing`]) before a write transaction begins (sealing
//! may read or create the tenant's key), so no transaction waits on a key. Audit events of
//! message changes name the thread and message but never copy a subject or body.

pub mod attachments;
pub mod erasure;
pub mod notifications;
pub mod reseal;
pub mod retention;
pub mod sealing;
pub mod search;
pub mod subject_search;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::messages::{message, message_edit, thread, thread_participant};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::envelope::{Sealed, TenantKeys};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::storage::FileStore;
use portal_kit::store::{one_or_not_found, ranked_rows_by_parent, rows_by_ids, rows_by_parent};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::notifications::NotificationEvent;
use crate::domain::{self, ParticipantKind, Posted, ThreadStatus};

/// Validated fields of a new thread and its first message.
pub struct NewThread {
    /// Subject line.
    pub subject: String,
    /// Body of the first message.
    pub body: String,
    /// The account the thread is about (accounts' id), if any.
    pub account_id: Option<Uuid>,
    /// Every participant, the creator first (see [`domain::participants`]).
    pub participant_ids: Vec<Uuid>,
    /// On which side the creator is; the others join as customers.
    pub creator_kind: ParticipantKind,
}

/// Validated changes to a thread; `None` leaves a field as it is.
#[derive(Default)]
pub struct ThreadChanges {
    /// New subject line.
    pub subject: Option<String>,
    /// New status.
    pub status: Option<ThreadStatus>,
}

/// A validated new message.
pub struct NewMessage {
    /// The thread it goes to.
    pub thread_id: Uuid,
    /// Its text.
    pub body: String,
    /// The message of the same thread it answers, if any.
    pub reply_to: Option<Uuid>,
    /// On which side the author is (staff who are not participants yet join by posting).
    pub author_kind: ParticipantKind,
    /// Attachments the author uploaded to the thread, to go with the message.
    pub attachment_ids: Vec<Uuid>,
}

/// What messages' persistence works with: the database, the tenants' data keys and the
/// object store attachments are kept in.
#[derive(Clone, Debug)]
pub struct Store {
    /// The database.
    pub db: DatabaseConnection,
    /// The tenants' data keys.
    pub keys: TenantKeys,
    /// Where attachments' sealed contents are kept (and upload links signed).
    pub files: FileStore,
}

/// Queues the notification of the thread's participants (but the actor) of `event`.
async fn notify(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    event: NotificationEvent,
    (thread_id, message_id): (Uuid, Option<Uuid>),
    actor: &Actor,
) -> ApiResult<()> {
    let happened = notifications::Happened {
        event: String::new(),
        thread_id,
        message_id,
        actor_id: actor.id,
        assignee_id: None,
        at: Utc::now(),
    };
    notifications::enqueue_fan_out(txn, tenant_id, event, happened).await
}

fn sealed_parts(sealed: Sealed) -> (Option<Vec<u8>>, Option<i32>) {
    (Some(sealed.bytes), Some(sealed.version))
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
) -> ApiResult<HashMap<Uuid, Vec<thread_participant::Model>>> {
    let rows = thread_participant::Entity::find()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::ThreadId.is_in(thread_ids))
        .order_by_asc(thread_participant::Column::CreatedAt)
        .order_by_asc(thread_participant::Column::UserId)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_thread: HashMap<Uuid, Vec<thread_participant::Model>> = HashMap::new();
    for row in rows {
        by_thread.entry(row.thread_id).or_default().push(row);
    }
    Ok(by_thread)
}

/// `user_id`'s participation in the thread `thread_id` of the tenant, if any.
pub async fn participation(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_id: Uuid,
    user_id: Uuid,
) -> ApiResult<Option<thread_participant::Model>> {
    thread_participant::Entity::find_by_id((thread_id, user_id))
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// Whether `user_id` takes part in the thread `thread_id` of the tenant.
pub async fn is_participant(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_id: Uuid,
    user_id: Uuid,
) -> ApiResult<bool> {
    Ok(participation(db, tenant_id, thread_id, user_id)
        .await?
        .is_some())
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

/// For each of `thread_ids` that `reader` takes part in: how many messages by others,
/// not deleted, were posted after the reader last marked the thread read (all of them
/// when never). Two queries (participations, then one grouped count).
pub async fn unread_counts(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    reader: Uuid,
    thread_ids: &[Uuid],
) -> ApiResult<HashMap<Uuid, i64>> {
    let taking_part = thread_participant::Entity::find()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::UserId.eq(reader))
        .filter(thread_participant::Column::ThreadId.is_in(thread_ids.iter().copied()))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    if taking_part.is_empty() {
        return Ok(HashMap::new());
    }
    let mut since = Condition::any();
    for part in &taking_part {
        let mut of_thread = Condition::all().add(message::Column::ThreadId.eq(part.thread_id));
        if let Some(read) = part.last_read_at {
            of_thread = of_thread.add(message::Column::CreatedAt.gt(read));
        }
        since = since.add(of_thread);
    }
    let counted: Vec<(Uuid, i64)> = message::Entity::find()
        .select_only()
        .column(message::Column::ThreadId)
        .column_as(message::Column::Id.count(), "unread")
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::AuthorId.ne(reader))
        .filter(message::Column::DeletedAt.is_null())
        .filter(since)
        .group_by(message::Column::ThreadId)
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut counts: HashMap<Uuid, i64> = taking_part.iter().map(|p| (p.thread_id, 0)).collect();
    counts.extend(counted);
    Ok(counts)
}

fn participant_row(
    thread_id: Uuid,
    user_id: Uuid,
    tenant_id: Uuid,
    kind: ParticipantKind,
    now: DateTime<Utc>,
) -> thread_participant::ActiveModel {
    thread_participant::ActiveModel {
        thread_id: Set(thread_id),
        user_id: Set(user_id),
        tenant_id: Set(tenant_id),
        created_at: Set(now),
        last_read_at: Set(None),
        kind: Set(kind.as_str().to_owned()),
    }
}

/// Opens a thread in the actor's tenant with its participants and first message.
pub async fn create_thread(
    store: &Store,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewThread,
) -> ApiResult<thread::Model> {
    let tenant_id = actor.tenant()?;
    let creator = actor.principal()?;
    let now = Utc::now();
    let (thread_id, message_id) = (Uuid::now_v7(), Uuid::now_v7());
    let subject = store
        .keys
        .seal(
            sealing::subject_binding(tenant_id, thread_id),
            new.subject.as_bytes(),
        )
        .await?;
    let body = store
        .keys
        .seal_with(
            sealing::body_binding(tenant_id, message_id),
            subject.version,
            new.body.as_bytes(),
        )
        .await?;
    let tokens = search::text_tokens(&store.keys, tenant_id, &new.body).await?;
    let subject_tokens = search::text_tokens(&store.keys, tenant_id, &new.subject).await?;
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let status = ThreadStatus::Open.after_message(new.creator_kind);
    let (subject_sealed, key_version) = sealed_parts(subject);
    let created = thread::ActiveModel {
        id: Set(thread_id),
        tenant_id: Set(tenant_id),
        account_id: Set(new.account_id),
        created_by: Set(creator),
        status: Set(status.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        legacy_subject: Set(None),
        subject_sealed: Set(subject_sealed),
        key_version: Set(key_version),
        assignee_id: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let participant_count = new.participant_ids.len();
    let links = new.participant_ids.into_iter().map(|user_id| {
        let kind = if user_id == creator {
            new.creator_kind
        } else {
            ParticipantKind::Customer
        };
        let mut row = participant_row(thread_id, user_id, tenant_id, kind, now);
        if user_id == creator {
            row.last_read_at = Set(Some(now));
        }
        row
    });
    thread_participant::Entity::insert_many(links)
        .exec_without_returning(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let first = insert_message(
        &txn,
        tenant_id,
        (thread_id, message_id),
        creator,
        body,
        None,
        now,
    )
    .await?;
    let entry = search::Entry {
        message_id,
        thread_id,
        created_at: now,
        tokens,
    };
    search::insert(&txn, tenant_id, &[entry]).await?;
    subject_search::index(&txn, tenant_id, thread_id, &subject_tokens).await?;
    AuditEvent::success("thread.create", "thread", created.id)
        .with_details(json!({
            "participantCount": participant_count,
            "firstMessageId": first.id,
        }))
        .record(&txn, actor, meta)
        .await?;
    notify(
        &txn,
        tenant_id,
        NotificationEvent::NewMessage,
        (thread_id, Some(first.id)),
        actor,
    )
    .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Applies `changes` to a thread of the actor's tenant.
pub async fn update_thread(
    store: &Store,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: ThreadChanges,
) -> ApiResult<thread::Model> {
    let tenant_id = actor.tenant()?;
    let subject = match &changes.subject {
        Some(subject) => Some((
            store
                .keys
                .seal(sealing::subject_binding(tenant_id, id), subject.as_bytes())
                .await?,
            search::text_tokens(&store.keys, tenant_id, subject).await?,
        )),
        None => None,
    };
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let current = thread(&txn, tenant_id, id).await?;
    let before = current.status.clone();
    let mut active: thread::ActiveModel = current.into();
    if let Some((sealed, tokens)) = subject {
        subject_search::index(&txn, tenant_id, id, &tokens).await?;
        let (bytes, version) = sealed_parts(sealed);
        active.subject_sealed = Set(bytes);
        active.key_version = Set(version);
        active.legacy_subject = Set(None);
    }
    if let Some(status) = changes.status {
        active.status = Set(status.as_str().to_owned());
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("thread.update", "thread", id)
        .with_details(json!({
            "subjectChanged": changes.subject.is_some(),
            "before": { "status": before },
            "after": { "status": updated.status },
        }))
        .record(&txn, actor, meta)
        .await?;
    if updated.status != before {
        let event = NotificationEvent::ThreadStatusChanged;
        notify(&txn, tenant_id, event, (id, None), actor).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Assigns a thread of the actor's tenant to `assignee` (who joins it as staff), or
/// unassigns it (`None`).
pub async fn assign_thread(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    assignee: Option<Uuid>,
) -> ApiResult<thread::Model> {
    let tenant_id = actor.tenant()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = thread(&txn, tenant_id, id).await?;
    domain::may_assign(ThreadStatus::from_db(&current.status))?;
    let before = current.assignee_id;
    if let Some(user) = assignee
        && participation(&txn, tenant_id, id, user).await?.is_none()
    {
        participant_row(id, user, tenant_id, ParticipantKind::Staff, now)
            .insert(&txn)
            .await
            .map_err(ApiError::from_db)?;
    }
    let mut active: thread::ActiveModel = current.into();
    active.assignee_id = Set(assignee);
    active.updated_at = Set(now);
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("thread.assign", "thread", id)
        .with_details(json!({ "before": before, "after": assignee }))
        .record(&txn, actor, meta)
        .await?;
    if assignee.is_some() && assignee != before {
        let happened = notifications::Happened {
            event: String::new(),
            thread_id: id,
            message_id: None,
            actor_id: actor.id,
            assignee_id: assignee,
            at: now,
        };
        let event = NotificationEvent::ThreadAssigned;
        notifications::enqueue_fan_out(&txn, tenant_id, event, happened).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Marks the thread read by the actor up to `up_to` (never backwards). `FORBIDDEN` for
/// someone who does not take part. Not audited: reading changes nothing anyone else sees.
pub async fn mark_read(
    db: &DatabaseConnection,
    actor: &Actor,
    thread_id: Uuid,
    up_to: DateTime<Utc>,
) -> ApiResult<thread::Model> {
    let tenant_id = actor.tenant()?;
    let reader = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = thread(&txn, tenant_id, thread_id).await?;
    let Some(part) = participation(&txn, tenant_id, thread_id, reader).await? else {
        return Err(ApiError::Forbidden);
    };
    if part.last_read_at.is_none_or(|read| read < up_to) {
        let mut active: thread_participant::ActiveModel = part.into();
        active.last_read_at = Set(Some(up_to));
        active.update(&txn).await.map_err(ApiError::from_db)?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(current)
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

/// The earlier versions of each of `message_ids`, oldest first, in one query.
pub async fn edits_of_messages(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    message_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<message_edit::Model>>> {
    let rows = message_edit::Entity::find()
        .filter(message_edit::Column::TenantId.eq(tenant_id))
        .filter(message_edit::Column::MessageId.is_in(message_ids))
        .order_by_asc(message_edit::Column::ReplacedAt)
        .order_by_asc(message_edit::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_message: HashMap<Uuid, Vec<message_edit::Model>> = HashMap::new();
    for row in rows {
        by_message.entry(row.message_id).or_default().push(row);
    }
    Ok(by_message)
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

/// Posts a message by the actor to a thread of its tenant (see [`domain::may_post`]):
/// staff who do not take part yet join; the thread moves to whoever answers next; the
/// author has read the thread up to their own message.
pub async fn post_message(
    store: &Store,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewMessage,
) -> ApiResult<message::Model> {
    let tenant_id = actor.tenant()?;
    let author = actor.principal()?;
    let id = Uuid::now_v7();
    let body = store
        .keys
        .seal(sealing::body_binding(tenant_id, id), new.body.as_bytes())
        .await?;
    let thread_id = new.thread_id;
    let tokens = search::text_tokens(&store.keys, tenant_id, &new.body).await?;
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let current = thread(&txn, tenant_id, thread_id).await?;
    let part = participation(&txn, tenant_id, thread_id, author).await?;
    let staff = new.author_kind == ParticipantKind::Staff;
    let status = ThreadStatus::from_db(&current.status);
    domain::may_post(part.is_some() || staff, status)?;
    if let Some(parent) = new.reply_to {
        let parent = message(&txn, tenant_id, parent)
            .await
            .map_err(|_| ApiError::invalid("input.replyToId", "no such message"))?;
        domain::may_reply_to("input.replyToId", thread_id, parent.thread_id)?;
    }
    let now = Utc::now();
    let kind = part
        .as_ref()
        .map_or(new.author_kind, |p| ParticipantKind::from_db(&p.kind));
    let posted = insert_message(
        &txn,
        tenant_id,
        (thread_id, id),
        author,
        body,
        new.reply_to,
        now,
    )
    .await?;
    let entry = search::Entry {
        message_id: id,
        thread_id,
        created_at: now,
        tokens,
    };
    search::insert(&txn, tenant_id, &[entry]).await?;
    attachments::attach(
        &txn,
        tenant_id,
        (thread_id, posted.id, author),
        &new.attachment_ids,
        "input.attachmentIds",
    )
    .await?;
    // The author has read the thread up to their own message (staff join by posting).
    match part {
        Some(part) => {
            let mut reader: thread_participant::ActiveModel = part.into();
            reader.last_read_at = Set(Some(now));
            reader.update(&txn).await.map_err(ApiError::from_db)?;
        }
        None => {
            let mut joined = participant_row(thread_id, author, tenant_id, kind, now);
            joined.last_read_at = Set(Some(now));
            joined.insert(&txn).await.map_err(ApiError::from_db)?;
        }
    }
    let next = status.after_message(kind);
    let mut active: thread::ActiveModel = current.into();
    active.updated_at = Set(now);
    active.status = Set(next.as_str().to_owned());
    active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("message.post", "message", posted.id)
        .with_details(json!({
            "threadId": thread_id,
            "replyToId": new.reply_to,
            "attachmentIds": new.attachment_ids,
        }))
        .record(&txn, actor, meta)
        .await?;
    if next != status {
        AuditEvent::success("thread.update", "thread", thread_id)
            .with_details(json!({
                "before": { "status": status.as_str() },
                "after": { "status": next.as_str() },
                "cause": "message",
            }))
            .record(&txn, actor, meta)
            .await?;
    }
    let event = NotificationEvent::NewMessage;
    notify(&txn, tenant_id, event, (thread_id, Some(posted.id)), actor).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(posted)
}

/// Replaces the body of a message of the actor's tenant (see [`domain::may_change`]),
/// keeping the earlier body in its history.
pub async fn edit_message(
    store: &Store,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    body: String,
) -> ApiResult<message::Model> {
    let tenant_id = actor.tenant()?;
    let editor = actor.principal()?;
    // Seal outside the transaction: the earlier body under the edit's own binding, the
    // new one under the message's. The transaction checks the body did not change since.
    let before = message(&store.db, tenant_id, id).await?;
    let earlier = sealing::body(&store.keys, &before)
        .await?
        .ok_or_else(|| ApiError::Conflict("the message was deleted".into()))?;
    let edit_id = Uuid::now_v7();
    let earlier = store
        .keys
        .seal(
            sealing::earlier_body_binding(tenant_id, edit_id),
            earlier.as_bytes(),
        )
        .await?;
    let replacement = store
        .keys
        .seal_with(
            sealing::body_binding(tenant_id, id),
            earlier.version,
            body.as_bytes(),
        )
        .await?;
    let tokens = search::text_tokens(&store.keys, tenant_id, &body).await?;
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let current = message(&txn, tenant_id, id).await?;
    if current.body_sealed != before.body_sealed || current.legacy_body != before.legacy_body {
        return Err(ApiError::Conflict(
            "the message changed meanwhile: try again".into(),
        ));
    }
    let status = ThreadStatus::from_db(&thread(&txn, tenant_id, current.thread_id).await?.status);
    let now = Utc::now();
    domain::may_change(editor, posted(&current), status, now)?;
    let thread_id = current.thread_id;
    search::index(
        &txn,
        tenant_id,
        (id, thread_id, current.created_at),
        &tokens,
    )
    .await?;
    let (earlier_bytes, earlier_version) = sealed_parts(earlier);
    message_edit::ActiveModel {
        id: Set(edit_id),
        tenant_id: Set(tenant_id),
        message_id: Set(id),
        body_sealed: Set(earlier_bytes),
        key_version: Set(earlier_version),
        replaced_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let (bytes, version) = sealed_parts(replacement);
    let mut active: message::ActiveModel = current.into();
    active.body_sealed = Set(bytes);
    active.key_version = Set(version);
    active.legacy_body = Set(None);
    active.edited_at = Set(Some(now));
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("message.edit", "message", id)
        .with_details(json!({ "threadId": thread_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

fn posted(row: &message::Model) -> Posted {
    Posted {
        author: row.author_id,
        at: row.created_at,
        deleted: row.deleted_at.is_some(),
    }
}

/// Deletes a message of the actor's tenant (see [`domain::may_change`]): its body and
/// earlier bodies are removed, the row stays as a tombstone in its thread.
pub async fn delete_message(
    store: &Store,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
) -> ApiResult<message::Model> {
    let tenant_id = actor.tenant()?;
    let editor = actor.principal()?;
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let current = message(&txn, tenant_id, id).await?;
    let status = ThreadStatus::from_db(&thread(&txn, tenant_id, current.thread_id).await?.status);
    let now = Utc::now();
    domain::may_change(editor, posted(&current), status, now)?;
    let thread_id = current.thread_id;
    let (removed, objects) = tombstone(&txn, tenant_id, &[id], now).await?;
    AuditEvent::success("message.delete", "message", id)
        .with_details(json!({
            "threadId": thread_id,
            "earlierVersionsRemoved": removed,
            "attachmentsRemoved": objects.len(),
        }))
        .record(&txn, actor, meta)
        .await?;
    let deleted = message(&txn, tenant_id, id).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    store.remove_objects(objects).await;
    Ok(deleted)
}

/// Turns `ids` into tombstones: bodies and earlier bodies, search entries and attachment
/// rows removed. How many earlier versions went, and the attachment objects to remove
/// once the transaction commits ([`Store::remove_objects`]).
async fn tombstone(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> ApiResult<(u64, Vec<String>)> {
    let removed = remove_bodies(txn, tenant_id, ids, now).await?;
    search::unindex(txn, tenant_id, ids).await?;
    let objects = attachments::remove_of_messages(txn, tenant_id, ids).await?;
    Ok((removed, objects))
}

impl Store {
    /// Removes stored attachment objects whose rows are gone (call after the commit): they
    /// are unreachable already, so a failure leaves only storage behind, logged.
    pub(crate) async fn remove_objects(&self, keys: Vec<String>) {
        for key in keys {
            if let Err(err) = self.files.remove(&key).await {
                tracing::warn!(?err, key, "removing an attachment object failed");
            }
        }
    }
}

/// Removes the bodies (and earlier bodies) of `ids`, leaving tombstones; how many
/// earlier versions went with them.
async fn remove_bodies(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    message::Entity::update_many()
        .col_expr(
            message::Column::BodySealed,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            message::Column::LegacyBody,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            message::Column::KeyVersion,
            Expr::value(Option::<i32>::None),
        )
        .col_expr(message::Column::DeletedAt, Expr::value(now))
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(message_edit::Entity::delete_many()
        .filter(message_edit::Column::TenantId.eq(tenant_id))
        .filter(message_edit::Column::MessageId.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected)
}

async fn insert_message(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    (thread_id, id): (Uuid, Uuid),
    author_id: Uuid,
    body: Sealed,
    reply_to: Option<Uuid>,
    now: DateTime<Utc>,
) -> ApiResult<message::Model> {
    let (bytes, version) = sealed_parts(body);
    message::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        thread_id: Set(thread_id),
        author_id: Set(author_id),
        created_at: Set(now),
        edited_at: Set(None),
        legacy_body: Set(None),
        body_sealed: Set(bytes),
        key_version: Set(version),
        reply_to_id: Set(reply_to),
        deleted_at: Set(None),
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
            created_at: Set(Utc::now()),
            edited_at: Set(None),
            legacy_body: Set(Some("hello".into())),
            body_sealed: Set(None),
            key_version: Set(None),
            reply_to_id: Set(None),
            deleted_at: Set(None),
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
