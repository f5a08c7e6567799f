//! Policy rules of data-subject requests: everyone signed in asks for their own data and
//! follows their own requests; tenant admins also file requests on a user's behalf and see
//! every request of the tenant (`grant:DataSubjectRequest.all`), and so do auditors (read
//! only). Confirming a request is the public link's: the token is the proof.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0065_policy_rules_data_subject_requests"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(
            manager,
            &[
                ("authenticated", "Mutation.requestDataExport", "write"),
                ("authenticated", "Query.dataSubjectRequest", "read"),
                ("authenticated", "Query.dataSubjectRequests", "read"),
                ("authenticated", "DataSubjectRequest.*", "read"),
                ("authenticated", "DataSubjectRequestConnection.*", "read"),
                ("authenticated", "DataSubjectRequestEdge.*", "read"),
                ("authenticated", "DataExportFile.*", "read"),
                ("authenticated", "FileDownload.*", "read"),
                ("public", "Mutation.verifyDataSubjectRequest", "write"),
                ("public", "DataSubjectRequestVerification.*", "read"),
                ("tenant_admin", "grant:DataSubjectRequest.onBehalf", "write"),
                ("auditor", "Query.dataSubjectRequest", "read"),
                ("auditor", "Query.dataSubjectRequests", "read"),
                ("auditor", "DataSubjectRequest.*", "read"),
                ("auditor", "DataSubjectRequestConnection.*", "read"),
                ("auditor", "DataSubjectRequestEdge.*", "read"),
                ("auditor", "grant:DataSubjectRequest.all", "read"),
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules are data an admin may have edited since: left as they are.
        Ok(())
    }
}
