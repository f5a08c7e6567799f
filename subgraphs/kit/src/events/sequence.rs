//! Domain events in commit order, for consumers that must see every event exactly once.
//!
//! Event ids are time-ordered, but transactions commit out of order: a consumer that
//! remembered "the last id I saw" would pass an event whose transaction began earlier and
//! committed later. So events are numbered **after** they commit: [`assign`] gives the
//! committed events without a number the next numbers, in id order, in one transaction
//! that only one sequencer runs at a time (an advisory lock on PostgreSQL, the write lock
//! on SQLite; a unique index on the number backs both). The numbers have no gaps, and an
//! event committed late simply gets a later number. Writers never wait for it.
//!
//! A consumer keeps its position in `event_cursors` ([`position`], [`advance`] — in the
//! same transaction as the effects of what it read, so effects and position move
//! together) and reads with [`after`].

use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use portal_entities::platform::domain_event;

use crate::db::begin_exclusive;
use crate::error::{ApiError, ApiResult};

/// The PostgreSQL advisory lock held while numbering (one sequencer at a time).
const LOCK_KEY: i64 = 0x706f_7274_616c_5351; // "portalSQ"

/// Numbers up to `limit` committed events that have none, in id order, after the highest
/// number given so far; how many it numbered. Cheap when there is nothing to do (no write
/// transaction is opened).
pub async fn assign(db: &DatabaseConnection, limit: u64) -> ApiResult<u64> {
    let waiting = domain_event::Entity::find()
        .select_only()
        .column(domain_event::Column::Id)
        .filter(domain_event::Column::Sequence.is_null())
        .limit(1)
        .into_tuple::<uuid::Uuid>()
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    if waiting.is_none() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let txn = begin_exclusive(db, LOCK_KEY)
        .await
        .map_err(ApiError::from_db)?;
    let numbered = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => {
                    "UPDATE domain_events SET sequence = base.top + next.n
                     FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                           FROM domain_events WHERE sequence IS NULL ORDER BY id LIMIT $1) AS next,
                          (SELECT COALESCE(MAX(sequence), 0) AS top FROM domain_events) AS base
                     WHERE domain_events.id = next.id"
                }
                _ => {
                    "UPDATE domain_events SET sequence = base.top + next.n
                     FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                           FROM domain_events WHERE sequence IS NULL ORDER BY id LIMIT ?) AS next,
                          (SELECT COALESCE(MAX(sequence), 0) AS top FROM domain_events) AS base
                     WHERE domain_events.id = next.id"
                }
            },
            [i64::try_from(limit).unwrap_or(i64::MAX).into()],
        ))
        .await
        .map_err(ApiError::from_db)?
        .rows_affected();
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(numbered)
}

/// Numbers every committed event that has none (in rounds of `batch`); how many.
pub async fn assign_all(db: &DatabaseConnection, batch: u64) -> ApiResult<u64> {
    let mut total = 0;
    loop {
        let numbered = assign(db, batch).await?;
        total += numbered;
        if numbered < batch {
            return Ok(total);
        }
    }
}

/// Where `consumer` is: the number of the last event it has taken (0 before the first).
pub async fn position(db: &impl ConnectionTrait, consumer: &str) -> ApiResult<i64> {
    let select = Query::select()
        .column(Alias::new("sequence"))
        .from(Alias::new("event_cursors"))
        .and_where(Expr::col(Alias::new("consumer")).eq(consumer))
        .to_owned();
    let statement = db.get_database_backend().build(&select);
    let row = db
        .query_one_raw(statement)
        .await
        .map_err(ApiError::from_db)?;
    match row {
        Some(row) => row.try_get_by_index::<i64>(0).map_err(ApiError::from_db),
        None => Ok(0),
    }
}

/// Moves `consumer` to `sequence` (in the transaction that records what it did with the
/// events up to there).
pub async fn advance(db: &impl ConnectionTrait, consumer: &str, sequence: i64) -> ApiResult<()> {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new("event_cursors"))
        .columns([
            Alias::new("consumer"),
            Alias::new("sequence"),
            Alias::new("updated_at"),
        ])
        .values_panic([consumer.into(), sequence.into(), Utc::now().into()])
        .on_conflict(
            OnConflict::column(Alias::new("consumer"))
                .update_columns([Alias::new("sequence"), Alias::new("updated_at")])
                .to_owned(),
        );
    db.execute(&insert).await.map_err(ApiError::from_db)?;
    Ok(())
}

/// Up to `limit` numbered events after `sequence`, in order.
pub async fn after(
    db: &impl ConnectionTrait,
    sequence: i64,
    limit: u64,
) -> ApiResult<Vec<domain_event::Model>> {
    domain_event::Entity::find()
        .filter(domain_event::Column::Sequence.gt(sequence))
        .order_by_asc(domain_event::Column::Sequence)
        .limit(limit)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}
