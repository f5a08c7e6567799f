//! Messages' wire types: `Thread` and `Message` (both `@key(fields: "id")`), the thread
//! status enum and the connections.

use async_graphql::{ComplexObject, Context, Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::messages::{message, thread};
use portal_kit::loader::{load, load_page};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiError, ApiResult};

use super::federation::{Account, User};
use super::loaders::{MessagesByThread, ParticipantsOfThreads, ThreadsById};
use crate::domain::ThreadStatus;

/// Lifecycle of a thread.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ThreadStatus")]
pub enum ThreadStatusGql {
    /// Participants may post.
    Open,
    /// Read-only.
    Closed,
}

impl From<ThreadStatus> for ThreadStatusGql {
    fn from(status: ThreadStatus) -> Self {
        match status {
            ThreadStatus::Open => Self::Open,
            ThreadStatus::Closed => Self::Closed,
        }
    }
}

impl From<ThreadStatusGql> for ThreadStatus {
    fn from(status: ThreadStatusGql) -> Self {
        match status {
            ThreadStatusGql::Open => Self::Open,
            ThreadStatusGql::Closed => Self::Closed,
        }
    }
}

/// A conversation between users of one tenant, optionally about an account.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Thread {
    /// Stable id.
    pub id: ID,
    /// Subject line.
    pub subject: String,
    /// Lifecycle status.
    pub status: ThreadStatusGql,
    /// When the thread was opened.
    pub created_at: DateTime<Utc>,
    /// When the thread last changed or received a message.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    created_by: Uuid,
    #[graphql(skip)]
    account_id: Option<Uuid>,
}

impl From<thread::Model> for Thread {
    fn from(row: thread::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            subject: row.subject,
            status: ThreadStatus::from_db(&row.status).into(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            uuid: row.id,
            created_by: row.created_by,
            account_id: row.account_id,
        }
    }
}

impl Node for Thread {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl Thread {
    /// The user who opened the thread (resolved by the identity subgraph).
    async fn created_by(&self) -> User {
        User::stub(self.created_by)
    }

    /// The account the thread is about (resolved by the accounts subgraph), if any.
    async fn account(&self) -> Option<Account> {
        self.account_id.map(Account::stub)
    }

    /// Users taking part in the thread, in the order they joined.
    async fn participants(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        let found = load::<ParticipantsOfThreads>(ctx, self.uuid).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(User::stub)
            .collect())
    }

    /// Messages of the thread, oldest first.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<MessageConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let found = load_page::<MessagesByThread>(ctx, self.uuid, page).await?;
        Ok(found.map(Message::from).into())
    }
}

portal_kit::connection!(ThreadConnection, ThreadEdge, Thread);

/// One message in a thread.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Message {
    /// Stable id.
    pub id: ID,
    /// Text of the message (multi-line).
    pub body: String,
    /// When the message was posted.
    pub created_at: DateTime<Utc>,
    /// When the author last edited it, if ever.
    pub edited_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    author_id: Uuid,
    #[graphql(skip)]
    thread_id: Uuid,
}

impl From<message::Model> for Message {
    fn from(row: message::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            body: row.body,
            created_at: row.created_at,
            edited_at: row.edited_at,
            uuid: row.id,
            author_id: row.author_id,
            thread_id: row.thread_id,
        }
    }
}

impl Node for Message {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl Message {
    /// The user who wrote the message (resolved by the identity subgraph).
    async fn author(&self) -> User {
        User::stub(self.author_id)
    }

    /// The thread the message belongs to.
    async fn thread(&self, ctx: &Context<'_>) -> ApiResult<Thread> {
        load::<ThreadsById>(ctx, self.thread_id)
            .await?
            .map(Thread::from)
            .ok_or(ApiError::NotFound("thread"))
    }
}

portal_kit::connection!(MessageConnection, MessageEdge, Message);
