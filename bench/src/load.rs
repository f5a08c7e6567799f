//! A closed-loop HTTP load generator: `concurrency` workers, each with its own connection,
//! each sending the next request as soon as the previous one has been answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portal_kit::internal_token::{HEADER, InternalTokenKey};
use portal_kit::{Actor, RequestMeta};
use serde_json::Value;

use crate::seed::Demo;
use portal_bench::processes::SECRET;

/// Where requests go and how they authenticate.
pub enum Target {
    /// Through the gateway, with identity headers.
    Gateway {
        /// GraphQL URL.
        url: String,
        /// Headers sent with every request.
        headers: Vec<(String, String)>,
    },
    /// Straight to a subgraph, with a freshly signed internal token per request (as the
    /// gateway does).
    Direct {
        /// GraphQL URL.
        url: String,
        /// The signing key.
        key: Box<InternalTokenKey>,
        /// The actor named in the tokens.
        actor: Actor,
    },
}

impl Target {
    /// The gateway at `url`.
    pub fn gateway(url: &str, headers: Vec<(String, String)>) -> Self {
        Self::Gateway {
            url: url.to_owned(),
            headers,
        }
    }

    /// The subgraph at `url`, acting as the demo user.
    pub fn direct(url: &str, demo: &Demo) -> Self {
        Self::Direct {
            url: url.to_owned(),
            key: Box::new(InternalTokenKey::new(SECRET.as_bytes())),
            actor: Actor::user(demo.user_id, demo.tenant_id, vec![]),
        }
    }

    fn request(&self, http: &reqwest::Client, body: &[u8]) -> reqwest::RequestBuilder {
        let builder = match self {
            Self::Gateway { url, headers } => {
                let mut builder = http.post(url);
                for (name, value) in headers {
                    builder = builder.header(name, value);
                }
                builder
            }
            Self::Direct { url, key, actor } => {
                let token = key.sign("accounts", actor, &RequestMeta::default());
                http.post(url).header(HEADER, token)
            }
        };
        builder
            .header("content-type", "application/json")
            .body(body.to_vec())
    }
}

/// One scenario of the mix.
pub struct Scenario {
    /// Human-readable name.
    pub name: &'static str,
    /// Where to send it.
    pub target: Target,
    /// The GraphQL request bodies, sent in turn.
    pub bodies: Vec<Value>,
}

/// What one scenario measured.
pub struct Outcome {
    name: &'static str,
    offered: f64,
    /// Requests per second.
    pub rps: f64,
    /// Requests that failed (transport error, non-200, or GraphQL errors).
    pub errors: u64,
    requests: u64,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
}

impl Outcome {
    /// One line of the report.
    pub fn line(&self) -> String {
        let offered = if self.offered > 0.0 {
            format!(" (offered {:.0})", self.offered)
        } else {
            String::new()
        };
        format!(
            "{:<62} {:>9.0} req/s{offered}  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.1} ms  {} requests, {} errors",
            self.name,
            self.rps,
            ms(self.p50),
            ms(self.p95),
            ms(self.p99),
            ms(self.max),
            self.requests,
            self.errors
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct WorkerResult {
    latencies: Vec<Duration>,
    errors: u64,
}

/// Runs `scenario` with `concurrency` connections: `warmup`, then `duration` measured.
///
/// With `rate` = 0 each connection is a closed loop (next request when the previous one is
/// answered: measures capacity). With `rate` > 0 the connections together send `rate`
/// requests per second on a fixed schedule (open loop: measures latency at that load), and
/// latency counts from the scheduled send time, so a slow server cannot hide its queueing.
pub async fn run(
    scenario: &Scenario,
    concurrency: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .http1_only()
        .build()?;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        scenario
            .bodies
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()?,
    );
    let target = Arc::new(match &scenario.target {
        Target::Gateway { url, headers } => Target::Gateway {
            url: url.clone(),
            headers: headers.clone(),
        },
        Target::Direct { url, key, actor } => Target::Direct {
            url: url.clone(),
            key: key.clone(),
            actor: actor.clone(),
        },
    });
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(concurrency as f64 / rate));
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let http = http.clone();
        let bodies = bodies.clone();
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let mut result = WorkerResult {
                latencies: Vec::new(),
                errors: 0,
            };
            // Spread the workers' schedules evenly over one interval.
            let mut next = interval.map(|i| start + i.mul_f64(worker as f64 / concurrency as f64));
            let mut turn = worker;
            loop {
                let body = &bodies[turn % bodies.len()];
                turn += 1;
                let sent = match (&mut next, interval) {
                    (Some(at), Some(interval)) => {
                        tokio::time::sleep_until((*at).into()).await;
                        let scheduled = *at;
                        *at += interval;
                        scheduled
                    }
                    _ => Instant::now(),
                };
                if sent >= stop_at {
                    break;
                }
                let ok = match target.request(&http, body).send().await {
                    Ok(response) if response.status().is_success() => {
                        match response.bytes().await {
                            Ok(bytes) => !contains(&bytes, b"\"errors\""),
                            Err(_) => false,
                        }
                    }
                    _ => false,
                };
                if sent >= measure_from {
                    result.latencies.push(sent.elapsed());
                    if !ok {
                        result.errors += 1;
                    }
                }
            }
            result
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let result = worker.await?;
        latencies.extend(result.latencies);
        errors += result.errors;
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Outcome {
        name: scenario.name,
        rps: latencies.len() as f64 / duration.as_secs_f64(),
        offered: rate,
        errors,
        requests: latencies.len() as u64,
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
