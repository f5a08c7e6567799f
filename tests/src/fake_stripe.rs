//! A stateful fake of the Stripe API v1 for the billing connector's tests, served over
//! real HTTP on a local port (see `docs/vendors/stripe.md` for the facts it follows).
//!
//! It keeps customers, invoices, invoice payments, charges, refunds and events in
//! creation order on a fake clock (each created object, events included, takes the next
//! second), so lists come out newest first with cursors that are positions, not scans:
//! paging through 100 000 invoices stays fast. The list envelope, `limit`,
//! `starting_after` / `ending_before`, `created[gt|gte|lt|lte]`, array parameters in both
//! `x[]` and `x[0]` forms (brackets raw or percent-encoded), error bodies, `Request-Id` and
//! `Stripe-Version` headers, bearer and basic auth, and idempotent `POST`s behave as the
//! real API does. Tests build the data with the `add_*` helpers (each also records the
//! matching event), make the next requests fail with [`FakeStripe::fail_next`], read what
//! the connector sent with [`FakeStripe::requests`], and sign webhook deliveries with
//! [`sign`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// The secret key the fake accepts from the start.
pub const API_KEY: &str = "sk_test_portal_fake_key_4242";
/// The API version the fake renders objects with (and answers in `Stripe-Version` when
/// the request does not name one).
pub const API_VERSION: &str = "2026-07-29.dahlia";
/// Where the fake clock starts (Unix seconds, 2023-11-14T22:13:20Z).
pub const START_TIME: i64 = 1_700_000_000;

/// How long an idempotency key is remembered, in fake-clock seconds.
const IDEMPOTENCY_TTL: i64 = 24 * 3600;
const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX_UPPER: &[u8] = b"0123456789ABCDEF";
const INVOICE_STATUSES: [&str; 5] = ["draft", "open", "paid", "uncollectible", "void"];

/// A failure the fake answers the next requests with (see [`FakeStripe::fail_next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with code `rate_limit`, and a `Retry-After` header when given.
    RateLimited {
        /// Seconds for the `Retry-After` header (none sent when `None`).
        retry_after: Option<u64>,
    },
    /// 500 `api_error` with `Stripe-Should-Retry: false`.
    ServerError,
    /// 409 with code `lock_timeout` and `Stripe-Should-Retry: true`.
    LockTimeout,
    /// 200 with a `Content-Type: application/json` body that is not JSON (cut short).
    Malformed,
    /// 503 `api_error`, with no retry advice.
    Unavailable,
}

/// One request the fake received, as the connector sent it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// The path, e.g. `/v1/invoices`.
    pub path: String,
    /// The raw query string, still percent-encoded (empty when there was none).
    pub query: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The `Stripe-Version` header.
    pub stripe_version: Option<String>,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// A running fake Stripe: a cheap handle, shared by its clones. The server stops when the
/// last handle is dropped.
#[derive(Clone)]
pub struct FakeStripe {
    backend: Arc<Mutex<Backend>>,
    addr: SocketAddr,
    _server: Arc<ServerTask>,
}

/// Aborts the server task when dropped.
struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FakeStripe {
    /// Starts the fake on `127.0.0.1` on a free port, accepting [`API_KEY`].
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backend = Arc::new(Mutex::new(Backend::new()));
        let router = Router::new().fallback(handle).with_state(backend.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            backend,
            addr,
            _server: Arc::new(ServerTask(task)),
        })
    }

    /// The base URL to give the connector, e.g. `http://127.0.0.1:41234` (no trailing
    /// slash; paths start with `/v1/`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Accepts `key` as a valid secret key too (it is no longer expired if it was).
    pub fn allow_key(&self, key: &str) {
        let mut backend = self.backend.lock();
        backend.expired.remove(key);
        backend.keys.insert(key.to_owned());
    }

    /// Makes `key` answer 401 `api_key_expired` from now on.
    pub fn expire_key(&self, key: &str) {
        let mut backend = self.backend.lock();
        backend.keys.remove(key);
        backend.expired.insert(key.to_owned());
    }

    /// The fake clock (Unix seconds): the `created` the next object will get.
    pub fn now(&self) -> i64 {
        self.backend.lock().clock
    }

    /// Moves the fake clock forward by `secs` (it never goes back, so `created` stays
    /// strictly increasing). Idempotency keys expire 24 h after their first use on it.
    pub fn advance(&self, secs: u32) {
        self.backend.lock().clock += i64::from(secs);
    }

    /// Adds a customer and its `customer.created` event; returns its id (`cus_…`).
    pub fn add_customer(&self, name: &str, email: &str, metadata: &[(&str, &str)]) -> String {
        let metadata = metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.backend.lock().create_customer(
            Some(name.to_owned()),
            Some(email.to_owned()),
            metadata,
            &Origin::default(),
        )
    }

    /// Renames customer `id` (when `name` is given) and sets `metadata` on it (an empty
    /// value removes that key), recording `customer.updated` with `previous_attributes`
    /// when anything changed. Unknown or deleted customers are left alone.
    pub fn update_customer(&self, id: &str, name: Option<&str>, metadata: &[(&str, &str)]) {
        let changes = CustomerChanges {
            name: name.map(|n| Some(n.to_owned())),
            email: None,
            clear_metadata: false,
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.backend
            .lock()
            .modify_customer(id, changes, &Origin::default());
    }

    /// Deletes customer `id`: retrieving it then answers the `deleted: true` stub, lists
    /// leave it out, and `customer.deleted` carries its last full object.
    pub fn delete_customer(&self, id: &str) {
        self.backend.lock().delete_customer(id);
    }

    /// Adds an invoice for `customer` (its name and email are copied as at finalization;
    /// an unknown customer id is kept as given, with both `null`) with one line of
    /// `total_minor` in `currency` over the period, walked from `draft` to `status`
    /// (`draft`, `open`, `paid`, `void` or `uncollectible`) with the events Stripe sends
    /// on the way (`invoice.created`, `invoice.finalized`, `invoice.paid`, …, each status
    /// change also an `invoice.updated`). A `due_date` makes it a `send_invoice` invoice.
    /// `number` shows once finalized (a draft's is `null`). Returns its id (`in_…`).
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the invoice's own fields"
    )]
    pub fn add_invoice(
        &self,
        customer: &str,
        number: &str,
        currency: &str,
        total_minor: i64,
        status: &str,
        period_start: i64,
        period_end: i64,
        due_date: Option<i64>,
    ) -> String {
        self.backend.lock().create_invoice(
            NewInvoice {
                customer,
                number,
                currency,
                total: total_minor,
                status,
                period_start,
                period_end,
                due_date,
            },
            &Origin::default(),
        )
    }

    /// Moves invoice `id` to `status` (a draft is finalized first), setting its
    /// `status_transitions` and amounts, and records the events: `invoice.paid` and
    /// `invoice.payment_succeeded`, `invoice.voided` or `invoice.marked_uncollectible`,
    /// then `invoice.updated` with `previous_attributes`. Does nothing when the invoice
    /// is unknown or already in that status.
    pub fn set_invoice_status(&self, id: &str, status: &str) {
        self.backend
            .lock()
            .set_invoice_status(id, status, &Origin::default());
    }

    /// Records a payment of `amount_minor` on `invoice`: a succeeded card charge for the
    /// invoice's customer (`charge.succeeded`) and an `invoice_payment` pointing at it
    /// (`invoice_payment.paid`). The invoice itself is not changed: mark it paid with
    /// [`Self::set_invoice_status`]. Returns the invoice payment's id (`inpay_…`).
    pub fn add_invoice_payment(&self, invoice: &str, amount_minor: i64) -> String {
        self.backend.lock().pay_invoice(invoice, amount_minor)
    }

    /// The charge (`ch_…`) behind invoice payment `id`, if there is one.
    pub fn charge_of_payment(&self, id: &str) -> Option<String> {
        self.backend
            .lock()
            .payments
            .get(id)
            .map(|p| p.charge.clone())
    }

    /// Refunds `amount_minor` of `charge` (status `succeeded`), raising the charge's
    /// `amount_refunded`; records `refund.created` and `charge.refunded`. Returns the
    /// refund's id (`re_…`). An unknown charge id still gets a refund (in `usd`, with no
    /// customer).
    pub fn add_refund(&self, charge: &str, amount_minor: i64) -> String {
        self.backend.lock().refund(charge, amount_minor)
    }

    /// Adds `count` open invoices for `customer` in one go, numbered `BULK-000001`,
    /// `BULK-000002`, … (continuing across calls), each a second apart. To stay fast and
    /// small for 100 000 of them it records **no events** for them.
    pub fn add_invoices_bulk(
        &self,
        customer: &str,
        count: usize,
        currency: &str,
        total_minor: i64,
    ) {
        self.backend
            .lock()
            .bulk_invoices(customer, count, currency, total_minor);
    }

    /// Answers the next `count` requests (any endpoint, after authentication; on top of
    /// faults already queued) with `fault`. Faulted requests are never stored for
    /// idempotency, so a retry with the same key runs for real.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        let mut backend = self.backend.lock();
        backend.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// Every request received so far (including rejected ones), oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.backend.lock().requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.backend.lock().requests.clear();
    }

    /// Every event recorded so far, oldest first, as `GET /v1/events/{id}` renders it
    /// (what a test posts to the portal as a webhook, signed with [`sign`]).
    pub fn events(&self) -> Vec<Value> {
        self.backend
            .lock()
            .events
            .rows
            .iter()
            .map(event_json)
            .collect()
    }
}

/// The `Stripe-Signature` header value for a webhook delivery of `body` at `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`, keyed with the secret's
/// UTF-8 bytes, `whsec_` prefix included.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    sign_with(&[secret], timestamp, body)
}

/// Like [`sign`], with one `v1` entry per secret, in order (what Stripe sends while a
/// rolled secret is still valid).
pub fn sign_with(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let _ = write!(header, ",v1={}", signature(secret, timestamp, body));
    }
    header
}

fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

/// A small fast generator for ids (splitmix64), seeded at random per fake.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| {
                let at = (self.next() % alphabet.len() as u64) as usize;
                char::from(alphabet.get(at).copied().unwrap_or(b'0'))
            })
            .collect()
    }
}

/// Something kept in a [`Table`].
trait Record {
    fn id(&self) -> &str;
    fn created(&self) -> i64;
    /// Whether lists show it (deleted customers are only retrievable).
    fn listed(&self) -> bool {
        true
    }
}

/// Objects of one kind in creation order (so by strictly increasing `created`), with
/// their positions by id.
struct Table<T> {
    rows: Vec<T>,
    index: HashMap<String, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Record> Table<T> {
    fn insert(&mut self, row: T) {
        self.index.insert(row.id().to_owned(), self.rows.len());
        self.rows.push(row);
    }

    fn get(&self, id: &str) -> Option<&T> {
        self.index.get(id).and_then(|at| self.rows.get(*at))
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.index.get(id).and_then(|at| self.rows.get_mut(*at))
    }

    /// One page of the rows `keep` accepts, newest first, and whether more lie beyond it
    /// (older ones, or newer ones when paging with `ending_before`). `object` names the
    /// kind in the unknown-cursor error.
    fn page(
        &self,
        query: &ListQuery,
        object: &str,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<&T>, bool), ApiError> {
        let (min, max) = query.created.bounds();
        let mut lo = self.rows.partition_point(|r| r.created() < min);
        let mut hi = self.rows.partition_point(|r| r.created() <= max);
        if let Some(cursor) = &query.starting_after {
            let at = self
                .index
                .get(cursor)
                .ok_or_else(|| ApiError::cursor("starting_after", object, cursor))?;
            hi = hi.min(*at);
        }
        if let Some(cursor) = &query.ending_before {
            let at = self
                .index
                .get(cursor)
                .ok_or_else(|| ApiError::cursor("ending_before", object, cursor))?;
            lo = lo.max(at + 1);
        }
        let span: &[T] = if lo < hi {
            self.rows.get(lo..hi).unwrap_or_default()
        } else {
            &[]
        };
        let want = query.limit + 1;
        let mut found: Vec<&T> = if query.ending_before.is_some() {
            // The items right after the cursor, oldest first; shown newest first below.
            span.iter()
                .filter(|r| r.listed() && keep(*r))
                .take(want)
                .collect()
        } else {
            span.iter()
                .rev()
                .filter(|r| r.listed() && keep(*r))
                .take(want)
                .collect()
        };
        let has_more = found.len() > query.limit;
        found.truncate(query.limit);
        if query.ending_before.is_some() {
            found.reverse();
        }
        Ok((found, has_more))
    }
}

struct Customer {
    id: String,
    created: i64,
    name: Option<String>,
    email: Option<String>,
    metadata: BTreeMap<String, String>,
    currency: Option<String>,
    invoice_prefix: String,
    next_invoice_sequence: i64,
    deleted: bool,
}

impl Record for Customer {
    fn id(&self) -> &str {
        &self.id
    }
    fn created(&self) -> i64 {
        self.created
    }
    fn listed(&self) -> bool {
        !self.deleted
    }
}

struct Invoice {
    id: String,
    created: i64,
    customer: String,
    customer_name: Option<String>,
    customer_email: Option<String>,
    number: String,
    currency: String,
    total: i64,
    status: String,
    period_start: i64,
    period_end: i64,
    due_date: Option<i64>,
    finalized_at: Option<i64>,
    paid_at: Option<i64>,
    voided_at: Option<i64>,
    uncollectible_at: Option<i64>,
}

impl Record for Invoice {
    fn id(&self) -> &str {
        &self.id
    }
    fn created(&self) -> i64 {
        self.created
    }
}

struct InvoicePayment {
    id: String,
    created: i64,
    invoice: String,
    amount: i64,
    currency: String,
    charge: String,
    is_default: bool,
}

impl Record for InvoicePayment {
    fn id(&self) -> &str {
        &self.id
    }
    fn created(&self) -> i64 {
        self.created
    }
}

struct Charge {
    id: String,
    created: i64,
    customer: Option<String>,
    billing_name: Option<String>,
    billing_email: Option<String>,
    amount: i64,
    amount_refunded: i64,
    currency: String,
    description: Option<String>,
    payment_method: String,
    balance_transaction: String,
}

impl Record for Charge {
    fn id(&self) -> &str {
        &self.id
    }
    fn created(&self) -> i64 {
        self.created
    }
}

struct Refund {
    id: String,
    created: i64,
    charge: String,
    amount: i64,
    currency: String,
    customer: Option<String>,
    payment_method: Option<String>,
    balance_transaction: String,
}

impl Record for Refund {
    fn id(&self) -> &str {
        &self.id
    }
    fn created(&self) -> i64 {
        self.created
    }
}

struct Event {
    id: String,
    created: i64,
    kind: String,
    object: Value,
    previous: Option<Map<String, Value>>,
    request_id: Option<String>,
    idempotency_key: Option<String>,
}

impl Record for Event {
    fn id(&self) -> &str {
        &self.id
    }
    fn created(&self) -> i64 {
        self.created
    }
}

/// The request an event came from (`request` on the event): none for the helpers.
#[derive(Default)]
struct Origin {
    request_id: Option<String>,
    idempotency_key: Option<String>,
}

struct CustomerChanges {
    /// `Some(None)` clears the name.
    name: Option<Option<String>>,
    /// `Some(None)` clears the email.
    email: Option<Option<String>>,
    clear_metadata: bool,
    /// An empty value removes the key.
    metadata: Vec<(String, String)>,
}

struct NewInvoice<'a> {
    customer: &'a str,
    number: &'a str,
    currency: &'a str,
    total: i64,
    status: &'a str,
    period_start: i64,
    period_end: i64,
    due_date: Option<i64>,
}

/// A remembered idempotent `POST`.
struct Stored {
    endpoint: String,
    params: Vec<(String, String)>,
    status: StatusCode,
    body: Value,
    request_id: String,
    at: i64,
}

struct Backend {
    clock: i64,
    rng: Rng,
    account_id: String,
    keys: HashSet<String>,
    expired: HashSet<String>,
    faults: VecDeque<Fault>,
    requests: Vec<Recorded>,
    idempotency: HashMap<String, Stored>,
    customers: Table<Customer>,
    invoices: Table<Invoice>,
    payments: Table<InvoicePayment>,
    charges: Table<Charge>,
    refunds: Table<Refund>,
    events: Table<Event>,
    bulk_numbers: usize,
}

impl Backend {
    fn new() -> Self {
        let mut rng = Rng(uuid::Uuid::new_v4().as_u64_pair().0);
        let account_id = format!("acct_fake{}", rng.pick(ALNUM, 12));
        Self {
            clock: START_TIME,
            rng,
            account_id,
            keys: HashSet::from([API_KEY.to_owned()]),
            expired: HashSet::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            idempotency: HashMap::new(),
            customers: Table::default(),
            invoices: Table::default(),
            payments: Table::default(),
            charges: Table::default(),
            refunds: Table::default(),
            events: Table::default(),
            bulk_numbers: 0,
        }
    }

    /// The current second, moving the clock on by one.
    fn tick(&mut self) -> i64 {
        let now = self.clock;
        self.clock += 1;
        now
    }

    fn new_id(&mut self, prefix: &str, len: usize) -> String {
        format!("{prefix}{}", self.rng.pick(ALNUM, len))
    }

    fn emit(
        &mut self,
        kind: &str,
        object: Value,
        previous: Option<Map<String, Value>>,
        origin: &Origin,
    ) {
        let created = self.tick();
        let id = self.new_id("evt_", 24);
        self.events.insert(Event {
            id,
            created,
            kind: kind.to_owned(),
            object,
            previous,
            request_id: origin.request_id.clone(),
            idempotency_key: origin.idempotency_key.clone(),
        });
    }

    fn create_customer(
        &mut self,
        name: Option<String>,
        email: Option<String>,
        metadata: BTreeMap<String, String>,
        origin: &Origin,
    ) -> String {
        let created = self.tick();
        let id = self.new_id("cus_", 14);
        let invoice_prefix = self.rng.pick(HEX_UPPER, 8);
        let customer = Customer {
            id: id.clone(),
            created,
            name,
            email,
            metadata,
            currency: None,
            invoice_prefix,
            next_invoice_sequence: 1,
            deleted: false,
        };
        let snapshot = customer_json(&customer);
        self.customers.insert(customer);
        self.emit("customer.created", snapshot, None, origin);
        id
    }

    /// Applies `changes` to a live customer and returns it as it now is.
    fn modify_customer(
        &mut self,
        id: &str,
        changes: CustomerChanges,
        origin: &Origin,
    ) -> Option<Value> {
        let customer = self.customers.get_mut(id).filter(|c| !c.deleted)?;
        let before = customer_json(customer);
        if let Some(name) = changes.name {
            customer.name = name;
        }
        if let Some(email) = changes.email {
            customer.email = email;
        }
        if changes.clear_metadata {
            customer.metadata.clear();
        }
        for (key, value) in changes.metadata {
            if value.is_empty() {
                customer.metadata.remove(&key);
            } else {
                customer.metadata.insert(key, value);
            }
        }
        let after = customer_json(customer);
        let previous = previous_attributes(&before, &after);
        if !previous.is_empty() {
            self.emit("customer.updated", after.clone(), Some(previous), origin);
        }
        Some(after)
    }

    fn delete_customer(&mut self, id: &str) {
        let Some(customer) = self.customers.get_mut(id).filter(|c| !c.deleted) else {
            return;
        };
        let last = customer_json(customer);
        customer.deleted = true;
        self.emit("customer.deleted", last, None, &Origin::default());
    }

    /// Notes an invoice in `currency` for `customer` (its currency is set by the first
    /// one, and its invoice sequence moves on by `count`) and returns the name and email
    /// the invoice copies.
    fn bill_customer(
        &mut self,
        customer: &str,
        currency: &str,
        count: usize,
    ) -> (Option<String>, Option<String>) {
        let Some(customer) = self.customers.get_mut(customer) else {
            return (None, None);
        };
        if customer.currency.is_none() {
            customer.currency = Some(currency.to_owned());
        }
        customer.next_invoice_sequence += i64::try_from(count).unwrap_or(i64::MAX);
        (customer.name.clone(), customer.email.clone())
    }

    fn create_invoice(&mut self, new: NewInvoice<'_>, origin: &Origin) -> String {
        let currency = new.currency.to_lowercase();
        let (customer_name, customer_email) = self.bill_customer(new.customer, &currency, 1);
        let created = self.tick();
        let id = self.new_id("in_", 24);
        let invoice = Invoice {
            id: id.clone(),
            created,
            customer: new.customer.to_owned(),
            customer_name,
            customer_email,
            number: new.number.to_owned(),
            currency,
            total: new.total,
            status: "draft".to_owned(),
            period_start: new.period_start,
            period_end: new.period_end,
            due_date: new.due_date,
            finalized_at: None,
            paid_at: None,
            voided_at: None,
            uncollectible_at: None,
        };
        let snapshot = invoice_json(&self.account_id, &invoice);
        self.invoices.insert(invoice);
        self.emit("invoice.created", snapshot, None, origin);
        self.set_invoice_status(&id, new.status, origin);
        id
    }

    fn bulk_invoices(&mut self, customer: &str, count: usize, currency: &str, total: i64) {
        let currency = currency.to_lowercase();
        let (customer_name, customer_email) = self.bill_customer(customer, &currency, count);
        self.invoices.rows.reserve(count);
        self.invoices.index.reserve(count);
        for _ in 0..count {
            self.bulk_numbers += 1;
            let created = self.tick();
            let id = self.new_id("in_", 24);
            self.invoices.insert(Invoice {
                id,
                created,
                customer: customer.to_owned(),
                customer_name: customer_name.clone(),
                customer_email: customer_email.clone(),
                number: format!("BULK-{:06}", self.bulk_numbers),
                currency: currency.clone(),
                total,
                status: "open".to_owned(),
                period_start: created - 30 * 86_400,
                period_end: created,
                due_date: None,
                finalized_at: Some(created),
                paid_at: None,
                voided_at: None,
                uncollectible_at: None,
            });
        }
    }

    fn set_invoice_status(&mut self, id: &str, target: &str, origin: &Origin) {
        let Some(current) = self.invoices.get(id).map(|i| i.status.clone()) else {
            return;
        };
        if current == target {
            return;
        }
        if current == "draft" {
            self.step_invoice(id, "open", &["invoice.finalized"], origin);
            if target == "open" {
                return;
            }
        }
        let kinds: &[&str] = match target {
            "paid" => &["invoice.paid", "invoice.payment_succeeded"],
            "void" => &["invoice.voided"],
            "uncollectible" => &["invoice.marked_uncollectible"],
            _ => &[],
        };
        self.step_invoice(id, target, kinds, origin);
    }

    /// One status change: the events in `kinds`, then `invoice.updated`.
    fn step_invoice(&mut self, id: &str, target: &str, kinds: &[&str], origin: &Origin) {
        let now = self.clock;
        let Some(invoice) = self.invoices.get_mut(id) else {
            return;
        };
        let before = invoice_json(&self.account_id, invoice);
        invoice.status = target.to_owned();
        match target {
            "open" => invoice.finalized_at = Some(now),
            "paid" => invoice.paid_at = Some(now),
            "void" => invoice.voided_at = Some(now),
            "uncollectible" => invoice.uncollectible_at = Some(now),
            _ => {}
        }
        let after = invoice_json(&self.account_id, invoice);
        for kind in kinds {
            self.emit(kind, after.clone(), None, origin);
        }
        let previous = previous_attributes(&before, &after);
        self.emit("invoice.updated", after, Some(previous), origin);
    }

    fn pay_invoice(&mut self, invoice_id: &str, amount: i64) -> String {
        let origin = Origin::default();
        let (customer, currency, number) = self.invoices.get(invoice_id).map_or_else(
            || (None, "usd".to_owned(), None),
            |i| {
                (
                    Some(i.customer.clone()),
                    i.currency.clone(),
                    Some(i.number.clone()),
                )
            },
        );
        let (billing_name, billing_email) = customer
            .as_deref()
            .and_then(|c| self.customers.get(c))
            .map(|c| (c.name.clone(), c.email.clone()))
            .unwrap_or_default();
        let created = self.tick();
        let charge_id = self.new_id("ch_", 24);
        let payment_method = self.new_id("pm_", 24);
        let balance_transaction = self.new_id("txn_", 24);
        let charge = Charge {
            id: charge_id.clone(),
            created,
            customer,
            billing_name,
            billing_email,
            amount,
            amount_refunded: 0,
            currency: currency.clone(),
            description: number.map(|n| format!("Payment for Invoice {n}")),
            payment_method,
            balance_transaction,
        };
        let snapshot = charge_json(&charge);
        self.charges.insert(charge);
        self.emit("charge.succeeded", snapshot, None, &origin);

        let is_default = !self.payments.rows.iter().any(|p| p.invoice == invoice_id);
        let created = self.tick();
        let id = self.new_id("inpay_", 24);
        let payment = InvoicePayment {
            id: id.clone(),
            created,
            invoice: invoice_id.to_owned(),
            amount,
            currency,
            charge: charge_id,
            is_default,
        };
        let snapshot = payment_json(&payment);
        self.payments.insert(payment);
        self.emit("invoice_payment.paid", snapshot, None, &origin);
        id
    }

    fn refund(&mut self, charge_id: &str, amount: i64) -> String {
        let origin = Origin::default();
        let (currency, customer, payment_method) = self.charges.get(charge_id).map_or_else(
            || ("usd".to_owned(), None, None),
            |c| {
                (
                    c.currency.clone(),
                    c.customer.clone(),
                    Some(c.payment_method.clone()),
                )
            },
        );
        let created = self.tick();
        let id = self.new_id("re_", 24);
        let balance_transaction = self.new_id("txn_", 24);
        let refund = Refund {
            id: id.clone(),
            created,
            charge: charge_id.to_owned(),
            amount,
            currency,
            customer,
            payment_method,
            balance_transaction,
        };
        let snapshot = refund_json(&refund);
        self.refunds.insert(refund);
        self.emit("refund.created", snapshot, None, &origin);
        if let Some(charge) = self.charges.get_mut(charge_id) {
            charge.amount_refunded += amount;
            let snapshot = charge_json(charge);
            self.emit("charge.refunded", snapshot, None, &origin);
        }
        id
    }

    /// Whatever `id` names (by its prefix), rendered, for expansion.
    fn render(&self, id: &str) -> Option<Value> {
        let prefix = id.split('_').next().unwrap_or_default();
        match prefix {
            "cus" => self.customers.get(id).map(customer_view),
            "in" => self
                .invoices
                .get(id)
                .map(|i| invoice_json(&self.account_id, i)),
            "ch" => self.charges.get(id).map(charge_json),
            _ => None,
        }
    }

    /// Replaces the fields named in `paths` of `object` by the objects they point at.
    fn expand(&self, object: &mut Value, paths: &[String]) -> Result<(), ApiError> {
        let Some(map) = object.as_object_mut() else {
            return Ok(());
        };
        let kind = map
            .get("object")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for path in paths {
            match (kind.as_str(), path.as_str()) {
                ("invoice" | "charge" | "refund", "customer")
                | ("refund", "charge")
                | ("invoice_payment", "invoice") => {
                    let target = map.get(path.as_str()).and_then(Value::as_str);
                    if let Some(found) = target.and_then(|id| self.render(id)) {
                        map.insert(path.clone(), found);
                    }
                }
                ("invoice", "payments") => {
                    let id = map.get("id").and_then(Value::as_str).unwrap_or_default();
                    let data: Vec<Value> = self
                        .payments
                        .rows
                        .iter()
                        .rev()
                        .filter(|p| p.invoice == id)
                        .map(payment_json)
                        .collect();
                    let url = format!("/v1/invoices/{id}/payments");
                    map.insert(
                        "payments".to_owned(),
                        json!({"object": "list", "data": data, "has_more": false, "url": url}),
                    );
                }
                _ => {
                    return Err(ApiError::invalid(
                        format!(
                            "This property cannot be expanded ({path}). (The fake Stripe \
                             expands customer, charge, invoice and an invoice's payments.)"
                        ),
                        None,
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

fn extend(map: &mut Map<String, Value>, part: Value) {
    if let Value::Object(part) = part {
        map.extend(part);
    }
}

fn customer_json(c: &Customer) -> Value {
    json!({
        "id": c.id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": c.created,
        "currency": c.currency,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": c.email,
        "invoice_prefix": c.invoice_prefix,
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": c.metadata,
        "name": c.name,
        "next_invoice_sequence": c.next_invoice_sequence,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    })
}

/// A customer as retrieval shows it: the stub once deleted.
fn customer_view(c: &Customer) -> Value {
    if c.deleted {
        json!({"id": c.id, "object": "customer", "deleted": true})
    } else {
        customer_json(c)
    }
}

/// `(amount_due, amount_paid, amount_remaining)` for the invoice's status.
fn invoice_amounts(i: &Invoice) -> (i64, i64, i64) {
    match i.status.as_str() {
        "paid" => (i.total, i.total, 0),
        // Nothing can be collected on a voided invoice any more.
        "void" => (i.total, 0, 0),
        _ => (i.total, 0, i.total),
    }
}

fn line_json(i: &Invoice) -> Value {
    let tail = i.id.strip_prefix("in_").unwrap_or(&i.id);
    json!({
        "id": format!("il_{tail}"),
        "object": "line_item",
        "amount": i.total,
        "currency": i.currency,
        "description": "Fake Stripe service",
        "discount_amounts": [],
        "discountable": true,
        "discounts": [],
        "invoice": i.id,
        "livemode": false,
        "metadata": {},
        "parent": null,
        "period": {"end": i.period_end, "start": i.period_start},
        "pretax_credit_amounts": [],
        "pricing": null,
        "quantity": 1,
        "quantity_decimal": "1",
        "subscription": null,
        "subtotal": i.total,
        "taxes": []
    })
}

fn invoice_json(account_id: &str, i: &Invoice) -> Value {
    let (amount_due, amount_paid, amount_remaining) = invoice_amounts(i);
    let draft = i.status == "draft";
    let tail = i.id.strip_prefix("in_").unwrap_or(&i.id);
    let hosted = (!draft).then(|| format!("https://invoice.stripe.com/i/{account_id}/test_{tail}"));
    let pdf =
        (!draft).then(|| format!("https://pay.stripe.com/invoice/{account_id}/test_{tail}/pdf"));
    let collection_method = if i.due_date.is_some() {
        "send_invoice"
    } else {
        "charge_automatically"
    };
    let paid = i.status == "paid";
    let mut map = Map::new();
    extend(
        &mut map,
        json!({
            "id": i.id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Fake Stripe",
            "account_tax_ids": null,
            "amount_due": amount_due,
            "amount_overpaid": 0,
            "amount_paid": amount_paid,
            "amount_remaining": amount_remaining,
            "amount_shipping": 0,
            "application": null,
            "attempt_count": i64::from(paid),
            "attempted": paid,
            "auto_advance": matches!(i.status.as_str(), "draft" | "open"),
            "automatic_tax": {
                "disabled_reason": null,
                "enabled": false,
                "liability": null,
                "provider": null,
                "status": null
            },
            "automatically_finalizes_at": null,
            "billing_reason": "manual",
            "collection_method": collection_method,
            "created": i.created,
            "currency": i.currency,
            "custom_fields": null,
            "customer": i.customer,
            "customer_account": null,
            "customer_address": null,
            "customer_email": i.customer_email,
            "customer_name": i.customer_name,
            "customer_phone": null,
            "customer_shipping": null,
            "customer_tax_exempt": "none",
            "customer_tax_ids": []
        }),
    );
    extend(
        &mut map,
        json!({
            "default_payment_method": null,
            "default_source": null,
            "default_tax_rates": [],
            "description": null,
            "discounts": [],
            "due_date": i.due_date,
            "effective_at": i.finalized_at,
            "ending_balance": if draft { Value::Null } else { json!(0) },
            "footer": null,
            "from_invoice": null,
            "hosted_invoice_url": hosted,
            "invoice_pdf": pdf,
            "issuer": {"type": "self"},
            "last_finalization_error": null,
            "latest_revision": null,
            "lines": {
                "object": "list",
                "data": [line_json(i)],
                "has_more": false,
                "url": format!("/v1/invoices/{}/lines", i.id)
            },
            "livemode": false,
            "metadata": {},
            "next_payment_attempt": null,
            "number": if draft { None } else { Some(&i.number) },
            "on_behalf_of": null,
            "parent": null,
            "payment_settings": {
                "default_mandate": null,
                "payment_method_options": null,
                "payment_method_types": null
            }
        }),
    );
    extend(
        &mut map,
        json!({
            "period_end": i.period_end,
            "period_start": i.period_start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": null,
            "rendering": null,
            "shipping_cost": null,
            "shipping_details": null,
            "starting_balance": 0,
            "statement_descriptor": null,
            "status": i.status,
            "status_transitions": {
                "finalized_at": i.finalized_at,
                "marked_uncollectible_at": i.uncollectible_at,
                "paid_at": i.paid_at,
                "voided_at": i.voided_at
            },
            "subtotal": i.total,
            "subtotal_excluding_tax": i.total,
            "test_clock": null,
            "total": i.total,
            "total_discount_amounts": [],
            "total_excluding_tax": i.total,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": i.created
        }),
    );
    Value::Object(map)
}

fn payment_json(p: &InvoicePayment) -> Value {
    json!({
        "id": p.id,
        "object": "invoice_payment",
        "amount_paid": p.amount,
        "amount_requested": p.amount,
        "created": p.created,
        "currency": p.currency,
        "invoice": p.invoice,
        "is_default": p.is_default,
        "livemode": false,
        "payment": {"type": "charge", "charge": p.charge},
        "status": "paid",
        "status_transitions": {"canceled_at": null, "paid_at": p.created}
    })
}

fn charge_json(c: &Charge) -> Value {
    let tail = c.id.strip_prefix("ch_").unwrap_or(&c.id);
    let mut map = Map::new();
    extend(
        &mut map,
        json!({
            "id": c.id,
            "object": "charge",
            "amount": c.amount,
            "amount_captured": c.amount,
            "amount_refunded": c.amount_refunded,
            "application": null,
            "application_fee": null,
            "application_fee_amount": null,
            "balance_transaction": c.balance_transaction,
            "billing_details": {
                "address": null,
                "email": c.billing_email,
                "name": c.billing_name,
                "phone": null,
                "tax_id": null
            },
            "calculated_statement_descriptor": "FAKE STRIPE",
            "captured": true,
            "created": c.created,
            "currency": c.currency,
            "customer": c.customer,
            "description": c.description,
            "disputed": false,
            "failure_balance_transaction": null,
            "failure_code": null,
            "failure_message": null,
            "fraud_details": {},
            "livemode": false,
            "metadata": {},
            "on_behalf_of": null
        }),
    );
    extend(
        &mut map,
        json!({
            "outcome": {
                "advice_code": null,
                "network_advice_code": null,
                "network_decline_code": null,
                "network_status": "approved_by_network",
                "reason": null,
                "risk_level": "normal",
                "seller_message": "Payment complete.",
                "type": "authorized"
            },
            "paid": true,
            "payment_intent": null,
            "payment_method": c.payment_method,
            "payment_method_details": {
                "type": "card",
                "card": {
                    "brand": "visa",
                    "country": "US",
                    "exp_month": 8,
                    "exp_year": 2030,
                    "funding": "credit",
                    "last4": "4242",
                    "network": "visa"
                }
            },
            "receipt_email": c.billing_email,
            "receipt_number": null,
            "receipt_url": format!("https://pay.stripe.com/receipts/payment/test_{tail}"),
            "refunded": c.amount_refunded >= c.amount,
            "review": null,
            "shipping": null,
            "source": null,
            "source_transfer": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": "succeeded",
            "transfer_data": null,
            "transfer_group": null
        }),
    );
    Value::Object(map)
}

fn refund_json(r: &Refund) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": r.balance_transaction,
        "charge": r.charge,
        "created": r.created,
        "currency": r.currency,
        "customer": r.customer,
        "customer_account": null,
        "destination_details": {"type": "card", "card": {"type": "refund"}},
        "metadata": {},
        "payment_intent": null,
        "payment_method": r.payment_method,
        "reason": null,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null
    })
}

fn event_json(e: &Event) -> Value {
    let mut data = Map::new();
    data.insert("object".to_owned(), e.object.clone());
    if let Some(previous) = &e.previous {
        data.insert(
            "previous_attributes".to_owned(),
            Value::Object(previous.clone()),
        );
    }
    json!({
        "id": e.id,
        "object": "event",
        "api_version": API_VERSION,
        "created": e.created,
        "data": data,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": e.request_id, "idempotency_key": e.idempotency_key},
        "type": e.kind
    })
}

fn account_json(b: &Backend) -> Value {
    json!({
        "id": b.account_id,
        "object": "account",
        "business_profile": {
            "mcc": null,
            "name": "Fake Stripe",
            "product_description": null,
            "support_email": null,
            "support_phone": null,
            "support_url": null,
            "url": null
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": true,
        "country": "US",
        "created": START_TIME - 365 * 86_400,
        "default_currency": "usd",
        "details_submitted": true,
        "email": "billing@fake-stripe.test",
        "metadata": {},
        "payouts_enabled": true,
        "settings": {"dashboard": {"display_name": "Fake Stripe", "timezone": "Etc/UTC"}},
        "type": "standard"
    })
}

/// Stripe's `previous_attributes`: the old values of what changed (nested objects only
/// with their changed keys; keys that did not exist before as `null`).
fn previous_attributes(before: &Value, after: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let (Value::Object(before), Value::Object(after)) = (before, after) else {
        return out;
    };
    for (key, old) in before {
        match after.get(key) {
            Some(new) if new == old => {}
            Some(new) if old.is_object() && new.is_object() => {
                let inner = previous_attributes(old, new);
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            _ => {
                out.insert(key.clone(), old.clone());
            }
        }
    }
    for key in after.keys() {
        if !before.contains_key(key) {
            out.insert(key.clone(), Value::Null);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// An error answer in Stripe's envelope.
struct ApiError {
    status: StatusCode,
    body: Value,
    /// Whether an idempotent request that ended with it is remembered (validation
    /// errors are not).
    store: bool,
}

impl ApiError {
    fn new(status: StatusCode, error: Value, store: bool) -> Self {
        Self {
            status,
            body: json!({ "error": error }),
            store,
        }
    }

    /// 400 `invalid_request_error`.
    fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        let mut error = json!({"message": message.into(), "type": "invalid_request_error"});
        if let (Some(param), Some(map)) = (param, error.as_object_mut()) {
            map.insert("param".to_owned(), json!(param));
        }
        Self::new(StatusCode::BAD_REQUEST, error, false)
    }

    fn invalid_integer(param: &str, raw: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({
                "code": "parameter_invalid_integer",
                "doc_url": "https://stripe.com/docs/error-codes/parameter-invalid-integer",
                "message": format!("Invalid integer: {raw}"),
                "param": param,
                "type": "invalid_request_error"
            }),
            false,
        )
    }

    fn unknown_parameter(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({
                "code": "parameter_unknown",
                "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
                "message": format!(
                    "Received unknown parameter: {param} (or one the fake Stripe does not support)"
                ),
                "param": param,
                "type": "invalid_request_error"
            }),
            false,
        )
    }

    /// 400 for a cursor naming no object.
    fn cursor(param: &str, object: &str, id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": format!("No such {object}: '{id}'"),
                "param": param,
                "type": "invalid_request_error"
            }),
            false,
        )
    }

    /// 404 `resource_missing` for `GET /v1/<objects>/{id}`.
    fn missing(object: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            json!({
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": format!("No such {object}: '{id}'"),
                "param": "id",
                "type": "invalid_request_error"
            }),
            true,
        )
    }

    fn unrecognized(method: &Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            json!({
                "message": format!(
                    "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs \
                     or we can help at https://support.stripe.com/."
                ),
                "type": "invalid_request_error"
            }),
            false,
        )
    }

    fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space; bad
/// escapes are kept as they are).
fn decode_component(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (byte, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                at += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                at += 1;
            }
            (other, None) => {
                out.push(other);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query or form parameters, decoded, in the order sent.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: &str) -> Self {
        Self(
            raw.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode_component(key), decode_component(value))
                })
                .collect(),
        )
    }

    /// The parameter a key belongs to: `created` for `created[gte]`.
    fn base(key: &str) -> &str {
        key.split('[').next().unwrap_or(key)
    }

    /// Rejects parameters outside `allowed`.
    fn check(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self
            .0
            .iter()
            .find(|(k, _)| !allowed.contains(&Self::base(k)))
        {
            Some((key, _)) => Err(ApiError::unknown_parameter(key)),
            None => Ok(()),
        }
    }

    /// The last value sent for exactly `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An array sent as `name[]=a&name[]=b` or `name[0]=a&name[1]=b` (indexed entries in
    /// index order, then the others in the order sent).
    fn array(&self, name: &str) -> Vec<String> {
        let mut indexed = BTreeMap::new();
        let mut plain = Vec::new();
        for (key, value) in &self.0 {
            let Some(inner) = key
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('['))
                .and_then(|rest| rest.strip_suffix(']'))
            else {
                continue;
            };
            match inner.parse::<usize>() {
                Ok(index) => {
                    indexed.insert(index, value.clone());
                }
                Err(_) => plain.push(value.clone()),
            }
        }
        indexed.into_values().chain(plain).collect()
    }

    /// A range filter: `name=N`, or any of `name[gt]`, `name[gte]`, `name[lt]`,
    /// `name[lte]`; `None` when none was sent.
    fn range(&self, name: &str) -> Result<Option<Range>, ApiError> {
        let mut range = Range::default();
        let mut any = false;
        for (key, value) in &self.0 {
            if Self::base(key) != name {
                continue;
            }
            let bound: i64 = value
                .parse()
                .map_err(|_| ApiError::invalid_integer(key, value))?;
            let op = key.strip_prefix(name).unwrap_or_default();
            match op {
                "" => {
                    range.gte = Some(bound);
                    range.lte = Some(bound);
                }
                "[gt]" => range.gt = Some(bound),
                "[gte]" => range.gte = Some(bound),
                "[lt]" => range.lt = Some(bound),
                "[lte]" => range.lte = Some(bound),
                _ => return Err(ApiError::unknown_parameter(key)),
            }
            any = true;
        }
        Ok(any.then_some(range))
    }

    /// The pairs in a canonical order, for comparing idempotent requests.
    fn canonical(&self) -> Vec<(String, String)> {
        let mut pairs = self.0.clone();
        pairs.sort();
        pairs
    }
}

/// `created[gt|gte|lt|lte]` bounds.
#[derive(Clone, Copy, Default)]
struct Range {
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl Range {
    /// The inclusive `(min, max)` the range allows.
    fn bounds(self) -> (i64, i64) {
        let min = self
            .gt
            .map_or(i64::MIN, |v| v.saturating_add(1))
            .max(self.gte.unwrap_or(i64::MIN));
        let max = self
            .lt
            .map_or(i64::MAX, |v| v.saturating_sub(1))
            .min(self.lte.unwrap_or(i64::MAX));
        (min, max)
    }

    fn contains(self, value: i64) -> bool {
        let (min, max) = self.bounds();
        (min..=max).contains(&value)
    }
}

/// What every list takes.
struct ListQuery {
    limit: usize,
    starting_after: Option<String>,
    ending_before: Option<String>,
    created: Range,
    /// Expansions of the listed objects (`data.` stripped).
    expand: Vec<String>,
}

impl ListQuery {
    /// Reads the pagination parameters, rejecting any parameter but those and `filters`.
    fn parse(params: &Params, filters: &[&str]) -> Result<Self, ApiError> {
        let mut allowed = vec!["limit", "starting_after", "ending_before", "expand"];
        allowed.extend_from_slice(filters);
        params.check(&allowed)?;
        let limit = match params.get("limit") {
            None => 10,
            Some(raw) => {
                let limit: i64 = raw
                    .parse()
                    .map_err(|_| ApiError::invalid_integer("limit", raw))?;
                if limit < 1 {
                    return Err(ApiError::invalid(
                        "This value must be greater than or equal to 1.",
                        Some("limit"),
                    ));
                }
                if limit > 100 {
                    return Err(ApiError::invalid(
                        "This value must be less than or equal to 100.",
                        Some("limit"),
                    ));
                }
                usize::try_from(limit).unwrap_or(10)
            }
        };
        let starting_after = params.get("starting_after").map(str::to_owned);
        let ending_before = params.get("ending_before").map(str::to_owned);
        if starting_after.is_some() && ending_before.is_some() {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: ending_before, starting_after.",
                None,
            ));
        }
        let created = if filters.contains(&"created") {
            params.range("created")?.unwrap_or_default()
        } else {
            Range::default()
        };
        let mut expand = Vec::new();
        for path in params.array("expand") {
            match path.strip_prefix("data.") {
                Some(inner) => expand.push(inner.to_owned()),
                None => {
                    return Err(ApiError::invalid(
                        format!("This property cannot be expanded ({path})."),
                        None,
                    ));
                }
            }
        }
        Ok(Self {
            limit,
            starting_after,
            ending_before,
            created,
            expand,
        })
    }
}

fn list_envelope(resource: &str, data: Vec<Value>, has_more: bool) -> Value {
    json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "url": format!("/v1/{resource}")
    })
}

/// Whether event type `kind` matches `pattern` (which may end with a `*` wildcard).
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => kind == pattern,
    }
}

/// An API key shown as Stripe does in errors: its prefix, stars, its last four.
fn mask(key: &str) -> String {
    let prefix = [
        "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_",
    ]
    .into_iter()
    .find(|p| key.starts_with(p))
    .unwrap_or_default();
    let rest: Vec<char> = key.chars().skip(prefix.len()).collect();
    let shown = rest.len().saturating_sub(4);
    let tail: String = rest.iter().skip(shown).collect();
    format!("{prefix}{}{tail}", "*".repeat(shown))
}

fn fault_response(fault: Fault) -> Response {
    let retry = HeaderName::from_static("stripe-should-retry");
    match fault {
        Fault::RateLimited { retry_after } => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                json!({
                    "code": "rate_limit",
                    "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
                    "message": "Request rate limit exceeded. Learn more about rate limits here \
                                https://stripe.com/docs/rate-limits.",
                    "type": "invalid_request_error"
                }),
                false,
            )
            .into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Fault::ServerError => {
            let mut response = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "An unknown error occurred", "type": "api_error"}),
                false,
            )
            .into_response();
            response
                .headers_mut()
                .insert(retry, HeaderValue::from_static("false"));
            response
        }
        Fault::LockTimeout => {
            let mut response = ApiError::new(
                StatusCode::CONFLICT,
                json!({
                    "code": "lock_timeout",
                    "doc_url": "https://stripe.com/docs/error-codes/lock-timeout",
                    "message": "This object cannot be accessed right now because another API \
                                request or Stripe process is currently accessing it. If you see \
                                this error intermittently, retry the request.",
                    "type": "invalid_request_error"
                }),
                false,
            )
            .into_response();
            response
                .headers_mut()
                .insert(retry, HeaderValue::from_static("true"));
            response
        }
        Fault::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"object\": \"list\", \"data\": [{\"id\": \"cus_",
        )
            .into_response(),
        Fault::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "message": "The service is temporarily unavailable. Please try again later.",
                "type": "api_error"
            }),
            false,
        )
        .into_response(),
    }
}

/// The key the request presents (bearer, or basic with the key as username).
fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(key) = value.strip_prefix("Bearer ") {
        return Some(key.trim().to_owned()).filter(|k| !k.is_empty());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let key = decoded.split(':').next().unwrap_or_default();
    Some(key.to_owned()).filter(|k| !k.is_empty())
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn handle(
    State(backend): State<Arc<Mutex<Backend>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&backend, &method, &uri, &headers, &body)
}

/// One request, start to end, under the lock (so idempotent requests never overlap).
fn serve(
    backend: &Mutex<Backend>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut backend = backend.lock();
    let request_id = backend.new_id("req_", 14);
    let idempotency_key = header_string(headers, "idempotency-key");
    backend.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        idempotency_key: idempotency_key.clone(),
        stripe_version: header_string(headers, "stripe-version"),
        authorization: header_string(headers, "authorization"),
        at: Instant::now(),
    });
    let mut response = backend.respond(
        method,
        uri,
        headers,
        body,
        &request_id,
        idempotency_key.as_deref(),
    );
    drop(backend);
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        out.insert(HeaderName::from_static("request-id"), value);
    }
    let version = headers
        .get("stripe-version")
        .cloned()
        .unwrap_or(HeaderValue::from_static(API_VERSION));
    out.insert(HeaderName::from_static("stripe-version"), version);
    if *method == Method::POST
        && let Some(key) = headers.get("idempotency-key")
    {
        out.insert(HeaderName::from_static("idempotency-key"), key.clone());
    }
    response
}

impl Backend {
    fn respond(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        request_id: &str,
        idempotency_key: Option<&str>,
    ) -> Response {
        if let Err(denied) = self.authenticate(headers) {
            let mut response = denied.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Stripe\""),
            );
            return response;
        }
        if let Some(fault) = self.faults.pop_front() {
            return fault_response(fault);
        }
        let path = uri.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if *method == Method::GET {
            let params = Params::parse(uri.query().unwrap_or_default());
            return match self.get(&segments, &params) {
                Some(Ok(body)) => json_response(StatusCode::OK, &body),
                Some(Err(error)) => error.into_response(),
                None => ApiError::unrecognized(method, path).into_response(),
            };
        }
        if *method == Method::POST {
            let params = Params::parse(&String::from_utf8_lossy(body));
            let origin = Origin {
                request_id: Some(request_id.to_owned()),
                idempotency_key: idempotency_key.map(str::to_owned),
            };
            return self.post(method, path, &segments, &params, &origin);
        }
        ApiError::unrecognized(method, path).into_response()
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let unauthorized = StatusCode::UNAUTHORIZED;
        let Some(key) = presented_key(headers) else {
            return Err(ApiError::new(
                unauthorized,
                json!({
                    "message": "You did not provide an API key. You need to provide your API key \
                                in the Authorization header, using Bearer auth (e.g. \
                                'Authorization: Bearer YOUR_SECRET_KEY'). See \
                                https://stripe.com/docs/api#authentication for details, or we \
                                can help at https://support.stripe.com/.",
                    "type": "invalid_request_error"
                }),
                false,
            ));
        };
        if self.expired.contains(&key) {
            return Err(ApiError::new(
                unauthorized,
                json!({
                    "code": "api_key_expired",
                    "doc_url": "https://stripe.com/docs/error-codes/api-key-expired",
                    "message": format!("Expired API Key provided: {}", mask(&key)),
                    "type": "invalid_request_error"
                }),
                false,
            ));
        }
        if self.keys.contains(&key) {
            return Ok(());
        }
        Err(ApiError::new(
            unauthorized,
            json!({
                "message": format!("Invalid API Key provided: {}", mask(&key)),
                "type": "invalid_request_error"
            }),
            false,
        ))
    }

    /// A `GET`; `None` when no such endpoint exists.
    fn get(&self, segments: &[&str], params: &Params) -> Option<Result<Value, ApiError>> {
        match segments {
            ["v1", "account"] => Some(params.check(&["expand"]).map(|()| account_json(self))),
            ["v1", resource] => self.list(resource, params),
            // Search is not faked: an unrecognized URL rather than "No such customer".
            ["v1", _, "search"] => None,
            ["v1", resource, id] if !id.is_empty() => self.retrieve(resource, id, params),
            ["v1", "invoices", id, "lines"] => Some(self.lines(id, params)),
            _ => None,
        }
    }

    fn list(&self, resource: &str, params: &Params) -> Option<Result<Value, ApiError>> {
        let result = match resource {
            "customers" => self.list_customers(params),
            "invoices" => self.list_invoices(params),
            "invoice_payments" => self.list_payments(params),
            "charges" => self.list_charges(params),
            "refunds" => self.list_refunds(params),
            "events" => self.list_events(params),
            _ => return None,
        };
        Some(result.map(|(data, has_more)| list_envelope(resource, data, has_more)))
    }

    /// Renders a page's objects with the asked-for expansions.
    fn finish<T>(
        &self,
        rows: Vec<&T>,
        render: impl Fn(&T) -> Value,
        expand: &[String],
    ) -> Result<Vec<Value>, ApiError> {
        rows.into_iter()
            .map(|row| {
                let mut object = render(row);
                self.expand(&mut object, expand)?;
                Ok(object)
            })
            .collect()
    }

    fn list_customers(&self, params: &Params) -> Result<(Vec<Value>, bool), ApiError> {
        let query = ListQuery::parse(params, &["created", "email"])?;
        let email = params.get("email");
        let (rows, has_more) = self.customers.page(&query, "customer", |c| {
            email.is_none_or(|e| c.email.as_deref() == Some(e))
        })?;
        Ok((self.finish(rows, customer_json, &query.expand)?, has_more))
    }

    fn list_invoices(&self, params: &Params) -> Result<(Vec<Value>, bool), ApiError> {
        let query = ListQuery::parse(
            params,
            &[
                "created",
                "customer",
                "status",
                "due_date",
                "collection_method",
            ],
        )?;
        let customer = params.get("customer");
        let status = params.get("status");
        if let Some(status) = status
            && !INVOICE_STATUSES.contains(&status)
        {
            return Err(ApiError::invalid(
                "Invalid status: must be one of draft, open, paid, uncollectible, or void",
                Some("status"),
            ));
        }
        let collection = params.get("collection_method");
        if let Some(method) = collection
            && !["charge_automatically", "send_invoice"].contains(&method)
        {
            return Err(ApiError::invalid(
                "Invalid collection_method: must be one of charge_automatically or send_invoice",
                Some("collection_method"),
            ));
        }
        let due = params.range("due_date")?;
        let (rows, has_more) = self.invoices.page(&query, "invoice", |i| {
            customer.is_none_or(|c| i.customer == c)
                && status.is_none_or(|s| i.status == s)
                && collection.is_none_or(|m| (m == "send_invoice") == i.due_date.is_some())
                && due.is_none_or(|range| i.due_date.is_some_and(|d| range.contains(d)))
        })?;
        let account = self.account_id.as_str();
        let data = self.finish(rows, |i| invoice_json(account, i), &query.expand)?;
        Ok((data, has_more))
    }

    fn list_payments(&self, params: &Params) -> Result<(Vec<Value>, bool), ApiError> {
        let query = ListQuery::parse(params, &["created", "invoice", "status"])?;
        let invoice = params.get("invoice");
        let status = params.get("status");
        let (rows, has_more) = self.payments.page(&query, "invoice_payment", |p| {
            invoice.is_none_or(|i| p.invoice == i) && status.is_none_or(|s| s == "paid")
        })?;
        Ok((self.finish(rows, payment_json, &query.expand)?, has_more))
    }

    fn list_charges(&self, params: &Params) -> Result<(Vec<Value>, bool), ApiError> {
        let query = ListQuery::parse(params, &["created", "customer"])?;
        let customer = params.get("customer");
        let (rows, has_more) = self.charges.page(&query, "charge", |c| {
            customer.is_none_or(|wanted| c.customer.as_deref() == Some(wanted))
        })?;
        Ok((self.finish(rows, charge_json, &query.expand)?, has_more))
    }

    fn list_refunds(&self, params: &Params) -> Result<(Vec<Value>, bool), ApiError> {
        let query = ListQuery::parse(params, &["created", "charge"])?;
        let charge = params.get("charge");
        let (rows, has_more) = self
            .refunds
            .page(&query, "refund", |r| charge.is_none_or(|c| r.charge == c))?;
        Ok((self.finish(rows, refund_json, &query.expand)?, has_more))
    }

    fn list_events(&self, params: &Params) -> Result<(Vec<Value>, bool), ApiError> {
        let query = ListQuery::parse(params, &["created", "type", "types"])?;
        let single = params.get("type");
        let types = params.array("types");
        if single.is_some() && !types.is_empty() {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: type, types.",
                Some("types"),
            ));
        }
        if types.len() > 20 {
            return Err(ApiError::invalid(
                "You may pass at most 20 types.",
                Some("types"),
            ));
        }
        let patterns: Vec<String> = single.map(str::to_owned).into_iter().chain(types).collect();
        let (rows, has_more) = self.events.page(&query, "event", |e| {
            patterns.is_empty() || patterns.iter().any(|p| type_matches(p, &e.kind))
        })?;
        Ok((self.finish(rows, event_json, &query.expand)?, has_more))
    }

    fn retrieve(
        &self,
        resource: &str,
        id: &str,
        params: &Params,
    ) -> Option<Result<Value, ApiError>> {
        let (object, found) = match resource {
            "customers" => ("customer", self.customers.get(id).map(customer_view)),
            "invoices" => (
                "invoice",
                self.invoices
                    .get(id)
                    .map(|i| invoice_json(&self.account_id, i)),
            ),
            "invoice_payments" => ("invoice_payment", self.payments.get(id).map(payment_json)),
            "charges" => ("charge", self.charges.get(id).map(charge_json)),
            "refunds" => ("refund", self.refunds.get(id).map(refund_json)),
            "events" => ("event", self.events.get(id).map(event_json)),
            _ => return None,
        };
        Some(self.retrieved(object, id, found, params))
    }

    /// A retrieved object (`None` when there is no such one) with its expansions.
    fn retrieved(
        &self,
        object: &str,
        id: &str,
        found: Option<Value>,
        params: &Params,
    ) -> Result<Value, ApiError> {
        params.check(&["expand"])?;
        let mut found = found.ok_or_else(|| ApiError::missing(object, id))?;
        self.expand(&mut found, &params.array("expand"))?;
        Ok(found)
    }

    fn lines(&self, id: &str, params: &Params) -> Result<Value, ApiError> {
        let query = ListQuery::parse(params, &[])?;
        let invoice = self
            .invoices
            .get(id)
            .ok_or_else(|| ApiError::missing("invoice", id))?;
        let paging = query.starting_after.is_some() || query.ending_before.is_some();
        let data = if paging {
            Vec::new()
        } else {
            vec![line_json(invoice)]
        };
        Ok(json!({
            "object": "list",
            "data": data,
            "has_more": false,
            "url": format!("/v1/invoices/{id}/lines")
        }))
    }

    /// A `POST`, with Stripe's idempotency: a key seen with the same endpoint and
    /// parameters replays the first answer; with others it is an `idempotency_error`.
    fn post(
        &mut self,
        method: &Method,
        path: &str,
        segments: &[&str],
        params: &Params,
        origin: &Origin,
    ) -> Response {
        let endpoint = format!("{method} {path}");
        let canonical = params.canonical();
        if let Some(key) = &origin.idempotency_key {
            if key.len() > 255 {
                return ApiError::invalid(
                    "Idempotency-Key must be at most 255 characters long.",
                    None,
                )
                .into_response();
            }
            let now = self.clock;
            self.idempotency
                .retain(|_, stored| stored.at + IDEMPOTENCY_TTL > now);
            if let Some(stored) = self.idempotency.get(key) {
                if stored.endpoint != endpoint || stored.params != canonical {
                    return ApiError::new(
                        StatusCode::BAD_REQUEST,
                        json!({
                            "message": format!(
                                "Keys for idempotent requests can only be used with the same \
                                 parameters they were first used with. Try using a key other \
                                 than '{key}' if you meant to execute a different request."
                            ),
                            "type": "idempotency_error"
                        }),
                        false,
                    )
                    .into_response();
                }
                let mut response = json_response(stored.status, &stored.body);
                let out = response.headers_mut();
                out.insert(
                    HeaderName::from_static("idempotent-replayed"),
                    HeaderValue::from_static("true"),
                );
                if let Ok(original) = HeaderValue::from_str(&stored.request_id) {
                    out.insert(HeaderName::from_static("original-request"), original);
                }
                return response;
            }
        }
        let (status, body, store) = match self.execute_post(segments, params, origin) {
            Some(Ok(body)) => (StatusCode::OK, body, true),
            Some(Err(error)) => (error.status, error.body, error.store),
            None => {
                let error = ApiError::unrecognized(method, path);
                (error.status, error.body, false)
            }
        };
        if store
            && let (Some(key), Some(request_id)) = (&origin.idempotency_key, &origin.request_id)
        {
            self.idempotency.insert(
                key.clone(),
                Stored {
                    endpoint,
                    params: canonical,
                    status,
                    body: body.clone(),
                    request_id: request_id.clone(),
                    at: self.clock,
                },
            );
        }
        json_response(status, &body)
    }

    fn execute_post(
        &mut self,
        segments: &[&str],
        params: &Params,
        origin: &Origin,
    ) -> Option<Result<Value, ApiError>> {
        match segments {
            ["v1", "customers"] => Some(self.post_customer(None, params, origin)),
            ["v1", "customers", id] if !id.is_empty() => {
                Some(self.post_customer(Some(*id), params, origin))
            }
            _ => None,
        }
    }

    /// `POST /v1/customers` (create) or `POST /v1/customers/{id}` (update): `name`,
    /// `email`, `metadata[key]=value` (empty to remove; `metadata=` clears them all).
    fn post_customer(
        &mut self,
        id: Option<&str>,
        params: &Params,
        origin: &Origin,
    ) -> Result<Value, ApiError> {
        params.check(&["name", "email", "metadata", "expand"])?;
        let mut changes = CustomerChanges {
            name: params
                .get("name")
                .map(|n| Some(n.to_owned()).filter(|n| !n.is_empty())),
            email: params
                .get("email")
                .map(|e| Some(e.to_owned()).filter(|e| !e.is_empty())),
            clear_metadata: false,
            metadata: Vec::new(),
        };
        for (key, value) in &params.0 {
            if key == "metadata" {
                if !value.is_empty() {
                    return Err(ApiError::invalid("Invalid object", Some("metadata")));
                }
                changes.clear_metadata = true;
            } else if let Some(inner) = key
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
            {
                if inner.is_empty() || inner.chars().count() > 40 {
                    return Err(ApiError::invalid(
                        "Metadata keys must be between 1 and 40 characters long.",
                        Some(key),
                    ));
                }
                changes.metadata.push((inner.to_owned(), value.clone()));
            }
        }
        let expand = params.array("expand");
        let mut customer = match id {
            Some(id) => self
                .modify_customer(id, changes, origin)
                .ok_or_else(|| ApiError::missing("customer", id))?,
            None => {
                let metadata = changes
                    .metadata
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                let name = changes.name.flatten();
                let email = changes.email.flatten();
                let id = self.create_customer(name, email, metadata, origin);
                self.customers
                    .get(&id)
                    .map(customer_json)
                    .ok_or_else(|| ApiError::missing("customer", &id))?
            }
        };
        self.expand(&mut customer, &expand)?;
        Ok(customer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const NEW_V1: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
    const OLD_V1: &str = "e016b64cc4263f90e0336f3975e8d4ac9cc185935edc3ebdd405db64ad0bb1c5";

    fn client() -> reqwest::Client {
        portal::install_crypto_provider();
        reqwest::Client::new()
    }

    /// `GET path_and_query` with the default key: status, headers, body (parsed when JSON).
    async fn get(
        stripe: &FakeStripe,
        http: &reqwest::Client,
        path_and_query: &str,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let response = http
            .get(format!("{}{path_and_query}", stripe.base_url()))
            .bearer_auth(API_KEY)
            .send()
            .await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, headers, body))
    }

    fn ids(page: &Value) -> Vec<String> {
        page["data"]
            .as_array()
            .map(|data| {
                data.iter()
                    .filter_map(|o| o["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn with_customers(count: usize) -> anyhow::Result<(FakeStripe, Vec<String>)> {
        let stripe = FakeStripe::start().await?;
        let created = (0..count)
            .map(|n| {
                stripe.add_customer(&format!("Customer {n}"), &format!("c{n}@example.com"), &[])
            })
            .collect();
        Ok((stripe, created))
    }

    #[test]
    fn signatures_match_the_documented_vectors() {
        assert_eq!(
            sign("whsec_test_secret", 1_700_000_000, BODY),
            format!("t=1700000000,v1={NEW_V1}")
        );
        assert_eq!(
            sign_with(
                &["whsec_test_secret", "whsec_old_secret"],
                1_700_000_000,
                BODY
            ),
            format!("t=1700000000,v1={NEW_V1},v1={OLD_V1}")
        );
    }

    #[test]
    fn queries_decode_raw_and_encoded_brackets() {
        let params =
            Params::parse("created%5Bgte%5D=5&types[1]=b&types%5B0%5D=a&email=a%2Bb%40x.io&q=a+b");
        assert_eq!(params.get("created[gte]"), Some("5"));
        assert_eq!(params.array("types"), vec!["a", "b"]);
        assert_eq!(params.get("email"), Some("a+b@x.io"));
        assert_eq!(params.get("q"), Some("a b"));
        assert_eq!(mask(API_KEY), "sk_test_****************4242");
    }

    #[tokio::test]
    async fn pages_forward_with_starting_after_return_each_object_once() -> anyhow::Result<()> {
        let (stripe, created) = with_customers(250).await?;
        let http = client();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = Vec::new();
        loop {
            let after = cursor
                .as_ref()
                .map(|c| format!("&starting_after={c}"))
                .unwrap_or_default();
            let (status, headers, page) =
                get(&stripe, &http, &format!("/v1/customers?limit=100{after}")).await?;
            assert_eq!(status, 200, "{page}");
            assert!(headers["request-id"].to_str()?.starts_with("req_"));
            assert_eq!(headers["stripe-version"], API_VERSION);
            assert_eq!(page["object"], "list");
            assert_eq!(page["url"], "/v1/customers");
            let page_ids = ids(&page);
            pages.push((page_ids.len(), page["has_more"].as_bool()));
            cursor = page_ids.last().cloned();
            seen.extend(page_ids);
            if page["has_more"] != true {
                break;
            }
        }
        assert_eq!(
            pages,
            vec![(100, Some(true)), (100, Some(true)), (50, Some(false))]
        );
        let newest_first: Vec<String> = created.iter().rev().cloned().collect();
        assert_eq!(seen, newest_first);
        Ok(())
    }

    #[tokio::test]
    async fn pages_backward_with_ending_before_newest_first() -> anyhow::Result<()> {
        let (stripe, created) = with_customers(250).await?;
        let http = client();
        // From the oldest: the 100 right after it, still newest first.
        let mut cursor = created[0].clone();
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let (status, _, page) = get(
                &stripe,
                &http,
                &format!("/v1/customers?limit=100&ending_before={cursor}"),
            )
            .await?;
            assert_eq!(status, 200, "{page}");
            let page_ids = ids(&page);
            sizes.push(page_ids.len());
            let mut oldest_first = page_ids.clone();
            oldest_first.reverse();
            seen.extend(oldest_first);
            match page_ids.first() {
                Some(newest) if page["has_more"] == true => cursor = newest.clone(),
                _ => break,
            }
        }
        assert_eq!(sizes, vec![100, 100, 49]);
        assert_eq!(seen, created[1..].to_vec());
        // Nothing is newer than the newest.
        let (_, _, page) = get(
            &stripe,
            &http,
            &format!("/v1/customers?ending_before={}", created[249]),
        )
        .await?;
        assert_eq!(ids(&page), Vec::<String>::new());
        assert_eq!(page["has_more"], false);
        // A created range, brackets encoded, cut with a cursor.
        let first = START_TIME;
        let (_, _, page) = get(
            &stripe,
            &http,
            &format!(
                "/v1/customers?limit=100&created%5Bgte%5D={}&created[lt]={}&ending_before={}",
                first,
                first + 2 * 20,
                created[4]
            ),
        )
        .await?;
        // Customers take two seconds each (the object, then its event): 20 in range.
        let mut expected: Vec<String> = created[5..20].to_vec();
        expected.reverse();
        assert_eq!(ids(&page), expected);
        Ok(())
    }

    #[tokio::test]
    async fn limits_and_cursors_are_validated() -> anyhow::Result<()> {
        let (stripe, _) = with_customers(15).await?;
        let http = client();
        let (status, _, page) = get(&stripe, &http, "/v1/customers").await?;
        assert_eq!(status, 200);
        assert_eq!(ids(&page).len(), 10);
        assert_eq!(page["has_more"], true);
        for bad in ["0", "101", "abc", "-5"] {
            let (status, _, body) =
                get(&stripe, &http, &format!("/v1/customers?limit={bad}")).await?;
            assert_eq!(status, 400, "limit={bad}: {body}");
            assert_eq!(body["error"]["type"], "invalid_request_error");
            assert_eq!(body["error"]["param"], "limit");
        }
        let (status, _, body) = get(&stripe, &http, "/v1/invoices?starting_after=in_nope").await?;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["param"], "starting_after");
        let (status, _, body) = get(&stripe, &http, "/v1/charges/ch_nope").await?;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "resource_missing");
        assert_eq!(body["error"]["param"], "id");
        assert_eq!(body["error"]["message"], "No such charge: 'ch_nope'");
        let (status, _, body) = get(&stripe, &http, "/v1/customers?colour=red").await?;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["param"], "colour");
        Ok(())
    }

    #[tokio::test]
    async fn keys_are_checked() -> anyhow::Result<()> {
        let stripe = FakeStripe::start().await?;
        let http = client();
        let url = format!("{}/v1/account", stripe.base_url());
        let response = http.get(&url).send().await?;
        assert_eq!(response.status().as_u16(), 401);
        let response = http
            .get(&url)
            .bearer_auth("sk_test_wrongwrongLDER")
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 401);
        let body: Value = response.json().await?;
        assert_eq!(
            body["error"]["message"],
            "Invalid API Key provided: sk_test_**********LDER"
        );
        let response = http.get(&url).basic_auth(API_KEY, Some("")).send().await?;
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await?;
        assert_eq!(body["object"], "account");
        assert_eq!(body["charges_enabled"], true);
        stripe.expire_key(API_KEY);
        let response = http.get(&url).bearer_auth(API_KEY).send().await?;
        assert_eq!(response.status().as_u16(), 401);
        let body: Value = response.json().await?;
        assert_eq!(body["error"]["code"], "api_key_expired");
        assert_eq!(stripe.requests().len(), 4);
        assert_eq!(
            stripe.requests()[3].authorization.as_deref(),
            Some(format!("Bearer {API_KEY}").as_str())
        );
        Ok(())
    }

    #[tokio::test]
    async fn faults_answer_the_next_requests() -> anyhow::Result<()> {
        let stripe = FakeStripe::start().await?;
        let http = client();
        stripe.fail_next(
            2,
            Fault::RateLimited {
                retry_after: Some(3),
            },
        );
        stripe.fail_next(1, Fault::ServerError);
        stripe.fail_next(1, Fault::LockTimeout);
        stripe.fail_next(1, Fault::Malformed);
        stripe.fail_next(1, Fault::Unavailable);
        // Unauthenticated requests do not use up a fault.
        let unauthenticated = http
            .get(format!("{}/v1/customers", stripe.base_url()))
            .send()
            .await?;
        assert_eq!(unauthenticated.status().as_u16(), 401);
        for _ in 0..2 {
            let (status, headers, body) = get(&stripe, &http, "/v1/customers").await?;
            assert_eq!(status, 429);
            assert_eq!(headers["retry-after"], "3");
            assert_eq!(body["error"]["code"], "rate_limit");
        }
        let (status, headers, body) = get(&stripe, &http, "/v1/invoices").await?;
        assert_eq!(status, 500);
        assert_eq!(headers["stripe-should-retry"], "false");
        assert_eq!(body["error"]["type"], "api_error");
        let (status, headers, body) = get(&stripe, &http, "/v1/events").await?;
        assert_eq!(status, 409);
        assert_eq!(headers["stripe-should-retry"], "true");
        assert_eq!(body["error"]["code"], "lock_timeout");
        let (status, _, body) = get(&stripe, &http, "/v1/charges").await?;
        assert_eq!(status, 200);
        assert!(body.is_string(), "not JSON: {body}");
        let (status, headers, _) = get(&stripe, &http, "/v1/refunds").await?;
        assert_eq!(status, 503);
        assert!(headers.get("request-id").is_some());
        let (status, _, body) = get(&stripe, &http, "/v1/refunds").await?;
        assert_eq!(status, 200);
        assert_eq!(body["url"], "/v1/refunds");
        Ok(())
    }

    #[tokio::test]
    async fn idempotent_posts_replay_and_reject_other_parameters() -> anyhow::Result<()> {
        let stripe = FakeStripe::start().await?;
        let id = stripe.add_customer("Jenny Rosen", "jenny@example.com", &[("external_id", "42")]);
        let http = client();
        let url = format!("{}/v1/customers/{id}", stripe.base_url());
        let post = |key: &str, form: &'static [(&'static str, &'static str)]| {
            http.post(&url)
                .bearer_auth(API_KEY)
                .header("Idempotency-Key", key)
                .form(form)
                .send()
        };
        let first = post("k1", &[("name", "Jenny R."), ("metadata[plan]", "pro")]).await?;
        assert_eq!(first.status().as_u16(), 200);
        assert!(first.headers().get("idempotent-replayed").is_none());
        assert_eq!(first.headers()["idempotency-key"], "k1");
        let first: Value = first.json().await?;
        assert_eq!(first["name"], "Jenny R.");
        assert_eq!(
            first["metadata"],
            json!({"external_id": "42", "plan": "pro"})
        );
        let events = stripe.events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["type"], "customer.updated");
        assert_eq!(
            events[1]["data"]["previous_attributes"],
            json!({"metadata": {"plan": null}, "name": "Jenny Rosen"})
        );
        assert_eq!(events[1]["request"]["idempotency_key"], "k1");

        // Same key, same parameters (in another order): the first answer again.
        let again = post("k1", &[("metadata[plan]", "pro"), ("name", "Jenny R.")]).await?;
        assert_eq!(again.status().as_u16(), 200);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await?;
        assert_eq!(again, first);
        assert_eq!(stripe.events().len(), 2);

        // Same key, other parameters.
        let other = post("k1", &[("name", "Someone else")]).await?;
        assert_eq!(other.status().as_u16(), 400);
        let other: Value = other.json().await?;
        assert_eq!(other["error"]["type"], "idempotency_error");

        // A validation error is not remembered.
        let invalid = post("k2", &[("colour", "red")]).await?;
        assert_eq!(invalid.status().as_u16(), 400);
        let valid = post("k2", &[("name", "Jenny")]).await?;
        assert_eq!(valid.status().as_u16(), 200);
        assert!(valid.headers().get("idempotent-replayed").is_none());

        // Keys are forgotten after 24 hours.
        stripe.advance(86_400);
        let later = post("k1", &[("name", "Someone else")]).await?;
        assert_eq!(later.status().as_u16(), 200);
        Ok(())
    }

    #[tokio::test]
    async fn invoices_payments_refunds_and_events_hang_together() -> anyhow::Result<()> {
        let stripe = FakeStripe::start().await?;
        let http = client();
        let customer = stripe.add_customer("Jenny Rosen", "jenny@example.com", &[]);
        let invoice = stripe.add_invoice(
            &customer,
            "FAKE-0001",
            "USD",
            2000,
            "open",
            START_TIME - 86_400,
            START_TIME,
            Some(START_TIME + 86_400),
        );
        let (_, _, open) = get(&stripe, &http, &format!("/v1/invoices/{invoice}")).await?;
        assert_eq!(open["status"], "open");
        assert_eq!(open["currency"], "usd");
        assert_eq!(open["number"], "FAKE-0001");
        assert_eq!(open["amount_remaining"], 2000);
        assert_eq!(open["collection_method"], "send_invoice");
        assert_eq!(open["customer_email"], "jenny@example.com");
        let payment = stripe.add_invoice_payment(&invoice, 2000);
        stripe.set_invoice_status(&invoice, "paid");
        let (_, _, paid) = get(
            &stripe,
            &http,
            &format!("/v1/invoices/{invoice}?expand[]=customer&expand[]=payments"),
        )
        .await?;
        assert_eq!(paid["amount_paid"], 2000);
        assert_eq!(paid["amount_remaining"], 0);
        assert!(paid["status_transitions"]["paid_at"].is_i64());
        assert_eq!(paid["customer"]["id"], customer.as_str());
        assert_eq!(paid["payments"]["data"][0]["id"], payment.as_str());
        let charge = stripe.charge_of_payment(&payment).unwrap_or_default();
        let refund = stripe.add_refund(&charge, 500);
        let (_, _, refunds) = get(&stripe, &http, &format!("/v1/refunds?charge={charge}")).await?;
        assert_eq!(ids(&refunds), vec![refund]);
        let (_, _, charged) = get(&stripe, &http, &format!("/v1/charges/{charge}")).await?;
        assert_eq!(charged["amount_refunded"], 500);
        assert_eq!(charged["refunded"], false);
        assert_eq!(charged["customer"], customer.as_str());
        let (_, _, payments) = get(
            &stripe,
            &http,
            &format!("/v1/invoice_payments?invoice={invoice}"),
        )
        .await?;
        assert_eq!(payments["data"][0]["payment"]["charge"], charge.as_str());

        let kinds: Vec<String> = stripe
            .events()
            .iter()
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            kinds,
            [
                "customer.created",
                "invoice.created",
                "invoice.finalized",
                "invoice.updated",
                "charge.succeeded",
                "invoice_payment.paid",
                "invoice.paid",
                "invoice.payment_succeeded",
                "invoice.updated",
                "refund.created",
                "charge.refunded",
            ]
        );
        let (_, _, invoice_events) =
            get(&stripe, &http, "/v1/events?type=invoice.*&limit=100").await?;
        assert_eq!(ids(&invoice_events).len(), 6);
        let updated = &invoice_events["data"][0];
        assert_eq!(updated["type"], "invoice.updated");
        assert_eq!(updated["api_version"], API_VERSION);
        assert_eq!(updated["data"]["previous_attributes"]["status"], "open");
        assert_eq!(updated["data"]["previous_attributes"]["amount_paid"], 0);
        let (_, _, some) = get(
            &stripe,
            &http,
            "/v1/events?types%5B0%5D=refund.created&types%5B1%5D=customer.created",
        )
        .await?;
        assert_eq!(ids(&some).len(), 2);

        stripe.delete_customer(&customer);
        let (status, _, gone) = get(&stripe, &http, &format!("/v1/customers/{customer}")).await?;
        assert_eq!(status, 200);
        assert_eq!(
            gone,
            json!({"id": customer, "object": "customer", "deleted": true})
        );
        let (_, _, customers) = get(&stripe, &http, "/v1/customers").await?;
        assert_eq!(ids(&customers), Vec::<String>::new());
        let last = stripe.events().pop().unwrap_or_default();
        assert_eq!(last["type"], "customer.deleted");
        assert_eq!(last["data"]["object"]["email"], "jenny@example.com");
        Ok(())
    }

    #[tokio::test]
    async fn a_hundred_thousand_invoices_page_quickly() -> anyhow::Result<()> {
        let stripe = FakeStripe::start().await?;
        let customer = stripe.add_customer("Bulk", "bulk@example.com", &[]);
        let started = Instant::now();
        stripe.add_invoices_bulk(&customer, 100_000, "eur", 1234);
        let built = started.elapsed();
        let http = client();
        let started = Instant::now();
        let (_, _, newest) = get(
            &stripe,
            &http,
            &format!("/v1/invoices?customer={customer}&status=open&limit=100"),
        )
        .await?;
        assert_eq!(newest["data"][0]["number"], "BULK-100000");
        assert_eq!(newest["has_more"], true);
        // Deep in the list: right after the 100th oldest.
        let (_, _, deep) = get(
            &stripe,
            &http,
            "/v1/invoices?limit=100&created[lte]=1700000101",
        )
        .await?;
        let cursor = deep["data"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(deep["data"][0]["number"], "BULK-000100");
        let (_, _, tail) = get(
            &stripe,
            &http,
            &format!("/v1/invoices?limit=100&starting_after={cursor}"),
        )
        .await?;
        assert_eq!(ids(&tail).len(), 99);
        assert_eq!(tail["has_more"], false);
        assert_eq!(tail["data"][98]["number"], "BULK-000001");
        let paged = started.elapsed();
        eprintln!("100 000 invoices built in {built:?}, three pages in {paged:?}");
        assert!(paged.as_secs() < 5);
        Ok(())
    }
}
