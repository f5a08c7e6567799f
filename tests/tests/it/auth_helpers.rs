//! Helpers of the sign-in, session and API-key tests: requests with bearer credentials.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use portal::seed::DEMO_PASSWORD;
use portal_entities::platform::audit_event;
use portal_tests::TestPortal;

pub const SIGN_IN: &str = "mutation($t: String!, $e: String!, $p: String!) { signIn(input: { tenant: $t, email: $e, password: $p }) { auth { accessToken accessTokenExpiresAt refreshToken session { id current authMethod } user { id email } } mfa { token expiresAt enrollment { secret otpauthUri } } } }";
pub const ME: &str = "{ me { id email roles { name } } }";

/// Posts `query` with `variables`, with `Authorization: Bearer <token>` when given.
pub async fn post(
    portal: &TestPortal,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = portal
        .http()
        .post(&portal.endpoint)
        .header("user-agent", "portal-tests/1")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

/// Signs in and returns the whole response.
pub async fn sign_in(
    portal: &TestPortal,
    tenant: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<Value> {
    let vars = json!({ "t": tenant, "e": email, "p": password });
    Ok(post(portal, None, SIGN_IN, vars).await?.1)
}

/// Signs in with the demo password and returns `(access token, refresh token, session id)`.
pub async fn session_of(
    portal: &TestPortal,
    email: &str,
) -> anyhow::Result<(String, String, Uuid)> {
    let response = sign_in(portal, "acme", email, DEMO_PASSWORD).await?;
    let payload = &response["data"]["signIn"]["auth"];
    let access = payload["accessToken"].as_str();
    let refresh = payload["refreshToken"].as_str();
    let id = payload["session"]["id"].as_str().map(Uuid::parse_str);
    match (access, refresh, id) {
        (Some(a), Some(r), Some(Ok(id))) => Ok((a.to_owned(), r.to_owned(), id)),
        _ => anyhow::bail!("sign-in failed: {response}"),
    }
}

pub fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

/// Waits (up to 5 s) until the gateway refuses `token`; returns how long it took.
pub async fn refused_within(portal: &TestPortal, token: &str) -> anyhow::Result<Duration> {
    let start = std::time::Instant::now();
    loop {
        let (status, body) = post(portal, Some(token), ME, json!({})).await?;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(5),
            "token still accepted after 5 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The TOTP code of `secret` (base32) for the time step `offset` steps from now.
pub fn totp_code(secret: &str, offset: i64) -> anyhow::Result<String> {
    let secret = totp_rs::Secret::try_from_base32(secret)
        .map_err(|err| anyhow::anyhow!("secret: {err:?}"))?;
    let totp = totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .map_err(|err| anyhow::anyhow!("totp: {err:?}"))?;
    let now = chrono::Utc::now().timestamp() + offset * 30;
    Ok(totp.generate(u64::try_from(now)?).to_string())
}

/// Enrols a TOTP factor for the holder of `token` (a demo user: the demo password
/// confirms the enrolment) and steps the session up with the next code; returns
/// `(secret, recovery codes)`.
pub async fn enroll_mfa(portal: &TestPortal, token: &str) -> anyhow::Result<(String, Vec<String>)> {
    let (_, begun) = post(
        portal,
        Some(token),
        "mutation($p: String) { beginMfaEnrollment(currentPassword: $p) { secret otpauthUri } }",
        json!({ "p": DEMO_PASSWORD }),
    )
    .await?;
    let secret = begun["data"]["beginMfaEnrollment"]["secret"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("enrolment failed: {begun}"))?
        .to_owned();
    let confirm = "mutation($c: String!) { confirmMfaEnrollment(code: $c) }";
    let (_, confirmed) = post(
        portal,
        Some(token),
        confirm,
        json!({ "c": totp_code(&secret, 0)? }),
    )
    .await?;
    let codes = confirmed["data"]["confirmMfaEnrollment"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("confirmation failed: {confirmed}"))?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    let step_up = "mutation($c: String!) { stepUp(code: $c) }";
    let (_, stepped) = post(
        portal,
        Some(token),
        step_up,
        json!({ "c": totp_code(&secret, 1)? }),
    )
    .await?;
    anyhow::ensure!(
        stepped["data"]["stepUp"] == true,
        "step-up failed: {stepped}"
    );
    Ok((secret, codes))
}

/// The audit trail of `actions`, as (action, outcome) pairs in the order recorded.
pub async fn audit_trail(
    portal: &TestPortal,
    actions: &[&str],
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::Action.is_in(actions.iter().copied()))
        .all(&portal.db)
        .await?
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect())
}

/// The outcomes recorded for `action`.
pub async fn audit_outcomes(portal: &TestPortal, action: &str) -> anyhow::Result<Vec<String>> {
    Ok(audit_trail(portal, &[action])
        .await?
        .into_iter()
        .map(|(_, outcome)| outcome)
        .collect())
}

/// The token of the first link in `mail` that starts with `marker` (`…?token=`).
pub fn token_after(mail: &str, marker: &str) -> anyhow::Result<String> {
    let start = mail
        .find(marker)
        .ok_or_else(|| anyhow::anyhow!("no `{marker}` link in: {mail}"))?;
    Ok(mail[start + marker.len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}
