//! Cron schedules: a job kind enqueued at the times a five-field cron expression names,
//! read in an IANA time zone (so "every day at 09:00 in Europe/Berlin" stays at 09:00
//! across daylight-saving changes). Each due occurrence enqueues one job whose
//! idempotency key is the schedule and the occurrence, so racing workers enqueue it once;
//! after downtime a schedule runs once, not once per missed occurrence.

use crate::db::BeginWrite;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, Set,
};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::platform::job_schedule;

use super::{NewJob, enqueue};
use crate::actor::Actor;
use crate::error::{ApiError, ApiResult};

/// The next time after `after` that `cron` names in the time zone `time_zone`.
pub fn next_after(
    cron: &str,
    time_zone: &str,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let parsed = Cron::from_str(cron).map_err(|err| format!("invalid cron expression: {err}"))?;
    let zone = Tz::from_str(time_zone).map_err(|_| format!("unknown time zone `{time_zone}`"))?;
    parsed
        .find_next_occurrence(&after.with_timezone(&zone), false)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| format!("no next occurrence: {err}"))
}

/// A schedule to create or replace.
#[derive(Clone, Debug)]
pub struct NewSchedule {
    /// Unique name, e.g. `report:<definition id>`.
    pub name: String,
    /// The job kind to enqueue.
    pub kind: String,
    /// The jobs' input.
    pub payload: Value,
    /// The tenant the work belongs to.
    pub tenant_id: Option<Uuid>,
    /// Who the jobs act for.
    pub principal: Option<Actor>,
    /// Five-field cron expression.
    pub cron: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

/// Creates or replaces the schedule `new.name` (through `db`: pass the transaction of the
/// change that wants it); `BAD_USER_INPUT` about `field` for a bad expression or zone.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    field: &'static str,
    new: NewSchedule,
) -> ApiResult<()> {
    let next =
        next_after(&new.cron, &new.time_zone, now).map_err(|m| ApiError::invalid(field, m))?;
    let principal = new
        .principal
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|err| ApiError::internal(format!("serializing a schedule principal: {err}")))?;
    let row = job_schedule::ActiveModel {
        name: Set(new.name),
        tenant_id: Set(new.tenant_id),
        kind: Set(new.kind),
        payload: Set(new.payload),
        principal: Set(principal),
        cron: Set(new.cron),
        time_zone: Set(new.time_zone),
        enabled: Set(true),
        next_run_at: Set(next),
        created_at: Set(now),
        updated_at: Set(now),
    };
    job_schedule::Entity::insert(row)
        .on_conflict(
            OnConflict::column(job_schedule::Column::Name)
                .update_columns([
                    job_schedule::Column::TenantId,
                    job_schedule::Column::Kind,
                    job_schedule::Column::Payload,
                    job_schedule::Column::Principal,
                    job_schedule::Column::Cron,
                    job_schedule::Column::TimeZone,
                    job_schedule::Column::Enabled,
                    job_schedule::Column::NextRunAt,
                    job_schedule::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Removes the schedule `name` (jobs it already enqueued stay).
pub async fn remove<C: ConnectionTrait>(db: &C, name: &str) -> ApiResult<()> {
    job_schedule::Entity::delete_by_id(name.to_owned())
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Enqueues one job for every schedule due at `now` and moves each to its next
/// occurrence after `now`; returns how many it enqueued.
pub async fn enqueue_due(db: &DatabaseConnection, now: DateTime<Utc>) -> ApiResult<usize> {
    // Usually nothing is due: find out without taking the write lock.
    let any_due = job_schedule::Entity::find()
        .filter(job_schedule::Column::Enabled.eq(true))
        .filter(job_schedule::Column::NextRunAt.lte(now))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .is_some();
    if !any_due {
        return Ok(0);
    }
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let due = job_schedule::Entity::find()
        .filter(job_schedule::Column::Enabled.eq(true))
        .filter(job_schedule::Column::NextRunAt.lte(now))
        .limit(100)
        .lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        )
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let count = due.len();
    for schedule in due {
        let occurrence = schedule.next_run_at;
        let mut job = NewJob::new(schedule.kind.clone(), schedule.payload.clone()).idempotency_key(
            format!("schedule:{}@{}", schedule.name, occurrence.to_rfc3339()),
        );
        job.tenant_id = schedule.tenant_id;
        job.principal = schedule
            .principal
            .clone()
            .and_then(|p| serde_json::from_value(p).ok());
        enqueue(&txn, now, job).await?;
        let mut active: job_schedule::ActiveModel = schedule.clone().into();
        match next_after(&schedule.cron, &schedule.time_zone, now) {
            Ok(next) => active.next_run_at = Set(next),
            Err(err) => {
                tracing::warn!(name = %schedule.name, %err, "schedule disabled");
                active.enabled = Set(false);
            }
        }
        active.updated_at = Set(now);
        active.update(&txn).await.map_err(ApiError::from_db)?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// Every occurrence from `start` for `days` days.
    fn occurrences(cron: &str, zone: &str, start: DateTime<Utc>, days: i64) -> Vec<DateTime<Utc>> {
        let end = start + chrono::Duration::days(days);
        let mut out = Vec::new();
        let mut at = start;
        while let Ok(next) = next_after(cron, zone, at) {
            if next > end {
                break;
            }
            out.push(next);
            at = next;
        }
        out
    }

    #[test]
    fn a_daily_schedule_keeps_its_local_time_across_both_dst_changes() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        for start in ["2026-03-27T00:00:00Z", "2026-10-23T00:00:00Z"] {
            let runs = occurrences("0 9 * * *", "Europe/Berlin", utc(start), 5);
            assert_eq!(runs.len(), 5, "{start}: {runs:?}");
            for run in &runs {
                let local = run.with_timezone(&berlin);
                assert_eq!((local.hour(), local.minute()), (9, 0), "{run}");
            }
            // The UTC time moves by an hour across the change.
            let hours: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.hour()).collect();
            assert_eq!(hours.len(), 2, "{start}: {runs:?}");
        }
    }

    #[test]
    fn a_time_in_the_dst_gap_or_overlap_runs_exactly_once_that_day() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        for (start, day) in [("2026-03-28T12:00:00Z", 29), ("2026-10-24T12:00:00Z", 25)] {
            // 02:30 does not exist on 29 March and exists twice on 25 October.
            let runs = occurrences("30 2 * * *", "Europe/Berlin", utc(start), 3);
            let that_day = runs
                .iter()
                .filter(|r| r.with_timezone(&berlin).day() == day)
                .count();
            assert_eq!(that_day, 1, "{start}: {runs:?}");
            assert_eq!(runs.len(), 3, "{start}: {runs:?}");
        }
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        assert!(next_after("61 * * * *", "UTC", now).is_err());
        assert!(next_after("0 9 * * *", "Mars/Olympus", now).is_err());
        assert!(next_after("0 9 * * *", "America/New_York", now).is_ok());
    }
}
