//! The accounts subgraph's job: writing large exports (`accounts.export`).
//!
//! The job acts for the user who asked. Before it reads anything it checks again that the
//! user may still see the account (membership, or the staff grant the request carried);
//! if not, the export fails closed with a reason and nothing is written.

use std::sync::Arc;

use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter};

use portal_entities::accounts::account;
use portal_kit::ApiError;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::storage::FileStore;

use crate::domain::Viewer;
use crate::domain::export::{ExportStatus, JOB_ATTEMPTS, JOB_KIND};
use crate::store;
use crate::store::export as export_store;

/// Writes queued exports.
pub struct ExportJob {
    db: DatabaseConnection,
    files: FileStore,
}

impl ExportJob {
    /// The handler, over `db`, keeping files in `files`.
    pub fn new(db: DatabaseConnection, files: FileStore) -> Arc<Self> {
        Arc::new(Self { db, files })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = JOB_KIND;
}

fn retry(err: ApiError) -> JobError {
    JobError::Retry(format!("{err:?}"))
}

#[async_trait::async_trait]
impl JobHandler for ExportJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let id = job.required_id("exportId")?;
        let (Some(tenant), Some(actor)) = (job.tenant_id, job.principal.as_ref()) else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let meta = job.audit_meta();
        let export = match export_store::export_in(&self.db, tenant, id).await {
            Ok(export) => export,
            Err(ApiError::NotFound(_)) => {
                return Err(JobError::Permanent("the export no longer exists".into()));
            }
            Err(err) => return Err(retry(err)),
        };
        if !matches!(
            ExportStatus::of(&export.status, true),
            ExportStatus::Queued | ExportStatus::Running
        ) {
            // Done (or failed) by an earlier run of this job.
            return Ok(());
        }
        // A KPI export covers whatever the requester sees when it runs; an account's
        // export needs that account still visible.
        let account = match export.account_id {
            None => None,
            Some(id) => {
                let visible = match store::visible_accounts(tenant, Viewer::of(actor)) {
                    Some(select) => select
                        .filter(account::Column::Id.eq(id))
                        .one(&self.db)
                        .await
                        .map_err(|err| retry(ApiError::from_db(err)))?,
                    None => None,
                };
                let Some(account) = visible else {
                    let reason = "the requester may no longer see this account";
                    export_store::fail(&self.db, actor, &meta, &export, reason)
                        .await
                        .map_err(retry)?;
                    return Err(JobError::Permanent(reason.into()));
                };
                Some(account)
            }
        };
        if !export_store::start(&self.db, &export)
            .await
            .map_err(retry)?
        {
            return Ok(());
        }
        match export_store::produce(
            &self.db,
            &self.files,
            actor,
            &meta,
            &export,
            account.as_ref(),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(err) if job.attempt >= JOB_ATTEMPTS => {
                tracing::error!(export = %export.id, ?err, "writing an export failed for good");
                let reason = "the export could not be written";
                export_store::fail(&self.db, actor, &meta, &export, reason)
                    .await
                    .map_err(retry)?;
                Err(JobError::Permanent(reason.into()))
            }
            Err(err) => Err(retry(err)),
        }
    }
}
