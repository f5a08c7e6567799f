//! Password reset and invitations through the gateway: the same answer whether or not
//! the account exists, a single-use link built from the configured URL and delivered
//! through the outbox, all sessions ended, no sign-in, and invited users activated.

use sea_orm::EntityTrait;
use serde_json::json;

use portal::seed::DEMO_PASSWORD;
use portal_entities::identity::password_reset_token;
use portal_entities::platform::email_outbox;
use portal_tests::{Mode, TestPortal};

use crate::auth_helpers::{
    audit_trail, code, post, refused_within, session_of, sign_in, token_after,
};

const REQUEST: &str =
    "mutation($t: String!, $e: String!) { requestPasswordReset(tenant: $t, email: $e) }";
const COMPLETE: &str =
    "mutation($k: String!, $p: String!) { completePasswordReset(token: $k, newPassword: $p) }";

/// The token of the first link in `mail` pointing at `path` under the configured URL.
fn token_in(mail: &str, path: &str) -> anyhow::Result<String> {
    token_after(mail, &format!("http://portal.test/{path}?token="))
}

async fn portal() -> anyhow::Result<TestPortal> {
    let mut settings = portal_tests::identity_settings();
    settings.public_url = "http://portal.test/".into();
    TestPortal::start_with(Mode::AllInOne, settings).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_link_sets_a_new_password_once_and_ends_every_session() -> anyhow::Result<()> {
    let portal = portal().await?;
    let (old_session, _, _) = session_of(&portal, "carol@acme.example").await?;

    // Known and unknown accounts get the same answer; only the known one gets mail.
    for (tenant, email) in [
        ("acme", "carol@acme.example"),
        ("acme", "nobody@acme.example"),
        ("no-such-tenant", "carol@acme.example"),
    ] {
        let (_, answer) = post(&portal, None, REQUEST, json!({ "t": tenant, "e": email })).await?;
        assert_eq!(
            answer,
            json!({ "data": { "requestPasswordReset": true } }),
            "{email}"
        );
    }
    let mail = portal.next_mail_to("carol@acme.example").await?;
    assert!(
        mail.contains("Subject: Reset your Acme Corporation portal password"),
        "{mail}"
    );
    let token = token_in(&mail, "reset-password")?;
    assert!(token.starts_with("prs_"), "{mail}");
    assert!(portal.next_mail_to("nobody@acme.example").await.is_err());

    // Stored only as a hash; the queued body was sealed.
    let stored = password_reset_token::Entity::find().all(&portal.db).await?;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_hash, token);
    assert!(stored[0].expires_at <= stored[0].created_at + chrono::Duration::minutes(60));
    let outbox = email_outbox::Entity::find().all(&portal.db).await?;
    assert!(
        outbox
            .iter()
            .all(|m| !m.body_sealed.contains(&token) && m.sent_at.is_some())
    );

    // A weak password is refused and changes nothing; a good one works once.
    let (_, weak) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "k": token, "p": "password123" }),
    )
    .await?;
    assert_eq!(code(&weak), "BAD_USER_INPUT", "{weak}");
    let (_, done) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "k": token, "p": "a fresh start for carol" }),
    )
    .await?;
    assert_eq!(done["data"]["completePasswordReset"], true, "{done}");
    let (_, again) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "k": token, "p": "yet another passphrase" }),
    )
    .await?;
    assert_eq!(code(&again), "BAD_USER_INPUT", "{again}");

    // Every session ended; the old password is gone; the new one signs in.
    refused_within(&portal, &old_session).await?;
    let old = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert_eq!(code(&old), "UNAUTHENTICATED");
    let new = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        "a fresh start for carol",
    )
    .await?;
    assert!(
        new["data"]["signIn"]["auth"]["accessToken"].is_string(),
        "{new}"
    );

    let (_, garbage) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "k": "prs_forged", "p": "a fresh start for carol" }),
    )
    .await?;
    assert_eq!(code(&garbage), "BAD_USER_INPUT");
    let actions = audit_trail(
        &portal,
        &["auth.password_reset", "auth.password_reset_request"],
    )
    .await?;
    assert!(
        actions.contains(&("auth.password_reset".into(), "success".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("auth.password_reset_request".into(), "failure".into())),
        "{actions:?}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_requests_are_capped_per_account_without_telling() -> anyhow::Result<()> {
    let portal = portal().await?;
    for _ in 0..5 {
        let (_, answer) = post(
            &portal,
            None,
            REQUEST,
            json!({ "t": "acme", "e": "bob@acme.example" }),
        )
        .await?;
        assert_eq!(answer["data"]["requestPasswordReset"], true);
    }
    for _ in 0..3 {
        portal.next_mail_to("bob@acme.example").await?;
    }
    assert!(
        portal.next_mail_to("bob@acme.example").await.is_err(),
        "more than 3 emails in an hour"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invited_users_choose_a_password_and_become_active() -> anyhow::Result<()> {
    let portal = portal().await?;
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    let invite = "mutation { createUser(input: { email: \"dora@acme.example\", displayName: \"Dora New\" }) { id status } }";
    let (_, created) = post(&portal, Some(&alice), invite, json!({})).await?;
    assert_eq!(
        created["data"]["createUser"]["status"], "INVITED",
        "{created}"
    );
    let mail = portal.next_mail_to("dora@acme.example").await?;
    assert!(
        mail.contains("Subject: Your invitation to Acme Corporation"),
        "{mail}"
    );
    let token = token_in(&mail, "accept-invitation")?;

    // No password yet: sign-in fails like any other.
    let before = sign_in(&portal, "acme", "dora@acme.example", "anything at all here").await?;
    assert_eq!(code(&before), "UNAUTHENTICATED");
    let (_, done) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "k": token, "p": "dora picks a passphrase" }),
    )
    .await?;
    assert_eq!(done["data"]["completePasswordReset"], true, "{done}");
    let after = sign_in(
        &portal,
        "acme",
        "dora@acme.example",
        "dora picks a passphrase",
    )
    .await?;
    assert!(
        after["data"]["signIn"]["auth"]["accessToken"].is_string(),
        "{after}"
    );
    let (_, me) = post(
        &portal,
        after["data"]["signIn"]["auth"]["accessToken"].as_str(),
        "{ me { status } }",
        json!({}),
    )
    .await?;
    assert_eq!(me["data"]["me"]["status"], "ACTIVE", "{me}");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reset_link_is_refused() -> anyhow::Result<()> {
    // Time moves on identity's clock: no rewritten rows.
    let clock = portal_kit::clock::ManualClock::starting_at(chrono::Utc::now());
    let mut settings = portal_tests::identity_settings();
    settings.public_url = "http://portal.test/".into();
    settings.clock = clock.clone();
    let portal = TestPortal::start_with(Mode::AllInOne, settings).await?;
    post(
        &portal,
        None,
        REQUEST,
        json!({ "t": "acme", "e": "carol@acme.example" }),
    )
    .await?;
    let token = token_in(
        &portal.next_mail_to("carol@acme.example").await?,
        "reset-password",
    )?;
    // Links work for 30 minutes.
    clock.advance(chrono::Duration::minutes(30) + chrono::Duration::seconds(1));
    let (_, expired) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "k": token, "p": "a fresh start for carol" }),
    )
    .await?;
    assert_eq!(code(&expired), "BAD_USER_INPUT", "{expired}");
    let still = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert!(
        still["data"]["signIn"]["auth"].is_object(),
        "password unchanged: {still}"
    );
    portal.stop().await;
    Ok(())
}
