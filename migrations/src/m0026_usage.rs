//! Usage metering: metered events as clients sent them (`usage_events`, idempotent by the
//! client's key) and their 15-minute rollups (`usage_rollups`), kept current in the
//! ingesting transaction. Every IANA offset is a whole number of quarter hours, so chart
//! buckets in any time zone are unions of rollup rows.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0026_usage"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("usage_events")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(string_len("metric", 64))
                    .col(big_integer("quantity_e4"))
                    .col(timestamp_with_time_zone("occurred_at"))
                    .col(string_len("client_key", 64))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("usage_events", "account_id")
                            .to("accounts", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_usage_events_tenant_client_key")
                    .table("usage_events")
                    .col("tenant_id")
                    .col("client_key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_usage_events_account_metric_time")
                    .table("usage_events")
                    .col("tenant_id")
                    .col("account_id")
                    .col("metric")
                    .col("occurred_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("usage_rollups")
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(string_len("metric", 64))
                    // Start of the quarter hour (UTC) the events fell in.
                    .col(timestamp_with_time_zone("bucket_start"))
                    .col(big_integer("quantity_e4"))
                    .col(big_integer("events"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("account_id")
                            .col("metric")
                            .col("bucket_start"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["usage_rollups", "usage_events"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
