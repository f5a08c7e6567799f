//! The transactional email outbox (bodies sealed with the data key until delivered) and
//! single-use password reset / invitation tokens (stored as hashes).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0013_outbox_and_resets"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("email_outbox")
                    .col(pk_uuid("id"))
                    .col(uuid_null("tenant_id"))
                    .col(string_len("recipient", 320))
                    .col(string_len("subject", 200))
                    .col(text("body_sealed"))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .col(string_len_null("last_error", 500))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_email_outbox_due")
                    .table("email_outbox")
                    .col("sent_at")
                    .col("next_attempt_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("password_reset_tokens")
                    .col(string_len("token_hash", 64).primary_key())
                    .col(uuid("user_id"))
                    .col(uuid("tenant_id"))
                    .col(string_len("purpose", 16))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("password_reset_tokens", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_password_reset_tokens_user")
                    .table("password_reset_tokens")
                    .col("user_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["password_reset_tokens", "email_outbox"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
