//! Report schedules that run: the IANA time zone a definition's cron expression is read
//! in, and whether its schedule is paused. The schedule itself is a `job_schedules` row
//! (`report:<definition id>`) kept in step with the definition. And the seed policy rules
//! of report previews for databases seeded before them: customers (and the roles that
//! inherit theirs) preview reports — read as themselves, so with their own rights.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

/// `(role, object, action, effect)` for every tenant.
const PREVIEW_RULES: &[(&str, &str, &str, &str)] = &[
    ("customer_user", "Query.previewReport", "read", "allow"),
    ("customer_user", "ReportPreview.*", "read", "allow"),
    ("customer_user", "ReportPreviewColumn.*", "read", "allow"),
];

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0039_report_schedules"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            string_len("time_zone", 64).default("UTC").to_owned(),
            boolean("paused").default(false).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("report_definitions")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        crate::seed_rules::add_with_effect(manager, PREVIEW_RULES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["paused", "time_zone"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("report_definitions")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
