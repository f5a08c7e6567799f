//! Wake-ups across processes: on PostgreSQL a task `LISTEN`s on a channel and wakes local
//! waiters whenever another process `NOTIFY`s it (reconnecting after a lost connection);
//! on SQLite there is no such channel and waiters rely on their polling interval alone.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};
use tokio::sync::Notify;

/// A [`Notify`] woken by every `NOTIFY channel` on PostgreSQL (never on SQLite); the
/// listening task lives as long as someone holds the `Notify`.
pub fn wake_on_notify(db: &DatabaseConnection, channel: &'static str) -> Arc<Notify> {
    let wake = Arc::new(Notify::new());
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let pool = db.get_postgres_connection_pool().clone();
        // The listener ends (and frees its connection) once nobody holds the `Notify`.
        let waker = Arc::downgrade(&wake);
        tokio::spawn(async move {
            while waker.strong_count() > 0 {
                if let Err(err) = listen(&pool, channel, &waker).await {
                    tracing::warn!(%err, channel, "LISTEN connection lost; polling meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }
    wake
}

async fn listen(
    pool: &sea_orm::sqlx::PgPool,
    channel: &str,
    wake: &std::sync::Weak<Notify>,
) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    loop {
        tokio::select! {
            received = listener.recv() => {
                received?;
                let Some(wake) = wake.upgrade() else { return Ok(()) };
                wake.notify_waiters();
                wake.notify_one();
            }
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                if wake.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// Announces on `channel` (with `payload`) through `db` on PostgreSQL — pass the
/// transaction of the change, so the announcement goes out at commit and never for a
/// rolled-back change; nothing on SQLite, where listeners poll.
pub async fn announce(
    db: &impl ConnectionTrait,
    channel: &str,
    payload: Option<&str>,
) -> Result<(), crate::error::ApiError> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let statement = match payload {
        Some(payload) => format!("NOTIFY {channel}, '{}'", payload.replace('\'', "''")),
        None => format!("NOTIFY {channel}"),
    };
    db.execute_unprepared(&statement)
        .await
        .map_err(crate::error::ApiError::from_db)?;
    Ok(())
}
