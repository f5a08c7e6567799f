//! Migrations apply, roll back and re-apply on the test database's backend.

use portal_migrations::{Migrator, MigratorTrait};
use portal_tests::TestDb;
use sea_orm::ConnectionTrait;

/// How many migrations, counted from the last, roll back to before `name`.
fn applied_since(name: &str) -> u32 {
    let all = Migrator::migrations();
    let at = all
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no migration {name}"));
    u32::try_from(all.len() - at).unwrap_or(u32::MAX)
}

#[tokio::test]
async fn migrations_roll_back_and_apply_again() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    assert!(Migrator::get_pending_migrations(&db).await?.is_empty());
    Migrator::down(&db, None).await?;
    assert_eq!(
        Migrator::get_pending_migrations(&db).await?.len(),
        Migrator::migrations().len()
    );
    Migrator::up(&db, None).await?;
    assert!(Migrator::get_pending_migrations(&db).await?.is_empty());
    // The schema is usable after the round trip.
    db.execute_unprepared("SELECT count(*) FROM accounts")
        .await?;
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_its_directory_are_private_to_the_owner() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = std::env::temp_dir().join(format!("portal-perms-{}", uuid::Uuid::now_v7()));
    let path = root.join("data").join("portal.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = portal::connect_and_migrate(&url, 2).await?;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert_eq!(mode(&root.join("data")), 0o700);
    assert_eq!(mode(&path), 0o600);
    let wal = root.join("data").join("portal.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    db.close().await?;
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[tokio::test]
async fn a_database_seeded_before_the_new_rules_gets_them_on_upgrade() -> anyhow::Result<()> {
    use portal_entities::platform::casbin_rule;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    portal::policies::seed_if_empty(&db).await?;
    let shipped = casbin_rule::Entity::find().count(&db).await?;
    let grants = || {
        casbin_rule::Entity::find()
            .filter(casbin_rule::Column::V2.starts_with("grant:"))
            .count(&db)
    };
    assert!(grants().await? > 0);
    // What a 0.1.0 database looks like: seeded, without this release's rules (added by
    // the rule migrations from m0022 on).
    let since_0_1 = applied_since("m0022_policy_rules_0_2");
    Migrator::down(&db, Some(since_0_1)).await?;
    casbin_rule::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(casbin_rule::Column::V2.starts_with("grant:"))
                .add(casbin_rule::Column::V2.starts_with("Job"))
                .add(casbin_rule::Column::V2.starts_with("Subscription."))
                .add(casbin_rule::Column::V2.starts_with("LedgerEntry"))
                .add(casbin_rule::Column::V2.starts_with("Invoice"))
                .add(casbin_rule::Column::V2.starts_with("Payment"))
                .add(casbin_rule::Column::V2.starts_with("TimeSeries"))
                .add(casbin_rule::Column::V2.starts_with("SeriesPoint"))
                .add(casbin_rule::Column::V2.starts_with("UsageBatch"))
                .add(casbin_rule::Column::V2.starts_with("Dashboard"))
                .add(casbin_rule::Column::V2.starts_with("MoneyTotal"))
                .add(casbin_rule::Column::V2.starts_with("InvoiceSummary"))
                .add(casbin_rule::Column::V2.starts_with("UsageComparison"))
                .add(casbin_rule::Column::V2.starts_with("DashboardLayout"))
                .add(casbin_rule::Column::V2.starts_with("DashboardWidget"))
                .add(casbin_rule::Column::V2.starts_with("WidgetBinding"))
                .add(casbin_rule::Column::V2.starts_with("WidgetPlacement"))
                .add(casbin_rule::Column::V2.starts_with("GridCell"))
                .add(casbin_rule::Column::V2.ends_with("DashboardLayout"))
                .add(casbin_rule::Column::V2.ends_with("DashboardLayouts"))
                .add(casbin_rule::Column::V2.is_in([
                    "User.timeZone",
                    "Tenant.timeZone",
                    "Query.__schema",
                    "Query.__type",
                    "Mutation.addAccountMember",
                    "Mutation.removeAccountMember",
                    "Query.jobs",
                    "Query.job",
                    "Mutation.retryJob",
                    "Mutation.cancelJob",
                    "Query.invoice",
                    "Mutation.postLedgerEntry",
                    "Mutation.issueInvoice",
                    "Mutation.voidInvoice",
                    "Mutation.recordPayment",
                    "Account.ledgerEntries",
                    "Account.invoices",
                    "Account.payments",
                    "Account.balanceHistory",
                    "Mutation.recordUsage",
                    "Query.dashboard",
                ])),
        )
        .exec(&db)
        .await?;
    assert_eq!(grants().await?, 0);
    let before = portal::policies::revision(&db).await?;
    Migrator::up(&db, None).await?;
    assert_eq!(casbin_rule::Entity::find().count(&db).await?, shipped);
    assert!(portal::policies::revision(&db).await? > before);
    // Applying them to an up-to-date store adds nothing twice.
    Migrator::down(&db, Some(since_0_1)).await?;
    Migrator::up(&db, None).await?;
    assert_eq!(casbin_rule::Entity::find().count(&db).await?, shipped);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn accounts_opened_before_the_ledger_get_their_opening_balance_entry() -> anyhow::Result<()> {
    use portal_entities::accounts::{account, ledger_entry};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    portal::seed::seed(&db).await?;
    // Back to the schema before the ledger (its tables dropped), then up again.
    Migrator::down(&db, Some(applied_since("m0024_ledger"))).await?;
    Migrator::up(&db, None).await?;
    let accounts = account::Entity::find().all(&db).await?;
    assert!(accounts.iter().any(|a| a.balance_e4 == 0));
    for row in accounts {
        let entries = ledger_entry::Entity::find()
            .filter(ledger_entry::Column::AccountId.eq(row.id))
            .all(&db)
            .await?;
        if row.balance_e4 == 0 {
            assert!(entries.is_empty(), "{}", row.number);
            continue;
        }
        assert_eq!(entries.len(), 1, "{}", row.number);
        let opening = &entries[0];
        assert_eq!(opening.amount_e4, row.balance_e4);
        assert_eq!(opening.balance_after_e4, row.balance_e4);
        assert_eq!(opening.kind, "ADJUSTMENT");
        assert_eq!(opening.reference.as_deref(), Some("opening-balance"));
        assert_eq!(opening.tenant_id, row.tenant_id);
        assert_eq!(opening.currency, row.currency);
    }
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn usage_recorded_before_daily_rollups_is_summed_into_days() -> anyhow::Result<()> {
    use chrono::{DateTime, Utc};
    use portal_entities::accounts::{account, usage_daily_rollup, usage_rollup};
    use sea_orm::{EntityTrait, QueryOrder, Set};
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    portal::seed::seed(&db).await?;
    let accounts = account::Entity::find().all(&db).await?;
    let at = |text: &str| -> anyhow::Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
    };
    // Two quarter hours of one UTC day, one of the next, another metric, another account.
    let rows = [
        (0, "api.calls", "2026-11-30T00:00:00Z", 10, 1),
        (0, "api.calls", "2026-11-30T23:45:00Z", 20, 2),
        (0, "api.calls", "2026-12-01T00:00:00Z", 40, 4),
        (0, "storage.gb", "2026-11-30T12:00:00Z", 80, 8),
        (1, "api.calls", "2026-11-30T12:00:00Z", 160, 16),
    ];
    for (i, metric, bucket, quantity, events) in rows {
        usage_rollup::Entity::insert(usage_rollup::ActiveModel {
            tenant_id: Set(accounts[i].tenant_id),
            account_id: Set(accounts[i].id),
            metric: Set(metric.into()),
            bucket_start: Set(at(bucket)?),
            quantity_e4: Set(quantity),
            events: Set(events),
        })
        .exec(&db)
        .await?;
    }
    Migrator::down(&db, Some(applied_since("m0034_usage_daily_rollups"))).await?;
    Migrator::up(&db, None).await?;
    let days: Vec<(usize, String, DateTime<Utc>, i64, i64)> = usage_daily_rollup::Entity::find()
        .order_by_asc(usage_daily_rollup::Column::Metric)
        .order_by_asc(usage_daily_rollup::Column::BucketStart)
        .all(&db)
        .await?
        .into_iter()
        .map(|d| {
            let i = accounts
                .iter()
                .position(|a| a.id == d.account_id)
                .unwrap_or(99);
            (i, d.metric, d.bucket_start, d.quantity_e4, d.events)
        })
        .collect();
    let mut days = days;
    days.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    assert_eq!(
        days,
        vec![
            (0, "api.calls".into(), at("2026-11-30T00:00:00Z")?, 30, 3),
            (0, "api.calls".into(), at("2026-12-01T00:00:00Z")?, 40, 4),
            (0, "storage.gb".into(), at("2026-11-30T00:00:00Z")?, 80, 8),
            (1, "api.calls".into(), at("2026-11-30T00:00:00Z")?, 160, 16),
        ]
    );
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn export_files_made_before_dashboard_exports_keep_their_access_check() -> anyhow::Result<()>
{
    use chrono::Utc;
    use portal_entities::accounts::{account, account_export};
    use portal_entities::platform::file;
    use sea_orm::{EntityTrait, Set};
    use uuid::Uuid;
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    portal::seed::seed(&db).await?;
    let account = account::Entity::find()
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account"))?;
    Migrator::down(&db, Some(applied_since("m0036_dashboard_exports"))).await?;
    // An export and its file as m0032 stored them: the access selection inside
    // `accountExport`.
    let (export_id, file_id) = (Uuid::now_v7(), Uuid::now_v7());
    let export = |id: Uuid, account_id: Option<Uuid>| account_export::ActiveModel {
        id: Set(id),
        tenant_id: Set(account.tenant_id),
        account_id: Set(account_id),
        requested_by: Set(account.owner_id),
        dataset: Set("BALANCE".into()),
        format: Set("CSV".into()),
        parameters: Set(serde_json::json!({ "dataset": "BALANCE" })),
        status: Set("READY".into()),
        row_count: Set(Some(1)),
        file_id: Set(Some(file_id)),
        error: Set(None),
        created_at: Set(Utc::now()),
        finished_at: Set(Some(Utc::now())),
    };
    account_export::Entity::insert(export(export_id, Some(account.id)))
        .exec(&db)
        .await?;
    let old = "account { id number balance currency }";
    file::Entity::insert(file::ActiveModel {
        id: Set(file_id),
        tenant_id: Set(account.tenant_id),
        domain: Set("accounts".into()),
        owner_type: Set("AccountExport".into()),
        owner_id: Set(export_id),
        name: Set("x.csv".into()),
        content_type: Set("text/csv".into()),
        size_bytes: Set(1),
        sha256: Set("0".repeat(64)),
        row_count: Set(Some(1)),
        storage_key: Set("k".into()),
        access_selection: Set(Some(old.into())),
        created_by: Set(None),
        created_at: Set(Utc::now()),
        expires_at: Set(None),
        // Columns of later migrations: not there yet.
        key_version: sea_orm::ActiveValue::NotSet,
        name_sealed: sea_orm::ActiveValue::NotSet,
    })
    .exec(&db)
    .await?;
    Migrator::up(&db, None).await?;
    // Only the column this test is about: later migrations' columns come and go with it.
    let selection = |db: sea_orm::DatabaseConnection| async move {
        use sea_orm::QuerySelect;
        let found: Option<Option<String>> = file::Entity::find_by_id(file_id)
            .select_only()
            .column(file::Column::AccessSelection)
            .into_tuple()
            .one(&db)
            .await?;
        anyhow::Ok(found.flatten())
    };
    assert_eq!(
        selection(db.clone()).await?.as_deref(),
        Some("accountExport(id: $id) { account { id number balance currency } }")
    );
    // The export survived the rebuild; a KPI export (no account) can now be stored.
    let kept = account_export::Entity::find_by_id(export_id)
        .one(&db)
        .await?;
    assert_eq!(kept.and_then(|e| e.account_id), Some(account.id));
    account_export::Entity::insert(export(Uuid::now_v7(), None))
        .exec(&db)
        .await?;
    // Rolled back: the selection is as it was, the KPI export is gone.
    Migrator::down(&db, Some(applied_since("m0036_dashboard_exports"))).await?;
    assert_eq!(selection(db.clone()).await?.as_deref(), Some(old));
    let left: Vec<Uuid> = account_export::Entity::find()
        .all(&db)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![export_id]);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn events_recorded_before_the_sequence_are_numbered_in_id_order() -> anyhow::Result<()> {
    use portal_entities::platform::domain_event;
    use sea_orm::{EntityTrait, QueryOrder};
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    // Events recorded on the schema before the sequence, then the upgrade.
    Migrator::down(&db, Some(applied_since("m0054_event_sequence"))).await?;
    for _ in 0..5 {
        let mut insert = sea_orm::sea_query::Query::insert();
        insert
            .into_table(sea_orm::sea_query::Alias::new("domain_events"))
            .columns(
                [
                    "id",
                    "tenant_id",
                    "event_type",
                    "subject_type",
                    "subject_id",
                    "actor_kind",
                    "actor_id",
                    "schema_version",
                    "payload",
                    "occurred_at",
                ]
                .map(sea_orm::sea_query::Alias::new),
            )
            .values_panic([
                uuid::Uuid::now_v7().into(),
                Some(uuid::Uuid::now_v7()).into(),
                "account.updated".into(),
                "account".into(),
                Some(uuid::Uuid::now_v7()).into(),
                "system".into(),
                Option::<uuid::Uuid>::None.into(),
                1.into(),
                serde_json::json!({}).into(),
                chrono::Utc::now().into(),
            ]);
        db.execute(&insert).await?;
    }
    Migrator::up(&db, None).await?;
    let events = domain_event::Entity::find()
        .order_by_asc(domain_event::Column::Id)
        .all(&db)
        .await?;
    assert_eq!(events.len(), 5);
    let numbers: Vec<Option<i64>> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<Option<i64>> = (1..=i64::try_from(events.len())?).map(Some).collect();
    assert_eq!(numbers, expected);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
