//! Reports' side of the privacy contract ([`portal_kit::privacy`]): the report definitions
//! the person owns (with their saved queries, parameters and schedules), the runs they
//! asked for or that were read as them, the reports of others they receive (the report's id
//! and name only) and the deliveries made to them — and, as files, the stored files of the
//! runs read as them that have not expired.
//!
//! Left out: the recipients of their reports (other users' ids and external addresses are
//! other people's data), who else requested a run or allowed a report's external delivery
//! (other users' ids), a run's internal failure detail (for admins; the error they were
//! shown is in) and its signed integrity manifest (a signature, not information about the
//! person), and the files of runs they asked for that were read as someone else (the
//! owner's view of the data, not theirs).
//!
//! Erasure ([`erasure::erase_user`]): the definitions they own go, with their schedules,
//! runs, files, recipients and deliveries; they stop receiving other people's reports;
//! the runs of other people's reports they asked for or that were read as them stay in
//! those reports' history without naming them (the files read as them are deleted); what
//! they allowed or added for others stays, by a deleted user; and text kept for others is
//! scrubbed of their addresses and name.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_delivery, report_recipient, report_run};
use portal_kit::privacy::{
    DataSubject, DomainErasure, DomainExport, Erasure, PrivacyDomain, SubjectFile,
};
use portal_kit::storage::FileStore;
use portal_kit::{ApiError, ApiResult};

use crate::store::erasure;

/// Reports' side of the privacy contract: export and erasure of a data subject.
pub struct Privacy {
    db: DatabaseConnection,
    files: FileStore,
}

impl Privacy {
    /// Over `db`, deleting erased report files from `files`.
    pub fn new(db: DatabaseConnection, files: FileStore) -> Self {
        Self { db, files }
    }
}

#[async_trait::async_trait]
impl PrivacyDomain for Privacy {
    fn name(&self) -> &'static str {
        "reports"
    }

    async fn export_tenant(&self, tenant: Uuid) -> ApiResult<DomainExport> {
        portal_kit::privacy::tenant::export(&self.db, tenant, &tenant_tables()).await
    }

    async fn erase_tenant(
        &self,
        tenant: Uuid,
        by: &portal_kit::privacy::TenantErasure,
    ) -> ApiResult<DomainErasure> {
        portal_kit::privacy::tenant::erase_tables(
            &self.db,
            ("reports.tenant_erase", tenant),
            &tenant_tables(),
            by,
        )
        .await
    }

    async fn export(&self, subject: DataSubject) -> ApiResult<DomainExport> {
        let db = &self.db;
        let (tenant, person) = (subject.tenant_id, subject.user_id);
        let owned = report_definition::Entity::find()
            .filter(report_definition::Column::TenantId.eq(tenant))
            .filter(report_definition::Column::OwnerId.eq(person))
            .order_by_asc(report_definition::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        // Asked for by them (`MANUAL`), or read as them: their own definitions' runs and
        // the `DELIVERY` runs produced for them as a recipient.
        let runs = report_run::Entity::find()
            .filter(report_run::Column::TenantId.eq(tenant))
            .filter(
                Condition::any()
                    .add(report_run::Column::RequestedBy.eq(person))
                    .add(report_run::Column::RunAs.eq(person)),
            )
            .order_by_asc(report_run::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        // By user id: an external address's rows are someone else's.
        let receiving = report_recipient::Entity::find()
            .filter(report_recipient::Column::TenantId.eq(tenant))
            .filter(report_recipient::Column::UserId.eq(person))
            .order_by_asc(report_recipient::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let received = report_delivery::Entity::find()
            .filter(report_delivery::Column::TenantId.eq(tenant))
            .filter(report_delivery::Column::UserId.eq(person))
            .order_by_asc(report_delivery::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        // The names of the reports they receive or were delivered (nothing else of them).
        let names: HashMap<Uuid, String> = report_definition::Entity::find()
            .filter(report_definition::Column::TenantId.eq(tenant))
            .filter(
                report_definition::Column::Id.is_in(
                    receiving
                        .iter()
                        .map(|r| r.definition_id)
                        .chain(received.iter().map(|d| d.definition_id)),
                ),
            )
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect();
        // Only the files read as them: a run they asked for of someone else's report holds
        // what its owner may read.
        let theirs: Vec<(Uuid, Uuid, Uuid)> = runs
            .iter()
            .filter(|run| run.run_as == Some(person))
            .filter_map(|run| run.file_id.map(|file| (run.id, run.definition_id, file)))
            .collect();
        let stored = portal_kit::storage::find_many(
            db,
            tenant,
            theirs.iter().map(|(_, _, file)| *file),
            Utc::now(),
        )
        .await?;
        let files: Vec<SubjectFile> = theirs
            .into_iter()
            .filter_map(|(run, definition, file)| {
                stored.get(&file).map(|found| SubjectFile {
                    file_id: file,
                    path: format!("{run}-{}", found.name),
                    about: format!("report run {run} of definition {definition}"),
                })
            })
            .collect();
        let data = json!({
            "reportDefinitions": owned.into_iter().map(|d| json!({
                "id": d.id.to_string(),
                "name": d.name,
                "kind": d.kind,
                "format": d.format,
                "accountId": d.account_id.map(|a| a.to_string()),
                "query": d.query,
                "parameters": d.parameters,
                "version": d.version,
                "schedule": d.schedule,
                "timeZone": d.time_zone,
                "paused": d.paused,
                "externalDeliveryAllowedAt": d.external_delivery_allowed_at,
                "createdAt": d.created_at,
                "updatedAt": d.updated_at,
            })).collect::<Vec<_>>(),
            "reportRuns": runs.into_iter().map(|run| json!({
                "id": run.id.to_string(),
                "definitionId": run.definition_id.to_string(),
                "cause": run.cause,
                "requestedByYou": run.requested_by == Some(person),
                "readAsYou": run.run_as == Some(person),
                "status": run.status,
                "format": run.format,
                "definitionVersion": run.definition_version,
                "requestedAt": run.created_at,
                "startedAt": run.started_at,
                "finishedAt": run.finished_at,
                "rowCount": run.row_count,
                "bytes": run.bytes,
                "error": run.error,
                "fileId": run.file_id.map(|f| f.to_string()),
            })).collect::<Vec<_>>(),
            "reportRecipients": receiving.into_iter().map(|r| json!({
                "id": r.id.to_string(),
                "definitionId": r.definition_id.to_string(),
                "definitionName": names.get(&r.definition_id),
                "since": r.created_at,
            })).collect::<Vec<_>>(),
            "deliveries": received.into_iter().map(|d| json!({
                "id": d.id.to_string(),
                "definitionId": d.definition_id.to_string(),
                "definitionName": names.get(&d.definition_id),
                "runId": d.run_id.to_string(),
                "deliveredAt": d.created_at,
                "via": d.via,
                "emailedTo": d.email,
                "fileId": d.file_id.to_string(),
            })).collect::<Vec<_>>(),
        });
        Ok(DomainExport { data, files })
    }

    async fn erase(&self, subject: DataSubject, erasure: &Erasure) -> ApiResult<DomainErasure> {
        let done = erasure::erase_user(
            (&self.db, &self.files),
            (subject.tenant_id, subject.user_id),
            &erasure.identifiers,
            (&erasure.actor, &erasure.meta),
            Utc::now(),
        )
        .await?;
        let mut out = DomainErasure::default();
        out.erased(
            "reportDefinitions",
            done.definitions,
            "the reports they saved (names, queries, parameters and schedules): their own \
             work, deleted; the people they shared them with receive nothing more from them",
        )
        .erased(
            "reportMail",
            done.mail,
            "mail that shared their reports with others (it named them and carried the \
             files), sent or waiting",
        )
        .erased(
            "reportSchedules",
            done.schedules,
            "the schedules that ran their reports as them",
        )
        .erased(
            "reportRuns",
            done.runs,
            "every run of their reports, including the copies made for the people they \
             shared them with",
        )
        .erased(
            "reportRecipients",
            done.recipients,
            "who received their reports: the colleagues and addresses they shared them \
             with lose their future deliveries",
        )
        .erased(
            "reportDeliveries",
            done.deliveries,
            "the deliveries of their reports, to them and to the people they shared them \
             with (emails already sent are not recalled)",
        )
        .erased(
            "reportFiles",
            done.files,
            "the stored files of those runs and of the runs of other people's reports read \
             as them (the data as they saw it), deleted from storage",
        )
        .erased(
            "reportsReceived",
            done.receiving,
            "their place as a recipient of other people's reports, as a user or at one of \
             their addresses: they receive them no more",
        )
        .erased(
            "deliveriesReceived",
            done.received,
            "the deliveries of other people's reports made to them or to one of their \
             addresses",
        )
        .anonymized(
            "runsReadAsThem",
            done.read_as_them,
            "runs of other people's reports made for them as a recipient: their files and \
             signed manifests deleted and whom they were read as removed (any not yet made \
             cancelled); each stays in its report's history",
        )
        .anonymized(
            "runsRequested",
            done.requested,
            "runs of other people's reports they asked for: they no longer say who asked; \
             the run and its file stay with the report's owner",
        )
        .anonymized(
            "requestedFiles",
            done.requested_files,
            "the stored files of those runs: they no longer say who asked for them",
        )
        .anonymized(
            "externalDeliveryApprovals",
            done.approvals,
            "reports they allowed, as a tenant admin, to be delivered outside the tenant: \
             the approval stays, given by a deleted user",
        )
        .anonymized(
            "recipientsAdded",
            done.recipients_added,
            "recipients they added to, or vouched for on, other people's reports: they \
             keep receiving them, added by a deleted user",
        )
        .anonymized(
            "reportsMentioningThem",
            done.definitions_scrubbed,
            "other people's reports whose name, parameters or saved query held their \
             address or name: replaced with [erased]",
        )
        .anonymized(
            "runsMentioningThem",
            done.runs_scrubbed,
            "runs whose errors held their address or name: replaced with [erased]; a signed \
             manifest naming them is deleted, since an edited one would no longer verify",
        );
        Ok(out)
    }
}

/// Reports' tables of a tenant, children before parents (their files are the platform's).
fn tenant_tables() -> Vec<Box<dyn portal_kit::privacy::tenant::TenantTable>> {
    use portal_kit::privacy::tenant::table;
    vec![
        table::<report_delivery::Entity>(report_delivery::Column::TenantId, &[]),
        table::<report_recipient::Entity>(report_recipient::Column::TenantId, &[]),
        table::<report_run::Entity>(report_run::Column::TenantId, &[]),
        table::<report_definition::Entity>(report_definition::Column::TenantId, &[]),
    ]
}
