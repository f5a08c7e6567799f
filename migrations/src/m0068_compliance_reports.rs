//! SOC 2 compliance reports (`requestComplianceReport`): one row per requested report of a
//! tenant — its kind, period and format — written by a job into a stored zip (the report,
//! a signed integrity manifest, the published evidence keys).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0068_compliance_reports"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("compliance_reports")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(string_len("kind", 32))
                    .col(timestamp_with_time_zone("period_from"))
                    .col(timestamp_with_time_zone("period_to"))
                    .col(string_len("format", 8))
                    .col(uuid_null("requested_by"))
                    .col(string_len("status", 16))
                    .col(big_integer_null("row_count"))
                    .col(uuid_null("file_id"))
                    .col(text_null("failure"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("compliance_reports", "created_at"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("compliance_reports").to_owned())
            .await
    }
}
