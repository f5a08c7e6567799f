//! Messages' background work: re-sealing subjects and bodies under each tenant's active
//! key version (after a rotation, and hourly as a sweep that also seals plaintext left
//! from before encryption and indexes subjects not yet searchable), the malware scan of received attachments, notifications
//! ([`notifications`]) and the retention sweep ([`retention`]).

pub mod notifications;
pub mod retention;

use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use portal_entities::platform::tenant_key;
use portal_kit::audit::AuditEvent;
use portal_kit::envelope::state;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::jobs::{self, NewJob, schedule};
use portal_kit::scan::MalwareScanner;
use portal_kit::{Actor, ApiError, ApiResult};

use crate::domain::attachments::AttachmentState;
use crate::store::Store;
use crate::store::attachments;
use crate::store::reseal::{self, Resealed};
use crate::store::subject_search;

/// Rows of each kind re-sealed per batch.
const BATCH: u64 = 200;
/// Batches per tenant in one run; a tenant with more left gets a follow-up job.
const BATCHES_PER_RUN: usize = 25;

/// Re-seals a tenant's rows (payload `tenantId`), or every tenant that needs it (no
/// payload: the hourly sweep).
pub struct Reseal {
    store: Store,
}

impl Reseal {
    /// Its job kind.
    pub const KIND: &'static str = "messages.reseal";

    /// The handler over `store`.
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self { store })
    }

    async fn tenants(&self) -> ApiResult<Vec<Uuid>> {
        let mut tenants = reseal::tenants_with_plaintext(&self.store).await?;
        let rotated: Vec<Uuid> = tenant_key::Entity::find()
            .select_only()
            .column(tenant_key::Column::TenantId)
            .distinct()
            .filter(tenant_key::Column::State.eq(state::RETIRED))
            .into_tuple()
            .all(&self.store.db)
            .await
            .map_err(ApiError::from_db)?;
        tenants.extend(rotated);
        tenants.extend(subject_search::tenants_with_unindexed(&self.store.db).await?);
        Ok(tenants.into_iter().collect())
    }

    /// Re-seals up to [`BATCHES_PER_RUN`] batches of the tenant; whether rows are left.
    async fn tenant(&self, tenant_id: Uuid, job: &JobContext) -> ApiResult<bool> {
        let mut done = Resealed::default();
        let mut indexed = 0;
        let mut subjects_left = true;
        let mut more = true;
        for _ in 0..BATCHES_PER_RUN {
            let batch = match reseal::reseal_batch(&self.store, tenant_id, BATCH).await {
                // Destroyed keys: nothing of the tenant opens or seals any more.
                Err(ApiError::Conflict(_)) => return Ok(false),
                other => other?,
            };
            done.subjects += batch.subjects;
            done.bodies += batch.bodies;
            done.earlier_bodies += batch.earlier_bodies;
            done.attachments += batch.attachments;
            // Subjects sealed just now, or from before subjects were searchable (asked
            // again only while some were found).
            let batch_indexed = if subjects_left {
                subject_search::index_missing(&self.store, tenant_id, BATCH).await?
            } else {
                0
            };
            subjects_left = batch_indexed == BATCH || batch.subjects > 0;
            indexed += batch_indexed;
            if batch.total() == 0 && batch_indexed == 0 {
                more = false;
                break;
            }
        }
        if done.total() > 0 || indexed > 0 {
            let version = self.store.keys.active_version(tenant_id).await?;
            AuditEvent::success("tenant_key.reseal", "tenant", tenant_id)
                .in_tenant(tenant_id)
                .with_details(json!({
                    "activeVersion": version,
                    "subjects": done.subjects,
                    "bodies": done.bodies,
                    "earlierBodies": done.earlier_bodies,
                    "attachments": done.attachments,
                    "subjectsIndexed": indexed,
                    "more": more,
                }))
                .record(&self.store.db, &Actor::anonymous(), &job.audit_meta())
                .await?;
        }
        Ok(more)
    }
}

#[async_trait::async_trait]
impl JobHandler for Reseal {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let tenants = match job.payload_id("tenantId")? {
            Some(id) => vec![id],
            None => self.tenants().await.map_err(retry)?,
        };
        for tenant_id in tenants {
            if self.tenant(tenant_id, job).await.map_err(retry)? {
                enqueue(&self.store.db, tenant_id).await.map_err(retry)?;
            }
        }
        Ok(())
    }
}

/// Enqueues re-sealing the tenant's rows now.
pub async fn enqueue(db: &impl ConnectionTrait, tenant_id: Uuid) -> ApiResult<Uuid> {
    let mut new = NewJob::new(Reseal::KIND, json!({ "tenantId": tenant_id }));
    new.tenant_id = Some(tenant_id);
    jobs::enqueue(db, Utc::now(), new).await
}

/// Makes sure the hourly re-seal sweep is scheduled (one schedule for the deployment) and
/// runs once now, so plaintext left from before encryption is sealed at start.
pub async fn schedule_sweep(db: &impl ConnectionTrait) -> ApiResult<()> {
    schedule::upsert(
        db,
        Utc::now(),
        "messages.reseal",
        schedule::NewSchedule {
            name: Reseal::KIND.to_owned(),
            kind: Reseal::KIND.to_owned(),
            payload: json!({}),
            tenant_id: None,
            principal: None,
            cron: "17 * * * *".to_owned(),
            time_zone: "UTC".to_owned(),
        },
    )
    .await?;
    jobs::enqueue(db, Utc::now(), NewJob::new(Reseal::KIND, json!({}))).await?;
    Ok(())
}

/// Scans one received attachment for malware (payload `attachmentId`, the job's tenant)
/// and records the verdict: clean ones become downloadable, infected ones quarantined.
pub struct ScanAttachment {
    store: Store,
    scanner: Arc<dyn MalwareScanner>,
}

impl ScanAttachment {
    /// Its job kind.
    pub const KIND: &'static str = attachments::SCAN_KIND;

    /// The handler over `store`, asking `scanner`.
    pub fn new(store: Store, scanner: Arc<dyn MalwareScanner>) -> Arc<Self> {
        Arc::new(Self { store, scanner })
    }
}

#[async_trait::async_trait]
impl JobHandler for ScanAttachment {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let id = job.required_id("attachmentId")?;
        let tenant_id = job.tenant()?;
        let row = match attachments::attachment(&self.store.db, tenant_id, id).await {
            Ok(row) => row,
            // Deleted with its message meanwhile: nothing to judge.
            Err(ApiError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(retry(err)),
        };
        if AttachmentState::from_db(&row.state) != AttachmentState::Scanning {
            return Ok(());
        }
        let content = attachments::content(&self.store, &row)
            .await
            .map_err(retry)?;
        let verdict = self
            .scanner
            .scan(&content)
            .await
            .map_err(|err| JobError::Retry(err.to_string()))?;
        attachments::record_scan(&self.store, &row, &verdict, &job.audit_meta())
            .await
            .map_err(retry)
    }
}
