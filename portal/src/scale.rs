//! `portal seed --scale N`: realistic volume for benchmarks, loaded in bulk. Into the
//! demo tenant (seeded first if empty), owned by the demo customer (Carol): `10 × N`
//! accounts `SCALE-00000…`, `100 000 × N` ledger entries over the last year and
//! `1 000 000 × N` usage events over the last 90 days (three metrics), with their
//! 15-minute and daily rollups (and the ledger's). Skewed like real portfolios: the first account holds half of the
//! entries and events, the rest share the other half. Rows go in as multi-row `INSERT`s
//! of 1 000 (one statement each); every ledger stays consistent (running balances, the
//! balance is the sum). Deterministic: the same `N` gives the same data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use portal_entities::accounts::{
    account, ledger_entry, ledger_rollup, usage_daily_rollup, usage_event, usage_rollup,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};
use uuid::Uuid;

use portal_accounts::domain::series::quarter_hour;

use crate::seed::DemoSeed;

/// Rows per `INSERT` statement.
const BATCH: usize = 1_000;
/// Metrics the usage events are spread over.
const METRICS: [&str; 3] = ["api.calls", "storage.gb", "seats"];

/// What [`seed_scale`] loaded.
#[derive(Debug)]
pub struct ScaleReport {
    /// The tenant it went into.
    pub tenant_id: Uuid,
    /// The owner of the accounts.
    pub owner_id: Uuid,
    /// The heaviest account (half of everything).
    pub busiest_account: Uuid,
    /// Accounts created.
    pub accounts: usize,
    /// Ledger entries written.
    pub ledger_entries: u64,
    /// Usage events written.
    pub usage_events: u64,
    /// Rollup rows written.
    pub rollups: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Splits `total` rows over `accounts`: half to the first, the rest evenly.
fn shares(total: u64, accounts: usize) -> Vec<u64> {
    if accounts <= 1 {
        return vec![total];
    }
    let first = total / 2;
    let rest = total - first;
    let each = rest / (accounts as u64 - 1);
    let mut out = vec![first];
    out.extend((1..accounts).map(|i| {
        if i == accounts - 1 {
            rest - each * (accounts as u64 - 2)
        } else {
            each
        }
    }));
    out
}

/// Loads scale `n` into the demo tenant of `db` (see the module docs).
pub async fn seed_scale(
    db: &DatabaseConnection,
    seed: &DemoSeed,
    n: u32,
) -> Result<ScaleReport, DbErr> {
    let started = Instant::now();
    let n = u64::from(n.max(1));
    let accounts = (10 * n) as usize;
    let mut rng = StdRng::seed_from_u64(n);
    let now = Utc::now();
    let year = chrono::Duration::days(365);
    let quarter = chrono::Duration::days(90);
    let opened = now - chrono::Duration::days(400);
    let mut ids = Vec::with_capacity(accounts);
    for i in 0..accounts {
        let id = Uuid::now_v7();
        account::ActiveModel {
            id: Set(id),
            tenant_id: Set(seed.tenant_id),
            owner_id: Set(seed.carol_id),
            number: Set(format!("SCALE-{i:05}")),
            name: Set(format!("Scale account {i}")),
            status: Set("OPEN".into()),
            currency: Set("USD".into()),
            balance_e4: Set(0),
            idempotency_key: Set(None),
            request_hash: Set(None),
            created_at: Set(opened),
            updated_at: Set(opened),
        }
        .insert(db)
        .await?;
        ids.push(id);
    }
    let (mut entries_written, mut events_written, mut rollups_written) = (0, 0, 0);
    for (i, count) in shares(100_000 * n, accounts).into_iter().enumerate() {
        let account_id = ids[i];
        // Posting times, sorted: the running balance follows posting order.
        let mut times: Vec<DateTime<Utc>> = (0..count)
            .map(|_| {
                now - year + chrono::Duration::seconds(rng.random_range(0..year.num_seconds()))
            })
            .collect();
        times.sort_unstable();
        let mut balance: i64 = 0;
        let mut batch = Vec::with_capacity(BATCH);
        let mut quarters: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for posted_at in times {
            let (kind, sign) = match rng.random_range(0..10) {
                0..=4 => ("CHARGE", -1),
                5..=7 => ("PAYMENT", 1),
                8 => ("CREDIT", 1),
                _ => ("REFUND", -1),
            };
            let amount = sign * rng.random_range(100..10_000_000_i64);
            balance += amount;
            let slot = quarters
                .entry(quarter_hour(posted_at).timestamp())
                .or_default();
            slot.0 += amount;
            slot.1 += 1;
            batch.push(ledger_entry::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(seed.tenant_id),
                account_id: Set(account_id),
                kind: Set(kind.into()),
                source: Set("BILLING_SYNC".into()),
                amount_e4: Set(amount),
                balance_after_e4: Set(balance),
                currency: Set("USD".into()),
                posted_at: Set(posted_at),
                reference: Set(None),
                description: Set(None),
                invoice_id: Set(None),
                payment_id: Set(None),
                idempotency_key: Set(None),
                request_hash: Set(None),
                created_by: Set(None),
                created_at: Set(posted_at),
            });
            if batch.len() == BATCH {
                entries_written += batch.len() as u64;
                ledger_entry::Entity::insert_many(std::mem::take(&mut batch))
                    .exec(db)
                    .await?;
            }
        }
        if !batch.is_empty() {
            entries_written += batch.len() as u64;
            ledger_entry::Entity::insert_many(batch).exec(db).await?;
        }
        let rows: Vec<ledger_rollup::ActiveModel> = quarters
            .into_iter()
            .map(|(bucket, (amount, entries))| ledger_rollup::ActiveModel {
                tenant_id: Set(seed.tenant_id),
                account_id: Set(account_id),
                bucket_start: Set(DateTime::from_timestamp(bucket, 0).unwrap_or(now)),
                amount_e4: Set(amount),
                entries: Set(entries),
            })
            .collect();
        for chunk in rows.chunks(BATCH) {
            ledger_rollup::Entity::insert_many(chunk.to_vec())
                .exec(db)
                .await?;
        }
        account::Entity::update_many()
            .col_expr(account::Column::BalanceE4, balance.into())
            .filter(account::Column::Id.eq(account_id))
            .exec(db)
            .await?;
    }
    for (i, count) in shares(1_000_000 * n, accounts).into_iter().enumerate() {
        let account_id = ids[i];
        let mut rollups: BTreeMap<(usize, i64), (i64, i64)> = BTreeMap::new();
        let mut batch = Vec::with_capacity(BATCH);
        for k in 0..count {
            let at = now - quarter
                + chrono::Duration::seconds(rng.random_range(0..quarter.num_seconds()));
            let metric = rng.random_range(0..METRICS.len());
            let quantity = rng.random_range(1..1_000_i64) * 10_000;
            let slot = rollups
                .entry((metric, quarter_hour(at).timestamp()))
                .or_default();
            slot.0 += quantity;
            slot.1 += 1;
            batch.push(usage_event::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(seed.tenant_id),
                account_id: Set(account_id),
                metric: Set(METRICS[metric].into()),
                quantity_e4: Set(quantity),
                occurred_at: Set(at),
                client_key: Set(format!("scale-{i}-{k}")),
                created_by: Set(None),
                created_at: Set(at),
            });
            if batch.len() == BATCH {
                events_written += batch.len() as u64;
                usage_event::Entity::insert_many(std::mem::take(&mut batch))
                    .exec(db)
                    .await?;
            }
        }
        if !batch.is_empty() {
            events_written += batch.len() as u64;
            usage_event::Entity::insert_many(batch).exec(db).await?;
        }
        let mut days: BTreeMap<(usize, i64), (i64, i64)> = BTreeMap::new();
        for ((metric, bucket), (quantity, events)) in &rollups {
            let slot = days
                .entry((*metric, bucket - bucket.rem_euclid(86_400)))
                .or_default();
            slot.0 += quantity;
            slot.1 += events;
        }
        let daily: Vec<usage_daily_rollup::ActiveModel> = days
            .into_iter()
            .map(
                |((metric, day), (quantity, events))| usage_daily_rollup::ActiveModel {
                    tenant_id: Set(seed.tenant_id),
                    account_id: Set(account_id),
                    metric: Set(METRICS[metric].into()),
                    bucket_start: Set(DateTime::from_timestamp(day, 0).unwrap_or(now)),
                    quantity_e4: Set(quantity),
                    events: Set(events),
                },
            )
            .collect();
        for chunk in daily.chunks(BATCH) {
            rollups_written += chunk.len() as u64;
            usage_daily_rollup::Entity::insert_many(chunk.to_vec())
                .exec(db)
                .await?;
        }
        let rows: Vec<usage_rollup::ActiveModel> = rollups
            .into_iter()
            .map(
                |((metric, bucket), (quantity, events))| usage_rollup::ActiveModel {
                    tenant_id: Set(seed.tenant_id),
                    account_id: Set(account_id),
                    metric: Set(METRICS[metric].into()),
                    bucket_start: Set(DateTime::from_timestamp(bucket, 0).unwrap_or(now)),
                    quantity_e4: Set(quantity),
                    events: Set(events),
                },
            )
            .collect();
        for chunk in rows.chunks(BATCH) {
            rollups_written += chunk.len() as u64;
            usage_rollup::Entity::insert_many(chunk.to_vec())
                .exec(db)
                .await?;
        }
    }
    Ok(ScaleReport {
        tenant_id: seed.tenant_id,
        owner_id: seed.carol_id,
        busiest_account: ids[0],
        accounts,
        ledger_entries: entries_written,
        usage_events: events_written,
        rollups: rollups_written,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_give_half_to_the_first_and_add_up() {
        let split = shares(1_000_001, 10);
        assert_eq!(split.len(), 10);
        assert_eq!(split[0], 500_000);
        assert_eq!(split.iter().sum::<u64>(), 1_000_001);
    }
}
