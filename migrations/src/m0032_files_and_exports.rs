//! Stored files and account data exports.
//!
//! `files`: one row per file kept in object storage (exports today; report files,
//! attachments and evidence packs later) — which domain and entity owns it, its tenant,
//! download name and type, size, SHA-256 and row count, where it is stored, the fields a
//! download must still be allowed to read (`access_selection`), and when it expires. `account_exports`: an export of an account's data (ledger, invoices, a
//! widget's series) in a format, produced in the request when small and by a job when
//! large.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0032_files_and_exports"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("files")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(string_len("domain", 32))
                    .col(string_len("owner_type", 64))
                    .col(uuid("owner_id"))
                    .col(string_len("name", 255))
                    .col(string_len("content_type", 128))
                    .col(big_integer("size_bytes"))
                    .col(string_len("sha256", 64))
                    .col(big_integer_null("row_count"))
                    .col(string_len("storage_key", 512))
                    .col(text_null("access_selection"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("files", "owner_id"))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_files_expires_at")
                    .table("files")
                    .col("expires_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("account_exports")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(uuid("requested_by"))
                    .col(string_len("dataset", 32))
                    .col(string_len("format", 8))
                    .col(json("parameters"))
                    .col(string_len("status", 16))
                    .col(big_integer_null("row_count"))
                    .col(uuid_null("file_id"))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("account_exports", "account_id"))
            .await?;
        manager
            .create_index(crate::tenant_index("account_exports", "requested_by"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["account_exports", "files"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
