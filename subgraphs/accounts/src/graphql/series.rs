//! Time series for charts (`Account.usage`, `Account.balanceHistory`) and usage metering
//! (`recordUsage`). Series are bucketed in the caller's IANA time zone and summed in SQL.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::input;
use portal_kit::scalars::{DateTimeArg, DecimalArg};
use portal_kit::{ApiError, ApiResult};

use super::require_visible;
use crate::domain::amount_from_e4;
use crate::domain::ledger::idempotency_key;
use crate::domain::series::{self as rules, Bucket, Interval, MAX_BATCH};
use crate::store::series as store;

/// Width of a chart bucket.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SeriesInterval {
    /// One hour (of absolute time: a DST day has 23 or 25).
    Hour,
    /// One calendar day in the time zone (23 or 25 hours across a DST change).
    Day,
    /// One ISO week, Monday to Sunday, in the time zone.
    Week,
    /// One calendar month in the time zone.
    Month,
}

impl From<SeriesInterval> for Interval {
    fn from(interval: SeriesInterval) -> Self {
        match interval {
            SeriesInterval::Hour => Self::Hour,
            SeriesInterval::Day => Self::Day,
            SeriesInterval::Week => Self::Week,
            SeriesInterval::Month => Self::Month,
        }
    }
}

/// One bucket of a series: `[start, end)` and its value.
#[derive(SimpleObject, Clone)]
pub struct SeriesPoint {
    /// Start of the bucket (inclusive).
    pub start: DateTime<Utc>,
    /// End of the bucket (exclusive).
    pub end: DateTime<Utc>,
    /// The bucket's value (zero for a bucket without data).
    pub value: Decimal,
}

/// A series of consecutive buckets, every bucket present (empty ones as zero).
#[derive(SimpleObject, Clone)]
pub struct TimeSeries {
    /// Bucket width.
    pub interval: SeriesInterval,
    /// IANA time zone the buckets were cut in.
    pub time_zone: String,
    /// The buckets, oldest first (at most 1 000).
    pub points: Vec<SeriesPoint>,
}

/// The buckets a series argument list asks for.
fn buckets_of(
    from: &DateTimeArg,
    to: &DateTimeArg,
    interval: SeriesInterval,
    time_zone: &str,
) -> ApiResult<(Vec<Bucket>, String)> {
    let from = from.parse("from")?;
    let to = to.parse("to")?;
    let zone = input::zone("timeZone", time_zone)?;
    let buckets = rules::buckets(from, to, interval.into(), zone)?;
    Ok((buckets, zone.name().to_owned()))
}

/// A series of amounts stored in 10^-4 units.
fn series(
    interval: SeriesInterval,
    time_zone: String,
    buckets: Vec<Bucket>,
    values: Vec<i64>,
) -> TimeSeries {
    series_of(interval, time_zone, buckets, values, amount_from_e4)
}

fn series_of(
    interval: SeriesInterval,
    time_zone: String,
    buckets: Vec<Bucket>,
    values: Vec<i64>,
    value: impl Fn(i64) -> Decimal,
) -> TimeSeries {
    TimeSeries {
        interval,
        time_zone,
        points: buckets
            .into_iter()
            .zip(values)
            .map(|((start, end), raw)| SeriesPoint {
                start,
                end,
                value: value(raw),
            })
            .collect(),
    }
}

/// `Account.usage` of the (visible) account `account_id`.
pub async fn usage(
    ctx: &Context<'_>,
    account_id: Uuid,
    metric: &str,
    from: &DateTimeArg,
    to: &DateTimeArg,
    interval: SeriesInterval,
    time_zone: &str,
) -> ApiResult<TimeSeries> {
    let metric = rules::metric("metric", metric)?;
    let (buckets, zone) = buckets_of(from, to, interval, time_zone)?;
    let tenant = tenant_of(ctx)?;
    let values = store::usage_per_bucket(db(ctx)?, tenant, account_id, &metric, &buckets).await?;
    Ok(series(interval, zone, buckets, values))
}

/// `Account.balanceHistory` of the (visible) account `account_id`.
pub async fn balance_history(
    ctx: &Context<'_>,
    account_id: Uuid,
    from: &DateTimeArg,
    to: &DateTimeArg,
    interval: SeriesInterval,
    time_zone: &str,
) -> ApiResult<TimeSeries> {
    let (buckets, zone) = buckets_of(from, to, interval, time_zone)?;
    let tenant = tenant_of(ctx)?;
    let values = store::balance_per_bucket(db(ctx)?, tenant, account_id, &buckets).await?;
    Ok(series(interval, zone, buckets, values))
}

/// `Account.activity` of the (visible) account `account_id`: ledger entries per bucket.
pub async fn activity(
    ctx: &Context<'_>,
    account_id: Uuid,
    from: &DateTimeArg,
    to: &DateTimeArg,
    interval: SeriesInterval,
    time_zone: &str,
) -> ApiResult<TimeSeries> {
    let (buckets, zone) = buckets_of(from, to, interval, time_zone)?;
    let tenant = tenant_of(ctx)?;
    let counts = store::entries_per_bucket(db(ctx)?, tenant, account_id, &buckets).await?;
    Ok(series_of(interval, zone, buckets, counts, Decimal::from))
}

/// `Account.usageMetrics` of the (visible) account `account_id`.
pub async fn metrics(ctx: &Context<'_>, account_id: Uuid) -> ApiResult<Vec<String>> {
    store::metrics_of(db(ctx)?, tenant_of(ctx)?, account_id).await
}

/// One metered event.
#[derive(InputObject)]
pub struct UsageEventInput {
    /// Metric name: 1-64 characters of a-z, 0-9, _, . and -, starting with a letter.
    pub metric: String,
    /// Quantity: not negative, at most four decimal places.
    pub quantity: DecimalArg,
    /// When it happened: not in the future, at most 400 days ago.
    pub occurred_at: DateTimeArg,
    /// Your key for this event (8-64 characters of A-Z a-z 0-9 . _ : -), unique per
    /// tenant: an event whose key was stored before is skipped, so a batch can be retried
    /// as a whole.
    pub key: String,
}

/// Input of `recordUsage`.
#[derive(InputObject)]
pub struct RecordUsageInput {
    /// The account the usage belongs to.
    pub account_id: ID,
    /// 1 to 1 000 events.
    pub events: Vec<UsageEventInput>,
}

/// What `recordUsage` did.
#[derive(SimpleObject)]
pub struct UsageBatch {
    /// Events stored by this call.
    pub accepted: i32,
    /// Events skipped because their key was stored before (or repeated in the batch).
    pub duplicates: i32,
}

/// Usage metering mutations.
#[derive(Default)]
pub struct UsageMutation;

#[Object]
impl UsageMutation {
    /// Records a batch of metered events for an account (the input of `Account.usage`).
    /// The whole batch is validated first: one bad event refuses the batch with
    /// `BAD_USER_INPUT` (`input.events`, the message names the event's index) and nothing
    /// is stored.
    async fn record_usage(
        &self,
        ctx: &Context<'_>,
        input: RecordUsageInput,
    ) -> ApiResult<UsageBatch> {
        let account_id = input::id("input.accountId", &input.account_id)?;
        if input.events.is_empty() || input.events.len() > MAX_BATCH {
            return Err(ApiError::invalid(
                "input.events",
                format!("must hold 1 to {MAX_BATCH} events"),
            ));
        }
        let now = Utc::now();
        let mut batch = Vec::with_capacity(input.events.len());
        for (i, event) in input.events.into_iter().enumerate() {
            let at = |err: ApiError| match err {
                ApiError::BadUserInput { field, message } => ApiError::invalid(
                    "input.events",
                    format!(
                        "event {i}: `{}` {message}",
                        field.trim_start_matches("event.")
                    ),
                ),
                other => other,
            };
            let metric = rules::metric("event.metric", &event.metric).map_err(at)?;
            let quantity = event
                .quantity
                .parse("event.quantity")
                .and_then(|q| rules::quantity("event.quantity", q))
                .map_err(at)?;
            let occurred_at = event
                .occurred_at
                .parse("event.occurredAt")
                .and_then(|t| rules::usage_time("event.occurredAt", t, now))
                .map_err(at)?;
            let key = idempotency_key("event.key", &event.key).map_err(at)?;
            batch.push(store::NewUsage {
                metric,
                quantity_e4: quantity,
                occurred_at,
                key,
            });
        }
        require_visible(ctx, account_id).await?;
        let outcome =
            store::record_usage(db(ctx)?, actor(ctx), meta(ctx), account_id, batch).await?;
        Ok(UsageBatch {
            accepted: i32::try_from(outcome.accepted).unwrap_or(i32::MAX),
            duplicates: i32::try_from(outcome.duplicates).unwrap_or(i32::MAX),
        })
    }
}
