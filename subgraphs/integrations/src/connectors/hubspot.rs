//! HubSpot CRM v3 (`docs/vendors/hubspot.md`): companies, and contacts where the
//! integration opts in.
//!
//! - **Backfill** lists each object type (`GET /crm/v3/objects/{type}`, 100 a page),
//!   then goes on as incremental sync from when it started — so nothing changed during
//!   the backfill is missed.
//! - **Incremental** searches each type by last-modified time (`POST …/search`,
//!   `hs_lastmodifieddate` for companies, `lastmodifieddate` for contacts, `GTE` the
//!   watermark, oldest first, 200 a page). Pages go by time, never by position: each is
//!   a new query from the last time the previous one read, so no query comes near
//!   search's 10 000-result cap, and a record changed while the window is read moves
//!   behind and is read then (paging by position would skip the one that slid into its
//!   place). A page that is all one millisecond goes on through it by object id. Search is eventually
//!   consistent, so a window's watermark never passes its start minus [`LAG_MS`]: the
//!   next window reads those minutes again (unchanged records cost a lookup, no write).
//! - **Deletions** never show in search: each incremental run then lists the recycle bin
//!   (`?archived=true`) and reports what was archived since the last run as deleted.
//! - **Push** updates a company's properties (`PATCH …/companies/{id}`; a PATCH is
//!   idempotent, HubSpot takes no idempotency key).
//! - **Webhooks** are verified as HubSpot signs them (v3): `X-HubSpot-Signature-v3` is the
//!   base64 HMAC-SHA256 of method, public URL, body and `X-HubSpot-Request-Timestamp`
//!   under the app's client secret, at most five minutes old. The v1 and v2 signatures
//!   carry no time (a captured request could be replayed forever) and are not accepted.
//! - **Rate limits**: calls are paced per account below HubSpot's limits
//!   ([`super::Pacing`]); a 429 all the same says which limit (`policyName`): the ten-second window is
//!   waited out (`X-HubSpot-RateLimit-Interval-Milliseconds`), search's per-second limit
//!   one second, the daily limit an hour — the job comes back then. `423 Locked` is
//!   waited two seconds, `477` as its `Retry-After` says.
//!
//! Property values are strings (or null); ids are strings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::limits::{Limit, Rate};
use super::remote::{Call, Remote, RemoteError};
use super::{ConnectionInfo, Connector, Inbound, Page, Push, Record, WebhookRejection, oauth};

/// The provider name.
pub const PROVIDER: &str = "hubspot";
/// HubSpot's API.
pub const BASE_URL: &str = "https://api.hubapi.com";
/// HubSpot's OAuth consent page.
pub const AUTHORIZE_URL: &str = "https://app.hubspot.com/oauth/authorize";
/// Records per list page (HubSpot's largest).
const LIST_LIMIT: u64 = 100;
/// Records per search page (HubSpot's largest).
const SEARCH_LIMIT: u64 = 200;
/// How far behind writes the search index may be: a window's watermark stays this far
/// behind its start.
pub const LAG_MS: i64 = 120_000;
/// How old a webhook signature may be, in milliseconds (HubSpot's SDKs' bound).
pub const TOLERANCE_MS: i64 = 300_000;
/// The external type of a company.
pub const COMPANY: &str = "company";
/// The external type of a contact.
pub const CONTACT: &str = "contact";

/// A CRM object type the connector reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// Companies (↔ accounts).
    Company,
    /// Contacts (↔ users).
    Contact,
}

impl Object {
    fn plural(self) -> &'static str {
        match self {
            Self::Company => "companies",
            Self::Contact => "contacts",
        }
    }

    fn parse(plural: &str) -> Option<Self> {
        match plural {
            "companies" => Some(Self::Company),
            "contacts" => Some(Self::Contact),
            _ => None,
        }
    }

    /// The external type of its records.
    pub fn external_type(self) -> &'static str {
        match self {
            Self::Company => COMPANY,
            Self::Contact => CONTACT,
        }
    }

    /// The property holding its last-modified time (they differ).
    fn modified(self) -> &'static str {
        match self {
            Self::Company => "hs_lastmodifieddate",
            Self::Contact => "lastmodifieddate",
        }
    }

    fn properties(self) -> &'static [&'static str] {
        match self {
            Self::Company => &["name", "domain", "hs_lastmodifieddate"],
            Self::Contact => &["email", "firstname", "lastname", "lastmodifieddate"],
        }
    }
}

/// The object types an integration syncs, in order (companies first: a contact's company
/// is linked before the contact arrives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Objects(Vec<Object>);

impl Objects {
    /// Companies, and contacts when `settings` say `{"syncContacts": true}`.
    pub fn from_settings(settings: Option<&Value>) -> Self {
        if crate::domain::sync::syncs_contacts(settings) {
            Self(vec![Object::Company, Object::Contact])
        } else {
            Self(vec![Object::Company])
        }
    }

    /// The OAuth scopes syncing these needs (names pushed back: companies' write).
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes = vec![
            "crm.objects.companies.read".to_owned(),
            "crm.objects.companies.write".to_owned(),
        ];
        if self.0.contains(&Object::Contact) {
            scopes.push("crm.objects.contacts.read".to_owned());
        }
        scopes
    }

    fn first(&self) -> Object {
        self.0.first().copied().unwrap_or(Object::Company)
    }

    fn after(&self, object: Object) -> Option<Object> {
        let at = self.0.iter().position(|o| *o == object)?;
        self.0.get(at + 1).copied()
    }
}

/// Where sync is, saved between pages (JSON in the run and the integration).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cursor {
    /// `list` (backfill), `search` (changes) or `archived` (deletions).
    phase: String,
    /// The object type being read (plural).
    object: String,
    /// Paging: the `after` of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Per object type: changes at or after this time (ms) are still to read.
    #[serde(default)]
    since: BTreeMap<String, i64>,
    /// Per object type: deletions at or after this time (ms) are still to read.
    #[serde(default)]
    deleted_since: BTreeMap<String, i64>,
    /// The current search window: its lower bound, which moves on past the 10 000 cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_from: Option<i64>,
    /// When the current window or recycle-bin scan started (local clock, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<i64>,
    /// The latest modification time read in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_seen: Option<i64>,
    /// A millisecond with more changes than search can page through, read by id: the
    /// time and the last id read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned: Option<(i64, String)>,
}

impl Cursor {
    /// Searching the first object type from the watermarks, no window open.
    fn changes(
        objects: &Objects,
        since: BTreeMap<String, i64>,
        deleted: BTreeMap<String, i64>,
    ) -> Self {
        Self {
            phase: "search".into(),
            object: objects.first().plural().into(),
            since,
            deleted_since: deleted,
            ..Self::default()
        }
    }

    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// How calls authenticate.
pub enum Auth {
    /// A private-app token (or none configured).
    Token(Option<String>),
    /// OAuth access tokens, renewed as needed.
    OAuth(Arc<oauth::Session>),
}

impl Auth {
    async fn token(&self) -> Result<String, RemoteError> {
        match self {
            Self::Token(token) => token
                .clone()
                .ok_or_else(|| RemoteError::Unauthorized("no access token is configured".into())),
            Self::OAuth(session) => session.token().await,
        }
    }
}

/// How fast one HubSpot account is called.
#[derive(Clone, Debug)]
pub struct Paced {
    /// The account (the integration's id).
    pub key: String,
    /// Calls other than search.
    pub calls: Rate,
    /// Searches.
    pub searches: Rate,
}

/// A HubSpot account.
pub struct HubSpot {
    base: String,
    auth: Auth,
    client_secret: Option<String>,
    objects: Objects,
    remote: Remote,
    paced: Paced,
}

impl HubSpot {
    /// HubSpot at `base`, called with `auth`, its webhooks signed with `client_secret`,
    /// syncing `objects`.
    pub fn new(
        base: &str,
        auth: Auth,
        client_secret: Option<String>,
        objects: Objects,
        remote: Remote,
        paced: Paced,
    ) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            auth,
            client_secret,
            objects,
            remote,
            paced,
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        let token = self.auth.token().await?;
        match self.send(&token, method.clone(), path, query, body).await {
            // An OAuth token HubSpot says expired (clocks differ, or it was revoked):
            // renewed once, and the call made again.
            Err(RemoteError::Unauthorized(message)) if message.starts_with(EXPIRED) => {
                let Auth::OAuth(session) = &self.auth else {
                    return Err(RemoteError::Unauthorized(message));
                };
                let renewed = session.renew(&token).await?;
                self.send(&renewed, method, path, query, body).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        let headers = [("authorization", format!("Bearer {token}"))];
        // Search has a limit of its own.
        let (bucket, rate) = if path.ends_with("/search") {
            ("hubspot-search", self.paced.searches)
        } else {
            ("hubspot", self.paced.calls)
        };
        let call = Call {
            method,
            url: format!("{}{path}", self.base),
            query,
            form: None,
            json: body,
            headers: &headers,
            should_retry_header: None,
            classify: Some(classify),
            limit: Some(Limit {
                bucket,
                key: &self.paced.key,
                rate,
            }),
        };
        self.remote.send(&call).await
    }

    /// A page of `object`s (`archived` ones: the recycle bin) after `after`.
    async fn list(
        &self,
        object: Object,
        after: Option<&str>,
        archived: bool,
    ) -> Result<(Vec<Value>, Option<String>), RemoteError> {
        let mut query = vec![
            pair("limit", &LIST_LIMIT.to_string()),
            pair("properties", &object.properties().join(",")),
        ];
        if archived {
            query.push(pair("archived", "true"));
        }
        if let Some(after) = after {
            query.push(pair("after", after));
        }
        let page = self
            .request(
                Method::GET,
                &format!("/crm/v3/objects/{}", object.plural()),
                &query,
                None,
            )
            .await?;
        Ok((results(&page)?, next_after(&page)))
    }

    /// A search page of `object`s modified at or after `from` (or, `pinned`, at exactly
    /// that time with an id above the one given), oldest first.
    async fn search(
        &self,
        object: Object,
        from: i64,
        pinned: Option<&(i64, String)>,
    ) -> Result<Vec<Value>, RemoteError> {
        let (filters, sort) = match pinned {
            Some((at, last_id)) => (
                json!([
                    { "propertyName": object.modified(), "operator": "EQ", "value": at.to_string() },
                    { "propertyName": "hs_object_id", "operator": "GT", "value": last_id },
                ]),
                "hs_object_id",
            ),
            None => (
                json!([{ "propertyName": object.modified(), "operator": "GTE", "value": from.to_string() }]),
                object.modified(),
            ),
        };
        let body = json!({
            "filterGroups": [{ "filters": filters }],
            "sorts": [{ "propertyName": sort, "direction": "ASCENDING" }],
            "properties": object.properties(),
            "limit": SEARCH_LIMIT,
        });
        let page = self
            .request(
                Method::POST,
                &format!("/crm/v3/objects/{}/search", object.plural()),
                &[],
                Some(&body),
            )
            .await?;
        results(&page)
    }

    /// Adds to each contact the ids of its companies (`companyIds`), with one batch read
    /// of associations (v4) for the page.
    async fn with_companies(&self, records: &mut [Record]) -> Result<(), RemoteError> {
        let inputs: Vec<Value> = records
            .iter()
            .filter(|record| record.external_type == CONTACT && !record.deleted)
            .map(|record| json!({ "id": record.external_id }))
            .collect();
        if inputs.is_empty() {
            return Ok(());
        }
        let answer = self
            .request(
                Method::POST,
                "/crm/v4/associations/contacts/companies/batch/read",
                &[],
                Some(&json!({ "inputs": inputs })),
            )
            .await?;
        // Contacts without companies come back as errors of a 207: simply none.
        let mut companies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for result in answer
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(from) = result.pointer("/from/id").and_then(id_text) else {
                continue;
            };
            let to = result
                .get("to")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|to| to.get("toObjectId").and_then(id_text))
                .map(Value::String);
            companies.entry(from).or_default().extend(to);
        }
        for record in records.iter_mut().filter(|r| r.external_type == CONTACT) {
            let ids = companies.remove(&record.external_id).unwrap_or_default();
            if let Some(map) = record.body.as_object_mut() {
                map.insert("companyIds".into(), Value::Array(ids));
            }
        }
        Ok(())
    }

    fn record(object: Object, body: Value, deleted: bool) -> Result<Record, RemoteError> {
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                RemoteError::Malformed(format!("a {} without an id", object.external_type()))
            })?
            .to_owned();
        Ok(Record {
            external_type: object.external_type().to_owned(),
            external_id: id,
            deleted,
            body,
        })
    }

    async fn pull_list(&self, object: Object, mut cursor: Cursor) -> Result<Page, RemoteError> {
        let (rows, next) = self.list(object, cursor.after.as_deref(), false).await?;
        let mut records = rows
            .into_iter()
            .map(|row| Self::record(object, row, false))
            .collect::<Result<Vec<_>, _>>()?;
        self.with_companies(&mut records).await?;
        match next {
            Some(after) => cursor.after = Some(after),
            None => {
                cursor = match self.objects.after(object) {
                    Some(following) => Cursor {
                        phase: "list".into(),
                        object: following.plural().into(),
                        after: None,
                        ..cursor
                    },
                    // The backfill is done: on to the changes since it started.
                    None => Cursor::changes(&self.objects, cursor.since, cursor.deleted_since),
                };
            }
        }
        Ok(Page {
            records,
            next: cursor.to_value(),
            more: true,
        })
    }

    async fn pull_search(&self, object: Object, mut cursor: Cursor) -> Result<Page, RemoteError> {
        let watermark = cursor.since.get(object.plural()).copied().unwrap_or(0);
        let from = *cursor.window_from.get_or_insert(watermark);
        cursor.started_at.get_or_insert_with(now_ms);
        cursor.after = None;
        let rows = self.search(object, from, cursor.pinned.as_ref()).await?;
        let full = rows.len() as u64 >= SEARCH_LIMIT;
        let mut first: Option<i64> = None;
        let mut last: Option<(i64, String)> = None;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let record = Self::record(object, row, false)?;
            let modified = modified_ms(object, &record.body)?;
            cursor.max_seen = Some(cursor.max_seen.map_or(modified, |m| m.max(modified)));
            first.get_or_insert(modified);
            last = Some((modified, record.external_id.clone()));
            records.push(record);
        }
        self.with_companies(&mut records).await?;
        if let Some((at, _)) = cursor.pinned.clone() {
            // Within one millisecond, by id: a short page ends it.
            match last {
                Some((_, id)) if full => cursor.pinned = Some((at, id)),
                _ => {
                    cursor.pinned = None;
                    cursor.window_from = Some(at + 1);
                }
            }
            return Ok(Page {
                records,
                next: cursor.to_value(),
                more: true,
            });
        }
        match last {
            // A full page: the next is a new query from the last time read (its records
            // are read again, unchanged), so no query pages far enough to meet the cap,
            // and a record changed meanwhile moves behind and is read then. A page that
            // is all one millisecond goes on through that millisecond by id.
            Some((at, _)) if full => {
                if first == Some(at) {
                    cursor.pinned = Some((at, "0".into()));
                } else {
                    cursor.window_from = Some(at);
                }
                Ok(Page {
                    records,
                    next: cursor.to_value(),
                    more: true,
                })
            }
            _ => Ok(self.window_done(object, cursor, records)),
        }
    }

    /// A search window read to its end: the watermark moves on (never past the window's
    /// start minus the index lag), then the next type, or the recycle bins.
    fn window_done(&self, object: Object, mut cursor: Cursor, records: Vec<Record>) -> Page {
        let started = cursor.started_at.unwrap_or_else(now_ms);
        let old = cursor.since.get(object.plural()).copied().unwrap_or(0);
        let reached = cursor
            .max_seen
            .unwrap_or(old)
            .min(started - LAG_MS)
            .max(old);
        cursor.since.insert(object.plural().into(), reached);
        let next = match self.objects.after(object) {
            Some(following) => Cursor {
                phase: "search".into(),
                object: following.plural().into(),
                ..Cursor::changes(&self.objects, cursor.since, cursor.deleted_since)
            },
            None => Cursor {
                phase: "archived".into(),
                ..Cursor::changes(&self.objects, cursor.since, cursor.deleted_since)
            },
        };
        Page {
            records,
            next: next.to_value(),
            more: true,
        }
    }

    async fn pull_archived(&self, object: Object, mut cursor: Cursor) -> Result<Page, RemoteError> {
        let since = cursor
            .deleted_since
            .get(object.plural())
            .copied()
            .unwrap_or(0);
        cursor.started_at.get_or_insert_with(now_ms);
        let (rows, next) = self.list(object, cursor.after.as_deref(), true).await?;
        let mut records = Vec::new();
        for row in rows {
            let archived_at = row
                .get("archivedAt")
                .and_then(Value::as_str)
                .and_then(iso_ms)
                .unwrap_or(i64::MAX);
            if archived_at >= since {
                records.push(Self::record(object, row, true)?);
            }
        }
        if let Some(after) = next {
            cursor.after = Some(after);
            return Ok(Page {
                records,
                next: cursor.to_value(),
                more: true,
            });
        }
        let started = cursor.started_at.unwrap_or_else(now_ms);
        cursor
            .deleted_since
            .insert(object.plural().into(), since.max(started - LAG_MS));
        let (next, more) = match self.objects.after(object) {
            Some(following) => (
                Cursor {
                    phase: "archived".into(),
                    object: following.plural().into(),
                    ..Cursor::changes(&self.objects, cursor.since, cursor.deleted_since)
                },
                true,
            ),
            // The run is done; the next one starts here.
            None => (
                Cursor::changes(&self.objects, cursor.since, cursor.deleted_since),
                false,
            ),
        };
        Ok(Page {
            records,
            next: next.to_value(),
            more,
        })
    }

    /// Watermarks for every object type at `at`.
    fn marks(&self, at: i64) -> BTreeMap<String, i64> {
        self.objects
            .0
            .iter()
            .map(|object| (object.plural().to_owned(), at))
            .collect()
    }
}

#[async_trait]
impl Connector for HubSpot {
    async fn test_connection(&self) -> Result<ConnectionInfo, RemoteError> {
        let started = Instant::now();
        for object in &self.objects.0 {
            self.request(
                Method::GET,
                &format!("/crm/v3/objects/{}", object.plural()),
                &[pair("limit", "1")],
                None,
            )
            .await?;
        }
        Ok(ConnectionInfo {
            account: "HubSpot CRM".into(),
            latency: started.elapsed(),
        })
    }

    async fn backfill_cursor(&self) -> Result<Value, RemoteError> {
        let marks = self.marks(now_ms() - LAG_MS);
        Ok(Cursor {
            phase: "list".into(),
            object: self.objects.first().plural().into(),
            since: marks.clone(),
            deleted_since: marks,
            ..Cursor::default()
        }
        .to_value())
    }

    async fn incremental_cursor(&self) -> Result<Value, RemoteError> {
        let marks = self.marks(now_ms() - LAG_MS);
        Ok(Cursor::changes(&self.objects, marks.clone(), marks).to_value())
    }

    async fn pull(&self, cursor: &Value) -> Result<Page, RemoteError> {
        let mut cursor: Cursor =
            serde_json::from_value(cursor.clone()).map_err(|err| RemoteError::Rejected {
                status: 400,
                message: format!("not a HubSpot cursor: {err}"),
            })?;
        // A type the integration no longer syncs (contacts turned off) is skipped; one it
        // newly syncs starts from the other types' watermark.
        let Some(object) = Object::parse(&cursor.object).filter(|o| self.objects.0.contains(o))
        else {
            return Ok(Page {
                records: Vec::new(),
                next: Cursor::changes(&self.objects, cursor.since, cursor.deleted_since).to_value(),
                more: true,
            });
        };
        // A type synced only since the last run (contacts turned on): its records so far
        // are listed first, then it goes on with the others.
        if cursor.phase != "list"
            && let Some(new) = self
                .objects
                .0
                .iter()
                .copied()
                .find(|o| !cursor.since.contains_key(o.plural()))
        {
            let at = now_ms() - LAG_MS;
            cursor.since.insert(new.plural().into(), at);
            cursor.deleted_since.insert(new.plural().into(), at);
            let listing = Cursor {
                phase: "list".into(),
                object: new.plural().into(),
                ..Cursor::changes(&self.objects, cursor.since, cursor.deleted_since)
            };
            return self.pull_list(new, listing).await;
        }
        for object in &self.objects.0 {
            if let Some(since) = cursor.since.get(object.plural()).copied() {
                cursor
                    .deleted_since
                    .entry(object.plural().into())
                    .or_insert(since);
            }
        }
        match cursor.phase.as_str() {
            "list" => self.pull_list(object, cursor).await,
            "archived" => self.pull_archived(object, cursor).await,
            _ => self.pull_search(object, cursor).await,
        }
    }

    async fn push(&self, change: &Push) -> Result<(), RemoteError> {
        let object = match change.external_type.as_str() {
            COMPANY => Object::Company,
            CONTACT => Object::Contact,
            other => {
                return Err(RemoteError::Rejected {
                    status: 400,
                    message: format!("cannot push a {other}"),
                });
            }
        };
        let properties: serde_json::Map<String, Value> = change
            .fields
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        self.request(
            Method::PATCH,
            &format!("/crm/v3/objects/{}/{}", object.plural(), change.external_id),
            &[],
            Some(&json!({ "properties": properties })),
        )
        .await
        .map(|_| ())
    }

    fn verify_webhook(&self, request: &Inbound<'_>, now_ms: i64) -> Result<(), WebhookRejection> {
        let secret = self
            .client_secret
            .as_deref()
            .ok_or(WebhookRejection::NoSecret)?;
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|value| value.to_str().map_err(|_| WebhookRejection::Malformed))
                .transpose()
        };
        let signature = header("x-hubspot-signature-v3")?.ok_or(WebhookRejection::NotSigned)?;
        let timestamp =
            header("x-hubspot-request-timestamp")?.ok_or(WebhookRejection::Malformed)?;
        verify_v3(
            secret,
            request.method,
            request.url,
            request.body,
            timestamp,
            signature,
            now_ms,
        )
    }
}

/// Checks a v3 signature: `signature` over `method`, `url`, `body` and `timestamp` (ms)
/// with `secret`, at `now_ms`.
pub fn verify_v3(
    secret: &str,
    method: &str,
    url: &str,
    body: &[u8],
    timestamp: &str,
    signature: &str,
    now_ms: i64,
) -> Result<(), WebhookRejection> {
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookRejection::Malformed)?;
    if (now_ms - at).abs() > TOLERANCE_MS {
        return Err(WebhookRejection::TooOld);
    }
    let expected = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| WebhookRejection::Malformed)?;
    let mut signed = Vec::with_capacity(method.len() + url.len() + body.len() + 13);
    signed.extend_from_slice(method.as_bytes());
    signed.extend_from_slice(decode_uri(url).as_bytes());
    signed.extend_from_slice(body);
    signed.extend_from_slice(timestamp.trim().as_bytes());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, &signed, &expected).map_err(|_| WebhookRejection::Mismatch)
}

/// The URL as HubSpot signs it: these escapes decoded, all others kept.
fn decode_uri(url: &str) -> String {
    const DECODED: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or("");
        match DECODED
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(escape))
        {
            Some((_, plain)) => {
                out.push_str(plain);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The start of the error of a 401 `EXPIRED_AUTHENTICATION`.
const EXPIRED: &str = "EXPIRED_AUTHENTICATION";

/// HubSpot's reading of a failed answer (see the module documentation).
fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Option<(RemoteError, Option<Duration>)> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| parsed.get(name).and_then(Value::as_str).unwrap_or_default();
    match status.as_u16() {
        401 if field("category") == EXPIRED => Some((
            RemoteError::Unauthorized(format!("{EXPIRED}: {}", field("message"))),
            None,
        )),
        429 => {
            let policy = field("policyName").to_ascii_uppercase();
            let message = field("message").to_ascii_lowercase();
            let wait = if policy == "DAILY" || message.contains("daily") {
                // Resets at midnight in the account's time zone, which we do not know.
                Duration::from_secs(3600)
            } else if policy.starts_with("TEN_SECONDLY") || message.contains("ten_secondly") {
                headers
                    .get("x-hubspot-ratelimit-interval-milliseconds")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok())
                    .map_or(Duration::from_secs(10), Duration::from_millis)
            } else {
                // Search's per-second limit (its answers carry no rate-limit headers).
                Duration::from_secs(1)
            };
            Some((
                RemoteError::RateLimited {
                    retry_after: Some(wait),
                },
                Some(wait),
            ))
        }
        423 => Some((
            RemoteError::Unavailable("HubSpot locked the records for a large sync".into()),
            Some(Duration::from_secs(2)),
        )),
        477 => {
            let after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(3600), Duration::from_secs);
            Some((
                RemoteError::RateLimited {
                    retry_after: Some(after),
                },
                Some(after),
            ))
        }
        _ => None,
    }
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn iso_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.timestamp_millis())
}

/// A record's last-modified time: its property, else `updatedAt`.
fn modified_ms(object: Object, body: &Value) -> Result<i64, RemoteError> {
    body.pointer(&format!("/properties/{}", object.modified()))
        .and_then(Value::as_str)
        .or_else(|| body.get("updatedAt").and_then(Value::as_str))
        .and_then(iso_ms)
        .ok_or_else(|| {
            RemoteError::Malformed(format!(
                "a {} without a modification time",
                object.external_type()
            ))
        })
}

fn results(page: &Value) -> Result<Vec<Value>, RemoteError> {
    page.get("results")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| RemoteError::Malformed("a page without `results`".into()))
}

/// An id HubSpot sent as a string or (in associations) a number.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

fn next_after(page: &Value) -> Option<String> {
    page.pointer("/paging/next/after")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";

    #[test]
    fn v3_signatures_verify_against_the_documented_vectors() {
        let at = 1_700_000_000_000;
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                "https://www.example.com/webhook_uri",
                br#"{"example_field":"example_value"}"#,
                "1700000000000",
                "rQEKkaNUiu+1qGF//O/pw4BCzstSqO1PyUnGICmf+7o=",
                at,
            ),
            Ok(())
        );
        let body = br#"[{"eventId":100,"subscriptionId":25,"portalId":62515,"appId":54321,"occurredAt":1700000000000,"subscriptionType":"company.deletion","attemptNumber":0,"objectId":5790939450,"changeSource":"CRM","changeFlag":"DELETED"}]"#;
        let good = "1lCM5LaY3Ovhda2VhDgoFcUnxPeppSFmSkPg0r8Lf5Q=";
        let url = "https://fake.example/hubspot/webhook";
        assert_eq!(
            verify_v3(SECRET, "POST", url, body, "1700000000000", good, at + 1000),
            Ok(())
        );
        // Escapes HubSpot decodes before signing are decoded here too.
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                "https%3A%2F%2Ffake.example%2Fhubspot%2Fwebhook",
                body,
                "1700000000000",
                good,
                at
            ),
            Ok(())
        );
        assert_eq!(
            verify_v3(SECRET, "POST", url, b"[]", "1700000000000", good, at),
            Err(WebhookRejection::Mismatch)
        );
        assert_eq!(
            verify_v3("other", "POST", url, body, "1700000000000", good, at),
            Err(WebhookRejection::Mismatch)
        );
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                url,
                body,
                "1700000000000",
                good,
                at + 300_001
            ),
            Err(WebhookRejection::TooOld)
        );
        assert_eq!(
            verify_v3(SECRET, "POST", url, body, "soon", good, at),
            Err(WebhookRejection::Malformed)
        );
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                url,
                body,
                "1700000000000",
                "not base64!",
                at
            ),
            Err(WebhookRejection::Malformed)
        );
    }

    #[test]
    fn rate_limits_say_how_long_to_wait() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            reqwest::header::HeaderValue::from_static("7000"),
        );
        let daily = br#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"}"#;
        let ten = br#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}"#;
        let search = br#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT"}"#;
        let wait = |body: &[u8]| {
            classify(StatusCode::TOO_MANY_REQUESTS, &headers, body).and_then(|(_, after)| after)
        };
        assert_eq!(wait(daily), Some(Duration::from_secs(3600)));
        assert_eq!(wait(ten), Some(Duration::from_secs(7)));
        assert_eq!(wait(search), Some(Duration::from_secs(1)));
        assert!(matches!(
            classify(StatusCode::from_u16(423).expect("status"), &headers, b""),
            Some((RemoteError::Unavailable(_), Some(_)))
        ));
        assert_eq!(classify(StatusCode::NOT_FOUND, &headers, b"{}"), None);
    }

    #[test]
    fn objects_follow_the_settings() {
        assert_eq!(Objects::from_settings(None).0, vec![Object::Company]);
        let both = json!({ "syncContacts": true });
        assert_eq!(
            Objects::from_settings(Some(&both)).0,
            vec![Object::Company, Object::Contact]
        );
    }
}
