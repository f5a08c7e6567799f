//! Accounts tables: customer accounts with an exact-decimal balance.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_accounts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("accounts")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("owner_id"))
                    .col(string_len("number", 32))
                    .col(string_len("name", 200))
                    .col(string_len("status", 16))
                    .col(char_len("currency", 3))
                    // Exact money: the balance times 10^4 as an integer (SQLite has no exact decimal type).
                    .col(big_integer("balance_e4"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_accounts_tenant_number")
                    .table("accounts")
                    .col("tenant_id")
                    .col("number")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("accounts", "owner_id"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("accounts").to_owned())
            .await
    }
}
