//! Recipients and deliveries of reports (always tenant-scoped).
//!
//! A recipient is a user of the tenant or an external address. At each scheduled
//! occurrence the owner's run is produced as today, plus one `DELIVERY` run per user
//! recipient, read as that user ([`request_delivery_runs`]); when a run's file is recorded
//! its deliveries are recorded and their emails queued in the same transaction
//! (`complete_run`), so a finished run is never left undelivered.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_delivery, report_recipient, report_run};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::jobs::{self, NewJob};
use portal_kit::mail::{self, Email};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::secret::DataKey;
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use super::{RUN_ATTEMPTS, RUN_JOB, definition};
use crate::domain::ReportRunStatus;

/// Most recipients one report may have.
pub const RECIPIENTS_MAX: u64 = 100;

/// Who a new recipient is.
pub enum NewRecipient {
    /// A user of the tenant (checked to exist by the caller).
    User(Uuid),
    /// An external address (validated, lower-cased), vouched for by the owner.
    Email(String),
}

/// The recipients of definitions `ids` of the tenant, oldest first.
pub async fn recipients_of(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> ApiResult<Vec<report_recipient::Model>> {
    report_recipient::Entity::find()
        .filter(report_recipient::Column::TenantId.eq(tenant_id))
        .filter(report_recipient::Column::DefinitionId.is_in(ids.iter().copied()))
        .order_by_asc(report_recipient::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// The recipients of definitions `ids` of the tenant, by definition (for a DataLoader).
pub async fn recipients_by_definition(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: Vec<Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<report_recipient::Model>>> {
    let mut grouped: HashMap<Uuid, Vec<report_recipient::Model>> = HashMap::new();
    for row in recipients_of(db, tenant_id, &ids).await? {
        grouped.entry(row.definition_id).or_default().push(row);
    }
    Ok(grouped)
}

/// The deliveries of runs `ids` of the tenant, by run (for a DataLoader).
pub async fn deliveries_by_run(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: Vec<Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<report_delivery::Model>>> {
    let mut grouped: HashMap<Uuid, Vec<report_delivery::Model>> = HashMap::new();
    for row in deliveries_of_runs(db, tenant_id, &ids).await? {
        grouped.entry(row.run_id).or_default().push(row);
    }
    Ok(grouped)
}

/// Adds a recipient to the definition (of the actor's tenant), audited as
/// `report_recipient.add`. An external address needs the definition's external delivery
/// to be allowed and the actor to be its owner (who vouches for the address).
pub async fn add_recipient(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    definition_id: Uuid,
    who: NewRecipient,
) -> ApiResult<report_recipient::Model> {
    let tenant_id = actor.tenant()?;
    let caller = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = definition(&txn, tenant_id, definition_id).await?;
    let existing = report_recipient::Entity::find()
        .filter(report_recipient::Column::DefinitionId.eq(definition_id))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if existing >= RECIPIENTS_MAX {
        return Err(ApiError::invalid(
            "definitionId",
            format!("a report has at most {RECIPIENTS_MAX} recipients"),
        ));
    }
    let (user_id, email, vouched_by) = match who {
        NewRecipient::User(user) => (Some(user), None, None),
        NewRecipient::Email(address) => {
            if found.external_delivery_allowed_by.is_none() {
                return Err(ApiError::invalid(
                    "input.email",
                    "this report may not be delivered outside the tenant: a tenant admin \
                     must allow external delivery for it first",
                ));
            }
            if found.owner_id != caller {
                return Err(ApiError::invalid(
                    "input.email",
                    "only the report's owner can add an external address: they vouch for it",
                ));
            }
            (None, Some(address), Some(caller))
        }
    };
    let duplicate = report_recipient::Entity::find()
        .filter(report_recipient::Column::DefinitionId.eq(definition_id))
        .filter(match (&user_id, &email) {
            (Some(user), _) => report_recipient::Column::UserId.eq(*user),
            (None, address) => report_recipient::Column::Email.eq(address.clone()),
        })
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if duplicate.is_some() {
        return Err(ApiError::Conflict(
            "this recipient already receives the report".into(),
        ));
    }
    let created = report_recipient::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        definition_id: Set(definition_id),
        user_id: Set(user_id),
        email: Set(email.clone()),
        vouched_by: Set(vouched_by),
        created_by: Set(caller),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("report_recipient.add", "report_recipient", created.id)
        .with_details(json!({
            "definitionId": definition_id,
            "userId": user_id,
            "external": email.is_some(),
            "vouchedBy": vouched_by,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// The recipient `id` of the tenant.
pub async fn recipient(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<report_recipient::Model> {
    report_recipient::Entity::find_by_id(id)
        .filter(report_recipient::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("report recipient"))
}

/// Removes a recipient (it receives nothing from then on, and its delivery links stop
/// working), audited as `report_recipient.remove`.
pub async fn remove_recipient(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    found: &report_recipient::Model,
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    report_recipient::Entity::delete_by_id(found.id)
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    AuditEvent::success("report_recipient.remove", "report_recipient", found.id)
        .with_details(json!({
            "definitionId": found.definition_id,
            "userId": found.user_id,
            "external": found.email.is_some(),
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// Allows (or stops) delivery of the definition to external addresses, audited as a
/// `report_definition.update` naming the change. Stopping it keeps the external
/// recipients but sends them nothing, and their links stop working.
pub async fn set_external_delivery(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    definition_id: Uuid,
    allowed: bool,
) -> ApiResult<report_definition::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = definition(&txn, tenant_id, definition_id).await?;
    let before = found.external_delivery_allowed_by.is_some();
    let mut active: report_definition::ActiveModel = found.into();
    if allowed {
        if !before {
            active.external_delivery_allowed_by = Set(Some(actor.principal()?));
            active.external_delivery_allowed_at = Set(Some(Utc::now()));
        }
    } else {
        active.external_delivery_allowed_by = Set(None);
        active.external_delivery_allowed_at = Set(None);
    }
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success(
        "report_definition.update",
        "report_definition",
        definition_id,
    )
    .with_details(json!({
        "before": { "externalDelivery": before },
        "after": { "externalDelivery": allowed },
    }))
    .record(&txn, actor, meta)
    .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Queues, in `txn` (the scheduled run's), one `DELIVERY` run per user recipient of
/// `found` other than its owner, each read as that recipient.
pub(super) async fn request_delivery_runs(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    meta: &RequestMeta,
    found: &report_definition::Model,
) -> ApiResult<usize> {
    let users: Vec<report_recipient::Model> = recipients_of(txn, found.tenant_id, &[found.id])
        .await?
        .into_iter()
        .filter(|r| r.user_id.is_some_and(|user| user != found.owner_id))
        .collect();
    let now = Utc::now();
    for recipient in &users {
        let created = report_run::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(found.tenant_id),
            definition_id: Set(found.id),
            requested_by: Set(None),
            status: Set(ReportRunStatus::Queued.as_str().to_owned()),
            row_count: Set(None),
            error: Set(None),
            created_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
            cause: Set("DELIVERY".to_owned()),
            definition_version: Set(Some(found.version)),
            format: Set(Some(found.format.clone())),
            run_as: Set(recipient.user_id),
            file_id: Set(None),
            bytes: Set(None),
            error_detail: Set(None),
            manifest: Set(None),
            recipient_id: Set(Some(recipient.id)),
        }
        .insert(txn)
        .await
        .map_err(ApiError::from_db)?;
        let job = NewJob::new(RUN_JOB, json!({ "runId": created.id }))
            .acting_for(actor)
            .max_attempts(RUN_ATTEMPTS);
        jobs::enqueue(txn, now, job).await?;
        AuditEvent::success("report_run.request", "report_run", created.id)
            .with_details(json!({
                "definitionId": found.id,
                "cause": "DELIVERY",
                "recipientId": recipient.id,
            }))
            .record(txn, actor, meta)
            .await?;
    }
    Ok(users.len())
}

/// How a delivered file reaches its recipient by email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Attached to the email.
    Attachment,
    /// Linked from the email (too large to attach).
    Link,
}

impl Via {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attachment => "ATTACHMENT",
            Self::Link => "LINK",
        }
    }
}

/// A delivery of a run about to be recorded with it.
pub struct Planned {
    /// Its id (named by its link).
    pub id: Uuid,
    /// The recipient.
    pub recipient: report_recipient::Model,
    /// The address its email goes to (none when the recipient has none).
    pub email: Option<Email>,
    /// How the email carries the file.
    pub via: Via,
}

/// Records `planned` deliveries of `run`'s file `file_id` and queues their emails, in
/// `txn` (the transaction that records the file).
pub(super) async fn record_deliveries(
    txn: &impl ConnectionTrait,
    (actor, meta): (&Actor, &RequestMeta),
    mail_key: &DataKey,
    (run, file_id): (&report_run::Model, Uuid),
    planned: Vec<Planned>,
) -> ApiResult<()> {
    let now = Utc::now();
    for delivery in planned {
        let address = delivery.email.as_ref().map(|email| email.to.clone());
        report_delivery::ActiveModel {
            id: Set(delivery.id),
            tenant_id: Set(run.tenant_id),
            definition_id: Set(run.definition_id),
            run_id: Set(run.id),
            recipient_id: Set(delivery.recipient.id),
            user_id: Set(delivery.recipient.user_id),
            email: Set(address.clone()),
            via: Set(delivery.via.as_str().to_owned()),
            file_id: Set(file_id),
            created_at: Set(now),
        }
        .insert(txn)
        .await
        .map_err(ApiError::from_db)?;
        if let Some(email) = delivery.email {
            let attachment = (delivery.via == Via::Attachment).then_some(file_id);
            mail::enqueue_with_attachment(txn, mail_key, Some(run.tenant_id), email, attachment)
                .await?;
        }
        AuditEvent::success("report_delivery.deliver", "report_delivery", delivery.id)
            .with_details(json!({
                "runId": run.id,
                "recipientId": delivery.recipient.id,
                "userId": delivery.recipient.user_id,
                "external": delivery.recipient.email.is_some(),
                "emailed": address.is_some(),
                "via": delivery.via.as_str(),
            }))
            .record(txn, actor, meta)
            .await?;
    }
    Ok(())
}

/// The deliveries to `user` in the tenant, oldest first.
pub async fn deliveries_to(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    user: Uuid,
    page: PageRequest,
) -> ApiResult<Page<report_delivery::Model>> {
    let scoped = report_delivery::Entity::find()
        .filter(report_delivery::Column::TenantId.eq(tenant_id))
        .filter(report_delivery::Column::UserId.eq(user));
    page.fetch(db, scoped, report_delivery::Column::Id).await
}

/// The deliveries of runs `ids` of the tenant, oldest first.
pub async fn deliveries_of_runs(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> ApiResult<Vec<report_delivery::Model>> {
    report_delivery::Entity::find()
        .filter(report_delivery::Column::TenantId.eq(tenant_id))
        .filter(report_delivery::Column::RunId.is_in(ids.iter().copied()))
        .order_by_asc(report_delivery::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// What a delivery link may still serve: the delivery, its recipient and definition —
/// `None` when the recipient was removed, or (for an external address) external delivery
/// is no longer allowed.
pub async fn standing_delivery(
    db: &DatabaseConnection,
    id: Uuid,
) -> ApiResult<
    Option<(
        report_delivery::Model,
        report_recipient::Model,
        report_definition::Model,
    )>,
> {
    let Some(delivery) = report_delivery::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
    else {
        return Ok(None);
    };
    let Some(recipient) = report_recipient::Entity::find_by_id(delivery.recipient_id)
        .filter(report_recipient::Column::TenantId.eq(delivery.tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
    else {
        return Ok(None);
    };
    let found = definition(db, delivery.tenant_id, delivery.definition_id).await;
    let found = match found {
        Ok(found) => found,
        Err(ApiError::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err),
    };
    if recipient.email.is_some() && found.external_delivery_allowed_by.is_none() {
        return Ok(None);
    }
    Ok(Some((delivery, recipient, found)))
}
