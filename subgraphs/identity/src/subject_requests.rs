//! Data-subject requests (GDPR Art. 12, 15, 17, 20): a person asks for their data, or for
//! it to be erased — or a tenant admin files the request on their behalf — and the person
//! confirms it through a one-time link sent to their address (so a stolen session or a
//! mistaken admin can neither take nor destroy someone's data). Then a privacy job acts:
//! for access, it gathers every domain's export into one archive, which the person
//! downloads through a short-lived, re-checked link; for erasure, it checks the legal
//! holds (any hold covering the person or what they are tied to blocks the request, with
//! the reason), and otherwise has every domain erase or anonymize its part and records
//! what was erased, anonymized and kept, and why. Every step is audited; the answer is due
//! 30 days after the request.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::identity::{data_subject_request, tenant, user};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::jobs::{self, NewJob};
use portal_kit::mail::{self, Email};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::secret::{opaque_token, token_hash};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::settings::IdentitySettings;

/// The job that gathers an access request's archive.
pub const ACCESS_JOB: &str = "privacy.access";

/// The job that carries out an erasure request.
pub const ERASURE_JOB: &str = "privacy.erase";

/// The grant to file a request for someone else.
pub const ON_BEHALF: &str = portal_kit::policy::SUBJECT_REQUESTS_ON_BEHALF;

/// The grant to see every request of the tenant.
pub const ALL: &str = portal_kit::policy::SUBJECT_REQUESTS_ALL;

/// The owner type of an access archive's stored file (its query field:
/// `dataSubjectRequest`).
pub const FILE_OWNER: &str = "DataSubjectRequest";

/// The access check of an archive's download: only the person's `file` resolves.
pub const ARCHIVE_ACCESS: &str = "archive: dataSubjectRequest(id: $id) { file { sha256 } }";

/// How long a confirmed request may stay queued or running before it counts as failed
/// (its job died) and the person may ask again.
pub const STALE_AFTER_HOURS: i64 = 24;

/// When the answer is due (GDPR Art. 12(3): one month).
pub const DUE_AFTER_DAYS: i64 = 30;

/// How long the confirmation link works.
pub const VERIFICATION_HOURS: i64 = 72;

/// Attempts of the privacy job before it gives up.
pub const JOB_ATTEMPTS: i32 = 5;

/// Kinds of request (storage form).
pub mod kind {
    /// A copy of their data (Art. 15, 20).
    pub const ACCESS: &str = "ACCESS";
    /// Their data erased or anonymized (Art. 17).
    pub const ERASURE: &str = "ERASURE";

    /// The privacy job that carries out a request of `kind`.
    pub fn job(kind: &str) -> &'static str {
        if kind == ERASURE {
            super::ERASURE_JOB
        } else {
            super::ACCESS_JOB
        }
    }
}

/// Where a request is (storage form).
pub mod status {
    /// Waiting for the person to confirm through the link sent to them.
    pub const AWAITING_VERIFICATION: &str = "AWAITING_VERIFICATION";
    /// Confirmed; waiting for a worker.
    pub const QUEUED: &str = "QUEUED";
    /// Being carried out.
    pub const RUNNING: &str = "RUNNING";
    /// Done: the archive can be downloaded.
    pub const COMPLETED: &str = "COMPLETED";
    /// It could not be carried out (`failure` says why).
    pub const FAILED: &str = "FAILED";
    /// Refused because a legal hold covers the person or what they are tied to (`result`
    /// lists the holds); the person may ask again once they are released.
    pub const BLOCKED: &str = "BLOCKED";
    /// Not confirmed in time.
    pub const EXPIRED: &str = "EXPIRED";
}

/// Files a request of `kind` ([`kind::ACCESS`] or [`kind::ERASURE`]) for `subject` (the
/// caller when `None`): the person gets a confirmation link by email. Filing for someone
/// else needs the [`ON_BEHALF`] grant; `CONFLICT` while another request of the person is
/// open (of any kind), or when they are erased already.
pub async fn request(
    db: &DatabaseConnection,
    settings: &IdentitySettings,
    (actor, meta): (&Actor, &RequestMeta),
    subject: Option<Uuid>,
    kind: &'static str,
) -> ApiResult<data_subject_request::Model> {
    let tenant_id = actor.tenant()?;
    let me = actor.principal()?;
    let subject = subject.unwrap_or(me);
    if subject != me && !actor.has_grant(ON_BEHALF) {
        return Err(ApiError::Forbidden);
    }
    let person = user::Entity::find_by_id(subject)
        .filter(user::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("user"))?;
    if crate::domain::UserStatus::from_db(&person.status) == crate::domain::UserStatus::Erased {
        return Err(ApiError::Conflict(
            "this person's data is erased already".into(),
        ));
    }
    let org = tenant::Entity::find_by_id(tenant_id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("tenant"))?;
    let now = settings.clock.now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    expire_unconfirmed(&txn, now).await?;
    fail_stale(&txn, now).await?;
    // One open request per person, whatever its kind: an access request running beside
    // an erasure would keep a copy of what is being erased.
    let open = data_subject_request::Entity::find()
        .filter(data_subject_request::Column::TenantId.eq(tenant_id))
        .filter(data_subject_request::Column::SubjectId.eq(subject))
        .filter(data_subject_request::Column::Status.is_in([
            status::AWAITING_VERIFICATION,
            status::QUEUED,
            status::RUNNING,
        ]))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if open > 0 {
        return Err(ApiError::Conflict(
            "a data-subject request of this person is open already".into(),
        ));
    }
    let token = opaque_token("dsr")?;
    let row = data_subject_request::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        subject_id: Set(subject),
        kind: Set(kind.to_owned()),
        requested_by: Set(Some(me)),
        status: Set(status::AWAITING_VERIFICATION.to_owned()),
        verification_hash: Set(Some(token_hash(&token))),
        verification_expires_at: Set(Some(now + Duration::hours(VERIFICATION_HOURS))),
        verified_at: Set(None),
        due_at: Set(now + Duration::days(DUE_AFTER_DAYS)),
        completed_at: Set(None),
        file_id: Set(None),
        result: Set(None),
        failure: Set(None),
        created_at: Set(now),
        erasure_sealed: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let on_behalf = if subject == me {
        String::new()
    } else {
        " An administrator of your organisation asked for it on your behalf.".to_owned()
    };
    let link = format!(
        "{}/confirm-data-request?token={token}",
        settings.public_url.trim_end_matches('/')
    );
    let what = if kind == kind::ERASURE {
        "Your personal data at your {org} portal is to be erased"
    } else {
        "A copy of the personal data your {org} portal holds about you was requested"
    }
    .replace("{org}", &org.name);
    let after = if kind == kind::ERASURE {
        "Once confirmed, your account is closed for good: you are signed out everywhere, \
         your personal data is erased or anonymized (records the law requires us to keep \
         are kept, without anything more than needed), and you cannot sign in again. This \
         cannot be undone."
    } else {
        "Once confirmed, the copy is prepared and you can download it after signing in."
    };
    let text = format!(
        "Hello {name},\n\n{what}.{on_behalf} Confirm that you want this here (the link \
         works once, for {hours} hours):\n\n{link}\n\n{after} If you did not ask for \
         it, ignore this email: nothing happens without your confirmation.\n",
        name = person.display_name,
        hours = VERIFICATION_HOURS,
    );
    let subject_line = if kind == kind::ERASURE {
        format!("Confirm the erasure of your data at {}", org.name)
    } else {
        format!("Confirm your data request at {}", org.name)
    };
    mail::enqueue(
        &txn,
        &settings.data_key,
        Some(tenant_id),
        Email {
            to: person.email.clone(),
            subject: subject_line,
            text,
            unsubscribe: None,
        },
    )
    .await?;
    AuditEvent::success("data_subject_request.create", "user", subject)
        .with_details(json!({ "requestId": row.id, "kind": kind, "onBehalf": subject != me }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(row)
}

/// Requests whose confirmation link lapsed become `EXPIRED`.
async fn expire_unconfirmed(db: &impl ConnectionTrait, now: DateTime<Utc>) -> ApiResult<()> {
    data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::EXPIRED),
        )
        .col_expr(
            data_subject_request::Column::VerificationHash,
            Expr::value(Option::<String>::None),
        )
        .filter(data_subject_request::Column::Status.eq(status::AWAITING_VERIFICATION))
        .filter(data_subject_request::Column::VerificationExpiresAt.lt(now))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Confirmed access requests still queued or running long after they were confirmed
/// (their job died with its worker) become `FAILED`, so the person may ask again.
async fn fail_stale(db: &impl ConnectionTrait, now: DateTime<Utc>) -> ApiResult<()> {
    data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::FAILED),
        )
        .col_expr(
            data_subject_request::Column::Failure,
            Expr::value("the request did not finish; ask again"),
        )
        .col_expr(data_subject_request::Column::CompletedAt, Expr::value(now))
        .filter(data_subject_request::Column::Status.is_in([status::QUEUED, status::RUNNING]))
        // An erasure is never given up this way: once it began, only finishing it is
        // right; its job retries, and fails it itself when it must.
        .filter(data_subject_request::Column::Kind.eq(kind::ACCESS))
        .filter(
            data_subject_request::Column::VerifiedAt.lt(now - Duration::hours(STALE_AFTER_HOURS)),
        )
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Confirms a request with the token from its link: it is queued for the privacy job.
/// An unknown, used or lapsed token is `NOT_FOUND` (nothing tells them apart).
pub async fn verify(
    db: &DatabaseConnection,
    settings: &IdentitySettings,
    meta: &RequestMeta,
    token: &str,
) -> ApiResult<data_subject_request::Model> {
    let now = settings.clock.now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    expire_unconfirmed(&txn, now).await?;
    let found = data_subject_request::Entity::find()
        .filter(data_subject_request::Column::VerificationHash.eq(token_hash(token)))
        .filter(data_subject_request::Column::Status.eq(status::AWAITING_VERIFICATION))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("data-subject request"))?;
    // Nobody confirms anything about a person erased since the link was sent.
    let person = user::Entity::find_by_id(found.subject_id)
        .filter(user::Column::TenantId.eq(found.tenant_id))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if person.is_none_or(|p| {
        crate::domain::UserStatus::from_db(&p.status) == crate::domain::UserStatus::Erased
    }) {
        return Err(ApiError::NotFound("data-subject request"));
    }
    // Single use even when two confirmations race: only the one that moves the row on.
    let moved = data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::QUEUED),
        )
        .col_expr(
            data_subject_request::Column::VerificationHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(data_subject_request::Column::VerifiedAt, Expr::value(now))
        .filter(data_subject_request::Column::Id.eq(found.id))
        .filter(data_subject_request::Column::Status.eq(status::AWAITING_VERIFICATION))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if moved.rows_affected != 1 {
        return Err(ApiError::NotFound("data-subject request"));
    }
    let row = data_subject_request::Model {
        status: status::QUEUED.to_owned(),
        verification_hash: None,
        verified_at: Some(now),
        ..found
    };
    // The person proved they hold the address: the request now acts for them.
    let person = Actor::user(row.subject_id, row.tenant_id, Vec::new());
    let job = NewJob::new(kind::job(&row.kind), json!({ "requestId": row.id }))
        .acting_for(&person)
        .max_attempts(JOB_ATTEMPTS);
    jobs::enqueue(&txn, now, job).await?;
    AuditEvent::success("data_subject_request.confirm", "user", row.subject_id)
        .with_details(json!({ "requestId": row.id, "kind": row.kind }))
        .record(&txn, &person, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(row)
}

/// The request `id` if the caller may see it: their own (as the person or the one who
/// asked), or any of the tenant's with the [`ALL`] grant. `NOT_FOUND` otherwise.
pub async fn find(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
) -> ApiResult<data_subject_request::Model> {
    let row = data_subject_request::Entity::find_by_id(id)
        .filter(data_subject_request::Column::TenantId.eq(actor.tenant()?))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("data-subject request"))?;
    let own =
        actor.id.is_some() && (actor.id == Some(row.subject_id) || actor.id == row.requested_by);
    if own || actor.has_grant(ALL) {
        Ok(row)
    } else {
        Err(ApiError::NotFound("data-subject request"))
    }
}

/// The caller's requests (as the person or the one who asked), or all of the tenant's
/// with the [`ALL`] grant; oldest first.
pub async fn list(
    db: &DatabaseConnection,
    actor: &Actor,
    page: PageRequest,
) -> ApiResult<Page<data_subject_request::Model>> {
    let mut query = data_subject_request::Entity::find()
        .filter(data_subject_request::Column::TenantId.eq(actor.tenant()?));
    if !actor.has_grant(ALL) {
        let me = actor.principal()?;
        query = query.filter(
            sea_orm::Condition::any()
                .add(data_subject_request::Column::SubjectId.eq(me))
                .add(data_subject_request::Column::RequestedBy.eq(me)),
        );
    }
    page.fetch(db, query, data_subject_request::Column::Id)
        .await
}

/// The request `id` of `tenant_id`, for the privacy job.
pub async fn for_job(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<data_subject_request::Model> {
    data_subject_request::Entity::find_by_id(id)
        .filter(data_subject_request::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("data-subject request"))
}

/// Marks a queued request `RUNNING` (the privacy job took it); whether it was queued or
/// running already (a retry).
pub async fn start(db: &DatabaseConnection, id: Uuid) -> ApiResult<bool> {
    data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::RUNNING),
        )
        .filter(data_subject_request::Column::Id.eq(id))
        .filter(data_subject_request::Column::Status.eq(status::QUEUED))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    let row = data_subject_request::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(row.is_some_and(|r| r.status == status::RUNNING))
}

/// A finished access request's archive.
#[derive(Debug)]
pub struct Archive {
    /// Its `files` row.
    pub file_id: Uuid,
    /// Until when it can be downloaded.
    pub kept_until: DateTime<Utc>,
    /// What each domain held.
    pub result: Value,
}

/// Records a finished access request (in the transaction that records its archive's file
/// row): `COMPLETED` with the archive and what each domain held, audited as the person,
/// who is told by email (sealed with `data_key`) that it is ready.
pub async fn complete(
    db: &impl ConnectionTrait,
    request: &data_subject_request::Model,
    archive: Archive,
    (actor, meta): (&Actor, &RequestMeta),
    data_key: &portal_kit::secret::DataKey,
) -> ApiResult<bool> {
    let Archive {
        file_id,
        kept_until,
        result,
    } = archive;
    let now = Utc::now();
    let done = data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::COMPLETED),
        )
        .col_expr(data_subject_request::Column::FileId, Expr::value(file_id))
        .col_expr(
            data_subject_request::Column::Result,
            Expr::value(result.clone()),
        )
        .col_expr(data_subject_request::Column::CompletedAt, Expr::value(now))
        .filter(data_subject_request::Column::Id.eq(request.id))
        .filter(data_subject_request::Column::Status.eq(status::RUNNING))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    if done.rows_affected != 1 {
        return Ok(false);
    }
    AuditEvent::success("data_subject_request.complete", "user", request.subject_id)
        .with_details(json!({
            "requestId": request.id,
            "kind": request.kind,
            "fileId": file_id,
            "result": result,
        }))
        .record(db, actor, meta)
        .await?;
    let person = user::Entity::find_by_id(request.subject_id)
        .filter(user::Column::TenantId.eq(request.tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    if let Some(person) = person {
        let text = format!(
            "Hello {name},\n\nThe copy of your personal data that you confirmed is ready. \
             Sign in to the portal and open your data requests to download it; it can be \
             downloaded until {until}.\n",
            name = person.display_name,
            until = kept_until.format("%Y-%m-%d %H:%M UTC"),
        );
        mail::enqueue(
            db,
            data_key,
            Some(request.tenant_id),
            Email {
                to: person.email,
                subject: "Your personal data is ready to download".to_owned(),
                text,
                unsubscribe: None,
            },
        )
        .await?;
    }
    Ok(true)
}

/// Marks that erasing began for the running request `id`, keeping the person's
/// identifiers sealed (`sealed`) for the attempts after this one.
pub async fn begin_erasure(db: &DatabaseConnection, id: Uuid, sealed: String) -> ApiResult<()> {
    data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::ErasureSealed,
            Expr::value(sealed),
        )
        .filter(data_subject_request::Column::Id.eq(id))
        .filter(data_subject_request::Column::Status.eq(status::RUNNING))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Keeps what the running erasure `id` did so far (`result`), so a later attempt reports
/// it all.
pub async fn save_progress(db: &DatabaseConnection, id: Uuid, result: Value) -> ApiResult<()> {
    data_subject_request::Entity::update_many()
        .col_expr(data_subject_request::Column::Result, Expr::value(result))
        .filter(data_subject_request::Column::Id.eq(id))
        .filter(data_subject_request::Column::Status.eq(status::RUNNING))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Records a carried-out erasure request: `COMPLETED` with what every domain erased,
/// anonymized and kept, its sealed identifiers cleared, audited. No mail: the person's
/// address is gone; whoever filed the request follows it here.
pub async fn complete_erasure(
    db: &impl ConnectionTrait,
    request: &data_subject_request::Model,
    result: Value,
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<bool> {
    let done = data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::COMPLETED),
        )
        .col_expr(
            data_subject_request::Column::Result,
            Expr::value(result.clone()),
        )
        .col_expr(
            data_subject_request::Column::CompletedAt,
            Expr::value(Utc::now()),
        )
        .col_expr(
            data_subject_request::Column::ErasureSealed,
            Expr::value(Option::<String>::None),
        )
        .filter(data_subject_request::Column::Id.eq(request.id))
        .filter(data_subject_request::Column::Status.eq(status::RUNNING))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    if done.rows_affected != 1 {
        return Ok(false);
    }
    AuditEvent::success("data_subject_request.complete", "user", request.subject_id)
        .with_details(json!({
            "requestId": request.id,
            "kind": request.kind,
            "result": result,
        }))
        .record(db, actor, meta)
        .await?;
    Ok(true)
}

/// Refuses an erasure request because legal holds cover the person or what they are tied
/// to: `BLOCKED`, the holds (ids and targets, not their confidential reasons) in `result`,
/// audited. The person may ask again once the holds are released.
pub async fn block(
    db: &DatabaseConnection,
    request: &data_subject_request::Model,
    holds: Value,
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let moved = data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::BLOCKED),
        )
        .col_expr(
            data_subject_request::Column::Failure,
            Expr::value(
                "a legal hold covers this person or records they are tied to: nothing was \
                 erased; ask again once it is released",
            ),
        )
        .col_expr(
            data_subject_request::Column::Result,
            Expr::value(json!({ "holds": holds })),
        )
        .col_expr(
            data_subject_request::Column::CompletedAt,
            Expr::value(Utc::now()),
        )
        .filter(data_subject_request::Column::Id.eq(request.id))
        .filter(data_subject_request::Column::Status.eq(status::RUNNING))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if moved.rows_affected == 1 {
        AuditEvent::success("data_subject_request.block", "user", request.subject_id)
            .with_details(json!({
                "requestId": request.id,
                "kind": request.kind,
                "holds": holds,
            }))
            .record(&txn, actor, meta)
            .await?;
    }
    txn.commit().await.map_err(ApiError::from_db)
}

/// Records that a request could not be carried out.
pub async fn fail(
    db: &DatabaseConnection,
    request: &data_subject_request::Model,
    reason: &str,
    actor: &Actor,
    meta: &RequestMeta,
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let moved = data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::Status,
            Expr::value(status::FAILED),
        )
        .col_expr(data_subject_request::Column::Failure, Expr::value(reason))
        .col_expr(
            data_subject_request::Column::ErasureSealed,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            data_subject_request::Column::CompletedAt,
            Expr::value(Utc::now()),
        )
        .filter(data_subject_request::Column::Id.eq(request.id))
        .filter(data_subject_request::Column::Status.is_in([status::QUEUED, status::RUNNING]))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if moved.rows_affected == 1 {
        AuditEvent::failure(
            "data_subject_request.complete",
            "user",
            Some(request.subject_id),
        )
        .with_details(json!({ "requestId": request.id, "kind": request.kind, "reason": reason }))
        .record(&txn, actor, meta)
        .await?;
    }
    txn.commit().await.map_err(ApiError::from_db)
}
