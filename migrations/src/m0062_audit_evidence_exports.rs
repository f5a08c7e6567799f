//! Evidence pack exports (`exportAuditEvidence`): one row per requested export of a
//! tenant's audit chain, written by a job into a stored file.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0062_audit_evidence_exports"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_evidence_exports")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid_null("requested_by"))
                    .col(string_len("status", 16))
                    .col(big_integer_null("sequence"))
                    .col(string_len_null("head_hash", 64))
                    .col(big_integer_null("events"))
                    .col(uuid_null("file_id"))
                    .col(text_null("failure"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("audit_evidence_exports", "created_at"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("audit_evidence_exports").to_owned())
            .await
    }
}
