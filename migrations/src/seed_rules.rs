//! Adding seed policy rules to databases seeded before them (the migrations named
//! `policy_rules_*`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

/// Adds the allow rules `rules` (`(role, object, action)`, every tenant) that a seeded
/// database lacks, and moves the policy revision when it added any. A database not seeded
/// yet gets them from `policies/*.csv` on first start: nothing to do.
pub async fn add(manager: &SchemaManager<'_>, rules: &[(&str, &str, &str)]) -> Result<(), DbErr> {
    let allows: Vec<_> = rules
        .iter()
        .map(|(role, object, action)| (*role, *object, *action, "allow"))
        .collect();
    add_with_effect(manager, &allows).await
}

/// [`add`] for rules with an effect (`(role, object, action, "allow" | "deny")`).
pub async fn add_with_effect(
    manager: &SchemaManager<'_>,
    rules: &[(&str, &str, &str, &str)],
) -> Result<(), DbErr> {
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
    for (role, object, action, effect) in rules {
        let exists = count(
            format!(
                "SELECT COUNT(*) FROM casbin_rule WHERE ptype = 'p' AND v0 = {} AND v1 = '*' \
                 AND v2 = {} AND v3 = {} AND v4 = {}",
                placeholder(1),
                placeholder(2),
                placeholder(3),
                placeholder(4)
            ),
            vec![
                (*role).into(),
                (*object).into(),
                (*action).into(),
                (*effect).into(),
            ],
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
                (*effect).into(),
                "".into(),
            ])
            .to_owned();
        manager.exec_stmt(insert).await?;
        added += 1;
    }
    if added > 0 {
        let revisions = count("SELECT COUNT(*) FROM policy_revisions".into(), Vec::new()).await?;
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
