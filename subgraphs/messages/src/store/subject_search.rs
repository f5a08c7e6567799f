//! Search over encrypted thread subjects through the same blind index as bodies
//! ([`super::search`]): a subject is indexed as keyed hashes of its words and their capped
//! prefixes under the tenant's index key, one row per thread and hash in
//! `thread_search_tokens` on every backend (subjects are short and threads a hundredth of
//! messages, so the per-token rows cost little). A query looks up the hashes of its words
//! (every word must match), newest thread first, within the threads the reader may see
//! and the filters, and confirms each candidate against the decrypted subject.

use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use portal_entities::messages::thread;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::{ApiError, ApiResult};

use super::search::{self, SearchFilter, Searched, col, every_token, ids, within_threads};
use super::{Store, sealing, threads_by_ids};

const TABLE: &str = "thread_search_tokens";

/// (Re)indexes the subject of `thread_id` with `tokens` ([`search::text_tokens`] of it).
pub async fn index(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_id: Uuid,
    tokens: &[i64],
) -> ApiResult<()> {
    unindex(txn, tenant_id, &[thread_id]).await?;
    if tokens.is_empty() {
        return Ok(());
    }
    let mut insert = Query::insert();
    insert.into_table(Alias::new(TABLE)).columns([
        Alias::new("thread_id"),
        Alias::new("token"),
        Alias::new("tenant_id"),
    ]);
    for token in tokens {
        insert.values_panic([thread_id.into(), (*token).into(), tenant_id.into()]);
    }
    // Two sweeps indexing the same thread at once write the same rows: the second adds
    // nothing rather than failing.
    insert.on_conflict(
        OnConflict::columns([
            Alias::new("tenant_id"),
            Alias::new("token"),
            Alias::new("thread_id"),
        ])
        .do_nothing()
        .to_owned(),
    );
    txn.execute(&insert).await.map_err(ApiError::from_db)?;
    Ok(())
}

/// Removes the subjects of `thread_ids` from the index.
pub async fn unindex(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_ids: &[Uuid],
) -> ApiResult<()> {
    let delete = Query::delete()
        .from_table(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id))
        .and_where(Expr::col(Alias::new("thread_id")).is_in(thread_ids.iter().copied()))
        .to_owned();
    txn.execute(&delete).await.map_err(ApiError::from_db)?;
    Ok(())
}

/// Every subject token hash indexed in the tenant (for tests and audits of the index).
pub async fn indexed_tokens(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
) -> ApiResult<std::collections::BTreeSet<i64>> {
    let select = Query::select()
        .column(Alias::new("token"))
        .from(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id))
        .to_owned();
    let statement = db.get_database_backend().build(&select);
    let rows = db
        .query_all_raw(statement)
        .await
        .map_err(ApiError::from_db)?;
    rows.iter()
        .map(|row| row.try_get_by_index::<i64>(0).map_err(ApiError::from_db))
        .collect()
}

/// Threads with a sealed subject and no index entry (made before subjects were indexed,
/// or sealed since by the re-seal sweep), of `tenant_id` or of every tenant.
fn not_indexed(tenant_id: Option<Uuid>) -> Condition {
    let mut indexed = Query::select();
    indexed
        .column(Alias::new("thread_id"))
        .from(Alias::new(TABLE));
    if let Some(tenant_id) = tenant_id {
        indexed.and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id));
    }
    Condition::all()
        .add(Expr::col(thread::Column::SubjectSealed).is_not_null())
        .add(Expr::col(thread::Column::Id).not_in_subquery(indexed.to_owned()))
}

/// Threads of the tenant whose subject is not indexed, at most `limit`.
pub async fn unindexed(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    limit: u64,
) -> ApiResult<Vec<thread::Model>> {
    thread::Entity::find()
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(not_indexed(Some(tenant_id)))
        .limit(limit)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// Tenants with a sealed subject that has no index entry.
pub async fn tenants_with_unindexed(db: &impl ConnectionTrait) -> ApiResult<Vec<Uuid>> {
    thread::Entity::find()
        .select_only()
        .column(thread::Column::TenantId)
        .distinct()
        .filter(not_indexed(None))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// Indexes up to `limit` subjects of the tenant that have no entry; how many it indexed.
pub async fn index_missing(store: &Store, tenant_id: Uuid, limit: u64) -> ApiResult<u64> {
    let rows = unindexed(&store.db, tenant_id, limit).await?;
    let mut done = 0;
    for row in rows {
        let subject = sealing::subject(&store.keys, &row).await?;
        let tokens = search::text_tokens(&store.keys, tenant_id, &subject).await?;
        index(&store.db, tenant_id, row.id, &tokens).await?;
        done += 1;
    }
    Ok(done)
}

/// One round of candidates: at most `limit` ids of threads whose subject's index holds
/// every hash of `hashes`, within `reader`'s threads and `filter`, newest first, before
/// `before`.
async fn candidates(
    store: &Store,
    tenant_id: Uuid,
    reader: Option<Uuid>,
    (hashes, filter): (&[i64], &SearchFilter),
    (before, limit): (Option<Uuid>, u64),
) -> ApiResult<Vec<Uuid>> {
    let mut select = Query::select();
    select
        .expr(col("t0", "thread_id"))
        .and_where(col("t0", "tenant_id").eq(tenant_id));
    every_token(&mut select, (TABLE, "thread_id"), hashes);
    if let Some(before) = before {
        select.and_where(col("t0", "thread_id").lt(before));
    }
    within_threads(&mut select, tenant_id, reader, filter);
    select
        .order_by((Alias::new("t0"), Alias::new("thread_id")), Order::Desc)
        .limit(limit);
    ids(&store.db, &select).await
}

/// The page `page` of threads whose subject matches `query` (every word begins a word of
/// the subject), newest first, among the threads `reader` takes part in (`None`: every
/// thread of the tenant) and the thread conditions of `filter` (its dates do not apply).
pub async fn search(
    store: &Store,
    tenant_id: Uuid,
    reader: Option<Uuid>,
    (query, field): (&str, &'static str),
    filter: &SearchFilter,
    page: PageRequest,
) -> ApiResult<Page<thread::Model>> {
    let (words, hashes) = search::query_hashes(store, tenant_id, (query, field)).await?;
    let subjects = Subjects {
        store,
        tenant_id,
        reader,
        hashes: &hashes,
        filter,
    };
    search::confirmed_page(&subjects, page, &words).await
}

/// A search over thread subjects.
struct Subjects<'a> {
    store: &'a Store,
    tenant_id: Uuid,
    reader: Option<Uuid>,
    hashes: &'a [i64],
    filter: &'a SearchFilter,
}

impl Searched for Subjects<'_> {
    type Row = thread::Model;

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
    ) -> ApiResult<std::collections::HashMap<Uuid, thread::Model>> {
        threads_by_ids(&self.store.db, self.tenant_id, ids.iter().copied()).await
    }

    async fn text(&self, row: &thread::Model) -> ApiResult<Option<String>> {
        sealing::subject(&self.store.keys, row).await.map(Some)
    }
}
