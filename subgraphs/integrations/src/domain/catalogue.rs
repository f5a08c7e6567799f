//! The events a webhook endpoint may subscribe to, and what of each leaves the portal.
//!
//! A webhook body is `{ "type", "timestamp", "data" }` (the shape Standard Webhooks
//! recommends). `data` always names the event and its subject (`eventId`, `subjectType`,
//! `id`); in `FULL` mode it also carries the event's payload fields, each only when the
//! endpoint's owner may read the field coordinate that guards it — a field with no
//! guarding coordinate here never leaves. An event reaches an endpoint only when its
//! owner may read the subject's `id` and, for subjects with row rules, holds the grant to
//! read every row of that kind (an endpoint is not a person taking part in a thread).
//!
//! Pure functions over plain values: the caller says what the owner may read.

use serde_json::{Map, Value, json};

/// The event type of a test delivery (`pingWebhookEndpoint`); never a domain event.
pub const PING: &str = "webhook.ping";

/// One event type endpoints may subscribe to.
#[derive(Debug)]
pub struct WebhookEvent {
    /// The domain event type (`docs/events.md`).
    pub event_type: &'static str,
    /// The GraphQL type its subject is read as.
    pub subject: &'static str,
    /// The grant (`kit::policy::GRANTS`) the owner needs when the subject has row rules.
    pub rows: Option<&'static str>,
    /// Payload key → the coordinate guarding it. `before` and `after` holding objects
    /// are the subject's fields: each key `k` is guarded by `<subject>.<k>`.
    pub fields: &'static [(&'static str, &'static str)],
}

const ACCOUNT_ROWS: Option<&str> = Some("Account.all");
const THREAD_ROWS: Option<&str> = Some("Thread.all");
const REPORT_ROWS: Option<&str> = Some("ReportDefinition.all");

const INVOICE: &[(&str, &str)] = &[
    ("invoiceId", "Invoice.id"),
    ("number", "Invoice.number"),
    ("amount", "Invoice.amount"),
    ("currency", "Invoice.currency"),
    ("dueDate", "Invoice.dueDate"),
    ("reason", "Invoice.voidReason"),
    ("entryId", "LedgerEntry.id"),
];

/// Every event type a webhook endpoint may subscribe to.
pub const CATALOGUE: &[WebhookEvent] = &[
    WebhookEvent {
        event_type: "account.created",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: &[("openingEntryId", "LedgerEntry.id")],
    },
    WebhookEvent {
        event_type: "account.updated",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: &[],
    },
    WebhookEvent {
        event_type: "account.member.added",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: &[("userId", "User.id")],
    },
    WebhookEvent {
        event_type: "account.member.removed",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: &[("userId", "User.id")],
    },
    WebhookEvent {
        event_type: "account.ledger.posted",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: &[
            ("entryId", "LedgerEntry.id"),
            ("kind", "LedgerEntry.kind"),
            ("amount", "LedgerEntry.amount"),
            ("currency", "LedgerEntry.currency"),
            ("reference", "LedgerEntry.reference"),
        ],
    },
    WebhookEvent {
        event_type: "account.invoice.issued",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: INVOICE,
    },
    WebhookEvent {
        event_type: "account.invoice.voided",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: INVOICE,
    },
    WebhookEvent {
        event_type: "account.invoice.settled",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: INVOICE,
    },
    WebhookEvent {
        event_type: "account.payment.recorded",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: &[
            ("paymentId", "Payment.id"),
            ("invoiceId", "Invoice.id"),
            ("amount", "Payment.amount"),
            ("currency", "Payment.currency"),
            ("entryId", "LedgerEntry.id"),
        ],
    },
    WebhookEvent {
        event_type: "account.usage.recorded",
        subject: "Account",
        rows: ACCOUNT_ROWS,
        fields: &[
            ("accepted", "UsageBatch.accepted"),
            ("duplicates", "UsageBatch.duplicates"),
        ],
    },
    WebhookEvent {
        event_type: "external_ref.linked",
        subject: "ExternalRef",
        rows: None,
        fields: &[
            ("integrationId", "ExternalRef.integration"),
            ("accountId", "Account.id"),
        ],
    },
    WebhookEvent {
        event_type: "integration.created",
        subject: "Integration",
        rows: None,
        fields: &[],
    },
    WebhookEvent {
        event_type: "integration.updated",
        subject: "Integration",
        rows: None,
        fields: &[],
    },
    WebhookEvent {
        event_type: "integration.health_changed",
        subject: "Integration",
        rows: None,
        fields: &[
            ("before", "Integration.health"),
            ("after", "Integration.health"),
            ("circuitOpenUntil", "Integration.circuitOpenUntil"),
            ("error", "Integration.lastError"),
        ],
    },
    WebhookEvent {
        event_type: "integration_sync.finished",
        subject: "Integration",
        rows: None,
        fields: &[
            ("runId", "IntegrationSyncRun.id"),
            ("mode", "IntegrationSyncRun.mode"),
            ("status", "IntegrationSyncRun.status"),
            ("created", "IntegrationSyncRun.createdCount"),
            ("updated", "IntegrationSyncRun.updatedCount"),
            ("unchanged", "IntegrationSyncRun.unchangedCount"),
            ("deleted", "IntegrationSyncRun.deletedCount"),
            ("failed", "IntegrationSyncRun.failedCount"),
            ("error", "IntegrationSyncRun.error"),
        ],
    },
    WebhookEvent {
        event_type: "user.created",
        subject: "User",
        rows: None,
        fields: &[],
    },
    WebhookEvent {
        event_type: "user.updated",
        subject: "User",
        rows: None,
        fields: &[],
    },
    WebhookEvent {
        event_type: "thread.created",
        subject: "Thread",
        rows: THREAD_ROWS,
        fields: &[("firstMessageId", "Message.id")],
    },
    WebhookEvent {
        event_type: "thread.updated",
        subject: "Thread",
        rows: THREAD_ROWS,
        fields: &[("cause", "Thread.status")],
    },
    WebhookEvent {
        event_type: "thread.assigned",
        subject: "Thread",
        rows: THREAD_ROWS,
        fields: &[("before", "Thread.assignee"), ("after", "Thread.assignee")],
    },
    WebhookEvent {
        event_type: "message.posted",
        subject: "Message",
        rows: THREAD_ROWS,
        fields: &[
            ("threadId", "Message.thread"),
            ("replyToId", "Message.replyTo"),
            ("attachmentIds", "Message.attachments"),
        ],
    },
    WebhookEvent {
        event_type: "report_run.completed",
        subject: "ReportRun",
        rows: REPORT_ROWS,
        fields: &[
            ("definitionId", "ReportRun.definition"),
            ("rows", "ReportRun.rowCount"),
            ("bytes", "ReportRun.bytes"),
        ],
    },
    WebhookEvent {
        event_type: "report_run.failed",
        subject: "ReportRun",
        rows: REPORT_ROWS,
        fields: &[
            ("definitionId", "ReportRun.definition"),
            ("reason", "ReportRun.error"),
        ],
    },
];

/// The catalogue entry of `event_type`, if endpoints may subscribe to it.
pub fn find(event_type: &str) -> Option<&'static WebhookEvent> {
    CATALOGUE.iter().find(|e| e.event_type == event_type)
}

/// What a payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// The event's fields the owner may read.
    Full,
    /// Type, subject and time only: the receiver reads the rest through the API.
    Thin,
}

impl PayloadMode {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Thin => "THIN",
        }
    }

    /// Parses the storage form; anything unknown reads as `Thin` (the least leaves).
    pub fn from_db(value: &str) -> Self {
        match value {
            "FULL" => Self::Full,
            _ => Self::Thin,
        }
    }
}

/// What the owner of an endpoint may read now.
pub trait Rights {
    /// Whether the owner may read `coordinate` (`Type.field`).
    fn may_read(&self, coordinate: &str) -> bool;
    /// Whether the owner holds `grant` (a name of `kit::policy::GRANTS`).
    fn holds(&self, grant: &str) -> bool;
}

/// The envelope facts of one domain event.
#[derive(Clone, Copy, Debug)]
pub struct Occurrence<'a> {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// Its subject's id.
    pub subject_id: Option<uuid::Uuid>,
    /// When it happened.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// The event's payload.
    pub payload: &'a Value,
}

/// The body delivered to an endpoint whose owner has `rights`, or `None` when the
/// owner may not learn of the event at all.
pub fn body(
    event: &WebhookEvent,
    occurrence: Occurrence<'_>,
    mode: PayloadMode,
    rights: &dyn Rights,
) -> Option<Value> {
    let visible = rights.may_read(&format!("{}.id", event.subject))
        && event.rows.is_none_or(|grant| rights.holds(grant));
    if !visible {
        return None;
    }
    let mut data = Map::new();
    data.insert("eventId".into(), json!(occurrence.event_id));
    data.insert("subjectType".into(), json!(event.subject));
    data.insert("id".into(), json!(occurrence.subject_id));
    if mode == PayloadMode::Full
        && let Some(payload) = occurrence.payload.as_object()
    {
        for (key, value) in payload {
            if let Some(kept) = trim_field(event, key, value, rights) {
                data.insert(key.clone(), kept);
            }
        }
    }
    Some(json!({
        "type": event.event_type,
        "timestamp": timestamp(occurrence.occurred_at),
        "data": data,
    }))
}

/// The body of a test delivery to `endpoint_id`.
pub fn ping_body(endpoint_id: uuid::Uuid, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "type": PING,
        "timestamp": timestamp(at),
        "data": { "endpointId": endpoint_id },
    })
}

/// RFC 3339 with milliseconds, in UTC.
fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The part of one payload field the owner may read, or `None`.
fn trim_field(
    event: &WebhookEvent,
    key: &str,
    value: &Value,
    rights: &dyn Rights,
) -> Option<Value> {
    if let Some((_, coordinate)) = event.fields.iter().find(|(k, _)| *k == key) {
        return rights.may_read(coordinate).then(|| value.clone());
    }
    if !matches!(key, "before" | "after") {
        return None;
    }
    // A change: the subject's fields as they were and are.
    let fields = value.as_object()?;
    let kept: Map<String, Value> = fields
        .iter()
        .filter(|(field, _)| rights.may_read(&format!("{}.{field}", event.subject)))
        .map(|(field, v)| (field.clone(), v.clone()))
        .collect();
    Some(Value::Object(kept))
}

/// Every coordinate the catalogue names (subjects' `id` and the listed guards; a test
/// keeps them real fields of the supergraph). Fields of `before`/`after` are the
/// subject's own and are asked about as they come.
pub fn coordinates() -> Vec<String> {
    let mut all: Vec<String> = CATALOGUE
        .iter()
        .flat_map(|e| {
            std::iter::once(format!("{}.id", e.subject))
                .chain(e.fields.iter().map(|(_, c)| (*c).to_owned()))
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    struct Granted {
        readable: BTreeSet<&'static str>,
        grants: BTreeSet<&'static str>,
    }

    impl Rights for Granted {
        fn may_read(&self, coordinate: &str) -> bool {
            self.readable.contains(coordinate)
        }
        fn holds(&self, grant: &str) -> bool {
            self.grants.contains(grant)
        }
    }

    fn occurrence(payload: &Value) -> Occurrence<'_> {
        Occurrence {
            event_id: uuid::Uuid::nil(),
            subject_id: Some(uuid::Uuid::max()),
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            payload,
        }
    }

    #[test]
    fn only_fields_the_owner_may_read_leave() {
        let event = find("account.updated").expect("listed");
        let payload = json!({
            "before": { "name": "Old", "status": "OPEN" },
            "after": { "name": "New", "status": "CLOSED" },
            "unlisted": "never sent",
        });
        let rights = Granted {
            readable: ["Account.id", "Account.status"].into(),
            grants: ["Account.all"].into(),
        };
        let body = body(event, occurrence(&payload), PayloadMode::Full, &rights).expect("sent");
        assert_eq!(
            body["data"],
            json!({
                "eventId": uuid::Uuid::nil(),
                "subjectType": "Account",
                "id": uuid::Uuid::max(),
                "before": { "status": "OPEN" },
                "after": { "status": "CLOSED" },
            })
        );
        assert_eq!(body["type"], "account.updated");
        assert_eq!(body["timestamp"], "1970-01-01T00:00:00.000Z");

        let thin =
            super::body(event, occurrence(&payload), PayloadMode::Thin, &rights).expect("sent");
        assert_eq!(thin["data"].as_object().map(Map::len), Some(3));
    }

    #[test]
    fn an_owner_who_cannot_see_the_subject_or_every_row_gets_nothing() {
        let event = find("account.ledger.posted").expect("listed");
        let payload = json!({ "amount": "12.00" });
        let no_id = Granted {
            readable: ["LedgerEntry.amount"].into(),
            grants: ["Account.all"].into(),
        };
        assert!(body(event, occurrence(&payload), PayloadMode::Full, &no_id).is_none());
        let some_rows = Granted {
            readable: ["Account.id", "LedgerEntry.amount"].into(),
            grants: BTreeSet::new(),
        };
        assert!(body(event, occurrence(&payload), PayloadMode::Thin, &some_rows).is_none());
    }

    #[test]
    fn every_listed_type_is_a_past_tense_event_type_and_unique() {
        let mut seen = BTreeSet::new();
        for event in CATALOGUE {
            assert!(seen.insert(event.event_type), "{} twice", event.event_type);
            assert!(event.event_type.contains('.'), "{}", event.event_type);
        }
        assert!(find(PING).is_none());
    }
}
