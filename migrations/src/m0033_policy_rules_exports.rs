//! The seed policy rules of account data exports, for databases seeded before them:
//! customers (and the roles that inherit theirs: billing and tenant admins) export the
//! accounts they may see; support staff, who never see money, export nothing.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0033_policy_rules_exports"
    }
}

/// `(role, object, action, effect)` for every tenant.
const ADDED: &[(&str, &str, &str, &str)] = &[
    ("customer_user", "Query.accountExport", "read", "allow"),
    ("customer_user", "AccountExport.*", "read", "allow"),
    ("customer_user", "ExportFile.*", "read", "allow"),
    ("customer_user", "FileDownload.*", "read", "allow"),
    (
        "customer_user",
        "Mutation.exportAccountData",
        "write",
        "allow",
    ),
    (
        "customer_user",
        "Mutation.exportWidgetData",
        "write",
        "allow",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add_with_effect(manager, ADDED).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Policy rules are data an administrator may have changed since: left as they are.
        Ok(())
    }
}
