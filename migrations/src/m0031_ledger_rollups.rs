//! Ledger rollups: each account's postings summed per quarter hour (UTC) of posting time,
//! kept current by the transaction that posts an entry. Chart series over long ranges
//! (`balanceHistory`, `activity`) read these instead of every entry: a year is at most
//! 35 040 rows per account however many entries it holds. Existing entries are rolled up
//! here.

use std::collections::BTreeMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0031_ledger_rollups"
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
                    .table("ledger_rollups")
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(timestamp_with_time_zone("bucket_start"))
                    .col(big_integer("amount_e4"))
                    .col(big_integer("entries"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("account_id")
                            .col("bucket_start"),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let rows = db
            .query_all_raw(Statement::from_string(
                manager.get_database_backend(),
                "SELECT tenant_id, account_id, posted_at, amount_e4 FROM ledger_entries",
            ))
            .await?;
        let mut sums: BTreeMap<(uuid::Uuid, uuid::Uuid, i64), (i64, i64)> = BTreeMap::new();
        for row in rows {
            let tenant: uuid::Uuid = row.try_get("", "tenant_id")?;
            let account: uuid::Uuid = row.try_get("", "account_id")?;
            let at: chrono::DateTime<chrono::Utc> = row.try_get("", "posted_at")?;
            let amount: i64 = row.try_get("", "amount_e4")?;
            let quarter = at.timestamp() - at.timestamp().rem_euclid(900);
            let slot = sums.entry((tenant, account, quarter)).or_default();
            slot.0 += amount;
            slot.1 += 1;
        }
        for ((tenant, account, quarter), (amount, entries)) in sums {
            let start = chrono::DateTime::from_timestamp(quarter, 0).unwrap_or_default();
            let insert = Query::insert()
                .into_table("ledger_rollups")
                .columns([
                    "tenant_id",
                    "account_id",
                    "bucket_start",
                    "amount_e4",
                    "entries",
                ])
                .values_panic([
                    tenant.into(),
                    account.into(),
                    start.into(),
                    amount.into(),
                    entries.into(),
                ])
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("ledger_rollups").to_owned())
            .await
    }
}
