//! Search over encrypted thread subjects: the blind index of subjects (one row per thread
//! and keyed token hash, on every backend — subjects are short) and the seed policy rules
//! of `searchThreads`. Subjects of existing threads are indexed by the messages re-seal
//! sweep (it needs the tenants' keys, which a migration does not have).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0053_thread_subject_search"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("thread_search_tokens")
                    .col(uuid("thread_id"))
                    .col(big_integer("token"))
                    .col(uuid("tenant_id"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("token")
                            .col("thread_id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("thread_search_tokens", "thread_id")
                            .to("threads", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_thread_search_tokens_thread")
                    .table("thread_search_tokens")
                    .col("thread_id")
                    .to_owned(),
            )
            .await?;
        crate::seed_rules::add(
            manager,
            &[
                ("customer_user", "Query.searchThreads", "read"),
                ("support_agent", "Query.searchThreads", "read"),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("thread_search_tokens").to_owned())
            .await
    }
}
