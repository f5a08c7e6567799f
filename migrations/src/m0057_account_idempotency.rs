//! Accounts get an optional idempotency key (and the hash of the request that first used
//! it), as ledger entries and invoices have: a client that retries `createAccount` after
//! a timeout — a connector creating accounts from CRM companies above all — gets the
//! account it created, never a second one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0057_account_idempotency"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in [
            string_len_null("idempotency_key", 64),
            string_len_null("request_hash", 64),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("accounts")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Keys are optional: NULLs never clash.
        manager
            .create_index(
                Index::create()
                    .name("ux_accounts_tenant_idempotency_key")
                    .table("accounts")
                    .col("tenant_id")
                    .col("idempotency_key")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_accounts_tenant_idempotency_key")
                    .table("accounts")
                    .to_owned(),
            )
            .await?;
        for column in ["request_hash", "idempotency_key"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("accounts")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
