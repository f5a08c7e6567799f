//! Daily usage rollups (`usage_daily_rollups`): the events of one metric of one account in
//! one UTC day, summed — kept current with the quarter-hour rollups by every usage batch.
//! Long periods (the dashboard's this month and last) read whole days from here and only
//! their ragged ends from the quarter hours (every time zone's offset is a whole number of
//! quarter hours). Existing quarter-hour rollups are summed into days here, one account at
//! a time.

use std::collections::BTreeMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement, Value};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0034_usage_daily_rollups"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("usage_daily_rollups")
                    .col(uuid("tenant_id"))
                    .col(uuid("account_id"))
                    .col(string_len("metric", 64))
                    // UTC midnight starting the day the events fell in.
                    .col(timestamp_with_time_zone("bucket_start"))
                    .col(big_integer("quantity_e4"))
                    .col(big_integer("events"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("account_id")
                            .col("metric")
                            .col("bucket_start"),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let accounts = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT DISTINCT tenant_id, account_id FROM usage_rollups",
            ))
            .await?;
        let placeholder = |i: usize| match backend {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        };
        for account in accounts {
            let tenant: uuid::Uuid = account.try_get("", "tenant_id")?;
            let id: uuid::Uuid = account.try_get("", "account_id")?;
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT metric, bucket_start, quantity_e4, events FROM usage_rollups \
                         WHERE tenant_id = {} AND account_id = {}",
                        placeholder(1),
                        placeholder(2)
                    ),
                    [Value::from(tenant), Value::from(id)],
                ))
                .await?;
            let mut days: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
            for row in rows {
                let metric: String = row.try_get("", "metric")?;
                let at: chrono::DateTime<chrono::Utc> = row.try_get("", "bucket_start")?;
                let quantity: i64 = row.try_get("", "quantity_e4")?;
                let events: i64 = row.try_get("", "events")?;
                let day = at.timestamp() - at.timestamp().rem_euclid(86_400);
                let slot = days.entry((metric, day)).or_default();
                slot.0 += quantity;
                slot.1 += events;
            }
            for ((metric, day), (quantity, events)) in days {
                let start = chrono::DateTime::from_timestamp(day, 0).unwrap_or_default();
                let insert = Query::insert()
                    .into_table("usage_daily_rollups")
                    .columns([
                        "tenant_id",
                        "account_id",
                        "metric",
                        "bucket_start",
                        "quantity_e4",
                        "events",
                    ])
                    .values_panic([
                        tenant.into(),
                        id.into(),
                        metric.into(),
                        start.into(),
                        quantity.into(),
                        events.into(),
                    ])
                    .to_owned();
                manager.exec_stmt(insert).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("usage_daily_rollups").to_owned())
            .await
    }
}
