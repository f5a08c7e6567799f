//! Stripe (API v1, `docs/vendors/stripe.md`): customers, invoices, invoice payments and
//! refunds.
//!
//! - **Backfill** walks the list endpoints (`/v1/customers`, `/v1/invoices`,
//!   `/v1/invoice_payments`, `/v1/refunds`), 100 at a time, in that order (an invoice's
//!   customer is linked before the invoice arrives), then goes on as incremental sync
//!   from the newest event there was when the backfill started — so nothing that changed
//!   during the backfill is missed.
//! - **Incremental** reads `/v1/events` of the types below after the last event applied,
//!   oldest first (`ending_before`, pages walked from their end), and applies each
//!   event's object. Stripe keeps events for 30 days: an older cursor needs a backfill.
//! - **Push** updates a customer (`POST /v1/customers/{id}`) with an `Idempotency-Key`.
//! - **Webhooks** are verified as Stripe signs them: `Stripe-Signature: t=…,v1=…`, HMAC
//!   SHA-256 of `"{t}.{body}"` under the whole `whsec_…` string, any `v1` matching,
//!   at most five minutes old.
//!
//! Every request pins `Stripe-Version`. Events carry their object as rendered in the API
//! version current when the event was made, so the sync reads only fields whose shape
//! has not changed since `2025-03-31.basil` (ids, amounts, currency, status, number,
//! periods, due date, metadata, name, email).

use std::time::Instant;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use super::limits::{Limit, Rate};
use super::remote::{Call, Remote, RemoteError};
use super::{
    ConnectionInfo, Connector, Credentials, Inbound, Page, Push, Record, WebhookRejection,
};

/// The provider name.
pub const PROVIDER: &str = "stripe";
/// Stripe's API.
pub const BASE_URL: &str = "https://api.stripe.com";
/// The API version the sync reads objects in.
pub const API_VERSION: &str = "2026-07-29.dahlia";
/// Records per page (Stripe's largest).
const PAGE_SIZE: &str = "100";
/// How old a webhook signature may be, in seconds (Stripe's SDKs' default).
pub const TOLERANCE_SECS: i64 = 300;
/// Backfill phases, in order: each list endpoint.
const PHASES: [&str; 4] = ["customers", "invoices", "invoice_payments", "refunds"];
/// The event types incremental sync reads.
pub const EVENT_TYPES: [&str; 11] = [
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "invoice.finalized",
    "invoice.updated",
    "invoice.paid",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice_payment.paid",
    "refund.created",
    "refund.updated",
];

/// A Stripe account, through its API key.
pub struct Stripe {
    base: String,
    api_key: Option<String>,
    webhook_secret: Option<String>,
    remote: Remote,
    /// The account's key and pace (client-side).
    paced: (String, Rate),
}

impl Stripe {
    /// Stripe at `base` with `credentials`, paced as `paced` says.
    pub fn new(
        base: &str,
        credentials: &Credentials,
        remote: Remote,
        paced: (String, Rate),
    ) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            api_key: credentials.api_key.clone(),
            webhook_secret: credentials.webhook_secret.clone(),
            remote,
            paced,
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        form: Option<&[(String, String)]>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, RemoteError> {
        let key = self
            .api_key
            .as_deref()
            .ok_or_else(|| RemoteError::Unauthorized("no API key is configured".into()))?;
        let mut headers = vec![
            ("authorization", format!("Bearer {key}")),
            ("stripe-version", API_VERSION.to_owned()),
        ];
        if let Some(idempotency_key) = idempotency_key {
            headers.push(("idempotency-key", idempotency_key.to_owned()));
        }
        let call = Call {
            method,
            url: format!("{}{path}", self.base),
            query,
            form,
            json: None,
            headers: &headers,
            should_retry_header: Some("stripe-should-retry"),
            classify: None,
            limit: Some(Limit {
                bucket: "stripe",
                key: &self.paced.0,
                rate: self.paced.1,
            }),
        };
        self.remote.send(&call).await
    }

    async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, RemoteError> {
        self.request(Method::GET, path, query, None, None).await
    }

    /// The newest event now, if any: its id and when it was made.
    async fn newest_event(&self) -> Result<(Option<String>, Option<i64>), RemoteError> {
        let page = self.get("/v1/events", &[pair("limit", "1")]).await?;
        let newest = list(&page)?.first();
        Ok((
            newest
                .and_then(|event| event.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            newest
                .and_then(|event| event.get("created"))
                .and_then(Value::as_i64),
        ))
    }

    async fn pull_list(
        &self,
        phase: &str,
        after: Option<&str>,
        cursor: &Value,
    ) -> Result<Page, RemoteError> {
        let mut query = vec![pair("limit", PAGE_SIZE)];
        if let Some(after) = after {
            query.push(pair("starting_after", after));
        }
        let page = self.get(&format!("/v1/{phase}"), &query).await?;
        let objects = list(&page)?;
        let records = objects
            .iter()
            .map(|object| record(object, false))
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = page
            .get("has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut next = cursor.clone();
        match (has_more, records.last()) {
            (true, Some(last)) => next["after"] = json!(last.external_id),
            _ => {
                let following = PHASES
                    .iter()
                    .position(|p| *p == phase)
                    .and_then(|at| PHASES.get(at + 1))
                    .copied()
                    .unwrap_or("events");
                next["phase"] = json!(following);
                next["after"] = Value::Null;
            }
        }
        Ok(Page {
            records,
            next,
            more: true,
        })
    }

    async fn pull_events(&self, cursor: &Value) -> Result<Page, RemoteError> {
        let mut query = vec![pair("limit", PAGE_SIZE)];
        for (at, kind) in EVENT_TYPES.iter().enumerate() {
            query.push((format!("types[{at}]"), (*kind).to_owned()));
        }
        let mut last = cursor.get("events").and_then(Value::as_str);
        // When the last event applied was made (Unix seconds): where to go on from if
        // Stripe no longer keeps that event (events are kept 30 days).
        let last_at = cursor.get("eventsAt").and_then(Value::as_i64);
        // Whether newer pages than the one applied exist (found walking back to the
        // oldest).
        let mut walked = false;
        let mut answered = None;
        if let Some(id) = last {
            let mut after = query.clone();
            after.push(pair("ending_before", id));
            match self.get("/v1/events", &after).await {
                Ok(page) => answered = Some(page),
                // The cursor's event aged out: go on from its time instead (writes are
                // idempotent, so the events of that second again change nothing).
                Err(RemoteError::Rejected { .. }) if last_at.is_some() => last = None,
                Err(err) => return Err(err),
            }
        }
        let page = if let Some(page) = answered {
            page
        } else {
            // Every event there is now (or since `eventsAt`) came after the cursor:
            // start from the oldest page (pages come newest first, so walk to the last).
            if let Some(at) = last_at {
                query.push((String::from("created[gte]"), at.to_string()));
            }
            let mut page = self.get("/v1/events", &query).await?;
            while page.get("has_more").and_then(Value::as_bool) == Some(true) {
                let Some(oldest) = list(&page)?
                    .last()
                    .and_then(|e| e.get("id"))
                    .and_then(Value::as_str)
                else {
                    break;
                };
                let mut older = query.clone();
                older.push(pair("starting_after", oldest));
                page = self.get("/v1/events", &older).await?;
                walked = true;
            }
            page
        };
        let events = list(&page)?;
        let mut records = Vec::with_capacity(events.len());
        for event in events.iter().rev() {
            let kind = event
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let object = event
                .pointer("/data/object")
                .ok_or_else(|| RemoteError::Malformed("an event without data.object".into()))?;
            records.push(record(object, kind.ends_with(".deleted"))?);
        }
        let mut next = cursor.clone();
        next["phase"] = json!("events");
        if let Some(newest) = events.first() {
            if let Some(id) = newest.get("id").and_then(Value::as_str) {
                next["events"] = json!(id);
            }
            if let Some(at) = newest.get("created").and_then(Value::as_i64) {
                next["eventsAt"] = json!(at);
            }
        }
        // Pages after `ending_before` are the ones just newer; `has_more` says more
        // newer ones exist.
        let more = walked
            || (last.is_some() && page.get("has_more").and_then(Value::as_bool) == Some(true));
        Ok(Page {
            records,
            next,
            more,
        })
    }
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// The `data` of a list envelope.
fn list(page: &Value) -> Result<&Vec<Value>, RemoteError> {
    page.get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| RemoteError::Malformed("a list without data".into()))
}

/// A Stripe object as a record (`object` names its type).
fn record(object: &Value, deleted: bool) -> Result<Record, RemoteError> {
    let id = object.get("id").and_then(Value::as_str);
    let kind = object.get("object").and_then(Value::as_str);
    let (Some(id), Some(kind)) = (id, kind) else {
        return Err(RemoteError::Malformed(
            "an object without id or object".into(),
        ));
    };
    Ok(Record {
        external_type: kind.to_owned(),
        external_id: id.to_owned(),
        deleted: deleted || object.get("deleted").and_then(Value::as_bool) == Some(true),
        body: object.clone(),
    })
}

#[async_trait]
impl Connector for Stripe {
    async fn test_connection(&self) -> Result<ConnectionInfo, RemoteError> {
        let started = Instant::now();
        let account = self.get("/v1/account", &[]).await?;
        let name = account
            .pointer("/business_profile/name")
            .and_then(Value::as_str)
            .or_else(|| account.get("id").and_then(Value::as_str))
            .unwrap_or("unknown")
            .to_owned();
        Ok(ConnectionInfo {
            account: name,
            latency: started.elapsed(),
        })
    }

    async fn backfill_cursor(&self) -> Result<Value, RemoteError> {
        let (newest, at) = self.newest_event().await?;
        Ok(json!({ "phase": PHASES[0], "after": null, "events": newest, "eventsAt": at }))
    }

    async fn incremental_cursor(&self) -> Result<Value, RemoteError> {
        let (newest, at) = self.newest_event().await?;
        Ok(json!({ "phase": "events", "events": newest, "eventsAt": at }))
    }

    async fn pull(&self, cursor: &Value) -> Result<Page, RemoteError> {
        let phase = cursor
            .get("phase")
            .and_then(Value::as_str)
            .unwrap_or("events");
        if PHASES.contains(&phase) {
            let after = cursor.get("after").and_then(Value::as_str);
            self.pull_list(phase, after, cursor).await
        } else {
            self.pull_events(cursor).await
        }
    }

    async fn push(&self, change: &Push) -> Result<(), RemoteError> {
        if change.external_type != "customer" {
            return Err(RemoteError::Rejected {
                status: 400,
                message: format!("cannot push a {}", change.external_type),
            });
        }
        let form: Vec<(String, String)> = change.fields.clone();
        self.request(
            Method::POST,
            &format!("/v1/customers/{}", change.external_id),
            &[],
            Some(&form),
            Some(&change.idempotency_key),
        )
        .await
        .map(|_| ())
    }

    fn verify_webhook(&self, request: &Inbound<'_>, now_ms: i64) -> Result<(), WebhookRejection> {
        let secret = self
            .webhook_secret
            .as_deref()
            .ok_or(WebhookRejection::NoSecret)?;
        let header = request
            .headers
            .get("stripe-signature")
            .ok_or(WebhookRejection::NotSigned)?
            .to_str()
            .map_err(|_| WebhookRejection::Malformed)?;
        verify_signature(secret, header, request.body, now_ms.div_euclid(1000))
    }
}

/// Checks a `Stripe-Signature` header over `body` with `secret`, at `now`.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookRejection> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            return Err(WebhookRejection::Malformed);
        };
        match name {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| WebhookRejection::Malformed)?,
                )
            }
            "v1" => {
                // Entries that are not hex are skipped, as Stripe's SDKs do.
                if let Ok(bytes) = hex_decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookRejection::Malformed)?;
    if signatures.is_empty() {
        return Err(WebhookRejection::Mismatch);
    }
    if now.saturating_sub(timestamp) > TOLERANCE_SECS {
        return Err(WebhookRejection::TooOld);
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = Vec::with_capacity(body.len() + 12);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    if signatures
        .iter()
        .any(|signature| ring::hmac::verify(&key, &signed, signature).is_ok())
    {
        Ok(())
    } else {
        Err(WebhookRejection::Mismatch)
    }
}

fn hex_decode(text: &str) -> Result<Vec<u8>, ()> {
    if !text.len().is_multiple_of(2) {
        return Err(());
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2).ok_or(())?, 16).map_err(|_| ()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const NEW: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
    const OLD: &str = "e016b64cc4263f90e0336f3975e8d4ac9cc185935edc3ebdd405db64ad0bb1c5";

    #[test]
    fn signatures_verify_against_the_published_scheme() {
        let header = format!("t=1700000000,v1={NEW}");
        assert_eq!(
            verify_signature("whsec_test_secret", &header, BODY, 1_700_000_010),
            Ok(())
        );
        // During a secret roll both signatures come; either secret verifies.
        let rolled = format!("t=1700000000,v1={NEW},v1={OLD},v0=abc");
        assert_eq!(
            verify_signature("whsec_old_secret", &rolled, BODY, 1_700_000_000),
            Ok(())
        );
        assert_eq!(
            verify_signature("whsec_test_secret", &rolled, BODY, 1_700_000_000),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_malformed_signatures_are_refused() {
        let header = format!("t=1700000000,v1={NEW}");
        assert_eq!(
            verify_signature("whsec_other", &header, BODY, 1_700_000_000),
            Err(WebhookRejection::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_test_secret", &header, b"{}", 1_700_000_000),
            Err(WebhookRejection::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_test_secret", &header, BODY, 1_700_000_301),
            Err(WebhookRejection::TooOld)
        );
        assert_eq!(
            verify_signature("whsec_test_secret", "t=,v1=00", BODY, 1_700_000_000),
            Err(WebhookRejection::Malformed)
        );
        assert_eq!(
            verify_signature(
                "whsec_test_secret",
                "t=1700000000,v0=00",
                BODY,
                1_700_000_000
            ),
            Err(WebhookRejection::Mismatch)
        );
    }
}
