//! `Query.dashboard`: the KPIs of a portal home page for the signed-in user, over the
//! accounts the user may see. `Dashboard` is an entity keyed by the user's id, so other
//! subgraphs add their own KPIs to it (unread messages, last report run, integration
//! health) and one query through the gateway fetches them all. Each KPI here is one
//! grouped SQL statement, whatever the number of accounts.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use portal_kit::context::{actor, db, tenant as tenant_of};
use portal_kit::pagination::PageRequest;
use portal_kit::{ApiResult, input};

use super::types::{Account, AccountConnection, viewer};
use crate::domain::Viewer;
use crate::domain::amount_from_e4;
use crate::domain::series::{Bucket, this_and_last_month};
use crate::store::{self, dashboard as kpis};

/// A sum of money in one currency.
#[derive(SimpleObject, Clone)]
pub struct MoneyTotal {
    /// ISO 4217 currency.
    pub currency: String,
    /// The sum.
    pub amount: Decimal,
    /// How many accounts or invoices it sums.
    pub count: i32,
}

/// Invoices summed per currency.
#[derive(SimpleObject, Clone)]
pub struct InvoiceSummary {
    /// Invoices counted.
    pub count: i32,
    /// What is still owed on them, per currency.
    pub amount_due: Vec<MoneyTotal>,
}

/// One metric's usage this period and the period before.
#[derive(SimpleObject, Clone)]
pub struct UsageComparison {
    /// Metric name.
    pub metric: String,
    /// Usage in the current period (this calendar month, so far).
    pub current: Decimal,
    /// Usage in the previous period (the whole previous calendar month).
    pub previous: Decimal,
}

/// A period of the dashboard: `[start, end)`.
#[derive(SimpleObject, Clone)]
pub struct DashboardPeriod {
    /// First instant (local midnight of the month's first day).
    pub start: DateTime<Utc>,
    /// First instant after it.
    pub end: DateTime<Utc>,
}

/// The signed-in user's portal home page.
pub struct Dashboard {
    user: Uuid,
    viewer: Viewer,
    time_zone: String,
    current: Bucket,
    previous: Bucket,
}

impl Dashboard {
    /// The dashboard of the caller, whose id must be `user`; periods cut in `time_zone`.
    pub fn of_caller(ctx: &Context<'_>, user: Uuid, time_zone: &str) -> ApiResult<Option<Self>> {
        if actor(ctx).id != Some(user) {
            return Ok(None);
        }
        let zone = input::zone("timeZone", time_zone)?;
        let (current, previous) = this_and_last_month(Utc::now(), zone);
        Ok(Some(Self {
            user,
            viewer: viewer(ctx),
            time_zone: zone.name().to_owned(),
            current,
            previous,
        }))
    }
}

fn money(totals: Vec<kpis::Total>) -> Vec<MoneyTotal> {
    totals
        .into_iter()
        .map(|total| MoneyTotal {
            currency: total.currency,
            amount: amount_from_e4(total.amount_e4),
            count: i32::try_from(total.count).unwrap_or(i32::MAX),
        })
        .collect()
}

fn summary(totals: Vec<kpis::Total>) -> InvoiceSummary {
    let count = totals.iter().map(|t| t.count).sum::<i64>();
    InvoiceSummary {
        count: i32::try_from(count).unwrap_or(i32::MAX),
        amount_due: money(totals),
    }
}

#[Object]
impl Dashboard {
    /// The signed-in user's id (with `timeZone`, the key other subgraphs extend the
    /// dashboard by).
    async fn id(&self) -> ID {
        ID(self.user.to_string())
    }

    /// IANA time zone the periods are cut in.
    async fn time_zone(&self) -> &str {
        &self.time_zone
    }

    /// This calendar month in the time zone.
    async fn current_period(&self) -> DashboardPeriod {
        DashboardPeriod {
            start: self.current.0,
            end: self.current.1,
        }
    }

    /// The calendar month before it.
    async fn previous_period(&self) -> DashboardPeriod {
        DashboardPeriod {
            start: self.previous.0,
            end: self.previous.1,
        }
    }

    /// The accounts the user may see, oldest first (each with its balance, members,
    /// ledger …).
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AccountConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = store::list_accounts(db(ctx)?, tenant_of(ctx)?, self.viewer, None, page).await?;
        Ok(rows.map(Account::from).into())
    }

    /// Balances of those accounts (closed ones left out), summed per currency. Null
    /// (with `FORBIDDEN`) for roles that may not see money.
    async fn balances(&self, ctx: &Context<'_>) -> ApiResult<Option<Vec<MoneyTotal>>> {
        let totals = kpis::balances(db(ctx)?, tenant_of(ctx)?, self.viewer).await?;
        Ok(Some(money(totals)))
    }

    /// Open invoices of those accounts not yet due (UTC day), and what is owed on them.
    async fn open_invoices(&self, ctx: &Context<'_>) -> ApiResult<Option<InvoiceSummary>> {
        let today = Utc::now().date_naive();
        let totals = kpis::open_invoices(db(ctx)?, tenant_of(ctx)?, self.viewer, today, false);
        Ok(Some(summary(totals.await?)))
    }

    /// Open invoices of those accounts past their due date, and what is owed on them.
    async fn overdue_invoices(&self, ctx: &Context<'_>) -> ApiResult<Option<InvoiceSummary>> {
        let today = Utc::now().date_naive();
        let totals = kpis::open_invoices(db(ctx)?, tenant_of(ctx)?, self.viewer, today, true);
        Ok(Some(summary(totals.await?)))
    }

    /// Usage of those accounts per metric: this calendar month so far and the whole
    /// month before, in the time zone.
    async fn usage(&self, ctx: &Context<'_>) -> ApiResult<Vec<UsageComparison>> {
        let compared = kpis::usage_compared(
            db(ctx)?,
            tenant_of(ctx)?,
            self.viewer,
            self.current,
            self.previous,
        );
        Ok(compared
            .await?
            .into_iter()
            .map(|(metric, current, previous)| UsageComparison {
                metric,
                current: amount_from_e4(current),
                previous: amount_from_e4(previous),
            })
            .collect())
    }
}
