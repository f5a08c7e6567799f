//! The HTTP client connectors call remotes with: JSON answers, a timeout, no redirects
//! (a redirect would carry the credentials along), and retries of what is worth
//! retrying — rate limits (after the remote's `Retry-After`, capped, else exponential
//! backoff with jitter), conflicts, 5xx and network failures — unless the remote says
//! not to (Stripe's `Stripe-Should-Retry: false`). What is left after the last attempt
//! comes back as a [`RemoteError`] that says whether trying later can help.

use std::time::Duration;

use rand::Rng as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::limits::{Limit, Limiter};

/// Longest remote error message kept.
const MESSAGE_MAX: usize = 300;

/// Why a remote call failed, after retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The credentials were refused (401, 403): trying again cannot help until they are
    /// replaced.
    #[error("the remote refused the credentials: {0}")]
    Unauthorized(String),
    /// Still rate limited after the retries; try after `retry_after` if the remote said.
    #[error("the remote is rate limiting us")]
    RateLimited {
        /// What the remote asked for, if anything.
        retry_after: Option<Duration>,
    },
    /// The remote failed (5xx, 409) or could not be reached.
    #[error("the remote is unavailable: {0}")]
    Unavailable(String),
    /// The remote refused this request (another 4xx): about this record, not the remote.
    #[error("the remote refused the request ({status}): {message}")]
    Rejected {
        /// Its status code.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("the remote answered something unreadable: {0}")]
    Malformed(String),
}

impl RemoteError {
    /// Whether the remote as a whole is failing (counts towards the circuit breaker).
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable(_) | Self::Malformed(_)
        )
    }
}

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff; doubles per attempt, with full jitter.
    pub base: Duration,
    /// Longest backoff between two attempts.
    pub cap: Duration,
    /// Longest `Retry-After` waited for within a call (longer: give up and say when).
    pub max_retry_after: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One request.
#[derive(Clone, Debug)]
pub struct Call<'a> {
    /// `GET` or `POST`.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// Query parameters.
    pub query: &'a [(String, String)],
    /// A form body (`POST`).
    pub form: Option<&'a [(String, String)]>,
    /// A JSON body (`POST`, `PATCH`).
    pub json: Option<&'a Value>,
    /// Extra headers (authorization, versions, idempotency keys).
    pub headers: &'a [(&'static str, String)],
    /// A header by which the remote says whether to retry (`true`/`false`).
    pub should_retry_header: Option<&'static str>,
    /// The remote's own reading of a failed answer (its status, headers and body), where
    /// status codes alone do not say enough: which rate limit was hit and for how long,
    /// a lock to wait out.
    pub classify: Option<Classify>,
    /// The client-side limit the call is paced by (every attempt counts).
    pub limit: Option<Limit<'a>>,
}

/// A remote's reading of a failed answer: the error and how long to wait before trying
/// again (`None` for the usual backoff), or `None` to classify by status code.
pub type Classify =
    fn(StatusCode, &reqwest::header::HeaderMap, &[u8]) -> Option<(RemoteError, Option<Duration>)>;

/// A remote HTTP client (cheap to clone; clones share connections and pacing).
#[derive(Clone, Debug)]
pub struct Remote {
    http: reqwest::Client,
    policy: RetryPolicy,
    limiter: Limiter,
}

impl Remote {
    /// A client trying as `policy` says.
    pub fn new(policy: RetryPolicy) -> Result<Self, RemoteError> {
        // reqwest is built without a default TLS provider: ring, process-wide (idempotent).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(policy.timeout)
            .user_agent(concat!("portal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| RemoteError::Unavailable(err.to_string()))?;
        Ok(Self {
            http,
            policy,
            limiter: Limiter::default(),
        })
    }

    /// The underlying client (for calls made through another library, such as OAuth
    /// token requests): same timeout, no redirects, no proxies.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `call`, retrying as the policy says; the JSON body of a 2xx answer.
    pub async fn send(&self, call: &Call<'_>) -> Result<Value, RemoteError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(limit) = &call.limit {
                self.limiter.acquire(limit).await;
            }
            let (failure, wait) = match self.once(call).await {
                Ok(value) => return Ok(value),
                Err(Failure::Final(err)) => return Err(err),
                Err(Failure::Retry { error, after }) => (error, after),
            };
            if attempt >= self.policy.attempts {
                return Err(failure);
            }
            let wait = match wait {
                Some(after) if after <= self.policy.max_retry_after => after,
                Some(_) => return Err(failure),
                None => self.backoff(attempt),
            };
            tracing::debug!(url = %redact(&call.url), attempt, ?wait, %failure, "retrying a remote call");
            tokio::time::sleep(wait).await;
        }
    }

    /// Full-jitter exponential backoff before attempt `attempt + 1`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .base
            .saturating_mul(1 << attempt.min(16))
            .min(self.policy.cap);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
    }

    async fn once(&self, call: &Call<'_>) -> Result<Value, Failure> {
        let mut request = self
            .http
            .request(call.method.clone(), &call.url)
            .header(reqwest::header::ACCEPT, "application/json");
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(form) = call.form {
            request = request.form(form);
        }
        if let Some(json) = call.json {
            request = request.json(json);
        }
        for (name, value) in call.headers {
            request = request.header(*name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                return Err(Failure::Retry {
                    error: RemoteError::Unavailable(without_url(&err)),
                    after: None,
                });
            }
        };
        let status = response.status();
        let should_retry = call
            .should_retry_header
            .and_then(|name| response.headers().get(name))
            .and_then(|value| value.to_str().ok())
            .map(|value| value.eq_ignore_ascii_case("true"));
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => {
                return Err(Failure::Retry {
                    error: RemoteError::Unavailable(without_url(&err)),
                    after: None,
                });
            }
        };
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|err| {
                Failure::Final(RemoteError::Malformed(format!(
                    "status {status}, {}",
                    truncate(&err.to_string())
                )))
            });
        }
        if let Some((error, after)) = call.classify.and_then(|read| read(status, &headers, &body)) {
            return Err(match error {
                RemoteError::Unauthorized(_) | RemoteError::Rejected { .. } => {
                    Failure::Final(error)
                }
                _ => Failure::Retry {
                    error,
                    after: after.or(retry_after),
                },
            });
        }
        let message = error_message(&body);
        let error = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Failure::Final(RemoteError::Unauthorized(message)));
            }
            StatusCode::TOO_MANY_REQUESTS => RemoteError::RateLimited { retry_after },
            StatusCode::CONFLICT => RemoteError::Unavailable(message),
            status if status.is_server_error() => {
                RemoteError::Unavailable(format!("status {status}: {message}"))
            }
            status => RemoteError::Rejected {
                status: status.as_u16(),
                message,
            },
        };
        let transient = !matches!(error, RemoteError::Rejected { .. });
        match should_retry {
            Some(false) => Err(Failure::Final(error)),
            Some(true) => Err(Failure::Retry {
                error,
                after: retry_after,
            }),
            None if transient => Err(Failure::Retry {
                error,
                after: retry_after,
            }),
            None => Err(Failure::Final(error)),
        }
    }
}

enum Failure {
    Retry {
        error: RemoteError,
        after: Option<Duration>,
    },
    Final(RemoteError),
}

/// The message of a JSON error body (`{"error": {"message"}}`, `{"message"}`), else
/// the start of the body.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|value| {
        value
            .pointer("/error/message")
            .or_else(|| value.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    truncate(&message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()))
}

fn truncate(text: &str) -> String {
    text.chars().take(MESSAGE_MAX).collect()
}

/// A reqwest error without its URL (query strings may carry ids worth not logging).
fn without_url(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// `url` without its query string.
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_documented_envelope() {
        let stripe = br#"{"error":{"message":"Invalid API Key provided: sk_test_****","type":"invalid_request_error"}}"#;
        assert_eq!(
            error_message(stripe),
            "Invalid API Key provided: sk_test_****"
        );
        assert_eq!(error_message(br#"{"message":"nope"}"#), "nope");
        assert_eq!(error_message(b"<html>"), "<html>");
    }

    #[test]
    fn backoff_grows_and_is_capped() -> Result<(), RemoteError> {
        let remote = Remote::new(RetryPolicy::default())?;
        for attempt in 1..20 {
            assert!(remote.backoff(attempt) <= Duration::from_secs(10));
        }
        assert!(remote.backoff(1) <= Duration::from_millis(500));
        Ok(())
    }
}
