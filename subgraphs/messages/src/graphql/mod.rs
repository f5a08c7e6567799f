//! Messages' GraphQL surface: `Thread` and `Message` (`@key(fields: "id")`), the
//! `User.threads` field it contributes to identity's `User`, the thread and message
//! queries and mutations, and the tenant's data keys.

mod attachments;
mod federation;
mod loaders;
mod notifications;
mod retention;
mod subscriptions;
mod types;
mod visibility;

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MergedObject, Object, Schema};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_kit::context::{actor, meta, references, tenant};
use portal_kit::envelope::TenantKeys;
use portal_kit::error::MaskInternalErrors;
use portal_kit::events::feed::EventFeed;
use portal_kit::input;
use portal_kit::loader::{batch_loader, load_page};
use portal_kit::pagination::PageRequest;
use portal_kit::policy::THREADS_ALL;
use portal_kit::references::References;
use portal_kit::storage::FileStore;
use portal_kit::{Actor, ApiError, ApiResult};

use crate::domain::{self, ParticipantKind, ThreadStatus};
use crate::store::{self, Store};
use visibility::{load_readable_attachment, load_readable_message, load_readable_thread};

pub use attachments::{Attachment, AttachmentStateGql, AttachmentUpload, MessagingSettings};
pub use federation::{Account, User};
pub use loaders::{
    AttachmentFiles, AttachmentsById, AttachmentsOfMessages, EditsOfMessages, MessagesById,
    MessagesByThread, ParticipantsOfThreads, ThreadsById, ThreadsByParticipant, UnreadCounts,
};
pub use notifications::{
    ChannelGql, FrequencyGql, Notification, NotificationConnection, NotificationEdge,
    NotificationEventGql, NotificationMutation, NotificationPreference, NotificationPreferences,
    NotificationQuery, QuietHours, SourceGql,
};
pub use retention::{
    HoldTargetGql, LegalHold, MessageRetentionPreview, MessageRetentionRule, RetainedAccountCount,
    RetainedThreadCount, RetentionActionGql, RetentionMutation, RetentionQuery,
};
pub use subscriptions::Subscription;
pub use types::{
    Message, MessageConnection, MessageEdge, MessageEdit, ParticipantKindGql, TenantDataKey,
    Thread, ThreadConnection, ThreadEdge, ThreadParticipant, ThreadStatusGql,
};

/// The messages subgraph's executable schema.
pub type MessagesSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over `db`, checking references to other subgraphs' entities through
/// `references`, following committed changes through `feed`, sealing text with the
/// tenants' data keys `keys` and keeping attachments in `files`; no socket needed (tests
/// call `execute` directly).
pub fn build_schema(
    db: DatabaseConnection,
    references: References,
    feed: Arc<EventFeed>,
    keys: TenantKeys,
    files: FileStore,
) -> MessagesSchema {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .enable_federation()
    .enable_subscription_in_federation()
    .extension(MaskInternalErrors)
    .data(batch_loader::<ThreadsById>(&db))
    .data(batch_loader::<MessagesById>(&db))
    .data(batch_loader::<ParticipantsOfThreads>(&db))
    .data(batch_loader::<ThreadsByParticipant>(&db))
    .data(batch_loader::<MessagesByThread>(&db))
    .data(batch_loader::<EditsOfMessages>(&db))
    .data(UnreadCounts::loader(&db))
    .data(batch_loader::<AttachmentsById>(&db))
    .data(batch_loader::<AttachmentsOfMessages>(&db))
    .data(batch_loader::<AttachmentFiles>(&db))
    .data(Store {
        db: db.clone(),
        keys,
        files,
    })
    .data(references)
    .data(feed)
    .data(db)
    .finish()
}

/// Messages' persistence (database and data keys) from the schema data.
pub(crate) fn store<'c>(ctx: &Context<'c>) -> ApiResult<&'c Store> {
    ctx.data::<Store>()
        .map_err(|_| ApiError::internal("the messages store is not in the schema data"))
}

/// On which side the caller is: staff when the policies let it work the tenant's support
/// queue (the `Thread.all` grant), a customer otherwise.
fn side(actor: &Actor) -> ParticipantKind {
    if actor.has_grant(THREADS_ALL) {
        ParticipantKind::Staff
    } else {
        ParticipantKind::Customer
    }
}

/// Messages queries: threads, messages, search, attachments and keys, notifications, and
/// retention.
#[derive(MergedObject, Default)]
pub struct Query(CoreQuery, NotificationQuery, RetentionQuery);

/// Threads, messages, search, attachments, keys, and the entity resolvers.
#[derive(Default)]
pub struct CoreQuery;

#[Object]
impl CoreQuery {
    /// One thread of the caller's tenant, or null.
    async fn thread(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Thread>> {
        let id = input::id("id", &id)?;
        load_thread(ctx, id).await
    }

    /// Threads the caller takes part in, oldest first.
    async fn threads(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ThreadConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let user = actor(ctx).principal()?;
        let found = load_page::<ThreadsByParticipant>(ctx, user, page).await?;
        Ok(found.map(Thread::from).into())
    }

    /// One message of the caller's tenant, or null.
    async fn message(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Message>> {
        let id = input::id("id", &id)?;
        load_message(ctx, id).await
    }

    /// Messages whose text contains every word of `query` (each word matches the words it
    /// begins, case-insensitively), newest first, among the threads the caller may read
    /// and narrowed by `filter`. Searched without plaintext in the database (a blind
    /// index, see docs/messages.md#search).
    async fn search_messages(
        &self,
        ctx: &Context<'_>,
        query: String,
        filter: Option<MessageSearchFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<MessageConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let filter = store::search::SearchFilter {
            posted_after: filter.posted_after,
            posted_before: filter.posted_before,
            ..thread_filter(filter.account_id, filter.status, filter.participant_id)?
        };
        let found = store::search::search(
            store(ctx)?,
            tenant(ctx)?,
            search_reader(ctx)?,
            (&query, "query"),
            &filter,
            page,
        )
        .await?;
        Ok(found.map(Message::from).into())
    }

    /// Threads whose subject contains every word of `query` (each word matches the words
    /// it begins, case-insensitively), newest first, among the threads the caller may read
    /// and narrowed by `filter`. Searched without plaintext in the database, like
    /// `searchMessages` (docs/messages.md#search).
    async fn search_threads(
        &self,
        ctx: &Context<'_>,
        query: String,
        filter: Option<ThreadSearchFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ThreadConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let filter = thread_filter(filter.account_id, filter.status, filter.participant_id)?;
        let found = store::subject_search::search(
            store(ctx)?,
            tenant(ctx)?,
            search_reader(ctx)?,
            (&query, "query"),
            &filter,
            page,
        )
        .await?;
        Ok(found.map(Thread::from).into())
    }

    /// One attachment, or null: on a message of a thread the caller may read, or uploaded
    /// by the caller and not posted yet.
    async fn attachment(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Attachment>> {
        let id = input::id("id", &id)?;
        Ok(load_readable_attachment(ctx, id)
            .await?
            .map(Attachment::from))
    }

    /// The caller's tenant's messaging settings (attachment size limit, accepted types).
    async fn messaging_settings(&self, ctx: &Context<'_>) -> ApiResult<MessagingSettings> {
        let limit = store::attachments::max_bytes(&store(ctx)?.db, tenant(ctx)?).await?;
        Ok(MessagingSettings::new(limit))
    }

    /// The versions of the caller's tenant's data key, oldest first.
    async fn tenant_data_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<TenantDataKey>> {
        let tenant_id = tenant(ctx)?;
        let versions = store(ctx)?.keys.versions(tenant_id).await?;
        Ok(versions.into_iter().map(TenantDataKey::from).collect())
    }

    /// Federation entity resolver for `Thread`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_thread_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Thread>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_thread(ctx, id).await
    }

    /// Federation entity resolver for `Message`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_message_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Message>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_message(ctx, id).await
    }

    /// Federation entity resolver for `User` (only the key is known here).
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> User {
        User::from_key(id)
    }

    /// Federation entity resolver for `Account` (only the key is known here).
    #[graphql(entity)]
    async fn find_account_by_id(&self, id: ID) -> Account {
        Account::from_key(id)
    }
}

async fn load_thread(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Thread>> {
    Ok(load_readable_thread(ctx, id).await?.map(Thread::from))
}

async fn load_message(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Message>> {
    Ok(load_readable_message(ctx, id).await?.map(Message::from))
}

/// Input of `createThread`.
#[derive(InputObject)]
pub struct CreateThreadInput {
    /// Subject line (at most 300 characters).
    pub subject: String,
    /// Body of the first message (at most 20000 characters).
    pub body: String,
    /// The account the thread is about (accounts' id).
    pub account_id: Option<ID>,
    /// Users to take part besides the caller, who always does; at most 50 participants
    /// in all, the caller included.
    pub participant_ids: Option<Vec<ID>>,
}

/// Input of `updateThread`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateThreadInput {
    /// New subject line.
    pub subject: Option<String>,
    /// New status (`CLOSED` makes the thread read-only; a message moves an open, waiting or
    /// resolved thread to whoever answers next).
    pub status: Option<ThreadStatusGql>,
}

/// Input of `postMessage`.
#[derive(InputObject)]
pub struct CreateMessageInput {
    /// The thread to post to.
    pub thread_id: ID,
    /// Text of the message (at most 20000 characters).
    pub body: String,
    /// The message of the same thread this one answers.
    pub reply_to_id: Option<ID>,
    /// Attachments the caller uploaded to this thread (`createAttachmentUpload`, then the
    /// `PUT`), at most 10.
    pub attachment_ids: Option<Vec<ID>>,
}

/// Whose threads a search looks in: the caller's own, or every thread of the tenant for
/// holders of the queue grant.
fn search_reader(ctx: &Context<'_>) -> ApiResult<Option<uuid::Uuid>> {
    let actor = actor(ctx);
    if actor.has_grant(THREADS_ALL) {
        Ok(None)
    } else {
        Ok(Some(actor.principal()?))
    }
}

/// A search's thread conditions, ids checked.
fn thread_filter(
    account_id: Option<ID>,
    status: Option<ThreadStatusGql>,
    participant_id: Option<ID>,
) -> ApiResult<store::search::SearchFilter> {
    Ok(store::search::SearchFilter {
        account_id: account_id
            .map(|id| input::id("filter.accountId", &id))
            .transpose()?,
        status: status.map(ThreadStatus::from),
        participant_id: participant_id
            .map(|id| input::id("filter.participantId", &id))
            .transpose()?,
        ..Default::default()
    })
}

/// What narrows `searchThreads`; omitted fields do not.
#[derive(InputObject, Default)]
pub struct ThreadSearchFilter {
    /// Threads about this account.
    pub account_id: Option<ID>,
    /// Threads in this status.
    pub status: Option<ThreadStatusGql>,
    /// Threads this user takes part in.
    pub participant_id: Option<ID>,
}

/// What narrows `searchMessages`; omitted fields do not.
#[derive(InputObject, Default)]
pub struct MessageSearchFilter {
    /// Threads about this account.
    pub account_id: Option<ID>,
    /// Threads in this status.
    pub status: Option<ThreadStatusGql>,
    /// Threads this user takes part in.
    pub participant_id: Option<ID>,
    /// Messages posted at or after this instant.
    pub posted_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Messages posted before this instant.
    pub posted_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Input of `createAttachmentUpload`.
#[derive(InputObject)]
pub struct CreateAttachmentUploadInput {
    /// The thread the file is for (the caller must be able to post to it).
    pub thread_id: ID,
    /// The file name (with an extension of an accepted type).
    pub file_name: String,
}

/// Input of `updateMessagingSettings`.
#[derive(InputObject)]
pub struct UpdateMessagingSettingsInput {
    /// The largest attachment the tenant's users may upload (1 byte to 100 MiB).
    pub attachment_max_bytes: i64,
}

/// Input of `editMessage`.
#[derive(InputObject)]
pub struct UpdateMessageInput {
    /// New text of the message (at most 20000 characters).
    pub body: String,
}

/// Messages mutations. Each validates all input before writing anything and records an
/// audit event in the same transaction as the change.
#[derive(Default)]
pub struct CoreMutation;

/// Messages mutations: threads, messages, attachments, keys, notifications, and retention.
#[derive(MergedObject, Default)]
pub struct Mutation(CoreMutation, NotificationMutation, RetentionMutation);

#[Object]
impl CoreMutation {
    /// Opens a thread in the caller's tenant with its first message, posted by the caller.
    async fn create_thread(
        &self,
        ctx: &Context<'_>,
        input: CreateThreadInput,
    ) -> ApiResult<Thread> {
        let creator = actor(ctx).principal()?;
        let others = input
            .participant_ids
            .unwrap_or_default()
            .iter()
            .map(|id| input::id("input.participantIds", id))
            .collect::<ApiResult<Vec<Uuid>>>()?;
        let new = store::NewThread {
            subject: domain::subject("input.subject", &input.subject)?,
            body: domain::body("input.body", &input.body)?,
            account_id: input
                .account_id
                .map(|id| input::id("input.accountId", &id))
                .transpose()?,
            participant_ids: domain::participants("input.participantIds", creator, &others)?,
            creator_kind: side(actor(ctx)),
        };
        let references = references(ctx)?;
        references
            .require(
                actor(ctx),
                meta(ctx),
                "input.participantIds",
                &domain::CURRENT_USER,
                // The caller is the creator, always a participant: no need to ask about them.
                &new.participant_ids[1..],
            )
            .await?;
        references
            .require(
                actor(ctx),
                meta(ctx),
                "input.accountId",
                &domain::OPEN_ACCOUNT,
                new.account_id.as_slice(),
            )
            .await?;
        Ok(
            store::create_thread(store(ctx)?, actor(ctx), meta(ctx), new)
                .await?
                .into(),
        )
    }

    /// Changes a thread's subject or status.
    async fn update_thread(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateThreadInput,
    ) -> ApiResult<Thread> {
        let id = input::id("id", &id)?;
        let changes = store::ThreadChanges {
            subject: input
                .subject
                .map(|subject| domain::subject("input.subject", &subject))
                .transpose()?,
            status: input.status.map(ThreadStatus::from),
        };
        if load_readable_thread(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("thread"));
        }
        Ok(
            store::update_thread(store(ctx)?, actor(ctx), meta(ctx), id, changes)
                .await?
                .into(),
        )
    }

    /// Assigns a thread to a user of the tenant, who joins it as staff; `assigneeId: null`
    /// unassigns it.
    async fn assign_thread(
        &self,
        ctx: &Context<'_>,
        id: ID,
        assignee_id: Option<ID>,
    ) -> ApiResult<Thread> {
        let id = input::id("id", &id)?;
        let assignee = assignee_id
            .map(|user| input::id("assigneeId", &user))
            .transpose()?;
        if load_readable_thread(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("thread"));
        }
        references(ctx)?
            .require(
                actor(ctx),
                meta(ctx),
                "assigneeId",
                &domain::CURRENT_USER,
                assignee.as_slice(),
            )
            .await?;
        let db = &store(ctx)?.db;
        Ok(
            store::assign_thread(db, actor(ctx), meta(ctx), id, assignee)
                .await?
                .into(),
        )
    }

    /// Marks a thread the caller takes part in as read, up to the message `upToId` (by
    /// default: everything until now). Read marks never move backwards.
    async fn mark_thread_read(
        &self,
        ctx: &Context<'_>,
        id: ID,
        up_to_id: Option<ID>,
    ) -> ApiResult<Thread> {
        let id = input::id("id", &id)?;
        let up_to = up_to_id
            .map(|message| input::id("upToId", &message))
            .transpose()?;
        if load_readable_thread(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("thread"));
        }
        let up_to = match up_to {
            Some(message) => match load_readable_message(ctx, message).await? {
                Some(row) if row.thread_id == id => row.created_at,
                _ => return Err(ApiError::invalid("upToId", "not a message of this thread")),
            },
            None => chrono::Utc::now(),
        };
        let db = &store(ctx)?.db;
        Ok(store::mark_read(db, actor(ctx), id, up_to).await?.into())
    }

    /// Posts a message to a thread that is not closed: its participants may, and staff
    /// (who join by posting). A customer's message reopens the thread for the staff, a
    /// staff member's leaves it waiting on the customer.
    async fn post_message(
        &self,
        ctx: &Context<'_>,
        input: CreateMessageInput,
    ) -> ApiResult<Message> {
        let new = store::NewMessage {
            thread_id: input::id("input.threadId", &input.thread_id)?,
            body: domain::body("input.body", &input.body)?,
            reply_to: input
                .reply_to_id
                .map(|id| input::id("input.replyToId", &id))
                .transpose()?,
            author_kind: side(actor(ctx)),
            attachment_ids: input
                .attachment_ids
                .unwrap_or_default()
                .iter()
                .map(|id| input::id("input.attachmentIds", id))
                .collect::<ApiResult<Vec<Uuid>>>()?,
        };
        if load_readable_thread(ctx, new.thread_id).await?.is_none() {
            return Err(ApiError::NotFound("thread"));
        }
        Ok(store::post_message(store(ctx)?, actor(ctx), meta(ctx), new)
            .await?
            .into())
    }

    /// Replaces the body of one of the caller's own messages, within 15 minutes of
    /// posting and while the thread is not closed; the earlier body stays in its `edits`.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateMessageInput,
    ) -> ApiResult<Message> {
        let id = input::id("id", &id)?;
        let body = domain::body("input.body", &input.body)?;
        if load_readable_message(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("message"));
        }
        Ok(
            store::edit_message(store(ctx)?, actor(ctx), meta(ctx), id, body)
                .await?
                .into(),
        )
    }

    /// Deletes one of the caller's own messages, within 15 minutes of posting: its body
    /// and earlier versions are removed, a tombstone stays in the thread.
    async fn delete_message(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Message> {
        let id = input::id("id", &id)?;
        if load_readable_message(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("message"));
        }
        Ok(
            store::delete_message(store(ctx)?, actor(ctx), meta(ctx), id)
                .await?
                .into(),
        )
    }

    /// Declares a file to attach to a message of the thread: returns a short-lived link to
    /// `PUT` its bytes to (type judged from the content, the tenant's size limit applies),
    /// after which the attachment is scanned for malware. Post it with
    /// `postMessage(input: { attachmentIds })`.
    async fn create_attachment_upload(
        &self,
        ctx: &Context<'_>,
        input: CreateAttachmentUploadInput,
    ) -> ApiResult<AttachmentUpload> {
        let thread_id = input::id("input.threadId", &input.thread_id)?;
        let name = crate::domain::attachments::file_name("input.fileName", &input.file_name)?;
        if load_readable_thread(ctx, thread_id).await?.is_none() {
            return Err(ApiError::NotFound("thread"));
        }
        let declared = store::attachments::declare(
            store(ctx)?,
            actor(ctx),
            meta(ctx),
            thread_id,
            &name,
            side(actor(ctx)),
        )
        .await?;
        Ok(AttachmentUpload::new(declared))
    }

    /// Changes the caller's tenant's messaging settings.
    async fn update_messaging_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateMessagingSettingsInput,
    ) -> ApiResult<MessagingSettings> {
        let limit = crate::domain::attachments::max_bytes(
            "input.attachmentMaxBytes",
            input.attachment_max_bytes,
        )?;
        let db = &store(ctx)?.db;
        let limit = store::attachments::set_max_bytes(db, actor(ctx), meta(ctx), limit).await?;
        Ok(MessagingSettings::new(limit))
    }

    /// Starts a new version of the caller's tenant's data key: new messages are sealed
    /// with it at once, and a job re-seals the existing ones (older versions stay
    /// readable meanwhile).
    async fn rotate_tenant_data_key(&self, ctx: &Context<'_>) -> ApiResult<TenantDataKey> {
        let tenant_id = tenant(ctx)?;
        let store = store(ctx)?;
        let version = store.keys.rotate(tenant_id, actor(ctx), meta(ctx)).await?;
        crate::jobs::enqueue(&store.db, tenant_id).await?;
        store
            .keys
            .versions(tenant_id)
            .await?
            .into_iter()
            .find(|key| key.version == version)
            .map(TenantDataKey::from)
            .ok_or_else(|| ApiError::internal("the new key version vanished"))
    }
}
