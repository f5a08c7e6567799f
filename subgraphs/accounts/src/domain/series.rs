//! Time series for charts: bucket edges in the caller's time zone, and the rules of usage
//! metering. Pure functions; the store sums rows per bucket in SQL.
//!
//! Hour buckets step in absolute time (a day with a DST change has 23 or 25 of them);
//! day, week (ISO, from Monday) and month buckets start at local midnight, so a day bucket
//! across a DST change is 23 or 25 hours long.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use portal_kit::{ApiError, ApiResult};

use super::amount_e4;
use super::ledger::MAX_FUTURE;

/// Most points one series may have.
pub const MAX_POINTS: usize = 1_000;

/// Most events one `recordUsage` batch may carry.
pub const MAX_BATCH: usize = 1_000;

/// How far back a metered event may lie.
pub const MAX_USAGE_AGE: Duration = Duration::days(400);

/// Width of one chart bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Interval {
    /// One hour.
    Hour,
    /// One local calendar day.
    Day,
    /// One ISO week (Monday to Sunday, local).
    Week,
    /// One local calendar month.
    Month,
}

/// One bucket: `[start, end)`.
pub type Bucket = (DateTime<Utc>, DateTime<Utc>);

/// The buckets of `interval` in `zone` covering `[from, to)`: the first starts at or
/// before `from` (aligned to the interval), the last ends at or after `to`.
/// `BAD_USER_INPUT` for an empty range or more than [`MAX_POINTS`] buckets.
pub fn buckets(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: Interval,
    zone: Tz,
) -> ApiResult<Vec<Bucket>> {
    if to <= from {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    let too_many = || {
        ApiError::invalid(
            "interval",
            format!(
                "the range holds more than {MAX_POINTS} intervals: choose a longer interval or a shorter range"
            ),
        )
    };
    let mut edges = Vec::new();
    let mut start = align(from, interval, zone);
    while start < to {
        let end = next(start, interval, zone);
        edges.push((start, end));
        if edges.len() > MAX_POINTS {
            return Err(too_many());
        }
        start = end;
    }
    Ok(edges)
}

/// The calendar month in `zone` that holds `now`, and the month before it.
pub fn this_and_last_month(now: DateTime<Utc>, zone: Tz) -> (Bucket, Bucket) {
    let this_start = align(now, Interval::Month, zone);
    let this_end = next(this_start, Interval::Month, zone);
    let last_start = align(this_start - Duration::days(1), Interval::Month, zone);
    ((this_start, this_end), (last_start, this_start))
}

/// The start of the bucket holding `at`.
fn align(at: DateTime<Utc>, interval: Interval, zone: Tz) -> DateTime<Utc> {
    let local = at.with_timezone(&zone).naive_local();
    let date = local.date();
    let start = match interval {
        Interval::Hour => {
            // Whole hours of absolute time since the local hour began (offsets of
            // quarter hours keep local hours aligned).
            let minutes = i64::from(local.minute());
            let floored =
                at - Duration::minutes(minutes) - Duration::seconds(i64::from(local.second()));
            return floored - Duration::nanoseconds(i64::from(at.nanosecond()));
        }
        Interval::Day => date,
        Interval::Week => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
        Interval::Month => date.with_day(1).unwrap_or(date),
    };
    local_midnight(start, zone)
}

/// The start of the bucket after the one starting at `start`.
fn next(start: DateTime<Utc>, interval: Interval, zone: Tz) -> DateTime<Utc> {
    let date = start.with_timezone(&zone).date_naive();
    let next_date = match interval {
        Interval::Hour => return start + Duration::hours(1),
        Interval::Day => date + Duration::days(1),
        Interval::Week => date + Duration::days(7),
        Interval::Month => {
            let (year, month) = if date.month() == 12 {
                (date.year() + 1, 1)
            } else {
                (date.year(), date.month() + 1)
            };
            NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(date + Duration::days(31))
        }
    };
    local_midnight(next_date, zone)
}

/// The first instant of `date` in `zone`: midnight, or — where midnight does not exist
/// (a DST gap at midnight) — the first minute that does.
fn local_midnight(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let midnight = NaiveDateTime::from(date);
    for minutes in (0..=180).step_by(15) {
        match zone.from_local_datetime(&(midnight + Duration::minutes(minutes))) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                return at.with_timezone(&Utc);
            }
            LocalResult::None => continue,
        }
    }
    // No zone skips three hours; read the date as UTC rather than fail.
    midnight.and_utc()
}

/// The UTC midnight starting the day that holds `at`: the grain of daily usage rollups.
pub fn utc_day(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(86_400), 0).unwrap_or(at)
}

/// `[lo, hi)` split into the whole UTC days inside it and the parts before and after
/// them: `(head, days, tail)`, any of which may be empty (`start == end`). Long periods
/// read the days from daily rollups and only head and tail from quarter hours.
pub fn whole_days(lo: DateTime<Utc>, hi: DateTime<Utc>) -> (Bucket, Bucket, Bucket) {
    let first = utc_day(lo);
    let first = if first < lo {
        first + Duration::days(1)
    } else {
        first
    };
    let last = utc_day(hi);
    if first >= last {
        return ((lo, hi), (hi, hi), (hi, hi));
    }
    ((lo, first), (first, last), (last, hi))
}

/// The start of the quarter hour (UTC) holding `at`: the grain of usage rollups.
pub fn quarter_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    let floored = seconds - seconds.rem_euclid(15 * 60);
    DateTime::from_timestamp(floored, 0).unwrap_or(at)
}

/// A metric name: 1–64 characters of `a-z 0-9 _ . -`, starting with a letter
/// (`api.calls`, `storage_gb`).
pub fn metric(field: &'static str, raw: &str) -> ApiResult<String> {
    let value = raw.trim();
    let valid = (1..=64).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1-64 characters of a-z, 0-9, '_', '.' and '-', starting with a letter",
        ))
    }
}

/// Largest quantity one metered event may carry (10^9): a batch of them stays far from
/// the 64-bit range of a rollup.
pub const MAX_QUANTITY_E4: i64 = 1_000_000_000 * 10_000;

/// A metered quantity: not negative, at most four decimal places, at most
/// [`MAX_QUANTITY_E4`].
pub fn quantity(field: &'static str, value: rust_decimal::Decimal) -> ApiResult<i64> {
    let units = amount_e4(field, value)?;
    if units < 0 {
        return Err(ApiError::invalid(field, "must not be negative"));
    }
    if units > MAX_QUANTITY_E4 {
        return Err(ApiError::invalid(field, "is too large"));
    }
    Ok(units)
}

/// When a metered event happened: not in the future, not older than [`MAX_USAGE_AGE`].
pub fn usage_time(
    field: &'static str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ApiResult<DateTime<Utc>> {
    if at > now + MAX_FUTURE {
        return Err(ApiError::invalid(field, "must not lie in the future"));
    }
    if at < now - MAX_USAGE_AGE {
        return Err(ApiError::invalid(field, "must be at most 400 days old"));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn day_buckets_follow_local_midnight_across_a_dst_change() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        // Summer time ends on 2026-10-25 at 03:00 local: that day has 25 hours.
        let days = buckets(
            utc("2026-10-24T12:00:00Z"),
            utc("2026-10-27T00:00:00Z"),
            Interval::Day,
            berlin,
        )
        .expect("buckets");
        let starts: Vec<String> = days.iter().map(|(s, _)| s.to_rfc3339()).collect();
        assert_eq!(
            starts,
            [
                "2026-10-23T22:00:00+00:00",
                "2026-10-24T22:00:00+00:00",
                "2026-10-25T23:00:00+00:00",
                "2026-10-26T23:00:00+00:00",
            ]
        );
        assert_eq!(days[1].1 - days[1].0, Duration::hours(25));
    }

    #[test]
    fn hour_buckets_step_in_absolute_time_through_a_spring_gap() {
        let new_york: Tz = "America/New_York".parse().expect("zone");
        // 2026-03-08 02:00 local does not exist: the local day has 23 hours.
        let hours = buckets(
            utc("2026-03-08T05:00:00Z"),
            utc("2026-03-09T04:00:00Z"),
            Interval::Hour,
            new_york,
        )
        .expect("buckets");
        assert_eq!(hours.len(), 23);
        assert!(hours.iter().all(|(s, e)| *e - *s == Duration::hours(1)));
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first_in_the_zone() {
        let tokyo: Tz = "Asia/Tokyo".parse().expect("zone");
        let weeks = buckets(
            utc("2026-12-02T00:00:00Z"),
            utc("2026-12-10T00:00:00Z"),
            Interval::Week,
            tokyo,
        )
        .expect("buckets");
        // Monday 2026-11-30 00:00 in Tokyo.
        assert_eq!(weeks[0].0, utc("2026-11-29T15:00:00Z"));
        let kolkata: Tz = "Asia/Kolkata".parse().expect("zone");
        let months = buckets(
            utc("2026-01-15T00:00:00Z"),
            utc("2026-02-28T18:30:00Z"),
            Interval::Month,
            kolkata,
        )
        .expect("buckets");
        assert_eq!(months.len(), 2);
        assert_eq!(months[0].0, utc("2025-12-31T18:30:00Z"));
        assert_eq!(months[1].0, utc("2026-01-31T18:30:00Z"));
        let kathmandu_hours = buckets(
            utc("2026-01-01T00:10:00Z"),
            utc("2026-01-01T02:00:00Z"),
            Interval::Hour,
            "Asia/Kathmandu".parse().expect("zone"),
        )
        .expect("buckets");
        // +05:45: local hours start at :15 UTC.
        assert_eq!(kathmandu_hours[0].0, utc("2025-12-31T23:15:00Z"));
    }

    #[test]
    fn too_many_points_or_an_empty_range_are_refused() {
        let at = utc("2026-01-01T00:00:00Z");
        assert!(buckets(at, at, Interval::Day, Tz::UTC).is_err());
        assert!(buckets(at, at + Duration::days(42), Interval::Hour, Tz::UTC).is_err());
        assert_eq!(
            buckets(at, at + Duration::days(41), Interval::Hour, Tz::UTC)
                .map(|b| b.len())
                .ok(),
            Some(984)
        );
    }

    #[test]
    fn this_and_last_month_are_calendar_months_in_the_zone() {
        let (this, last) = this_and_last_month(
            utc("2026-03-01T03:00:00Z"),
            "America/New_York".parse().expect("zone"),
        );
        // Still February in New York.
        assert_eq!(
            this,
            (utc("2026-02-01T05:00:00Z"), utc("2026-03-01T05:00:00Z"))
        );
        assert_eq!(
            last,
            (utc("2026-01-01T05:00:00Z"), utc("2026-02-01T05:00:00Z"))
        );
    }

    #[test]
    fn quarter_hours_and_metric_names() {
        assert_eq!(
            quarter_hour(utc("2026-01-01T10:44:59Z")),
            utc("2026-01-01T10:30:00Z")
        );
        assert!(metric("m", "api.calls").is_ok());
        for bad in ["", "API", "1calls", "a b", &"a".repeat(65)] {
            assert!(metric("m", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_split_into_whole_utc_days_and_quarter_hour_ends() {
        // A Kolkata month (+05:30): ragged at both ends.
        let (head, days, tail) =
            whole_days(utc("2026-11-30T18:30:00Z"), utc("2026-12-31T18:30:00Z"));
        assert_eq!(
            head,
            (utc("2026-11-30T18:30:00Z"), utc("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            days,
            (utc("2026-12-01T00:00:00Z"), utc("2026-12-31T00:00:00Z"))
        );
        assert_eq!(
            tail,
            (utc("2026-12-31T00:00:00Z"), utc("2026-12-31T18:30:00Z"))
        );
        // A UTC month is whole days only.
        let (head, days, tail) =
            whole_days(utc("2026-12-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"));
        assert_eq!(head.0, head.1);
        assert_eq!(
            days,
            (utc("2026-12-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"))
        );
        assert_eq!(tail.0, tail.1);
        // Less than a day: quarter hours only.
        let short = (utc("2026-12-01T06:00:00Z"), utc("2026-12-01T20:00:00Z"));
        let (head, days, tail) = whole_days(short.0, short.1);
        assert_eq!(head, short);
        assert_eq!((days.0 == days.1, tail.0 == tail.1), (true, true));
        assert_eq!(
            utc_day(utc("2026-12-01T23:59:59Z")),
            utc("2026-12-01T00:00:00Z")
        );
    }
}
