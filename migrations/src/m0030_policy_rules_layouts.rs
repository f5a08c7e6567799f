//! The seed policy rules of saved dashboard layouts, for databases seeded before them:
//! customers and support staff keep their own dashboards; tenant admins publish the
//! defaults per role.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0030_policy_rules_layouts"
    }
}

/// `(role, object, action, effect)` for every tenant.
const ADDED: &[(&str, &str, &str, &str)] = &[
    ("customer_user", "Query.dashboardLayouts", "read", "allow"),
    ("customer_user", "Query.dashboardLayout", "read", "allow"),
    (
        "customer_user",
        "Query.defaultDashboardLayout",
        "read",
        "allow",
    ),
    ("customer_user", "DashboardLayout.*", "read", "allow"),
    ("customer_user", "DashboardWidget.*", "read", "allow"),
    ("customer_user", "WidgetBinding.*", "read", "allow"),
    ("customer_user", "WidgetPlacement.*", "read", "allow"),
    ("customer_user", "GridCell.*", "read", "allow"),
    (
        "customer_user",
        "Mutation.createDashboardLayout",
        "write",
        "allow",
    ),
    (
        "customer_user",
        "Mutation.updateDashboardLayout",
        "write",
        "allow",
    ),
    (
        "customer_user",
        "Mutation.deleteDashboardLayout",
        "write",
        "allow",
    ),
    (
        "customer_user",
        "Mutation.resetDashboardLayout",
        "write",
        "allow",
    ),
    ("support_agent", "Query.dashboardLayouts", "read", "allow"),
    ("support_agent", "Query.dashboardLayout", "read", "allow"),
    (
        "support_agent",
        "Query.defaultDashboardLayout",
        "read",
        "allow",
    ),
    ("support_agent", "DashboardLayout.*", "read", "allow"),
    ("support_agent", "DashboardWidget.*", "read", "allow"),
    ("support_agent", "WidgetBinding.*", "read", "allow"),
    ("support_agent", "WidgetPlacement.*", "read", "allow"),
    ("support_agent", "GridCell.*", "read", "allow"),
    (
        "support_agent",
        "Mutation.createDashboardLayout",
        "write",
        "allow",
    ),
    (
        "support_agent",
        "Mutation.updateDashboardLayout",
        "write",
        "allow",
    ),
    (
        "support_agent",
        "Mutation.deleteDashboardLayout",
        "write",
        "allow",
    ),
    (
        "support_agent",
        "Mutation.resetDashboardLayout",
        "write",
        "allow",
    ),
    (
        "tenant_admin",
        "Query.publishedDashboardLayouts",
        "read",
        "allow",
    ),
    (
        "tenant_admin",
        "Mutation.publishDefaultDashboardLayout",
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
