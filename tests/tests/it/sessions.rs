//! Sign-in and sessions through the gateway: password sign-in with indistinguishable
//! failures and a database-held lockout, bearer access tokens verified by the gateway,
//! refresh-token rotation with reuse detection, revocation that takes effect within
//! seconds, deactivation, tenant timeouts, password change and key rotation.

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use portal::seed::DEMO_PASSWORD;
use portal_entities::identity::session;
use portal_entities::platform::audit_event;
use portal_kit::access_token::{AUDIENCE, AccessClaims, SigningKey};
use portal_tests::{Mode, TestPortal};

use crate::auth_helpers::{
    ME, audit_outcomes, code, post, refused_within, session_of, sign_in, token_after,
};

const REFRESH: &str = "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken refreshToken session { id } } }";

async fn signs_in_and_acts_through_the_gateway(mode: Mode) -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(mode).await?;
    let response = sign_in(&portal, "acme", " Carol@Acme.example ", DEMO_PASSWORD).await?;
    let payload = &response["data"]["signIn"]["auth"];
    assert_eq!(payload["user"]["email"], "carol@acme.example", "{response}");
    assert_eq!(payload["session"]["current"], true);
    assert_eq!(payload["session"]["authMethod"], "password");
    let token = payload["accessToken"].as_str().unwrap_or_default();
    assert!(
        payload["refreshToken"]
            .as_str()
            .is_some_and(|t| t.starts_with("prt_")),
        "{response}"
    );

    let (status, me) = post(&portal, Some(token), ME, json!({})).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["data"]["me"],
        json!({
            "id": portal.seed.carol_id.to_string(),
            "email": "carol@acme.example",
            "roles": [{ "name": "customer_user" }]
        }),
        "{me}"
    );
    // Roles in the token decide: Carol is no auditor, Alice is a tenant admin.
    let audit = "{ auditEvents(first: 5) { edges { node { action } } } }";
    let (_, denied) = post(&portal, Some(token), audit, json!({})).await?;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    let (_, allowed) = post(&portal, Some(&alice), audit, json!({})).await?;
    assert!(allowed["errors"].is_null(), "{allowed}");

    // The stored session has the device and address, and the sign-in is audited.
    let stored = session::Entity::find()
        .filter(session::Column::UserId.eq(portal.seed.carol_id))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no session stored"))?;
    assert_eq!(stored.user_agent.as_deref(), Some("portal-tests/1"));
    assert_eq!(stored.source_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        audit_outcomes(&portal, "auth.sign_in")
            .await?
            .contains(&"success".to_owned())
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in_and_acts_through_the_gateway_all_in_one() -> anyhow::Result<()> {
    signs_in_and_acts_through_the_gateway(Mode::AllInOne).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in_and_acts_through_the_gateway_over_http() -> anyhow::Result<()> {
    signs_in_and_acts_through_the_gateway(Mode::Distributed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_look_alike_and_lock_the_account() -> anyhow::Result<()> {
    let clock = portal_kit::clock::ManualClock::starting_at(Utc::now());
    let mut settings = portal_tests::identity_settings();
    settings.clock = clock.clone();
    let portal = TestPortal::start_with(Mode::AllInOne, settings).await?;
    let failures = [
        sign_in(&portal, "acme", "carol@acme.example", "wrong password 123").await?,
        sign_in(&portal, "acme", "nobody@acme.example", DEMO_PASSWORD).await?,
        sign_in(
            &portal,
            "no-such-tenant",
            "carol@acme.example",
            DEMO_PASSWORD,
        )
        .await?,
        sign_in(&portal, "globex", "carol@acme.example", DEMO_PASSWORD).await?,
    ];
    for failure in &failures {
        assert!(failure["data"].is_null(), "{failure}");
        assert_eq!(failure["errors"], failures[0]["errors"], "failures differ");
        assert_eq!(code(failure), "UNAUTHENTICATED");
    }
    assert_eq!(
        failures[0]["errors"][0]["message"],
        "invalid tenant, email or password"
    );

    // Four more wrong passwords (five in all) lock Carol's account: now even the right
    // password is refused, with a code that does not depend on the account existing.
    for _ in 0..4 {
        let failure = sign_in(&portal, "acme", "carol@acme.example", "wrong password 456").await?;
        assert_eq!(code(&failure), "UNAUTHENTICATED", "{failure}");
    }
    let locked = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert_eq!(code(&locked), "RATE_LIMITED", "{locked}");
    for _ in 0..4 {
        sign_in(&portal, "acme", "nobody@acme.example", "whatever password").await?;
    }
    let ghost = sign_in(&portal, "acme", "nobody@acme.example", "whatever password").await?;
    assert_eq!(
        code(&ghost),
        "RATE_LIMITED",
        "a missing account locks alike: {ghost}"
    );
    // Another account from the same address is unaffected.
    session_of(&portal, "bob@acme.example").await?;

    // The lock is in the database, so a second gateway over the same database honours it.
    let second =
        TestPortal::start_on(Mode::AllInOne, portal.db.clone(), portal.seed.clone()).await?;
    let elsewhere = sign_in(&second, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert_eq!(code(&elsewhere), "RATE_LIMITED", "{elsewhere}");

    // Failures are audited in the tenant, without the password.
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("auth.sign_in"))
        .filter(audit_event::Column::Outcome.eq("failure"))
        .all(&portal.db)
        .await?;
    assert!(events.len() >= 9, "{} failure events", events.len());
    assert!(events.iter().all(|e| e.tenant_id.is_some()));
    let details: Vec<String> = events.iter().map(|e| format!("{:?}", e.details)).collect();
    assert!(details.iter().any(|d| d.contains("wrong_password")));
    assert!(details.iter().any(|d| d.contains("locked")));
    assert!(
        !details.iter().any(|d| d.contains("wrong password")),
        "{details:?}"
    );

    // The lock lasts 15 minutes on identity's clock; then the right password works again.
    clock.advance(chrono::Duration::minutes(14));
    let still = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert_eq!(code(&still), "RATE_LIMITED", "{still}");
    clock.advance(chrono::Duration::minutes(1) + chrono::Duration::seconds(1));
    let open = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert!(open["data"]["signIn"]["auth"].is_object(), "{open}");
    // (The second gateway shares the database: stopped last.)
    second.stop().await;
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (access, first, session_id) = session_of(&portal, "carol@acme.example").await?;
    let (_, rotated) = post(&portal, None, REFRESH, json!({ "r": first })).await?;
    let payload = &rotated["data"]["refreshSession"];
    assert_eq!(
        payload["session"]["id"],
        session_id.to_string(),
        "{rotated}"
    );
    let second = payload["refreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let new_access = payload["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(second, first);
    let (status, _) = post(&portal, Some(&new_access), ME, json!({})).await?;
    assert_eq!(status, StatusCode::OK);

    // The first token again: somebody copied it. The whole session ends.
    let (_, reused) = post(&portal, None, REFRESH, json!({ "r": first })).await?;
    assert_eq!(code(&reused), "UNAUTHENTICATED", "{reused}");
    let (_, after) = post(&portal, None, REFRESH, json!({ "r": second })).await?;
    assert_eq!(
        code(&after),
        "UNAUTHENTICATED",
        "the family is revoked: {after}"
    );
    refused_within(&portal, &access).await?;
    refused_within(&portal, &new_access).await?;
    assert_eq!(
        audit_outcomes(&portal, "auth.refresh_reuse").await?,
        ["success"]
    );

    let (_, garbage) = post(&portal, None, REFRESH, json!({ "r": "prt_nonsense" })).await?;
    assert_eq!(code(&garbage), "UNAUTHENTICATED");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_list_and_revoke_sessions_and_the_gateway_stops_them_within_seconds()
-> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (laptop, _, laptop_id) = session_of(&portal, "carol@acme.example").await?;
    let (phone, phone_refresh, _) = session_of(&portal, "carol@acme.example").await?;
    let list = "{ mySessions { id current device ipAddress lastSeenAt expiresAt } }";
    let (_, sessions) = post(&portal, Some(&laptop), list, json!({})).await?;
    let rows = sessions["data"]["mySessions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 2, "{sessions}");
    let current: Vec<_> = rows.iter().filter(|r| r["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop_id.to_string());
    assert_eq!(current[0]["device"], "portal-tests/1");

    // From the laptop, end every other session: the phone's token stops working.
    let (_, revoked) = post(
        &portal,
        Some(&laptop),
        "mutation { revokeOtherSessions }",
        json!({}),
    )
    .await?;
    assert_eq!(revoked["data"]["revokeOtherSessions"], 1, "{revoked}");
    let took = refused_within(&portal, &phone).await?;
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let (_, refresh) = post(&portal, None, REFRESH, json!({ "r": phone_refresh })).await?;
    assert_eq!(code(&refresh), "UNAUTHENTICATED");
    let (status, _) = post(&portal, Some(&laptop), ME, json!({})).await?;
    assert_eq!(status, StatusCode::OK, "the current session lives on");

    // Another user's session id is not found; then sign out.
    let (alice, _, alice_session) = session_of(&portal, "alice@acme.example").await?;
    let (_, foreign) = post(
        &portal,
        Some(&laptop),
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": alice_session.to_string() }),
    )
    .await?;
    assert_eq!(code(&foreign), "NOT_FOUND", "{foreign}");
    let (_, out) = post(&portal, Some(&laptop), "mutation { signOut }", json!({})).await?;
    assert_eq!(out["data"]["signOut"], true, "{out}");
    refused_within(&portal, &laptop).await?;
    let (status, _) = post(&portal, Some(&alice), ME, json!({})).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit_outcomes(&portal, "auth.sign_out").await?, ["success"]);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_revoke_sessions_and_deactivation_is_immediate() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    let (carol, _, _) = session_of(&portal, "carol@acme.example").await?;
    let carol_id = portal.seed.carol_id.to_string();
    let revoke = "mutation($u: ID!) { revokeUserSessions(userId: $u) }";

    let (_, denied) = post(
        &portal,
        Some(&carol),
        revoke,
        json!({ "u": portal.seed.alice_id.to_string() }),
    )
    .await?;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let (_, done) = post(&portal, Some(&alice), revoke, json!({ "u": carol_id })).await?;
    assert_eq!(done["data"]["revokeUserSessions"], 1, "{done}");
    refused_within(&portal, &carol).await?;

    // Another tenant's admin cannot reach Carol.
    let globex = sign_in(&portal, "globex", "gina@globex.example", DEMO_PASSWORD).await?;
    let gina = globex["data"]["signIn"]["auth"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, cross) = post(&portal, Some(&gina), revoke, json!({ "u": carol_id })).await?;
    assert!(matches!(code(&cross), "NOT_FOUND" | "FORBIDDEN"), "{cross}");

    let (carol, _, _) = session_of(&portal, "carol@acme.example").await?;
    let deactivate =
        "mutation($u: ID!) { updateUser(id: $u, input: { status: DISABLED }) { status } }";
    let (_, disabled) = post(&portal, Some(&alice), deactivate, json!({ "u": carol_id })).await?;
    assert_eq!(
        disabled["data"]["updateUser"]["status"], "DISABLED",
        "{disabled}"
    );
    refused_within(&portal, &carol).await?;
    let again = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert_eq!(
        again["errors"][0]["message"],
        "invalid tenant, email or password"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_timeouts_end_idle_and_old_sessions() -> anyhow::Result<()> {
    let clock = portal_kit::clock::ManualClock::starting_at(Utc::now());
    let mut settings = portal_tests::identity_settings();
    settings.clock = clock.clone();
    let portal = TestPortal::start_enforcing_with(Mode::AllInOne, settings).await?;
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    let (carol, _, _) = session_of(&portal, "carol@acme.example").await?;
    let update = "mutation($i: Int, $a: Int) { updateTenant(input: { sessionIdleTimeoutSeconds: $i, sessionAbsoluteTimeoutSeconds: $a }) { sessionIdleTimeoutSeconds sessionAbsoluteTimeoutSeconds } }";
    let (_, denied) = post(&portal, Some(&carol), update, json!({ "i": 300 })).await?;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    for bad in [
        json!({ "i": 10 }),
        json!({ "a": 100 }),
        json!({ "i": 3600, "a": 1800 }),
    ] {
        let (_, refused) = post(&portal, Some(&alice), update, bad).await?;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    }
    let (_, set) = post(&portal, Some(&alice), update, json!({ "i": 300, "a": 900 })).await?;
    assert_eq!(
        set["data"]["updateTenant"],
        json!({ "sessionIdleTimeoutSeconds": 300, "sessionAbsoluteTimeoutSeconds": 900 }),
        "{set}"
    );

    // Time moves on the identity clock: no sleeping, no rewritten rows. Both sessions
    // start now; one is never used again (idle), the other is refreshed every 250 s (never
    // idle) until it is older than 900 s (absolute).
    let (_, idle_refresh, _) = session_of(&portal, "carol@acme.example").await?;
    let (_, mut busy_refresh, _) = session_of(&portal, "carol@acme.example").await?;
    let mut refused_busy = None;
    for _ in 0..4 {
        clock.advance(chrono::Duration::seconds(250));
        let (_, out) = post(&portal, None, REFRESH, json!({ "r": busy_refresh })).await?;
        match out["data"]["refreshSession"]["refreshToken"].as_str() {
            Some(next) => busy_refresh = next.to_owned(),
            None => {
                refused_busy = Some(out);
                break;
            }
        }
    }
    // 1 000 s after sign-in: the busy session ended by its age, on the fourth refresh.
    let refused_busy = refused_busy.ok_or_else(|| anyhow::anyhow!("never refused"))?;
    assert_eq!(code(&refused_busy), "UNAUTHENTICATED", "{refused_busy}");
    let (_, refused_idle) = post(&portal, None, REFRESH, json!({ "r": idle_refresh })).await?;
    assert_eq!(code(&refused_idle), "UNAUTHENTICATED", "{refused_idle}");
    for reason in ["idle_timeout", "absolute_timeout"] {
        let ended = session::Entity::find()
            .filter(session::Column::RevokedReason.eq(reason))
            .all(&portal.db)
            .await?;
        assert_eq!(ended.len(), 1, "{reason}");
    }
    // A fresh session still refreshes under the new timeouts.
    let (_, fresh_refresh, _) = session_of(&portal, "carol@acme.example").await?;
    let (_, ok) = post(&portal, None, REFRESH, json!({ "r": fresh_refresh })).await?;
    assert!(ok["errors"].is_null(), "{ok}");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_checks_the_old_one_and_ends_other_sessions() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (here, _, _) = session_of(&portal, "carol@acme.example").await?;
    let (there, _, _) = session_of(&portal, "carol@acme.example").await?;
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let (_, wrong) = post(
        &portal,
        Some(&here),
        change,
        json!({ "c": "not my password", "n": "a brand new passphrase" }),
    )
    .await?;
    assert_eq!(code(&wrong), "BAD_USER_INPUT", "{wrong}");
    let (_, weak) = post(
        &portal,
        Some(&here),
        change,
        json!({ "c": DEMO_PASSWORD, "n": "password1234" }),
    )
    .await?;
    assert_eq!(code(&weak), "BAD_USER_INPUT", "{weak}");
    let (_, anonymous) = post(
        &portal,
        None,
        change,
        json!({ "c": DEMO_PASSWORD, "n": "a brand new passphrase" }),
    )
    .await?;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    let (_, changed) = post(
        &portal,
        Some(&here),
        change,
        json!({ "c": DEMO_PASSWORD, "n": "a brand new passphrase" }),
    )
    .await?;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");
    refused_within(&portal, &there).await?;
    let (status, _) = post(&portal, Some(&here), ME, json!({})).await?;
    assert_eq!(status, StatusCode::OK);
    let old = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert_eq!(code(&old), "UNAUTHENTICATED");
    let new = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        "a brand new passphrase",
    )
    .await?;
    assert!(new["errors"].is_null(), "{new}");
    portal.stop().await;
    Ok(())
}

fn claims(portal: &TestPortal, session: Uuid, exp_in: i64) -> AccessClaims {
    let now = Utc::now().timestamp();
    AccessClaims {
        iss: "portal".into(),
        aud: AUDIENCE.into(),
        sub: portal.seed.carol_id,
        tid: portal.seed.tenant_id,
        sid: session,
        roles: vec!["customer_user".into()],
        amr: vec!["pwd".into()],
        iat: now,
        exp: now + exp_in,
        jti: Uuid::now_v7(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_malformed_tokens_are_refused() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (valid, _, session) = session_of(&portal, "carol@acme.example").await?;
    let authenticator = portal_tests::authenticator(&portal.db);
    let real_key = authenticator
        .keys()
        .signing_key(&portal.db)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // Signed with the real key: accepted while valid, refused once expired.
    let fresh = real_key
        .sign(&claims(&portal, session, 60))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (status, _) = post(&portal, Some(&fresh), ME, json!({})).await?;
    assert_eq!(status, StatusCode::OK);
    let expired = real_key
        .sign(&claims(&portal, session, -60))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // Same key id, another key: a forgery.
    let forger = SigningKey::from_seed(real_key.kid().to_owned(), &[42u8; 32])
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let forged = forger
        .sign(&claims(&portal, session, 60))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut foreign_issuer = claims(&portal, session, 60);
    foreign_issuer.iss = "someone-else".into();
    let foreign = real_key
        .sign(&foreign_issuer)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let tampered = {
        let mut parts: Vec<&str> = valid.split('.').collect();
        let swapped = fresh.split('.').nth(1).unwrap_or_default();
        parts[1] = swapped;
        parts.join(".")
    };
    for bad in [
        expired.as_str(),
        forged.as_str(),
        foreign.as_str(),
        tampered.as_str(),
        "garbage",
        "",
    ] {
        let response = portal
            .http()
            .post(&portal.endpoint)
            .header("authorization", format!("Bearer {bad}"))
            .json(&json!({ "query": ME }))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(response.headers().contains_key("www-authenticate"));
        let body: Value = response.json().await?;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        assert!(body["data"].is_null());
    }
    let (status, body) = post(&portal, None, ME, json!({})).await?;
    assert_eq!(
        (status, &body["data"]["me"]),
        (StatusCode::OK, &Value::Null),
        "anonymous: {body}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_reach_the_gateway_and_old_tokens_stay_valid() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (before, _, session) = session_of(&portal, "carol@acme.example").await?;
    let authenticator = portal_tests::authenticator(&portal.db);
    let kid = authenticator
        .keys()
        .rotate(&portal.db)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // The new key is published at once; sign with it directly (it would sign on its own
    // after the publication delay).
    let row = portal_entities::identity::signing_key::Entity::find_by_id(kid.clone())
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("rotated key missing"))?;
    let jwks = portal_identity::keys::jwks(&portal.db)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids.len(), 2, "old and new key published: {jwks}");
    assert!(kids.contains(&row.kid.as_str()));

    let (status, _) = post(&portal, Some(&before), ME, json!({})).await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "tokens of the retired key still verify"
    );
    let new_key = authenticator
        .keys()
        .open(&row)
        .ok_or_else(|| anyhow::anyhow!("rotated key cannot be opened"))?;
    let token = new_key
        .sign(&claims(&portal, session, 60))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let start = std::time::Instant::now();
    loop {
        let (status, body) = post(&portal, Some(&token), ME, json!({})).await?;
        if status == StatusCode::OK {
            assert_eq!(body["data"]["me"]["email"], "carol@acme.example");
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(3),
            "new key unknown after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_jwks_verifies_access_tokens() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (token, _, _) = session_of(&portal, "carol@acme.example").await?;
    let url = portal
        .endpoint
        .replace("/graphql", "/.well-known/jwks.json");
    let text = portal.http().get(&url).send().await?.text().await?;
    assert!(!text.contains("\"d\""), "no private key material: {text}");
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)?;
    let header = jsonwebtoken::decode_header(&token)?;
    let kid = header.kid.unwrap_or_default();
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| anyhow::anyhow!("{kid} not published"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[AUDIENCE]);
    let claims = jsonwebtoken::decode::<AccessClaims>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk)?,
        &validation,
    )?
    .claims;
    assert_eq!(claims.sub, portal.seed.carol_id);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_email_needs_a_step_up_and_the_new_address_confirms() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (token, _, _) = session_of(&portal, "carol@acme.example").await?;
    let change = "mutation($e: String!) { changeEmail(newEmail: $e) }";
    let (_, refused) = post(
        &portal,
        Some(&token),
        change,
        json!({ "e": "carol@new.example" }),
    )
    .await?;
    assert_eq!(code(&refused), "STEP_UP_REQUIRED", "{refused}");
    crate::auth_helpers::enroll_mfa(&portal, &token).await?;
    let (_, taken) = post(
        &portal,
        Some(&token),
        change,
        json!({ "e": "bob@acme.example" }),
    )
    .await?;
    assert_eq!(code(&taken), "CONFLICT", "{taken}");
    let (_, asked) = post(
        &portal,
        Some(&token),
        change,
        json!({ "e": "Carol@New.example" }),
    )
    .await?;
    assert_eq!(asked["data"]["changeEmail"], true, "{asked}");

    // Nothing changes until the new address confirms; the old one is told at once.
    let (_, me) = post(&portal, Some(&token), "{ me { email } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["email"], "carol@acme.example", "{me}");
    let notice = portal.next_mail_to("carol@acme.example").await?;
    assert!(notice.contains("carol@new.example"), "{notice}");
    let confirmation = portal.next_mail_to("carol@new.example").await?;
    let link_token = token_after(&confirmation, "confirm-email?token=")?;
    let confirm = "mutation($t: String!) { confirmEmailChange(token: $t) { email } }";
    let (_, forged) = post(&portal, None, confirm, json!({ "t": "pec_forged" })).await?;
    assert_eq!(code(&forged), "BAD_USER_INPUT", "{forged}");
    let (_, confirmed) = post(&portal, None, confirm, json!({ "t": link_token })).await?;
    assert_eq!(
        confirmed["data"]["confirmEmailChange"]["email"], "carol@new.example",
        "{confirmed}"
    );
    let (_, again) = post(&portal, None, confirm, json!({ "t": link_token })).await?;
    assert_eq!(code(&again), "BAD_USER_INPUT", "single use: {again}");
    let signed = sign_in(&portal, "acme", "carol@new.example", DEMO_PASSWORD).await?;
    // The new address signs in (Carol has a second factor now: a challenge follows).
    assert!(
        signed["data"]["signIn"]["mfa"]["token"].is_string(),
        "{signed}"
    );
    portal.stop().await;
    Ok(())
}
