//! DataLoaders of the messages subgraph, built once per schema: each batches the lookups
//! of one request tick into one query (or two) per tenant (and page request).

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::messages::{message, thread};
use portal_kit::ApiError;
use portal_kit::pagination::{Page, PageRequest};

use crate::store;

/// Batches thread lookups by `(tenant, id)` into one query per tenant.
pub struct ThreadLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for ThreadLoader {
    type Value = thread::Model;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), thread::Model>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::threads_by_ids(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, row)| ((tenant_id, id), row)));
        }
        Ok(found)
    }
}

/// Batches message lookups by `(tenant, id)` into one query per tenant.
pub struct MessageLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for MessageLoader {
    type Value = message::Model;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), message::Model>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::messages_by_ids(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, row)| ((tenant_id, id), row)));
        }
        Ok(found)
    }
}

/// Batches `Thread.participants` by `(tenant, thread id)` into one query per tenant.
pub struct ParticipantsLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for ParticipantsLoader {
    type Value = Vec<Uuid>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), Vec<Uuid>>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::participants_of_threads(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, users)| ((tenant_id, id), users)));
        }
        Ok(found)
    }
}

/// One user's page of threads, as a DataLoader key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParticipantPage {
    /// The caller's tenant.
    pub tenant_id: Uuid,
    /// The participant (identity's id).
    pub user: Uuid,
    /// The page wanted.
    pub page: PageRequest,
}

/// Batches `User.threads` for many users (an `_entities` call) into two queries per
/// distinct `(tenant, page request)`.
pub struct ParticipantThreadsLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<ParticipantPage> for ParticipantThreadsLoader {
    type Value = Page<thread::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[ParticipantPage],
    ) -> Result<HashMap<ParticipantPage, Page<thread::Model>>, ApiError> {
        let mut found = HashMap::new();
        for (tenant_id, page) in distinct(keys.iter().map(|k| (k.tenant_id, k.page))) {
            let users: Vec<Uuid> = keys
                .iter()
                .filter(|k| k.tenant_id == tenant_id && k.page == page)
                .map(|k| k.user)
                .collect();
            let pages = store::pages_by_participant(&self.db, tenant_id, &users, page).await?;
            found.extend(pages.into_iter().map(|(user, rows)| {
                let key = ParticipantPage {
                    tenant_id,
                    user,
                    page,
                };
                (key, rows)
            }));
        }
        Ok(found)
    }
}

/// One thread's page of messages, as a DataLoader key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadMessagesPage {
    /// The caller's tenant.
    pub tenant_id: Uuid,
    /// The thread.
    pub thread: Uuid,
    /// The page wanted.
    pub page: PageRequest,
}

/// Batches `Thread.messages` for many threads (a list of threads, or an `_entities`
/// call) into one query per distinct `(tenant, page request)`.
pub struct ThreadMessagesLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<ThreadMessagesPage> for ThreadMessagesLoader {
    type Value = Page<message::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[ThreadMessagesPage],
    ) -> Result<HashMap<ThreadMessagesPage, Page<message::Model>>, ApiError> {
        let mut found = HashMap::new();
        for (tenant_id, page) in distinct(keys.iter().map(|k| (k.tenant_id, k.page))) {
            let threads: Vec<Uuid> = keys
                .iter()
                .filter(|k| k.tenant_id == tenant_id && k.page == page)
                .map(|k| k.thread)
                .collect();
            let pages = store::pages_by_thread(&self.db, tenant_id, &threads, page).await?;
            found.extend(pages.into_iter().map(|(thread, rows)| {
                let key = ThreadMessagesPage {
                    tenant_id,
                    thread,
                    page,
                };
                (key, rows)
            }));
        }
        Ok(found)
    }
}

fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort_unstable();
    items.dedup();
    items
}
