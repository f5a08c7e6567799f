//! The seed policy rules added since 0.1.0, for databases seeded before them (a fresh
//! database gets them from `policies/*.csv` on first start, so this adds nothing there):
//! grants for the row rules, introspection for integrators and tenant admins, account
//! membership, background jobs and time zones. Rules an existing database already has are
//! left alone; the policy revision moves so every gateway reloads.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0022_policy_rules_0_2"
    }
}

/// `(role, object, action)`, all allow rules for every tenant.
const ADDED: &[(&str, &str, &str)] = &[
    ("integrator", "Query.__schema", "read"),
    ("integrator", "Query.__type", "read"),
    ("integrator", "grant:Account.all", "read"),
    ("tenant_admin", "Query.__schema", "read"),
    ("tenant_admin", "Query.__type", "read"),
    ("tenant_admin", "grant:Thread.all", "read"),
    ("tenant_admin", "Mutation.addAccountMember", "write"),
    ("tenant_admin", "Mutation.removeAccountMember", "write"),
    ("tenant_admin", "Query.jobs", "read"),
    ("tenant_admin", "Query.job", "read"),
    ("tenant_admin", "Job.*", "read"),
    ("tenant_admin", "JobConnection.*", "read"),
    ("tenant_admin", "JobEdge.*", "read"),
    ("tenant_admin", "Mutation.retryJob", "write"),
    ("tenant_admin", "Mutation.cancelJob", "write"),
    ("support_agent", "grant:Thread.all", "read"),
    ("support_agent", "grant:Account.all", "read"),
    ("billing_admin", "grant:Account.all", "read"),
    ("billing_admin", "grant:ReportDefinition.all", "read"),
    ("platform_admin", "grant:Policy.allTenants", "write"),
    ("authenticated", "User.timeZone", "read"),
    ("authenticated", "Tenant.timeZone", "read"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on every backend (sea-orm-migration uses one only on PostgreSQL by
    /// default): processes upgrading one SQLite file at once never insert a rule twice.
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
