//! A small OpenID Connect provider for the SSO tests: discovery, an authorization
//! endpoint that approves a configured user at once, a token endpoint that checks the
//! client secret, the redirect URI and PKCE (S256), and real Ed25519-signed ID tokens
//! with a JWKS — over real HTTP on a local port. It can be told to misbehave
//! ([`Tamper`]) so the relying party's checks can be seen to hold.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The client the tests register.
pub const CLIENT_ID: &str = "portal-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "portal-client-secret";
const KID: &str = "idp-key-1";

/// Ways the provider can misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Behave.
    None,
    /// ID token for another client.
    WrongAudience,
    /// ID token with another nonce.
    WrongNonce,
    /// ID token expired an hour ago.
    Expired,
    /// ID token from another issuer.
    WrongIssuer,
    /// ID token signed with a key not in the JWKS (same key id).
    ForeignKey,
}

/// The user the provider approves.
#[derive(Clone, Debug)]
pub struct IdpUser {
    /// `sub`.
    pub subject: String,
    /// `email` (verified).
    pub email: String,
    /// `name`.
    pub name: String,
    /// `groups`.
    pub groups: Vec<String>,
}

struct Pending {
    redirect_uri: String,
    nonce: String,
    challenge: String,
    user: IdpUser,
}

struct Idp {
    issuer: String,
    key: EncodingKey,
    foreign_key: EncodingKey,
    public_x: String,
    user: Mutex<IdpUser>,
    tamper: Mutex<Tamper>,
    codes: Mutex<HashMap<String, Pending>>,
}

/// A running test provider.
pub struct TestIdp {
    /// Its issuer URL.
    pub issuer: String,
    state: Arc<Idp>,
    task: tokio::task::JoinHandle<()>,
}

fn encoding_key(seed: [u8; 32]) -> anyhow::Result<(EncodingKey, String)> {
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = signing
        .to_pkcs8_der()
        .map_err(|err| anyhow::anyhow!("pkcs8: {err}"))?;
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
    Ok((EncodingKey::from_ed_der(der.as_bytes()), x))
}

impl TestIdp {
    /// Starts the provider on a local port, approving `user`.
    pub async fn start(user: IdpUser) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let (key, public_x) = encoding_key([11u8; 32])?;
        let (foreign_key, _) = encoding_key([12u8; 32])?;
        let state = Arc::new(Idp {
            issuer: issuer.clone(),
            key,
            foreign_key,
            public_x,
            user: Mutex::new(user),
            tamper: Mutex::new(Tamper::None),
            codes: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            issuer,
            state,
            task,
        })
    }

    /// Approves `user` from now on.
    pub fn set_user(&self, user: IdpUser) {
        if let Ok(mut current) = self.state.user.lock() {
            *current = user;
        }
    }

    /// Misbehaves as `tamper` from now on.
    pub fn set_tamper(&self, tamper: Tamper) {
        if let Ok(mut current) = self.state.tamper.lock() {
            *current = tamper;
        }
    }

    /// Stops the provider.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Json<Value> {
    Json(json!({
        "issuer": idp.issuer,
        "authorization_endpoint": format!("{}/authorize", idp.issuer),
        "token_endpoint": format!("{}/token", idp.issuer),
        "jwks_uri": format!("{}/jwks", idp.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Json<Value> {
    Json(json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": KID, "x": idp.public_x
    }] }))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    code_challenge: String,
    code_challenge_method: String,
}

async fn authorize(State(idp): State<Arc<Idp>>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.response_type != "code" || q.client_id != CLIENT_ID || q.code_challenge_method != "S256" {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = URL_SAFE_NO_PAD.encode(uuid::Uuid::now_v7().as_bytes());
    let user = idp.user.lock().map(|u| u.clone());
    let Ok(user) = user else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(mut codes) = idp.codes.lock() {
        codes.insert(
            code.clone(),
            Pending {
                redirect_uri: q.redirect_uri.clone(),
                nonce: q.nonce,
                challenge: q.code_challenge,
                user,
            },
        );
    }
    let mut target = match reqwest::Url::parse(&q.redirect_uri) {
        Ok(url) => url,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response(),
    };
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q.state);
    Redirect::to(target.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: String,
}

async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let pending = idp
        .codes
        .lock()
        .ok()
        .and_then(|mut codes| codes.remove(&form.code));
    let Some(pending) = pending else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant" })),
        )
            .into_response();
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(form.code_verifier.as_bytes()));
    if form.grant_type != "authorization_code"
        || form.redirect_uri != pending.redirect_uri
        || challenge != pending.challenge
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant" })),
        )
            .into_response();
    }
    let tamper = idp.tamper.lock().map(|t| *t).unwrap_or(Tamper::None);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": if tamper == Tamper::WrongIssuer { "http://evil.example" } else { idp.issuer.as_str() },
        "aud": if tamper == Tamper::WrongAudience { "someone-else" } else { CLIENT_ID },
        "sub": pending.user.subject,
        "email": pending.user.email,
        "email_verified": true,
        "name": pending.user.name,
        "groups": pending.user.groups,
        "nonce": if tamper == Tamper::WrongNonce { "not-the-nonce" } else { pending.nonce.as_str() },
        "iat": now,
        "exp": if tamper == Tamper::Expired { now - 3600 } else { now + 300 },
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(KID.into());
    let key = if tamper == Tamper::ForeignKey {
        &idp.foreign_key
    } else {
        &idp.key
    };
    match jsonwebtoken::encode(&header, &claims, key) {
        Ok(id_token) => Json(json!({
            "access_token": "opaque-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }))
        .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
