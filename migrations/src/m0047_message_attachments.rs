//! Message attachments: uploads (declared, received, scanned), the tenant's messaging
//! settings (attachment size limit), files that are sealed with a tenant key (content in
//! chunks, name), and the seed policy rules of the new fields.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0047_message_attachments"
    }
}

const RULES: &[(&str, &str, &str)] = &[
    ("customer_user", "Mutation.createAttachmentUpload", "write"),
    ("customer_user", "Query.attachment", "read"),
    ("customer_user", "Attachment.*", "read"),
    ("customer_user", "AttachmentUpload.*", "read"),
    ("customer_user", "Query.messagingSettings", "read"),
    ("customer_user", "MessagingSettings.*", "read"),
    ("support_agent", "Mutation.createAttachmentUpload", "write"),
    ("support_agent", "Query.attachment", "read"),
    ("support_agent", "Attachment.*", "read"),
    ("support_agent", "AttachmentUpload.*", "read"),
    ("support_agent", "Query.messagingSettings", "read"),
    ("support_agent", "MessagingSettings.*", "read"),
    ("tenant_admin", "Mutation.updateMessagingSettings", "write"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("message_attachments")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("thread_id"))
                    .col(uuid_null("message_id"))
                    .col(uuid("uploaded_by"))
                    .col(blob("name_sealed"))
                    .col(integer("key_version"))
                    .col(big_integer("max_bytes"))
                    .col(string_len("state", 16))
                    .col(string_len_null("content_type", 128))
                    .col(big_integer_null("size_bytes"))
                    .col(string_len_null("sha256", 64))
                    .col(string_len_null("storage_key", 255))
                    .col(text_null("scan_detail"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("upload_expires_at"))
                    .col(timestamp_with_time_zone_null("uploaded_at"))
                    .col(timestamp_with_time_zone_null("scanned_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("message_attachments", "thread_id")
                            .to("threads", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for column in ["thread_id", "message_id"] {
            manager
                .create_index(crate::tenant_index("message_attachments", column))
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("messaging_settings")
                    .col(pk_uuid("tenant_id"))
                    .col(big_integer("attachment_max_bytes"))
                    .col(uuid_null("updated_by"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        for column in [integer_null("key_version"), blob_null("name_sealed")] {
            manager
                .alter_table(Table::alter().table("files").add_column(column).to_owned())
                .await?;
        }
        crate::seed_rules::add(manager, RULES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["key_version", "name_sealed"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("files")
                        .drop_column(Alias::new(column))
                        .to_owned(),
                )
                .await?;
        }
        for table in ["messaging_settings", "message_attachments"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
