//! Policy rules of tenant off-boarding: platform administrators off-board a tenant, follow
//! it, cancel it before its data is deleted and download what is handed over.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0071_policy_rules_tenant_offboarding"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(
            manager,
            &[
                ("platform_admin", "Mutation.offboardTenant", "write"),
                (
                    "platform_admin",
                    "Mutation.cancelTenantOffboarding",
                    "write",
                ),
                ("platform_admin", "Query.tenantOffboarding", "read"),
                ("platform_admin", "Query.tenantOffboardings", "read"),
                ("platform_admin", "TenantOffboarding.*", "read"),
                ("platform_admin", "TenantOffboardingConnection.*", "read"),
                ("platform_admin", "TenantOffboardingEdge.*", "read"),
                ("platform_admin", "TenantOffboardingFile.*", "read"),
                ("platform_admin", "AuditCheckpointSummary.*", "read"),
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules are data an admin may have edited since: left as they are.
        Ok(())
    }
}
