//! Stripe records into the portal (`docs/integrations.md` has the mapping):
//!
//! | Stripe | Portal |
//! |---|---|
//! | customer | linked to an account (by hand, or `metadata.portal_account_id`); its name follows `Account.name`'s rule |
//! | invoice (finalized) | `issueInvoice` (idempotency key `stripe:<id>`); voided → `voidInvoice` |
//! | invoice payment (paid) | `recordPayment` against the invoice |
//! | refund (succeeded) | `postLedgerEntry(kind: REFUND)` |
//!
//! A deleted customer loses its link; its account and ledger stay.

use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};
use uuid::Uuid;

use super::links::{db_error, entity_id, follow_account_name, linked, save_link, unlink};
use super::{Applied, ApplyError, Target};
use crate::connectors::Record;
use crate::domain::sync::{fingerprint, from_minor_units};
use crate::store::connectors as state;

const CUSTOMER: &str = "customer";
const INVOICE: &str = "invoice";
const INVOICE_PAYMENT: &str = "invoice_payment";
const REFUND: &str = "refund";

/// Applies one Stripe object.
pub(super) async fn apply(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    match record.external_type.as_str() {
        CUSTOMER => customer(target, record).await,
        INVOICE => invoice(target, record).await,
        INVOICE_PAYMENT => invoice_payment(target, record).await,
        REFUND => refund(target, record).await,
        // Other objects carry nothing the portal keeps.
        _ => Ok(Applied::Unchanged),
    }
}

fn text<'v>(body: &'v Value, field: &str) -> Option<&'v str> {
    body.get(field).and_then(Value::as_str)
}

/// An expandable reference: the id, whether Stripe sent the id or the object.
fn reference<'v>(body: &'v Value, field: &str) -> Option<&'v str> {
    match body.get(field)? {
        Value::String(id) => Some(id),
        object => object.get("id").and_then(Value::as_str),
    }
}

fn amount(body: &Value, field: &str) -> Result<i64, ApplyError> {
    body.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| ApplyError::Record(format!("`{field}` is not an amount")))
}

fn currency(body: &Value) -> Result<String, ApplyError> {
    text(body, "currency")
        .filter(|c| c.len() == 3)
        .map(str::to_ascii_uppercase)
        .ok_or_else(|| ApplyError::Record("`currency` is not a currency".into()))
}

/// A Unix time as an ISO date (UTC).
fn date(seconds: i64) -> Result<NaiveDate, ApplyError> {
    DateTime::from_timestamp(seconds, 0)
        .map(|at| at.date_naive())
        .ok_or_else(|| ApplyError::Record(format!("{seconds} is not a time")))
}

fn instant(seconds: i64) -> Result<String, ApplyError> {
    DateTime::from_timestamp(seconds, 0)
        .map(|at| at.to_rfc3339())
        .ok_or_else(|| ApplyError::Record(format!("{seconds} is not a time")))
}

/// The account a linked customer stands for.
async fn account_of_customer(
    target: &Target<'_>,
    customer: Option<&str>,
) -> Result<Uuid, ApplyError> {
    let customer = customer.ok_or_else(|| ApplyError::Record("it names no customer".into()))?;
    linked(target, CUSTOMER, customer)
        .await?
        .map(|link| link.entity_id)
        .ok_or_else(|| {
            ApplyError::Record(format!(
                "its customer {customer} is not linked to a portal account"
            ))
        })
}

async fn customer(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    let link = linked(target, CUSTOMER, &record.external_id).await?;
    if record.deleted {
        return unlink(target, link).await;
    }
    let body = &record.body;
    let name = text(body, "name").unwrap_or_default();
    let named = body
        .pointer("/metadata/portal_account_id")
        .and_then(Value::as_str);
    let print = |name: &str| {
        fingerprint(&json!({
            "name": name,
            "email": text(body, "email"),
            "portalAccountId": named,
        }))
    };
    let (account_id, outcome) = match &link {
        Some(link) if link.fingerprint.as_deref() == Some(print(name).as_str()) => {
            return Ok(Applied::Unchanged);
        }
        Some(link) => (link.entity_id, Applied::Updated),
        None => {
            let account_id = named
                .and_then(|id| Uuid::parse_str(id.trim()).ok())
                .ok_or_else(|| {
                    ApplyError::Record(
                        "no portal account for this customer: set metadata.portal_account_id in \
                     Stripe, or link it with linkExternalRef"
                            .into(),
                    )
                })?;
            // One customer per account: another one linked to it wins.
            if let Some(other) = state::link_of_entity(
                target.db,
                state::Within::Integration(target.integration.id),
                CUSTOMER,
                "Account",
                account_id,
            )
            .await
            .map_err(db_error)?
            {
                return Err(ApplyError::Record(format!(
                    "account {account_id} is already linked to customer {}",
                    other.external_id
                )));
            }
            (account_id, Applied::Created)
        }
    };
    let agreed = follow_account_name(target, record, account_id, name).await?;
    save_link(target, record, "Account", account_id, print(&agreed)).await?;
    Ok(outcome)
}

async fn invoice(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    let body = &record.body;
    let status = text(body, "status").unwrap_or("draft");
    let number = text(body, "number");
    let total = amount(body, "total")?;
    // Drafts change freely and have no number yet; nothing is owed on a zero total.
    let Some(number) = number.filter(|_| status != "draft" && total > 0) else {
        return Ok(Applied::Unchanged);
    };
    let currency = currency(body)?;
    let print = fingerprint(&json!({
        "status": status,
        "total": total,
        "amountPaid": body.get("amount_paid"),
        "currency": currency,
    }));
    let link = linked(target, INVOICE, &record.external_id).await?;
    if let Some(link) = &link {
        if link.fingerprint.as_deref() == Some(print.as_str()) {
            return Ok(Applied::Unchanged);
        }
        if status == "void" {
            void(target, link.entity_id).await?;
        }
        save_link(target, record, "Invoice", link.entity_id, print).await?;
        return Ok(Applied::Updated);
    }
    let account_id = account_of_customer(target, reference(body, "customer")).await?;
    let created = body
        .get("created")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    let period_start = date(
        body.get("period_start")
            .and_then(Value::as_i64)
            .unwrap_or(created),
    )?;
    let period_end = date(
        body.get("period_end")
            .and_then(Value::as_i64)
            .unwrap_or(created),
    )?
    .max(period_start);
    // Stripe's due date is null for charged-automatically invoices: due when issued.
    let due = date(
        body.get("due_date")
            .and_then(Value::as_i64)
            .unwrap_or(created),
    )?
    .max(period_start);
    let data = target
        .portal
        .run(
            "mutation StripeInvoice($input: IssueInvoiceInput!) { issueInvoice(input: $input) { id } }",
            json!({ "input": {
                "number": number,
                "currency": currency,
                "accountId": account_id,
                "amount": from_minor_units(total, &currency).to_string(),
                "periodStart": period_start,
                "periodEnd": period_end,
                "dueDate": due,
                "idempotencyKey": format!("stripe:{}", record.external_id),
            }}),
        )
        .await?;
    let invoice_id = entity_id(&data, "/issueInvoice/id")?;
    if status == "void" {
        void(target, invoice_id).await?;
    }
    save_link(target, record, "Invoice", invoice_id, print).await?;
    Ok(Applied::Created)
}

async fn void(target: &Target<'_>, invoice_id: Uuid) -> Result<(), ApplyError> {
    let voided = target
        .portal
        .run(
            "mutation StripeVoid($id: ID!) { voidInvoice(id: $id, reason: \"voided in Stripe\") { id } }",
            json!({ "id": invoice_id }),
        )
        .await;
    match voided {
        Ok(_) => Ok(()),
        // Voided before (a page applied twice): nothing left to do.
        Err(ApplyError::Record(message)) if message.contains("already void") => Ok(()),
        Err(err) => Err(err),
    }
}

async fn invoice_payment(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    let body = &record.body;
    if text(body, "status") != Some("paid") {
        return Ok(Applied::Unchanged);
    }
    if linked(target, INVOICE_PAYMENT, &record.external_id)
        .await?
        .is_some()
    {
        return Ok(Applied::Unchanged);
    }
    let invoice = reference(body, "invoice")
        .ok_or_else(|| ApplyError::Record("it names no invoice".into()))?;
    let invoice_id = linked(target, INVOICE, invoice)
        .await?
        .map(|link| link.entity_id)
        .ok_or_else(|| ApplyError::Record(format!("its invoice {invoice} is not synchronized")))?;
    let data = target
        .portal
        .run(
            "query StripeInvoiceAccount($id: ID!) { invoice(id: $id) { account { id } } }",
            json!({ "id": invoice_id }),
        )
        .await?;
    let account_id = data
        .pointer("/invoice/account/id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| {
            ApplyError::Record(format!(
                "invoice {invoice_id} is not visible to the connector"
            ))
        })?;
    let currency = currency(body)?;
    let paid = body
        .get("amount_paid")
        .and_then(Value::as_i64)
        .unwrap_or(amount(body, "amount_requested")?);
    let payment = body.get("payment").cloned().unwrap_or(Value::Null);
    let reference = reference(&payment, "charge")
        .or_else(|| reference(&payment, "payment_intent"))
        .unwrap_or(&record.external_id);
    let mut input = json!({
        "currency": currency,
        "accountId": account_id,
        "amount": from_minor_units(paid, &currency).to_string(),
        "idempotencyKey": format!("stripe:{}", record.external_id),
        "reference": reference,
        "invoiceId": invoice_id,
    });
    if let Some(at) = body
        .pointer("/status_transitions/paid_at")
        .and_then(Value::as_i64)
    {
        input["receivedAt"] = json!(instant(at)?);
    }
    let data = target
        .portal
        .run(
            "mutation StripePayment($input: RecordPaymentInput!) { recordPayment(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await?;
    let payment_id = entity_id(&data, "/recordPayment/id")?;
    let print = fingerprint(&json!({ "status": "paid", "amount": paid }));
    save_link(target, record, "Payment", payment_id, print).await?;
    Ok(Applied::Created)
}

async fn refund(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    let body = &record.body;
    if text(body, "status") != Some("succeeded") {
        return Ok(Applied::Unchanged);
    }
    if linked(target, REFUND, &record.external_id).await?.is_some() {
        return Ok(Applied::Unchanged);
    }
    let account_id = account_of_customer(target, reference(body, "customer")).await?;
    let currency = currency(body)?;
    let refunded = amount(body, "amount")?;
    let mut input = json!({
        "kind": "REFUND",
        "currency": currency,
        "accountId": account_id,
        "amount": from_minor_units(refunded, &currency).to_string(),
        "idempotencyKey": format!("stripe:{}", record.external_id),
        "reference": reference(body, "charge").unwrap_or(&record.external_id),
        "description": format!("Stripe refund {}", record.external_id),
    });
    if let Some(at) = body.get("created").and_then(Value::as_i64) {
        input["postedAt"] = json!(instant(at)?);
    }
    let data = target
        .portal
        .run(
            "mutation StripeRefund($input: PostLedgerEntryInput!) { postLedgerEntry(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await?;
    let entry_id = entity_id(&data, "/postLedgerEntry/id")?;
    let print = fingerprint(&json!({ "status": "succeeded", "amount": refunded }));
    save_link(target, record, "LedgerEntry", entry_id, print).await?;
    Ok(Applied::Created)
}
