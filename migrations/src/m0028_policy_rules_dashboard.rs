//! The seed policy rules of `dashboard`, for databases seeded before it: customers (and
//! the roles inheriting theirs) read their home page; support reads it without money.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0028_policy_rules_dashboard"
    }
}

/// `(role, object, action, effect)` for every tenant.
const ADDED: &[(&str, &str, &str, &str)] = &[
    ("customer_user", "Query.dashboard", "read", "allow"),
    ("customer_user", "Dashboard.*", "read", "allow"),
    ("customer_user", "DashboardPeriod.*", "read", "allow"),
    ("customer_user", "MoneyTotal.*", "read", "allow"),
    ("customer_user", "InvoiceSummary.*", "read", "allow"),
    ("customer_user", "UsageComparison.*", "read", "allow"),
    ("support_agent", "Query.dashboard", "read", "allow"),
    ("support_agent", "Dashboard.*", "read", "allow"),
    ("support_agent", "DashboardPeriod.*", "read", "allow"),
    ("support_agent", "UsageComparison.*", "read", "allow"),
    ("support_agent", "Dashboard.balances", "read", "deny"),
    ("support_agent", "Dashboard.openInvoices", "read", "deny"),
    ("support_agent", "Dashboard.overdueInvoices", "read", "deny"),
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
