//! The seed policy rules added since 0.1.0, for databases seeded before them (a fresh
//! database gets them from `policies/*.csv` on first start, so this adds nothing there):
//! grants for the row rules, introspection for integrators and tenant admins, account
//! membership, background jobs and time zones. Rules an existing database already has are
//! left alone; the policy revision moves so every gateway reloads.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

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
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let count = |sql: String, values: Vec<Value>| {
            let statement = Statement::from_sql_and_values(backend, sql, values);
            async move {
                let row = db.query_one_raw(statement).await?;
                Ok::<i64, DbErr>(
                    row.map(|r| r.try_get_by_index::<i64>(0))
                        .transpose()?
                        .unwrap_or(0),
                )
            }
        };
        let seeded = count("SELECT COUNT(*) FROM casbin_rule".into(), Vec::new()).await?;
        if seeded == 0 {
            return Ok(());
        }
        let placeholder = |i: usize| match backend {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        };
        let mut added = 0;
        for (role, object, action) in ADDED {
            let exists = count(
                format!(
                    "SELECT COUNT(*) FROM casbin_rule WHERE ptype = 'p' AND v0 = {} AND v1 = '*' \
                     AND v2 = {} AND v3 = {}",
                    placeholder(1),
                    placeholder(2),
                    placeholder(3)
                ),
                vec![(*role).into(), (*object).into(), (*action).into()],
            )
            .await?;
            if exists > 0 {
                continue;
            }
            let insert = Query::insert()
                .into_table("casbin_rule")
                .columns(["id", "ptype", "v0", "v1", "v2", "v3", "v4", "v5"])
                .values_panic([
                    uuid::Uuid::now_v7().into(),
                    "p".into(),
                    (*role).into(),
                    "*".into(),
                    (*object).into(),
                    (*action).into(),
                    "allow".into(),
                    "".into(),
                ])
                .to_owned();
            manager.exec_stmt(insert).await?;
            added += 1;
        }
        if added > 0 {
            let revisions =
                count("SELECT COUNT(*) FROM policy_revisions".into(), Vec::new()).await?;
            if revisions == 0 {
                let first = Query::insert()
                    .into_table("policy_revisions")
                    .columns(["id", "revision", "updated_at"])
                    .values_panic([1.into(), 1_i64.into(), chrono::Utc::now().into()])
                    .to_owned();
                manager.exec_stmt(first).await?;
            } else {
                let bump = Query::update()
                    .table("policy_revisions")
                    .value("revision", Expr::col("revision").add(1))
                    .value("updated_at", chrono::Utc::now())
                    .to_owned();
                manager.exec_stmt(bump).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Policy rules are data an administrator may have changed since: left as they are.
        Ok(())
    }
}
