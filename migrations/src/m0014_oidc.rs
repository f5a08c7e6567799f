//! Single sign-on: OpenID Connect providers per tenant (client secret sealed with the data
//! key, group → role mapping), pending logins (state, nonce, PKCE verifier) and the link
//! between a provider's subject and a portal user.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0014_oidc"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("oidc_providers")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(string_len("name", 64))
                    .col(string_len("issuer", 500))
                    .col(string_len("client_id", 255))
                    .col(text("client_secret_sealed"))
                    .col(string_len("scopes", 500))
                    .col(string_len("groups_claim", 64))
                    .col(text("group_roles"))
                    .col(text("default_roles"))
                    .col(boolean("enabled"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("oidc_providers", "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_oidc_providers_tenant_name")
                    .table("oidc_providers")
                    .col("tenant_id")
                    .col("name")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("oidc_logins")
                    .col(string_len("state_hash", 64).primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("provider_id"))
                    .col(string_len("nonce", 64))
                    .col(text("code_verifier_sealed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("oidc_logins", "provider_id")
                            .to("oidc_providers", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("user_identities")
                    .col(uuid("provider_id"))
                    .col(string_len("subject", 255))
                    .col(uuid("user_id"))
                    .col(uuid("tenant_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("provider_id").col("subject"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("user_identities", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("user_identities", "provider_id")
                            .to("oidc_providers", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["user_identities", "oidc_logins", "oidc_providers"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
