//! The seed policy rules of reports' access log, for databases seeded before them: tenant
//! admins and auditors read who previewed, ran, viewed and downloaded a report.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0041_policy_rules_report_access_log"
    }
}

const OBJECTS: [&str; 4] = [
    "Query.reportAccessLog",
    "ReportAccessEntry.*",
    "ReportAccessEntryConnection.*",
    "ReportAccessEntryEdge.*",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let rules: Vec<(&str, &str, &str, &str)> = ["tenant_admin", "auditor"]
            .into_iter()
            .flat_map(|role| OBJECTS.map(|object| (role, object, "read", "allow")))
            .collect();
        crate::seed_rules::add_with_effect(manager, &rules).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Policy rules are data an administrator may have changed since: left as they are.
        Ok(())
    }
}
