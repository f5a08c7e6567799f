//! Messages' wire types: `Thread` and `Message` (both `@key(fields: "id")`), participants,
//! earlier versions of messages, the tenant's data keys, the enums and the connections.
//! Subjects and bodies are opened only when a client selects them.

use async_graphql::{ComplexObject, Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::messages::{message, message_edit, thread, thread_participant};
use portal_kit::context::{actor, tenant};
use portal_kit::envelope::KeyVersion;
use portal_kit::loader::{load, load_page, registered};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiError, ApiResult};

use super::attachments::Attachment;
use super::federation::{Account, User};
use super::loaders::{
    AttachmentsOfMessages, EditsOfMessages, MessagesByThread, ParticipantsOfThreads, ThreadsById,
    UnreadCounts, UnreadKey,
};
use super::store;
use super::visibility::load_readable_message;
use crate::domain::{ParticipantKind, ThreadStatus};
use crate::store::sealing;

/// Lifecycle of a thread, as a support desk works it.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ThreadStatus")]
pub enum ThreadStatusGql {
    /// Waiting on the staff: a customer asked, or wrote again.
    Open,
    /// Waiting on the customer: the staff answered.
    WaitingOnCustomer,
    /// Answered; a new message opens it again.
    Resolved,
    /// Read-only.
    Closed,
}

impl From<ThreadStatus> for ThreadStatusGql {
    fn from(status: ThreadStatus) -> Self {
        match status {
            ThreadStatus::Open => Self::Open,
            ThreadStatus::WaitingOnCustomer => Self::WaitingOnCustomer,
            ThreadStatus::Resolved => Self::Resolved,
            ThreadStatus::Closed => Self::Closed,
        }
    }
}

impl From<ThreadStatusGql> for ThreadStatus {
    fn from(status: ThreadStatusGql) -> Self {
        match status {
            ThreadStatusGql::Open => Self::Open,
            ThreadStatusGql::WaitingOnCustomer => Self::WaitingOnCustomer,
            ThreadStatusGql::Resolved => Self::Resolved,
            ThreadStatusGql::Closed => Self::Closed,
        }
    }
}

/// On which side of the conversation a participant is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ParticipantKind")]
pub enum ParticipantKindGql {
    /// A user of the customer.
    Customer,
    /// The supplier's staff (support, or whom the thread was assigned to).
    Staff,
}

impl From<ParticipantKind> for ParticipantKindGql {
    fn from(kind: ParticipantKind) -> Self {
        match kind {
            ParticipantKind::Customer => Self::Customer,
            ParticipantKind::Staff => Self::Staff,
        }
    }
}

/// A conversation within one tenant, optionally about an account: between a customer's
/// users and the supplier's staff.
#[derive(Clone)]
pub struct Thread {
    row: thread::Model,
}

impl From<thread::Model> for Thread {
    fn from(row: thread::Model) -> Self {
        Self { row }
    }
}

impl Node for Thread {
    fn cursor_id(&self) -> Uuid {
        self.row.id
    }
}

/// A conversation within one tenant, optionally about an account: between a customer's
/// users and the supplier's staff.
#[Object]
impl Thread {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Subject line (stored encrypted).
    async fn subject(&self, ctx: &Context<'_>) -> ApiResult<String> {
        sealing::subject(&store(ctx)?.keys, &self.row).await
    }

    /// Lifecycle status.
    async fn status(&self) -> ThreadStatusGql {
        ThreadStatus::from_db(&self.row.status).into()
    }

    /// When the thread was opened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When the thread last changed or received a message.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }

    /// The user who opened the thread (resolved by the identity subgraph).
    async fn created_by(&self) -> User {
        User::stub(self.row.created_by)
    }

    /// The account the thread is about (resolved by the accounts subgraph), if any.
    async fn account(&self) -> Option<Account> {
        self.row.account_id.map(Account::stub)
    }

    /// The staff member the thread is assigned to, if any.
    async fn assignee(&self) -> Option<User> {
        self.row.assignee_id.map(User::stub)
    }

    /// Users taking part in the thread, in the order they joined.
    #[graphql(
        deprecation = "Use `members`, which also says on which side each is and how far they read."
    )]
    async fn participants(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        let found = load::<ParticipantsOfThreads>(ctx, self.row.id).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(|row| User::stub(row.user_id))
            .collect())
    }

    /// Who takes part in the thread, in the order they joined.
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<ThreadParticipant>> {
        let found = load::<ParticipantsOfThreads>(ctx, self.row.id).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(ThreadParticipant::from)
            .collect())
    }

    /// Messages by others posted since the caller last marked the thread read; null when
    /// the caller does not take part (staff reading the queue).
    async fn unread_count(&self, ctx: &Context<'_>) -> ApiResult<Option<i32>> {
        let Some(reader) = actor(ctx).id else {
            return Ok(None);
        };
        let key = UnreadKey {
            tenant_id: tenant(ctx)?,
            reader,
            thread_id: self.row.id,
        };
        let count = registered::<UnreadCounts>(ctx)?.load_one(key).await?;
        Ok(count.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
    }

    /// Messages of the thread, oldest first (deleted ones as tombstones).
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<MessageConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let found = load_page::<MessagesByThread>(ctx, self.row.id, page).await?;
        Ok(found.map(Message::from).into())
    }
}

portal_kit::connection!(ThreadConnection, ThreadEdge, Thread);

/// Someone taking part in a thread.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ThreadParticipant {
    /// On which side they are.
    pub kind: ParticipantKindGql,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// Up to when they have read the thread; null before they first read it.
    pub last_read_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    user_id: Uuid,
}

impl From<thread_participant::Model> for ThreadParticipant {
    fn from(row: thread_participant::Model) -> Self {
        Self {
            kind: ParticipantKind::from_db(&row.kind).into(),
            joined_at: row.created_at,
            last_read_at: row.last_read_at,
            user_id: row.user_id,
        }
    }
}

#[ComplexObject]
impl ThreadParticipant {
    /// The user (resolved by the identity subgraph).
    async fn user(&self) -> User {
        User::stub(self.user_id)
    }
}

/// One message in a thread. A deleted message stays as a tombstone: no body, `deletedAt`
/// set.
#[derive(Clone)]
pub struct Message {
    row: message::Model,
}

impl From<message::Model> for Message {
    fn from(row: message::Model) -> Self {
        Self { row }
    }
}

impl Node for Message {
    fn cursor_id(&self) -> Uuid {
        self.row.id
    }
}

/// One message in a thread. A deleted message stays as a tombstone: no body, `deletedAt`
/// set.
#[Object]
impl Message {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Text of the message (multi-line, stored encrypted); null once deleted.
    async fn body(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        sealing::body(&store(ctx)?.keys, &self.row).await
    }

    /// When the message was posted.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When the author last edited it, if ever.
    async fn edited_at(&self) -> Option<DateTime<Utc>> {
        self.row.edited_at
    }

    /// When it was deleted, if it was.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.row.deleted_at
    }

    /// The user who wrote the message (resolved by the identity subgraph).
    async fn author(&self) -> User {
        User::stub(self.row.author_id)
    }

    /// The thread the message belongs to.
    async fn thread(&self, ctx: &Context<'_>) -> ApiResult<Thread> {
        load::<ThreadsById>(ctx, self.row.thread_id)
            .await?
            .map(Thread::from)
            .ok_or(ApiError::NotFound("thread"))
    }

    /// The message this one answers, if any.
    async fn reply_to(&self, ctx: &Context<'_>) -> ApiResult<Option<Message>> {
        let Some(parent) = self.row.reply_to_id else {
            return Ok(None);
        };
        Ok(load_readable_message(ctx, parent).await?.map(Message::from))
    }

    /// Its attachments, in the order they were declared (none once deleted).
    async fn attachments(&self, ctx: &Context<'_>) -> ApiResult<Vec<Attachment>> {
        let found = load::<AttachmentsOfMessages>(ctx, self.row.id).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(Attachment::from)
            .collect())
    }

    /// Its earlier versions, oldest first (empty when never edited, or once deleted).
    async fn edits(&self, ctx: &Context<'_>) -> ApiResult<Vec<MessageEdit>> {
        if self.row.edited_at.is_none() {
            return Ok(Vec::new());
        }
        let found = load::<EditsOfMessages>(ctx, self.row.id).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(|row| MessageEdit { row })
            .collect())
    }
}

portal_kit::connection!(MessageConnection, MessageEdge, Message);

/// An earlier version of an edited message.
pub struct MessageEdit {
    row: message_edit::Model,
}

/// An earlier version of an edited message.
#[Object]
impl MessageEdit {
    /// The text as it was (stored encrypted).
    async fn body(&self, ctx: &Context<'_>) -> ApiResult<String> {
        sealing::earlier_body(&store(ctx)?.keys, &self.row).await
    }

    /// When the next version replaced it.
    async fn replaced_at(&self) -> DateTime<Utc> {
        self.row.replaced_at
    }
}

/// One version of the tenant's data key, which encrypts its messages (envelope
/// encryption: the key is stored only wrapped by the platform's master key).
#[derive(SimpleObject)]
pub struct TenantDataKey {
    /// 1, 2, … in order of creation.
    pub version: i32,
    /// `active` (new writes), `retired` (still opens what it sealed until re-sealed) or
    /// `destroyed` (what it sealed is gone).
    pub state: String,
    /// Which key provider wrapped it (`local`: the platform's configured data key).
    pub provider: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When new writes stopped using it.
    pub retired_at: Option<DateTime<Utc>>,
    /// When it was destroyed.
    pub destroyed_at: Option<DateTime<Utc>>,
}

impl From<KeyVersion> for TenantDataKey {
    fn from(key: KeyVersion) -> Self {
        Self {
            version: key.version,
            state: key.state,
            provider: key.provider,
            created_at: key.created_at,
            retired_at: key.retired_at,
            destroyed_at: key.destroyed_at,
        }
    }
}
