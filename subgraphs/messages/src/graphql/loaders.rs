//! The batched queries behind the messages subgraph's DataLoaders (see
//! [`portal_kit::loader`]): each runs once per tenant (and page request) in a request tick.

use uuid::Uuid;

use portal_entities::messages::{message, thread};

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
    pub ParticipantsOfThreads: Vec<Uuid> = store::participants_of_threads
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
