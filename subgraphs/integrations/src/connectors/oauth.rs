//! OAuth 2.0 for connectors, with the `oauth2` crate over the connectors' own HTTP client
//! (no redirects, no proxies, a timeout).
//!
//! - **Authorization code with PKCE (S256)**: [`start`] makes the remote's consent URL with
//!   a random `state` and code challenge, and the [`Pending`] authorization the portal keeps
//!   sealed for ten minutes; [`exchange_code`] trades the code the remote redirected back
//!   with (its `state` checked, once) for tokens.
//! - **Client credentials**: for a remote that grants the app itself a token
//!   ([`Session`] asks for one whenever it has none, or it expires).
//! - A [`Session`] hands out access tokens: it refreshes ahead of expiry (five minutes
//!   before), once more when the remote says a token expired anyway, never two at a time,
//!   and gives every new token to its [`TokenSink`] to be sealed and kept. A refused
//!   refresh token (`invalid_grant`) means the connection was revoked: reconnecting is a
//!   person's job, so it comes back as [`RemoteError::Unauthorized`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest,
    HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::RemoteError;

/// How long a started authorization may take, in milliseconds.
pub const PENDING_FOR_MS: i64 = 10 * 60 * 1000;
/// An access token is renewed when it has less than this left, in milliseconds.
pub const RENEW_AHEAD_MS: i64 = 5 * 60 * 1000;

/// A registered OAuth application at a remote.
#[derive(Clone, Debug)]
pub struct App {
    /// Its client id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The remote's consent page.
    pub authorize_url: String,
    /// The remote's token endpoint.
    pub token_url: String,
}

/// Tokens the remote granted (kept sealed with the integration's credentials).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// The bearer token API calls carry.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Trades for new access tokens (authorization code grants only).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires (Unix ms), if the remote said.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// When it was granted (Unix ms).
    #[serde(default)]
    pub granted_at: Option<i64>,
    /// The OAuth app (client id) it was granted to.
    #[serde(default)]
    pub client_id: Option<String>,
}

impl Tokens {
    /// Whether the access token should be renewed before use at `now_ms`: there is none,
    /// or less than five minutes of it are left — or less than half its lifetime, for
    /// tokens granted for less than ten minutes (renewing those five minutes ahead would
    /// renew them before every call).
    pub fn needs_renewal(&self, now_ms: i64) -> bool {
        if self.access_token.is_none() {
            return true;
        }
        let Some(expires_at) = self.expires_at else {
            return false;
        };
        let lifetime = self
            .granted_at
            .map_or(i64::MAX, |granted| expires_at - granted);
        expires_at - now_ms <= RENEW_AHEAD_MS.min(lifetime / 2)
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &self.access_token.is_some())
            .field("refresh_token", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// An authorization started and not completed yet.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// The `state` the remote sends back.
    pub state: String,
    /// The PKCE verifier of the challenge sent.
    pub verifier: String,
    /// Where the remote redirects to (the token request repeats it).
    pub redirect_uri: String,
    /// Until when it may complete (Unix ms).
    pub expires_at: i64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("redirect_uri", &self.redirect_uri)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The consent URL to send a person to, and what to keep until they come back.
pub fn start(
    app: &App,
    redirect_uri: &str,
    scopes: &[&str],
    now_ms: i64,
) -> Result<(String, Pending), RemoteError> {
    let client = BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_auth_uri(AuthUrl::new(app.authorize_url.clone()).map_err(config)?)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(config)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().map(|scope| Scope::new((*scope).to_owned())))
        .set_pkce_challenge(challenge)
        .url();
    Ok((
        url.to_string(),
        Pending {
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            redirect_uri: redirect_uri.to_owned(),
            expires_at: now_ms + PENDING_FOR_MS,
        },
    ))
}

/// Why completing an authorization was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    /// No authorization was started, or it took too long.
    #[error("no authorization is waiting (start one, and complete it within ten minutes)")]
    NotStarted,
    /// The `state` is not the one sent.
    #[error("the state does not match the authorization started")]
    StateMismatch,
    /// The remote refused the code.
    #[error("{0}")]
    Remote(RemoteError),
}

/// Checks `state` against `pending` at `now_ms` (constant time).
pub fn check_state(
    pending: Option<&Pending>,
    state: &str,
    now_ms: i64,
) -> Result<(), CompleteError> {
    let pending = pending
        .filter(|p| p.expires_at > now_ms)
        .ok_or(CompleteError::NotStarted)?;
    let (a, b) = (pending.state.as_bytes(), state.as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(CompleteError::StateMismatch)
    }
}

/// Trades `code` for tokens.
pub async fn exchange_code(
    app: &App,
    http: &reqwest::Client,
    pending: &Pending,
    code: &str,
) -> Result<Tokens, RemoteError> {
    let client = token_client(app)?
        .set_redirect_uri(RedirectUrl::new(pending.redirect_uri.clone()).map_err(config)?);
    let call = caller(http);
    let answer = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&call)
        .await;
    tokens(answer, None, app)
}

async fn refresh(
    app: &App,
    http: &reqwest::Client,
    refresh_token: &str,
) -> Result<Tokens, RemoteError> {
    let client = token_client(app)?;
    let call = caller(http);
    let answer = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
        .request_async(&call)
        .await;
    // A remote may keep the refresh token (HubSpot does) and send it back or not.
    tokens(answer, Some(refresh_token), app)
}

async fn client_credentials(
    app: &App,
    http: &reqwest::Client,
    scopes: &[&str],
) -> Result<Tokens, RemoteError> {
    let client = token_client(app)?;
    let call = caller(http);
    let answer = client
        .exchange_client_credentials()
        .add_scopes(scopes.iter().map(|scope| Scope::new((*scope).to_owned())))
        .request_async(&call)
        .await;
    tokens(answer, None, app)
}

fn token_client(
    app: &App,
) -> Result<
    BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    RemoteError,
> {
    Ok(BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(app.client_secret.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(app.token_url.clone()).map_err(config)?))
}

fn config(err: impl std::fmt::Display) -> RemoteError {
    RemoteError::Rejected {
        status: 400,
        message: format!("an OAuth endpoint is not a valid URL: {err}"),
    }
}

/// A failure of the HTTP call itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CallFailed(String);

/// The `oauth2` crate's HTTP client: the connectors' reqwest client.
fn caller(
    http: &reqwest::Client,
) -> impl Fn(
    HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, CallFailed>> + Send>> {
    let http = http.clone();
    move |request: HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|err| {
                    CallFailed(if err.is_timeout() {
                        "the token endpoint timed out".into()
                    } else {
                        "the token endpoint could not be reached".into()
                    })
                })?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .map_err(|_| CallFailed("the token endpoint's answer was cut short".into()))?;
            answer
                .body(body.to_vec())
                .map_err(|err| CallFailed(err.to_string()))
        })
    }
}

type TokenAnswer = Result<
    BasicTokenResponse,
    RequestTokenError<CallFailed, StandardErrorResponse<BasicErrorResponseType>>,
>;

fn tokens(
    answer: TokenAnswer,
    kept_refresh: Option<&str>,
    app: &App,
) -> Result<Tokens, RemoteError> {
    let now = Utc::now().timestamp_millis();
    match answer {
        Ok(granted) => Ok(Tokens {
            access_token: Some(granted.access_token().secret().clone()),
            refresh_token: granted
                .refresh_token()
                .map(|token| token.secret().clone())
                .or_else(|| kept_refresh.map(str::to_owned)),
            expires_at: granted
                .expires_in()
                .map(|ttl| now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)),
            granted_at: Some(now),
            client_id: Some(app.client_id.clone()),
        }),
        Err(RequestTokenError::ServerResponse(refused)) => {
            let said = refused
                .error_description()
                .cloned()
                .unwrap_or_else(|| refused.error().to_string());
            Err(match refused.error() {
                BasicErrorResponseType::InvalidGrant => RemoteError::Unauthorized(format!(
                    "the authorization was revoked or has expired ({said}): reconnect the \
                     integration"
                )),
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => RemoteError::Unauthorized(format!(
                    "the OAuth client id or secret was refused ({said})"
                )),
                _ => RemoteError::Rejected {
                    status: 400,
                    message: said,
                },
            })
        }
        Err(RequestTokenError::Request(failed)) => Err(RemoteError::Unavailable(failed.0)),
        Err(RequestTokenError::Parse(err, _)) => Err(RemoteError::Malformed(format!(
            "the token endpoint's answer: {err}"
        ))),
        Err(RequestTokenError::Other(other)) => Err(RemoteError::Unavailable(other)),
    }
}

/// Keeps the tokens a [`Session`] obtains (sealed, with the integration).
#[async_trait]
pub trait TokenSink: Send + Sync {
    /// Stores `tokens`, renewed from `renewed_from` — unless the stored grant is no longer
    /// that one (another authorization, another app), which then stands. An error is
    /// logged and the tokens used anyway.
    async fn save(&self, renewed_from: &Tokens, tokens: &Tokens) -> Result<(), String>;
}

/// How a session gets its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// A person authorized; refreshed with the refresh token.
    AuthorizationCode,
    /// The app itself (client id and secret).
    ClientCredentials,
}

/// Access tokens of one integration, renewed as needed.
pub struct Session {
    app: App,
    grant: Grant,
    scopes: Vec<String>,
    http: reqwest::Client,
    tokens: tokio::sync::Mutex<Tokens>,
    sink: Option<Arc<dyn TokenSink>>,
}

impl Session {
    /// A session of `app` with the `tokens` kept so far.
    pub fn new(
        app: App,
        grant: Grant,
        scopes: Vec<String>,
        http: reqwest::Client,
        tokens: Tokens,
        sink: Option<Arc<dyn TokenSink>>,
    ) -> Self {
        Self {
            app,
            grant,
            scopes,
            http,
            tokens: tokio::sync::Mutex::new(tokens),
            sink,
        }
    }

    /// A usable access token: the current one, or a new one when it is about to expire
    /// ([`Tokens::needs_renewal`]).
    pub async fn token(&self) -> Result<String, RemoteError> {
        let mut tokens = self.tokens.lock().await;
        match &tokens.access_token {
            Some(token) if !tokens.needs_renewal(Utc::now().timestamp_millis()) => {
                Ok(token.clone())
            }
            _ => self.renew_locked(&mut tokens).await,
        }
    }

    /// A new access token after the remote refused `rejected` as expired (unless another
    /// call renewed it meanwhile).
    pub async fn renew(&self, rejected: &str) -> Result<String, RemoteError> {
        let mut tokens = self.tokens.lock().await;
        match &tokens.access_token {
            Some(token) if token != rejected => Ok(token.clone()),
            _ => self.renew_locked(&mut tokens).await,
        }
    }

    async fn renew_locked(&self, tokens: &mut Tokens) -> Result<String, RemoteError> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let granted = match (self.grant, tokens.refresh_token.as_deref()) {
            (Grant::AuthorizationCode, Some(refresh_token)) => {
                refresh(&self.app, &self.http, refresh_token).await?
            }
            (Grant::AuthorizationCode, None) => {
                return Err(RemoteError::Unauthorized(
                    "the integration is not authorized: connect it".into(),
                ));
            }
            (Grant::ClientCredentials, _) => {
                client_credentials(&self.app, &self.http, &scopes).await?
            }
        };
        let previous = std::mem::replace(tokens, granted.clone());
        if let Some(sink) = &self.sink
            && let Err(err) = sink.save(&previous, &granted).await
        {
            tracing::warn!(%err, "keeping renewed OAuth tokens");
        }
        granted
            .access_token
            .ok_or_else(|| RemoteError::Malformed("the token endpoint granted no token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            client_id: "client-1".into(),
            client_secret: "secret".into(),
            authorize_url: "https://app.example/oauth/authorize".into(),
            token_url: "https://api.example/oauth/v1/token".into(),
        }
    }

    #[test]
    fn consent_urls_carry_state_and_an_s256_challenge() -> Result<(), RemoteError> {
        let (url, pending) = start(
            &app(),
            "https://portal.example/back",
            &["a.read", "b.write"],
            0,
        )?;
        let parsed = url::Url::parse(&url).map_err(config)?;
        let query: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(query.get("client_id").map(String::as_str), Some("client-1"));
        assert_eq!(
            query.get("scope").map(String::as_str),
            Some("a.read b.write")
        );
        assert_eq!(
            query.get("code_challenge_method").map(String::as_str),
            Some("S256")
        );
        assert_eq!(query.get("state"), Some(&pending.state));
        assert_eq!(
            query.get("redirect_uri").map(String::as_str),
            Some("https://portal.example/back")
        );
        assert!(pending.verifier.len() >= 43);
        assert_eq!(pending.expires_at, PENDING_FOR_MS);
        Ok(())
    }

    #[test]
    fn tokens_are_renewed_ahead_but_not_before_every_call() {
        let minutes = |m: i64| m * 60_000;
        let token = |granted: i64, expires: i64| Tokens {
            access_token: Some("t".into()),
            refresh_token: None,
            expires_at: Some(expires),
            granted_at: Some(granted),
            client_id: None,
        };
        // Thirty minutes (HubSpot's): renewed in its last five.
        let long = token(0, minutes(30));
        assert!(!long.needs_renewal(minutes(24)));
        assert!(long.needs_renewal(minutes(25)));
        // One minute: renewed in its second half, not at once.
        let short = token(0, minutes(1));
        assert!(!short.needs_renewal(1_000));
        assert!(short.needs_renewal(30_000));
        // No expiry said: used until refused; no token: get one.
        assert!(
            !Tokens {
                expires_at: None,
                ..long.clone()
            }
            .needs_renewal(minutes(60))
        );
        assert!(Tokens::default().needs_renewal(0));
    }

    #[test]
    fn states_are_checked_once_started_and_in_time() -> Result<(), RemoteError> {
        let (_, pending) = start(&app(), "https://portal.example/back", &[], 0)?;
        assert_eq!(check_state(Some(&pending), &pending.state, 1), Ok(()));
        assert_eq!(
            check_state(Some(&pending), "forged", 1),
            Err(CompleteError::StateMismatch)
        );
        assert_eq!(
            check_state(Some(&pending), &pending.state, PENDING_FOR_MS + 1),
            Err(CompleteError::NotStarted)
        );
        assert_eq!(check_state(None, "x", 1), Err(CompleteError::NotStarted));
        Ok(())
    }
}
