//! Policy rules of the retention engine: auditors read the periods and the dry run;
//! tenant admins (who inherit the auditor role) set periods and sweep on demand.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0073_policy_rules_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(
            manager,
            &[
                ("auditor", "Query.retentionPeriods", "read"),
                ("auditor", "Query.retentionPreview", "read"),
                ("auditor", "RetentionPeriod.*", "read"),
                ("auditor", "RetentionPreviewItem.*", "read"),
                ("tenant_admin", "Mutation.setRetentionPeriod", "write"),
                ("tenant_admin", "Mutation.runRetentionSweep", "write"),
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules are data an admin may have edited since: left as they are.
        Ok(())
    }
}
