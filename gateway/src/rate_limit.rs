//! Rate limits per client address, user, API key and tenant, by the generic cell rate
//! algorithm (GCRA): each key has a theoretical arrival time (TAT); a request is let in
//! when it comes no earlier than `TAT − burst × interval`, and moves the TAT on by one
//! interval. Sustained traffic gets `per_second`; `burst` requests may come at once.
//!
//! The state lives in this process ([`Local`]), or in Redis ([`Redis`]) so that every
//! gateway replica shares one limit per key — with Redis's clock, so replicas' clocks do
//! not matter. When Redis does not answer in time, the process's own limiter decides (a
//! replica then limits alone until Redis is back), and the failure is logged and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;

/// One limit: `per_second` sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may come at once (at least 1).
    pub burst: u32,
}

impl Quota {
    fn interval_ms(self) -> f64 {
        1_000.0 / self.per_second.max(1e-3)
    }

    fn burst(self) -> f64 {
        f64::from(self.burst.max(1))
    }
}

/// What is limited, and how much.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateLimits {
    /// Per client address (before authentication).
    pub per_ip: Option<Quota>,
    /// Per signed-in user.
    pub per_user: Option<Quota>,
    /// Per API key.
    pub per_api_key: Option<Quota>,
    /// Per tenant (every user and key of it together).
    pub per_tenant: Option<Quota>,
}

/// What a key is counted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A client address.
    Ip,
    /// A user.
    User,
    /// An API key.
    ApiKey,
    /// A tenant.
    Tenant,
}

impl Scope {
    /// The name in headers, metrics and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Tenant => "tenant",
        }
    }
}

/// The answer for one request against one limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Let in; `remaining` more may come at once, and the limit is whole again after
    /// `reset`.
    Allowed {
        /// Requests that may still come at once.
        remaining: u32,
        /// Until the limit is whole again.
        reset: Duration,
    },
    /// Refused; the next request is let in after `retry_after`.
    Limited {
        /// How long to wait.
        retry_after: Duration,
    },
}

/// One GCRA step: the decision for a request at `now_ms` against the stored TAT, and the
/// TAT to store when it is allowed.
fn gcra(tat: Option<f64>, now_ms: f64, quota: Quota) -> (Decision, Option<f64>) {
    let interval = quota.interval_ms();
    let tat = tat.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat + interval;
    let allow_at = new_tat - quota.burst() * interval;
    // A microsecond of slack: `tat + interval − burst × interval` is not exactly `now`
    // in floating point even when it should be.
    if allow_at - now_ms > 1e-3 {
        let wait = allow_at - now_ms;
        return (
            Decision::Limited {
                retry_after: Duration::from_secs_f64(wait / 1e3),
            },
            None,
        );
    }
    let remaining = ((now_ms - allow_at) / interval).floor().max(0.0) as u32;
    (
        Decision::Allowed {
            remaining,
            reset: Duration::from_secs_f64((new_tat - now_ms).max(0.0) / 1e3),
        },
        Some(new_tat),
    )
}

/// Where the limiter keeps its state.
pub trait Store: Send + Sync {
    /// Counts a request for `key` against `quota`.
    fn check<'a>(&'a self, key: &'a str, quota: Quota) -> BoxFuture<'a, Decision>;
}

/// State in this process: per-process limits (with N replicas, N times the limit).
pub struct Local {
    shards: Vec<Mutex<HashMap<String, f64>>>,
    /// Spreads keys over the shards.
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

const SHARDS: usize = 16;
/// Keys kept per shard before the stale ones (TAT in the past: a full bucket) are dropped.
const SWEEP_AT: usize = 4_096;

impl Default for Local {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            epoch: Instant::now(),
        }
    }
}

impl Local {
    /// The decision for `key` now.
    pub fn decide(&self, key: &str, quota: Quota) -> Decision {
        let now_ms = self.epoch.elapsed().as_secs_f64() * 1e3;
        let shard = {
            use std::hash::BuildHasher as _;
            (self.hasher.hash_one(key) as usize) % SHARDS
        };
        let mut map = self.shards[shard].lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, tat| *tat > now_ms);
        }
        let (decision, store) = gcra(map.get(key).copied(), now_ms, quota);
        if let Some(tat) = store {
            map.insert(key.to_owned(), tat);
        }
        decision
    }
}

impl Store for Local {
    fn check<'a>(&'a self, key: &'a str, quota: Quota) -> BoxFuture<'a, Decision> {
        let decision = self.decide(key, quota);
        Box::pin(async move { decision })
    }
}

/// The GCRA step in Redis, atomically, on Redis's clock. Returns `{allowed, a, b}`:
/// allowed: `{1, remaining, reset_ms}`; limited: `{0, retry_after_ms, 0}`.
const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at - now > 0.001 then
  return {0, math.ceil(allow_at - now), 0}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, math.floor((now - allow_at) / interval), math.ceil(new_tat - now)}
";

/// State in Redis, shared by every gateway replica using the same server.
pub struct Redis {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    fallback: Local,
    prefix: String,
    /// While Redis fails, checks skip it until this instant (a circuit breaker: no
    /// per-request wait and no per-request warning during an outage).
    open_until: Mutex<Option<Instant>>,
}

/// How long the breaker keeps Redis out after a failure.
const BREAKER: Duration = Duration::from_secs(5);

/// How long a limit check waits for Redis before the process's own limiter decides.
const REDIS_PATIENCE: Duration = Duration::from_millis(50);

impl Redis {
    /// Connects to `url` (`redis://host:port/db`); keys start with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|err| format!("the Redis URL: {err}"))?;
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            redis::aio::ConnectionManager::new(client),
        )
        .await
        .map_err(|_| "Redis did not answer within 5 s".to_owned())?
        .map_err(|err| format!("connecting to Redis: {err}"))?;
        Ok(Self {
            connection,
            script: redis::Script::new(SCRIPT),
            fallback: Local::default(),
            prefix: prefix.to_owned(),
            open_until: Mutex::new(None),
        })
    }
}

impl Redis {
    /// Redis failed: this process decides, and keeps deciding for [`BREAKER`].
    fn trip(&self, why: &str, key: &str, quota: Quota) -> Decision {
        let mut open = self.open_until.lock();
        if open.is_none_or(|until| Instant::now() >= until) {
            tracing::warn!(
                reason = why,
                "rate limit checks in Redis failed; this process decides alone for 5 s"
            );
        }
        *open = Some(Instant::now() + BREAKER);
        drop(open);
        metrics::counter!(portal_kit::telemetry::metric::RATE_LIMIT_FALLBACKS).increment(1);
        self.fallback.decide(key, quota)
    }
}

impl Store for Redis {
    fn check<'a>(&'a self, key: &'a str, quota: Quota) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            if self
                .open_until
                .lock()
                .is_some_and(|until| Instant::now() < until)
            {
                metrics::counter!(portal_kit::telemetry::metric::RATE_LIMIT_FALLBACKS).increment(1);
                return self.fallback.decide(key, quota);
            }
            let mut connection = self.connection.clone();
            let mut invocation = self.script.key(format!("{}{key}", self.prefix));
            invocation.arg(quota.interval_ms()).arg(quota.burst());
            let answered = tokio::time::timeout(
                REDIS_PATIENCE,
                invocation.invoke_async::<(i64, i64, i64)>(&mut connection),
            )
            .await;
            match answered {
                Ok(Ok((1, remaining, reset_ms))) => Decision::Allowed {
                    remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                    reset: Duration::from_millis(u64::try_from(reset_ms.max(0)).unwrap_or(0)),
                },
                Ok(Ok((_, retry_ms, _))) => Decision::Limited {
                    retry_after: Duration::from_millis(u64::try_from(retry_ms.max(0)).unwrap_or(0)),
                },
                Ok(Err(err)) => self.trip(&err.to_string(), key, quota),
                Err(_) => self.trip("no answer within 50 ms", key, quota),
            }
        })
    }
}

/// The limiter: the limits, and where their state lives.
#[derive(Clone)]
pub struct Limiter {
    limits: RateLimits,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A refusal: which limit, and when to come back.
#[derive(Clone, Copy, Debug)]
pub struct Refusal {
    /// The limit that refused.
    pub scope: Scope,
    /// Its quota.
    pub quota: Quota,
    /// When the next request is let in.
    pub retry_after: Duration,
}

/// The tightest limit a request was let in under, for its response headers.
#[derive(Clone, Copy, Debug)]
pub struct Allowance {
    /// The limit.
    pub scope: Scope,
    /// Its quota.
    pub quota: Quota,
    /// Requests that may still come at once.
    pub remaining: u32,
    /// Until it is whole again.
    pub reset: Duration,
}

impl Limiter {
    /// `limits`, kept in `store`.
    pub fn new(limits: RateLimits, store: Arc<dyn Store>) -> Self {
        Self { limits, store }
    }

    /// `limits` in this process.
    pub fn local(limits: RateLimits) -> Self {
        Self::new(limits, Arc::new(Local::default()))
    }

    /// The limits.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Counts one request against each of `checks` that is limited, in order, and stops
    /// at the first refusal (later limits are not charged for a refused request).
    pub async fn check<K: AsRef<str>>(
        &self,
        checks: &[(Scope, K)],
    ) -> Result<Option<Allowance>, Refusal> {
        let mut tightest: Option<Allowance> = None;
        for (scope, key) in checks {
            let quota = match scope {
                Scope::Ip => self.limits.per_ip,
                Scope::User => self.limits.per_user,
                Scope::ApiKey => self.limits.per_api_key,
                Scope::Tenant => self.limits.per_tenant,
            };
            let Some(quota) = quota else {
                continue;
            };
            let stored = format!("{}:{}", scope.name(), key.as_ref());
            match self.store.check(&stored, quota).await {
                Decision::Allowed { remaining, reset } => {
                    if tightest.is_none_or(|t| remaining < t.remaining) {
                        tightest = Some(Allowance {
                            scope: *scope,
                            quota,
                            remaining,
                            reset,
                        });
                    }
                }
                Decision::Limited { retry_after } => {
                    metrics::counter!(
                        portal_kit::telemetry::metric::RATE_LIMITED,
                        "scope" => scope.name()
                    )
                    .increment(1);
                    return Err(Refusal {
                        scope: *scope,
                        quota,
                        retry_after,
                    });
                }
            }
        }
        Ok(tightest)
    }
}

/// The `RateLimit-Policy` header value of `quota` under `scope` (the IETF httpapi draft's
/// structured field: the quota `q` per window `w` seconds — the burst, refilled at the
/// sustained rate).
pub fn policy_header(scope: Scope, quota: Quota) -> String {
    let window = (quota.burst() / quota.per_second.max(1e-3)).ceil().max(1.0);
    // What the window really admits: the burst, or the sustained rate over it if more.
    let admitted = (quota.per_second * window).floor().max(quota.burst());
    format!(
        "\"{}\";q={};w={}",
        scope.name(),
        admitted as u64,
        window as u64
    )
}

/// The `RateLimit` header value: `r` requests remaining, whole again in `t` seconds.
pub fn limit_header(scope: Scope, remaining: u32, reset: Duration) -> String {
    format!(
        "\"{}\";r={};t={}",
        scope.name(),
        remaining,
        reset.as_secs_f64().ceil() as u64
    )
}

/// The key a client address is limited under: an IPv4 address itself (IPv4-mapped IPv6
/// addresses too), an IPv6 address by its /64 — a host is given a whole /64 and could
/// otherwise use a fresh address, and a fresh limit, for every request.
pub fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let segments = v6.segments();
                format!(
                    "{:x}:{:x}:{:x}:{:x}::/64",
                    segments[0], segments[1], segments[2], segments[3]
                )
            }
        },
    }
}

/// Whole seconds to wait (`Retry-After`), at least one.
pub fn retry_after_secs(retry_after: Duration) -> u64 {
    (retry_after.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        per_second: 10.0,
        burst: 3,
    };

    #[test]
    fn a_burst_is_let_in_then_the_sustained_rate() {
        let mut tat = None;
        let mut at = |now: f64| {
            let (decision, stored) = gcra(tat, now, QUOTA);
            if stored.is_some() {
                tat = stored;
            }
            decision
        };
        // Three at once, with 2, 1 and 0 remaining.
        for remaining in [2, 1, 0] {
            assert!(matches!(at(0.0), Decision::Allowed { remaining: r, .. } if r == remaining));
        }
        // The fourth waits one interval (100 ms).
        match at(0.0) {
            Decision::Limited { retry_after } => {
                assert_eq!(retry_after, Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        // After it, one more; after a long pause, the burst again.
        assert!(matches!(at(100.0), Decision::Allowed { .. }));
        assert!(matches!(at(100.0), Decision::Limited { .. }));
        assert!(matches!(
            at(10_000.0),
            Decision::Allowed { remaining: 2, .. }
        ));
    }

    #[tokio::test]
    async fn limits_are_checked_in_order_and_keys_are_apart() {
        let limiter = Limiter::local(RateLimits {
            per_ip: Some(QUOTA),
            per_user: Some(Quota {
                per_second: 1.0,
                burst: 1,
            }),
            ..Default::default()
        });
        let first = limiter
            .check(&[(Scope::Ip, "192.0.2.1"), (Scope::User, "ann")])
            .await;
        assert!(matches!(
            first,
            Ok(Some(Allowance {
                scope: Scope::User,
                remaining: 0,
                ..
            }))
        ));
        let refused = limiter
            .check(&[(Scope::Ip, "192.0.2.1"), (Scope::User, "ann")])
            .await;
        assert!(matches!(
            refused,
            Err(Refusal {
                scope: Scope::User,
                ..
            })
        ));
        // Another user from the same address is let in (the address's last request at
        // once: it was charged for both of Ann's).
        let other = limiter
            .check(&[(Scope::Ip, "192.0.2.1"), (Scope::User, "bob")])
            .await;
        assert!(
            matches!(other, Ok(Some(Allowance { remaining: 0, .. }))),
            "{other:?}"
        );
        assert!(limiter.check(&[(Scope::Ip, "192.0.2.1")]).await.is_err());
        assert!(limiter.check(&[(Scope::Ip, "192.0.2.2")]).await.is_ok());
    }

    #[test]
    fn addresses_are_keyed_by_host_or_by_ipv6_prefix() {
        let key =
            |ip: &str| address_key(ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn headers_follow_the_draft() {
        assert_eq!(policy_header(Scope::User, QUOTA), "\"user\";q=10;w=1");
        let slow = Quota {
            per_second: 0.5,
            burst: 3,
        };
        assert_eq!(policy_header(Scope::User, slow), "\"user\";q=3;w=6");
        assert_eq!(
            limit_header(Scope::User, 2, Duration::from_millis(250)),
            "\"user\";r=2;t=1"
        );
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2_100)), 3);
    }
}
