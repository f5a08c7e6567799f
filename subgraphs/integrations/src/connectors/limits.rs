//! Client-side rate limits: connectors pace their own calls to each remote account below
//! the remote's published limits, instead of running into 429s and backing off. A
//! [`Limiter`] keeps, per (bucket, key) — a remote's limit and the account it applies to —
//! when the next call may go (GCRA: each call reserves its slot and waits for it, so
//! waiting calls go in order). The limits hold per process: a deployment with several
//! workers may call one account from each, though a run — and so usually all calls to
//! one account — is worked by one worker at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// Entries kept before those in the past are dropped.
const PRUNE_AT: usize = 10_000;

/// A pace: up to `burst` calls at once, then one per `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// The interval between calls at the steady pace.
    pub every: Duration,
    /// Calls that may go at once after a quiet spell (at least one).
    pub burst: u32,
}

impl Rate {
    /// At most `calls` in any `window`, `burst` of them at once.
    pub const fn within(calls: u32, window: Duration, burst: u32) -> Self {
        // A window holds the burst and then a call per interval: the burst leaves room
        // for at least one paced call.
        let burst = if calls <= 1 {
            1
        } else if burst >= calls {
            calls - 1
        } else if burst == 0 {
            1
        } else {
            burst
        };
        let steady = if calls > burst { calls - burst } else { 1 };
        Self {
            every: Duration::from_nanos((window.as_nanos() / steady as u128) as u64),
            burst,
        }
    }
}

/// Which limit a call counts against.
#[derive(Clone, Copy, Debug)]
pub struct Limit<'a> {
    /// The remote's limit (`hubspot`, `hubspot-search`, `stripe`).
    pub bucket: &'static str,
    /// The account it applies to (the integration).
    pub key: &'a str,
    /// Its pace.
    pub rate: Rate,
}

/// Pacing state shared by every client of a process (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Limiter {
    next: Arc<std::sync::Mutex<HashMap<(&'static str, String), Instant>>>,
}

impl Limiter {
    /// Waits until a call under `limit` may go, and counts it.
    pub async fn acquire(&self, limit: &Limit<'_>) {
        let wait = self.reserve(limit, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Reserves the next slot under `limit` at `now`: how long to wait for it.
    fn reserve(&self, limit: &Limit<'_>, now: Instant) -> Duration {
        // Nothing panics while it is held: a poisoned lock still holds good times.
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if next.len() >= PRUNE_AT {
            next.retain(|_, at| *at > now);
        }
        let key = (limit.bucket, limit.key.to_owned());
        // The theoretical arrival time of the next call: never in the past.
        let due = next.get(&key).copied().unwrap_or(now).max(now);
        let slack = limit.rate.every * limit.rate.burst.saturating_sub(1);
        let allowed = due.checked_sub(slack).unwrap_or(now);
        next.insert(key, due + limit.rate.every);
        allowed.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_calls_are_paced() {
        let limiter = Limiter::default();
        let rate = Rate::within(5, Duration::from_secs(1), 1);
        let limit = Limit {
            bucket: "search",
            key: "integration-1",
            rate,
        };
        let now = Instant::now();
        let waits: Vec<Duration> = (0..5).map(|_| limiter.reserve(&limit, now)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[1], Duration::from_millis(250));
        // At most five calls in any second: the fifth goes a second after the first.
        assert_eq!(waits[4], Duration::from_secs(1));
        // Another account has its own pace.
        let other = Limit {
            key: "integration-2",
            ..limit
        };
        assert_eq!(limiter.reserve(&other, now), Duration::ZERO);
    }

    #[test]
    fn bursts_are_allowed_up_to_their_size() {
        let limiter = Limiter::default();
        let rate = Rate::within(100, Duration::from_secs(10), 10);
        assert_eq!(rate.every.as_millis(), 111);
        let limit = Limit {
            bucket: "hubspot",
            key: "integration-1",
            rate,
        };
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.reserve(&limit, now), Duration::ZERO);
        }
        assert!(limiter.reserve(&limit, now) > Duration::ZERO);
        // A quiet spell earns the burst back.
        let later = now + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(limiter.reserve(&limit, later), Duration::ZERO);
        }
    }
}
