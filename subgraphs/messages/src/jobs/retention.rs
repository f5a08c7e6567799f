//! The retention sweep (`messages.retention`): on demand for one tenant or every tenant
//! with rules (daily, the retention engine applies them: `portal_kit::retention::MESSAGES`),
//! each tenant's rules are applied as they stand (see [`crate::store::retention`]); every
//! sweep of a tenant is audited with its counts.

use std::sync::Arc;

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

/// Removes the daily schedule this sweep once had: the retention engine's daily sweep
/// (`retention.sweep`, class `MESSAGES`) applies the rules now, so they are not applied
/// twice. The job itself still runs when queued (one tenant, or every tenant with rules).
pub async fn unschedule(db: &impl ConnectionTrait) -> ApiResult<()> {
    schedule::remove(db, RetentionSweep::KIND).await
}
