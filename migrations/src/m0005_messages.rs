//! Messages tables: threads, their participants and messages.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_messages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("threads")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid_null("account_id"))
                    .col(uuid("created_by"))
                    .col(string_len("subject", 300))
                    .col(string_len("status", 16))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("thread_participants")
                    .col(uuid("thread_id"))
                    .col(uuid("user_id"))
                    .col(uuid("tenant_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("thread_id").col("user_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("thread_participants", "thread_id")
                            .to("threads", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("thread_participants", "user_id"))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("messages")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("thread_id"))
                    .col(uuid("author_id"))
                    .col(text("body"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("edited_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("messages", "thread_id")
                            .to("threads", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("messages", "thread_id"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["messages", "thread_participants", "threads"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
