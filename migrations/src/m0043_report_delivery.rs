//! Report delivery: recipients of a report's scheduled runs (users of the tenant, or
//! external addresses the owner vouched for where a tenant admin allowed them), the runs
//! produced for each user recipient (`report_runs.recipient_id`), each delivery, emails
//! with a stored file attached (`email_outbox.attachment_file_id`), and the seed policy
//! rules of all of it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0043_report_delivery"
    }
}

/// `(role, object, action, effect)` for every tenant.
const RULES: &[(&str, &str, &str, &str)] = &[
    // Owners manage the recipients of their reports and see where their runs went.
    // (`ReportDefinition.recipients` and `.externalDelivery` fall under `ReportDefinition.*`.)
    ("customer_user", "ReportRecipient.*", "read", "allow"),
    (
        "customer_user",
        "ExternalDeliveryConsent.*",
        "read",
        "allow",
    ),
    ("customer_user", "ReportRun.deliveries", "read", "allow"),
    ("customer_user", "ReportRun.recipient", "read", "allow"),
    ("customer_user", "ReportDelivery.*", "read", "allow"),
    (
        "customer_user",
        "Mutation.addReportRecipient",
        "write",
        "allow",
    ),
    (
        "customer_user",
        "Mutation.removeReportRecipient",
        "write",
        "allow",
    ),
    // Everyone signed in reads what was delivered to them.
    ("customer_user", "Query.reportDeliveries", "read", "allow"),
    (
        "customer_user",
        "ReportDeliveryConnection.*",
        "read",
        "allow",
    ),
    ("customer_user", "ReportDeliveryEdge.*", "read", "allow"),
    // Only tenant admins allow external delivery, report by report.
    (
        "tenant_admin",
        "Mutation.setExternalReportDelivery",
        "write",
        "allow",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("report_recipients")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("definition_id"))
                    .col(uuid_null("user_id"))
                    .col(string_len_null("email", 320))
                    .col(uuid_null("vouched_by"))
                    .col(uuid("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ux_report_recipients_user", "user_id"),
            ("ux_report_recipients_email", "email"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("report_recipients")
                        .col("definition_id")
                        .col(column)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("report_deliveries")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("definition_id"))
                    .col(uuid("run_id"))
                    .col(uuid("recipient_id"))
                    .col(uuid_null("user_id"))
                    .col(string_len_null("email", 320))
                    .col(string_len("via", 16))
                    .col(uuid("file_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("ix_report_deliveries_user", ["tenant_id", "user_id"]),
            ("ix_report_deliveries_run", ["run_id", "recipient_id"]),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("report_deliveries")
                        .col(columns[0])
                        .col(columns[1])
                        .to_owned(),
                )
                .await?;
        }
        for (table, column) in [
            (
                "report_definitions",
                uuid_null("external_delivery_allowed_by"),
            ),
            (
                "report_definitions",
                timestamp_with_time_zone_null("external_delivery_allowed_at"),
            ),
            ("report_runs", uuid_null("recipient_id")),
            ("email_outbox", uuid_null("attachment_file_id")),
        ] {
            manager
                .alter_table(Table::alter().table(table).add_column(column).to_owned())
                .await?;
        }
        crate::seed_rules::add_with_effect(manager, RULES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("email_outbox", "attachment_file_id"),
            ("report_runs", "recipient_id"),
            ("report_definitions", "external_delivery_allowed_at"),
            ("report_definitions", "external_delivery_allowed_by"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        for table in ["report_deliveries", "report_recipients"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
