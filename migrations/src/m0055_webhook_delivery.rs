//! Webhook delivery (Standard Webhooks 1.0): endpoints get a sealed signing secret (and
//! the previous one during a rotation window), an owner whose policies trim payloads, a
//! payload mode and their failure state; `webhook_messages` holds what is to be
//! delivered (one row per endpoint and event, or a ping) and `webhook_attempts` the
//! delivery log. Seed rules let tenant admins and integrators register, rotate, ping and
//! replay.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0055_webhook_delivery"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        let columns = [
            text_null("secret_sealed"),
            text_null("previous_secret_sealed"),
            timestamp_with_time_zone_null("previous_secret_until"),
            json_null("owner"),
            string_len("payload_mode", 10).default("FULL").to_owned(),
            text_null("disabled_reason"),
            timestamp_with_time_zone_null("failing_since"),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table("webhook_endpoints")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("webhook_messages")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("endpoint_id"))
                    .col(uuid_null("event_id"))
                    .col(string_len("event_type", 100))
                    .col(json("body"))
                    .col(string_len("status", 12))
                    .col(integer("attempts").default(0))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("webhook_messages", "endpoint_id")
                            .to("webhook_endpoints", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A dispatcher that runs an event twice (after a crash) adds nothing the second
        // time; pings have no event.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_webhook_messages_event ON webhook_messages \
                 (endpoint_id, event_id) WHERE event_id IS NOT NULL",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_messages_endpoint")
                    .table("webhook_messages")
                    .col("tenant_id")
                    .col("endpoint_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_attempts")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("message_id"))
                    .col(uuid("endpoint_id"))
                    .col(integer("attempt"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(string_len("outcome", 12))
                    .col(integer_null("status_code"))
                    .col(integer("latency_ms"))
                    .col(text_null("error"))
                    .col(text_null("response_excerpt"))
                    .col(timestamp_with_time_zone_null("next_attempt_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("webhook_attempts", "message_id")
                            .to("webhook_messages", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_attempts_message")
                    .table("webhook_attempts")
                    .col("message_id")
                    .col("attempt")
                    .to_owned(),
            )
            .await?;
        let mut rules = Vec::new();
        for role in ["tenant_admin", "integrator"] {
            for (object, action) in [
                ("Mutation.registerWebhookEndpoint", "write"),
                ("Mutation.rotateWebhookEndpointSecret", "write"),
                ("Mutation.pingWebhookEndpoint", "write"),
                ("Mutation.replayWebhookMessage", "write"),
                ("Mutation.replayWebhookMessages", "write"),
                ("WebhookEndpointRegistration.*", "read"),
                ("WebhookMessage.*", "read"),
                ("WebhookMessageConnection.*", "read"),
                ("WebhookMessageEdge.*", "read"),
                ("WebhookAttempt.*", "read"),
            ] {
                rules.push((role, object, action));
            }
        }
        rules.push(("integrator", "Mutation.updateWebhookEndpoint", "write"));
        crate::seed_rules::add(manager, &rules).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webhook_attempts", "webhook_messages"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            "failing_since",
            "disabled_reason",
            "payload_mode",
            "owner",
            "previous_secret_until",
            "previous_secret_sealed",
            "secret_sealed",
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("webhook_endpoints")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
