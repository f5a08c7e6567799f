//! The retention sweep (`messages.retention`): daily, and on demand for one tenant, each
//! tenant's rules are applied as they stand (see [`crate::store::retention`]); every
//! sweep of a tenant is audited with its counts.

use std::sync::Arc;

use serde_json::json;

use portal_kit::ApiResult;
use portal_kit::clock::SharedClock;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::jobs::schedule;
use sea_orm::ConnectionTrait;

use crate::store::Store;
use crate::store::retention;

/// Applies retention rules: of the payload's `tenantId`, or of every tenant with rules.
pub struct RetentionSweep {
    store: Store,
    clock: SharedClock,
}

impl RetentionSweep {
    /// Its job kind.
    pub const KIND: &'static str = "messages.retention";

    /// The handler over `store`, telling the time by `clock`.
    pub fn new(store: Store, clock: SharedClock) -> Arc<Self> {
        Arc::new(Self { store, clock })
    }
}

#[async_trait::async_trait]
impl JobHandler for RetentionSweep {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err| JobError::Retry(format!("{err:?}"));
        let tenants = match job.payload_id("tenantId")? {
            Some(tenant) => vec![tenant],
            None => retention::tenants_with_rules(&self.store.db)
                .await
                .map_err(retry)?,
        };
        let meta = job.audit_meta();
        for tenant in tenants {
            retention::sweep(&self.store, tenant, self.clock.now(), &meta)
                .await
                .map_err(retry)?;
        }
        Ok(())
    }
}

/// Makes sure the daily retention sweep is scheduled (one schedule for the deployment).
pub async fn schedule_daily(db: &impl ConnectionTrait) -> ApiResult<()> {
    schedule::upsert(
        db,
        chrono::Utc::now(),
        RetentionSweep::KIND,
        schedule::NewSchedule {
            name: RetentionSweep::KIND.to_owned(),
            kind: RetentionSweep::KIND.to_owned(),
            payload: json!({}),
            tenant_id: None,
            principal: None,
            cron: "41 2 * * *".to_owned(),
            time_zone: "UTC".to_owned(),
        },
    )
    .await
    .map(|_| ())
}
