//! Search over encrypted message bodies through a blind index
//! ([`portal_kit::blind_index`]): each body is indexed as keyed hashes of its words and
//! their capped prefixes under the tenant's index key; a query looks up the hashes of its
//! words (every word must match), newest first, within the threads the reader may see and
//! the filters, and confirms each candidate against the decrypted body.
//!
//! Storage differs by backend: PostgreSQL keeps one row per message whose hashes are a
//! `bigint[]` under a GIN index (`message_search_index`: one write per post); SQLite,
//! without arrays or GIN, one row per message and hash (`message_search_tokens`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, JoinType, Order, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter};
use uuid::Uuid;

use portal_entities::messages::{message, message_search_token};
use portal_kit::blind_index;
use portal_kit::envelope::TenantKeys;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::{ApiError, ApiResult};

use super::{Store, messages_by_ids, sealing};
use crate::domain::ThreadStatus;

/// Rounds at most per page (candidates that do not confirm are false positives).
const ROUNDS: u32 = 6;
/// Candidates read in one round at most.
const BATCH_MAX: u64 = 1_000;

/// Candidates read in round `round` (from 0) for a page of `wanted` results: twice a page
/// first, four times more each further round. A small first round matters on PostgreSQL:
/// when the planner walks the newest messages checking arrays (the word is common, or the
/// reader's threads are few), the rows it reads grow with the limit, and most searches are
/// answered by the first round.
fn batch(round: u32, wanted: usize) -> u64 {
    let first = Ord::max(wanted as u64 * 2, 20);
    first
        .saturating_mul(4_u64.saturating_pow(round))
        .clamp(1, BATCH_MAX)
}

/// The token hashes that index `text` (a body or a subject) in the tenant (computed before
/// a transaction: the index key may have to be read).
pub async fn text_tokens(keys: &TenantKeys, tenant_id: Uuid, text: &str) -> ApiResult<Vec<i64>> {
    let key = keys.index_key(tenant_id).await?;
    let mut hashes: Vec<i64> = blind_index::document_tokens(text)
        .iter()
        .map(|token| blind_index::hash(&key, token))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    Ok(hashes)
}

/// One message's entry in the index.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The message.
    pub message_id: Uuid,
    /// Its thread (to filter on the reader's threads, an account, a status).
    pub thread_id: Uuid,
    /// When it was posted (to filter on dates).
    pub created_at: DateTime<Utc>,
    /// Its token hashes ([`text_tokens`]).
    pub tokens: Vec<i64>,
}

/// `tokens` as a PostgreSQL array literal (integers only, so nothing to escape), bound as
/// a parameter and cast.
fn pg_array(tokens: &[i64]) -> String {
    let mut text = String::with_capacity(tokens.len() * 21 + 2);
    text.push('{');
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&token.to_string());
    }
    text.push('}');
    text
}

/// (Re)indexes one message with `tokens`.
pub async fn index(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    (message_id, thread_id, created_at): (Uuid, Uuid, DateTime<Utc>),
    tokens: &[i64],
) -> ApiResult<()> {
    unindex(txn, tenant_id, &[message_id]).await?;
    let entry = Entry {
        message_id,
        thread_id,
        created_at,
        tokens: tokens.to_vec(),
    };
    insert(txn, tenant_id, std::slice::from_ref(&entry)).await
}

/// Adds messages not indexed yet, in one statement per backend batch (bulk loads).
pub async fn insert(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    entries: &[Entry],
) -> ApiResult<()> {
    let entries: Vec<&Entry> = entries.iter().filter(|e| !e.tokens.is_empty()).collect();
    if entries.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        // One row per message, its hashes in a `bigint[]` under a GIN index.
        let mut insert = Query::insert();
        insert.into_table(Alias::new(PG_TABLE)).columns([
            Alias::new("tenant_id"),
            Alias::new("message_id"),
            Alias::new("thread_id"),
            Alias::new("created_at"),
            Alias::new("tokens"),
        ]);
        for entry in entries {
            insert.values_panic([
                tenant_id.into(),
                entry.message_id.into(),
                entry.thread_id.into(),
                entry.created_at.into(),
                Expr::cust_with_values("CAST($1 AS bigint[])", [pg_array(&entry.tokens)]),
            ]);
        }
        txn.execute(&insert).await.map_err(ApiError::from_db)?;
        return Ok(());
    }
    // SQLite: one row per message and hash.
    let rows: Vec<message_search_token::ActiveModel> = entries
        .iter()
        .flat_map(|entry| {
            entry
                .tokens
                .iter()
                .map(|token| message_search_token::ActiveModel {
                    message_id: sea_orm::Set(entry.message_id),
                    token: sea_orm::Set(*token),
                    tenant_id: sea_orm::Set(tenant_id),
                    thread_id: sea_orm::Set(entry.thread_id),
                    created_at: sea_orm::Set(entry.created_at),
                })
        })
        .collect();
    // Bound parameters per statement stay under SQLite's limit.
    for chunk in rows.chunks(2_000) {
        message_search_token::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await
            .map_err(ApiError::from_db)?;
    }
    Ok(())
}

/// The index table on PostgreSQL (`message_search_tokens` elsewhere).
const PG_TABLE: &str = "message_search_index";

/// Removes `message_ids` from the index.
pub async fn unindex(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    message_ids: &[Uuid],
) -> ApiResult<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        let delete = Query::delete()
            .from_table(Alias::new(PG_TABLE))
            .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id))
            .and_where(Expr::col(Alias::new("message_id")).is_in(message_ids.iter().copied()))
            .to_owned();
        txn.execute(&delete).await.map_err(ApiError::from_db)?;
        return Ok(());
    }
    message_search_token::Entity::delete_many()
        .filter(message_search_token::Column::TenantId.eq(tenant_id))
        .filter(message_search_token::Column::MessageId.is_in(message_ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Every token hash indexed in the tenant (for tests and audits of the index's content).
pub async fn indexed_tokens(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
) -> ApiResult<std::collections::BTreeSet<i64>> {
    let select = if db.get_database_backend() == DbBackend::Postgres {
        Query::select()
            .expr(Expr::cust("unnest(tokens)"))
            .from(Alias::new(PG_TABLE))
            .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id))
            .to_owned()
    } else {
        Query::select()
            .column(Alias::new("token"))
            .from(Alias::new("message_search_tokens"))
            .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id))
            .to_owned()
    };
    let statement = db.get_database_backend().build(&select);
    let rows = db
        .query_all_raw(statement)
        .await
        .map_err(ApiError::from_db)?;
    rows.iter()
        .map(|row| row.try_get_by_index::<i64>(0).map_err(ApiError::from_db))
        .collect()
}

/// What narrows a search besides its words.
#[derive(Clone, Debug, Default)]
pub struct SearchFilter {
    /// Threads about this account.
    pub account_id: Option<Uuid>,
    /// Threads in this status.
    pub status: Option<ThreadStatus>,
    /// Threads this user takes part in.
    pub participant_id: Option<Uuid>,
    /// Messages posted at or after.
    pub posted_after: Option<DateTime<Utc>>,
    /// Messages posted before.
    pub posted_before: Option<DateTime<Utc>>,
}

pub(super) fn col(table: &str, column: &str) -> Expr {
    Expr::col((Alias::new(table), Alias::new(column)))
}

pub(super) fn threads_of(tenant_id: Uuid, user: Uuid) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(Alias::new("thread_id"))
        .from(Alias::new("thread_participants"))
        .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id))
        .and_where(Expr::col(Alias::new("user_id")).eq(user))
        .to_owned()
}

/// Narrows `select` (whose `t0.thread_id` is a thread) to `reader`'s threads (all of the
/// tenant's with `None`) and the thread conditions of `filter`.
pub(super) fn within_threads(
    select: &mut sea_orm::sea_query::SelectStatement,
    tenant_id: Uuid,
    reader: Option<Uuid>,
    filter: &SearchFilter,
) {
    if let Some(reader) = reader {
        select.and_where(col("t0", "thread_id").in_subquery(threads_of(tenant_id, reader)));
    }
    if let Some(participant) = filter.participant_id {
        select.and_where(col("t0", "thread_id").in_subquery(threads_of(tenant_id, participant)));
    }
    if filter.status.is_some() || filter.account_id.is_some() {
        let mut threads = Query::select();
        threads
            .column(Alias::new("id"))
            .from(Alias::new("threads"))
            .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id));
        if let Some(status) = filter.status {
            threads.and_where(Expr::col(Alias::new("status")).eq(status.as_str()));
        }
        if let Some(account) = filter.account_id {
            threads.and_where(Expr::col(Alias::new("account_id")).eq(account));
        }
        select.and_where(col("t0", "thread_id").in_subquery(threads.to_owned()));
    }
}

/// One round of candidates: at most `limit` ids of messages whose index holds every hash
/// of `hashes`, within `reader`'s threads (all of the tenant's with `None`) and `filter`,
/// newest first, before `before`.
async fn candidates(
    store: &Store,
    tenant_id: Uuid,
    reader: Option<Uuid>,
    (hashes, filter): (&[i64], &SearchFilter),
    (before, limit): (Option<Uuid>, u64),
) -> ApiResult<Vec<Uuid>> {
    let mut select = Query::select();
    select
        .expr(col("t0", "message_id"))
        .and_where(col("t0", "tenant_id").eq(tenant_id));
    if store.db.get_database_backend() == DbBackend::Postgres {
        // Every hash in the message's array: the GIN index for rare words, or a backward
        // scan of (tenant, message) filtered on the array when the newest match are near.
        select
            .from_as(Alias::new(PG_TABLE), Alias::new("t0"))
            .and_where(Expr::cust_with_values(
                "\"t0\".\"tokens\" @> CAST($1 AS bigint[])",
                [pg_array(hashes)],
            ));
    } else {
        // One join per further hash over (tenant, token, message).
        every_token(&mut select, ("message_search_tokens", "message_id"), hashes);
    }
    if let Some(before) = before {
        select.and_where(col("t0", "message_id").lt(before));
    }
    if let Some(at) = filter.posted_after {
        select.and_where(col("t0", "created_at").gte(at));
    }
    if let Some(at) = filter.posted_before {
        select.and_where(col("t0", "created_at").lt(at));
    }
    within_threads(&mut select, tenant_id, reader, filter);
    select
        .order_by((Alias::new("t0"), Alias::new("message_id")), Order::Desc)
        .limit(limit);
    ids(&store.db, &select).await
}

/// Makes `select` read `t0` from a per-token table (`table`, whose rows are keyed by
/// `key`) with a row for each of `hashes`: the first as `t0`, one join per further hash.
pub(super) fn every_token(
    select: &mut sea_orm::sea_query::SelectStatement,
    (table, key): (&str, &str),
    hashes: &[i64],
) {
    let table = Alias::new(table);
    select
        .from_as(table.clone(), Alias::new("t0"))
        .and_where(col("t0", "token").eq(hashes[0]));
    for (i, hash) in hashes.iter().enumerate().skip(1) {
        let alias = format!("t{i}");
        select.join_as(
            JoinType::InnerJoin,
            table.clone(),
            Alias::new(&alias),
            Condition::all()
                .add(col(&alias, key).equals((Alias::new("t0"), Alias::new(key))))
                .add(col(&alias, "token").eq(*hash)),
        );
    }
}

/// The ids `select` returns (its first column).
pub(super) async fn ids(
    db: &impl ConnectionTrait,
    select: &sea_orm::sea_query::SelectStatement,
) -> ApiResult<Vec<Uuid>> {
    let statement = db.get_database_backend().build(select);
    let rows = db
        .query_all_raw(statement)
        .await
        .map_err(ApiError::from_db)?;
    rows.iter()
        .map(|row| row.try_get_by_index::<Uuid>(0).map_err(ApiError::from_db))
        .collect()
}

/// One kind of search (bodies, subjects): where its candidates, rows and texts come from.
pub(super) trait Searched {
    /// What a hit is.
    type Row: Clone;
    /// At most `limit` ids whose index holds every hash, newest first, before `before`.
    async fn candidates(&self, before: Option<Uuid>, limit: u64) -> ApiResult<Vec<Uuid>>;
    /// The rows of `ids`.
    async fn rows(&self, ids: &[Uuid]) -> ApiResult<std::collections::HashMap<Uuid, Self::Row>>;
    /// A row's decrypted text (`None`: none to search).
    async fn text(&self, row: &Self::Row) -> ApiResult<Option<String>>;
}

/// The rounds of a search, shared by bodies and subjects: rows whose text holds every word
/// of `words` fill the page, round after round ([`batch`]), until it is full or the
/// candidates run out.
pub(super) async fn confirmed_page<S: Searched>(
    searched: &S,
    page: PageRequest,
    words: &[String],
) -> ApiResult<Page<S::Row>> {
    let wanted = page.first as usize + 1;
    let mut found = Vec::new();
    let mut before = page.after;
    for round in 0..ROUNDS {
        let limit = batch(round, wanted);
        let ids = searched.candidates(before, limit).await?;
        let exhausted = (ids.len() as u64) < limit;
        before = ids.last().copied();
        let rows = searched.rows(&ids).await?;
        for id in &ids {
            let Some(row) = rows.get(id) else { continue };
            let Some(text) = searched.text(row).await? else {
                continue;
            };
            if blind_index::matches(words, &text) {
                found.push(row.clone());
                if found.len() == wanted {
                    break;
                }
            }
        }
        if found.len() == wanted || exhausted {
            break;
        }
    }
    Ok(page.page(found))
}

/// The distinct words of a search `query` and the hashes to look up, sorted. `BAD_USER_INPUT`
/// on `field` for a query without a word of two characters or more, or with too many.
pub(super) async fn query_hashes(
    store: &Store,
    tenant_id: Uuid,
    (query, field): (&str, &'static str),
) -> ApiResult<(Vec<String>, Vec<i64>)> {
    let mut words: Vec<String> = Vec::new();
    for word in blind_index::words(query) {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    if words.is_empty() {
        return Err(ApiError::invalid(
            field,
            "at least one word of two characters",
        ));
    }
    if words.len() > blind_index::QUERY_WORDS_MAX {
        return Err(ApiError::invalid(
            field,
            format!("at most {} words", blind_index::QUERY_WORDS_MAX),
        ));
    }
    let key = store.keys.index_key(tenant_id).await?;
    let mut hashes: Vec<i64> = words
        .iter()
        .map(|word| blind_index::hash(&key, &blind_index::query_token(word)))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    Ok((words, hashes))
}

/// The page `page` of messages matching `query` (every word begins a word of the body),
/// newest first, among the threads `reader` takes part in (`None`: every thread of the
/// tenant, for holders of the queue grant) and `filter`. `BAD_USER_INPUT` on `field` for
/// a query without a word of two characters or more.
pub async fn search(
    store: &Store,
    tenant_id: Uuid,
    reader: Option<Uuid>,
    (query, field): (&str, &'static str),
    filter: &SearchFilter,
    page: PageRequest,
) -> ApiResult<Page<message::Model>> {
    let (words, hashes) = query_hashes(store, tenant_id, (query, field)).await?;
    let bodies = Bodies {
        store,
        tenant_id,
        reader,
        hashes: &hashes,
        filter,
    };
    confirmed_page(&bodies, page, &words).await
}

/// A search over message bodies.
struct Bodies<'a> {
    store: &'a Store,
    tenant_id: Uuid,
    reader: Option<Uuid>,
    hashes: &'a [i64],
    filter: &'a SearchFilter,
}

impl Searched for Bodies<'_> {
    type Row = message::Model;

    async fn candidates(&self, before: Option<Uuid>, limit: u64) -> ApiResult<Vec<Uuid>> {
        let wanted = (self.hashes, self.filter);
        candidates(
            self.store,
            self.tenant_id,
            self.reader,
            wanted,
            (before, limit),
        )
        .await
    }

    async fn rows(
        &self,
        ids: &[Uuid],
    ) -> ApiResult<std::collections::HashMap<Uuid, message::Model>> {
        messages_by_ids(&self.store.db, self.tenant_id, ids.iter().copied()).await
    }

    async fn text(&self, row: &message::Model) -> ApiResult<Option<String>> {
        sealing::body(&self.store.keys, row).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_grow_from_twice_a_page_to_the_cap() {
        assert_eq!(batch(0, 21), 42);
        assert_eq!(batch(1, 21), 168);
        assert_eq!(batch(2, 21), 672);
        assert_eq!(batch(3, 21), BATCH_MAX);
        assert_eq!(batch(ROUNDS - 1, 101), BATCH_MAX);
        assert_eq!(batch(0, 1), 20);
    }
}
