//! Indexes for endpoint health (`WebhookEndpoint.errorRate`, `lastDeliveredAt`,
//! `lastError`, `deliveryLagSeconds`): an endpoint's attempts by time, and its messages
//! still waiting (a partial index: the delivered ones, nearly all, stay out of it).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0060_webhook_attempt_stats"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_attempts_endpoint_started")
                    .table("webhook_attempts")
                    .col("tenant_id")
                    .col("endpoint_id")
                    .col("started_at")
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_webhook_messages_pending ON webhook_messages \
                 (tenant_id, endpoint_id, id) WHERE status = 'PENDING'",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_webhook_messages_pending")
                    .table("webhook_messages")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_webhook_attempts_endpoint_started")
                    .table("webhook_attempts")
                    .to_owned(),
            )
            .await
    }
}
