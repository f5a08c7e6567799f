//! The one job runner's tables: `jobs` (deferred work, claimed with leases, retried with
//! backoff, dead-lettered) and `job_schedules` (cron schedules in IANA time zones).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0020_jobs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("jobs")
                    .col(pk_uuid("id"))
                    .col(uuid_null("tenant_id"))
                    .col(string_len("kind", 64))
                    .col(json("payload"))
                    .col(json_null("principal"))
                    .col(string_len("state", 16))
                    .col(integer("attempts"))
                    .col(integer("max_attempts"))
                    .col(timestamp_with_time_zone("run_at"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(string_len_null("worker", 64))
                    .col(string_len_null("idempotency_key", 200))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_jobs_state_run_at")
                    .table("jobs")
                    .col("state")
                    .col("run_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_jobs_kind_idempotency_key")
                    .table("jobs")
                    .col("kind")
                    .col("idempotency_key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("jobs", "created_at"))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("job_schedules")
                    .col(string_len("name", 128).primary_key())
                    .col(uuid_null("tenant_id"))
                    .col(string_len("kind", 64))
                    .col(json("payload"))
                    .col(json_null("principal"))
                    .col(string_len("cron", 128))
                    .col(string_len("time_zone", 64))
                    .col(boolean("enabled"))
                    .col(timestamp_with_time_zone("next_run_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("job_schedules").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("jobs").to_owned())
            .await
    }
}
