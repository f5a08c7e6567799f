//! Erasure of one person from reports (the reports side of a GDPR erasure, driven by the
//! privacy workflow).
//!
//! - The report definitions they own are their own work — saved queries, parameters,
//!   schedules — and go with everything that hangs off them: their job schedules, runs,
//!   run files, recipients and deliveries. The people they shared them with receive
//!   nothing more from them.
//! - Runs of other people's reports stay in those reports' history. The runs they asked
//!   for no longer say who asked. The runs read as them (produced for them as a
//!   recipient) lose their files (the data as they saw it), their signed manifests (which
//!   name them) and whom they were read as. `run_as` is nullable, so the row is kept
//!   rather than deleted. Runs not produced yet are cancelled, so nothing is produced or
//!   delivered for them afterwards.
//! - They receive nothing any more: the recipient rows and deliveries that name them, or
//!   are addressed to one of their addresses, are deleted.
//! - What they did for other people's reports stays done, by a deleted user (the nil id,
//!   which identity shows as "Deleted user"): an external delivery they allowed as a
//!   tenant admin stays allowed, and a recipient they added or vouched for keeps
//!   receiving. `NULL` would not do there: a report without an approver may not be
//!   delivered outside the tenant, so it would change what the report does.
//! - Text kept for others — report names, parameters and saved queries, run errors — is
//!   scrubbed of their addresses and name. A signed manifest that names them is removed
//!   rather than edited, because an edited one would no longer verify.
//!
//! All of this runs in one transaction and is audited as `user_reports.erase`. The audit
//! details hold counts and the ids of the deleted definitions, never names, addresses or
//! text. The files' stored objects are deleted after the commit; their rows have already
//! expired, so nothing serves them, and whatever cannot be deleted then is left to the
//! scheduled purge.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait as _, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::platform::{file, job_schedule};
use portal_entities::reports::{report_definition, report_delivery, report_recipient, report_run};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::privacy::{mentioning, rewrite, scrub, scrubbed};
use portal_kit::storage::{self, FileStore};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use super::{FILE_OWNER, SCHEDULE_JOB, schedule_name};
use crate::domain::ReportRunStatus;

/// The error of a run read as them that was cancelled before it was produced (the one a
/// run job shows when its recipient is gone).
const CANCELLED: &str = "the recipient no longer receives this report";

/// What an erasure did, collection by collection (counts of rows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Report definitions they owned, deleted.
    pub definitions: u64,
    /// Job schedules of those definitions, removed.
    pub schedules: u64,
    /// Runs of those definitions, deleted.
    pub runs: u64,
    /// Recipients of those definitions, removed.
    pub recipients: u64,
    /// Deliveries of those definitions, deleted.
    pub deliveries: u64,
    /// Stored files deleted: those of the runs of their definitions and of the runs read
    /// as them.
    pub files: u64,
    /// Their places as a recipient of other people's reports (as a user, or at one of
    /// their addresses), removed.
    pub receiving: u64,
    /// Deliveries of other people's reports made to them, deleted.
    pub received: u64,
    /// Runs of other people's reports read as them: file, manifest and reader removed.
    pub read_as_them: u64,
    /// Runs of other people's reports they asked for, no longer naming them.
    pub requested: u64,
    /// Stored files of other people's reports made at their request, no longer naming
    /// them.
    pub requested_files: u64,
    /// Other people's reports whose external delivery they allowed, now allowed by a
    /// deleted user.
    pub approvals: u64,
    /// Recipients of other people's reports they added or vouched for, now by a deleted
    /// user.
    pub recipients_added: u64,
    /// Other people's reports whose name, parameters or saved query mentioned them,
    /// scrubbed.
    pub definitions_scrubbed: u64,
    /// Runs whose errors or manifest mentioned them, scrubbed.
    pub runs_scrubbed: u64,
    /// Mail carrying those files (their reports shared with others, sent or waiting),
    /// deleted from the outbox.
    pub mail: u64,
}

/// Erases `user` of `tenant_id` from reports at `now`, in one transaction audited as
/// `user_reports.erase` for `actor`, then deletes the stored files that went (through
/// `files`). `identifiers` are the person's addresses and name (see
/// [`portal_kit::privacy::Erasure`]). A second run finds nothing left.
pub async fn erase_user(
    (db, files): (&DatabaseConnection, &FileStore),
    (tenant_id, user): (Uuid, Uuid),
    identifiers: &[String],
    (actor, meta): (&Actor, &RequestMeta),
    now: DateTime<Utc>,
) -> ApiResult<Erased> {
    let their_addresses = addresses(identifiers);
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let owned: Vec<Uuid> = report_definition::Entity::find()
        .select_only()
        .column(report_definition::Column::Id)
        .filter(report_definition::Column::TenantId.eq(tenant_id))
        .filter(report_definition::Column::OwnerId.eq(user))
        .order_by_asc(report_definition::Column::Id)
        .into_tuple()
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    // The files of their reports' runs and of the runs read as them, gathered while the
    // runs still name them.
    let file_ids: Vec<Uuid> = report_run::Entity::find()
        .select_only()
        .column(report_run::Column::FileId)
        .filter(report_run::Column::TenantId.eq(tenant_id))
        .filter(report_run::Column::FileId.is_not_null())
        .filter(
            Condition::any()
                .add(report_run::Column::DefinitionId.in_subquery(owned_by(tenant_id, user)))
                .add(report_run::Column::RunAs.eq(user)),
        )
        .into_tuple::<Option<Uuid>>()
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .flatten()
        .collect();
    let mut erased = Erased {
        files: storage::expire_now(&txn, tenant_id, &file_ids, now).await?,
        mail: portal_kit::mail::forget_attachments(&txn, tenant_id, &file_ids).await?,
        ..Erased::default()
    };
    own_reports(&txn, (tenant_id, user), &owned, &mut erased).await?;
    receiving(&txn, (tenant_id, user), &their_addresses, &mut erased).await?;
    others_runs(&txn, (tenant_id, user), now, &mut erased).await?;
    attributions(&txn, (tenant_id, user), now, &mut erased).await?;
    erased.definitions_scrubbed = scrub_definitions(&txn, tenant_id, identifiers, now).await?;
    erased.runs_scrubbed = scrub_runs(&txn, tenant_id, identifiers).await?;
    AuditEvent::success("user_reports.erase", "user", user)
        .with_details(json!({
            "definitionIds": owned,
            "definitions": erased.definitions,
            "schedules": erased.schedules,
            "runs": erased.runs,
            "recipients": erased.recipients,
            "deliveries": erased.deliveries,
            "files": erased.files,
            "receiving": erased.receiving,
            "received": erased.received,
            "readAsThem": erased.read_as_them,
            "requested": erased.requested,
            "requestedFiles": erased.requested_files,
            "approvals": erased.approvals,
            "recipientsAdded": erased.recipients_added,
            "definitionsScrubbed": erased.definitions_scrubbed,
            "runsScrubbed": erased.runs_scrubbed,
            "mail": erased.mail,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    if let Err(err) = storage::purge(db, files, tenant_id, &file_ids, now).await {
        tracing::warn!(
            tenant = %tenant_id,
            ?err,
            "deleting erased report files failed: the scheduled purge deletes them"
        );
    }
    Ok(erased)
}

/// The person's addresses among `identifiers`, trimmed and lower-cased (as external
/// recipients are stored).
fn addresses(identifiers: &[String]) -> Vec<String> {
    identifiers
        .iter()
        .map(|id| id.trim())
        .filter(|id| id.contains('@'))
        .map(str::to_lowercase)
        .collect()
}

/// The ids of the definitions `user` owns in the tenant (a subquery).
fn owned_by(tenant_id: Uuid, user: Uuid) -> SelectStatement {
    Query::select()
        .column(report_definition::Column::Id)
        .from(report_definition::Entity)
        .and_where(report_definition::Column::TenantId.eq(tenant_id))
        .and_where(report_definition::Column::OwnerId.eq(user))
        .to_owned()
}

/// Deletes the definitions `user` owns (`owned`) with their deliveries, recipients, runs
/// and job schedules (their files were expired by the caller).
async fn own_reports(
    txn: &impl ConnectionTrait,
    (tenant_id, user): (Uuid, Uuid),
    owned: &[Uuid],
    erased: &mut Erased,
) -> ApiResult<()> {
    erased.deliveries = report_delivery::Entity::delete_many()
        .filter(report_delivery::Column::TenantId.eq(tenant_id))
        .filter(report_delivery::Column::DefinitionId.in_subquery(owned_by(tenant_id, user)))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    erased.recipients = report_recipient::Entity::delete_many()
        .filter(report_recipient::Column::TenantId.eq(tenant_id))
        .filter(report_recipient::Column::DefinitionId.in_subquery(owned_by(tenant_id, user)))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    erased.runs = report_run::Entity::delete_many()
        .filter(report_run::Column::TenantId.eq(tenant_id))
        .filter(report_run::Column::DefinitionId.in_subquery(owned_by(tenant_id, user)))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    // Their schedules would otherwise start runs of definitions that are gone (the
    // occurrences already enqueued find nothing and do nothing).
    let names: Vec<String> = owned.iter().copied().map(schedule_name).collect();
    for chunk in names.chunks(500) {
        erased.schedules += job_schedule::Entity::delete_many()
            .filter(job_schedule::Column::TenantId.eq(tenant_id))
            .filter(job_schedule::Column::Kind.eq(SCHEDULE_JOB))
            .filter(job_schedule::Column::Name.is_in(chunk.iter().cloned()))
            .exec(txn)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    erased.definitions = report_definition::Entity::delete_many()
        .filter(report_definition::Column::TenantId.eq(tenant_id))
        .filter(report_definition::Column::OwnerId.eq(user))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    Ok(())
}

/// Deletes their places as a recipient of other people's reports — as `user`, or at one
/// of `addresses` — and every delivery made to them there.
async fn receiving(
    txn: &impl ConnectionTrait,
    (tenant_id, user): (Uuid, Uuid),
    addresses: &[String],
    erased: &mut Erased,
) -> ApiResult<()> {
    let mut places = Condition::any().add(report_recipient::Column::UserId.eq(user));
    let mut deliveries = Condition::any().add(report_delivery::Column::UserId.eq(user));
    if !addresses.is_empty() {
        places = places.add(
            Func::lower(Expr::col(report_recipient::Column::Email))
                .is_in(addresses.iter().cloned()),
        );
        deliveries = deliveries.add(
            Func::lower(Expr::col(report_delivery::Column::Email)).is_in(addresses.iter().cloned()),
        );
    }
    let their_places = Query::select()
        .column(report_recipient::Column::Id)
        .from(report_recipient::Entity)
        .cond_where(
            Condition::all()
                .add(report_recipient::Column::TenantId.eq(tenant_id))
                .add(places.clone()),
        )
        .to_owned();
    erased.received = report_delivery::Entity::delete_many()
        .filter(report_delivery::Column::TenantId.eq(tenant_id))
        .filter(deliveries.add(report_delivery::Column::RecipientId.in_subquery(their_places)))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    erased.receiving = report_recipient::Entity::delete_many()
        .filter(report_recipient::Column::TenantId.eq(tenant_id))
        .filter(places)
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    Ok(())
}

/// Unties them from the runs of other people's reports: the runs read as them are
/// cancelled when not produced yet, and lose their manifest and reader (their files were
/// expired by the caller); the runs they asked for no longer say who asked.
async fn others_runs(
    txn: &impl ConnectionTrait,
    (tenant_id, user): (Uuid, Uuid),
    now: DateTime<Utc>,
    erased: &mut Erased,
) -> ApiResult<()> {
    let waiting = [
        ReportRunStatus::Queued.as_str(),
        ReportRunStatus::Running.as_str(),
    ];
    report_run::Entity::update_many()
        .col_expr(
            report_run::Column::Status,
            Expr::value(ReportRunStatus::Failed.as_str()),
        )
        .col_expr(report_run::Column::Error, Expr::value(CANCELLED))
        .col_expr(report_run::Column::ErrorDetail, Expr::value(CANCELLED))
        .col_expr(report_run::Column::FinishedAt, Expr::value(now))
        .filter(report_run::Column::TenantId.eq(tenant_id))
        .filter(report_run::Column::RunAs.eq(user))
        .filter(report_run::Column::Status.is_in(waiting))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    erased.read_as_them = report_run::Entity::update_many()
        .col_expr(report_run::Column::RunAs, Expr::value(Option::<Uuid>::None))
        .col_expr(
            report_run::Column::Manifest,
            Expr::value(Option::<String>::None),
        )
        .filter(report_run::Column::TenantId.eq(tenant_id))
        .filter(report_run::Column::RunAs.eq(user))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    erased.requested = report_run::Entity::update_many()
        .col_expr(
            report_run::Column::RequestedBy,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(report_run::Column::TenantId.eq(tenant_id))
        .filter(report_run::Column::RequestedBy.eq(user))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    Ok(())
}

/// What they did for other people's reports, credited to the deleted user (external
/// delivery allowed, recipients added or vouched for), and the report files made at their
/// request, which no longer say who asked.
async fn attributions(
    txn: &impl ConnectionTrait,
    (tenant_id, user): (Uuid, Uuid),
    now: DateTime<Utc>,
    erased: &mut Erased,
) -> ApiResult<()> {
    let deleted_user = Uuid::nil();
    erased.approvals = report_definition::Entity::update_many()
        .col_expr(
            report_definition::Column::ExternalDeliveryAllowedBy,
            Expr::value(Some(deleted_user)),
        )
        .filter(report_definition::Column::TenantId.eq(tenant_id))
        .filter(report_definition::Column::ExternalDeliveryAllowedBy.eq(user))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    erased.recipients_added = report_recipient::Entity::find()
        .filter(report_recipient::Column::TenantId.eq(tenant_id))
        .filter(
            Condition::any()
                .add(report_recipient::Column::CreatedBy.eq(user))
                .add(report_recipient::Column::VouchedBy.eq(user)),
        )
        .count(txn)
        .await
        .map_err(ApiError::from_db)?;
    report_recipient::Entity::update_many()
        .col_expr(
            report_recipient::Column::CreatedBy,
            Expr::value(deleted_user),
        )
        .filter(report_recipient::Column::TenantId.eq(tenant_id))
        .filter(report_recipient::Column::CreatedBy.eq(user))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    report_recipient::Entity::update_many()
        .col_expr(
            report_recipient::Column::VouchedBy,
            Expr::value(Some(deleted_user)),
        )
        .filter(report_recipient::Column::TenantId.eq(tenant_id))
        .filter(report_recipient::Column::VouchedBy.eq(user))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    let report_files = || {
        file::Entity::update_many()
            .col_expr(file::Column::CreatedBy, Expr::value(Option::<Uuid>::None))
            .filter(file::Column::TenantId.eq(tenant_id))
            .filter(file::Column::Domain.eq(crate::SUBGRAPH_NAME))
            .filter(file::Column::OwnerType.eq(FILE_OWNER))
            .filter(file::Column::CreatedBy.eq(user))
    };
    // The files kept for others (counted), then those expired and waiting for the purge
    // (among them the ones this erasure deletes).
    erased.requested_files = report_files()
        .filter(
            Condition::any()
                .add(file::Column::ExpiresAt.is_null())
                .add(file::Column::ExpiresAt.gt(now)),
        )
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    report_files().exec(txn).await.map_err(ApiError::from_db)?;
    Ok(())
}

/// Whether there is anything to look for.
fn any_identifier(identifiers: &[String]) -> bool {
    identifiers.iter().any(|id| !id.trim().is_empty())
}

/// Scrubs the names, parameters and saved queries of the tenant's report definitions
/// (other people's, by now) that mention the person; a changed query or parameters make
/// a new definition version, as any edit does. How many changed.
async fn scrub_definitions(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    identifiers: &[String],
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    if !any_identifier(identifiers) {
        return Ok(0);
    }
    let candidates = Condition::any()
        .add(mentioning(
            &Expr::col(report_definition::Column::Name),
            identifiers,
        ))
        .add(mentioning(
            &Expr::col(report_definition::Column::Parameters),
            identifiers,
        ))
        .add(mentioning(
            &Expr::col(report_definition::Column::Query),
            identifiers,
        ));
    let select = report_definition::Entity::find()
        .filter(report_definition::Column::TenantId.eq(tenant_id))
        .filter(candidates);
    rewrite(
        txn,
        select,
        report_definition::Column::Id,
        |row: &report_definition::Model| row.id,
        |row: &report_definition::Model| {
            let name = scrubbed(&row.name, identifiers);
            let mut parameters = row.parameters.clone();
            let mut saved = row.query.clone();
            let mut changed = scrub(&mut parameters, identifiers);
            if let Some(saved) = saved.as_mut() {
                changed |= scrub(saved, identifiers);
            }
            if name.is_none() && !changed {
                return None;
            }
            let mut update = report_definition::Entity::update_many()
                .col_expr(report_definition::Column::UpdatedAt, Expr::value(now))
                .filter(report_definition::Column::TenantId.eq(tenant_id));
            if let Some(name) = name {
                update = update.col_expr(report_definition::Column::Name, Expr::value(name));
            }
            if changed {
                update = update
                    .col_expr(
                        report_definition::Column::Parameters,
                        Expr::value(parameters),
                    )
                    .col_expr(
                        report_definition::Column::Version,
                        Expr::value(row.version + 1),
                    );
                if let Some(saved) = saved {
                    update = update.col_expr(report_definition::Column::Query, Expr::value(saved));
                }
            }
            Some(update)
        },
    )
    .await
}

/// Whether the signed manifest `text` mentions one of `identifiers` (read as JSON, so a
/// name is found where it is a whole value).
fn manifest_names(text: &str, identifiers: &[String]) -> bool {
    match serde_json::from_str::<Value>(text) {
        Ok(mut manifest) => scrub(&mut manifest, identifiers),
        Err(_) => portal_kit::privacy::mentions(text, identifiers),
    }
}

/// Scrubs the errors of the tenant's report runs that mention the person, and removes
/// the signed manifests that do (a signed document cannot be edited and still verify).
/// How many changed.
async fn scrub_runs(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    identifiers: &[String],
) -> ApiResult<u64> {
    if !any_identifier(identifiers) {
        return Ok(0);
    }
    let candidates = Condition::any()
        .add(mentioning(
            &Expr::col(report_run::Column::Error),
            identifiers,
        ))
        .add(mentioning(
            &Expr::col(report_run::Column::ErrorDetail),
            identifiers,
        ))
        .add(mentioning(
            &Expr::col(report_run::Column::Manifest),
            identifiers,
        ));
    let select = report_run::Entity::find()
        .filter(report_run::Column::TenantId.eq(tenant_id))
        .filter(candidates);
    rewrite(
        txn,
        select,
        report_run::Column::Id,
        |row: &report_run::Model| row.id,
        |row: &report_run::Model| {
            let error = row
                .error
                .as_deref()
                .and_then(|text| scrubbed(text, identifiers));
            let detail = row
                .error_detail
                .as_deref()
                .and_then(|text| scrubbed(text, identifiers));
            let unsigned = row
                .manifest
                .as_deref()
                .is_some_and(|text| manifest_names(text, identifiers));
            if error.is_none() && detail.is_none() && !unsigned {
                return None;
            }
            let mut update = report_run::Entity::update_many()
                .filter(report_run::Column::TenantId.eq(tenant_id));
            if let Some(error) = error {
                update = update.col_expr(report_run::Column::Error, Expr::value(error));
            }
            if let Some(detail) = detail {
                update = update.col_expr(report_run::Column::ErrorDetail, Expr::value(detail));
            }
            if unsigned {
                update = update.col_expr(
                    report_run::Column::Manifest,
                    Expr::value(Option::<String>::None),
                );
            }
            Some(update)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec![" Bob@Acme.example ".into(), "Bob Builder".into()]
    }

    #[test]
    fn addresses_are_the_trimmed_lower_cased_emails() {
        assert_eq!(addresses(&ids()), vec!["bob@acme.example".to_owned()]);
    }

    #[test]
    fn text_is_scrubbed_only_when_it_mentions_them() {
        assert_eq!(
            scrubbed("sent to bob@acme.example", &ids()).as_deref(),
            Some("sent to [erased]")
        );
        // A name in free text is not matched (only under a name member of JSON).
        assert_eq!(scrubbed("Bob Builder", &ids()), None);
        assert_eq!(scrubbed("Balances by Bob Builder", &ids()), None);
        assert!(!any_identifier(&[" ".into()]));
    }

    #[test]
    fn a_manifest_names_them_where_a_value_is_theirs() {
        let named = json!({ "report": { "name": "Bob Builder" } }).to_string();
        let other = json!({ "report": { "name": "Balances" }, "runAs": Uuid::nil() }).to_string();
        assert!(manifest_names(&named, &ids()));
        assert!(!manifest_names(&other, &ids()));
    }
}
