//! The platform's part of an erasure: the copies of a person's data that travelled out of
//! the domains — domain event payloads (the audit details of each change, which
//! subscriptions and webhooks read), job arguments and errors, the mail outbox — are
//! scrubbed of their identifiers, and their audit subject key is shredded, which leaves
//! every audit event about them in place and verifying, and their personal data in those
//! events unreadable.

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::platform::{
    audit_subject_key, domain_event, email_outbox, job, job_schedule, retention_setting, tenant_key,
};

use super::tenant::{TenantTable, delete_tables, erasure_of, table};
use super::{
    DataSubject, DomainErasure, ERASED, Erasure, TenantErasure, mentioning, rewrite, scrub,
    scrubbed,
};
use crate::db::BeginWrite;
use crate::envelope::TenantKeys;
use crate::error::{ApiError, ApiResult};
use crate::storage::FileStore;

/// Members of an event about the person that hold their profile, whatever their value.
const PROFILE_MEMBERS: [&str; 5] = ["email", "displayName", "name", "to", "from"];

/// `payload` of an event about the person with their profile members (top level, and in
/// `before` / `after`) replaced, then scrubbed of `identifiers`. Whether it changed.
fn scrub_event(payload: &mut Value, about_them: bool, identifiers: &[String]) -> bool {
    let mut changed = false;
    if about_them && let Value::Object(members) = payload {
        for side in [None, Some("before"), Some("after")] {
            let target = match side {
                None => Some(&mut *members),
                Some(side) => match members.get_mut(side) {
                    Some(Value::Object(inner)) => Some(inner),
                    _ => None,
                },
            };
            let Some(target) = target else { continue };
            for name in PROFILE_MEMBERS {
                if let Some(value) = target.get_mut(name)
                    && value.is_string()
                    && value.as_str() != Some(ERASED)
                {
                    *value = Value::String(ERASED.to_owned());
                    changed = true;
                }
            }
        }
    }
    scrub(payload, identifiers) | changed
}

/// Scrubs the tenant's domain events about the person or mentioning them; how many.
async fn events(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<u64> {
    let about = Condition::all()
        .add(domain_event::Column::SubjectType.eq("user"))
        .add(domain_event::Column::SubjectId.eq(subject.user_id));
    let candidates = Condition::any().add(about).add(mentioning(
        &Expr::col(domain_event::Column::Payload),
        identifiers,
    ));
    let select = domain_event::Entity::find()
        .filter(domain_event::Column::TenantId.eq(subject.tenant_id))
        .filter(candidates);
    rewrite(
        db,
        select,
        domain_event::Column::Id,
        |row: &domain_event::Model| row.id,
        |row: &domain_event::Model| {
            let about_them = row.subject_type == "user" && row.subject_id == Some(subject.user_id);
            let mut payload = row.payload.clone();
            scrub_event(&mut payload, about_them, identifiers).then(|| {
                domain_event::Entity::update_many()
                    .col_expr(domain_event::Column::Payload, Expr::value(payload))
            })
        },
    )
    .await
}

/// Scrubs the tenant's jobs whose arguments or last error mention the person; how many.
async fn jobs(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<u64> {
    let candidates = Condition::any()
        .add(mentioning(&Expr::col(job::Column::Payload), identifiers))
        .add(mentioning(&Expr::col(job::Column::LastError), identifiers));
    let select = job::Entity::find()
        .filter(job::Column::TenantId.eq(subject.tenant_id))
        .filter(candidates);
    rewrite(
        db,
        select,
        job::Column::Id,
        |row: &job::Model| row.id,
        |row: &job::Model| {
            let mut payload = row.payload.clone();
            let changed = scrub(&mut payload, identifiers);
            let error = row
                .last_error
                .as_deref()
                .and_then(|error| scrubbed(error, identifiers));
            if !changed && error.is_none() {
                return None;
            }
            let mut update =
                job::Entity::update_many().col_expr(job::Column::Payload, Expr::value(payload));
            if let Some(error) = error {
                update = update.col_expr(job::Column::LastError, Expr::value(error));
            }
            Some(update)
        },
    )
    .await
}

/// Deletes the tenant's outbox mail to the person (sent, or not yet: they are gone); how
/// many.
async fn outbox(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<u64> {
    let addresses: Vec<String> = identifiers
        .iter()
        .filter(|id| id.contains('@'))
        .map(|id| id.trim().to_lowercase())
        .collect();
    if addresses.is_empty() {
        return Ok(0);
    }
    let deleted = email_outbox::Entity::delete_many()
        .filter(email_outbox::Column::TenantId.eq(subject.tenant_id))
        .filter(
            Expr::expr(Func::lower(Expr::col(email_outbox::Column::Recipient))).is_in(addresses),
        )
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(deleted.rows_affected)
}

/// The platform's part of erasing `subject`, in `db` (one transaction): event payloads
/// and job arguments scrubbed, outbox mail deleted, the audit subject key shredded.
pub async fn erase(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    erasure: &Erasure,
) -> ApiResult<DomainErasure> {
    let identifiers = &erasure.identifiers;
    let mut done = DomainErasure::default();
    done.anonymized(
        "domainEvents",
        events(db, subject, identifiers).await?,
        "event payloads about or mentioning them: their address and name replaced; the \
         events stay for their consumers' order and history",
    );
    done.anonymized(
        "jobs",
        jobs(db, subject, identifiers).await?,
        "job arguments and errors mentioning them: their address and name replaced",
    );
    done.erased(
        "emailOutbox",
        outbox(db, subject, identifiers).await?,
        "mail to them, sent or waiting",
    );
    let shredded =
        crate::audit::personal::shred(db, Some(subject.tenant_id), subject.user_id).await?;
    done.kept(
        "auditEvents",
        crate::audit::personal::count_about(db, subject.tenant_id, subject.user_id).await?,
        "the audit trail is kept for accountability and security (GDPR Art. 5(2), \
         Art. 17(3)(b) and (e)); the personal data in it was sealed to their own key, \
         which is destroyed, so the events still verify and no longer say who they were",
    );
    done.erased(
        "auditSubjectKey",
        u64::from(shredded),
        "their audit key: what it sealed can no longer be read",
    );
    Ok(done)
}

/// The platform's tables of a tenant, deleted when it is off-boarded.
fn tenant_tables() -> Vec<Box<dyn TenantTable>> {
    vec![
        table::<domain_event::Entity>(domain_event::Column::TenantId, &[]),
        table::<job::Entity>(job::Column::TenantId, &[]),
        table::<job_schedule::Entity>(job_schedule::Column::TenantId, &[]),
        table::<email_outbox::Entity>(email_outbox::Column::TenantId, &[]),
        table::<retention_setting::Entity>(retention_setting::Column::TenantId, &[]),
    ]
}

/// Stops the work of `tenant` before its data is deleted: its queued and finished jobs and
/// its schedules are deleted, so nothing starts that could write rows back (a job running
/// now finishes; the deletion after it finds what it wrote). How many of each.
pub async fn halt_tenant(db: &DatabaseConnection, tenant: Uuid) -> ApiResult<(u64, u64)> {
    let schedules = job_schedule::Entity::delete_many()
        .filter(job_schedule::Column::TenantId.eq(tenant))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    let jobs = job::Entity::delete_many()
        .filter(job::Column::TenantId.eq(tenant))
        .filter(job::Column::State.ne(crate::jobs::JobState::Running.as_str()))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    Ok((jobs, schedules))
}

/// The platform's part of off-boarding `tenant`, after every domain deleted its rows: the
/// tenant's stored files (objects, then rows) and its data keys destroyed (crypto-shredding:
/// whatever they sealed — a stray copy, a backup — no longer opens, and nothing new can be
/// sealed for the tenant; the destroyed versions stay as markers), then in one transaction
/// — audited in the tenant's log as `platform.tenant_erase` — its domain events, jobs,
/// schedules and outbox mail deleted, and every audit subject key of the tenant shredded:
/// the audit events stay and verify, and say nothing readable about anyone. Idempotent.
pub async fn erase_tenant(
    db: &DatabaseConnection,
    (files, keys): (&FileStore, &TenantKeys),
    tenant: Uuid,
    by: &TenantErasure,
) -> ApiResult<DomainErasure> {
    let removed = crate::storage::purge_tenant(db, files, tenant).await?;
    let live_keys = tenant_key::Entity::find()
        .filter(tenant_key::Column::TenantId.eq(tenant))
        .filter(tenant_key::Column::DestroyedAt.is_null())
        .count(db)
        .await
        .map_err(ApiError::from_db)?;
    let any_key = tenant_key::Entity::find()
        .filter(tenant_key::Column::TenantId.eq(tenant))
        .count(db)
        .await
        .map_err(ApiError::from_db)?;
    // Destroyed once (a retry finds the markers); a tenant that never sealed anything gets
    // a marker so nothing can be sealed for it later.
    let destroyed = if live_keys > 0 || any_key == 0 {
        keys.destroy(tenant, &by.actor, &by.meta).await?
    } else {
        0
    };
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let mut deleted = vec![
        ("files".to_owned(), removed),
        ("tenant_keys (destroyed)".to_owned(), destroyed),
    ];
    let shredded = audit_subject_key::Entity::update_many()
        .col_expr(
            audit_subject_key::Column::PublicKey,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            audit_subject_key::Column::PrivateKeySealed,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            audit_subject_key::Column::ShreddedAt,
            Expr::value(Utc::now()),
        )
        .filter(audit_subject_key::Column::TenantId.eq(tenant))
        .filter(audit_subject_key::Column::ShreddedAt.is_null())
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    deleted.push(("audit_subject_keys".to_owned(), shredded));
    // Attempts at the tenant from nobody in particular (an address that is no account)
    // are sealed to its shared subject: shredded too, even if it never had a key.
    let unattributed = crate::audit::personal::unattributed(Some(tenant));
    crate::audit::personal::shred(&txn, Some(tenant), unattributed).await?;
    deleted.extend(delete_tables(&txn, tenant, &tenant_tables()).await?);
    deleted.retain(|(_, count)| *count > 0);
    if !deleted.is_empty() {
        super::tenant::record(&txn, ("platform.tenant_erase", tenant), &deleted, by).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(erasure_of(&deleted))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ids() -> Vec<String> {
        vec!["Bob@Acme.example".into(), "Bob Builder".into()]
    }

    #[test]
    fn scrubs_profile_members_of_events_about_them() {
        let mut payload = json!({
            "email": "someone@else.example",
            "before": { "displayName": "Robert" },
            "after": { "displayName": "Bob Builder" },
            "roles": ["viewer"]
        });
        assert!(scrub_event(&mut payload, true, &ids()));
        assert_eq!(
            payload,
            json!({
                "email": ERASED,
                "before": { "displayName": ERASED },
                "after": { "displayName": ERASED },
                "roles": ["viewer"]
            })
        );
    }

    #[test]
    fn scrubs_mentions_in_events_about_others() {
        let mut payload = json!({
            "note": "invited bob@acme.example today",
            "name": " bob builder ",
            "who": "Bob Builder",
            "other": "Bobby",
        });
        assert!(scrub_event(&mut payload, false, &ids()));
        assert_eq!(
            payload,
            json!({
                "note": format!("invited {ERASED} today"),
                "name": ERASED,
                "who": "Bob Builder",
                "other": "Bobby",
            })
        );
        let mut untouched = json!({ "n": 1, "s": "nothing here" });
        assert!(!scrub_event(&mut untouched, false, &ids()));
    }
}
