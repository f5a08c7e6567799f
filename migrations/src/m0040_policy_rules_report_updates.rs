//! The seed policy rule of `reportRunUpdated`, for databases seeded before it: customers
//! (and the roles that inherit theirs) follow the runs of the reports they may read.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0040_policy_rules_report_updates"
    }
}

/// `(role, object, action, effect)` for every tenant.
const ADDED: &[(&str, &str, &str, &str)] = &[(
    "customer_user",
    "Subscription.reportRunUpdated",
    "read",
    "allow",
)];

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
