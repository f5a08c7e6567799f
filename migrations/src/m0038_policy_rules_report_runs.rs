//! The seed policy rules of report runs that run, for databases seeded before them:
//! customers (and the roles that inherit theirs) read runs field by field — their files
//! and queries included — but not the full failure detail, which tenant admins and
//! auditors read. The customers' former `ReportRun.*` rule is removed when it is still the
//! seed's (an administrator's own rules are left alone).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0038_policy_rules_report_runs"
    }
}

const RUN_FIELDS: &[&str] = &[
    "ReportRun.id",
    "ReportRun.status",
    "ReportRun.rowCount",
    "ReportRun.error",
    "ReportRun.createdAt",
    "ReportRun.startedAt",
    "ReportRun.finishedAt",
    "ReportRun.definition",
    "ReportRun.cause",
    "ReportRun.definitionVersion",
    "ReportRun.format",
    "ReportRun.bytes",
    "ReportRun.requestedBy",
    "ReportRun.runAs",
    "ReportRun.durationMs",
    "ReportRun.file",
    "ReportFile.*",
    "ReportQuery.*",
    "ReportDatasetStep.*",
    "ReportColumn.*",
    "ReportAggregate.*",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut rules: Vec<(&str, &str, &str, &str)> = RUN_FIELDS
            .iter()
            .map(|object| ("customer_user", *object, "read", "allow"))
            .collect();
        rules.push(("tenant_admin", "ReportRun.errorDetail", "read", "allow"));
        rules.push(("auditor", "ReportRun.errorDetail", "read", "allow"));
        crate::seed_rules::add_with_effect(manager, &rules).await?;
        let delete = Query::delete()
            .from_table("casbin_rule")
            .and_where(Expr::col("ptype").eq("p"))
            .and_where(Expr::col("v0").eq("customer_user"))
            .and_where(Expr::col("v1").eq("*"))
            .and_where(Expr::col("v2").eq("ReportRun.*"))
            .and_where(Expr::col("v3").eq("read"))
            .and_where(Expr::col("v4").eq("allow"))
            .to_owned();
        manager.exec_stmt(delete).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Policy rules are data an administrator may have changed since: left as they are.
        Ok(())
    }
}
