//! Outbound webhooks as Standard Webhooks 1.0 defines them: the signing secret's form,
//! the `webhook-signature` of one attempt, what a receiver's answer means, and when to try
//! again. Pure functions over plain values; sending belongs to the jobs.
//!
//! A delivery is an HTTP `POST` of the event's JSON with three headers: `webhook-id` (the
//! message's id, the same on every attempt, so receivers can drop duplicates),
//! `webhook-timestamp` (this attempt's Unix time in seconds) and `webhook-signature`
//! (`v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}` under the endpoint's
//! secret; during a secret rotation one entry per valid secret, space-separated).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The prefix of a signing secret's printed form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a signing secret the portal makes (the specification asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// Delays before each retry after the first attempt fails: seconds to a day, ten attempts
/// over about three days (the schedule the specification suggests).
pub const RETRY_DELAYS: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];
/// The longest `Retry-After` honoured (a receiver cannot park a delivery for longer).
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// Why a signing secret was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_` followed by standard, padded base64.
    #[error("a signing secret is `whsec_` followed by base64")]
    Malformed,
    /// Decoded to fewer than 24 or more than 64 bytes.
    #[error("a signing secret holds 24 to 64 bytes")]
    Length,
}

/// The printed form of a secret's bytes: `whsec_` + standard base64.
pub fn secret_to_string(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The bytes of a printed secret (`whsec_` optional, as receivers' libraries accept).
pub fn parse_secret(printed: &str) -> Result<Vec<u8>, SecretError> {
    let encoded = printed.strip_prefix(SECRET_PREFIX).unwrap_or(printed);
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::Malformed)?;
    if !(24..=64).contains(&key.len()) {
        return Err(SecretError::Length);
    }
    Ok(key)
}

/// One signature: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn sign(key: &[u8], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    context.update(message_id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// The `webhook-signature` header of one attempt: a signature per valid key (the current
/// one first, then any still valid during a rotation), space-separated.
pub fn signature_header<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    keys.into_iter()
        .map(|key| sign(key, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a receiver's answer to one attempt means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `2xx`: delivered.
    Delivered,
    /// `410 Gone`: the receiver wants no more; the endpoint is disabled.
    Gone,
    /// Anything else (redirects included: they are not followed), a timeout or a
    /// connection failure: try again later.
    Failed,
}

/// The meaning of HTTP `status` (`None`: no answer — timeout, refused, reset).
pub fn answer(status: Option<u16>) -> Answer {
    match status {
        Some(200..=299) => Answer::Delivered,
        Some(410) => Answer::Gone,
        _ => Answer::Failed,
    }
}

/// When to try again after failed attempt number `attempt` (1 for the first), or `None`
/// when the schedule is spent. A receiver's `Retry-After` postpones it (never beyond
/// [`RETRY_AFTER_MAX`]) but never brings it forward; `jitter` (0.0 to 1.0, drawn by the
/// caller) spreads retries over the next tenth of the delay so failures do not return in
/// step.
pub fn next_retry(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
    let scheduled = *RETRY_DELAYS.get(index)?;
    let spread = scheduled.mul_f64(jitter.clamp(0.0, 1.0) / 10.0);
    let delay = scheduled + spread;
    Some(match retry_after {
        Some(asked) => delay.max(asked.min(RETRY_AFTER_MAX)),
        None => delay,
    })
}

/// The value of a `Retry-After` header: delay-seconds, or an HTTP date relative to `now`.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors published with the specification's libraries.
    #[test]
    fn signatures_match_the_published_vectors() {
        let vectors = [
            (
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ];
        for (secret, id, timestamp, body, expected) in vectors {
            let key = parse_secret(secret).expect("a valid secret");
            assert_eq!(sign(&key, id, timestamp, body.as_bytes()), expected);
        }
    }

    /// A receiver using the maintained `standardwebhooks` crate accepts what we send,
    /// with either key during a rotation, and refuses an altered body.
    #[test]
    fn the_standardwebhooks_crate_verifies_our_signatures() {
        let (new, old) = ([3_u8; SECRET_BYTES], [5_u8; SECRET_BYTES]);
        let body =
            br#"{"type":"account.updated","timestamp":"2026-12-06T12:00:00Z","data":{"id":"a"}}"#;
        let now = chrono::Utc::now().timestamp();
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", http::HeaderValue::from_static("msg_01"));
        headers.insert(
            "webhook-timestamp",
            http::HeaderValue::from_str(&now.to_string()).expect("digits"),
        );
        let signature = signature_header([&new[..], &old[..]], "msg_01", now, body);
        headers.insert(
            "webhook-signature",
            http::HeaderValue::from_str(&signature).expect("ascii"),
        );
        for key in [&new, &old] {
            let receiver =
                standardwebhooks::Webhook::new(&secret_to_string(key)).expect("a valid secret");
            assert!(receiver.verify(body, &headers).is_ok());
            assert!(receiver.verify(b"{}", &headers).is_err());
        }
        let stranger = standardwebhooks::Webhook::new(&secret_to_string(&[8_u8; SECRET_BYTES]))
            .expect("a valid secret");
        assert!(stranger.verify(body, &headers).is_err());
    }

    #[test]
    fn a_rotation_signs_with_every_valid_key() {
        let (new, old) = ([7_u8; 32], [9_u8; 24]);
        let header = signature_header([&new[..], &old[..]], "msg_1", 1_700_000_000, b"{}");
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            entries,
            [
                sign(&new, "msg_1", 1_700_000_000, b"{}"),
                sign(&old, "msg_1", 1_700_000_000, b"{}")
            ]
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let key = [42_u8; SECRET_BYTES];
        let printed = secret_to_string(&key);
        assert!(printed.starts_with("whsec_"));
        assert_eq!(parse_secret(&printed), Ok(key.to_vec()));
        assert_eq!(
            parse_secret("whsec_not base64!"),
            Err(SecretError::Malformed)
        );
        assert_eq!(
            parse_secret(&secret_to_string(&[1_u8; 16])),
            Err(SecretError::Length)
        );
        assert_eq!(
            parse_secret(&secret_to_string(&[1_u8; 65])),
            Err(SecretError::Length)
        );
    }

    #[test]
    fn answers_and_the_retry_schedule() {
        assert_eq!(answer(Some(200)), Answer::Delivered);
        assert_eq!(answer(Some(204)), Answer::Delivered);
        assert_eq!(answer(Some(410)), Answer::Gone);
        for failed in [Some(301), Some(400), Some(429), Some(500), Some(503), None] {
            assert_eq!(answer(failed), Answer::Failed);
        }
        assert_eq!(next_retry(1, None, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(next_retry(9, None, 0.0), Some(Duration::from_secs(86_400)));
        assert_eq!(next_retry(10, None, 0.0), None);
        assert_eq!(next_retry(0, None, 0.0), None);
        // Jitter adds at most a tenth.
        assert_eq!(next_retry(2, None, 1.0), Some(Duration::from_secs(330)));
        // Retry-After postpones, never brings forward, and is capped.
        assert_eq!(
            next_retry(1, Some(Duration::from_secs(60)), 0.0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_retry(2, Some(Duration::from_secs(1)), 0.0),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            next_retry(1, Some(Duration::from_secs(7 * 86_400)), 0.0),
            Some(RETRY_AFTER_MAX)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .expect("a time")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 11:00:00 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
