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
pub mod tenant;

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

    /// Everything this domain holds for a whole tenant (its off-boarding archive): every
    /// row of its tables, secrets left out, sealed text opened where the domain can, and
    /// the tenant's stored files of this domain.
    async fn export_tenant(&self, _tenant: Uuid) -> ApiResult<DomainExport> {
        Ok(DomainExport::default())
    }

    /// The active legal holds this domain keeps anywhere in `tenant`: while there is one,
    /// the tenant is not deleted.
    async fn tenant_holds(&self, _tenant: Uuid) -> ApiResult<Vec<Hold>> {
        Ok(Vec::new())
    }

    /// Deletes every row this domain keeps for `tenant`, in one transaction audited in the
    /// tenant's log as `<domain>.tenant_erase`, and says what went. Idempotent.
    async fn erase_tenant(&self, _tenant: Uuid, _by: &TenantErasure) -> ApiResult<DomainErasure> {
        Ok(DomainErasure::default())
    }
}

/// Who deletes a tenant's data, for the audit events of each domain's part.
#[derive(Clone, Debug)]
pub struct TenantErasure {
    /// The operator carrying out the off-boarding.
    pub actor: Actor,
    /// The request facts of those audit events.
    pub meta: RequestMeta,
    /// The off-boarding.
    pub offboarding_id: Uuid,
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

/// JSON members whose value is a person's name: where a string equal to one of the
/// person's names is theirs (anywhere else, an equal string — "Support", a report's name —
/// is somebody else's words and stays).
pub const NAME_MEMBERS: [&str; 10] = [
    "name",
    "displayName",
    "fullName",
    "firstName",
    "lastName",
    "contactName",
    "userName",
    "ownerName",
    "authorName",
    "recipientName",
];

/// `value` with the person's identifiers scrubbed: every occurrence of one of their
/// addresses (anything with an `@`), in any string, as a whole address — not inside a
/// longer one — is replaced with [`ERASED`], ignoring case; a string under a
/// [`NAME_MEMBERS`] member that equals one of their names (ignoring case and surrounding
/// space) becomes [`ERASED`]. Whether anything changed.
pub fn scrub(value: &mut Value, identifiers: &[String]) -> bool {
    let addresses: Vec<Vec<char>> = identifiers
        .iter()
        .map(|id| id.trim())
        .filter(|id| id.contains('@'))
        .map(folded)
        .filter(|id| !id.is_empty())
        .collect();
    let names: Vec<String> = identifiers
        .iter()
        .map(|id| id.trim())
        .filter(|id| !id.is_empty() && !id.contains('@'))
        .map(str::to_lowercase)
        .collect();
    scrub_in(value, None, &addresses, &names)
}

/// [`scrub`] of `value`, found under member `key`.
fn scrub_in(
    value: &mut Value,
    key: Option<&str>,
    addresses: &[Vec<char>],
    names: &[String],
) -> bool {
    match value {
        Value::String(text) => {
            let named = key.is_some_and(|k| NAME_MEMBERS.iter().any(|m| m.eq_ignore_ascii_case(k)));
            if named && names.iter().any(|n| *n == text.trim().to_lowercase()) {
                *text = ERASED.to_owned();
                return true;
            }
            match replace_addresses(text, addresses) {
                Some(replaced) => {
                    *text = replaced;
                    true
                }
                None => false,
            }
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            scrub_in(item, key, addresses, names) | changed
        }),
        Value::Object(members) => members.iter_mut().fold(false, |changed, (k, item)| {
            scrub_in(item, Some(k), addresses, names) | changed
        }),
        _ => false,
    }
}

/// `text` lower-cased character by character (how matching compares).
fn folded(text: &str) -> Vec<char> {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// A character that can be part of an address next to a match (so the match is inside a
/// longer address, not the address itself).
fn address_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@')
}

/// `text` with every whole occurrence of `addresses` (folded) replaced by [`ERASED`], or
/// `None` when there is none. Matching runs over the folded characters, each tied to the
/// original character it came from, so replacements always cut at character boundaries.
fn replace_addresses(text: &str, addresses: &[Vec<char>]) -> Option<String> {
    if addresses.is_empty() || !text.contains('@') {
        return None;
    }
    // Folded characters, each with the byte range of the original character.
    let mut chars: Vec<(char, usize, usize)> = Vec::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        for lower in c.to_lowercase() {
            chars.push((lower, at, at + c.len_utf8()));
        }
    }
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    'scan: while i < chars.len() {
        for needle in addresses {
            let end = i + needle.len();
            if end > chars.len() || !chars[i..end].iter().map(|c| c.0).eq(needle.iter().copied()) {
                continue;
            }
            // Whole original characters only, and a whole address: no address character
            // right before, none right after (a dot counts only when the address goes on).
            let starts_clean = i == 0 || chars[i - 1].1 != chars[i].1;
            let ends_clean = end == chars.len() || chars[end].1 != chars[end - 1].1;
            let before = (i > 0).then(|| chars[i - 1].0);
            let after = chars.get(end).map(|c| c.0);
            let after_next = chars.get(end + 1).map(|c| c.0);
            let continues = match after {
                Some('.') => after_next.is_some_and(char::is_alphanumeric),
                Some(c) => address_char(c),
                None => false,
            };
            if starts_clean && ends_clean && !before.is_some_and(address_char) && !continues {
                cuts.push((chars[i].1, chars[end - 1].2));
                i = end;
                continue 'scan;
            }
        }
        i += 1;
    }
    if cuts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (from, to) in cuts {
        out.push_str(&text[rest..from]);
        out.push_str(ERASED);
        rest = to;
    }
    out.push_str(&text[rest..]);
    Some(out)
}

/// `column`, as lower-case text, contains `needle` — the coarse database filter before
/// [`scrub`] decides. SQLite lower-cases ASCII only and PostgreSQL every letter, so a
/// needle with capitals beyond ASCII is looked for both ways.
pub fn contains(column: Expr, needle: &str) -> Condition {
    let pattern = |lowered: String| {
        let escaped = lowered
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        Expr::expr(Func::lower(Func::cast_as(column.clone(), "TEXT")))
            .like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
    };
    let full = needle.to_lowercase();
    let ascii = needle.to_ascii_lowercase();
    let mut any = Condition::any().add(pattern(full.clone()));
    if ascii != full {
        any = any.add(pattern(ascii));
    }
    any
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

/// Free `text` scrubbed of `identifiers` (see [`scrub`]), or `None` when it mentions
/// none of them.
pub fn scrubbed(text: &str, identifiers: &[String]) -> Option<String> {
    let mut value = Value::String(text.to_owned());
    if !scrub(&mut value, identifiers) {
        return None;
    }
    value.as_str().map(str::to_owned)
}

/// Rows scrubbed per batch by [`rewrite`].
const REWRITE_BATCH: u64 = 500;

/// Walks the rows of `select` in batches by their id (`id`, read from a row by `id_of`)
/// and runs the update `change` makes of each row, restricted to that row; how many rows
/// it changed. How erasures scrub the copies of a person's data kept in other rows.
pub async fn rewrite<E, I, F>(
    db: &impl sea_orm::ConnectionTrait,
    select: sea_orm::Select<E>,
    id: E::Column,
    id_of: I,
    mut change: F,
) -> ApiResult<u64>
where
    E: sea_orm::EntityTrait,
    I: Fn(&E::Model) -> Uuid,
    F: FnMut(&E::Model) -> Option<sea_orm::UpdateMany<E>>,
{
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let mut changed = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = select.clone();
        if let Some(last) = after {
            query = query.filter(id.gt(last));
        }
        let rows = query
            .order_by_asc(id)
            .limit(REWRITE_BATCH)
            .all(db)
            .await
            .map_err(crate::ApiError::from_db)?;
        let Some(last) = rows.last() else { break };
        after = Some(id_of(last));
        let full = rows.len() as u64 == REWRITE_BATCH;
        for row in &rows {
            if let Some(update) = change(row) {
                update
                    .filter(id.eq(id_of(row)))
                    .exec(db)
                    .await
                    .map_err(crate::ApiError::from_db)?;
                changed += 1;
            }
        }
        if !full {
            break;
        }
    }
    Ok(changed)
}

/// Whether free `text` mentions any of the addresses among `identifiers` (as [`scrub`]
/// would find them; names count only under a name member, never in free text).
pub fn mentions(text: &str, identifiers: &[String]) -> bool {
    let mut probe = Value::String(text.to_owned());
    scrub(&mut probe, identifiers)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ids() -> Vec<String> {
        vec!["Al@X.example".into(), "Bob Builder".into()]
    }

    #[test]
    fn addresses_are_replaced_whole_and_only_whole() {
        let mut v = json!({
            "note": "mail AL@x.example, not hal@x.example nor al@x.example.org",
            "list": ["al@x.example"],
            "end": "to al@x.example."
        });
        assert!(scrub(&mut v, &ids()));
        assert_eq!(
            v,
            json!({
                "note": format!("mail {ERASED}, not hal@x.example nor al@x.example.org"),
                "list": [ERASED],
                "end": format!("to {ERASED}.")
            })
        );
    }

    #[test]
    fn names_are_replaced_only_under_name_members() {
        let mut v =
            json!({ "displayName": " bob builder ", "title": "Bob Builder", "x": "Bob Builder's" });
        assert!(scrub(&mut v, &ids()));
        assert_eq!(
            v,
            json!({ "displayName": ERASED, "title": "Bob Builder", "x": "Bob Builder's" })
        );
        assert!(!mentions("Bob Builder wrote", &ids()));
        assert!(mentions("rejected: al@x.example", &ids()));
    }

    #[test]
    fn case_folding_that_changes_lengths_never_cuts_a_character() {
        // 'İ' lower-cases to two characters; 'é' and 'Ω' are multi-byte.
        let ids = vec!["bob@acme.example".to_owned(), "İx@y.example".to_owned()];
        let mut v = json!("İbob@acme.exampleéΩ and İX@Y.EXAMPLE, then (bob@acme.example)");
        scrub(&mut v, &ids);
        assert_eq!(
            v,
            json!(format!("İbob@acme.exampleéΩ and {ERASED}, then ({ERASED})"))
        );
    }
}
