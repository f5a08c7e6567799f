//! Sign-in throttling that holds across processes: failure counters live in
//! `auth_throttles`, one row per account (tenant + email, whether or not the account
//! exists, so a lockout reveals nothing) and one per source address. Password and second
//! factor failures count alike.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use portal_entities::identity::auth_throttle;
use portal_kit::{ApiError, ApiResult, chrono_duration};

/// When a key locks.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Failures within `window` that lock the key.
    pub max_failures: i32,
    /// The counting window.
    pub window: Duration,
    /// How long a locked key stays locked.
    pub lockout: Duration,
}

/// Per account: 5 failures in 15 minutes lock it for 15 minutes.
pub const ACCOUNT: Policy = Policy {
    max_failures: 5,
    window: Duration::from_secs(15 * 60),
    lockout: Duration::from_secs(15 * 60),
};

/// Per source address: 50 failures in 15 minutes lock it for 15 minutes.
pub const SOURCE: Policy = Policy {
    max_failures: 50,
    window: Duration::from_secs(15 * 60),
    lockout: Duration::from_secs(15 * 60),
};

/// The throttle key of an account.
pub fn account_key(tenant_slug: &str, email: &str) -> String {
    format!("account:{tenant_slug}:{email}")
}

/// The throttle key of an account's password reset requests (tenant + email, whether or
/// not the account exists).
pub fn reset_key(tenant_slug: &str, email: &str) -> String {
    format!("reset:{tenant_slug}:{email}")
}

/// The throttle key of a source address.
pub fn source_key(source_ip: &str) -> String {
    format!("source:{source_ip}")
}

/// `RATE_LIMITED` when any of `keys` is locked at `now` (identity's clock).
pub async fn ensure_open(
    db: &DatabaseConnection,
    keys: &[String],
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let locked = auth_throttle::Entity::find()
        .filter(auth_throttle::Column::Key.is_in(keys.iter().cloned()))
        .filter(auth_throttle::Column::LockedUntil.gt(now))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    match locked {
        Some(_) => Err(ApiError::RateLimited),
        None => Ok(()),
    }
}

/// Counts one failure against `key`, locking it when `policy` says so. The increment is
/// a single `UPDATE`, so concurrent failures in several processes all count. Windows and
/// locks are measured from `now` (identity's clock).
pub async fn record_failure(
    db: &DatabaseConnection,
    key: &str,
    policy: Policy,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    auth_throttle::Entity::insert(auth_throttle::ActiveModel {
        key: Set(key.to_owned()),
        failures: Set(0),
        window_started_at: Set(now),
        locked_until: Set(None),
    })
    .on_conflict(
        OnConflict::column(auth_throttle::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await
    .map_err(ApiError::from_db)?;
    let window_over =
        Expr::col(auth_throttle::Column::WindowStartedAt).lt(now - chrono_duration(policy.window));
    auth_throttle::Entity::update_many()
        .col_expr(
            auth_throttle::Column::Failures,
            Expr::case(window_over.clone(), Expr::val(1))
                .finally(Expr::col(auth_throttle::Column::Failures).add(1))
                .into(),
        )
        .col_expr(
            auth_throttle::Column::WindowStartedAt,
            Expr::case(window_over, Expr::val(now))
                .finally(Expr::col(auth_throttle::Column::WindowStartedAt))
                .into(),
        )
        .filter(auth_throttle::Column::Key.eq(key))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    // Lock, and start counting afresh for when the lock ends.
    let locked = auth_throttle::Entity::update_many()
        .col_expr(
            auth_throttle::Column::LockedUntil,
            Expr::value(now + chrono_duration(policy.lockout)),
        )
        .col_expr(auth_throttle::Column::Failures, Expr::value(0))
        .col_expr(auth_throttle::Column::WindowStartedAt, Expr::value(now))
        .filter(auth_throttle::Column::Key.eq(key))
        .filter(auth_throttle::Column::Failures.gte(policy.max_failures))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    if locked.rows_affected > 0 {
        // The key names an email address: log only what kind of key locked.
        let kind = key.split(':').next().unwrap_or("unknown");
        tracing::warn!(kind, "sign-in throttle engaged");
    }
    Ok(())
}

/// Counts an attempt against `key` *before* it is checked, so that concurrent attempts
/// cannot all slip in under the limit: `RATE_LIMITED` once more than `policy.max_failures`
/// attempts were made in the window (or the key is locked). A successful attempt is
/// forgiven with [`clear`].
pub async fn attempt(
    db: &DatabaseConnection,
    key: &str,
    policy: Policy,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let key = key.to_owned();
    ensure_open(db, std::slice::from_ref(&key), now).await?;
    let counting = Policy {
        max_failures: policy.max_failures + 1,
        ..policy
    };
    record_failure(db, &key, counting, now).await?;
    ensure_open(db, std::slice::from_ref(&key), now).await
}

/// Forgets the failures of `key` (after a successful sign-in). A running lock stays.
pub async fn clear(db: &DatabaseConnection, key: &str) -> ApiResult<()> {
    auth_throttle::Entity::update_many()
        .col_expr(auth_throttle::Column::Failures, Expr::value(0))
        .filter(auth_throttle::Column::Key.eq(key))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}
