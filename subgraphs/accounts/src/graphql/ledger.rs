//! The account ledger on the wire: `LedgerEntry`, `Invoice` and `Payment`, the sorted and
//! filtered lists hanging off `Account`, `Query.invoice`, and the mutations that post to
//! the ledger. Every object here belongs to an account the caller may see: lists hang off
//! an `Account` (which passed the row rule), lookups by id and mutations check it.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use portal_entities::accounts::{invoice, ledger_entry, payment};
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::input;
use portal_kit::loader::load;
use portal_kit::pagination::Node;
use portal_kit::pagination::sorted::{SortKind, SortOrder, SortedPageRequest};
use portal_kit::scalars::{Date, DateArg, DateTimeArg, DecimalArg};
use portal_kit::{ApiError, ApiResult};

use super::require_visible;
use super::types::{Account, load_visible};
use crate::domain::amount_from_e4;
use crate::domain::ledger::{
    self as rules, Direction, EntryKind, EntrySort, InvoiceSort, InvoiceStatus, PaymentSort, Source,
};
use crate::store::ledger::{self as store, EntryFilter};

/// What a ledger entry records.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "LedgerEntryKind")]
pub enum EntryKindGql {
    /// Money owed (an invoice posts one): takes the amount off the balance.
    Charge,
    /// Money received (`recordPayment`): adds to the balance.
    Payment,
    /// Money granted: adds to the balance.
    Credit,
    /// Money paid back to the customer: takes it off the balance.
    Refund,
    /// A correction in the given direction.
    Adjustment,
}

impl From<EntryKind> for EntryKindGql {
    fn from(kind: EntryKind) -> Self {
        match kind {
            EntryKind::Charge => Self::Charge,
            EntryKind::Payment => Self::Payment,
            EntryKind::Credit => Self::Credit,
            EntryKind::Refund => Self::Refund,
            EntryKind::Adjustment => Self::Adjustment,
        }
    }
}

impl From<EntryKindGql> for EntryKind {
    fn from(kind: EntryKindGql) -> Self {
        match kind {
            EntryKindGql::Charge => Self::Charge,
            EntryKindGql::Payment => Self::Payment,
            EntryKindGql::Credit => Self::Credit,
            EntryKindGql::Refund => Self::Refund,
            EntryKindGql::Adjustment => Self::Adjustment,
        }
    }
}

/// Which way an adjustment moves the balance.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "LedgerDirection")]
pub enum DirectionGql {
    /// Adds to the balance.
    Credit,
    /// Takes off the balance.
    Debit,
}

impl From<DirectionGql> for Direction {
    fn from(direction: DirectionGql) -> Self {
        match direction {
            DirectionGql::Credit => Self::Credit,
            DirectionGql::Debit => Self::Debit,
        }
    }
}

/// Where a ledger row came from.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "LedgerSource")]
pub enum SourceGql {
    /// Entered by a user.
    Manual,
    /// Written by a billing connector's service account.
    BillingSync,
}

impl From<SourceGql> for Source {
    fn from(source: SourceGql) -> Self {
        match source {
            SourceGql::Manual => Self::Manual,
            SourceGql::BillingSync => Self::BillingSync,
        }
    }
}

impl From<Source> for SourceGql {
    fn from(source: Source) -> Self {
        match source {
            Source::Manual => Self::Manual,
            Source::BillingSync => Self::BillingSync,
        }
    }
}

/// An invoice's status.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "InvoiceStatus")]
pub enum InvoiceStatusGql {
    /// Issued, not fully paid, not yet due.
    Open,
    /// Issued, not fully paid, past its due date (UTC calendar day).
    Overdue,
    /// Fully paid.
    Paid,
    /// Cancelled; its charge was reversed by a credit.
    Void,
}

impl From<InvoiceStatus> for InvoiceStatusGql {
    fn from(status: InvoiceStatus) -> Self {
        match status {
            InvoiceStatus::Open => Self::Open,
            InvoiceStatus::Overdue => Self::Overdue,
            InvoiceStatus::Paid => Self::Paid,
            InvoiceStatus::Void => Self::Void,
        }
    }
}

impl From<InvoiceStatusGql> for InvoiceStatus {
    fn from(status: InvoiceStatusGql) -> Self {
        match status {
            InvoiceStatusGql::Open => Self::Open,
            InvoiceStatusGql::Overdue => Self::Overdue,
            InvoiceStatusGql::Paid => Self::Paid,
            InvoiceStatusGql::Void => Self::Void,
        }
    }
}

/// Sort orders of `Account.ledgerEntries` (ties broken by entry id, in the same direction).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum LedgerEntryOrder {
    /// Oldest posting first.
    PostedAtAsc,
    /// Newest posting first.
    #[default]
    PostedAtDesc,
    /// Largest debit first.
    AmountAsc,
    /// Largest credit first.
    AmountDesc,
}

impl LedgerEntryOrder {
    fn sort(self) -> (EntrySort, SortOrder) {
        use SortKind::{Int, Time};
        match self {
            Self::PostedAtAsc => (
                EntrySort::PostedAt,
                rules::order("POSTED_AT_ASC", Time, false),
            ),
            Self::PostedAtDesc => (
                EntrySort::PostedAt,
                rules::order("POSTED_AT_DESC", Time, true),
            ),
            Self::AmountAsc => (EntrySort::Amount, rules::order("AMOUNT_ASC", Int, false)),
            Self::AmountDesc => (EntrySort::Amount, rules::order("AMOUNT_DESC", Int, true)),
        }
    }
}

/// Sort orders of `Account.invoices` (ties broken by invoice id).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum InvoiceOrder {
    /// Oldest first.
    IssuedAtAsc,
    /// Newest first.
    #[default]
    IssuedAtDesc,
    /// Earliest due first.
    DueDateAsc,
    /// Latest due first.
    DueDateDesc,
    /// Smallest first.
    AmountAsc,
    /// Largest first.
    AmountDesc,
}

impl InvoiceOrder {
    fn sort(self) -> (InvoiceSort, SortOrder) {
        use SortKind::{Date, Int, Time};
        match self {
            Self::IssuedAtAsc => (
                InvoiceSort::IssuedAt,
                rules::order("ISSUED_AT_ASC", Time, false),
            ),
            Self::IssuedAtDesc => (
                InvoiceSort::IssuedAt,
                rules::order("ISSUED_AT_DESC", Time, true),
            ),
            Self::DueDateAsc => (
                InvoiceSort::DueDate,
                rules::order("DUE_DATE_ASC", Date, false),
            ),
            Self::DueDateDesc => (
                InvoiceSort::DueDate,
                rules::order("DUE_DATE_DESC", Date, true),
            ),
            Self::AmountAsc => (InvoiceSort::Amount, rules::order("AMOUNT_ASC", Int, false)),
            Self::AmountDesc => (InvoiceSort::Amount, rules::order("AMOUNT_DESC", Int, true)),
        }
    }
}

/// Sort orders of `Account.payments` (ties broken by payment id).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum PaymentOrder {
    /// Oldest first.
    ReceivedAtAsc,
    /// Newest first.
    #[default]
    ReceivedAtDesc,
    /// Smallest first.
    AmountAsc,
    /// Largest first.
    AmountDesc,
}

impl PaymentOrder {
    fn sort(self) -> (PaymentSort, SortOrder) {
        use SortKind::{Int, Time};
        match self {
            Self::ReceivedAtAsc => (
                PaymentSort::ReceivedAt,
                rules::order("RECEIVED_AT_ASC", Time, false),
            ),
            Self::ReceivedAtDesc => (
                PaymentSort::ReceivedAt,
                rules::order("RECEIVED_AT_DESC", Time, true),
            ),
            Self::AmountAsc => (PaymentSort::Amount, rules::order("AMOUNT_ASC", Int, false)),
            Self::AmountDesc => (PaymentSort::Amount, rules::order("AMOUNT_DESC", Int, true)),
        }
    }
}

/// One posting to an account's ledger. Entries are never changed or removed: a mistake is
/// corrected by another entry.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct LedgerEntry {
    /// Stable id.
    pub id: ID,
    /// What it records.
    pub kind: EntryKindGql,
    /// Who wrote it: a user, or a billing system's sync.
    pub source: SourceGql,
    /// What the entry added to the balance: negative for charges, refunds and debits.
    pub amount: Decimal,
    /// The account's balance right after the entry was recorded.
    pub balance_after: Decimal,
    /// ISO 4217 currency (always the account's).
    pub currency: String,
    /// When the entry takes effect.
    pub posted_at: DateTime<Utc>,
    /// The poster's reference (an invoice number, an external id).
    pub reference: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    account_id: Uuid,
    #[graphql(skip)]
    invoice_id: Option<Uuid>,
}

impl From<ledger_entry::Model> for LedgerEntry {
    fn from(row: ledger_entry::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            kind: EntryKind::from_db(&row.kind).into(),
            source: Source::from_db(&row.source).into(),
            amount: amount_from_e4(row.amount_e4),
            balance_after: amount_from_e4(row.balance_after_e4),
            currency: row.currency,
            posted_at: row.posted_at,
            reference: row.reference,
            description: row.description,
            created_at: row.created_at,
            uuid: row.id,
            account_id: row.account_id,
            invoice_id: row.invoice_id,
        }
    }
}

#[ComplexObject]
impl LedgerEntry {
    /// The account posted to.
    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        Ok(load_visible(ctx, self.account_id).await?.map(Account::from))
    }

    /// The invoice the entry belongs to (its charge, its payments, its voiding), if any.
    async fn invoice(&self, ctx: &Context<'_>) -> ApiResult<Option<Invoice>> {
        match self.invoice_id {
            Some(id) => Ok(load::<InvoicesById>(ctx, id).await?.map(Invoice::from)),
            None => Ok(None),
        }
    }
}

/// A bill for a period. Issuing it posts a charge; payments settle it; voiding it posts a
/// credit that reverses the charge.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Invoice {
    /// Stable id.
    pub id: ID,
    /// Invoice number, unique within the tenant.
    pub number: String,
    /// Status; `OVERDUE` once an unpaid invoice's due date has passed (UTC).
    pub status: InvoiceStatusGql,
    /// Who issued it: a user, or a billing system's sync.
    pub source: SourceGql,
    /// ISO 4217 currency (always the account's).
    pub currency: String,
    /// Amount invoiced.
    pub amount: Decimal,
    /// Amount paid so far.
    pub amount_paid: Decimal,
    /// Amount still owed (zero once paid or void).
    pub amount_due: Decimal,
    /// First day of the billing period.
    pub period_start: Date,
    /// Last day of the billing period.
    pub period_end: Date,
    /// Day it falls due.
    pub due_date: Date,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When the last payment settled it.
    pub settled_at: Option<DateTime<Utc>>,
    /// When it was voided.
    pub voided_at: Option<DateTime<Utc>>,
    /// Why it was voided.
    pub void_reason: Option<String>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    account_id: Uuid,
}

impl From<invoice::Model> for Invoice {
    fn from(row: invoice::Model) -> Self {
        let status = InvoiceStatus::of(&row.status, row.due_date, Utc::now().date_naive());
        let due = match status {
            InvoiceStatus::Void | InvoiceStatus::Paid => 0,
            _ => row.amount_e4 - row.paid_e4,
        };
        Self {
            id: ID(row.id.to_string()),
            number: row.number,
            status: status.into(),
            source: Source::from_db(&row.source).into(),
            currency: row.currency,
            amount: amount_from_e4(row.amount_e4),
            amount_paid: amount_from_e4(row.paid_e4),
            amount_due: amount_from_e4(due),
            period_start: Date(row.period_start),
            period_end: Date(row.period_end),
            due_date: Date(row.due_date),
            issued_at: row.issued_at,
            settled_at: row.settled_at,
            voided_at: row.voided_at,
            void_reason: row.void_reason,
            uuid: row.id,
            account_id: row.account_id,
        }
    }
}

#[ComplexObject]
impl Invoice {
    /// The account invoiced.
    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        Ok(load_visible(ctx, self.account_id).await?.map(Account::from))
    }

    /// Payments towards it, oldest first.
    async fn payments(&self, ctx: &Context<'_>) -> ApiResult<Vec<Payment>> {
        let found = load::<PaymentsOfInvoices>(ctx, self.uuid).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(Payment::from)
            .collect())
    }
}

/// Money received for an account.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Payment {
    /// Stable id.
    pub id: ID,
    /// Who recorded it: a user, or a billing system's sync.
    pub source: SourceGql,
    /// ISO 4217 currency (always the account's).
    pub currency: String,
    /// Amount received.
    pub amount: Decimal,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The payer's or processor's reference.
    pub reference: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    account_id: Uuid,
    #[graphql(skip)]
    invoice_id: Option<Uuid>,
}

impl From<payment::Model> for Payment {
    fn from(row: payment::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            source: Source::from_db(&row.source).into(),
            currency: row.currency,
            amount: amount_from_e4(row.amount_e4),
            received_at: row.received_at,
            reference: row.reference,
            created_at: row.created_at,
            uuid: row.id,
            account_id: row.account_id,
            invoice_id: row.invoice_id,
        }
    }
}

#[ComplexObject]
impl Payment {
    /// The account paid into.
    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        Ok(load_visible(ctx, self.account_id).await?.map(Account::from))
    }

    /// The invoice it settles, if any.
    async fn invoice(&self, ctx: &Context<'_>) -> ApiResult<Option<Invoice>> {
        match self.invoice_id {
            Some(id) => Ok(load::<InvoicesById>(ctx, id).await?.map(Invoice::from)),
            None => Ok(None),
        }
    }
}

impl Node for LedgerEntry {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

impl Node for Invoice {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

impl Node for Payment {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(LedgerEntryConnection, LedgerEntryEdge, LedgerEntry);
portal_kit::connection!(InvoiceConnection, InvoiceEdge, Invoice);
portal_kit::connection!(PaymentConnection, PaymentEdge, Payment);

portal_kit::fetch_by_ids!(
    /// Invoice lookups by `(tenant, id)`, batched into one query per tenant.
    pub InvoicesById: invoice::Model = store::invoices_by_ids
);

portal_kit::fetch_by_ids!(
    /// The payments of invoices by `(tenant, invoice id)`, batched into one query.
    pub PaymentsOfInvoices: Vec<payment::Model> = store::payments_of_invoices
);

/// Filters of `Account.ledgerEntries`; all given conditions must hold.
#[derive(InputObject, Default)]
pub struct LedgerEntryFilter {
    /// Only entries of these kinds.
    pub kinds: Option<Vec<EntryKindGql>>,
    /// Only entries from these sources.
    pub sources: Option<Vec<SourceGql>>,
    /// Posted at or after this instant.
    pub posted_from: Option<DateTimeArg>,
    /// Posted before this instant.
    pub posted_to: Option<DateTimeArg>,
    /// Exactly this reference.
    pub reference: Option<String>,
    /// Entries of this invoice.
    pub invoice_id: Option<ID>,
}

/// Filters of `Account.invoices`.
#[derive(InputObject, Default)]
pub struct InvoiceFilter {
    /// Only invoices with these statuses.
    pub statuses: Option<Vec<InvoiceStatusGql>>,
    /// Due on or after this day.
    pub due_from: Option<DateArg>,
    /// Due on or before this day.
    pub due_to: Option<DateArg>,
}

/// Filters of `Account.payments`.
#[derive(InputObject, Default)]
pub struct PaymentFilter {
    /// Received at or after this instant.
    pub received_from: Option<DateTimeArg>,
    /// Received before this instant.
    pub received_to: Option<DateTimeArg>,
    /// Payments towards this invoice.
    pub invoice_id: Option<ID>,
}

impl LedgerEntryFilter {
    pub(super) fn validate(self) -> ApiResult<EntryFilter> {
        let from = self
            .posted_from
            .map(|t| t.parse("filter.postedFrom"))
            .transpose()?;
        let to = self
            .posted_to
            .map(|t| t.parse("filter.postedTo"))
            .transpose()?;
        let (posted_from, posted_to) = rules::time_range("filter.postedTo", from, to)?;
        Ok(EntryFilter {
            kinds: self
                .kinds
                .unwrap_or_default()
                .into_iter()
                .map(EntryKind::from)
                .collect(),
            sources: self
                .sources
                .unwrap_or_default()
                .into_iter()
                .map(Source::from)
                .collect(),
            posted_from,
            posted_to,
            reference: self
                .reference
                .map(|r| input::text("filter.reference", &r, 100))
                .transpose()?,
            invoice_id: self
                .invoice_id
                .map(|id| input::id("filter.invoiceId", &id))
                .transpose()?,
        })
    }
}

impl InvoiceFilter {
    pub(super) fn validate(self) -> ApiResult<store::InvoiceFilter> {
        let from = self
            .due_from
            .map(|d| d.parse("filter.dueFrom"))
            .transpose()?;
        let to = self.due_to.map(|d| d.parse("filter.dueTo")).transpose()?;
        let (due_from, due_to) = rules::date_range("filter.dueTo", from, to)?;
        Ok(store::InvoiceFilter {
            statuses: self
                .statuses
                .unwrap_or_default()
                .into_iter()
                .map(InvoiceStatus::from)
                .collect(),
            due_from,
            due_to,
        })
    }
}

impl PaymentFilter {
    fn validate(self) -> ApiResult<store::PaymentFilter> {
        let from = self
            .received_from
            .map(|t| t.parse("filter.receivedFrom"))
            .transpose()?;
        let to = self
            .received_to
            .map(|t| t.parse("filter.receivedTo"))
            .transpose()?;
        let (received_from, received_to) = rules::time_range("filter.receivedTo", from, to)?;
        Ok(store::PaymentFilter {
            received_from,
            received_to,
            invoice_id: self
                .invoice_id
                .map(|id| input::id("filter.invoiceId", &id))
                .transpose()?,
        })
    }
}

/// `Account.ledgerEntries` of the (visible) account `account_id`.
pub async fn ledger_entries(
    ctx: &Context<'_>,
    account_id: Uuid,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<LedgerEntryFilter>,
    order_by: LedgerEntryOrder,
) -> ApiResult<LedgerEntryConnection> {
    let (sort, order) = order_by.sort();
    let page = SortedPageRequest::parse(first, after.as_deref(), order)?;
    let filter = filter.unwrap_or_default().validate()?;
    let tenant = tenant_of(ctx)?;
    let rows = store::entries_page(db(ctx)?, tenant, account_id, &filter, sort, &page).await?;
    Ok(LedgerEntryConnection::with_cursors(
        rows.map(|(cursor, row)| (cursor, row.into())),
    ))
}

/// `Account.invoices` of the (visible) account `account_id`.
pub async fn invoices(
    ctx: &Context<'_>,
    account_id: Uuid,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<InvoiceFilter>,
    order_by: InvoiceOrder,
) -> ApiResult<InvoiceConnection> {
    let (sort, order) = order_by.sort();
    let page = SortedPageRequest::parse(first, after.as_deref(), order)?;
    let filter = filter.unwrap_or_default().validate()?;
    let tenant = tenant_of(ctx)?;
    let today = Utc::now().date_naive();
    let rows =
        store::invoices_page(db(ctx)?, tenant, account_id, &filter, today, sort, &page).await?;
    Ok(InvoiceConnection::with_cursors(
        rows.map(|(cursor, row)| (cursor, row.into())),
    ))
}

/// `Account.payments` of the (visible) account `account_id`.
pub async fn payments(
    ctx: &Context<'_>,
    account_id: Uuid,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<PaymentFilter>,
    order_by: PaymentOrder,
) -> ApiResult<PaymentConnection> {
    let (sort, order) = order_by.sort();
    let page = SortedPageRequest::parse(first, after.as_deref(), order)?;
    let filter = filter.unwrap_or_default().validate()?;
    let tenant = tenant_of(ctx)?;
    let rows = store::payments_page(db(ctx)?, tenant, account_id, &filter, sort, &page).await?;
    Ok(PaymentConnection::with_cursors(
        rows.map(|(cursor, row)| (cursor, row.into())),
    ))
}

/// `Query.invoice`: the invoice `id` if the caller may see its account.
pub async fn invoice(ctx: &Context<'_>, id: &ID) -> ApiResult<Option<Invoice>> {
    let id = input::id("id", id)?;
    Ok(visible_invoice(ctx, id).await?.map(Invoice::from))
}

/// The invoice `id` of the caller's tenant, if the caller may see its account.
async fn visible_invoice(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<invoice::Model>> {
    let Some(found) = load::<InvoicesById>(ctx, id).await? else {
        return Ok(None);
    };
    Ok(load_visible(ctx, found.account_id).await?.map(|_| found))
}

/// Input of `postLedgerEntry`.
#[derive(InputObject)]
pub struct PostLedgerEntryInput {
    /// The account to post to.
    pub account_id: ID,
    /// What the entry records (not `PAYMENT`: use `recordPayment`).
    pub kind: EntryKindGql,
    /// For `ADJUSTMENT` only (and required there): which way it moves the balance.
    pub direction: Option<DirectionGql>,
    /// Positive amount, at most four decimal places; the kind decides its sign.
    pub amount: DecimalArg,
    /// ISO 4217 currency: must be the account's (postings are never converted).
    pub currency: String,
    /// When the entry takes effect (not in the future); now when omitted.
    pub posted_at: Option<DateTimeArg>,
    /// Your reference (at most 100 characters).
    pub reference: Option<String>,
    /// Free text (at most 500 characters).
    pub description: Option<String>,
    /// 8-64 characters of A-Z a-z 0-9 . _ : - chosen by the client, unique per posting: a
    /// retry with the same key and input returns the first result and posts nothing;
    /// the same key with other input is `CONFLICT`.
    pub idempotency_key: String,
}

/// Input of `issueInvoice`.
#[derive(InputObject)]
pub struct IssueInvoiceInput {
    /// The account invoiced.
    pub account_id: ID,
    /// Invoice number: 3-32 characters of A-Z, 0-9, -, / and _, unique within the tenant.
    pub number: String,
    /// Positive amount, at most four decimal places.
    pub amount: DecimalArg,
    /// ISO 4217 currency: must be the account's.
    pub currency: String,
    /// First day of the billing period.
    pub period_start: DateArg,
    /// Last day of the billing period.
    pub period_end: DateArg,
    /// Day the invoice falls due (not before the period starts).
    pub due_date: DateArg,
    /// Idempotency key, as for `postLedgerEntry`.
    pub idempotency_key: String,
}

/// Input of `recordPayment`.
#[derive(InputObject)]
pub struct RecordPaymentInput {
    /// The account paid into.
    pub account_id: ID,
    /// The invoice of that account it pays (in part or in full); at most what is owed.
    pub invoice_id: Option<ID>,
    /// Positive amount, at most four decimal places.
    pub amount: DecimalArg,
    /// ISO 4217 currency: must be the account's.
    pub currency: String,
    /// When the money was received (not in the future); now when omitted.
    pub received_at: Option<DateTimeArg>,
    /// The payer's or processor's reference (at most 100 characters).
    pub reference: Option<String>,
    /// Idempotency key, as for `postLedgerEntry`.
    pub idempotency_key: String,
}

fn optional_text(
    field: &'static str,
    raw: Option<String>,
    max: usize,
) -> ApiResult<Option<String>> {
    raw.map(|text| input::text(field, &text, max)).transpose()
}

/// The ledger's mutations. Each validates all input, then checks that the caller may see
/// the account, then writes the change, its audit event and its domain event (which
/// `accountUpdated` follows) in one transaction.
#[derive(Default)]
pub struct LedgerMutation;

#[Object]
impl LedgerMutation {
    /// Posts a charge, credit, refund or adjustment to an account's ledger and moves its
    /// balance. `BAD_USER_INPUT` (nothing written) for a non-positive amount, another
    /// currency than the account's, or a closed account.
    async fn post_ledger_entry(
        &self,
        ctx: &Context<'_>,
        input: PostLedgerEntryInput,
    ) -> ApiResult<LedgerEntry> {
        let account_id = input::id("input.accountId", &input.account_id)?;
        let kind = EntryKind::from(input.kind);
        let direction = input.direction.map(Direction::from);
        let amount = rules::positive_amount("input.amount", input.amount.parse("input.amount")?)?;
        let amount_e4 = rules::signed_amount(kind, direction, amount)?;
        let currency = crate::domain::currency("input.currency", &input.currency)?;
        let given_time = input
            .posted_at
            .map(|t| t.parse("input.postedAt"))
            .transpose()?;
        let posted_at = rules::effective_time("input.postedAt", given_time, Utc::now())?;
        let reference = optional_text("input.reference", input.reference, 100)?;
        let description = optional_text("input.description", input.description, 500)?;
        let key = rules::idempotency_key("input.idempotencyKey", &input.idempotency_key)?;
        let request_hash = rules::request_hash(&json!({
            "op": "postLedgerEntry",
            "accountId": account_id,
            "kind": kind.as_str(),
            "amountE4": amount_e4,
            "currency": currency,
            "postedAt": given_time,
            "reference": reference,
            "description": description,
        }));
        require_visible(ctx, account_id).await?;
        let new = store::NewEntry {
            account_id,
            kind,
            amount_e4,
            currency,
            posted_at,
            reference,
            description,
            idempotency_key: key,
            request_hash,
        };
        Ok(store::post_entry(db(ctx)?, actor(ctx), meta(ctx), new)
            .await?
            .into())
    }

    /// Issues an invoice to an account: posts its charge and leaves it `OPEN` until
    /// payments settle it.
    async fn issue_invoice(
        &self,
        ctx: &Context<'_>,
        input: IssueInvoiceInput,
    ) -> ApiResult<Invoice> {
        let account_id = input::id("input.accountId", &input.account_id)?;
        let number = rules::invoice_number("input.number", &input.number)?;
        let amount_e4 =
            rules::positive_amount("input.amount", input.amount.parse("input.amount")?)?;
        let currency = crate::domain::currency("input.currency", &input.currency)?;
        let period_start = input.period_start.parse("input.periodStart")?;
        let period_end = input.period_end.parse("input.periodEnd")?;
        let due_date = input.due_date.parse("input.dueDate")?;
        rules::invoice_dates(period_start, period_end, due_date)?;
        let key = rules::idempotency_key("input.idempotencyKey", &input.idempotency_key)?;
        let request_hash = rules::request_hash(&json!({
            "op": "issueInvoice",
            "accountId": account_id,
            "number": number,
            "amountE4": amount_e4,
            "currency": currency,
            "periodStart": period_start,
            "periodEnd": period_end,
            "dueDate": due_date,
        }));
        require_visible(ctx, account_id).await?;
        let new = store::NewInvoice {
            account_id,
            number,
            currency,
            amount_e4,
            period_start,
            period_end,
            due_date,
            idempotency_key: key,
            request_hash,
        };
        Ok(store::issue_invoice(db(ctx)?, actor(ctx), meta(ctx), new)
            .await?
            .into())
    }

    /// Voids an open invoice nothing has been paid on, reversing its charge with a
    /// credit. `CONFLICT` when it is paid, part-paid or already void.
    async fn void_invoice(&self, ctx: &Context<'_>, id: ID, reason: String) -> ApiResult<Invoice> {
        let id = input::id("id", &id)?;
        let reason = input::text("reason", &reason, 500)?;
        visible_invoice(ctx, id)
            .await?
            .ok_or(ApiError::NotFound("invoice"))?;
        Ok(
            store::void_invoice(db(ctx)?, actor(ctx), meta(ctx), id, reason)
                .await?
                .into(),
        )
    }

    /// Records money received for an account, settling the given invoice by that amount
    /// (`PAID` once nothing is owed).
    async fn record_payment(
        &self,
        ctx: &Context<'_>,
        input: RecordPaymentInput,
    ) -> ApiResult<Payment> {
        let account_id = input::id("input.accountId", &input.account_id)?;
        let invoice_id = input
            .invoice_id
            .map(|id| input::id("input.invoiceId", &id))
            .transpose()?;
        let amount_e4 =
            rules::positive_amount("input.amount", input.amount.parse("input.amount")?)?;
        let currency = crate::domain::currency("input.currency", &input.currency)?;
        let given_time = input
            .received_at
            .map(|t| t.parse("input.receivedAt"))
            .transpose()?;
        let received_at = rules::effective_time("input.receivedAt", given_time, Utc::now())?;
        let reference = optional_text("input.reference", input.reference, 100)?;
        let key = rules::idempotency_key("input.idempotencyKey", &input.idempotency_key)?;
        let request_hash = rules::request_hash(&json!({
            "op": "recordPayment",
            "accountId": account_id,
            "invoiceId": invoice_id,
            "amountE4": amount_e4,
            "currency": currency,
            "receivedAt": given_time,
            "reference": reference,
        }));
        require_visible(ctx, account_id).await?;
        let new = store::NewPayment {
            account_id,
            invoice_id,
            currency,
            amount_e4,
            received_at,
            reference,
            idempotency_key: key,
            request_hash,
        };
        Ok(store::record_payment(db(ctx)?, actor(ctx), meta(ctx), new)
            .await?
            .into())
    }
}
