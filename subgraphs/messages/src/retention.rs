//! Messages' class of the retention engine (`portal_kit::retention::MESSAGES`): the
//! tenant's message retention rules (per thread status, delete or anonymize), legal holds
//! respected, previewed and swept by the engine like every other class. The rules are
//! messages' own (`setMessageRetentionRule`); a sweep is audited here as
//! `message_retention.enforce` and by the engine as part of `retention.sweep`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_kit::retention::{Class, Held, MESSAGES, Sweeper};
use portal_kit::{ApiResult, RequestMeta};

use crate::store::{Store, retention};

/// The tenant's messages past their rules.
pub struct Messages {
    store: Store,
}

impl Messages {
    /// The sweeper over `store`.
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self { store })
    }
}

#[async_trait::async_trait]
impl Sweeper for Messages {
    fn class(&self) -> Class {
        MESSAGES
    }

    /// `now` is the sweep's time (the rules carry their own periods).
    async fn due(&self, tenant: Option<Uuid>, now: DateTime<Utc>, _held: &Held) -> ApiResult<u64> {
        let Some(tenant) = tenant else { return Ok(0) };
        let (deleted, anonymized) = retention::plan(&self.store.db, tenant, now)
            .await?
            .message_counts();
        Ok((deleted + anonymized) as u64)
    }

    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        now: DateTime<Utc>,
        _held: &Held,
        _limit: u64,
    ) -> ApiResult<u64> {
        let Some(tenant) = tenant else { return Ok(0) };
        // Nothing due: no sweep, no audit event saying so.
        if self.due(Some(tenant), now, &Held::default()).await? == 0 {
            return Ok(0);
        }
        let meta = RequestMeta {
            user_agent: Some("portal retention".to_owned()),
            ..RequestMeta::default()
        };
        let swept = retention::sweep(&self.store, tenant, now, &meta).await?;
        Ok((swept.messages_deleted + swept.messages_anonymized) as u64)
    }
}
