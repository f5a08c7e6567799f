//! Reports tables: report definitions and their runs.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_reports"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("report_definitions")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid_null("account_id"))
                    .col(uuid("owner_id"))
                    .col(string_len("name", 200))
                    .col(string_len("kind", 32))
                    .col(string_len("format", 16))
                    .col(string_len_null("schedule", 100))
                    .col(json("parameters"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("report_definitions", "account_id"))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("report_runs")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("definition_id"))
                    .col(uuid_null("requested_by"))
                    .col(string_len("status", 16))
                    .col(big_integer_null("row_count"))
                    .col(string_len_null("error", 500))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("report_runs", "definition_id")
                            .to("report_definitions", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("report_runs", "definition_id"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["report_runs", "report_definitions"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
