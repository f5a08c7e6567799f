//! Identity's classes of the retention engine: ended sign-in sessions, with their refresh
//! tokens (`portal_kit::retention::SESSIONS`). A session has ended when it was revoked, or
//! once the longest absolute timeout a tenant may set has passed since it began; people
//! under a legal hold keep theirs.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use portal_entities::identity::{refresh_token, session};
use portal_kit::db::BeginWrite;
use portal_kit::retention::{self, Class, Held, SESSIONS, Sweeper};
use portal_kit::{ApiError, ApiResult};

/// The longest absolute session timeout a tenant may set (see `domain`): a session begun
/// longer ago has ended whatever happened to it.
const LONGEST_SESSION: Duration = Duration::days(30);

/// Ended sessions of a tenant.
pub struct Sessions {
    db: DatabaseConnection,
}

impl Sessions {
    /// The sweeper over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { db })
    }

    fn ended(tenant: Uuid, cutoff: DateTime<Utc>, held: &Held) -> Condition {
        let ended = Condition::any()
            .add(session::Column::RevokedAt.lt(cutoff))
            .add(
                Condition::all()
                    .add(session::Column::RevokedAt.is_null())
                    .add(session::Column::CreatedAt.lt(cutoff - LONGEST_SESSION)),
            );
        let mut condition = Condition::all()
            .add(session::Column::TenantId.eq(tenant))
            .add(ended);
        if !held.users.is_empty() {
            condition = condition.add(session::Column::UserId.is_not_in(held.users.clone()));
        }
        condition
    }
}

#[async_trait::async_trait]
impl Sweeper for Sessions {
    fn class(&self) -> Class {
        SESSIONS
    }

    async fn due(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        held: &Held,
    ) -> ApiResult<u64> {
        // Every session belongs to a tenant: the platform has none of its own.
        let Some(tenant) = tenant else { return Ok(0) };
        retention::count::<session::Entity>(&self.db, Self::ended(tenant, cutoff, held)).await
    }

    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        held: &Held,
        limit: u64,
    ) -> ApiResult<u64> {
        let Some(tenant) = tenant else { return Ok(0) };
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let ids = retention::oldest::<session::Entity>(
            &txn,
            (session::Column::Id, session::Column::CreatedAt),
            Self::ended(tenant, cutoff, held),
            limit,
        )
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::SessionId.is_in(ids.clone()))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        let deleted = session::Entity::delete_many()
            .filter(session::Column::Id.is_in(ids))
            .filter(Self::ended(tenant, cutoff, held))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(deleted)
    }
}
