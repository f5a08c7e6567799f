//! What gateways need from identity to authenticate requests locally: the verification
//! keys and the revoked sessions, polled from the database once a second (a revoked
//! session stops working at every gateway within about a second).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use portal_entities::identity::session;
use portal_kit::access_token::AccessTokenVerifier;
use portal_kit::{ApiError, ApiResult};

use crate::keys::{self, VERIFY_AFTER_RETIREMENT};

/// How often keys are re-read, in polls.
const KEYS_EVERY: u32 = 5;

/// Revocations newer than `since`: `(session, revoked at)`.
async fn revoked_since(
    db: &DatabaseConnection,
    since: DateTime<Utc>,
) -> ApiResult<Vec<(Uuid, DateTime<Utc>)>> {
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .column(session::Column::RevokedAt)
        .filter(session::Column::RevokedAt.gte(since))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| at.map(|at| (id, at)))
        .collect())
}

/// Loads keys and revocations into `verifier` once, returning the revocation cursor.
pub async fn sync(
    db: &DatabaseConnection,
    verifier: &AccessTokenVerifier,
    since: DateTime<Utc>,
) -> ApiResult<DateTime<Utc>> {
    verifier.set_keys(keys::verification_keys(db).await?);
    refresh_revocations(db, verifier, since).await
}

/// How far back each poll looks before its cursor: a revocation stamped earlier but
/// committed later than another is still seen (re-reading is harmless: revoking twice is
/// idempotent).
const OVERLAP: chrono::Duration = chrono::Duration::seconds(30);

async fn refresh_revocations(
    db: &DatabaseConnection,
    verifier: &AccessTokenVerifier,
    since: DateTime<Utc>,
) -> ApiResult<DateTime<Utc>> {
    let revoked = revoked_since(db, since - OVERLAP).await?;
    let keep = chrono::Duration::from_std(VERIFY_AFTER_RETIREMENT).unwrap_or_default();
    let cursor = revoked.iter().map(|(_, at)| *at).max().unwrap_or(since);
    verifier.revoke(revoked.into_iter().map(|(id, at)| (id, at + keep)));
    Ok(cursor)
}

/// Keeps `verifier` in step with the database: loads everything now, then polls every
/// `interval` until the returned task is aborted.
pub async fn watch(
    db: DatabaseConnection,
    verifier: Arc<AccessTokenVerifier>,
    interval: Duration,
) -> ApiResult<tokio::task::JoinHandle<()>> {
    let horizon =
        Utc::now() - chrono::Duration::from_std(VERIFY_AFTER_RETIREMENT).unwrap_or_default();
    let mut cursor = sync(&db, &verifier, horizon).await?;
    Ok(tokio::spawn(async move {
        let mut ticks = 0u32;
        loop {
            let wished = tokio::select! {
                () = tokio::time::sleep(interval) => false,
                () = verifier.key_wanted() => true,
            };
            ticks = ticks.wrapping_add(1);
            if verifier.take_key_wish() | ticks.is_multiple_of(KEYS_EVERY) {
                match keys::verification_keys(&db).await {
                    Ok(found) => verifier.set_keys(found),
                    Err(err) => tracing::warn!(?err, "reloading verification keys failed"),
                }
            }
            match refresh_revocations(&db, &verifier, cursor).await {
                Ok(next) => cursor = next,
                Err(err) => tracing::warn!(?err, "polling session revocations failed"),
            }
            if wished {
                // Tokens naming unknown keys must not turn into a stream of key reloads.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }))
}
