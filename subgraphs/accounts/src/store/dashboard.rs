//! The dashboard's aggregates over the accounts a viewer may see: balances per currency,
//! open and overdue invoices, usage per metric in two periods. Each is one or two grouped
//! SQL statements whatever the number of accounts (the visible accounts are a subquery).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sea_orm::sea_query::{Expr, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use uuid::Uuid;

use portal_entities::accounts::{account, invoice, usage_daily_rollup, usage_rollup};
use portal_kit::{ApiError, ApiResult};

use super::visible_accounts;
use crate::domain::Viewer;
use crate::domain::series::{Bucket, whole_days};

/// A sum of money in one currency over `count` rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Total {
    /// ISO 4217 currency.
    pub currency: String,
    /// Sum, 10^-4 units.
    pub amount_e4: i64,
    /// Rows summed.
    pub count: i64,
}

/// Ids of the accounts `viewer` may see, as a subquery (`None`: no account).
fn visible_ids(tenant_id: Uuid, viewer: Viewer) -> Option<SelectStatement> {
    visible_accounts(tenant_id, viewer).map(|select| {
        select
            .select_only()
            .column(account::Column::Id)
            .into_query()
    })
}

/// Balances of the visible accounts that are not closed, per currency.
pub async fn balances(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    viewer: Viewer,
) -> ApiResult<Vec<Total>> {
    let Some(scoped) = visible_accounts(tenant_id, viewer) else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, i64, i64)> = scoped
        .select_only()
        .column(account::Column::Currency)
        .expr_as(
            Expr::cust("CAST(COALESCE(SUM(balance_e4), 0) AS BIGINT)"),
            "amount",
        )
        .expr_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .filter(account::Column::Status.ne("CLOSED"))
        .group_by(account::Column::Currency)
        .order_by_asc(account::Column::Currency)
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(totals(rows))
}

/// What is still owed on the visible accounts' open invoices, per currency: those not yet
/// due on `today` (`overdue = false`) or past due (`overdue = true`).
pub async fn open_invoices(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    viewer: Viewer,
    today: NaiveDate,
    overdue: bool,
) -> ApiResult<Vec<Total>> {
    let Some(ids) = visible_ids(tenant_id, viewer) else {
        return Ok(Vec::new());
    };
    let due = if overdue {
        invoice::Column::DueDate.lt(today)
    } else {
        invoice::Column::DueDate.gte(today)
    };
    let rows: Vec<(String, i64, i64)> = invoice::Entity::find()
        .select_only()
        .column(invoice::Column::Currency)
        .expr_as(
            Expr::cust("CAST(COALESCE(SUM(amount_e4 - paid_e4), 0) AS BIGINT)"),
            "amount",
        )
        .expr_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .filter(invoice::Column::TenantId.eq(tenant_id))
        .filter(invoice::Column::Status.eq("OPEN"))
        .filter(due)
        .filter(invoice::Column::AccountId.in_subquery(ids))
        .group_by(invoice::Column::Currency)
        .order_by_asc(invoice::Column::Currency)
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(totals(rows))
}

/// Metered quantity per metric on the visible accounts within `period`, by metric: the
/// whole UTC days inside it from the daily rollups, its ragged ends (a time zone's
/// midnight is rarely UTC's) from the quarter-hour rollups — two grouped statements, a
/// month costing ~30 rows per account and metric instead of ~3 000.
pub async fn usage_in(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    viewer: Viewer,
    period: Bucket,
) -> ApiResult<Vec<(String, i64)>> {
    let Some(ids) = visible_ids(tenant_id, viewer) else {
        return Ok(Vec::new());
    };
    let (head, days, tail) = whole_days(period.0, period.1);
    let sum = || Expr::cust("CAST(COALESCE(SUM(quantity_e4), 0) AS BIGINT)");
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    if days.0 < days.1 {
        use usage_daily_rollup::Column as C;
        let rows: Vec<(String, i64)> = usage_daily_rollup::Entity::find()
            .select_only()
            .column(C::Metric)
            .expr_as(sum(), "amount")
            .filter(C::TenantId.eq(tenant_id))
            .filter(C::AccountId.in_subquery(ids.clone()))
            .filter(C::BucketStart.gte(days.0))
            .filter(C::BucketStart.lt(days.1))
            .group_by(C::Metric)
            .into_tuple()
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        for (metric, amount) in rows {
            *totals.entry(metric).or_default() += amount;
        }
    }
    // One grouped select per ragged end, joined by UNION ALL: each is a range over
    // (tenant, account, time) that the index serves; an OR of the two ranges is not.
    let mut ends = [head, tail]
        .into_iter()
        .filter(|(lo, hi)| lo < hi)
        .map(|(lo, hi)| {
            use usage_rollup::Column as C;
            usage_rollup::Entity::find()
                .select_only()
                .column(C::Metric)
                .expr_as(sum(), "amount")
                .filter(C::TenantId.eq(tenant_id))
                .filter(C::AccountId.in_subquery(ids.clone()))
                .filter(C::BucketStart.gte(lo))
                .filter(C::BucketStart.lt(hi))
                .group_by(C::Metric)
                .into_query()
        });
    if let Some(mut union) = ends.next() {
        for other in ends {
            union.union(UnionType::All, other);
        }
        let statement = db.get_database_backend().build(&union);
        for row in db
            .query_all_raw(statement)
            .await
            .map_err(ApiError::from_db)?
        {
            let metric: String = row.try_get("", "metric").map_err(ApiError::from_db)?;
            let amount: i64 = row.try_get("", "amount").map_err(ApiError::from_db)?;
            *totals.entry(metric).or_default() += amount;
        }
    }
    Ok(totals.into_iter().collect())
}

/// Usage per metric of the visible accounts in `current` and in `previous`, by metric
/// (0 where a metric has none in one of them).
pub async fn usage_compared(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    viewer: Viewer,
    current: Bucket,
    previous: Bucket,
) -> ApiResult<Vec<(String, i64, i64)>> {
    let mut by_metric: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (metric, amount) in usage_in(db, tenant_id, viewer, current).await? {
        by_metric.entry(metric).or_default().0 = amount;
    }
    for (metric, amount) in usage_in(db, tenant_id, viewer, previous).await? {
        by_metric.entry(metric).or_default().1 = amount;
    }
    Ok(by_metric
        .into_iter()
        .map(|(metric, (current, previous))| (metric, current, previous))
        .collect())
}

fn totals(rows: Vec<(String, i64, i64)>) -> Vec<Total> {
    rows.into_iter()
        .map(|(currency, amount_e4, count)| Total {
            currency,
            amount_e4,
            count,
        })
        .collect()
}
