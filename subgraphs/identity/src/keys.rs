//! The access-token signing keys: Ed25519 key pairs in `signing_keys`, private halves
//! sealed with the data key, public halves published to the gateway (and at
//! `/.well-known/jwks.json`).
//!
//! Rotation without a gap: a new key is published first and only signs once it has been
//! published for [`PUBLISH_DELAY`], so every gateway (polling the key table every few
//! seconds) knows it before the first token it signed arrives. A replaced key keeps
//! verifying for [`VERIFY_AFTER_RETIREMENT`], longer than any access token lives.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
    sea_query::{Expr, ExprTrait as _},
};
use serde_json::json;

use portal_entities::identity::signing_key;
use portal_kit::access_token::{ALGORITHM, SigningKey};
use portal_kit::secret::{DataKey, random_bytes};
use portal_kit::{ApiError, ApiResult, chrono_duration};

/// How long a new key is published before it signs.
pub const PUBLISH_DELAY: Duration = Duration::from_secs(15);

/// How long a replaced key still verifies (longer than the longest access-token life).
pub const VERIFY_AFTER_RETIREMENT: Duration = Duration::from_secs(2 * 3600);

/// The purpose private keys are sealed for.
const SEAL_PURPOSE: &str = "identity.signing_key";

/// How long a process keeps using its cached signing key before looking again.
const CACHE_FOR: Duration = Duration::from_secs(30);

/// Chooses, creates and rotates signing keys.
pub struct KeyRing {
    data_key: DataKey,
    rotate_after: Duration,
    cached: Mutex<Option<(DateTime<Utc>, Arc<SigningKey>)>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("rotate_after", &self.rotate_after)
            .finish()
    }
}

impl KeyRing {
    /// A key ring sealing private keys with `data_key` and replacing the signing key once
    /// it is older than `rotate_after`.
    pub fn new(data_key: DataKey, rotate_after: Duration) -> Self {
        Self {
            data_key,
            rotate_after,
            cached: Mutex::new(None),
        }
    }

    /// The key to sign with now. Creates the first key when there is none, and rotates
    /// when the current one is older than the rotation period.
    pub async fn signing_key(&self, db: &DatabaseConnection) -> ApiResult<Arc<SigningKey>> {
        let now = Utc::now();
        if let Some((until, key)) = self.cached.lock().as_ref()
            && *until > now
        {
            return Ok(key.clone());
        }
        let live = live_keys(db).await?;
        let ready = live
            .iter()
            .filter(|key| key.created_at <= now - chrono_duration(PUBLISH_DELAY))
            .find_map(|row| self.open(row).map(|key| (row, key)));
        let (row, key) = match ready {
            Some(found) => found,
            // No published key we can open (first start, or a new data key): use the newest
            // one we can open, or create one. Gateways pick it up on their next poll.
            None => match live
                .iter()
                .find_map(|row| self.open(row).map(|key| (row, key)))
            {
                Some(found) => found,
                None => {
                    let created = self.create(db).await?;
                    let key = self
                        .open(&created)
                        .ok_or_else(|| ApiError::internal("new signing key cannot be opened"))?;
                    let key = Arc::new(key);
                    *self.cached.lock() = Some((now + chrono_duration(CACHE_FOR), key.clone()));
                    return Ok(key);
                }
            },
        };
        if row.created_at + chrono_duration(self.rotate_after) < now
            && live.first().is_some_and(|newest| newest.kid == row.kid)
        {
            // Due for rotation and no successor yet: publish one; it signs after the delay.
            self.rotate(db).await?;
        }
        let key = Arc::new(key);
        *self.cached.lock() = Some((now + chrono_duration(CACHE_FOR), key.clone()));
        Ok(key)
    }

    /// Publishes a new key and retires the others: they stop signing once the new key is
    /// ready and stop verifying [`VERIFY_AFTER_RETIREMENT`] later. Returns the new key id.
    pub async fn rotate(&self, db: &DatabaseConnection) -> ApiResult<String> {
        let created = self.create(db).await?;
        let retire_at = created.created_at + chrono_duration(PUBLISH_DELAY);
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetiredAt, Expr::value(retire_at))
            .filter(signing_key::Column::Kid.ne(created.kid.clone()))
            .filter(signing_key::Column::RetiredAt.is_null())
            .exec(db)
            .await
            .map_err(ApiError::from_db)?;
        tracing::info!(kid = %created.kid, "signing key rotated");
        *self.cached.lock() = None;
        Ok(created.kid)
    }

    async fn create(&self, db: &impl ConnectionTrait) -> ApiResult<signing_key::Model> {
        let seed = random_bytes::<32>()?;
        let now = Utc::now();
        let kid = format!("{}-{}", now.format("%Y%m%d"), hex_id()?);
        signing_key::ActiveModel {
            kid: Set(kid),
            algorithm: Set(ALGORITHM.to_owned()),
            public_key: Set(SigningKey::public_key_of(&seed)),
            private_key_sealed: Set(self.data_key.seal(SEAL_PURPOSE, &seed)?),
            created_at: Set(now),
            retired_at: Set(None),
        }
        .insert(db)
        .await
        .map_err(ApiError::from_db)
    }

    /// The signing key stored in `row`, if this ring's data key opens it.
    pub fn open(&self, row: &signing_key::Model) -> Option<SigningKey> {
        let seed = self
            .data_key
            .open(SEAL_PURPOSE, &row.private_key_sealed)
            .ok()?;
        let seed: [u8; 32] = seed.try_into().ok()?;
        SigningKey::from_seed(row.kid.clone(), &seed).ok()
    }
}

fn hex_id() -> ApiResult<String> {
    Ok(random_bytes::<6>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Keys that may still sign (not retired, or retired in the future), newest first.
async fn live_keys(db: &DatabaseConnection) -> ApiResult<Vec<signing_key::Model>> {
    signing_key::Entity::find()
        .filter(
            signing_key::Column::RetiredAt
                .is_null()
                .or(signing_key::Column::RetiredAt.gt(Utc::now())),
        )
        .order_by_desc(signing_key::Column::CreatedAt)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// Public keys that verify tokens now: `(kid, base64url Ed25519 public key)`.
pub async fn verification_keys(db: &DatabaseConnection) -> ApiResult<Vec<(String, String)>> {
    let horizon = Utc::now() - chrono_duration(VERIFY_AFTER_RETIREMENT);
    let rows = signing_key::Entity::find()
        .filter(
            signing_key::Column::RetiredAt
                .is_null()
                .or(signing_key::Column::RetiredAt.gt(horizon)),
        )
        .order_by_desc(signing_key::Column::CreatedAt)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows.into_iter().map(|r| (r.kid, r.public_key)).collect())
}

/// The verification keys as a JSON Web Key Set (RFC 7517, OKP keys per RFC 8037).
pub async fn jwks(db: &DatabaseConnection) -> ApiResult<serde_json::Value> {
    let keys: Vec<_> = verification_keys(db)
        .await?
        .into_iter()
        .map(|(kid, x)| {
            json!({ "kty": "OKP", "crv": "Ed25519", "alg": ALGORITHM, "use": "sig", "kid": kid, "x": x })
        })
        .collect();
    Ok(json!({ "keys": keys }))
}
