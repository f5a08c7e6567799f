//! The seed policy rules of usage metering and the account time series, for databases
//! seeded before them: whoever reads an account reads its usage and balance history
//! (support staff not the balance history: it is money); billing admins and connectors
//! report usage.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0027_policy_rules_usage"
    }
}

/// `(role, object, action, effect)` for every tenant.
const ADDED: &[(&str, &str, &str, &str)] = &[
    ("customer_user", "TimeSeries.*", "read", "allow"),
    ("customer_user", "SeriesPoint.*", "read", "allow"),
    ("billing_admin", "Mutation.recordUsage", "write", "allow"),
    ("billing_admin", "UsageBatch.*", "read", "allow"),
    ("integrator", "TimeSeries.*", "read", "allow"),
    ("integrator", "SeriesPoint.*", "read", "allow"),
    ("integrator", "Mutation.recordUsage", "write", "allow"),
    ("integrator", "UsageBatch.*", "read", "allow"),
    ("support_agent", "TimeSeries.*", "read", "allow"),
    ("support_agent", "SeriesPoint.*", "read", "allow"),
    ("support_agent", "Account.balanceHistory", "read", "deny"),
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
