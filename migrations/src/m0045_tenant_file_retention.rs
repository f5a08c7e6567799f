//! Per-tenant file retention: how many days a tenant's stored files (exports, report files)
//! are kept (`NULL`: the platform's default), and the seed policy rule that lets every
//! signed-in user read it (report runs read it as whoever they run as).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0045_tenant_file_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("tenants")
                    .add_column(integer_null("file_retention_days"))
                    .to_owned(),
            )
            .await?;
        crate::seed_rules::add_with_effect(
            manager,
            &[("authenticated", "Tenant.fileRetentionDays", "read", "allow")],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("tenants")
                    .drop_column("file_retention_days")
                    .to_owned(),
            )
            .await
    }
}
