//! A stateful fake of HubSpot's CRM v3 API for the HubSpot connector's tests, served over
//! real HTTP on a local port (see `docs/vendors/hubspot.md` for the facts it follows).
//!
//! It keeps companies and contacts (`SimplePublicObject`s with string ids and string
//! property values) and the contact ↔ company associations between them. Times come from
//! the real clock plus an offset a test moves with [`FakeHubSpot::advance`], and every
//! create, update and archive takes a strictly increasing millisecond stamp, which is what
//! `updatedAt`, `hs_lastmodifieddate` (companies) and `lastmodifieddate` (contacts) show.
//! The fake serves list / read / create / update / delete, the batch endpoints, search
//! (filter groups, one sort, the 10 000-result cap), associations v4 and the OAuth token
//! endpoint, with HubSpot's error envelope, rate-limit headers and 429 bodies, each limit
//! enforced on a real rolling window. Tests build the data with the `add_*` helpers, make
//! the next requests fail with [`FakeHubSpot::fail_next`], read what the connector sent
//! with [`FakeHubSpot::requests`], and sign webhook deliveries with [`sign_v3`].
//!
//! What the fake picks where HubSpot documents nothing (marked `[UNVERIFIED]` in the vendor
//! notes) — the texts of the 400s from search, the 423 and 500 bodies, the search 429's
//! `policyName` — tests should not match on verbatim.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// The private-app token the fake accepts from the start (`Authorization: Bearer …`).
pub const PRIVATE_APP_TOKEN: &str = "pat-na1-fake-0000";
/// The OAuth app's client id the token endpoint accepts.
pub const CLIENT_ID: &str = "5c3a0f6e-fake-4c1d-9a7e-000000000000";
/// The OAuth app's client secret the token endpoint accepts (and the key webhook
/// signatures use, see [`sign_v3`]).
pub const CLIENT_SECRET: &str = "fake-client-secret-0000-0000-000000000000";
/// The refresh token the token endpoint accepts (and hands out on a code exchange) until
/// [`FakeHubSpot::revoke_refresh_token`].
pub const REFRESH_TOKEN: &str = "na1-fake-0000-0000-0000-000000000000";
/// The portal (account) id: `hub_id` in token responses, `portalId` in webhooks.
pub const HUB_ID: i64 = 1_234_567;
/// The app id webhook payloads carry (`appId`).
pub const APP_ID: i64 = 1_160_452;
/// Requests allowed per rolling 10-second window by default (a Professional private app).
pub const DEFAULT_RATE_LIMIT: u32 = 190;
/// Search requests allowed per rolling second by default.
pub const DEFAULT_SEARCH_RATE_LIMIT: u32 = 5;
/// Seconds an access token lives by default (`expires_in`).
pub const DEFAULT_TOKEN_TTL: u64 = 1800;

/// The window `X-HubSpot-RateLimit-Max` applies to.
const INTERVAL_MS: u64 = 10_000;
/// Requests a private app may make per day (an Enterprise account).
const DAILY_LIMIT: u64 = 1_000_000;
/// The first object id handed out (ids are shared by companies and contacts, so an id of
/// one kind never finds an object of the other).
const FIRST_ID: u64 = 40_000_000_001;
/// Object API batch endpoints take at most this many inputs.
const BATCH_LIMIT: usize = 100;
/// Search pages may not reach past this many results.
const SEARCH_CAP: usize = 10_000;
/// The longest search request body accepted, in bytes.
const SEARCH_BODY_LIMIT: usize = 3000;
const JSON_UTF8: &str = "application/json;charset=utf-8";
const SCOPES: [&str; 5] = [
    "oauth",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
];
const SUBSCRIPTION_TYPES: [&str; 13] = [
    "company.creation",
    "company.deletion",
    "company.propertyChange",
    "company.associationChange",
    "company.merge",
    "company.restore",
    "contact.creation",
    "contact.deletion",
    "contact.propertyChange",
    "contact.associationChange",
    "contact.merge",
    "contact.restore",
    "contact.privacyDeletion",
];

/// A failure the fake answers the next requests with (see [`FakeHubSpot::fail_next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with the `TEN_SECONDLY_ROLLING` body, `X-HubSpot-RateLimit-Remaining: 0`, and a
    /// `Retry-After` header (seconds) when given.
    TenSecondly {
        /// Seconds for the `Retry-After` header (none sent when `None`).
        retry_after: Option<u64>,
    },
    /// 429 with the documented `DAILY` body.
    Daily,
    /// 429 with the search endpoints' "secondly" body.
    SearchSecondly,
    /// 500 with an `INTERNAL_ERROR` body.
    ServerError,
    /// 423 Locked (HubSpot's "wait at least 2 seconds" during large syncs).
    Locked,
    /// 200 with a `Content-Type: application/json` body that is not JSON (cut short).
    Malformed,
}

/// One request the fake received, as the connector sent it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// The path, e.g. `/crm/v3/objects/companies/search`.
    pub path: String,
    /// The raw query string, still percent-encoded (empty when there was none).
    pub query: String,
    /// The body as text (lossy UTF-8; empty when there was none).
    pub body: String,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// A running fake HubSpot: a cheap handle, shared by its clones. The server stops when
/// the last handle is dropped.
#[derive(Clone)]
pub struct FakeHubSpot {
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

impl FakeHubSpot {
    /// Starts the fake on `127.0.0.1` on a free port, accepting [`PRIVATE_APP_TOKEN`].
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backend = Arc::new(Mutex::new(Backend::new(format!("http://{addr}"))));
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

    /// The base URL to give the connector in place of `https://api.hubapi.com`, e.g.
    /// `http://127.0.0.1:41234` (no trailing slash; paths start with `/crm/` and
    /// `/oauth/`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fake's clock, in epoch milliseconds: the real time plus what
    /// [`Self::advance`] added.
    pub fn now_ms(&self) -> i64 {
        self.backend.lock().now()
    }

    /// Moves the fake clock by `ms` (it may go back; modification stamps still only go
    /// forward). Access tokens expire on this clock.
    pub fn advance(&self, ms: i64) {
        self.backend.lock().offset_ms += ms;
    }

    /// Makes access tokens issued from now on live `secs` seconds (`expires_in`; 1800 by
    /// default).
    pub fn set_token_ttl(&self, secs: u64) {
        self.backend.lock().token_ttl = secs;
    }

    /// Mints a single-use authorization code, as HubSpot's redirect after consent would
    /// carry it, that the token endpoint exchanges only together with this `redirect_uri`.
    pub fn authorization_code(&self, redirect_uri: &str) -> String {
        let code = format!("fake-code-{}", Uuid::new_v4().simple());
        self.backend
            .lock()
            .codes
            .insert(code.clone(), (redirect_uri.to_owned(), None));
        code
    }

    /// What consent at `authorize_url` (HubSpot's page, with the app's `redirect_uri`,
    /// `state` and an S256 `code_challenge`) redirects back with: a code, exchanged only
    /// with that redirect URI and the verifier of that challenge, and the state.
    pub fn consent(&self, authorize_url: &str) -> anyhow::Result<(String, String)> {
        let url = url::Url::parse(authorize_url)?;
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let get = |name: &str| {
            query
                .get(name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("the consent URL has no {name}"))
        };
        anyhow::ensure!(get("client_id")? == CLIENT_ID, "another app's consent URL");
        anyhow::ensure!(get("code_challenge_method")? == "S256", "no S256 challenge");
        let code = format!("fake-code-{}", Uuid::new_v4().simple());
        self.backend.lock().codes.insert(
            code.clone(),
            (get("redirect_uri")?, Some(get("code_challenge")?)),
        );
        Ok((code, get("state")?))
    }

    /// Revokes [`REFRESH_TOKEN`]: refreshing then answers 400 `invalid_grant`. Access
    /// tokens already issued keep working until they expire. A later authorization-code
    /// exchange (a re-install) makes it valid again.
    pub fn revoke_refresh_token(&self) {
        self.backend.lock().refresh_revoked = true;
    }

    /// Expires every access token issued so far (the next call with one answers 401
    /// `EXPIRED_AUTHENTICATION`) without moving the clock.
    pub fn expire_access_tokens(&self) {
        let mut backend = self.backend.lock();
        let past = backend.now() - 1;
        for expires in backend.access_tokens.values_mut() {
            *expires = (*expires).min(past);
        }
    }

    /// How many requests reached the token endpoint (whatever their outcome).
    pub fn token_requests(&self) -> usize {
        self.backend.lock().token_requests
    }

    /// Sets how many non-search requests each rolling 10-second window allows
    /// (`X-HubSpot-RateLimit-Max`; [`DEFAULT_RATE_LIMIT`] at first).
    pub fn set_rate_limit(&self, max: u32) {
        self.backend.lock().rate_max = max;
    }

    /// Sets how many search requests each rolling second allows
    /// ([`DEFAULT_SEARCH_RATE_LIMIT`] at first).
    pub fn set_search_rate_limit(&self, per_second: u32) {
        self.backend.lock().search_max = per_second;
    }

    /// Makes search eventually consistent: objects created, updated or archived less than
    /// `ms` ago (on the fake clock) do not match any search yet (0, the default, turns it
    /// off). Lists and reads are unaffected.
    pub fn set_search_lag(&self, ms: i64) {
        self.backend.lock().search_lag_ms = ms;
    }

    /// Lets writes through the API set the company property `name` (the usual ones, e.g.
    /// `name`, `domain`, `phone`, `industry`, are defined from the start; unknown ones
    /// answer 400 `PROPERTY_DOESNT_EXIST`).
    pub fn define_company_property(&self, name: &str) {
        self.backend
            .lock()
            .table_mut(Kind::Company)
            .known
            .insert(name.to_owned());
    }

    /// Lets writes through the API set the contact property `name` (see
    /// [`Self::define_company_property`]).
    pub fn define_contact_property(&self, name: &str) {
        self.backend
            .lock()
            .table_mut(Kind::Contact)
            .known
            .insert(name.to_owned());
    }

    /// Adds a company with `name` and `domain` (an empty one is left unset); returns its id.
    pub fn add_company(&self, name: &str, domain: &str) -> String {
        let props = [("name", name), ("domain", domain)];
        self.backend
            .lock()
            .insert(Kind::Company, owned(&props))
            .to_string()
    }

    /// Sets `props` on company `id` (an empty value clears it; properties not yet defined
    /// are defined; `hs_object_id`, `createdate` and `hs_lastmodifieddate` are ignored) and
    /// stamps it modified now. Unknown or archived companies are left alone.
    pub fn update_company(&self, id: &str, props: &[(&str, &str)]) {
        self.backend.lock().update_helper(Kind::Company, id, props);
    }

    /// Archives company `id` (what `DELETE` does): it leaves lists and search and shows
    /// only with `archived=true`, with `archivedAt`.
    pub fn archive_company(&self, id: &str) {
        let mut backend = self.backend.lock();
        if let Some(id) = parse_id(id) {
            backend.archive(Kind::Company, id);
        }
    }

    /// Company `id` as `GET /crm/v3/objects/companies/{id}` would show it with every
    /// property it has (archived ones too).
    pub fn company(&self, id: &str) -> Option<Value> {
        self.backend.lock().snapshot(Kind::Company, id)
    }

    /// Adds `count` companies in one go, named `Bulk Company 000001`, … with domains
    /// `bulk-000001.example.com`, … (numbering continues across calls). Their stamps are
    /// consecutive milliseconds ending at the fake's now when the last stamp allows it
    /// (later otherwise), so they stay strictly increasing.
    pub fn add_companies_bulk(&self, count: usize) {
        let mut backend = self.backend.lock();
        let now = backend.now();
        let span = i64::try_from(count).unwrap_or(i64::MAX);
        let start = (backend.last_stamp + 1).max(now.saturating_sub(span));
        backend.bulk(count, |n| start + n);
    }

    /// Adds `count` bulk companies (as [`Self::add_companies_bulk`]) all created and last
    /// modified at exactly `modified_ms`: the "more than 10 000 rows at one timestamp"
    /// case. These alone break the strictly increasing stamps, on purpose.
    pub fn add_companies_bulk_at(&self, count: usize, modified_ms: i64) {
        self.backend.lock().bulk(count, |_| modified_ms);
    }

    /// Adds a contact (`email` is lowercased, as HubSpot stores it; empty values are left
    /// unset); returns its id. No duplicate check: the API's 409 is for API writes.
    pub fn add_contact(&self, email: &str, firstname: &str, lastname: &str) -> String {
        let props = [
            ("email", email),
            ("firstname", firstname),
            ("lastname", lastname),
        ];
        self.backend
            .lock()
            .insert(Kind::Contact, owned(&props))
            .to_string()
    }

    /// Sets `props` on contact `id` (as [`Self::update_company`]; `lastmodifieddate` is
    /// the ignored stamp here).
    pub fn update_contact(&self, id: &str, props: &[(&str, &str)]) {
        self.backend.lock().update_helper(Kind::Contact, id, props);
    }

    /// Archives contact `id` (see [`Self::archive_company`]); its email is free again.
    pub fn archive_contact(&self, id: &str) {
        let mut backend = self.backend.lock();
        if let Some(id) = parse_id(id) {
            backend.archive(Kind::Contact, id);
        }
    }

    /// Contact `id` with every property it has (see [`Self::company`]).
    pub fn contact(&self, id: &str) -> Option<Value> {
        self.backend.lock().snapshot(Kind::Contact, id)
    }

    /// Associates contact `contact_id` with company `company_id` (unlabeled, type 279; the
    /// contact's first company is also its primary one, type 1). Stamps neither object.
    pub fn associate(&self, contact_id: &str, company_id: &str) {
        if let (Some(contact), Some(company)) = (parse_id(contact_id), parse_id(company_id)) {
            self.backend.lock().associate(contact, company);
        }
    }

    /// Removes the association between `contact_id` and `company_id`, if any.
    pub fn dissociate(&self, contact_id: &str, company_id: &str) {
        if let (Some(contact), Some(company)) = (parse_id(contact_id), parse_id(company_id)) {
            self.backend.lock().dissociate(contact, company);
        }
    }

    /// Answers the next `count` CRM requests (any endpoint, search included, after
    /// authentication; on top of faults already queued) with `fault`. The token endpoint
    /// is never faulted, and faulted requests do not use up the rate-limit windows.
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

    /// A webhook delivery body: a JSON array with one notification per
    /// `(subscriptionType, objectId)`, e.g. `("company.deletion", "40000000001")`, shaped
    /// as HubSpot sends them (`objectId`, `eventId`, `subscriptionId`, `portalId` and
    /// `appId` as numbers, `occurredAt` in epoch ms on the fake clock, `attemptNumber` 0).
    /// Creations carry `changeFlag: "NEW"`, deletions `"DELETED"`, merges
    /// `primaryObjectId` and an empty `mergedObjectIds`, and property changes the
    /// object's current `name` (companies) or `email` (contacts) as
    /// `propertyName`/`propertyValue`. Sign it with [`sign_v3`] and [`CLIENT_SECRET`].
    pub fn webhook_payload(&self, events: &[(&str, &str)]) -> Vec<u8> {
        let mut backend = self.backend.lock();
        let items: Vec<Value> = events
            .iter()
            .map(|(kind, id)| backend.webhook_event(kind, id))
            .collect();
        serde_json::to_vec(&items).unwrap_or_default()
    }
}

/// The `X-HubSpot-Signature-v3` header value for a delivery: base64 of the HMAC-SHA256,
/// keyed with the app's client secret, of `method + uri + body + timestamp_ms` (the URI as
/// the full public URL, the timestamp as sent in `X-HubSpot-Request-Timestamp`).
pub fn sign_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> String {
    // HMAC takes keys of any length, so this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The v1 `X-HubSpot-Signature` header value: hex SHA-256 of `client_secret + body`.
pub fn sign_v1(client_secret: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client_secret.as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// The v2 `X-HubSpot-Signature` header value: hex SHA-256 of
/// `client_secret + method + uri + body`.
pub fn sign_v2(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client_secret.as_bytes());
    hasher.update(method.as_bytes());
    hasher.update(uri.as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

/// The two object types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Company,
    Contact,
}

impl Kind {
    /// The object type a path segment names (plural, singular or type id).
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "companies" | "company" | "0-2" => Some(Self::Company),
            "contacts" | "contact" | "0-1" => Some(Self::Contact),
            _ => None,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::Company => "companies",
            Self::Contact => "contacts",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::Contact => "contact",
        }
    }

    fn type_id(self) -> &'static str {
        match self {
            Self::Company => "0-2",
            Self::Contact => "0-1",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Company => Self::Contact,
            Self::Contact => Self::Company,
        }
    }

    /// The last-modified property.
    fn lastmod(self) -> &'static str {
        match self {
            Self::Company => "hs_lastmodifieddate",
            Self::Contact => "lastmodifieddate",
        }
    }

    /// Properties lists, reads and searches return when none are asked for (the system
    /// ones come on top, always).
    fn defaults(self) -> &'static [&'static str] {
        match self {
            Self::Company => &["name", "domain"],
            Self::Contact => &["firstname", "lastname", "email"],
        }
    }

    /// Properties the free-text `query` of search looks in.
    fn searchable(self) -> &'static [&'static str] {
        match self {
            Self::Company => &["website", "phone", "name", "domain"],
            Self::Contact => &[
                "firstname",
                "lastname",
                "email",
                "phone",
                "hs_additional_emails",
                "fax",
                "mobilephone",
                "company",
            ],
        }
    }

    /// The writable properties defined from the start.
    fn initial_properties(self) -> &'static [&'static str] {
        match self {
            Self::Company => &[
                "name",
                "domain",
                "website",
                "phone",
                "address",
                "city",
                "state",
                "zip",
                "country",
                "industry",
                "description",
                "numberofemployees",
                "annualrevenue",
                "lifecyclestage",
                "type",
                "hubspot_owner_id",
            ],
            Self::Contact => &[
                "email",
                "firstname",
                "lastname",
                "phone",
                "mobilephone",
                "fax",
                "company",
                "jobtitle",
                "website",
                "address",
                "city",
                "state",
                "zip",
                "country",
                "lifecyclestage",
                "hs_additional_emails",
                "hubspot_owner_id",
            ],
        }
    }

    /// Read-only properties the fake computes.
    fn is_system(self, prop: &str) -> bool {
        prop == "hs_object_id" || prop == "createdate" || prop == self.lastmod()
    }

    fn is_date(self, prop: &str) -> bool {
        prop == "createdate" || prop == self.lastmod()
    }
}

/// One CRM object.
struct Object {
    id: u64,
    created: i64,
    updated: i64,
    archived_at: Option<i64>,
    /// Stored (non-system) properties; never empty strings.
    props: BTreeMap<String, String>,
}

impl Object {
    fn live(&self) -> bool {
        self.archived_at.is_none()
    }

    /// The last time anything happened to it (for the search lag).
    fn touched(&self) -> i64 {
        self.archived_at.unwrap_or(self.updated).max(self.updated)
    }
}

/// The objects of one type, by id (so in creation order), and its property definitions.
struct Table {
    rows: BTreeMap<u64, Object>,
    known: BTreeSet<String>,
}

impl Table {
    fn new(kind: Kind) -> Self {
        Self {
            rows: BTreeMap::new(),
            known: kind
                .initial_properties()
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        }
    }
}

/// Who made an authenticated request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    PrivateApp,
    OAuth,
}

struct Backend {
    base_url: String,
    offset_ms: i64,
    last_stamp: i64,
    next_id: u64,
    next_event: u64,
    bulk_numbers: usize,
    companies: Table,
    contacts: Table,
    /// Live contacts by lowercased email.
    emails: HashMap<String, u64>,
    /// `(contact, company)` pairs.
    contact_companies: BTreeSet<(u64, u64)>,
    /// `(company, contact)` pairs (the same, turned around).
    company_contacts: BTreeSet<(u64, u64)>,
    /// Each contact's primary company.
    primary: HashMap<u64, u64>,
    /// Access tokens and when they expire (fake-clock ms).
    access_tokens: HashMap<String, i64>,
    refresh_revoked: bool,
    /// Authorization codes, the redirect URI each was minted for and its PKCE challenge.
    codes: HashMap<String, (String, Option<String>)>,
    token_ttl: u64,
    token_requests: usize,
    rate_max: u32,
    search_max: u32,
    window: VecDeque<Instant>,
    search_window: VecDeque<Instant>,
    daily_used: u64,
    search_lag_ms: i64,
    faults: VecDeque<Fault>,
    requests: Vec<Recorded>,
}

impl Backend {
    fn new(base_url: String) -> Self {
        Self {
            base_url,
            offset_ms: 0,
            last_stamp: 0,
            next_id: FIRST_ID,
            next_event: 1,
            bulk_numbers: 0,
            companies: Table::new(Kind::Company),
            contacts: Table::new(Kind::Contact),
            emails: HashMap::new(),
            contact_companies: BTreeSet::new(),
            company_contacts: BTreeSet::new(),
            primary: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_revoked: false,
            codes: HashMap::new(),
            token_ttl: DEFAULT_TOKEN_TTL,
            token_requests: 0,
            rate_max: DEFAULT_RATE_LIMIT,
            search_max: DEFAULT_SEARCH_RATE_LIMIT,
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            daily_used: 0,
            search_lag_ms: 0,
            faults: VecDeque::new(),
            requests: Vec::new(),
        }
    }

    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.offset_ms
    }

    /// The fake's now, bumped past the last stamp handed out.
    fn stamp(&mut self) -> i64 {
        let stamp = self.now().max(self.last_stamp + 1);
        self.last_stamp = stamp;
        stamp
    }

    fn table(&self, kind: Kind) -> &Table {
        match kind {
            Kind::Company => &self.companies,
            Kind::Contact => &self.contacts,
        }
    }

    fn table_mut(&mut self, kind: Kind) -> &mut Table {
        match kind {
            Kind::Company => &mut self.companies,
            Kind::Contact => &mut self.contacts,
        }
    }

    fn live(&self, kind: Kind, id: u64) -> Option<&Object> {
        self.table(kind).rows.get(&id).filter(|o| o.live())
    }

    /// Creates an object with `props` (empty values skipped) and returns its id.
    fn insert(&mut self, kind: Kind, props: Vec<(String, String)>) -> u64 {
        let stamp = self.stamp();
        let id = self.next_id;
        self.next_id += 1;
        let mut stored = BTreeMap::new();
        for (name, value) in props {
            if kind.is_system(&name) || value.is_empty() {
                continue;
            }
            let value = normalize(kind, &name, value);
            stored.insert(name, value);
        }
        if kind == Kind::Contact
            && let Some(email) = stored.get("email")
        {
            self.emails.insert(email.clone(), id);
        }
        self.table_mut(kind).rows.insert(
            id,
            Object {
                id,
                created: stamp,
                updated: stamp,
                archived_at: None,
                props: stored,
            },
        );
        id
    }

    /// Applies `props` to a live object (an empty value clears), stamping it modified.
    /// Returns whether there was such an object.
    fn modify(&mut self, kind: Kind, id: u64, props: Vec<(String, String)>) -> bool {
        if self.live(kind, id).is_none() {
            return false;
        }
        let stamp = self.stamp();
        let mut emails = Vec::new();
        let Some(object) = self.table_mut(kind).rows.get_mut(&id) else {
            return false;
        };
        for (name, value) in props {
            if kind.is_system(&name) {
                continue;
            }
            let old = if value.is_empty() {
                object.props.remove(&name)
            } else {
                let value = normalize(kind, &name, value);
                object.props.insert(name.clone(), value)
            };
            if name == "email" {
                emails.push((old, object.props.get("email").cloned()));
            }
        }
        object.updated = stamp;
        if kind == Kind::Contact {
            for (old, new) in emails {
                if let Some(old) = old
                    && self.emails.get(&old) == Some(&id)
                {
                    self.emails.remove(&old);
                }
                if let Some(new) = new {
                    self.emails.insert(new, id);
                }
            }
        }
        true
    }

    /// Archives a live object; returns whether there was one.
    fn archive(&mut self, kind: Kind, id: u64) -> bool {
        if self.live(kind, id).is_none() {
            return false;
        }
        let stamp = self.stamp();
        let Some(object) = self.table_mut(kind).rows.get_mut(&id) else {
            return false;
        };
        object.archived_at = Some(stamp);
        let email = object.props.get("email").cloned();
        if kind == Kind::Contact
            && let Some(email) = email
            && self.emails.get(&email) == Some(&id)
        {
            self.emails.remove(&email);
        }
        true
    }

    /// The test helpers' update: defines what is new, then modifies.
    fn update_helper(&mut self, kind: Kind, id: &str, props: &[(&str, &str)]) {
        let Some(id) = parse_id(id) else {
            return;
        };
        let props = owned(props);
        let table = self.table_mut(kind);
        for (name, _) in &props {
            if !kind.is_system(name) {
                table.known.insert(name.clone());
            }
        }
        self.modify(kind, id, props);
    }

    fn bulk(&mut self, count: usize, stamp_of: impl Fn(i64) -> i64) {
        let mut last = self.last_stamp;
        let start_id = self.next_id;
        for n in 0..count {
            self.bulk_numbers += 1;
            let stamp = stamp_of(i64::try_from(n).unwrap_or(i64::MAX));
            let id = start_id + n as u64;
            let number = self.bulk_numbers;
            let mut props = BTreeMap::new();
            props.insert("name".to_owned(), format!("Bulk Company {number:06}"));
            props.insert("domain".to_owned(), format!("bulk-{number:06}.example.com"));
            self.companies.rows.insert(
                id,
                Object {
                    id,
                    created: stamp,
                    updated: stamp,
                    archived_at: None,
                    props,
                },
            );
            last = last.max(stamp);
        }
        self.next_id = start_id + count as u64;
        self.last_stamp = last;
    }

    fn associate(&mut self, contact: u64, company: u64) {
        self.contact_companies.insert((contact, company));
        self.company_contacts.insert((company, contact));
        self.primary.entry(contact).or_insert(company);
    }

    fn dissociate(&mut self, contact: u64, company: u64) {
        self.contact_companies.remove(&(contact, company));
        self.company_contacts.remove(&(company, contact));
        if self.primary.get(&contact) == Some(&company) {
            match self.associated(Kind::Contact, contact).first() {
                Some(next) => {
                    self.primary.insert(contact, *next);
                }
                None => {
                    self.primary.remove(&contact);
                }
            }
        }
    }

    /// The ids (of the other type) associated with object `id` of `kind`, ascending.
    fn associated(&self, kind: Kind, id: u64) -> Vec<u64> {
        let set = match kind {
            Kind::Contact => &self.contact_companies,
            Kind::Company => &self.company_contacts,
        };
        set.range((id, 0)..=(id, u64::MAX))
            .map(|(_, to)| *to)
            .collect()
    }

    /// Whether `company` is `contact`'s primary company.
    fn is_primary(&self, contact: u64, company: u64) -> bool {
        self.primary.get(&contact) == Some(&company)
    }

    fn snapshot(&self, kind: Kind, id: &str) -> Option<Value> {
        let object = self.table(kind).rows.get(&parse_id(id)?)?;
        Some(self.render(kind, object, &Props::All, &[]))
    }

    fn webhook_event(&mut self, subscription: &str, object_id: &str) -> Value {
        let event_id = self.next_event;
        self.next_event += 1;
        let subscription_id = SUBSCRIPTION_TYPES
            .iter()
            .position(|t| *t == subscription)
            .map_or(999, |at| 1000 + at as u64);
        let object = parse_id(object_id).map_or_else(|| json!(object_id), |id| json!(id));
        let mut event = Map::new();
        event.insert("eventId".to_owned(), json!(event_id));
        event.insert("subscriptionId".to_owned(), json!(subscription_id));
        event.insert("portalId".to_owned(), json!(HUB_ID));
        event.insert("appId".to_owned(), json!(APP_ID));
        event.insert("occurredAt".to_owned(), json!(self.now()));
        event.insert("subscriptionType".to_owned(), json!(subscription));
        event.insert("attemptNumber".to_owned(), json!(0));
        event.insert("objectId".to_owned(), object.clone());
        event.insert("changeSource".to_owned(), json!("CRM"));
        let action = subscription.split_once('.').map(|(_, a)| a).unwrap_or("");
        match action {
            "creation" => {
                event.insert("changeFlag".to_owned(), json!("NEW"));
            }
            "deletion" | "privacyDeletion" => {
                event.insert("changeFlag".to_owned(), json!("DELETED"));
            }
            "merge" => {
                event.insert("primaryObjectId".to_owned(), object);
                event.insert("mergedObjectIds".to_owned(), json!([]));
            }
            "propertyChange" => {
                let kind = Kind::parse(subscription.split('.').next().unwrap_or(""));
                let (name, value) = match kind {
                    Some(Kind::Contact) => {
                        ("email", self.stored(Kind::Contact, object_id, "email"))
                    }
                    _ => ("name", self.stored(Kind::Company, object_id, "name")),
                };
                event.insert("propertyName".to_owned(), json!(name));
                event.insert("propertyValue".to_owned(), json!(value));
            }
            _ => {}
        }
        Value::Object(event)
    }

    fn stored(&self, kind: Kind, id: &str, prop: &str) -> Option<String> {
        let object = self.table(kind).rows.get(&parse_id(id)?)?;
        object.props.get(prop).cloned()
    }
}

/// Contacts' emails are stored lowercased.
fn normalize(kind: Kind, name: &str, value: String) -> String {
    if kind == Kind::Contact && name == "email" {
        value.to_lowercase()
    } else {
        value
    }
}

fn owned(props: &[(&str, &str)]) -> Vec<(String, String)> {
    props
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse_id(raw: &str) -> Option<u64> {
    raw.trim().parse().ok()
}

/// Epoch milliseconds as HubSpot writes times: `2024-09-13T20:23:03.333Z`.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A time given as epoch milliseconds, an RFC 3339 timestamp or a date.
fn parse_ms(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Some(time.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// Which properties a rendered object carries (the system ones always come too).
enum Props {
    /// The type's defaults.
    Default,
    /// These (unknown names left out; known ones without a value as `null`).
    Named(Vec<String>),
    /// Every property the object has.
    All,
}

impl Props {
    fn from_list(names: Vec<String>) -> Self {
        if names.is_empty() {
            Self::Default
        } else {
            Self::Named(names)
        }
    }
}

impl Backend {
    /// A property's value as a string, system ones included.
    fn prop_value(kind: Kind, object: &Object, name: &str) -> Option<String> {
        match name {
            "hs_object_id" => Some(object.id.to_string()),
            "createdate" => Some(iso(object.created)),
            n if n == kind.lastmod() => Some(iso(object.updated)),
            _ => object.props.get(name).cloned(),
        }
    }

    /// A `SimplePublicObject` (with `associations` of the types in `assoc`, when any).
    fn render(&self, kind: Kind, object: &Object, props: &Props, assoc: &[Kind]) -> Value {
        let names: Vec<&str> = match props {
            Props::Default => kind.defaults().to_vec(),
            Props::Named(list) => list.iter().map(String::as_str).collect(),
            Props::All => object.props.keys().map(String::as_str).collect(),
        };
        let known = &self.table(kind).known;
        let mut properties = Map::new();
        for name in names {
            match Self::prop_value(kind, object, name) {
                Some(value) => {
                    properties.insert(name.to_owned(), json!(value));
                }
                None if known.contains(name) => {
                    properties.insert(name.to_owned(), Value::Null);
                }
                None => {}
            }
        }
        for name in ["createdate", kind.lastmod(), "hs_object_id"] {
            let value = Self::prop_value(kind, object, name);
            properties.insert(name.to_owned(), json!(value));
        }
        let mut out = Map::new();
        out.insert("id".to_owned(), json!(object.id.to_string()));
        out.insert("properties".to_owned(), Value::Object(properties));
        out.insert("createdAt".to_owned(), json!(iso(object.created)));
        out.insert("updatedAt".to_owned(), json!(iso(object.updated)));
        out.insert("archived".to_owned(), json!(!object.live()));
        if let Some(at) = object.archived_at {
            out.insert("archivedAt".to_owned(), json!(iso(at)));
        }
        let mut associations = Map::new();
        for target in assoc {
            if *target != kind.other() {
                continue;
            }
            let results = self.v3_associations(kind, object.id);
            if !results.is_empty() {
                associations.insert(target.plural().to_owned(), json!({ "results": results }));
            }
        }
        if !associations.is_empty() {
            out.insert("associations".to_owned(), Value::Object(associations));
        }
        Value::Object(out)
    }

    /// The v3 `associations.<type>.results` of object `id` of `kind`.
    fn v3_associations(&self, kind: Kind, id: u64) -> Vec<Value> {
        let mut results = Vec::new();
        for to in self.associated(kind, id) {
            if self.live(kind.other(), to).is_none() {
                continue;
            }
            let (contact, company) = match kind {
                Kind::Contact => (id, to),
                Kind::Company => (to, id),
            };
            let primary = self.is_primary(contact, company);
            let (labeled, unlabeled) = match kind {
                Kind::Contact => ("contact_to_company", "contact_to_company_unlabeled"),
                Kind::Company => ("company_to_contact", "company_to_contact_unlabeled"),
            };
            if primary {
                results.push(json!({"id": to.to_string(), "type": labeled}));
            }
            results.push(json!({"id": to.to_string(), "type": unlabeled}));
        }
        results
    }

    /// The v4 `MultiAssociatedObjectWithLabel` of `from` (of `kind`) to `to`.
    fn v4_associated(&self, kind: Kind, from: u64, to: u64) -> Value {
        let (contact, company) = match kind {
            Kind::Contact => (from, to),
            Kind::Company => (to, from),
        };
        let (primary_type, plain_type) = match kind {
            Kind::Contact => (1, 279),
            Kind::Company => (2, 280),
        };
        let mut types = Vec::new();
        if self.is_primary(contact, company) {
            types.push(
                json!({"category": "HUBSPOT_DEFINED", "typeId": primary_type, "label": "Primary"}),
            );
        }
        types.push(json!({"category": "HUBSPOT_DEFINED", "typeId": plain_type, "label": null}));
        json!({"toObjectId": to, "associationTypes": types})
    }
}

// ---------------------------------------------------------------------------------------
// Replies and errors
// ---------------------------------------------------------------------------------------

/// An answer: its status, body and extra headers.
struct Reply {
    status: StatusCode,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
    correlation: String,
}

type Answer = Result<Reply, Reply>;

impl Reply {
    fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            body: Some(body.to_string()),
            headers: Vec::new(),
            correlation: Uuid::new_v4().to_string(),
        }
    }

    fn ok(body: &Value) -> Answer {
        Ok(Self::json(StatusCode::OK, body))
    }

    fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            headers: Vec::new(),
            correlation: Uuid::new_v4().to_string(),
        }
    }

    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, [(header::CONTENT_TYPE, JSON_UTF8)], body).into_response(),
            None => self.status.into_response(),
        };
        let out = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&self.correlation) {
            out.insert(HeaderName::from_static("x-hubspot-correlation-id"), value);
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                out.insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

/// HubSpot's error envelope: `status`, `message`, `correlationId`, then `extra`'s fields,
/// then `category`.
fn api_error(status: StatusCode, category: &str, message: &str, extra: Value) -> Reply {
    let correlation = Uuid::new_v4().to_string();
    let mut body = Map::new();
    body.insert("status".to_owned(), json!("error"));
    body.insert("message".to_owned(), json!(message));
    body.insert("correlationId".to_owned(), json!(correlation));
    if let Value::Object(extra) = extra {
        body.extend(extra);
    }
    body.insert("category".to_owned(), json!(category));
    Reply {
        status,
        body: Some(Value::Object(body).to_string()),
        headers: Vec::new(),
        correlation,
    }
}

/// 400 `VALIDATION_ERROR`.
fn validation(message: &str) -> Reply {
    api_error(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        message,
        Value::Null,
    )
}

/// 400 `VALIDATION_ERROR` for a property value, in the documented shape.
fn invalid_property(name: &str, code: &str, message: &str) -> Reply {
    let quoted_message = Value::String(message.to_owned()).to_string();
    let quoted_name = Value::String(name.to_owned()).to_string();
    let details = format!(
        "[{{\"isValid\":false,\"message\":{quoted_message},\"error\":\"{code}\",\"name\":\
         {quoted_name},\"localizedErrorMessage\":{quoted_message},\"portalId\":{HUB_ID}}}]"
    );
    api_error(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        &format!("Property values were not valid: {details}"),
        json!({"errors": [{
            "message": message,
            "code": code,
            "context": {"propertyName": [name]}
        }]}),
    )
}

/// 404 `OBJECT_NOT_FOUND` for `GET`, `PATCH` or `DELETE` of an unknown id.
fn not_found(id: &str) -> Reply {
    api_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
        json!({"context": {"id": [id]}}),
    )
}

/// 409 `CONFLICT` for a contact email another contact has.
fn conflict(existing: u64) -> Reply {
    api_error(
        StatusCode::CONFLICT,
        "CONFLICT",
        &format!("Contact already exists. Existing ID: {existing}"),
        Value::Null,
    )
}

fn unrecognized(method: &Method, path: &str) -> Reply {
    api_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        &format!("No route for {method} {path} (the fake HubSpot does not serve it)."),
        Value::Null,
    )
}

/// A 429: the documented shape (`errorType`, `policyName`, no `category`).
fn rate_limited(message: &str, policy: &str, extra: Value) -> Reply {
    let correlation = Uuid::new_v4().to_string();
    let mut body = Map::new();
    body.insert("status".to_owned(), json!("error"));
    body.insert("message".to_owned(), json!(message));
    body.insert("errorType".to_owned(), json!("RATE_LIMIT"));
    body.insert("correlationId".to_owned(), json!(correlation));
    body.insert("policyName".to_owned(), json!(policy));
    if let Value::Object(extra) = extra {
        body.extend(extra);
    }
    Reply {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: Some(Value::Object(body).to_string()),
        headers: Vec::new(),
        correlation,
    }
}

fn ten_secondly(caller: Caller) -> Reply {
    let group = match caller {
        Caller::PrivateApp => "private_app-api-calls-ten-secondly",
        Caller::OAuth => "oauth-api-calls-ten-secondly",
    };
    rate_limited(
        "You have reached your ten_secondly_rolling limit.",
        "TEN_SECONDLY_ROLLING",
        json!({"groupName": format!("publicapi:{group}:{APP_ID}:{HUB_ID}")}),
    )
}

fn secondly() -> Reply {
    rate_limited(
        "You have reached your secondly limit.",
        "SECONDLY",
        Value::Null,
    )
}

fn fault_reply(fault: Fault, caller: Caller) -> Reply {
    match fault {
        Fault::TenSecondly { retry_after } => {
            let mut reply = ten_secondly(caller);
            if let Some(secs) = retry_after {
                reply.headers.push(("retry-after", secs.to_string()));
            }
            reply
        }
        Fault::Daily => rate_limited(
            "You have reached your daily limit.",
            "DAILY",
            json!({"requestId": Uuid::new_v4().to_string()}),
        ),
        Fault::SearchSecondly => secondly(),
        Fault::ServerError => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
            Value::Null,
        ),
        Fault::Locked => api_error(
            StatusCode::LOCKED,
            "LOCKED",
            "The records are locked while a large amount of data syncs. Locks last for 2 \
             seconds; retry after at least that long.",
            Value::Null,
        ),
        Fault::Malformed => Reply {
            status: StatusCode::OK,
            body: Some("{\"results\": [{\"id\": \"4".to_owned()),
            headers: Vec::new(),
            correlation: Uuid::new_v4().to_string(),
        },
    }
}

/// An OAuth token endpoint error: RFC 6749 fields plus HubSpot's legacy ones, HTTP 400.
fn oauth_error(error: &str, status: &str, message: &str) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        &json!({
            "error": error,
            "error_description": message,
            "status": status,
            "message": message
        }),
    )
}

fn invalid_authentication() -> Reply {
    api_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication \
         and you can find more details at \
         https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        Value::Null,
    )
}

fn expired_authentication(now: i64, expired: i64) -> Reply {
    let ago = (now - expired).max(0) / 1000;
    api_error(
        StatusCode::UNAUTHORIZED,
        "EXPIRED_AUTHENTICATION",
        &format!("The OAuth token used to make this call expired {ago} second(s) ago."),
        json!({"context": {"expire time": [iso(expired)]}}),
    )
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

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

    /// The last value sent for `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An array parameter, repeated (`a=x&a=y`) or comma-separated (`a=x,y`) or both.
    fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A boolean parameter (`false` when absent).
    fn flag(&self, key: &str) -> Result<bool, Reply> {
        match self.get(key) {
            None => Ok(false),
            Some(raw) if raw.eq_ignore_ascii_case("true") => Ok(true),
            Some(raw) if raw.eq_ignore_ascii_case("false") || raw.is_empty() => Ok(false),
            Some(raw) => Err(validation(&format!(
                "Unable to process parameter {key}: {raw} is not a boolean."
            ))),
        }
    }

    /// `limit`: `default` when absent, otherwise between 1 and `max`.
    fn limit(&self, default: usize, max: usize) -> Result<usize, Reply> {
        let Some(raw) = self.get("limit") else {
            return Ok(default);
        };
        match raw.trim().parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(validation(&format!(
                "limit must be an integer between 1 and {max} (got {raw})."
            ))),
        }
    }

    /// `after` as an id: `None` when absent.
    fn after_id(&self) -> Result<Option<u64>, Reply> {
        match self.get("after") {
            None | Some("") => Ok(None),
            Some(raw) => parse_id(raw)
                .map(Some)
                .ok_or_else(|| validation(&format!("Invalid paging cursor: after={raw}"))),
        }
    }

    /// The object types named by `associations`.
    fn associations(&self) -> Vec<Kind> {
        self.list("associations")
            .iter()
            .filter_map(|name| Kind::parse(name))
            .collect()
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(validation("The request body is missing."));
    }
    serde_json::from_slice(body).map_err(|err| {
        validation(&format!(
            "Invalid input JSON on line {}, column {}: {err}",
            err.line(),
            err.column()
        ))
    })
}

/// A JSON scalar as HubSpot reads it into a string (`null` clears: empty).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// An id given as a JSON string or number.
fn json_id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `properties` object of a write.
fn input_properties(value: Option<&Value>) -> Result<Vec<(String, String)>, Reply> {
    let Some(Value::Object(map)) = value else {
        return Err(validation("properties is required and must be an object."));
    };
    map.iter()
        .map(|(name, value)| {
            scalar(value).map(|v| (name.clone(), v)).ok_or_else(|| {
                validation(&format!(
                    "Property {name} must be a string, number or boolean."
                ))
            })
        })
        .collect()
}

/// The `inputs` array of a batch request (at most `max`).
fn batch_inputs(body: &Value, max: usize) -> Result<&Vec<Value>, Reply> {
    let Some(Value::Array(inputs)) = body.get("inputs") else {
        return Err(validation("inputs is required and must be an array."));
    };
    if inputs.len() > max {
        return Err(validation(&format!(
            "Batch input limit exceeded: {} inputs were sent, at most {max} are allowed.",
            inputs.len()
        )));
    }
    Ok(inputs)
}

/// A list of strings in a JSON body (`properties`), absent as empty.
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
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

/// One request, start to end, under the lock.
fn serve(
    backend: &Mutex<Backend>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut backend = backend.lock();
    backend.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        body: String::from_utf8_lossy(body).into_owned(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        at: Instant::now(),
    });
    let reply = backend.respond(method, uri, headers, body);
    drop(backend);
    reply.into_response()
}

impl Backend {
    fn respond(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
        let path = uri.path();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let query = Params::parse(uri.query().unwrap_or_default());
        if let ["oauth", "v1" | "v3", "token"] = segments.as_slice() {
            if *method == Method::POST {
                return self.token(&query, body);
            }
            return unrecognized(method, path);
        }
        let caller = match self.authenticate(headers) {
            Ok(caller) => caller,
            Err(denied) => return denied,
        };
        let search = *method == Method::POST
            && matches!(segments.as_slice(), ["crm", "v3", "objects", _, "search"]);
        if let Some(fault) = self.faults.pop_front() {
            let mut reply = fault_reply(fault, caller);
            if !search {
                let remaining = match fault {
                    Fault::TenSecondly { .. } => 0,
                    _ => self.remaining(),
                };
                reply.headers.extend(self.rate_headers(caller, remaining));
            }
            return reply;
        }
        if search {
            // Search has its own per-second limit and sends no rate-limit headers.
            if !self.admit_search() {
                return secondly();
            }
            return match self.route(method, path, &segments, &query, body) {
                Ok(reply) | Err(reply) => reply,
            };
        }
        let Some(remaining) = self.admit() else {
            let mut reply = ten_secondly(caller);
            reply.headers.extend(self.rate_headers(caller, 0));
            return reply;
        };
        let mut reply = match self.route(method, path, &segments, &query, body) {
            Ok(reply) | Err(reply) => reply,
        };
        reply.headers.extend(self.rate_headers(caller, remaining));
        reply
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Reply> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            return Err(invalid_authentication());
        };
        if token == PRIVATE_APP_TOKEN {
            return Ok(Caller::PrivateApp);
        }
        let Some(&expires) = self.access_tokens.get(token) else {
            return Err(invalid_authentication());
        };
        let now = self.now();
        if now < expires {
            Ok(Caller::OAuth)
        } else {
            Err(expired_authentication(now, expires))
        }
    }

    /// Drops window entries older than `span`.
    fn prune(window: &mut VecDeque<Instant>, span: Duration) {
        let now = Instant::now();
        while window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= span)
        {
            window.pop_front();
        }
    }

    /// What is left of the 10-second window now.
    fn remaining(&mut self) -> u32 {
        Self::prune(&mut self.window, Duration::from_millis(INTERVAL_MS));
        let used = u32::try_from(self.window.len()).unwrap_or(u32::MAX);
        self.rate_max.saturating_sub(used)
    }

    /// Counts a request in the 10-second window: what is left after it, or `None` when
    /// the window is full.
    fn admit(&mut self) -> Option<u32> {
        let remaining = self.remaining();
        if remaining == 0 {
            return None;
        }
        self.window.push_back(Instant::now());
        self.daily_used += 1;
        Some(remaining - 1)
    }

    /// Counts a search in its one-second window; `false` when the window is full.
    fn admit_search(&mut self) -> bool {
        Self::prune(&mut self.search_window, Duration::from_secs(1));
        let used = u32::try_from(self.search_window.len()).unwrap_or(u32::MAX);
        if used >= self.search_max {
            return false;
        }
        self.search_window.push_back(Instant::now());
        true
    }

    fn rate_headers(&self, caller: Caller, remaining: u32) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-hubspot-ratelimit-max", self.rate_max.to_string()),
            ("x-hubspot-ratelimit-remaining", remaining.to_string()),
            (
                "x-hubspot-ratelimit-interval-milliseconds",
                INTERVAL_MS.to_string(),
            ),
        ];
        if caller == Caller::PrivateApp {
            headers.push(("x-hubspot-ratelimit-daily", DAILY_LIMIT.to_string()));
            headers.push((
                "x-hubspot-ratelimit-daily-remaining",
                DAILY_LIMIT.saturating_sub(self.daily_used).to_string(),
            ));
        }
        headers
    }

    /// `POST /oauth/v1/token` (form-encoded; the v1 query parameters count too).
    fn token(&mut self, query: &Params, body: &[u8]) -> Reply {
        self.token_requests += 1;
        let mut pairs = query.0.clone();
        pairs.extend(Params::parse(&String::from_utf8_lossy(body)).0);
        let form = Params(pairs);
        let grant = form.get("grant_type").unwrap_or_default();
        if !matches!(
            grant,
            "refresh_token" | "authorization_code" | "client_credentials"
        ) {
            return oauth_error(
                "unsupported_grant_type",
                "BAD_GRANT_TYPE",
                "missing or unknown grant type",
            );
        }
        if form.get("client_id") != Some(CLIENT_ID) {
            return oauth_error(
                "invalid_client",
                "BAD_CLIENT_ID",
                "missing or unknown client id",
            );
        }
        if form.get("client_secret") != Some(CLIENT_SECRET) {
            return oauth_error(
                "invalid_client",
                "BAD_CLIENT_SECRET",
                "missing or invalid client secret",
            );
        }
        if grant == "refresh_token" {
            if self.refresh_revoked || form.get("refresh_token") != Some(REFRESH_TOKEN) {
                return oauth_error(
                    "invalid_grant",
                    "BAD_REFRESH_TOKEN",
                    "refresh token is invalid, expired or revoked",
                );
            }
        } else if grant == "authorization_code" {
            let code = form.get("code").unwrap_or_default();
            let Some((redirect, challenge)) = self.codes.remove(code) else {
                return oauth_error(
                    "invalid_grant",
                    "BAD_AUTH_CODE",
                    "missing or invalid auth code",
                );
            };
            if form.get("redirect_uri") != Some(redirect.as_str()) {
                return oauth_error(
                    "invalid_grant",
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the one the authorization code was issued for",
                );
            }
            if let Some(challenge) = challenge {
                let verifier = form.get("code_verifier").unwrap_or_default();
                let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                if derived != challenge {
                    return oauth_error(
                        "invalid_grant",
                        "BAD_AUTH_CODE",
                        "code_verifier does not match the code challenge",
                    );
                }
            }
            self.refresh_revoked = false;
        }
        let access_token = format!("CJfake{}", Uuid::new_v4().simple());
        let ttl = i64::try_from(self.token_ttl).unwrap_or(i64::MAX / 2_000);
        let expires = self.now().saturating_add(ttl.saturating_mul(1000));
        self.access_tokens.insert(access_token.clone(), expires);
        let mut granted = json!({
            "token_type": "bearer",
            "refresh_token": REFRESH_TOKEN,
            "access_token": access_token,
            "hub_id": HUB_ID,
            "scopes": SCOPES,
            "expires_in": self.token_ttl
        });
        // The app's own token: nothing to refresh it with (RFC 6749 §4.4.3).
        if grant == "client_credentials"
            && let Some(map) = granted.as_object_mut()
        {
            map.remove("refresh_token");
        }
        Reply::json(StatusCode::OK, &granted)
    }

    fn route(
        &mut self,
        method: &Method,
        path: &str,
        segments: &[&str],
        query: &Params,
        body: &[u8],
    ) -> Answer {
        match (method.as_str(), segments) {
            ("GET", ["crm", "v3", "objects", t]) => self.list(kind(t)?, query),
            ("POST", ["crm", "v3", "objects", t]) => self.create(kind(t)?, body),
            ("POST", ["crm", "v3", "objects", t, "search"]) => self.search(kind(t)?, body),
            ("POST", ["crm", "v3", "objects", t, "batch", op]) => {
                self.batch(kind(t)?, op, query, body)
            }
            ("GET", ["crm", "v3", "objects", t, id]) => self.read(kind(t)?, id, query),
            ("PATCH", ["crm", "v3", "objects", t, id]) => self.update(kind(t)?, id, query, body),
            ("DELETE", ["crm", "v3", "objects", t, id]) => self.delete(kind(t)?, id, query),
            ("GET", ["crm", "v4", "objects", from, id, "associations", to]) => {
                self.v4_list(pair(from, to)?, id, query)
            }
            (
                "PUT",
                [
                    "crm",
                    "v4",
                    "objects",
                    from,
                    id,
                    "associations",
                    "default",
                    to,
                    target,
                ],
            ) => self.v4_put(pair(from, to)?, id, target, None),
            ("PUT", ["crm", "v4", "objects", from, id, "associations", to, target]) => {
                self.v4_put(pair(from, to)?, id, target, Some(body))
            }
            ("DELETE", ["crm", "v4", "objects", from, id, "associations", to, target]) => {
                self.v4_delete(pair(from, to)?, id, target)
            }
            ("POST", ["crm", "v4", "associations", from, to, "batch", "read"]) => {
                self.v4_batch_read(pair(from, to)?, body)
            }
            _ => Err(unrecognized(method, path)),
        }
    }
}

/// The object type a path segment names, or a 400.
fn kind(raw: &str) -> Result<Kind, Reply> {
    Kind::parse(raw).ok_or_else(|| validation(&format!("Unable to infer object type from: {raw}")))
}

/// The `from` type of an association between two different types, or a 400.
fn pair(from: &str, to: &str) -> Result<Kind, Reply> {
    let (from, to) = (kind(from)?, kind(to)?);
    if from == to {
        return Err(validation(&format!(
            "The fake HubSpot associates contacts with companies only, not {} with {}.",
            from.plural(),
            to.plural()
        )));
    }
    Ok(from)
}

// ---------------------------------------------------------------------------------------
// Objects: list, read, create, update, delete, batch
// ---------------------------------------------------------------------------------------

impl Backend {
    /// `GET /crm/v3/objects/{type}`: by id, from `after` (an id) on; `archived=true`
    /// lists only archived objects.
    fn list(&self, kind: Kind, query: &Params) -> Answer {
        let limit = query.limit(10, 100)?;
        let after = query.after_id()?.unwrap_or(0);
        let archived = query.flag("archived")?;
        let props = Props::from_list(query.list("properties"));
        let assoc = query.associations();
        let mut page = self
            .table(kind)
            .rows
            .range(after..)
            .map(|(_, o)| o)
            .filter(|o| o.live() != archived);
        let results: Vec<Value> = page
            .by_ref()
            .take(limit)
            .map(|o| self.render(kind, o, &props, &assoc))
            .collect();
        let mut body = json!({ "results": results });
        if let (Some(next), Some(map)) = (page.next(), body.as_object_mut()) {
            let link = format!(
                "{}/crm/v3/objects/{}?limit={limit}&after={}{}",
                self.base_url,
                kind.plural(),
                next.id,
                if archived { "&archived=true" } else { "" }
            );
            map.insert(
                "paging".to_owned(),
                json!({"next": {"after": next.id.to_string(), "link": link}}),
            );
        }
        Reply::ok(&body)
    }

    /// The object `raw` names (by id, or by `id_property`), archived or live as asked;
    /// `Ok(None)` when there is none, `Err` for an `idProperty` that is not unique.
    fn lookup(
        &self,
        kind: Kind,
        raw: &str,
        id_property: Option<&str>,
        archived: bool,
    ) -> Result<Option<u64>, Reply> {
        let table = self.table(kind);
        let found = match id_property {
            None | Some("" | "hs_object_id") => parse_id(raw).and_then(|id| table.rows.get(&id)),
            Some("email") if kind == Kind::Contact => {
                let email = raw.trim().to_lowercase();
                if archived {
                    table
                        .rows
                        .values()
                        .rev()
                        .find(|o| !o.live() && o.props.get("email") == Some(&email))
                } else {
                    self.emails.get(&email).and_then(|id| table.rows.get(id))
                }
            }
            Some(other) => {
                return Err(validation(&format!(
                    "{other} is not a unique property of {}.",
                    kind.plural()
                )));
            }
        };
        Ok(found.filter(|o| o.live() != archived).map(|o| o.id))
    }

    /// `GET /crm/v3/objects/{type}/{id}`.
    fn read(&self, kind: Kind, raw: &str, query: &Params) -> Answer {
        let archived = query.flag("archived")?;
        let id = self
            .lookup(kind, raw, query.get("idProperty"), archived)?
            .ok_or_else(|| not_found(raw))?;
        let object = self
            .table(kind)
            .rows
            .get(&id)
            .ok_or_else(|| not_found(raw))?;
        let props = Props::from_list(query.list("properties"));
        Reply::ok(&self.render(kind, object, &props, &query.associations()))
    }

    /// Rejects writes of unknown or read-only properties and of bad emails.
    fn check_writes(&self, kind: Kind, props: &[(String, String)]) -> Result<(), Reply> {
        let known = &self.table(kind).known;
        for (name, value) in props {
            if kind.is_system(name) {
                return Err(invalid_property(
                    name,
                    "READ_ONLY_VALUE",
                    &format!("{name} is a read only property; its value cannot be set."),
                ));
            }
            if !known.contains(name) {
                return Err(invalid_property(
                    name,
                    "PROPERTY_DOESNT_EXIST",
                    &format!("Property \"{name}\" does not exist"),
                ));
            }
            if kind == Kind::Contact && name == "email" && !value.is_empty() {
                let valid = value
                    .split_once('@')
                    .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
                if !valid {
                    return Err(invalid_property(
                        name,
                        "INVALID_EMAIL",
                        &format!("Email address {value} is invalid"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The 409 when a write would give contact `id` (none for a new one) an email a live
    /// contact already has.
    fn check_email(
        &self,
        kind: Kind,
        id: Option<u64>,
        props: &[(String, String)],
    ) -> Result<(), Reply> {
        if kind != Kind::Contact {
            return Ok(());
        }
        let email = props
            .iter()
            .rev()
            .find(|(name, _)| name == "email")
            .map(|(_, v)| v.to_lowercase())
            .filter(|v| !v.is_empty());
        match email.and_then(|e| self.emails.get(&e).copied()) {
            Some(existing) if Some(existing) != id => Err(conflict(existing)),
            _ => Ok(()),
        }
    }

    /// The `associations` of a create: the ids of live objects of the other type.
    fn input_associations(&self, kind: Kind, value: Option<&Value>) -> Result<Vec<u64>, Reply> {
        let items = match value {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(validation("associations must be an array.")),
        };
        items
            .iter()
            .map(|item| {
                let raw = json_id(item.get("to").and_then(|to| to.get("id")))
                    .ok_or_else(|| validation("Each association needs to.id."))?;
                parse_id(&raw)
                    .filter(|id| self.live(kind.other(), *id).is_some())
                    .ok_or_else(|| {
                        validation(&format!(
                            "Could not associate: no {} with id {raw}.",
                            kind.other().singular()
                        ))
                    })
            })
            .collect()
    }

    /// Links a new object of `kind` to `targets`.
    fn link(&mut self, kind: Kind, id: u64, targets: &[u64]) {
        for target in targets {
            match kind {
                Kind::Contact => self.associate(id, *target),
                Kind::Company => self.associate(*target, id),
            }
        }
    }

    fn full(&self, kind: Kind, id: u64) -> Value {
        self.table(kind)
            .rows
            .get(&id)
            .map(|o| self.render(kind, o, &Props::All, &[]))
            .unwrap_or(Value::Null)
    }

    /// `POST /crm/v3/objects/{type}`: 201 with the new object.
    fn create(&mut self, kind: Kind, body: &[u8]) -> Answer {
        let input = parse_json(body)?;
        let props = input_properties(input.get("properties"))?;
        self.check_writes(kind, &props)?;
        self.check_email(kind, None, &props)?;
        let targets = self.input_associations(kind, input.get("associations"))?;
        let id = self.insert(kind, props);
        self.link(kind, id, &targets);
        Ok(Reply::json(StatusCode::CREATED, &self.full(kind, id)))
    }

    /// `PATCH /crm/v3/objects/{type}/{id}[?idProperty=…]`: 200 with the object.
    fn update(&mut self, kind: Kind, raw: &str, query: &Params, body: &[u8]) -> Answer {
        let id = self
            .lookup(kind, raw, query.get("idProperty"), false)?
            .ok_or_else(|| not_found(raw))?;
        let input = parse_json(body)?;
        let props = input_properties(input.get("properties"))?;
        self.check_writes(kind, &props)?;
        self.check_email(kind, Some(id), &props)?;
        self.modify(kind, id, props);
        Reply::ok(&self.full(kind, id))
    }

    /// `DELETE /crm/v3/objects/{type}/{id}`: archives, 204.
    fn delete(&mut self, kind: Kind, raw: &str, query: &Params) -> Answer {
        let id = self
            .lookup(kind, raw, query.get("idProperty"), false)?
            .ok_or_else(|| not_found(raw))?;
        self.archive(kind, id);
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    }

    fn batch_envelope(&self, results: Vec<Value>, missing: &[String], kind: Kind) -> Answer {
        let now = iso(self.now());
        let mut body = json!({
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now
        });
        if missing.is_empty() {
            return Reply::ok(&body);
        }
        if let Some(map) = body.as_object_mut() {
            map.insert("numErrors".to_owned(), json!(1));
            map.insert(
                "errors".to_owned(),
                json!([{
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": format!(
                        "Could not get some {} objects, they may be deleted or not exist. \
                         Check that ids are valid.",
                        kind.singular().to_uppercase()
                    ),
                    "context": {"ids": missing}
                }]),
            );
        }
        Ok(Reply::json(StatusCode::MULTI_STATUS, &body))
    }

    /// `POST /crm/v3/objects/{type}/batch/{op}`.
    fn batch(&mut self, kind: Kind, op: &str, query: &Params, body: &[u8]) -> Answer {
        let input = parse_json(body)?;
        let inputs = batch_inputs(&input, BATCH_LIMIT)?;
        match op {
            "read" => self.batch_read(kind, query, &input, inputs),
            "create" => self.batch_create(kind, inputs),
            "update" => self.batch_update(kind, inputs),
            "upsert" => self.batch_upsert(kind, inputs),
            "archive" => {
                for item in inputs {
                    let raw = json_id(item.get("id")).unwrap_or_default();
                    if let Some(id) = self.lookup(kind, &raw, None, false)? {
                        self.archive(kind, id);
                    }
                }
                Ok(Reply::empty(StatusCode::NO_CONTENT))
            }
            _ => Err(unrecognized(
                &Method::POST,
                &format!("/crm/v3/objects/{}/batch/{op}", kind.plural()),
            )),
        }
    }

    fn batch_read(&self, kind: Kind, query: &Params, input: &Value, inputs: &[Value]) -> Answer {
        let archived = query.flag("archived")?;
        let id_property = input.get("idProperty").and_then(Value::as_str);
        let props = Props::from_list(string_list(input.get("properties")));
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for item in inputs {
            let raw = json_id(item.get("id")).unwrap_or_default();
            match self.lookup(kind, &raw, id_property, archived)? {
                Some(id) => {
                    if let Some(object) = self.table(kind).rows.get(&id) {
                        results.push(self.render(kind, object, &props, &[]));
                    }
                }
                None => missing.push(raw),
            }
        }
        self.batch_envelope(results, &missing, kind)
    }

    fn batch_create(&mut self, kind: Kind, inputs: &[Value]) -> Answer {
        let mut planned = Vec::new();
        let mut emails = BTreeSet::new();
        for item in inputs {
            let props = input_properties(item.get("properties"))?;
            self.check_writes(kind, &props)?;
            self.check_email(kind, None, &props)?;
            if kind == Kind::Contact
                && let Some((_, email)) = props.iter().find(|(n, v)| n == "email" && !v.is_empty())
                && !emails.insert(email.to_lowercase())
            {
                return Err(validation(&format!(
                    "Duplicate email in the batch: {email}"
                )));
            }
            let targets = self.input_associations(kind, item.get("associations"))?;
            planned.push((props, targets));
        }
        let mut results = Vec::new();
        for (props, targets) in planned {
            let id = self.insert(kind, props);
            self.link(kind, id, &targets);
            results.push(self.full(kind, id));
        }
        let now = iso(self.now());
        Ok(Reply::json(
            StatusCode::CREATED,
            &json!({
                "status": "COMPLETE",
                "results": results,
                "startedAt": now,
                "completedAt": now
            }),
        ))
    }

    fn batch_update(&mut self, kind: Kind, inputs: &[Value]) -> Answer {
        let mut planned = Vec::new();
        let mut missing = Vec::new();
        for item in inputs {
            let raw = json_id(item.get("id")).unwrap_or_default();
            let id_property = item.get("idProperty").and_then(Value::as_str);
            let props = input_properties(item.get("properties"))?;
            self.check_writes(kind, &props)?;
            match self.lookup(kind, &raw, id_property, false)? {
                Some(id) => {
                    self.check_email(kind, Some(id), &props)?;
                    planned.push((id, props));
                }
                None => missing.push(raw),
            }
        }
        let mut results = Vec::new();
        for (id, props) in planned {
            self.modify(kind, id, props);
            results.push(self.full(kind, id));
        }
        self.batch_envelope(results, &missing, kind)
    }

    /// Upsert: contacts by `idProperty: "email"` only.
    fn batch_upsert(&mut self, kind: Kind, inputs: &[Value]) -> Answer {
        let mut planned = Vec::new();
        for item in inputs {
            let id_property = item.get("idProperty").and_then(Value::as_str);
            if kind != Kind::Contact || id_property != Some("email") {
                return Err(validation(
                    "The fake HubSpot upserts contacts by idProperty \"email\" only.",
                ));
            }
            let email = json_id(item.get("id")).unwrap_or_default();
            let mut props = input_properties(item.get("properties"))?;
            props.retain(|(name, _)| name != "email");
            props.push(("email".to_owned(), email.clone()));
            self.check_writes(kind, &props)?;
            let existing = self.emails.get(&email.to_lowercase()).copied();
            planned.push((existing, props));
        }
        let mut results = Vec::new();
        for (existing, props) in planned {
            let (id, new) = match existing {
                Some(id) => {
                    self.modify(kind, id, props);
                    (id, false)
                }
                None => (self.insert(kind, props), true),
            };
            let mut object = self.full(kind, id);
            if let Some(map) = object.as_object_mut() {
                map.insert("new".to_owned(), json!(new));
            }
            results.push(object);
        }
        self.batch_envelope(results, &[], kind)
    }
}

// ---------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    HasProperty,
    NotHasProperty,
    In,
    NotIn,
    ContainsToken,
    NotContainsToken,
}

impl Op {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "EQ" => Self::Eq,
            "NEQ" => Self::Neq,
            "GT" => Self::Gt,
            "GTE" => Self::Gte,
            "LT" => Self::Lt,
            "LTE" => Self::Lte,
            "BETWEEN" => Self::Between,
            "HAS_PROPERTY" => Self::HasProperty,
            "NOT_HAS_PROPERTY" => Self::NotHasProperty,
            "IN" => Self::In,
            "NOT_IN" => Self::NotIn,
            "CONTAINS_TOKEN" => Self::ContainsToken,
            "NOT_CONTAINS_TOKEN" => Self::NotContainsToken,
            _ => return None,
        })
    }

    /// Whether an object without the property matches.
    fn matches_missing(self) -> bool {
        matches!(
            self,
            Self::Neq | Self::NotHasProperty | Self::NotIn | Self::NotContainsToken
        )
    }
}

/// A filter value, read every way it may be compared.
struct Operand {
    raw: String,
    lower: String,
    ms: Option<i64>,
    num: Option<f64>,
}

impl Operand {
    fn new(raw: String) -> Self {
        Self {
            lower: raw.to_lowercase(),
            ms: parse_ms(&raw),
            num: raw.trim().parse().ok(),
            raw,
        }
    }
}

struct Filter {
    prop: String,
    op: Op,
    /// `value` (and `highValue` second, for `BETWEEN`), or `values`.
    operands: Vec<Operand>,
}

/// A property value as search compares it.
enum Val<'a> {
    Ms(i64),
    Id(u64),
    Text(&'a str),
}

/// A property value as search sorts it (missing values last).
enum Key {
    Ms(i64),
    Num(f64),
    Text(String),
    Missing,
}

fn cmp_keys(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Ms(x), Key::Ms(y)) => x.cmp(y),
        (Key::Num(x), Key::Num(y)) => x.total_cmp(y),
        (Key::Ms(x), Key::Num(y)) => (*x as f64).total_cmp(y),
        (Key::Num(x), Key::Ms(y)) => x.total_cmp(&(*y as f64)),
        (Key::Text(x), Key::Text(y)) => x.cmp(y),
        (Key::Text(_), _) => Ordering::Greater,
        (_, Key::Text(_)) => Ordering::Less,
        (Key::Missing, _) | (_, Key::Missing) => Ordering::Equal,
    }
}

/// Whether `text` holds `pattern` as a token (or as a whole), with `*` wildcards.
fn contains_token(text: &str, pattern: &str) -> bool {
    let text = text.to_lowercase();
    let pattern = pattern.to_lowercase();
    let mut tokens = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty());
    if pattern.contains('*') {
        glob(&text, &pattern) || tokens.any(|t| glob(t, &pattern))
    } else {
        text == pattern || tokens.any(|t| t == pattern)
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
fn glob(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return text.is_empty();
    };
    if parts.len() == 1 {
        return text == *first;
    }
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for middle in parts.iter().skip(1).take(parts.len().saturating_sub(2)) {
        match rest.find(middle) {
            Some(at) => rest = rest.get(at + middle.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

struct SearchRequest {
    groups: Vec<Vec<Filter>>,
    sort: Option<(String, bool)>,
    props: Props,
    limit: usize,
    after: usize,
    query: Option<String>,
}

impl SearchRequest {
    fn parse(kind: Kind, body: &Value) -> Result<Self, Reply> {
        let groups_raw: &[Value] = match body.get("filterGroups") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(groups)) => groups,
            Some(_) => return Err(validation("filterGroups must be an array.")),
        };
        if groups_raw.len() > 5 {
            return Err(validation(&format!(
                "Too many filter groups: {} (at most 5 are allowed).",
                groups_raw.len()
            )));
        }
        let mut groups = Vec::new();
        let mut total = 0;
        for group in groups_raw {
            let Some(Value::Array(filters)) = group.get("filters") else {
                return Err(validation("Each filter group needs a filters array."));
            };
            if filters.len() > 6 {
                return Err(validation(&format!(
                    "Too many filters in a group: {} (at most 6 are allowed).",
                    filters.len()
                )));
            }
            total += filters.len();
            groups.push(
                filters
                    .iter()
                    .map(|f| Self::filter(kind, f))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        if total > 18 {
            return Err(validation(&format!(
                "Too many filters: {total} (at most 18 are allowed across all groups)."
            )));
        }
        let sort = Self::sort(body.get("sorts"))?;
        let limit = match body.get("limit") {
            None | Some(Value::Null) => 10,
            Some(value) => scalar(value)
                .and_then(|l| l.trim().parse::<usize>().ok())
                .filter(|l| *l <= 200)
                .ok_or_else(|| {
                    validation(&format!("limit must be between 0 and 200 (got {value})."))
                })?,
        };
        let after = match body.get("after") {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) if s.is_empty() => 0,
            Some(value) => scalar(value)
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    validation(&format!(
                        "after must be formatted as an integer (got {value})."
                    ))
                })?,
        };
        if after.saturating_add(limit) > SEARCH_CAP {
            return Err(validation(&format!(
                "The search endpoints are limited to 10000 total results for any given query: \
                 after ({after}) + limit ({limit}) is beyond it."
            )));
        }
        let query = body
            .get("query")
            .and_then(Value::as_str)
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty());
        Ok(Self {
            groups,
            sort,
            props: Props::from_list(string_list(body.get("properties"))),
            limit,
            after,
            query,
        })
    }

    fn filter(kind: Kind, raw: &Value) -> Result<Filter, Reply> {
        let prop = raw
            .get("propertyName")
            .and_then(Value::as_str)
            .ok_or_else(|| validation("Each filter needs a propertyName."))?
            .to_owned();
        let op_raw = raw.get("operator").and_then(Value::as_str).unwrap_or("");
        let op = Op::parse(op_raw)
            .ok_or_else(|| validation(&format!("Unknown filter operator: {op_raw}")))?;
        let value = raw.get("value").and_then(scalar).filter(|v| !v.is_empty());
        let high = raw
            .get("highValue")
            .and_then(scalar)
            .filter(|v| !v.is_empty());
        let values: Vec<String> = match raw.get("values") {
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            _ => Vec::new(),
        };
        let needs = |what: &str| validation(&format!("Operator {op_raw} on {prop} needs {what}."));
        let operands: Vec<String> = match op {
            Op::HasProperty | Op::NotHasProperty => Vec::new(),
            Op::In | Op::NotIn => {
                if values.is_empty() {
                    return Err(needs("values"));
                }
                values
            }
            Op::Between => match (value, high) {
                (Some(low), Some(high)) => vec![low, high],
                _ => return Err(needs("value and highValue")),
            },
            _ => vec![value.ok_or_else(|| needs("a value"))?],
        };
        let operands: Vec<Operand> = operands.into_iter().map(Operand::new).collect();
        if kind.is_date(&prop)
            && let Some(bad) = operands.iter().find(|o| o.ms.is_none())
        {
            return Err(validation(&format!(
                "{} is not a valid date for {prop} (give epoch milliseconds).",
                bad.raw
            )));
        }
        Ok(Filter { prop, op, operands })
    }

    /// The one sort, as `{"propertyName", "direction"}` or `"prop"` / `"-prop"`:
    /// `(property, descending)`.
    fn sort(value: Option<&Value>) -> Result<Option<(String, bool)>, Reply> {
        let sorts: &[Value] = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(sorts)) => sorts,
            Some(_) => return Err(validation("sorts must be an array.")),
        };
        if sorts.len() > 1 {
            return Err(validation("Only one sorting rule can be applied."));
        }
        let Some(sort) = sorts.first() else {
            return Ok(None);
        };
        match sort {
            Value::String(s) => Ok(Some(match s.strip_prefix('-') {
                Some(prop) => (prop.to_owned(), true),
                None => (s.clone(), false),
            })),
            Value::Object(map) => {
                let prop = map
                    .get("propertyName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| validation("A sort needs a propertyName."))?;
                let descending = match map.get("direction").and_then(Value::as_str) {
                    None | Some("ASCENDING") => false,
                    Some("DESCENDING") => true,
                    Some(other) => {
                        return Err(validation(&format!("Unknown sort direction: {other}")));
                    }
                };
                Ok(Some((prop.to_owned(), descending)))
            }
            _ => Err(validation("A sort must be a string or an object.")),
        }
    }
}

impl Backend {
    fn val<'a>(kind: Kind, object: &'a Object, prop: &str) -> Option<Val<'a>> {
        match prop {
            "hs_object_id" => Some(Val::Id(object.id)),
            "createdate" => Some(Val::Ms(object.created)),
            p if p == kind.lastmod() => Some(Val::Ms(object.updated)),
            _ => object.props.get(prop).map(|v| Val::Text(v.as_str())),
        }
    }

    fn key(kind: Kind, object: &Object, prop: &str) -> Key {
        match Self::val(kind, object, prop) {
            Some(Val::Ms(ms)) => Key::Ms(ms),
            Some(Val::Id(id)) => Key::Num(id as f64),
            Some(Val::Text(text)) => match text.trim().parse::<f64>() {
                Ok(num) => Key::Num(num),
                Err(_) => Key::Text(text.to_lowercase()),
            },
            None => Key::Missing,
        }
    }

    fn matches(&self, kind: Kind, object: &Object, filter: &Filter) -> bool {
        if let Some(target) = filter.prop.strip_prefix("associations.") {
            let other = Kind::parse(target);
            let linked = self.associated(kind, object.id);
            let hit = other == Some(kind.other())
                && filter
                    .operands
                    .iter()
                    .any(|o| parse_id(&o.raw).is_some_and(|id| linked.contains(&id)));
            return match filter.op {
                Op::Eq | Op::In => hit,
                Op::Neq | Op::NotIn => !hit,
                Op::HasProperty => !linked.is_empty(),
                Op::NotHasProperty => linked.is_empty(),
                _ => false,
            };
        }
        let Some(val) = Self::val(kind, object, &filter.prop) else {
            return filter.op.matches_missing();
        };
        let cmp = |operand: &Operand| -> Option<Ordering> {
            match val {
                Val::Ms(ms) => operand.ms.map(|other| ms.cmp(&other)),
                Val::Id(id) => operand
                    .num
                    .and_then(|other| (id as f64).partial_cmp(&other)),
                Val::Text(text) => match (text.trim().parse::<f64>(), operand.num) {
                    (Ok(num), Some(other)) => num.partial_cmp(&other),
                    _ => Some(text.to_lowercase().cmp(&operand.lower)),
                },
            }
        };
        let first = filter.operands.first();
        let is = |want: &[Ordering]| first.and_then(&cmp).is_some_and(|o| want.contains(&o));
        let equal_any = || {
            filter
                .operands
                .iter()
                .any(|o| cmp(o) == Some(Ordering::Equal))
        };
        let text = || match val {
            Val::Ms(ms) => ms.to_string(),
            Val::Id(id) => id.to_string(),
            Val::Text(text) => text.to_owned(),
        };
        match filter.op {
            Op::Eq => is(&[Ordering::Equal]),
            Op::Neq => !is(&[Ordering::Equal]),
            Op::Gt => is(&[Ordering::Greater]),
            Op::Gte => is(&[Ordering::Greater, Ordering::Equal]),
            Op::Lt => is(&[Ordering::Less]),
            Op::Lte => is(&[Ordering::Less, Ordering::Equal]),
            Op::Between => {
                is(&[Ordering::Greater, Ordering::Equal])
                    && filter
                        .operands
                        .get(1)
                        .and_then(&cmp)
                        .is_some_and(|o| o != Ordering::Greater)
            }
            Op::HasProperty => true,
            Op::NotHasProperty => false,
            Op::In => equal_any(),
            Op::NotIn => !equal_any(),
            Op::ContainsToken => first.is_some_and(|o| contains_token(&text(), &o.raw)),
            Op::NotContainsToken => !first.is_some_and(|o| contains_token(&text(), &o.raw)),
        }
    }

    fn query_matches(kind: Kind, object: &Object, query: &str) -> bool {
        kind.searchable().iter().any(|prop| {
            object
                .props
                .get(*prop)
                .is_some_and(|v| v.to_lowercase().contains(query))
        })
    }

    /// `POST /crm/v3/objects/{type}/search`.
    fn search(&self, kind: Kind, body: &[u8]) -> Answer {
        if body.len() > SEARCH_BODY_LIMIT {
            return Err(validation(&format!(
                "The search request is {} characters long; at most {SEARCH_BODY_LIMIT} are \
                 allowed.",
                body.len()
            )));
        }
        let request = SearchRequest::parse(kind, &parse_json(body)?)?;
        let cutoff = (self.search_lag_ms > 0).then(|| self.now() - self.search_lag_ms);
        let mut hits: Vec<&Object> = self
            .table(kind)
            .rows
            .values()
            .filter(|o| o.live())
            .filter(|o| cutoff.is_none_or(|c| o.touched() <= c))
            .filter(|o| {
                request.groups.is_empty()
                    || request
                        .groups
                        .iter()
                        .any(|g| g.iter().all(|f| self.matches(kind, o, f)))
            })
            .filter(|o| {
                request
                    .query
                    .as_deref()
                    .is_none_or(|q| Self::query_matches(kind, o, q))
            })
            .collect();
        if let Some((prop, descending)) = &request.sort {
            let mut keyed: Vec<(Key, &Object)> = hits
                .into_iter()
                .map(|o| (Self::key(kind, o, prop), o))
                .collect();
            keyed.sort_by(|(ka, a), (kb, b)| {
                let by_value = match (ka, kb) {
                    (Key::Missing, Key::Missing) => Ordering::Equal,
                    (Key::Missing, _) => Ordering::Greater,
                    (_, Key::Missing) => Ordering::Less,
                    _ if *descending => cmp_keys(kb, ka),
                    _ => cmp_keys(ka, kb),
                };
                by_value.then(a.id.cmp(&b.id))
            });
            hits = keyed.into_iter().map(|(_, o)| o).collect();
        }
        let total = hits.len();
        let results: Vec<Value> = hits
            .iter()
            .skip(request.after)
            .take(request.limit)
            .map(|o| self.render(kind, o, &request.props, &[]))
            .collect();
        let mut body = json!({ "total": total, "results": results });
        let next = request.after + request.limit;
        if request.limit > 0
            && next < total
            && let Some(map) = body.as_object_mut()
        {
            map.insert(
                "paging".to_owned(),
                json!({"next": {"after": next.to_string()}}),
            );
        }
        Reply::ok(&body)
    }
}

// ---------------------------------------------------------------------------------------
// Associations v4
// ---------------------------------------------------------------------------------------

impl Backend {
    /// The live object `raw` names, or a 404.
    fn live_id(&self, kind: Kind, raw: &str) -> Result<u64, Reply> {
        parse_id(raw)
            .filter(|id| self.live(kind, *id).is_some())
            .ok_or_else(|| not_found(raw))
    }

    /// The live objects of the other type associated with `id`.
    fn live_associated(&self, kind: Kind, id: u64) -> Vec<u64> {
        self.associated(kind, id)
            .into_iter()
            .filter(|to| self.live(kind.other(), *to).is_some())
            .collect()
    }

    /// `GET /crm/v4/objects/{from}/{id}/associations/{to}`: by target id, `after` (an
    /// id), `limit` ≤ 500.
    fn v4_list(&self, kind: Kind, raw: &str, query: &Params) -> Answer {
        let id = self.live_id(kind, raw)?;
        let limit = query.limit(500, 500)?;
        let after = query.after_id()?.unwrap_or(0);
        let mut targets = self
            .live_associated(kind, id)
            .into_iter()
            .filter(|to| *to >= after);
        let results: Vec<Value> = targets
            .by_ref()
            .take(limit)
            .map(|to| self.v4_associated(kind, id, to))
            .collect();
        let mut body = json!({ "results": results });
        if let (Some(next), Some(map)) = (targets.next(), body.as_object_mut()) {
            let link = format!(
                "{}/crm/v4/objects/{}/{id}/associations/{}?limit={limit}&after={next}",
                self.base_url,
                kind.plural(),
                kind.other().plural()
            );
            map.insert(
                "paging".to_owned(),
                json!({"next": {"after": next.to_string(), "link": link}}),
            );
        }
        Reply::ok(&body)
    }

    /// `PUT …/associations/default/{to}/{toId}` (`labels` `None`, 200) or
    /// `PUT …/associations/{to}/{toId}` with a body of association types (201).
    fn v4_put(&mut self, kind: Kind, raw: &str, target: &str, labels: Option<&[u8]>) -> Answer {
        let id = self.live_id(kind, raw)?;
        let to = self.live_id(kind.other(), target)?;
        let (contact, company) = match kind {
            Kind::Contact => (id, to),
            Kind::Company => (to, id),
        };
        let (primary_type, plain_type) = match kind {
            Kind::Contact => (1, 279),
            Kind::Company => (2, 280),
        };
        let Some(labels) = labels else {
            self.associate(contact, company);
            let now = iso(self.now());
            return Reply::ok(&json!({
                "status": "COMPLETE",
                "results": [{
                    "from": {"id": id.to_string()},
                    "to": {"id": to.to_string()},
                    "associationSpec": {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": plain_type
                    }
                }],
                "startedAt": now,
                "completedAt": now
            }));
        };
        let types = match parse_json(labels)? {
            Value::Array(types) => types,
            _ => {
                return Err(validation(
                    "The body must be an array of association types.",
                ));
            }
        };
        self.associate(contact, company);
        let wants_primary = types
            .iter()
            .any(|t| t.get("associationTypeId").and_then(Value::as_i64) == Some(primary_type));
        if wants_primary {
            self.primary.insert(contact, company);
        }
        let labels: Vec<&str> = if self.is_primary(contact, company) {
            vec!["Primary"]
        } else {
            Vec::new()
        };
        Ok(Reply::json(
            StatusCode::CREATED,
            &json!({
                "fromObjectTypeId": kind.type_id(),
                "fromObjectId": id,
                "toObjectTypeId": kind.other().type_id(),
                "toObjectId": to,
                "labels": labels
            }),
        ))
    }

    /// `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`: 204.
    fn v4_delete(&mut self, kind: Kind, raw: &str, target: &str) -> Answer {
        let (Some(id), Some(to)) = (parse_id(raw), parse_id(target)) else {
            return Err(not_found(raw));
        };
        match kind {
            Kind::Contact => self.dissociate(id, to),
            Kind::Company => self.dissociate(to, id),
        }
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    }

    /// `POST /crm/v4/associations/{from}/{to}/batch/read` (≤ 1000 inputs): 207 with
    /// `NO_ASSOCIATIONS_FOUND` errors for objects without any.
    fn v4_batch_read(&self, kind: Kind, body: &[u8]) -> Answer {
        let input = parse_json(body)?;
        let inputs = batch_inputs(&input, 1000)?;
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for item in inputs {
            let raw = json_id(item.get("id")).unwrap_or_default();
            let targets = parse_id(&raw)
                .filter(|id| self.live(kind, *id).is_some())
                .map(|id| (id, self.live_associated(kind, id)))
                .filter(|(_, targets)| !targets.is_empty());
            match targets {
                Some((id, targets)) => {
                    let to: Vec<Value> = targets
                        .iter()
                        .map(|to| self.v4_associated(kind, id, *to))
                        .collect();
                    results.push(json!({"from": {"id": raw}, "to": to}));
                }
                None => errors.push(json!({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": format!(
                        "No {} is associated with {} {raw}.",
                        kind.other().singular(),
                        kind.singular()
                    ),
                    "context": {"fromObjectId": [raw]}
                })),
            }
        }
        let now = iso(self.now());
        let mut body = json!({
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now
        });
        if errors.is_empty() {
            return Reply::ok(&body);
        }
        if let Some(map) = body.as_object_mut() {
            map.insert("numErrors".to_owned(), json!(errors.len()));
            map.insert("errors".to_owned(), Value::Array(errors));
        }
        Ok(Reply::json(StatusCode::MULTI_STATUS, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const EXAMPLE_URI: &str = "https://www.example.com/webhook_uri";
    const EXAMPLE_BODY: &[u8] = br#"{"example_field":"example_value"}"#;

    fn client() -> reqwest::Client {
        portal::install_crypto_provider();
        reqwest::Client::new()
    }

    /// Status, headers and body (parsed when JSON, else as a string) of a response.
    async fn read(
        response: reqwest::Response,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, headers, body))
    }

    async fn get(
        hubspot: &FakeHubSpot,
        http: &reqwest::Client,
        path_and_query: &str,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let response = http
            .get(format!("{}{path_and_query}", hubspot.base_url()))
            .bearer_auth(PRIVATE_APP_TOKEN)
            .send()
            .await?;
        read(response).await
    }

    async fn post(
        hubspot: &FakeHubSpot,
        http: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let response = http
            .post(format!("{}{path}", hubspot.base_url()))
            .bearer_auth(PRIVATE_APP_TOKEN)
            .json(body)
            .send()
            .await?;
        read(response).await
    }

    async fn token(
        hubspot: &FakeHubSpot,
        http: &reqwest::Client,
        form: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let response = http
            .post(format!("{}/oauth/v1/token", hubspot.base_url()))
            .form(form)
            .send()
            .await?;
        let (status, _, body) = read(response).await?;
        Ok((status, body))
    }

    fn ids(page: &Value) -> Vec<String> {
        page["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .filter_map(|o| o["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ms(iso_time: &Value) -> i64 {
        iso_time.as_str().and_then(parse_ms).unwrap_or_default()
    }

    #[test]
    fn signatures_match_the_documented_vectors() {
        let v1_body = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
        assert_eq!(
            sign_v1(SECRET, v1_body),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
        assert_eq!(
            sign_v2(SECRET, "GET", EXAMPLE_URI, b""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            sign_v2(SECRET, "POST", EXAMPLE_URI, EXAMPLE_BODY),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
        assert_eq!(
            sign_v3(SECRET, "POST", EXAMPLE_URI, EXAMPLE_BODY, 1_700_000_000_000),
            "rQEKkaNUiu+1qGF//O/pw4BCzstSqO1PyUnGICmf+7o="
        );
        let deletion = br#"[{"eventId":100,"subscriptionId":25,"portalId":62515,"appId":54321,"occurredAt":1700000000000,"subscriptionType":"company.deletion","attemptNumber":0,"objectId":5790939450,"changeSource":"CRM","changeFlag":"DELETED"}]"#;
        assert_eq!(
            sign_v3(
                SECRET,
                "POST",
                "https://fake.example/hubspot/webhook",
                deletion,
                1_700_000_000_000
            ),
            "1lCM5LaY3Ovhda2VhDgoFcUnxPeppSFmSkPg0r8Lf5Q="
        );
    }

    #[test]
    fn search_helpers_parse_and_match() {
        assert_eq!(parse_ms("1579514400000"), Some(1_579_514_400_000));
        assert_eq!(
            parse_ms("2020-01-20T10:00:00.000Z"),
            Some(1_579_514_400_000)
        );
        assert_eq!(iso(1_579_514_400_000), "2020-01-20T10:00:00.000Z");
        assert!(contains_token("Acme Widgets Inc.", "widgets"));
        assert!(contains_token("jane@acme.example", "*@acme.example"));
        assert!(!contains_token("Acme Widgets", "widget"));
        assert!(contains_token("Acme Widgets", "widget*"));
        assert_eq!(
            Params::parse("properties=name,domain&properties=phone").list("properties"),
            vec!["name", "domain", "phone"]
        );
    }

    #[tokio::test]
    async fn list_pages_return_each_company_once() -> anyhow::Result<()> {
        let hubspot = FakeHubSpot::start().await?;
        let created: Vec<String> = (0..250)
            .map(|n| hubspot.add_company(&format!("Company {n}"), &format!("c{n}.example")))
            .collect();
        let http = client();
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut after = String::new();
        loop {
            let (status, headers, page) = get(
                &hubspot,
                &http,
                &format!(
                    "/crm/v3/objects/companies?limit=100&properties=name,domain&after={after}"
                ),
            )
            .await?;
            assert_eq!(status, 200, "{page}");
            assert_eq!(headers["x-hubspot-ratelimit-max"], "190");
            assert_eq!(
                headers["x-hubspot-ratelimit-interval-milliseconds"],
                "10000"
            );
            assert!(headers.get("x-hubspot-ratelimit-daily-remaining").is_some());
            let first = &page["results"][0];
            assert_eq!(first["archived"], false);
            assert!(first["properties"]["name"].is_string());
            assert!(first["properties"]["hs_lastmodifieddate"].is_string());
            assert_eq!(first["properties"]["hs_object_id"], first["id"]);
            sizes.push(ids(&page).len());
            seen.extend(ids(&page));
            match page["paging"]["next"]["after"].as_str() {
                Some(next) => after = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(sizes, vec![100, 100, 50]);
        assert_eq!(seen, created);
        // Defaults: ten, with name and domain; limit over 100 is refused.
        let (_, _, page) = get(&hubspot, &http, "/crm/v3/objects/companies").await?;
        assert_eq!(ids(&page).len(), 10);
        assert_eq!(page["paging"]["next"]["after"], created[10].as_str());
        let (status, _, body) = get(&hubspot, &http, "/crm/v3/objects/companies?limit=101").await?;
        assert_eq!(status, 400);
        assert_eq!(body["category"], "VALIDATION_ERROR");
        // Repeated `properties` work too, and unknown ones are left out.
        let (_, _, one) = get(
            &hubspot,
            &http,
            &format!(
                "/crm/v3/objects/companies/{}?properties=domain&properties=phone&properties=nope",
                created[3]
            ),
        )
        .await?;
        let props = &one["properties"];
        assert_eq!(props["domain"], "c3.example");
        assert!(props["phone"].is_null() && props.get("phone").is_some());
        assert!(props.get("nope").is_none() && props.get("name").is_none());
        Ok(())
    }

    #[tokio::test]
    async fn search_pages_by_last_modified_up_to_the_cap() -> anyhow::Result<()> {
        let hubspot = FakeHubSpot::start().await?;
        let started = Instant::now();
        hubspot.add_companies_bulk(20_000);
        assert!(hubspot.now_ms() >= hubspot.backend.lock().last_stamp);
        hubspot.set_search_rate_limit(10_000);
        let http = client();
        let search = |after: usize, since: i64| {
            json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since.to_string()}
                ]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["name", "hs_lastmodifieddate"],
                "limit": 200,
                "after": after.to_string()
            })
        };
        // Keyset windows: page each query to the cap, then restart from the last stamp.
        let mut seen = std::collections::HashSet::new();
        let mut since = 0;
        let mut last = i64::MIN;
        let mut windows = 0;
        loop {
            windows += 1;
            let mut after = 0;
            let mut window_last = None;
            loop {
                let (status, headers, page) = post(
                    &hubspot,
                    &http,
                    "/crm/v3/objects/companies/search",
                    &search(after, since),
                )
                .await?;
                assert_eq!(status, 200, "{page}");
                assert!(headers.get("x-hubspot-ratelimit-remaining").is_none());
                for result in page["results"].as_array().into_iter().flatten() {
                    let stamp = ms(&result["properties"]["hs_lastmodifieddate"]);
                    assert_eq!(stamp, ms(&result["updatedAt"]));
                    assert!(stamp >= last, "not ascending");
                    last = stamp;
                    window_last = Some(stamp);
                    seen.insert(result["id"].as_str().unwrap_or_default().to_owned());
                }
                if windows == 1 && after == 0 {
                    assert_eq!(page["total"], 20_000);
                }
                match page["paging"]["next"]["after"].as_str() {
                    Some(next) if next.parse::<usize>()? + 200 <= SEARCH_CAP => {
                        after = next.parse()?;
                    }
                    Some(next) => {
                        // One step further is refused.
                        assert_eq!(next, "10000");
                        let (status, _, body) = post(
                            &hubspot,
                            &http,
                            "/crm/v3/objects/companies/search",
                            &search(10_000, since),
                        )
                        .await?;
                        assert_eq!(status, 400);
                        assert_eq!(body["category"], "VALIDATION_ERROR");
                        break;
                    }
                    None => break,
                }
            }
            match window_last {
                Some(stamp) if stamp > since => since = stamp,
                _ => break,
            }
        }
        assert_eq!(seen.len(), 20_000);
        // 10 000, 10 000 (from the last stamp seen, inclusive), 2, then just that last one.
        assert_eq!(windows, 4);
        eprintln!(
            "20 000 companies searched through in {:?}",
            started.elapsed()
        );

        // The limits on the request itself.
        let filter = json!({"propertyName": "name", "operator": "HAS_PROPERTY"});
        let group = |n: usize| json!({"filters": vec![filter.clone(); n]});
        for (body, why) in [
            (json!({"limit": 201}), "limit"),
            (json!({"filterGroups": vec![group(1); 6]}), "groups"),
            (json!({"filterGroups": [group(7)]}), "filters per group"),
            (
                json!({"filterGroups": vec![group(5), group(5), group(5), group(4)]}),
                "groups",
            ),
            (
                json!({"filterGroups": [group(6), group(6), group(6), group(1)]}),
                "filters",
            ),
            (json!({"after": "9990", "limit": 20}), "cap"),
            (json!({"sorts": ["name", "-domain"]}), "sorts"),
        ] {
            let (status, _, body) =
                post(&hubspot, &http, "/crm/v3/objects/companies/search", &body).await?;
            assert_eq!(status, 400, "{why}: {body}");
        }
        // Eighteen filters are fine; a "-prop" sort and BETWEEN work.
        let (status, _, page) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/companies/search",
            &json!({
                "filterGroups": [group(6), group(6), group(6)],
                "sorts": ["-hs_object_id"],
                "limit": 3
            }),
        )
        .await?;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 20_000);
        let newest = page["results"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (_, _, page) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/companies/search",
            &json!({"filterGroups": [{"filters": [
                {"propertyName": "hs_object_id", "operator": "BETWEEN", "value": newest, "highValue": newest},
                {"propertyName": "name", "operator": "EQ", "value": "bulk company 020000"}
            ]}]}),
        )
        .await?;
        assert_eq!(ids(&page), vec![newest]);
        Ok(())
    }

    #[tokio::test]
    async fn archived_companies_leave_search_and_list() -> anyhow::Result<()> {
        let hubspot = FakeHubSpot::start().await?;
        let kept = hubspot.add_company("Kept", "kept.example");
        let deleted = hubspot.add_company("Deleted", "deleted.example");
        let archived = hubspot.add_company("Archived", "archived.example");
        let http = client();
        let response = http
            .delete(format!(
                "{}/crm/v3/objects/companies/{deleted}",
                hubspot.base_url()
            ))
            .bearer_auth(PRIVATE_APP_TOKEN)
            .send()
            .await?;
        let (status, _, body) = read(response).await?;
        assert_eq!(status, 204, "{body}");
        hubspot.archive_company(&archived);

        let (_, _, live) = get(&hubspot, &http, "/crm/v3/objects/companies").await?;
        assert_eq!(ids(&live), vec![kept.clone()]);
        let (_, _, found) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/companies/search",
            &json!({"filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}
            ]}]}),
        )
        .await?;
        assert_eq!(ids(&found), vec![kept.clone()]);
        assert_eq!(found["total"], 1);

        let (_, _, gone) = get(&hubspot, &http, "/crm/v3/objects/companies?archived=true").await?;
        assert_eq!(ids(&gone), vec![deleted.clone(), archived.clone()]);
        assert_eq!(gone["results"][0]["archived"], true);
        assert!(gone["results"][0]["archivedAt"].is_string());

        let (status, _, body) = get(
            &hubspot,
            &http,
            &format!("/crm/v3/objects/companies/{deleted}"),
        )
        .await?;
        assert_eq!(status, 404);
        assert_eq!(body["category"], "OBJECT_NOT_FOUND");
        assert_eq!(
            body["message"],
            "Object not found.  objectId are usually numeric."
        );
        assert_eq!(body["context"]["id"], json!([deleted]));
        let (status, _, body) = get(
            &hubspot,
            &http,
            &format!("/crm/v3/objects/companies/{deleted}?archived=true"),
        )
        .await?;
        assert_eq!(status, 200);
        assert_eq!(body["archived"], true);
        assert_eq!(
            hubspot.company(&archived).map(|c| c["archived"].clone()),
            Some(json!(true))
        );

        // Batch read: the archived and unknown ids come back as a 207 error.
        let (status, _, batch) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/companies/batch/read",
            &json!({"inputs": [{"id": kept}, {"id": deleted}, {"id": "12"}], "properties": ["domain"]}),
        )
        .await?;
        assert_eq!(status, 207, "{batch}");
        assert_eq!(ids(&batch), vec![kept]);
        assert_eq!(batch["results"][0]["properties"]["domain"], "kept.example");
        assert_eq!(batch["numErrors"], 1);
        assert_eq!(batch["errors"][0]["context"]["ids"], json!([deleted, "12"]));
        Ok(())
    }

    #[tokio::test]
    async fn oauth_tokens_refresh_expire_and_get_revoked() -> anyhow::Result<()> {
        let hubspot = FakeHubSpot::start().await?;
        let http = client();
        let refresh = [
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", REFRESH_TOKEN),
        ];
        let (status, issued) = token(&hubspot, &http, &refresh).await?;
        assert_eq!(status, 200, "{issued}");
        let keys: Vec<&String> = issued
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "token_type",
                "refresh_token",
                "access_token",
                "hub_id",
                "scopes",
                "expires_in"
            ]
        );
        assert_eq!(issued["token_type"], "bearer");
        assert_eq!(issued["expires_in"], 1800);
        assert_eq!(issued["refresh_token"], REFRESH_TOKEN);
        let access = issued["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

        let url = format!("{}/crm/v3/objects/contacts", hubspot.base_url());
        let (status, headers, _) = read(http.get(&url).bearer_auth(&access).send().await?).await?;
        assert_eq!(status, 200);
        assert!(headers.get("x-hubspot-ratelimit-remaining").is_some());
        assert!(headers.get("x-hubspot-ratelimit-daily").is_none());

        hubspot.advance(1_800_000 + 75_000);
        let (status, _, body) = read(http.get(&url).bearer_auth(&access).send().await?).await?;
        assert_eq!(status, 401);
        assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
        assert_eq!(
            body["message"],
            "The OAuth token used to make this call expired 75 second(s) ago."
        );
        assert!(body["context"]["expire time"][0].is_string());

        hubspot.set_token_ttl(60);
        let (_, issued) = token(&hubspot, &http, &refresh).await?;
        assert_eq!(issued["expires_in"], 60);
        let fresh = issued["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, _, _) = read(http.get(&url).bearer_auth(&fresh).send().await?).await?;
        assert_eq!(status, 200);
        hubspot.expire_access_tokens();
        let (status, _, body) = read(http.get(&url).bearer_auth(&fresh).send().await?).await?;
        assert_eq!(
            (status, body["category"].clone()),
            (401, json!("EXPIRED_AUTHENTICATION"))
        );

        let (status, _, body) = read(http.get(&url).bearer_auth("CJnope").send().await?).await?;
        assert_eq!(status, 401);
        assert_eq!(body["category"], "INVALID_AUTHENTICATION");
        let (status, _, _) = read(http.get(&url).send().await?).await?;
        assert_eq!(status, 401);

        hubspot.revoke_refresh_token();
        let (status, body) = token(&hubspot, &http, &refresh).await?;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({
                "error": "invalid_grant",
                "error_description": "refresh token is invalid, expired or revoked",
                "status": "BAD_REFRESH_TOKEN",
                "message": "refresh token is invalid, expired or revoked"
            })
        );
        let (status, body) = token(
            &hubspot,
            &http,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "other"),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await?;
        assert_eq!(
            (status, body["error"].clone()),
            (400, json!("invalid_client"))
        );

        // A code exchange checks the redirect URI, is single-use, and re-installs.
        let redirect = "https://portal.test/oauth/hubspot/callback";
        let code = hubspot.authorization_code(redirect);
        let exchange = |code: String, redirect: &'static str| {
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("client_id", CLIENT_ID.to_owned()),
                ("client_secret", CLIENT_SECRET.to_owned()),
                ("redirect_uri", redirect.to_owned()),
                ("code", code),
            ]
        };
        let send = |form: Vec<(&'static str, String)>| {
            http.post(format!("{}/oauth/v1/token", hubspot.base_url()))
                .form(&form)
                .send()
        };
        let (status, _, body) = read(send(exchange(code, "https://evil.test/cb")).await?).await?;
        assert_eq!(
            (status, body["error"].clone()),
            (400, json!("invalid_grant"))
        );
        let code = hubspot.authorization_code(redirect);
        let (status, _, body) = read(send(exchange(code.clone(), redirect)).await?).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["refresh_token"], REFRESH_TOKEN);
        let (status, _, body) = read(send(exchange(code, redirect)).await?).await?;
        assert_eq!(
            (status, body["status"].clone()),
            (400, json!("BAD_AUTH_CODE"))
        );
        let (status, _) = token(&hubspot, &http, &refresh).await?;
        assert_eq!(status, 200);
        assert_eq!(hubspot.token_requests(), 8);
        Ok(())
    }

    #[tokio::test]
    async fn faults_and_rate_limits_answer_429s() -> anyhow::Result<()> {
        let hubspot = FakeHubSpot::start().await?;
        hubspot.add_company("Acme", "acme.example");
        let http = client();
        hubspot.fail_next(
            1,
            Fault::TenSecondly {
                retry_after: Some(3),
            },
        );
        hubspot.fail_next(1, Fault::TenSecondly { retry_after: None });
        hubspot.fail_next(1, Fault::Daily);
        hubspot.fail_next(1, Fault::SearchSecondly);
        hubspot.fail_next(1, Fault::ServerError);
        hubspot.fail_next(1, Fault::Locked);
        hubspot.fail_next(1, Fault::Malformed);
        // Unauthenticated requests do not use up a fault.
        let response = http
            .get(format!("{}/crm/v3/objects/companies", hubspot.base_url()))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 401);
        let list = "/crm/v3/objects/companies";
        let (status, headers, body) = get(&hubspot, &http, list).await?;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(headers["x-hubspot-ratelimit-remaining"], "0");
        assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
        assert_eq!(body["errorType"], "RATE_LIMIT");
        assert_eq!(
            body["message"],
            "You have reached your ten_secondly_rolling limit."
        );
        assert!(body.get("category").is_none());
        let (status, headers, _) = get(&hubspot, &http, list).await?;
        assert_eq!(status, 429);
        assert!(headers.get("retry-after").is_none());
        let (status, _, body) = get(&hubspot, &http, list).await?;
        assert_eq!((status, body["policyName"].clone()), (429, json!("DAILY")));
        assert_eq!(body["message"], "You have reached your daily limit.");
        let (status, headers, body) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/companies/search",
            &json!({}),
        )
        .await?;
        assert_eq!(status, 429);
        assert_eq!(body["message"], "You have reached your secondly limit.");
        assert!(headers.get("x-hubspot-ratelimit-max").is_none());
        let (status, _, _) = get(&hubspot, &http, list).await?;
        assert_eq!(status, 500);
        let (status, _, _) = get(&hubspot, &http, list).await?;
        assert_eq!(status, 423);
        let (status, headers, body) = get(&hubspot, &http, list).await?;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json;charset=utf-8");
        assert!(body.is_string(), "not JSON: {body}");
        let (status, _, _) = get(&hubspot, &http, list).await?;
        assert_eq!(status, 200);

        // The real 10-second window.
        hubspot.set_rate_limit(3);
        let mut remaining = Vec::new();
        for _ in 0..4 {
            let (status, headers, body) = get(&hubspot, &http, list).await?;
            remaining.push((
                status,
                headers["x-hubspot-ratelimit-remaining"]
                    .to_str()?
                    .to_owned(),
                body["policyName"].as_str().map(str::to_owned),
            ));
        }
        // One request of the window was already used above.
        assert_eq!(
            remaining,
            vec![
                (200, "1".to_owned(), None),
                (200, "0".to_owned(), None),
                (429, "0".to_owned(), Some("TEN_SECONDLY_ROLLING".to_owned())),
                (429, "0".to_owned(), Some("TEN_SECONDLY_ROLLING".to_owned())),
            ]
        );
        // Search does not count toward it, but has its own 5 per second.
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let (status, _, _) = post(
                &hubspot,
                &http,
                "/crm/v3/objects/companies/search",
                &json!({}),
            )
            .await?;
            statuses.push(status);
        }
        assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);
        let recorded = hubspot.requests();
        let last = recorded
            .last()
            .map(|r| (r.method.clone(), r.path.clone(), r.body.clone()));
        assert_eq!(
            last,
            Some((
                "POST".to_owned(),
                "/crm/v3/objects/companies/search".to_owned(),
                "{}".to_owned()
            ))
        );
        assert_eq!(
            recorded[1].authorization.as_deref(),
            Some(format!("Bearer {PRIVATE_APP_TOKEN}").as_str())
        );
        hubspot.clear_requests();
        assert!(hubspot.requests().is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn contacts_conflict_on_duplicate_email() -> anyhow::Result<()> {
        let hubspot = FakeHubSpot::start().await?;
        let http = client();
        let jane = hubspot.add_contact("Jane@Example.com", "Jane", "Doe");
        let (status, headers, body) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "jane@example.COM", "firstname": "J"}, "associations": []}),
        )
        .await?;
        assert_eq!(status, 409);
        assert_eq!(headers["content-type"], "application/json;charset=utf-8");
        let keys: Vec<&String> = body
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["status", "message", "correlationId", "category"]);
        assert_eq!(body["category"], "CONFLICT");
        assert_eq!(
            body["message"],
            format!("Contact already exists. Existing ID: {jane}")
        );

        let (status, _, created) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "john@example.com", "lastname": "Roe"}}),
        )
        .await?;
        assert_eq!(status, 201, "{created}");
        assert!(created["properties"]["lastmodifieddate"].is_string());
        let john = created["id"].as_str().unwrap_or_default().to_owned();
        // Updating John to Jane's email conflicts as well; a new one is fine.
        let patch = |body: Value| {
            http.patch(format!(
                "{}/crm/v3/objects/contacts/{john}",
                hubspot.base_url()
            ))
            .bearer_auth(PRIVATE_APP_TOKEN)
            .json(&body)
            .send()
        };
        let (status, _, _) =
            read(patch(json!({"properties": {"email": "jane@example.com"}})).await?).await?;
        assert_eq!(status, 409);
        let (status, _, updated) =
            read(patch(json!({"properties": {"email": "johnny@example.com"}})).await?).await?;
        assert_eq!(status, 200);
        assert!(ms(&updated["updatedAt"]) > ms(&created["updatedAt"]));
        let (status, _, body) =
            read(patch(json!({"properties": {"favourite_colour": "red"}})).await?).await?;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
        let (status, _, body) =
            read(patch(json!({"properties": {"lastmodifieddate": "0"}})).await?).await?;
        assert_eq!(
            (status, body["errors"][0]["code"].clone()),
            (400, json!("READ_ONLY_VALUE"))
        );

        // Reads by email; archiving frees the email.
        let (status, _, found) = get(
            &hubspot,
            &http,
            "/crm/v3/objects/contacts/JANE@example.com?idProperty=email",
        )
        .await?;
        assert_eq!(status, 200);
        assert_eq!(found["id"], jane.as_str());
        assert_eq!(found["properties"]["email"], "jane@example.com");
        hubspot.archive_contact(&jane);
        let (status, _, _) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "jane@example.com"}}),
        )
        .await?;
        assert_eq!(status, 201);
        Ok(())
    }

    #[tokio::test]
    async fn associations_and_webhooks() -> anyhow::Result<()> {
        let hubspot = FakeHubSpot::start().await?;
        let http = client();
        let acme = hubspot.add_company("Acme", "acme.example");
        let globex = hubspot.add_company("Globex", "globex.example");
        let jane = hubspot.add_contact("jane@acme.example", "Jane", "Doe");
        let lonely = hubspot.add_contact("lonely@example.com", "Lo", "Nely");
        hubspot.associate(&jane, &acme);
        hubspot.associate(&jane, &globex);
        let (status, _, page) = get(
            &hubspot,
            &http,
            &format!("/crm/v4/objects/contacts/{jane}/associations/companies"),
        )
        .await?;
        assert_eq!(status, 200, "{page}");
        let acme_id: u64 = acme.parse()?;
        assert_eq!(page["results"][0]["toObjectId"], acme_id);
        assert_eq!(page["results"][0]["associationTypes"][0]["typeId"], 1);
        assert_eq!(page["results"][0]["associationTypes"][1]["typeId"], 279);
        assert_eq!(
            page["results"][1]["associationTypes"],
            json!([
                {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null}
            ])
        );
        let (_, _, one) = get(
            &hubspot,
            &http,
            &format!("/crm/v4/objects/contacts/{jane}/associations/companies?limit=1"),
        )
        .await?;
        assert_eq!(one["paging"]["next"]["after"], globex.as_str());
        let (_, _, contact) = get(
            &hubspot,
            &http,
            &format!("/crm/v3/objects/contacts/{jane}?associations=companies"),
        )
        .await?;
        assert_eq!(
            contact["associations"]["companies"]["results"][0],
            json!({"id": acme, "type": "contact_to_company"})
        );
        let (status, _, batch) = post(
            &hubspot,
            &http,
            "/crm/v4/associations/contacts/companies/batch/read",
            &json!({"inputs": [{"id": jane}, {"id": lonely}]}),
        )
        .await?;
        assert_eq!(status, 207);
        assert_eq!(batch["results"][0]["to"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            batch["errors"][0]["subCategory"],
            "crm.associations.NO_ASSOCIATIONS_FOUND"
        );
        // A company search by associated contact.
        let (_, _, found) = post(
            &hubspot,
            &http,
            "/crm/v3/objects/companies/search",
            &json!({"filterGroups": [{"filters": [
                {"propertyName": "associations.contact", "operator": "EQ", "value": jane}
            ]}]}),
        )
        .await?;
        assert_eq!(ids(&found), vec![acme.clone(), globex.clone()]);

        let body = hubspot.webhook_payload(&[
            ("company.deletion", &acme),
            ("contact.propertyChange", &jane),
        ]);
        let events: Value = serde_json::from_slice(&body)?;
        assert_eq!(events[0]["objectId"], acme_id);
        assert_eq!(events[0]["changeFlag"], "DELETED");
        assert_eq!(events[0]["portalId"], HUB_ID);
        assert_eq!(events[0]["attemptNumber"], 0);
        assert!(events[0]["occurredAt"].is_i64() && events[0]["eventId"].is_u64());
        assert_eq!(events[1]["propertyName"], "email");
        assert_eq!(events[1]["propertyValue"], "jane@acme.example");
        let signature = sign_v3(CLIENT_SECRET, "POST", "https://portal.test/hooks", &body, 1);
        assert_eq!(STANDARD.decode(signature)?.len(), 32);
        Ok(())
    }
}
