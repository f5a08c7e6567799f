//! What the logs hold, read back as an operator's log pipeline would: JSON lines at every
//! level (TRACE, all crates), from a portal whose gateway reaches its subgraphs over HTTP.
//!
//! - Every line written while serving a request carries the request's id and trace id —
//!   at the gateway and at the subgraph it called — and a client's `traceparent` and
//!   `x-request-id` are the ones used.
//! - No secret of the sign-in, MFA, refresh, password-reset and API-key flows appears in
//!   any line: passwords, access and refresh tokens, the MFA secret, codes and challenge,
//!   recovery codes, the reset token, the API key.
//!
//! Its own test binary: the log subscriber is global to a process.

#[allow(dead_code)]
#[path = "it/auth_helpers.rs"]
mod auth_helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use auth_helpers::{SIGN_IN, enroll_mfa, post, session_of, totp_code};
use portal::seed::DEMO_PASSWORD;
use portal_tests::{Mode, TestPortal};

/// Where the subscriber writes: one buffer for the whole process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

const NEW_PASSWORD: &str = "a much longer passphrase, freshly chosen";

/// Whether `haystack` holds `needle` as a whole token (not inside a longer run of letters
/// and digits): six-digit codes must not match inside ids or numbers.
fn holds_token(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_lines_are_correlated_and_no_secret_is_ever_logged() -> anyhow::Result<()> {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .json()
            .with_span_list(true)
            .with_current_span(false)
            .without_time()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    )?;

    let mut settings = portal_tests::identity_settings();
    settings.public_url = "http://portal.test/".into();
    let portal = TestPortal::start_with(Mode::Distributed, settings).await?;
    let mut secrets: Vec<String> = vec![DEMO_PASSWORD.to_owned(), NEW_PASSWORD.to_owned()];

    // A request with the client's own trace and request id, which reaches a subgraph.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let request_id = "logs-test-request-1";
    let (carol, refresh, _) = session_of(&portal, "carol@acme.example").await?;
    secrets.extend([carol.clone(), refresh.clone()]);
    let traced = portal
        .http()
        .post(&portal.endpoint)
        .bearer_auth(&carol)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .header("x-request-id", request_id)
        .json(
            &json!({ "query": "query Accounts { accounts(first: 1) { edges { node { id } } } }" }),
        )
        .send()
        .await?;
    assert_eq!(
        traced
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(request_id)
    );
    let body: Value = traced.json().await?;
    assert!(body["errors"].is_null(), "{body}");

    // MFA: enrolment (secret, codes, step-up), then a sign-in with a challenge.
    let (secret, recovery) = enroll_mfa(&portal, &carol).await?;
    secrets.push(secret.clone());
    secrets.extend(recovery.iter().cloned());
    let (_, challenged) = post(
        &portal,
        None,
        SIGN_IN,
        json!({ "t": "acme", "e": "carol@acme.example", "p": DEMO_PASSWORD }),
    )
    .await?;
    let challenge = challenged["data"]["signIn"]["mfa"]["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no challenge: {challenged}"))?
        .to_owned();
    // Both codes of this time window were used by the enrolment: a recovery code.
    let code = recovery
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no recovery codes"))?;
    let (_, completed) = post(
        &portal,
        None,
        "mutation($c: String!, $k: String!) { completeSignIn(challenge: $c, code: $k) { accessToken refreshToken } }",
        json!({ "c": challenge, "k": code }),
    )
    .await?;
    let mfa_access = completed["data"]["completeSignIn"]["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("MFA sign-in failed: {completed}"))?
        .to_owned();
    secrets.extend([challenge, code, mfa_access]);
    for offset in 0..=1 {
        secrets.push(totp_code(&secret, offset)?);
    }

    // Refresh: the rotated pair.
    let (_, rotated) = post(
        &portal,
        None,
        "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken refreshToken } }",
        json!({ "r": refresh }),
    )
    .await?;
    for field in ["accessToken", "refreshToken"] {
        let value = rotated["data"]["refreshSession"][field]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("refresh failed: {rotated}"))?;
        secrets.push(value.to_owned());
    }

    // Password reset: the token from the mail, and the new password.
    let (_, requested) = post(
        &portal,
        None,
        "mutation($t: String!, $e: String!) { requestPasswordReset(tenant: $t, email: $e) }",
        json!({ "t": "acme", "e": "bob@acme.example" }),
    )
    .await?;
    assert_eq!(
        requested["data"]["requestPasswordReset"], true,
        "{requested}"
    );
    let mail = portal.next_mail_to("bob@acme.example").await?;
    let marker = "http://portal.test/reset-password?token=";
    let token: String = mail
        .split(marker)
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        })
        .ok_or_else(|| anyhow::anyhow!("no reset link: {mail}"))?;
    secrets.push(token.clone());
    let (_, reset) = post(
        &portal,
        None,
        "mutation($k: String!, $p: String!) { completePasswordReset(token: $k, newPassword: $p) }",
        json!({ "k": token, "p": NEW_PASSWORD }),
    )
    .await?;
    assert_eq!(reset["data"]["completePasswordReset"], true, "{reset}");
    // A wrong password is refused (and logged as a failure, without the password).
    let (_, wrong) = post(
        &portal,
        None,
        SIGN_IN,
        json!({ "t": "acme", "e": "bob@acme.example", "p": "not the password at all" }),
    )
    .await?;
    assert!(wrong["errors"].is_array(), "{wrong}");
    secrets.push("not the password at all".to_owned());

    // An API key, created and used.
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    secrets.push(alice.clone());
    // Minting a key needs a second factor confirmed on the session.
    let (alice_secret, alice_recovery) = enroll_mfa(&portal, &alice).await?;
    secrets.push(alice_secret.clone());
    secrets.extend(alice_recovery);
    for offset in 0..=1 {
        secrets.push(totp_code(&alice_secret, offset)?);
    }
    let (_, account) = post(
        &portal,
        Some(&alice),
        "mutation { createServiceAccount(input: { name: \"crm\", description: \"sync\" }) { id } }",
        json!({}),
    )
    .await?;
    let account_id = account["data"]["createServiceAccount"]["id"].clone();
    let (_, created) = post(
        &portal,
        Some(&alice),
        "mutation($a: ID!) { createApiKey(input: { serviceAccountId: $a, name: \"prod\", roles: [\"auditor\"] }) { key } }",
        json!({ "a": account_id }),
    )
    .await?;
    let key = created["data"]["createApiKey"]["key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no API key: {created}"))?
        .to_owned();
    let used = portal
        .http()
        .post(&portal.endpoint)
        .header("x-api-key", &key)
        .json(&json!({ "query": "{ auditEvents(first: 1) { edges { node { action } } } }" }))
        .send()
        .await?;
    assert!(used.status().is_success());
    secrets.push(key);

    portal.stop().await;
    let logs = captured.text();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        lines.len() > 100,
        "too few log lines to judge: {}",
        lines.len()
    );

    // No secret anywhere, at any level.
    for secret in &secrets {
        assert!(secret.len() >= 6, "not a secret worth checking: {secret}");
        assert!(
            !holds_token(&logs, secret),
            "a secret appears in the logs: {}…",
            &secret[..4]
        );
    }

    // Every line inside a request span carries its id and trace id; the traced request's
    // lines, at the gateway and at the subgraph, carry the client's.
    let request_span = |line: &Value| -> Option<Value> {
        line["spans"]
            .as_array()?
            .iter()
            .find(|span| span["name"] == "request")
            .cloned()
    };
    let mut traced_lines = 0;
    let mut traced_subgraph_lines = 0;
    for line in &lines {
        let spans = line["spans"].as_array().cloned().unwrap_or_default();
        let in_fetch = spans.iter().any(|span| span["name"] == "subgraph_fetch");
        let Some(span) = request_span(line) else {
            assert!(!in_fetch, "a subgraph fetch outside a request: {line}");
            continue;
        };
        let id = span["request_id"].as_str().unwrap_or_default();
        let trace = span["trace_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty() && trace.len() == 32, "{line}");
        if id == request_id {
            assert_eq!(trace, trace_id, "{line}");
            traced_lines += 1;
            if line["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("portal_kit::serve"))
            {
                traced_subgraph_lines += 1;
            }
        }
    }
    assert!(traced_lines > 0, "no line of the traced request");
    assert!(
        traced_subgraph_lines > 0,
        "the subgraph logged nothing under the client's request id and trace"
    );
    Ok(())
}
