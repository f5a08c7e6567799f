//! The account ledger: entries (the only thing that moves a balance), invoices and the
//! payments that settle them. `accounts.balance_e4` stays as the running total, written
//! only in the transaction that posts an entry; every existing non-zero balance gets an
//! opening-balance entry here, so the ledger of every account sums to its balance.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0024_ledger"
    }
}

/// A `(tenant_id, account_id, <column>, id)` index: the keyset order of an account's list
/// sorted by `column`.
fn by_account(table: &'static str, column: &'static str) -> IndexCreateStatement {
    Index::create()
        .name(format!("ix_{table}_account_{column}"))
        .table(table)
        .col("tenant_id")
        .col("account_id")
        .col(column)
        .col("id")
        .to_owned()
}

/// A unique `(tenant_id, idempotency_key)` index (keys are optional: NULLs never clash).
fn idempotency(table: &'static str) -> IndexCreateStatement {
    Index::create()
        .name(format!("ux_{table}_tenant_idempotency_key"))
        .table(table)
        .col("tenant_id")
        .col("idempotency_key")
        .unique()
        .to_owned()
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
                    .table("ledger_entries")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(string_len("kind", 16))
                    .col(string_len("source", 16))
                    // Signed: what the entry adds to the balance (charges and refunds are
                    // negative), times 10^4.
                    .col(big_integer("amount_e4"))
                    .col(big_integer("balance_after_e4"))
                    .col(char_len("currency", 3))
                    .col(timestamp_with_time_zone("posted_at"))
                    .col(string_len_null("reference", 100))
                    .col(string_len_null("description", 500))
                    .col(uuid_null("invoice_id"))
                    .col(uuid_null("payment_id"))
                    .col(string_len_null("idempotency_key", 64))
                    .col(string_len_null("request_hash", 64))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("ledger_entries", "account_id")
                            .to("accounts", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_account("ledger_entries", "posted_at"))
            .await?;
        manager
            .create_index(by_account("ledger_entries", "amount_e4"))
            .await?;
        manager.create_index(idempotency("ledger_entries")).await?;

        manager
            .create_table(
                Table::create()
                    .table("invoices")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(string_len("number", 32))
                    .col(string_len("status", 16))
                    .col(string_len("source", 16))
                    .col(char_len("currency", 3))
                    .col(big_integer("amount_e4"))
                    .col(big_integer("paid_e4"))
                    .col(date("period_start"))
                    .col(date("period_end"))
                    .col(date("due_date"))
                    .col(timestamp_with_time_zone("issued_at"))
                    .col(uuid("charge_entry_id"))
                    .col(timestamp_with_time_zone_null("settled_at"))
                    .col(timestamp_with_time_zone_null("voided_at"))
                    .col(string_len_null("void_reason", 500))
                    .col(string_len_null("idempotency_key", 64))
                    .col(string_len_null("request_hash", 64))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("invoices", "account_id")
                            .to("accounts", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_invoices_tenant_number")
                    .table("invoices")
                    .col("tenant_id")
                    .col("number")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_account("invoices", "issued_at"))
            .await?;
        manager
            .create_index(by_account("invoices", "due_date"))
            .await?;
        manager
            .create_index(by_account("invoices", "amount_e4"))
            .await?;
        manager.create_index(idempotency("invoices")).await?;

        manager
            .create_table(
                Table::create()
                    .table("payments")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(uuid_null("invoice_id"))
                    .col(uuid("ledger_entry_id"))
                    .col(string_len("source", 16))
                    .col(char_len("currency", 3))
                    .col(big_integer("amount_e4"))
                    .col(timestamp_with_time_zone("received_at"))
                    .col(string_len_null("reference", 100))
                    .col(string_len_null("idempotency_key", 64))
                    .col(string_len_null("request_hash", 64))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("payments", "account_id")
                            .to("accounts", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_account("payments", "received_at"))
            .await?;
        manager
            .create_index(by_account("payments", "amount_e4"))
            .await?;
        manager.create_index(idempotency("payments")).await?;

        backfill_opening_balances(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["payments", "invoices", "ledger_entries"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// One `ADJUSTMENT` entry (reference `opening-balance`) per account with a non-zero
/// balance, posted when the account was opened.
async fn backfill_opening_balances(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, tenant_id, owner_id, currency, balance_e4, created_at FROM accounts \
             WHERE balance_e4 <> 0",
        ))
        .await?;
    for row in rows {
        let account: uuid::Uuid = row.try_get("", "id")?;
        let tenant: uuid::Uuid = row.try_get("", "tenant_id")?;
        let currency: String = row.try_get("", "currency")?;
        let balance: i64 = row.try_get("", "balance_e4")?;
        let opened: chrono::DateTime<chrono::Utc> = row.try_get("", "created_at")?;
        let insert = Query::insert()
            .into_table("ledger_entries")
            .columns([
                "id",
                "tenant_id",
                "account_id",
                "kind",
                "source",
                "amount_e4",
                "balance_after_e4",
                "currency",
                "posted_at",
                "reference",
                "description",
                "created_at",
            ])
            .values_panic([
                uuid::Uuid::now_v7().into(),
                tenant.into(),
                account.into(),
                "ADJUSTMENT".into(),
                "MANUAL".into(),
                balance.into(),
                balance.into(),
                currency.into(),
                opened.into(),
                "opening-balance".into(),
                "Opening balance".into(),
                opened.into(),
            ])
            .to_owned();
        manager.exec_stmt(insert).await?;
    }
    Ok(())
}
