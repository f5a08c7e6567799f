//! Integrations' class of the retention engine: webhook messages whose delivery has ended
//! (delivered, or given up), with their delivery attempts
//! (`portal_kit::retention::WEBHOOK_DELIVERIES`). Messages still being delivered stay
//! whatever their age.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use portal_entities::integrations::{webhook_attempt, webhook_message};
use portal_kit::db::BeginWrite;
use portal_kit::retention::{self, Class, Held, Sweeper, WEBHOOK_DELIVERIES};
use portal_kit::{ApiError, ApiResult};

use crate::store::webhooks::MessageStatus;

/// Ended webhook deliveries of a tenant.
pub struct WebhookDeliveries {
    db: DatabaseConnection,
}

impl WebhookDeliveries {
    /// The sweeper over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { db })
    }

    /// Delivered or given up, created and (when delivered) delivered before `cutoff`.
    fn ended(tenant: Uuid, cutoff: DateTime<Utc>) -> Condition {
        Condition::all()
            .add(webhook_message::Column::TenantId.eq(tenant))
            .add(webhook_message::Column::Status.is_in([
                MessageStatus::Delivered.as_str(),
                MessageStatus::Failed.as_str(),
            ]))
            .add(webhook_message::Column::CreatedAt.lt(cutoff))
            .add(
                Condition::any()
                    .add(webhook_message::Column::DeliveredAt.is_null())
                    .add(webhook_message::Column::DeliveredAt.lt(cutoff)),
            )
    }
}

#[async_trait::async_trait]
impl Sweeper for WebhookDeliveries {
    fn class(&self) -> Class {
        WEBHOOK_DELIVERIES
    }

    async fn due(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
    ) -> ApiResult<u64> {
        let Some(tenant) = tenant else { return Ok(0) };
        retention::count::<webhook_message::Entity>(&self.db, Self::ended(tenant, cutoff)).await
    }

    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        _held: &Held,
        limit: u64,
    ) -> ApiResult<u64> {
        let Some(tenant) = tenant else { return Ok(0) };
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let ids = retention::oldest::<webhook_message::Entity>(
            &txn,
            (
                webhook_message::Column::Id,
                webhook_message::Column::CreatedAt,
            ),
            Self::ended(tenant, cutoff),
            limit,
        )
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // Only messages still ended: one replayed meanwhile is being delivered again.
        let still = retention::oldest::<webhook_message::Entity>(
            &txn,
            (
                webhook_message::Column::Id,
                webhook_message::Column::CreatedAt,
            ),
            Self::ended(tenant, cutoff).add(webhook_message::Column::Id.is_in(ids)),
            limit,
        )
        .await?;
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::MessageId.is_in(still.clone()))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        let deleted = webhook_message::Entity::delete_many()
            .filter(webhook_message::Column::Id.is_in(still))
            .filter(Self::ended(tenant, cutoff))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(deleted)
    }
}
