//! Second factors through the gateway: TOTP enrolment verified before activation,
//! sign-in challenges, replayed codes refused, single-use recovery codes, the tenant
//! policy that requires MFA for some roles, step-up for sensitive mutations, and the
//! lockout covering the second factor.

use base64::Engine as _;
use serde_json::{Value, json};

use portal::seed::DEMO_PASSWORD;
use portal_entities::identity::mfa_factor;
use portal_tests::{Mode, TestPortal};
use sea_orm::EntityTrait;

use crate::auth_helpers::{
    ME, audit_trail, code, enroll_mfa, post, session_of, sign_in, totp_code,
};

const COMPLETE: &str = "mutation($c: String!, $k: String!) { completeSignIn(challenge: $c, code: $k) { accessToken recoveryCodes user { email mfaEnabled } } }";

fn challenge_of(response: &Value) -> anyhow::Result<String> {
    response["data"]["signIn"]["mfa"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no MFA challenge: {response}"))
}

fn amr_of(token: &str) -> Value {
    let claims = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes).unwrap_or_default()["amr"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_sign_in_replay_and_recovery_codes() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (token, _, _) = session_of(&portal, "carol@acme.example").await?;

    // Enrolling needs the current password: a stolen session alone cannot attach a factor.
    let begin = "mutation($p: String) { beginMfaEnrollment(currentPassword: $p) { secret } }";
    for wrong in [json!({}), json!({ "p": "not the password" })] {
        let (_, refused) = post(&portal, Some(&token), begin, wrong).await?;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    }
    // Enrolment is only active once a correct code confirms it.
    let (_, begun) = post(
        &portal,
        Some(&token),
        "mutation($p: String) { beginMfaEnrollment(currentPassword: $p) { secret otpauthUri } }",
        json!({ "p": DEMO_PASSWORD }),
    )
    .await?;
    let secret = begun["data"]["beginMfaEnrollment"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let uri = begun["data"]["beginMfaEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap_or_default();
    assert!(
        uri.starts_with("otpauth://totp/Portal:carol%40acme.example?"),
        "{uri}"
    );
    assert!(
        uri.contains(&format!("secret={secret}")) && uri.contains("issuer=Portal"),
        "{uri}"
    );
    assert_eq!(secret.len(), 32, "160-bit secret in base32");
    let confirm = "mutation($c: String!) { confirmMfaEnrollment(code: $c) }";
    let (_, wrong) = post(&portal, Some(&token), confirm, json!({ "c": "000000" })).await?;
    assert_eq!(code(&wrong), "BAD_USER_INPUT", "{wrong}");
    let pending = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert!(
        pending["data"]["signIn"]["auth"].is_object(),
        "pending factor not enforced: {pending}"
    );
    let stored = mfa_factor::Entity::find_by_id(portal.seed.carol_id)
        .one(&portal.db)
        .await?;
    let sealed = stored.map(|f| f.secret_sealed).unwrap_or_default();
    assert!(
        !sealed.is_empty() && !sealed.contains(&secret),
        "secret sealed at rest"
    );
    let first_code = totp_code(&secret, 0)?;
    let (_, confirmed) = post(&portal, Some(&token), confirm, json!({ "c": first_code })).await?;
    let recovery: Vec<String> = confirmed["data"]["confirmMfaEnrollment"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(recovery.len(), 10, "{confirmed}");
    let (_, me) = post(&portal, Some(&token), "{ me { mfaEnabled } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["mfaEnabled"], true);

    // Now the password alone yields a challenge, not a session.
    let first = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert!(first["data"]["signIn"]["auth"].is_null(), "{first}");
    let challenge = challenge_of(&first)?;
    let (_, bad) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": "123456" }),
    )
    .await?;
    assert_eq!(code(&bad), "UNAUTHENTICATED", "{bad}");
    // The code that confirmed the enrolment was used: replaying it fails.
    let (_, replay) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": first_code }),
    )
    .await?;
    assert_eq!(
        code(&replay),
        "UNAUTHENTICATED",
        "replayed code accepted: {replay}"
    );
    let (_, done) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": totp_code(&secret, 1)? }),
    )
    .await?;
    let access = done["data"]["completeSignIn"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(amr_of(&access), json!(["pwd", "otp", "mfa"]), "{done}");
    assert!(done["data"]["completeSignIn"]["recoveryCodes"].is_null());
    let (_, me) = post(&portal, Some(&access), ME, json!({})).await?;
    assert_eq!(me["data"]["me"]["email"], "carol@acme.example", "{me}");
    // A challenge works once.
    let (_, again) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": recovery[0] }),
    )
    .await?;
    assert_eq!(code(&again), "UNAUTHENTICATED", "{again}");

    // A recovery code works once, in any case and spacing.
    let second =
        challenge_of(&sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?)?;
    let sloppy = recovery[1].to_lowercase().replace('-', " ");
    let (_, recovered) = post(&portal, None, COMPLETE, json!({ "c": second, "k": sloppy })).await?;
    assert!(
        recovered["data"]["completeSignIn"]["accessToken"].is_string(),
        "{recovered}"
    );
    let third =
        challenge_of(&sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?)?;
    let (_, reused) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": third, "k": recovery[1] }),
    )
    .await?;
    assert_eq!(code(&reused), "UNAUTHENTICATED", "{reused}");

    let events = audit_trail(&portal, &["mfa.enable", "auth.mfa"]).await?;
    assert!(
        events.contains(&("mfa.enable".into(), "success".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("auth.mfa".into(), "failure".into())),
        "{events:?}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_mutations_need_a_recent_step_up() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (token, _, _) = session_of(&portal, "carol@acme.example").await?;
    let (_, recovery) = enroll_mfa(&portal, &token).await?;
    // A new session (signed in with a recovery code) has confirmed its factor at sign-in;
    // an old session without any confirmation must step up first.
    let challenge =
        challenge_of(&sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?)?;
    let (_, fresh) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": recovery[0] }),
    )
    .await?;
    let fresh = fresh["data"]["completeSignIn"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let regenerate = "mutation { regenerateRecoveryCodes }";
    let (_, codes) = post(&portal, Some(&fresh), regenerate, json!({})).await?;
    let new_codes: Vec<String> = codes["data"]["regenerateRecoveryCodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(new_codes.len(), 10, "{codes}");

    // Step-up is per session and expires: age this session's confirmation.
    portal_entities::identity::session::Entity::update_many()
        .col_expr(
            portal_entities::identity::session::Column::MfaVerifiedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::minutes(11)),
        )
        .exec(&portal.db)
        .await?;
    let (_, stale) = post(&portal, Some(&fresh), "mutation { disableMfa }", json!({})).await?;
    assert_eq!(code(&stale), "STEP_UP_REQUIRED", "{stale}");
    let (_, old_code) = post(
        &portal,
        Some(&fresh),
        "mutation($c: String!) { stepUp(code: $c) }",
        json!({ "c": recovery[1] }),
    )
    .await?;
    assert_eq!(
        code(&old_code),
        "UNAUTHENTICATED",
        "regenerated codes replace the old: {old_code}"
    );
    let (_, stepped) = post(
        &portal,
        Some(&fresh),
        "mutation($c: String!) { stepUp(code: $c) }",
        json!({ "c": new_codes[0] }),
    )
    .await?;
    assert_eq!(stepped["data"]["stepUp"], true, "{stepped}");
    let (_, off) = post(&portal, Some(&fresh), "mutation { disableMfa }", json!({})).await?;
    assert_eq!(off["data"]["disableMfa"], true, "{off}");
    let plain = sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?;
    assert!(
        plain["data"]["signIn"]["auth"]["accessToken"].is_string(),
        "{plain}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_require_mfa_for_roles_and_wrong_codes_lock_the_account() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    let policy = "mutation($r: [String!]) { updateTenant(input: { mfaRequiredRoles: $r }) { mfaRequiredRoles } }";
    let (_, unknown) = post(
        &portal,
        Some(&alice),
        policy,
        json!({ "r": ["no_such_role"] }),
    )
    .await?;
    assert_eq!(code(&unknown), "BAD_USER_INPUT", "{unknown}");
    let (_, set) = post(
        &portal,
        Some(&alice),
        policy,
        json!({ "r": ["billing_admin"] }),
    )
    .await?;
    assert_eq!(
        set["data"]["updateTenant"]["mfaRequiredRoles"],
        json!(["billing_admin"]),
        "{set}"
    );

    // Bob (billing admin) must enrol during sign-in; Carol is unaffected.
    let bob = sign_in(&portal, "acme", "bob@acme.example", DEMO_PASSWORD).await?;
    let secret = bob["data"]["signIn"]["mfa"]["enrollment"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!secret.is_empty(), "{bob}");
    let challenge = challenge_of(&bob)?;
    let (_, done) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": totp_code(&secret, 0)? }),
    )
    .await?;
    let payload = &done["data"]["completeSignIn"];
    assert_eq!(
        payload["recoveryCodes"].as_array().map(Vec::len),
        Some(10),
        "{done}"
    );
    assert_eq!(payload["user"]["mfaEnabled"], true);
    session_of(&portal, "carol@acme.example").await?;

    // Wrong codes lock Bob's account — the password attempt counts until the whole sign-in
    // succeeds, so five attempts in all: then even the right code, and the password, get
    // RATE_LIMITED.
    let challenge =
        challenge_of(&sign_in(&portal, "acme", "bob@acme.example", DEMO_PASSWORD).await?)?;
    let mut wrong_codes = 0;
    loop {
        let (_, wrong) = post(
            &portal,
            None,
            COMPLETE,
            json!({ "c": challenge, "k": "999999" }),
        )
        .await?;
        if code(&wrong) == "RATE_LIMITED" {
            break;
        }
        assert_eq!(code(&wrong), "UNAUTHENTICATED", "{wrong}");
        wrong_codes += 1;
        assert!(wrong_codes <= 5, "never locked");
    }
    assert_eq!(wrong_codes, 4, "password attempt + 4 codes = 5 attempts");
    let (_, locked) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": totp_code(&secret, 1)? }),
    )
    .await?;
    assert_eq!(code(&locked), "RATE_LIMITED", "{locked}");
    let password = sign_in(&portal, "acme", "bob@acme.example", DEMO_PASSWORD).await?;
    assert_eq!(code(&password), "RATE_LIMITED", "{password}");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sign_in_challenge_is_refused() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (token, _, _) = session_of(&portal, "carol@acme.example").await?;
    let (_, recovery) = enroll_mfa(&portal, &token).await?;
    let challenge =
        challenge_of(&sign_in(&portal, "acme", "carol@acme.example", DEMO_PASSWORD).await?)?;
    portal_entities::identity::mfa_challenge::Entity::update_many()
        .col_expr(
            portal_entities::identity::mfa_challenge::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&portal.db)
        .await?;
    let (_, expired) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "c": challenge, "k": recovery[0] }),
    )
    .await?;
    assert_eq!(code(&expired), "UNAUTHENTICATED", "{expired}");
    portal.stop().await;
    Ok(())
}
