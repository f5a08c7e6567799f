//! Secure messaging, first part: per-tenant data keys for envelope encryption, sealed
//! thread subjects and message bodies, and the thread behaviour of a support channel
//! (assignment, waiting/resolved statuses, replies, edit history, tombstones, read state).
//!
//! Plaintext already stored moves to nullable `legacy_*` columns (a migration cannot
//! encrypt: it has no key); the messages subgraph's reseal job encrypts those rows and
//! clears the plaintext, and reads them meanwhile.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

/// Seed rules of the new fields: reading participants and edit history, deleting one's
/// messages and marking threads read for customers and support; assigning threads for
/// support and tenant admins; the tenant's data keys for tenant admins.
const RULES: &[(&str, &str, &str)] = &[
    ("customer_user", "ThreadParticipant.*", "read"),
    ("customer_user", "MessageEdit.*", "read"),
    ("customer_user", "Mutation.deleteMessage", "write"),
    ("customer_user", "Mutation.markThreadRead", "write"),
    ("support_agent", "ThreadParticipant.*", "read"),
    ("support_agent", "MessageEdit.*", "read"),
    ("support_agent", "Mutation.deleteMessage", "write"),
    ("support_agent", "Mutation.markThreadRead", "write"),
    ("support_agent", "Mutation.assignThread", "write"),
    ("tenant_admin", "Mutation.assignThread", "write"),
    ("tenant_admin", "Query.tenantDataKeys", "read"),
    ("tenant_admin", "TenantDataKey.*", "read"),
    ("tenant_admin", "Mutation.rotateTenantDataKey", "write"),
];

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0046_secure_messages"
    }
}

/// Moves the `NOT NULL` text column `from` of `table` to a nullable `to`, keeping its
/// values (portable: SQLite cannot drop `NOT NULL` in place).
async fn make_legacy(
    manager: &SchemaManager<'_>,
    table: &'static str,
    from: &'static str,
    to: &'static str,
) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(text_null(to))
                .to_owned(),
        )
        .await?;
    let db = manager.get_connection();
    db.execute_unprepared(&format!("UPDATE {table} SET {to} = {from}"))
        .await?;
    db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {from}"))
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenant_keys")
                    .col(uuid("tenant_id"))
                    .col(integer("version"))
                    .col(string_len("provider", 32))
                    .col(text_null("wrapped"))
                    .col(string_len("state", 16))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("retired_at"))
                    .col(timestamp_with_time_zone_null("destroyed_at"))
                    .primary_key(Index::create().col("tenant_id").col("version"))
                    .to_owned(),
            )
            .await?;

        make_legacy(manager, "threads", "subject", "legacy_subject").await?;
        for column in [
            blob_null("subject_sealed"),
            integer_null("key_version"),
            uuid_null("assignee_id"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("threads")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }

        for column in [
            timestamp_with_time_zone_null("last_read_at"),
            string_len("kind", 16).default("CUSTOMER").to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("thread_participants")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }

        make_legacy(manager, "messages", "body", "legacy_body").await?;
        for column in [
            blob_null("body_sealed"),
            integer_null("key_version"),
            uuid_null("reply_to_id"),
            timestamp_with_time_zone_null("deleted_at"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("messages")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_messages_tenant_key_version")
                    .table("messages")
                    .col("tenant_id")
                    .col("key_version")
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("message_edits")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("message_id"))
                    .col(blob_null("body_sealed"))
                    .col(integer_null("key_version"))
                    .col(timestamp_with_time_zone("replaced_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("message_edits", "message_id")
                            .to("messages", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("message_edits", "message_id"))
            .await?;
        crate::seed_rules::add(manager, RULES).await
    }

    /// Back to plaintext columns: what was sealed cannot be opened here (no key), so
    /// sealed subjects and bodies come back empty.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["message_edits", "tenant_keys"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ix_messages_tenant_key_version")
                    .table("messages")
                    .to_owned(),
            )
            .await?;
        let drops: [(&str, &[&str]); 3] = [
            ("threads", &["subject_sealed", "key_version", "assignee_id"]),
            ("thread_participants", &["last_read_at", "kind"]),
            (
                "messages",
                &["body_sealed", "key_version", "reply_to_id", "deleted_at"],
            ),
        ];
        for (table, columns) in drops {
            for column in columns {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table)
                            .drop_column(Alias::new(*column))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        for (table, plain, legacy) in [
            ("threads", "subject", "legacy_subject"),
            ("messages", "body", "legacy_body"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(text(plain).default(""))
                        .to_owned(),
                )
                .await?;
            let db = manager.get_connection();
            db.execute_unprepared(&format!(
                "UPDATE {table} SET {plain} = COALESCE({legacy}, '')"
            ))
            .await?;
            db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {legacy}"))
                .await?;
        }
        Ok(())
    }
}
