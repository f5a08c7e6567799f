//! The batched queries behind the messages subgraph's DataLoaders (see
//! [`portal_kit::loader`]): each runs once per tenant (and page request) in a request tick.

use std::collections::{BTreeMap, HashMap};

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::messages::{
    message, message_attachment, message_edit, thread, thread_participant,
};
use portal_kit::ApiError;

use crate::store;

portal_kit::fetch_by_ids!(
    /// Thread lookups by `(tenant, id)`, batched into one query per tenant.
    pub ThreadsById: thread::Model = store::threads_by_ids
);

portal_kit::fetch_by_ids!(
    /// Message lookups by `(tenant, id)`, batched into one query per tenant.
    pub MessagesById: message::Model = store::messages_by_ids
);

portal_kit::fetch_by_ids!(
    /// `Thread.participants` by `(tenant, thread id)`, batched into one query per tenant.
    pub ParticipantsOfThreads: Vec<thread_participant::Model> = store::participants_of_threads
);

portal_kit::fetch_by_ids!(
    /// `Message.edits` by `(tenant, message id)`, batched into one query per tenant.
    pub EditsOfMessages: Vec<message_edit::Model> = store::edits_of_messages
);

portal_kit::fetch_pages!(
    /// `User.threads` for many users (an `_entities` call), batched into two queries per
    /// distinct `(tenant, page request)`.
    pub ThreadsByParticipant: thread::Model = store::pages_by_participant
);

portal_kit::fetch_pages!(
    /// `Thread.messages` for many threads (a list of threads, or an `_entities` call),
    /// batched into one query per distinct `(tenant, page request)`.
    pub MessagesByThread: message::Model = store::pages_by_thread
);

/// `Thread.unreadCount`: whose count, of which thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnreadKey {
    /// The caller's tenant.
    pub tenant_id: Uuid,
    /// Who reads.
    pub reader: Uuid,
    /// The thread.
    pub thread_id: Uuid,
}

/// Unread counts batched into two queries per `(tenant, reader)`; a thread the reader
/// does not take part in has none.
pub struct UnreadCounts {
    db: DatabaseConnection,
}

impl UnreadCounts {
    /// The loader over `db`.
    pub fn loader(db: &DatabaseConnection) -> DataLoader<Self> {
        DataLoader::new(Self { db: db.clone() }, portal_kit::telemetry::spawn_traced)
    }
}

impl Loader<UnreadKey> for UnreadCounts {
    type Value = i64;
    type Error = ApiError;

    async fn load(&self, keys: &[UnreadKey]) -> Result<HashMap<UnreadKey, i64>, ApiError> {
        let mut groups: BTreeMap<(Uuid, Uuid), Vec<Uuid>> = BTreeMap::new();
        for key in keys {
            groups
                .entry((key.tenant_id, key.reader))
                .or_default()
                .push(key.thread_id);
        }
        let mut found = HashMap::new();
        for ((tenant_id, reader), threads) in groups {
            let counts = store::unread_counts(&self.db, tenant_id, reader, &threads).await?;
            found.extend(counts.into_iter().map(|(thread_id, count)| {
                let key = UnreadKey {
                    tenant_id,
                    reader,
                    thread_id,
                };
                (key, count)
            }));
        }
        Ok(found)
    }
}

portal_kit::fetch_by_ids!(
    /// Attachment lookups by `(tenant, id)`, batched into one query per tenant.
    pub AttachmentsById: message_attachment::Model = store::attachments::attachments_by_ids
);

portal_kit::fetch_by_ids!(
    /// `Message.attachments` by `(tenant, message id)`, batched into one query per tenant.
    pub AttachmentsOfMessages: Vec<message_attachment::Model> =
        store::attachments::attachments_of_messages
);

portal_kit::fetch_by_ids!(
    /// `Attachment.downloadUrl`: the file rows of clean attachments, one query per tenant.
    pub AttachmentFiles: portal_entities::platform::file::Model =
        store::attachments::files_by_ids
);
