//! The platform's part of an erasure: the copies of a person's data that travelled out of
//! the domains — domain event payloads (the audit details of each change, which
//! subscriptions and webhooks read), job arguments and errors, the mail outbox — are
//! scrubbed of their identifiers, and their audit subject key is shredded, which leaves
//! every audit event about them in place and verifying, and their personal data in those
//! events unreadable.

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use portal_entities::platform::{domain_event, email_outbox, job};

use super::{DataSubject, DomainErasure, ERASED, Erasure, mentioning, rewrite, scrub, scrubbed};
use crate::error::{ApiError, ApiResult};

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
