//! Data-subject requests (GDPR access and portability now, erasure next): who asked for
//! whom, the re-verification of the person's identity (a one-time link to their address),
//! the 30-day due date, the status, and the result (the archive, what each domain held).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0064_data_subject_requests"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("data_subject_requests")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("subject_id"))
                    .col(string_len("kind", 16))
                    .col(uuid_null("requested_by"))
                    .col(string_len("status", 24))
                    .col(string_len_null("verification_hash", 64))
                    .col(timestamp_with_time_zone_null("verification_expires_at"))
                    .col(timestamp_with_time_zone_null("verified_at"))
                    .col(timestamp_with_time_zone("due_at"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .col(uuid_null("file_id"))
                    .col(json_null("result"))
                    .col(text_null("failure"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("data_subject_requests", "subject_id"))
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_data_subject_requests_verification \
                 ON data_subject_requests (verification_hash) WHERE verification_hash IS NOT NULL",
            )
            .await?;
        // One open request of a kind per person, whatever races.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_data_subject_requests_open \
                 ON data_subject_requests (tenant_id, subject_id, kind) \
                 WHERE status IN ('AWAITING_VERIFICATION', 'QUEUED', 'RUNNING')",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("data_subject_requests").to_owned())
            .await
    }
}
