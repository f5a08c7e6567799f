//! Domain events — the transactional outbox every later consumer reads (subscriptions,
//! webhooks, notifications, projections): one `domain_events` row per state change,
//! written in the same transaction as the change by the one helper that also writes its
//! audit row ([`crate::audit::AuditEvent::record`]), so a committed change always has its
//! event and a rolled-back one never does. Nothing is dual-written.
//!
//! An event's type is its audit action in the past tense (`account.update` →
//! `account.updated`); `docs/events.md` is the versioned catalogue, and a test keeps it
//! complete. Payloads never hold secrets: they are the change's non-secret details.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::platform::domain_event;

pub mod feed;
pub mod sequence;

/// The PostgreSQL channel a committed event is announced on (payload: its id).
pub const NOTIFY_CHANNEL: &str = "portal_events";

use crate::actor::Actor;
use crate::error::ApiError;

/// Version of the event envelope and payloads described in `docs/events.md`.
pub const SCHEMA_VERSION: i32 = 1;

/// The event type of a state change recorded under the audit `action`: the same subject,
/// the verb in the past tense (`account.member.add` → `account.member.added`).
pub fn event_type(action: &str) -> String {
    let (subject, verb) = action.rsplit_once('.').unwrap_or(("", action));
    let past = match verb {
        "sign_in" => "signed_in".to_owned(),
        "sign_out" => "signed_out".to_owned(),
        "step_up" => "stepped_up".to_owned(),
        "scan" => "scanned".to_owned(),
        "sweep" => "swept".to_owned(),
        "recovery_codes" => "recovery_codes_replaced".to_owned(),
        "refresh_reuse" => "refresh_reuse_detected".to_owned(),
        _ => {
            // The last word of a compound verb is the one to inflect
            // (`provider_configure` → `provider_configured`).
            let (head, word) = verb.rsplit_once('_').map_or(("", verb), |(h, w)| (h, w));
            let inflected = match word {
                "reset" => "reset".to_owned(),
                w if w.ends_with('e') => format!("{w}d"),
                w if w.ends_with("it") && w != "edit" => format!("{w}ted"),
                w => format!("{w}ed"),
            };
            if head.is_empty() {
                inflected
            } else {
                format!("{head}_{inflected}")
            }
        }
    };
    if subject.is_empty() {
        past
    } else {
        format!("{subject}.{past}")
    }
}

/// One domain event about to be written.
pub(crate) struct NewEvent<'a> {
    pub tenant_id: Option<Uuid>,
    pub event_type: String,
    pub subject_type: &'a str,
    pub subject_id: Option<Uuid>,
    pub actor: &'a Actor,
    pub actor_kind: &'a str,
    pub payload: Value,
    pub occurred_at: DateTime<Utc>,
}

/// Writes `event` through `db` (the transaction of the change).
pub(crate) async fn write<C: ConnectionTrait>(db: &C, event: NewEvent<'_>) -> Result<(), ApiError> {
    let id = Uuid::now_v7();
    domain_event::ActiveModel {
        id: Set(id),
        tenant_id: Set(event.tenant_id),
        event_type: Set(event.event_type),
        subject_type: Set(event.subject_type.to_owned()),
        subject_id: Set(event.subject_id),
        actor_kind: Set(event.actor_kind.to_owned()),
        actor_id: Set(event.actor.id),
        schema_version: Set(SCHEMA_VERSION),
        payload: Set(event.payload),
        occurred_at: Set(event.occurred_at),
        // Assigned after commit, in commit order ([`sequence`]).
        sequence: sea_orm::ActiveValue::NotSet,
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    // Announced at commit, never for a rolled-back change.
    crate::notify::announce(db, NOTIFY_CHANNEL, Some(&id.to_string())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_actions_in_the_past_tense() {
        for (action, expected) in [
            ("account.create", "account.created"),
            ("account.update", "account.updated"),
            ("account.member.add", "account.member.added"),
            ("message.post", "message.posted"),
            ("message.edit", "message.edited"),
            ("role.unassign", "role.unassigned"),
            ("external_ref.link", "external_ref.linked"),
            ("report_run.request", "report_run.requested"),
            ("sso.provider_configure", "sso.provider_configured"),
            ("user.email_change_request", "user.email_change_requested"),
            ("auth.password_reset", "auth.password_reset"),
            ("retention.sweep", "retention.swept"),
            ("auth.sign_in", "auth.signed_in"),
            ("mfa.recovery_codes", "mfa.recovery_codes_replaced"),
            ("api_key.revoke", "api_key.revoked"),
            ("policy.add", "policy.added"),
            ("attachment.scan", "attachment.scanned"),
        ] {
            assert_eq!(event_type(action), expected, "{action}");
        }
    }
}
