//! An index on the quarter-hour usage rollups by account and time: the ragged ends of a
//! long period (the dashboard's months) are time ranges over every metric of an account,
//! which the primary key (metric before time) cannot range over.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0035_usage_rollups_by_time"
    }
}

const INDEX: &str = "ix_usage_rollups_account_time";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("usage_rollups")
                    .col("tenant_id")
                    .col("account_id")
                    .col("bucket_start")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No table: PostgreSQL would read it as the index's schema.
        manager
            .drop_index(Index::drop().name(INDEX).to_owned())
            .await
    }
}
