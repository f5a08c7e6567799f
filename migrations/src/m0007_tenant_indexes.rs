//! Tenant access-path indexes for the reports, messages and integrations tables, and
//! uniqueness of an external id within an integration.
//!
//! The tenant's lists of integrations, webhook endpoints, threads and report definitions
//! are keyset scans `WHERE tenant_id = ? AND id > ? ORDER BY id`, served by a
//! `(tenant_id, id)` index. An external system's id names one record, so within one
//! integration it may be linked to at most one account (`linkExternalRef` answers
//! `CONFLICT` otherwise). Creating that unique index fails on a database that already
//! holds such duplicates; they must be resolved by hand first.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_tenant_indexes"
    }
}

/// Tables that get a `(tenant_id, id)` index.
const TENANT_ID_TABLES: [&str; 4] = [
    "integrations",
    "webhook_endpoints",
    "threads",
    "report_definitions",
];

/// One external id per integration.
const EXTERNAL_REFS_UNIQUE: &str = "ux_external_refs_integration_external";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TENANT_ID_TABLES {
            manager
                .create_index(crate::tenant_index(table, "id"))
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(EXTERNAL_REFS_UNIQUE)
                    .table("external_refs")
                    .col("integration_id")
                    .col("external_id")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(EXTERNAL_REFS_UNIQUE)
                    .table("external_refs")
                    .to_owned(),
            )
            .await?;
        for table in TENANT_ID_TABLES.into_iter().rev() {
            // The name `crate::tenant_index(table, "id")` gave the index.
            manager
                .drop_index(
                    Index::drop()
                        .name(format!("ix_{table}_tenant_id"))
                        .table(table)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
