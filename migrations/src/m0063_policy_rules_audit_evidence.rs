//! Policy rules of evidence pack exports: auditors (and tenant admins, who inherit the
//! auditor role) request and download their tenant's evidence pack — it is a read of the
//! audit log, in a form an outside auditor can verify.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0063_policy_rules_audit_evidence"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(
            manager,
            &[
                ("auditor", "Mutation.exportAuditEvidence", "write"),
                ("auditor", "Query.auditEvidenceExport", "read"),
                ("auditor", "Query.auditEvidenceExports", "read"),
                ("auditor", "AuditEvidenceExport.*", "read"),
                ("auditor", "AuditEvidenceExportConnection.*", "read"),
                ("auditor", "AuditEvidenceExportEdge.*", "read"),
                ("auditor", "EvidencePackFile.*", "read"),
                ("auditor", "FileDownload.*", "read"),
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules are data an admin may have edited since: left as they are.
        Ok(())
    }
}
