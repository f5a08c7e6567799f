//! Search over encrypted messages: the blind index (one row per message and keyed token
//! hash, with the thread and posting time to filter on) and the seed policy rule of
//! `searchMessages`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0048_message_search"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("message_search_tokens")
                    .col(uuid("message_id"))
                    .col(big_integer("token"))
                    .col(uuid("tenant_id"))
                    .col(uuid("thread_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("message_id").col("token"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("message_search_tokens", "message_id")
                            .to("messages", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_message_search_tokens_lookup")
                    .table("message_search_tokens")
                    .col("tenant_id")
                    .col("token")
                    .col("message_id")
                    .to_owned(),
            )
            .await?;
        crate::seed_rules::add(
            manager,
            &[
                ("customer_user", "Query.searchMessages", "read"),
                ("support_agent", "Query.searchMessages", "read"),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("message_search_tokens").to_owned())
            .await
    }
}
