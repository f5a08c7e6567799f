//! Saved dashboard layouts: a user's own (`owner_id`), or a tenant's default for a role
//! (`role`, published by tenant admins). Widgets are one JSON document, validated by the
//! accounts subgraph; `version` is the optimistic-concurrency counter.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0029_dashboard_layouts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("dashboard_layouts")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid_null("owner_id"))
                    .col(string_len_null("role", 64))
                    .col(string_len("name", 100))
                    .col(json("widgets"))
                    .col(integer("version"))
                    .col(uuid_null("reset_from"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("dashboard_layouts", "owner_id"))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_dashboard_layouts_tenant_role")
                    .table("dashboard_layouts")
                    .col("tenant_id")
                    .col("role")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("dashboard_layouts").to_owned())
            .await
    }
}
