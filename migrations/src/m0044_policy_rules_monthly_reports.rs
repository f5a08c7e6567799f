//! The seed policy rule of the monthly documents, for databases seeded before them: tenant
//! admins switch their tenant's monthly statements and usage summary on and off.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0044_policy_rules_monthly_reports"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add_with_effect(
            manager,
            &[(
                "tenant_admin",
                "Mutation.setMonthlyReport",
                "write",
                "allow",
            )],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Policy rules are data an administrator may have changed since: left as they are.
        Ok(())
    }
}
