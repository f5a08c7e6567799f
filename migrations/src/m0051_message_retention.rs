//! Retention of messages: a tenant's rules (per thread status: delete or anonymize
//! messages older than N days), legal holds on accounts and threads that block both, and
//! the seed policy rules of the new fields.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0051_message_retention"
    }
}

const RULES: &[(&str, &str, &str)] = &[
    ("tenant_admin", "Query.messageRetentionRules", "read"),
    ("tenant_admin", "Query.messageRetentionPreview", "read"),
    ("tenant_admin", "Query.legalHolds", "read"),
    ("tenant_admin", "MessageRetentionRule.*", "read"),
    ("tenant_admin", "MessageRetentionPreview.*", "read"),
    ("tenant_admin", "RetainedThreadCount.*", "read"),
    ("tenant_admin", "RetainedAccountCount.*", "read"),
    ("tenant_admin", "LegalHold.*", "read"),
    ("tenant_admin", "Mutation.setMessageRetentionRule", "write"),
    (
        "tenant_admin",
        "Mutation.removeMessageRetentionRule",
        "write",
    ),
    ("tenant_admin", "Mutation.placeLegalHold", "write"),
    ("tenant_admin", "Mutation.releaseLegalHold", "write"),
    ("auditor", "Query.messageRetentionRules", "read"),
    ("auditor", "Query.legalHolds", "read"),
    ("auditor", "MessageRetentionRule.*", "read"),
    ("auditor", "LegalHold.*", "read"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("message_retention_rules")
                    .col(uuid("tenant_id"))
                    .col(string_len("thread_status", 16))
                    .col(string_len("action", 16))
                    .col(integer("older_than_days"))
                    .col(uuid("updated_by"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant_id").col("thread_status"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("legal_holds")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(string_len("target_type", 16))
                    .col(uuid("target_id"))
                    .col(text("reason"))
                    .col(uuid("placed_by"))
                    .col(timestamp_with_time_zone("placed_at"))
                    .col(uuid_null("released_by"))
                    .col(timestamp_with_time_zone_null("released_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("legal_holds", "target_id"))
            .await?;
        crate::seed_rules::add(manager, RULES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["legal_holds", "message_retention_rules"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
