//! Policy rules of SOC 2 compliance reports: auditors ask for them, follow them and
//! download them (tenant admins inherit the auditor role).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0069_policy_rules_compliance_reports"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(
            manager,
            &[
                ("auditor", "Mutation.requestComplianceReport", "write"),
                ("auditor", "Query.complianceReport", "read"),
                ("auditor", "Query.complianceReports", "read"),
                ("auditor", "ComplianceReport.*", "read"),
                ("auditor", "ComplianceReportConnection.*", "read"),
                ("auditor", "ComplianceReportEdge.*", "read"),
                ("auditor", "ComplianceReportFile.*", "read"),
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules are data an admin may have edited since: left as they are.
        Ok(())
    }
}
