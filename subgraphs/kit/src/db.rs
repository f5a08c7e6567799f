//! Opening database connections with the settings Portal relies on.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// How SQLite makes a commit durable (its `synchronous` setting, in WAL mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteDurability {
    /// `FULL` (the default): every commit is on disk before it is acknowledged, so
    /// nothing acknowledged is lost when the machine loses power.
    #[default]
    Full,
    /// `NORMAL`: commits are on disk at each WAL checkpoint; a power loss (not a crash of
    /// the process) can lose the last commits. Faster writes.
    Normal,
}

static SQLITE_DURABILITY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Sets how SQLite pools opened from now on make commits durable (the process's
/// configuration; `FULL` unless set).
pub fn set_sqlite_durability(durability: SqliteDurability) {
    SQLITE_DURABILITY.store(
        durability == SqliteDurability::Full,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Opens a pool to `url` (`sqlite://path?mode=rwc` or `postgres://…`).
///
/// SQLite connections get WAL journaling, enforced foreign keys, a busy timeout (so that
/// concurrent writers wait for each other instead of failing) and the durability set by
/// [`set_sqlite_durability`].
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let synchronous = if SQLITE_DURABILITY.load(std::sync::atomic::Ordering::Relaxed) {
        SqliteSynchronous::Full
    } else {
        SqliteSynchronous::Normal
    };
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
        });
    Database::connect(options).await
}

/// Starts a transaction that writes. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`): a transaction that reads first and then writes would otherwise
/// fail at once with "database is locked" when another connection committed in between
/// (SQLite cannot upgrade a stale read snapshot), instead of waiting its turn. Elsewhere
/// it is a plain `BEGIN`.
#[async_trait::async_trait]
pub trait BeginWrite {
    /// `BEGIN` (`BEGIN IMMEDIATE` on SQLite).
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr>;
}

#[async_trait::async_trait]
impl BeginWrite for DatabaseConnection {
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
    }
}

/// Starts a write transaction that only one holder of `key` runs at a time: a
/// transaction-scoped advisory lock on PostgreSQL; on SQLite the write lock
/// [`BeginWrite::begin_write`] takes already excludes every other writer. For work that
/// must not run twice at once (numbering events, dispatching them).
pub async fn begin_exclusive(
    db: &DatabaseConnection,
    key: i64,
) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin_write().await?;
    let backend = db.get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        sea_orm::ConnectionTrait::execute_raw(
            &txn,
            sea_orm::Statement::from_sql_and_values(
                backend,
                "SELECT pg_advisory_xact_lock($1)",
                [key.into()],
            ),
        )
        .await?;
    }
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    #[tokio::test]
    async fn a_write_transaction_that_reads_first_survives_a_concurrent_commit_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("portal-db-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let first = connect(&url, 1).await.expect("first pool");
        let second = connect(&url, 1).await.expect("second pool");
        let sql = |s: &str| Statement::from_string(sea_orm::DatabaseBackend::Sqlite, s.to_owned());
        first
            .execute_raw(sql("CREATE TABLE t (n INTEGER)"))
            .await
            .expect("table");
        // A transaction that reads, then — after another connection committed — writes.
        let txn = first.begin_write().await.expect("begin");
        txn.execute_raw(sql("SELECT count(*) FROM t"))
            .await
            .expect("read");
        let other = tokio::spawn(async move {
            // Waits for the write lock (busy timeout) instead of invalidating the reader.
            second.execute_raw(sql("INSERT INTO t VALUES (1)")).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        txn.execute_raw(sql("INSERT INTO t VALUES (2)"))
            .await
            .expect("the reading transaction may still write");
        txn.commit().await.expect("commit");
        other
            .await
            .expect("task")
            .expect("the other writer waited its turn");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
