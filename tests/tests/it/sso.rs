//! Single sign-on end to end against a real (small) OpenID Connect provider: discovery,
//! authorization code flow with PKCE, state and nonce, ID tokens validated against the
//! provider's JWKS, just-in-time provisioning and group → role mapping; and every way a
//! provider can hand back a bad token.

use reqwest::StatusCode;
use serde_json::{Value, json};

use portal_entities::platform::audit_event;
use portal_tests::oidc_provider::{CLIENT_ID, CLIENT_SECRET, IdpUser, Tamper, TestIdp};
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::auth_helpers::{code, enroll_mfa, post, session_of};

const CONFIGURE: &str = "mutation($i: ConfigureOidcProviderInput!) { configureOidcProvider(input: $i) { id name issuer clientId groupRoles { group role } defaultRoles } }";
const START: &str = "mutation($t: String!, $p: String!) { startSsoSignIn(tenant: $t, provider: $p) { authorizationUrl state redirectUri } }";
const COMPLETE: &str = "mutation($s: String!, $c: String!) { completeSsoSignIn(state: $s, code: $c) { accessToken session { authMethod } user { id email displayName status roles { name } } } }";

fn erin(groups: &[&str]) -> IdpUser {
    IdpUser {
        subject: "idp|erin".into(),
        email: "Erin@Acme.example".into(),
        name: "Erin Single-Sign-On".into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// Starts an SSO sign-in and follows the browser to the provider and back: returns
/// `(state, code)` from the redirect to the portal's callback.
async fn through_provider(portal: &TestPortal, provider: &str) -> anyhow::Result<(String, String)> {
    let (_, started) = post(portal, None, START, json!({ "t": "acme", "p": provider })).await?;
    let start = &started["data"]["startSsoSignIn"];
    let url = start["authorizationUrl"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{started}"))?;
    assert_eq!(start["redirectUri"], "http://portal.test/sso/callback");
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "scope=openid",
    ] {
        assert!(url.contains(part), "{part} missing in {url}");
    }
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = browser.get(url).send().await?;
    assert_eq!(
        answer.status(),
        StatusCode::SEE_OTHER,
        "provider did not redirect"
    );
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("no location"))?;
    let back = reqwest::Url::parse(location)?;
    assert!(
        location.starts_with("http://portal.test/sso/callback?"),
        "{location}"
    );
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    assert_eq!(param("state"), start["state"].as_str().unwrap_or_default());
    Ok((param("state"), param("code")))
}

fn role_names(user: &Value) -> Vec<String> {
    user["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_provisions_users_just_in_time_and_maps_groups_to_roles() -> anyhow::Result<()> {
    let mut settings = portal_tests::identity_settings();
    settings.public_url = "http://portal.test".into();
    let portal = TestPortal::start_enforcing_with(Mode::AllInOne, settings).await?;
    let idp = TestIdp::start(erin(&["portal-billing", "unrelated"])).await?;
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    let provider = json!({ "i": {
        "name": "testidp",
        "issuer": idp.issuer,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "groupRoles": [{ "group": "portal-billing", "role": "billing_admin" }],
        "defaultRoles": ["customer_user"],
    } });
    // Only admins, only after step-up, only with https issuers (or loopback) and real roles.
    let (carol, _, _) = session_of(&portal, "carol@acme.example").await?;
    let (_, denied) = post(&portal, Some(&carol), CONFIGURE, provider.clone()).await?;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let (_, unconfirmed) = post(&portal, Some(&alice), CONFIGURE, provider.clone()).await?;
    assert_eq!(code(&unconfirmed), "STEP_UP_REQUIRED", "{unconfirmed}");
    enroll_mfa(&portal, &alice).await?;
    let mut insecure = provider.clone();
    insecure["i"]["issuer"] = json!("http://idp.example.com");
    let (_, refused) = post(&portal, Some(&alice), CONFIGURE, insecure).await?;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let mut unknown_role = provider.clone();
    unknown_role["i"]["defaultRoles"] = json!(["wizard"]);
    let (_, refused) = post(&portal, Some(&alice), CONFIGURE, unknown_role).await?;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let (_, configured) = post(&portal, Some(&alice), CONFIGURE, provider).await?;
    assert_eq!(
        configured["data"]["configureOidcProvider"]["name"], "testidp",
        "{configured}"
    );
    assert!(!configured.to_string().contains(CLIENT_SECRET));

    // Erin signs in through the provider: provisioned, with mapped and default roles.
    let (state, code_) = through_provider(&portal, "testidp").await?;
    let (_, signed) = post(&portal, None, COMPLETE, json!({ "s": state, "c": code_ })).await?;
    let payload = &signed["data"]["completeSsoSignIn"];
    assert_eq!(payload["user"]["email"], "erin@acme.example", "{signed}");
    assert_eq!(payload["user"]["status"], "ACTIVE");
    assert_eq!(payload["session"]["authMethod"], "sso");
    assert_eq!(
        role_names(&payload["user"]),
        ["billing_admin", "customer_user"]
    );
    let token = payload["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let erin_id = payload["user"]["id"].clone();
    let (_, me) = post(&portal, Some(&token), "{ me { email } }", json!({})).await?;
    assert_eq!(me["data"]["me"]["email"], "erin@acme.example", "{me}");
    // The state worked once.
    let (_, replay) = post(&portal, None, COMPLETE, json!({ "s": state, "c": code_ })).await?;
    assert_eq!(code(&replay), "UNAUTHENTICATED", "{replay}");

    // Next time her groups changed: the same user (by subject), the mapped role withdrawn.
    idp.set_user(erin(&[]));
    let (state, code_) = through_provider(&portal, "testidp").await?;
    let (_, again) = post(&portal, None, COMPLETE, json!({ "s": state, "c": code_ })).await?;
    let user = &again["data"]["completeSsoSignIn"]["user"];
    assert_eq!(user["id"], erin_id, "{again}");
    assert_eq!(role_names(user), ["customer_user"]);

    // An account in use is never taken over by whoever has its email at a provider.
    idp.set_user(IdpUser {
        subject: "idp|mallory".into(),
        email: "carol@acme.example".into(),
        name: "Not Carol".into(),
        groups: vec!["portal-billing".into()],
    });
    let (state, code_) = through_provider(&portal, "testidp").await?;
    let (_, takeover) = post(&portal, None, COMPLETE, json!({ "s": state, "c": code_ })).await?;
    assert_eq!(code(&takeover), "UNAUTHENTICATED", "{takeover}");

    // Unknown provider or another tenant: not found.
    let (_, missing) = post(
        &portal,
        None,
        START,
        json!({ "t": "globex", "p": "testidp" }),
    )
    .await?;
    assert_eq!(code(&missing), "NOT_FOUND", "{missing}");

    let provisioned = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("user.provision"))
        .all(&portal.db)
        .await?;
    assert_eq!(provisioned.len(), 1);
    idp.stop();
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_id_tokens_never_sign_anyone_in() -> anyhow::Result<()> {
    let mut settings = portal_tests::identity_settings();
    settings.public_url = "http://portal.test".into();
    let portal = TestPortal::start_with(Mode::AllInOne, settings).await?;
    let idp = TestIdp::start(erin(&[])).await?;
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    enroll_mfa(&portal, &alice).await?;
    let provider = json!({ "i": {
        "name": "testidp", "issuer": idp.issuer, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
    } });
    let (_, configured) = post(&portal, Some(&alice), CONFIGURE, provider).await?;
    assert!(configured["errors"].is_null(), "{configured}");
    for tamper in [
        Tamper::WrongAudience,
        Tamper::WrongNonce,
        Tamper::Expired,
        Tamper::WrongIssuer,
        Tamper::ForeignKey,
    ] {
        idp.set_tamper(tamper);
        let (state, code_) = through_provider(&portal, "testidp").await?;
        let (_, refused) = post(&portal, None, COMPLETE, json!({ "s": state, "c": code_ })).await?;
        assert_eq!(code(&refused), "UNAUTHENTICATED", "{tamper:?}: {refused}");
        assert!(refused["data"].is_null());
    }
    // A forged state or a code for another login gets nowhere either.
    idp.set_tamper(Tamper::None);
    let (_, code_) = through_provider(&portal, "testidp").await?;
    let (_, forged) = post(
        &portal,
        None,
        COMPLETE,
        json!({ "s": "forged-state", "c": code_ }),
    )
    .await?;
    assert_eq!(code(&forged), "UNAUTHENTICATED");
    let users = portal_entities::identity::user::Entity::find()
        .filter(portal_entities::identity::user::Column::Email.eq("erin@acme.example"))
        .all(&portal.db)
        .await?;
    assert!(users.is_empty(), "nobody was provisioned from a bad token");
    let failures = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("auth.sso"))
        .all(&portal.db)
        .await?;
    assert_eq!(failures.len(), 5, "each refused token is audited");
    idp.stop();
    portal.stop().await;
    Ok(())
}
