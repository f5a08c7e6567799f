//! Ledger persistence: posting entries (the only writer of `accounts.balance_e4`),
//! invoices and payments, and their sorted, filtered lists. Every function takes the
//! tenant and filters by it.
//!
//! A posting locks its account row (`SELECT … FOR UPDATE` on PostgreSQL; SQLite's write
//! transaction is exclusive), so postings to one account are serialized: the balance after
//! each entry is exact, and an idempotency key looked up under that lock is seen by every
//! retry that follows. A retry racing on another account meets the unique index on
//! `(tenant_id, idempotency_key)` and is answered from the row that won.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Select, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::accounts::{account, invoice, ledger_entry, payment};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::pagination::Page;
use portal_kit::pagination::sorted::{SortValue, SortedPageRequest};
use portal_kit::store::{one_or_not_found, rows_by_ids};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

pub use crate::domain::ledger::{EntryFilter, InvoiceFilter};
use crate::domain::ledger::{
    EntryKind, EntrySort, InvoiceSort, InvoiceStatus, PaymentSort, Source,
};
use crate::domain::{AccountStatus, amount_from_e4};

/// A validated ledger posting (`postLedgerEntry`).
pub struct NewEntry {
    /// The account posted to.
    pub account_id: Uuid,
    /// Kind (never `Payment`: see [`record_payment`]).
    pub kind: EntryKind,
    /// What the entry adds to the balance, 10^-4 units.
    pub amount_e4: i64,
    /// Currency the caller meant (must be the account's).
    pub currency: String,
    /// Effective time.
    pub posted_at: DateTime<Utc>,
    /// The caller's reference (an external id, an order number).
    pub reference: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Hash of the request (see [`crate::domain::ledger::request_hash`]).
    pub request_hash: String,
}

/// A validated invoice (`issueInvoice`).
pub struct NewInvoice {
    /// The account invoiced.
    pub account_id: Uuid,
    /// Invoice number, unique within the tenant.
    pub number: String,
    /// Currency the caller meant (must be the account's).
    pub currency: String,
    /// Amount invoiced (positive), 10^-4 units.
    pub amount_e4: i64,
    /// First day of the billing period.
    pub period_start: NaiveDate,
    /// Last day of the billing period.
    pub period_end: NaiveDate,
    /// Day the invoice falls due.
    pub due_date: NaiveDate,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Hash of the request.
    pub request_hash: String,
}

/// A validated payment (`recordPayment`).
pub struct NewPayment {
    /// The account paid into.
    pub account_id: Uuid,
    /// The invoice it settles (in part or in full), if any.
    pub invoice_id: Option<Uuid>,
    /// Currency the caller meant (must be the account's).
    pub currency: String,
    /// Amount received (positive), 10^-4 units.
    pub amount_e4: i64,
    /// When the money was received.
    pub received_at: DateTime<Utc>,
    /// The payer's or processor's reference.
    pub reference: Option<String>,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Hash of the request.
    pub request_hash: String,
}

/// Filters of an account's payments.
#[derive(Default)]
pub struct PaymentFilter {
    /// Received at or after.
    pub received_from: Option<DateTime<Utc>>,
    /// Received before.
    pub received_to: Option<DateTime<Utc>>,
    /// Payments of this invoice.
    pub invoice_id: Option<Uuid>,
}

/// What one posting writes besides its amount.
struct Posting {
    kind: EntryKind,
    amount_e4: i64,
    posted_at: DateTime<Utc>,
    reference: Option<String>,
    description: Option<String>,
    invoice_id: Option<Uuid>,
    payment_id: Option<Uuid>,
    idempotency_key: Option<String>,
    request_hash: Option<String>,
}

/// Posts an entry to an account the caller has already been allowed to see; audited as
/// `account.ledger.post`. A retry with the same idempotency key and request returns the
/// entry first posted and writes nothing.
pub async fn post_entry(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewEntry,
) -> ApiResult<ledger_entry::Model> {
    let tenant_id = actor.tenant()?;
    let (key, hash) = (new.idempotency_key.clone(), new.request_hash.clone());
    let by_key = || async {
        let found = entry_by_key(db, tenant_id, &key).await?;
        Ok(found.map(|row| (row.request_hash.clone(), row)))
    };
    idempotent(&hash, by_key, async {
        let txn = db.begin_write().await.map_err(ApiError::from_db)?;
        // Replays are answered before the account's state is checked: a retry after the
        // account was closed still gets the first result.
        let account = super::account_locked(&txn, tenant_id, new.account_id).await?;
        if let Some(row) = entry_by_key(&txn, tenant_id, &new.idempotency_key).await? {
            return replay(row.request_hash.as_deref(), &new.request_hash).map(|()| row);
        }
        postable(&account, &new.currency)?;
        let entry = post(
            &txn,
            actor,
            &account,
            Posting {
                kind: new.kind,
                amount_e4: new.amount_e4,
                posted_at: new.posted_at,
                reference: new.reference,
                description: new.description,
                invoice_id: None,
                payment_id: None,
                idempotency_key: Some(new.idempotency_key),
                request_hash: Some(new.request_hash),
            },
        )
        .await?;
        AuditEvent::success("account.ledger.post", "account", account.id)
            .with_details(entry_details(&entry))
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(entry)
    })
    .await
}

/// Issues an invoice: posts its `CHARGE` entry and stores it `OPEN`; audited as
/// `account.invoice.issue`. Idempotent like [`post_entry`].
pub async fn issue_invoice(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewInvoice,
) -> ApiResult<invoice::Model> {
    let tenant_id = actor.tenant()?;
    let (key, hash) = (new.idempotency_key.clone(), new.request_hash.clone());
    let by_key = || async {
        let found = invoice_by_key(db, tenant_id, &key).await?;
        Ok(found.map(|row| (row.request_hash.clone(), row)))
    };
    idempotent(&hash, by_key, async {
        let txn = db.begin_write().await.map_err(ApiError::from_db)?;
        let account = super::account_locked(&txn, tenant_id, new.account_id).await?;
        if let Some(row) = invoice_by_key(&txn, tenant_id, &new.idempotency_key).await? {
            return replay(row.request_hash.as_deref(), &new.request_hash).map(|()| row);
        }
        postable(&account, &new.currency)?;
        let taken = invoice::Entity::find()
            .filter(invoice::Column::TenantId.eq(tenant_id))
            .filter(invoice::Column::Number.eq(new.number.as_str()))
            .one(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if taken.is_some() {
            return Err(ApiError::Conflict(format!(
                "an invoice numbered {} already exists",
                new.number
            )));
        }
        let id = Uuid::now_v7();
        let now = Utc::now();
        let charge = post(
            &txn,
            actor,
            &account,
            Posting {
                kind: EntryKind::Charge,
                amount_e4: -new.amount_e4,
                posted_at: now,
                reference: Some(new.number.clone()),
                description: Some(format!("Invoice {}", new.number)),
                invoice_id: Some(id),
                payment_id: None,
                idempotency_key: None,
                request_hash: None,
            },
        )
        .await?;
        let issued = invoice::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id),
            account_id: Set(account.id),
            number: Set(new.number),
            status: Set(InvoiceStatus::Open.stored().to_owned()),
            source: Set(Source::of(actor.kind).as_str().to_owned()),
            currency: Set(account.currency.clone()),
            amount_e4: Set(new.amount_e4),
            paid_e4: Set(0),
            period_start: Set(new.period_start),
            period_end: Set(new.period_end),
            due_date: Set(new.due_date),
            issued_at: Set(now),
            charge_entry_id: Set(charge.id),
            settled_at: Set(None),
            voided_at: Set(None),
            void_reason: Set(None),
            idempotency_key: Set(Some(new.idempotency_key)),
            request_hash: Set(Some(new.request_hash)),
            created_by: Set(actor.id),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        AuditEvent::success("account.invoice.issue", "account", account.id)
            .with_details(json!({
                "invoiceId": issued.id,
                "number": issued.number,
                "amount": amount_from_e4(issued.amount_e4).to_string(),
                "currency": issued.currency,
                "dueDate": issued.due_date.to_string(),
                "entryId": charge.id,
            }))
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(issued)
    })
    .await
}

/// Voids an open invoice nothing has been paid on: posts a `CREDIT` entry reversing its
/// charge; audited as `account.invoice.void`. `CONFLICT` for a paid, part-paid or void
/// invoice (a voided invoice stays void: a retry is refused, never applied twice).
pub async fn void_invoice(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    reason: String,
) -> ApiResult<invoice::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = invoice_in(&txn, tenant_id, id).await?;
    let account = super::account_locked(&txn, tenant_id, found.account_id).await?;
    let found = invoice_in(&txn, tenant_id, id).await?;
    if AccountStatus::from_db(&account.status) == AccountStatus::Closed {
        return Err(ApiError::Conflict(
            "the invoice's account is closed and takes no postings".into(),
        ));
    }
    match found.status.as_str() {
        "VOID" => return Err(ApiError::Conflict("the invoice is already void".into())),
        "PAID" => return Err(ApiError::Conflict("a paid invoice cannot be voided".into())),
        _ if found.paid_e4 > 0 => {
            return Err(ApiError::Conflict(
                "an invoice with payments cannot be voided".into(),
            ));
        }
        _ => {}
    }
    let now = Utc::now();
    let reversal = post(
        &txn,
        actor,
        &account,
        Posting {
            kind: EntryKind::Credit,
            amount_e4: found.amount_e4,
            posted_at: now,
            reference: Some(found.number.clone()),
            description: Some(format!("Invoice {} voided", found.number)),
            invoice_id: Some(found.id),
            payment_id: None,
            idempotency_key: None,
            request_hash: None,
        },
    )
    .await?;
    let mut active: invoice::ActiveModel = found.into();
    active.status = Set(InvoiceStatus::Void.stored().to_owned());
    active.voided_at = Set(Some(now));
    active.void_reason = Set(Some(reason.clone()));
    active.updated_at = Set(now);
    let voided = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("account.invoice.void", "account", account.id)
        .with_details(json!({
            "invoiceId": voided.id,
            "number": voided.number,
            "reason": reason,
            "entryId": reversal.id,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(voided)
}

/// Records money received: posts its `PAYMENT` entry and, when it names an invoice of
/// the account, settles that invoice by the amount (`PAID` once fully paid, audited as
/// `account.invoice.settle`); audited as `account.payment.record`. A payment may not
/// exceed what is still owed on its invoice. Idempotent like [`post_entry`].
pub async fn record_payment(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewPayment,
) -> ApiResult<payment::Model> {
    let tenant_id = actor.tenant()?;
    let (key, hash) = (new.idempotency_key.clone(), new.request_hash.clone());
    let by_key = || async {
        let found = payment_by_key(db, tenant_id, &key).await?;
        Ok(found.map(|row| (row.request_hash.clone(), row)))
    };
    idempotent(&hash, by_key, async {
        let txn = db.begin_write().await.map_err(ApiError::from_db)?;
        let account = super::account_locked(&txn, tenant_id, new.account_id).await?;
        if let Some(row) = payment_by_key(&txn, tenant_id, &new.idempotency_key).await? {
            return replay(row.request_hash.as_deref(), &new.request_hash).map(|()| row);
        }
        postable(&account, &new.currency)?;
        let settles = match new.invoice_id {
            None => None,
            Some(invoice_id) => {
                let found = match invoice_in(&txn, tenant_id, invoice_id).await {
                    Ok(found) if found.account_id == account.id => found,
                    Ok(_) | Err(ApiError::NotFound(_)) => {
                        return Err(ApiError::invalid(
                            "input.invoiceId",
                            "must be an invoice of the account",
                        ));
                    }
                    Err(err) => return Err(err),
                };
                if found.status != InvoiceStatus::Open.stored() {
                    return Err(ApiError::invalid(
                        "input.invoiceId",
                        format!("the invoice is {}", found.status.to_lowercase()),
                    ));
                }
                let owed = found.amount_e4 - found.paid_e4;
                if new.amount_e4 > owed {
                    return Err(ApiError::invalid(
                        "input.amount",
                        format!(
                            "exceeds what is owed on the invoice ({})",
                            amount_from_e4(owed)
                        ),
                    ));
                }
                Some(found)
            }
        };
        let id = Uuid::now_v7();
        let now = Utc::now();
        let entry = post(
            &txn,
            actor,
            &account,
            Posting {
                kind: EntryKind::Payment,
                amount_e4: new.amount_e4,
                posted_at: new.received_at,
                reference: new.reference.clone(),
                description: settles
                    .as_ref()
                    .map(|inv| format!("Payment of invoice {}", inv.number)),
                invoice_id: new.invoice_id,
                payment_id: Some(id),
                idempotency_key: None,
                request_hash: None,
            },
        )
        .await?;
        let recorded = payment::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id),
            account_id: Set(account.id),
            invoice_id: Set(new.invoice_id),
            ledger_entry_id: Set(entry.id),
            source: Set(Source::of(actor.kind).as_str().to_owned()),
            currency: Set(account.currency.clone()),
            amount_e4: Set(new.amount_e4),
            received_at: Set(new.received_at),
            reference: Set(new.reference),
            idempotency_key: Set(Some(new.idempotency_key)),
            request_hash: Set(Some(new.request_hash)),
            created_by: Set(actor.id),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        AuditEvent::success("account.payment.record", "account", account.id)
            .with_details(json!({
                "paymentId": recorded.id,
                "invoiceId": recorded.invoice_id,
                "amount": amount_from_e4(recorded.amount_e4).to_string(),
                "currency": recorded.currency,
                "entryId": entry.id,
            }))
            .record(&txn, actor, meta)
            .await?;
        if let Some(found) = settles {
            let paid = found.paid_e4 + new.amount_e4;
            let settled = paid == found.amount_e4;
            let (invoice_id, number) = (found.id, found.number.clone());
            let mut active: invoice::ActiveModel = found.into();
            active.paid_e4 = Set(paid);
            active.updated_at = Set(now);
            if settled {
                active.status = Set(InvoiceStatus::Paid.stored().to_owned());
                active.settled_at = Set(Some(now));
            }
            active.update(&txn).await.map_err(ApiError::from_db)?;
            if settled {
                AuditEvent::success("account.invoice.settle", "account", account.id)
                    .with_details(json!({ "invoiceId": invoice_id, "number": number }))
                    .record(&txn, actor, meta)
                    .await?;
            }
        }
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(recorded)
    })
    .await
}

/// Posts the opening balance of a newly created account (an `ADJUSTMENT` with reference
/// `opening-balance`), in the transaction that created it; nothing for a zero balance.
pub async fn post_opening_balance(
    txn: &DatabaseTransaction,
    actor: &Actor,
    account: &account::Model,
    amount_e4: i64,
) -> ApiResult<Option<ledger_entry::Model>> {
    if amount_e4 == 0 {
        return Ok(None);
    }
    let entry = post(
        txn,
        actor,
        account,
        Posting {
            kind: EntryKind::Adjustment,
            amount_e4,
            posted_at: account.created_at,
            reference: Some("opening-balance".into()),
            description: Some("Opening balance".into()),
            invoice_id: None,
            payment_id: None,
            idempotency_key: None,
            request_hash: None,
        },
    )
    .await?;
    Ok(Some(entry))
}

/// Inserts the opening-balance entry (and its rollup) of an account written with its
/// balance already set — bulk loaders: the demo seed, the benchmark's seed — in the
/// caller's transaction: the ledger then sums to the balance as for accounts opened
/// through the API. Nothing for a zero balance.
pub async fn insert_opening_balance(
    db: &impl ConnectionTrait,
    account: &account::Model,
) -> Result<(), sea_orm::DbErr> {
    if account.balance_e4 == 0 {
        return Ok(());
    }
    ledger_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(account.tenant_id),
        account_id: Set(account.id),
        kind: Set(EntryKind::Adjustment.as_str().to_owned()),
        source: Set(Source::Manual.as_str().to_owned()),
        amount_e4: Set(account.balance_e4),
        balance_after_e4: Set(account.balance_e4),
        currency: Set(account.currency.clone()),
        posted_at: Set(account.created_at),
        reference: Set(Some("opening-balance".into())),
        description: Set(Some("Opening balance".into())),
        invoice_id: Set(None),
        payment_id: Set(None),
        idempotency_key: Set(None),
        request_hash: Set(None),
        created_by: Set(None),
        created_at: Set(account.created_at),
    }
    .insert(db)
    .await?;
    roll_up(
        db,
        account.tenant_id,
        account.id,
        account.created_at,
        account.balance_e4,
    )
    .await
}

/// Adds one entry of `amount_e4` posted at `posted_at` to its account's quarter-hour
/// rollup (in the posting's transaction).
pub async fn roll_up(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    account_id: Uuid,
    posted_at: DateTime<Utc>,
    amount_e4: i64,
) -> Result<(), sea_orm::DbErr> {
    use portal_entities::accounts::ledger_rollup::{Column as C, Entity};
    use sea_orm::sea_query::{Expr, OnConflict, Query};
    let upsert = Query::insert()
        .into_table(Entity)
        .columns([
            C::TenantId,
            C::AccountId,
            C::BucketStart,
            C::AmountE4,
            C::Entries,
        ])
        .values_panic([
            tenant_id.into(),
            account_id.into(),
            crate::domain::series::quarter_hour(posted_at).into(),
            amount_e4.into(),
            1_i64.into(),
        ])
        .on_conflict(
            OnConflict::columns([C::TenantId, C::AccountId, C::BucketStart])
                .value(
                    C::AmountE4,
                    Expr::cust("ledger_rollups.amount_e4 + excluded.amount_e4"),
                )
                .value(
                    C::Entries,
                    Expr::cust("ledger_rollups.entries + excluded.entries"),
                )
                .to_owned(),
        )
        .to_owned();
    db.execute(&upsert).await.map(|_| ())
}

/// Writes one entry and moves the account's balance by its amount. `account` was read
/// under the posting's lock ([`locked_account`]), so its balance is current.
async fn post(
    txn: &DatabaseTransaction,
    actor: &Actor,
    account: &account::Model,
    posting: Posting,
) -> ApiResult<ledger_entry::Model> {
    let now = Utc::now();
    let balance_after = account
        .balance_e4
        .checked_add(posting.amount_e4)
        .filter(|balance| balance.unsigned_abs() <= (i64::MAX / 2) as u64)
        .ok_or_else(|| ApiError::invalid("input.amount", "would take the balance out of range"))?;
    account::Entity::update_many()
        .col_expr(account::Column::BalanceE4, balance_after.into())
        .col_expr(account::Column::UpdatedAt, now.into())
        .filter(account::Column::Id.eq(account.id))
        .filter(account::Column::TenantId.eq(account.tenant_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    roll_up(
        txn,
        account.tenant_id,
        account.id,
        posting.posted_at,
        posting.amount_e4,
    )
    .await
    .map_err(ApiError::from_db)?;
    ledger_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(account.tenant_id),
        account_id: Set(account.id),
        kind: Set(posting.kind.as_str().to_owned()),
        source: Set(Source::of(actor.kind).as_str().to_owned()),
        amount_e4: Set(posting.amount_e4),
        balance_after_e4: Set(balance_after),
        currency: Set(account.currency.clone()),
        posted_at: Set(posting.posted_at),
        reference: Set(posting.reference),
        description: Set(posting.description),
        invoice_id: Set(posting.invoice_id),
        payment_id: Set(posting.payment_id),
        idempotency_key: Set(posting.idempotency_key),
        request_hash: Set(posting.request_hash),
        created_by: Set(actor.id),
        created_at: Set(now),
    }
    .insert(txn)
    .await
    .map_err(ApiError::from_db)
}

/// `BAD_USER_INPUT` unless `account` (read under the posting's lock) takes postings in
/// `currency`: not closed, and held in that currency.
fn postable(account: &account::Model, currency: &str) -> ApiResult<()> {
    if AccountStatus::from_db(&account.status) == AccountStatus::Closed {
        return Err(ApiError::invalid(
            "input.accountId",
            "the account is closed and takes no postings",
        ));
    }
    crate::domain::ledger::same_currency("input.currency", currency, &account.currency)
}

/// Runs `attempt`; when it loses a race on the idempotency key's unique index (another
/// transaction committed the same key first), answers from the row that won.
pub(super) async fn idempotent<T, F, Fut>(
    hash: &str,
    by_key: F,
    attempt: impl Future<Output = ApiResult<T>>,
) -> ApiResult<T>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<Option<(Option<String>, T)>>>,
{
    match attempt.await {
        Err(ApiError::Conflict(message)) => match by_key().await? {
            Some((stored, row)) => replay(stored.as_deref(), hash).map(|()| row),
            None => Err(ApiError::Conflict(message)),
        },
        other => other,
    }
}

/// A retry is answered with the first result only when it is the same request.
pub(super) fn replay(stored: Option<&str>, hash: &str) -> ApiResult<()> {
    if stored == Some(hash) {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "this idempotency key was already used for a different request".into(),
        ))
    }
}

async fn entry_by_key(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    key: &str,
) -> ApiResult<Option<ledger_entry::Model>> {
    ledger_entry::Entity::find()
        .filter(ledger_entry::Column::TenantId.eq(tenant_id))
        .filter(ledger_entry::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

async fn invoice_by_key(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    key: &str,
) -> ApiResult<Option<invoice::Model>> {
    invoice::Entity::find()
        .filter(invoice::Column::TenantId.eq(tenant_id))
        .filter(invoice::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

async fn payment_by_key(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    key: &str,
) -> ApiResult<Option<payment::Model>> {
    payment::Entity::find()
        .filter(payment::Column::TenantId.eq(tenant_id))
        .filter(payment::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

fn entry_details(entry: &ledger_entry::Model) -> serde_json::Value {
    json!({
        "entryId": entry.id,
        "kind": entry.kind,
        "amount": amount_from_e4(entry.amount_e4).to_string(),
        "currency": entry.currency,
        "reference": entry.reference,
    })
}

/// One invoice of the tenant.
pub async fn invoice_in(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<invoice::Model> {
    let scoped = invoice::Entity::find_by_id(id).filter(invoice::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "invoice").await
}

/// Invoices of the tenant among `ids`, in one query.
pub async fn invoices_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, invoice::Model>> {
    let scoped = invoice::Entity::find().filter(invoice::Column::TenantId.eq(tenant_id));
    rows_by_ids(db, scoped, invoice::Column::Id, ids).await
}

/// The payments of each of `invoice_ids`, oldest first, in one query.
pub async fn payments_of_invoices(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    invoice_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<payment::Model>>> {
    let rows = payment::Entity::find()
        .filter(payment::Column::TenantId.eq(tenant_id))
        .filter(payment::Column::InvoiceId.is_in(invoice_ids))
        .order_by_asc(payment::Column::ReceivedAt)
        .order_by_asc(payment::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_invoice: HashMap<Uuid, Vec<payment::Model>> = HashMap::new();
    for row in rows {
        if let Some(invoice_id) = row.invoice_id {
            by_invoice.entry(invoice_id).or_default().push(row);
        }
    }
    Ok(by_invoice)
}

/// The account's ledger entries that `filter` keeps.
pub fn entries_matching(
    tenant_id: Uuid,
    account_id: Uuid,
    filter: &EntryFilter,
) -> Select<ledger_entry::Entity> {
    use ledger_entry::Column as C;
    let mut select: Select<ledger_entry::Entity> = ledger_entry::Entity::find()
        .filter(C::TenantId.eq(tenant_id))
        .filter(C::AccountId.eq(account_id));
    if !filter.kinds.is_empty() {
        select = select.filter(C::Kind.is_in(filter.kinds.iter().map(|k| k.as_str())));
    }
    if !filter.sources.is_empty() {
        select = select.filter(C::Source.is_in(filter.sources.iter().map(|s| s.as_str())));
    }
    if let Some(from) = filter.posted_from {
        select = select.filter(C::PostedAt.gte(from));
    }
    if let Some(to) = filter.posted_to {
        select = select.filter(C::PostedAt.lt(to));
    }
    if let Some(reference) = &filter.reference {
        select = select.filter(C::Reference.eq(reference.as_str()));
    }
    if let Some(invoice_id) = filter.invoice_id {
        select = select.filter(C::InvoiceId.eq(invoice_id));
    }
    select
}

/// A page of the account's ledger entries.
pub async fn entries_page(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_id: Uuid,
    filter: &EntryFilter,
    sort: EntrySort,
    page: &SortedPageRequest,
) -> ApiResult<Page<(String, ledger_entry::Model)>> {
    use ledger_entry::Column as C;
    let select = entries_matching(tenant_id, account_id, filter);
    let column = match sort {
        EntrySort::PostedAt => C::PostedAt,
        EntrySort::Amount => C::AmountE4,
    };
    page.fetch(db, select, column, C::Id, |row| {
        let value = match sort {
            EntrySort::PostedAt => SortValue::Time(row.posted_at),
            EntrySort::Amount => SortValue::Int(row.amount_e4),
        };
        (value, row.id)
    })
    .await
}

/// The account's invoices that `filter` keeps; `today` decides which open invoices are
/// overdue.
pub fn invoices_matching(
    tenant_id: Uuid,
    account_id: Uuid,
    filter: &InvoiceFilter,
    today: NaiveDate,
) -> Select<invoice::Entity> {
    use invoice::Column as C;
    let mut select = invoice::Entity::find()
        .filter(C::TenantId.eq(tenant_id))
        .filter(C::AccountId.eq(account_id));
    if !filter.statuses.is_empty() {
        let mut any = Condition::any();
        for status in &filter.statuses {
            any = any.add(match status {
                InvoiceStatus::Open => Condition::all()
                    .add(C::Status.eq("OPEN"))
                    .add(C::DueDate.gte(today)),
                InvoiceStatus::Overdue => Condition::all()
                    .add(C::Status.eq("OPEN"))
                    .add(C::DueDate.lt(today)),
                InvoiceStatus::Paid | InvoiceStatus::Void => {
                    Condition::all().add(C::Status.eq(status.stored()))
                }
            });
        }
        select = select.filter(any);
    }
    if let Some(from) = filter.due_from {
        select = select.filter(C::DueDate.gte(from));
    }
    if let Some(to) = filter.due_to {
        select = select.filter(C::DueDate.lte(to));
    }
    select
}

/// A page of the account's invoices; `today` decides which open invoices are overdue.
pub async fn invoices_page(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_id: Uuid,
    filter: &InvoiceFilter,
    today: NaiveDate,
    sort: InvoiceSort,
    page: &SortedPageRequest,
) -> ApiResult<Page<(String, invoice::Model)>> {
    use invoice::Column as C;
    let select = invoices_matching(tenant_id, account_id, filter, today);
    let column = match sort {
        InvoiceSort::IssuedAt => C::IssuedAt,
        InvoiceSort::DueDate => C::DueDate,
        InvoiceSort::Amount => C::AmountE4,
    };
    page.fetch(db, select, column, C::Id, |row| {
        let value = match sort {
            InvoiceSort::IssuedAt => SortValue::Time(row.issued_at),
            InvoiceSort::DueDate => SortValue::Date(row.due_date),
            InvoiceSort::Amount => SortValue::Int(row.amount_e4),
        };
        (value, row.id)
    })
    .await
}

/// A page of the account's payments.
pub async fn payments_page(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_id: Uuid,
    filter: &PaymentFilter,
    sort: PaymentSort,
    page: &SortedPageRequest,
) -> ApiResult<Page<(String, payment::Model)>> {
    use payment::Column as C;
    let mut select = payment::Entity::find()
        .filter(C::TenantId.eq(tenant_id))
        .filter(C::AccountId.eq(account_id));
    if let Some(from) = filter.received_from {
        select = select.filter(C::ReceivedAt.gte(from));
    }
    if let Some(to) = filter.received_to {
        select = select.filter(C::ReceivedAt.lt(to));
    }
    if let Some(invoice_id) = filter.invoice_id {
        select = select.filter(C::InvoiceId.eq(invoice_id));
    }
    let column = match sort {
        PaymentSort::ReceivedAt => C::ReceivedAt,
        PaymentSort::Amount => C::AmountE4,
    };
    page.fetch(db, select, column, C::Id, |row| {
        let value = match sort {
            PaymentSort::ReceivedAt => SortValue::Time(row.received_at),
            PaymentSort::Amount => SortValue::Int(row.amount_e4),
        };
        (value, row.id)
    })
    .await
}
