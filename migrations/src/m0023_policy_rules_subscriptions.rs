//! The seed policy rules of the first subscription fields (`accountUpdated`,
//! `messagePosted`, `threadUpdated`, `jobUpdated`), for databases seeded before them: the
//! roles that may read the object may follow it.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0023_policy_rules_subscriptions"
    }
}

/// `(role, object, action)`, all allow rules for every tenant.
const ADDED: &[(&str, &str, &str)] = &[
    ("customer_user", "Subscription.accountUpdated", "read"),
    ("customer_user", "Subscription.messagePosted", "read"),
    ("customer_user", "Subscription.threadUpdated", "read"),
    ("support_agent", "Subscription.accountUpdated", "read"),
    ("support_agent", "Subscription.messagePosted", "read"),
    ("support_agent", "Subscription.threadUpdated", "read"),
    ("integrator", "Subscription.accountUpdated", "read"),
    ("tenant_admin", "Subscription.jobUpdated", "read"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on every backend: processes upgrading one SQLite file at once never
    /// insert a rule twice.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(manager, ADDED).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Policy rules are data an administrator may have changed since: left as they are.
        Ok(())
    }
}
