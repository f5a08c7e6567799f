//! The privacy contract every subgraph implements for data-subject requests (GDPR
//! Articles 15, 17 and 20): export everything a domain holds about one person, and erase or
//! anonymize it. Only the privacy jobs of the data-subject-request workflow call it — in a
//! worker, with the database — never a client: no GraphQL field reaches it.
//!
//! Each domain answers for its own tables, in its own crate (`<subgraph>::privacy`), and
//! returns plain JSON (ids, timestamps, the person's own words opened from their seals) and
//! the stored files that are theirs (attachments, report files). The workflow puts one JSON
//! document per domain and the files into one archive.
//!
//! Erasure (Art. 17) runs in steps every domain takes part in: the identifiers of the
//! person are gathered, then their ties (accounts, threads) and the legal holds covering
//! them or their ties — any hold blocks the whole erasure — then each domain erases or
//! anonymizes its part and reports it ([`DomainErasure`]); [`platform`] scrubs the copies
//! that travelled (event payloads, job arguments, the mail outbox) and shreds the
//! person's audit key.

use sea_orm::Condition;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::{Actor, RequestMeta};

pub mod platform;

/// The person a request is about: a user of a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSubject {
    /// Their tenant.
    pub tenant_id: Uuid,
    /// Their user id.
    pub user_id: Uuid,
}

/// A stored file that belongs in a subject's archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectFile {
    /// The `files` row.
    pub file_id: Uuid,
    /// Where it goes in the archive, under `files/<domain>/` (unique within the domain).
    pub path: String,
    /// Why it is theirs (`attachment of message …`, `report run …`).
    pub about: String,
}

/// What one domain holds about a subject.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainExport {
    /// Everything, as one JSON object (collections by name, each a list of records).
    pub data: Value,
    /// Their files.
    pub files: Vec<SubjectFile>,
}

/// One domain's side of the contract.
#[async_trait::async_trait]
pub trait PrivacyDomain: Send + Sync {
    /// The domain's name (the subgraph's: `identity`, `accounts`, …).
    fn name(&self) -> &'static str;

    /// Everything this domain holds about `subject`.
    async fn export(&self, subject: DataSubject) -> ApiResult<DomainExport>;

    /// The strings that identify `subject` in free-form copies (see [`Erasure`]); only
    /// the domain that keeps the person's profile has any.
    async fn identifiers(&self, _subject: DataSubject) -> ApiResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// What `subject` is tied to in this domain that a legal hold may cover.
    async fn ties(&self, _subject: DataSubject) -> ApiResult<Vec<Tie>> {
        Ok(Vec::new())
    }

    /// The active legal holds this domain keeps that cover `subject` or any of `ties`
    /// (every domain's): while there is one, nothing is erased.
    async fn holds(&self, _subject: DataSubject, _ties: &[Tie]) -> ApiResult<Vec<Hold>> {
        Ok(Vec::new())
    }

    /// Erases or anonymizes everything this domain holds about `subject`, and says what
    /// it did, collection by collection. Idempotent: a retry after a partial run finishes
    /// the work and reports what it found left. Audited as `erasure.actor`.
    async fn erase(&self, subject: DataSubject, erasure: &Erasure) -> ApiResult<DomainErasure>;
}

/// Something a person is tied to that a legal hold may cover: an account they belong to,
/// a thread they take part in. Domains name their ties ([`PrivacyDomain::ties`]); every
/// domain then says which holds cover the person or any tie ([`PrivacyDomain::holds`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tie {
    /// What it is (`ACCOUNT`, `THREAD`).
    pub kind: &'static str,
    /// Its id.
    pub id: Uuid,
}

/// The kinds of [`Tie`].
pub mod tie {
    /// A customer account (accounts' `accounts`).
    pub const ACCOUNT: &str = "ACCOUNT";
    /// A message thread (messages' `threads`).
    pub const THREAD: &str = "THREAD";
}

/// A legal hold that forbids erasing a person now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The hold's id (admins and auditors look it up; its reason is theirs, not the
    /// requester's, to read).
    pub id: Uuid,
    /// What it covers (`USER`, `ACCOUNT`, `THREAD`).
    pub target_type: String,
    /// Its id.
    pub target_id: Uuid,
}

/// What happened to one collection of a person's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Disposition {
    /// Deleted (rows, stored objects, keys).
    Erased,
    /// Kept, with nothing left that identifies the person (their id unlinked or pointing to
    /// the anonymized "deleted user").
    Anonymized,
    /// Kept as it is, because a law requires it (`reason` names the legal basis).
    Kept,
}

/// One line of an erasure's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureItem {
    /// What (`sessions`, `ledgerEntries`, …).
    pub collection: String,
    /// What happened to it.
    pub disposition: Disposition,
    /// How many records.
    pub count: u64,
    /// Why: what erasing meant here, or the legal basis for keeping it.
    pub reason: String,
}

/// What one domain did about a person.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DomainErasure {
    /// Collection by collection; collections holding nothing of theirs are left out.
    pub items: Vec<ErasureItem>,
}

impl DomainErasure {
    /// Adds a line unless `count` is zero.
    pub fn add(
        &mut self,
        collection: &str,
        disposition: Disposition,
        count: u64,
        reason: &str,
    ) -> &mut Self {
        if count > 0 {
            self.items.push(ErasureItem {
                collection: collection.to_owned(),
                disposition,
                count,
                reason: reason.to_owned(),
            });
        }
        self
    }

    /// Adds an [`Disposition::Erased`] line.
    pub fn erased(&mut self, collection: &str, count: u64, reason: &str) -> &mut Self {
        self.add(collection, Disposition::Erased, count, reason)
    }

    /// Adds an [`Disposition::Anonymized`] line.
    pub fn anonymized(&mut self, collection: &str, count: u64, reason: &str) -> &mut Self {
        self.add(collection, Disposition::Anonymized, count, reason)
    }

    /// Adds a [`Disposition::Kept`] line.
    pub fn kept(&mut self, collection: &str, count: u64, legal_basis: &str) -> &mut Self {
        self.add(collection, Disposition::Kept, count, legal_basis)
    }

    /// The lines of `other` after these.
    pub fn extend(&mut self, other: DomainErasure) -> &mut Self {
        self.items.extend(other.items);
        self
    }
}

/// What an erasure works with.
#[derive(Clone, Debug)]
pub struct Erasure {
    /// The strings that identify the person in free-form copies (their addresses, past
    /// and present, and their name), gathered before any domain erases anything: domains
    /// scrub them from text and JSON they keep for others (webhook messages, event
    /// payloads). Never logged, never stored.
    pub identifiers: Vec<String>,
    /// Who carries it out, for the audit events of each domain's part (the person: the
    /// request acts for them).
    pub actor: Actor,
    /// The request facts of those audit events.
    pub meta: RequestMeta,
}

/// What replaces a scrubbed identifier.
pub const ERASED: &str = "[erased]";

/// `value` with every string that is, or contains, one of `identifiers` scrubbed: a
/// string equal to one (ignoring case and surrounding space) becomes [`ERASED`]; one
/// containing an address (anything with an `@`) has the address replaced. Names are
/// matched whole only (a short name inside other words is not the person). Whether
/// anything changed.
pub fn scrub(value: &mut Value, identifiers: &[String]) -> bool {
    match value {
        Value::String(text) => {
            let trimmed = text.trim();
            if identifiers
                .iter()
                .any(|id| !id.trim().is_empty() && id.trim().eq_ignore_ascii_case(trimmed))
            {
                *text = ERASED.to_owned();
                return true;
            }
            let mut changed = false;
            for id in identifiers.iter().filter(|id| id.contains('@')) {
                let lower = text.to_lowercase();
                let needle = id.trim().to_lowercase();
                if needle.is_empty() || !lower.contains(&needle) {
                    continue;
                }
                // Lower-casing can change byte lengths outside ASCII: rebuild from the
                // lower-cased text's match positions only when lengths agree.
                if lower.len() == text.len() {
                    let mut out = String::with_capacity(text.len());
                    let mut rest = 0;
                    for (at, _) in lower.match_indices(&needle) {
                        out.push_str(&text[rest..at]);
                        out.push_str(ERASED);
                        rest = at + needle.len();
                    }
                    out.push_str(&text[rest..]);
                    *text = out;
                } else {
                    *text = ERASED.to_owned();
                }
                changed = true;
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| scrub(item, identifiers) | changed),
        Value::Object(members) => members
            .values_mut()
            .fold(false, |changed, item| scrub(item, identifiers) | changed),
        _ => false,
    }
}

/// `column`, as lower-case text, contains `needle` — the coarse database filter before
/// [`scrub`] decides: (lower-cased; `%`, `_` and `\`
/// escaped).
pub fn contains(column: Expr, needle: &str) -> Expr {
    let escaped = needle
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Expr::expr(Func::lower(Func::cast_as(column, "TEXT")))
        .like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}

/// A condition matching `column` when it contains any of `needles` (blank ones left
/// out; with none, it matches nothing).
pub fn mentioning(column: &Expr, needles: &[String]) -> Condition {
    needles
        .iter()
        .map(|needle| needle.trim())
        .filter(|needle| !needle.is_empty())
        .fold(Condition::any(), |any, needle| {
            any.add(contains(column.clone(), needle))
        })
}

/// Whether `text` mentions any of `identifiers` (as [`scrub`] would find it).
pub fn mentions(text: &str, identifiers: &[String]) -> bool {
    let mut probe = Value::String(text.to_owned());
    scrub(&mut probe, identifiers)
}
