//! Integrations tables: CRM/billing connectors, webhook endpoints and the
//! references that link portal accounts to records in external systems.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_integrations"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("integrations")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(string_len("kind", 16))
                    .col(string_len("provider", 64))
                    .col(string_len("name", 200))
                    .col(string_len("status", 16))
                    .col(timestamp_with_time_zone_null("last_sync_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_endpoints")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(string_len("url", 2048))
                    .col(string_len("description", 500))
                    .col(json("event_types"))
                    .col(boolean("enabled"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("external_refs")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("integration_id"))
                    .col(uuid("account_id"))
                    .col(string_len("external_id", 200))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("external_refs", "integration_id")
                            .to("integrations", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("external_refs", "account_id"))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_external_refs_integration_account")
                    .table("external_refs")
                    .col("integration_id")
                    .col("account_id")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["external_refs", "webhook_endpoints", "integrations"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
