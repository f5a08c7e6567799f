//! Connectors: how the portal talks to an external system. Each provider implements
//! [`Connector`] — test the connection, pull changed records since a cursor, push a
//! change, verify an inbound webhook — over a [`remote::Remote`], which retries transient
//! failures with backoff and honours `Retry-After`. The sync engine
//! ([`crate::sync`]) drives a connector page by page and applies what it pulls through
//! the portal's own GraphQL API; the circuit breaker lives with the integration's state
//! ([`crate::domain::sync::Breaker`]), so it holds across jobs and processes.

pub mod hubspot;
pub mod limits;
pub mod oauth;
pub mod remote;
pub mod stripe;

use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use remote::{Remote, RemoteError};

/// The secrets a connector works with, sealed together with the tenant's data key.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The remote's API key (Stripe's secret or restricted key, a HubSpot private-app
    /// token).
    #[serde(default)]
    pub api_key: Option<String>,
    /// The secret inbound webhooks from the remote are signed with.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// The portal API key the sync writes with: its service account and roles are the
    /// connector's identity in the portal.
    #[serde(default)]
    pub portal_api_key: Option<String>,
    /// The OAuth app's client id (connecting with OAuth instead of an API key).
    #[serde(default)]
    pub oauth_client_id: Option<String>,
    /// The OAuth app's client secret.
    #[serde(default)]
    pub oauth_client_secret: Option<String>,
    /// Tokens the remote granted.
    #[serde(default)]
    pub oauth: Option<oauth::Tokens>,
    /// An authorization started and not completed yet.
    #[serde(default)]
    pub pending: Option<oauth::Pending>,
}

impl Credentials {
    /// Whether nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.api_key.is_none()
            && self.webhook_secret.is_none()
            && self.portal_api_key.is_none()
            && self.oauth_client_id.is_none()
            && self.oauth_client_secret.is_none()
            && self.oauth.is_none()
            && self.pending.is_none()
    }

    /// How the connector authenticates at the remote, as far as these credentials say.
    pub fn auth_method(&self) -> AuthMethod {
        if self.api_key.is_some() {
            AuthMethod::ApiKey
        } else if self
            .oauth
            .as_ref()
            .is_some_and(|tokens| tokens.refresh_token.is_some())
        {
            AuthMethod::OAuthAuthorizationCode
        } else if self.oauth_client_id.is_some() && self.oauth_client_secret.is_some() {
            AuthMethod::OAuthClientCredentials
        } else {
            AuthMethod::None
        }
    }
}

/// How a connector authenticates at its remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// Nothing configured.
    None,
    /// A static API key or private-app token.
    ApiKey,
    /// OAuth tokens a person authorized (refreshed as needed).
    OAuthAuthorizationCode,
    /// OAuth tokens the app obtains itself (client credentials).
    OAuthClientCredentials,
}

impl AuthMethod {
    /// Storage form (in the integration's settings, where the API reads it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::ApiKey => "API_KEY",
            Self::OAuthAuthorizationCode => "OAUTH_AUTHORIZATION_CODE",
            Self::OAuthClientCredentials => "OAUTH_CLIENT_CREDENTIALS",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Self {
        match value {
            "API_KEY" => Self::ApiKey,
            "OAUTH_AUTHORIZATION_CODE" => Self::OAuthAuthorizationCode,
            "OAUTH_CLIENT_CREDENTIALS" => Self::OAuthClientCredentials,
            _ => Self::None,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key.is_some())
            .field("webhook_secret", &self.webhook_secret.is_some())
            .field("portal_api_key", &self.portal_api_key.is_some())
            .field("oauth_client_id", &self.oauth_client_id.is_some())
            .field("oauth_client_secret", &self.oauth_client_secret.is_some())
            .field("oauth", &self.oauth)
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

/// One record pulled from the remote.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The remote's kind of record (`customer`, `invoice`).
    pub external_type: String,
    /// Its id there.
    pub external_id: String,
    /// Removed at the remote.
    pub deleted: bool,
    /// The record as the remote sent it.
    pub body: Value,
}

/// A page of changes and where to go on from.
#[derive(Clone, Debug)]
pub struct Page {
    /// Records in the order to apply them.
    pub records: Vec<Record>,
    /// The cursor after this page.
    pub next: Value,
    /// Whether more pages follow now (otherwise the run is done; `next` is where the
    /// next incremental run starts).
    pub more: bool,
}

/// What a connection test found.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The remote account connected to (its name or id).
    pub account: String,
    /// Round-trip time of the check.
    pub latency: Duration,
}

/// A change the portal sends to the remote.
#[derive(Clone, Debug)]
pub struct Push {
    /// The remote's kind of record.
    pub external_type: String,
    /// Its id there.
    pub external_id: String,
    /// Fields to set (remote names).
    pub fields: Vec<(String, String)>,
    /// Makes a retried push a no-op at the remote.
    pub idempotency_key: String,
}

/// Why an inbound webhook was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    /// No signature header.
    #[error("the request is not signed")]
    NotSigned,
    /// The header could not be read.
    #[error("the signature header is malformed")]
    Malformed,
    /// Signed too long ago (a replay).
    #[error("the signature is too old")]
    TooOld,
    /// No signature matches the secret.
    #[error("no signature matches")]
    Mismatch,
    /// The integration has no webhook secret configured.
    #[error("the integration has no webhook secret")]
    NoSecret,
}

/// An external system, as the sync engine sees it.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Checks the credentials and the remote: the account connected to.
    async fn test_connection(&self) -> Result<ConnectionInfo, RemoteError>;

    /// Where a backfill starts: also remembers where incremental sync will go on from,
    /// so that nothing changed during the backfill is missed.
    async fn backfill_cursor(&self) -> Result<Value, RemoteError>;

    /// Where incremental sync starts when it never ran (now).
    async fn incremental_cursor(&self) -> Result<Value, RemoteError>;

    /// The page of changes after `cursor`.
    async fn pull(&self, cursor: &Value) -> Result<Page, RemoteError>;

    /// Sends a change to the remote.
    async fn push(&self, change: &Push) -> Result<(), RemoteError>;

    /// Checks an inbound webhook's signature (`now` in Unix milliseconds).
    fn verify_webhook(&self, request: &Inbound<'_>, now_ms: i64) -> Result<(), WebhookRejection>;
}

/// An inbound webhook request, as its signature covers it.
#[derive(Clone, Copy, Debug)]
pub struct Inbound<'a> {
    /// `POST`.
    pub method: &'a str,
    /// The public URL it was sent to (scheme, host, path and query), as configured at the
    /// remote.
    pub url: &'a str,
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// Its raw body.
    pub body: &'a [u8],
}

/// Where each provider's API is (deployment configuration, never a tenant's choice: the
/// credentials go there).
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Stripe's API base URL.
    pub stripe: String,
    /// HubSpot's API base URL.
    pub hubspot: String,
    /// HubSpot's OAuth consent page.
    pub hubspot_authorize: String,
    /// The public base URL inbound webhooks are addressed to
    /// (`https://api.portal.example.com`): HubSpot's signature covers the whole URL.
    /// `None`: the request's own `Host`, over plain HTTP.
    pub public_url: Option<String>,
    /// How fast connectors call each remote account.
    pub pacing: Pacing,
}

/// How fast connectors call each remote account (client-side, per integration and
/// process), below the remotes' published limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// HubSpot's calls other than search (its limit: 100 to 190 per ten seconds by plan,
    /// 110 for public apps).
    pub hubspot: limits::Rate,
    /// HubSpot's searches (its limit: five per second per account).
    pub hubspot_search: limits::Rate,
    /// Stripe's calls (its limit: 100 per second live, 25 in test mode).
    pub stripe: limits::Rate,
}

impl Pacing {
    /// HubSpot calls per ten seconds by default (every plan allows 100).
    pub const HUBSPOT_CALLS_PER_10S: u32 = 100;
    /// HubSpot searches per second by default (HubSpot allows five).
    pub const HUBSPOT_SEARCHES_PER_SECOND: u32 = 4;
    /// Stripe calls per second by default (test mode allows 25).
    pub const STRIPE_CALLS_PER_SECOND: u32 = 25;

    /// Never more than these in any window (each at least one).
    pub fn new(
        hubspot_calls_per_10s: u32,
        hubspot_searches_per_second: u32,
        stripe_calls_per_second: u32,
    ) -> Self {
        use std::time::Duration;
        Self {
            hubspot: limits::Rate::within(
                hubspot_calls_per_10s.max(1),
                Duration::from_secs(10),
                10,
            ),
            hubspot_search: limits::Rate::within(
                hubspot_searches_per_second.max(1),
                Duration::from_secs(1),
                1,
            ),
            stripe: limits::Rate::within(stripe_calls_per_second.max(1), Duration::from_secs(1), 5),
        }
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Self::new(
            Self::HUBSPOT_CALLS_PER_10S,
            Self::HUBSPOT_SEARCHES_PER_SECOND,
            Self::STRIPE_CALLS_PER_SECOND,
        )
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            stripe: stripe::BASE_URL.to_owned(),
            hubspot: hubspot::BASE_URL.to_owned(),
            hubspot_authorize: hubspot::AUTHORIZE_URL.to_owned(),
            public_url: None,
            pacing: Pacing::default(),
        }
    }
}

/// Providers with a connector.
pub const PROVIDERS: [&str; 2] = [hubspot::PROVIDER, stripe::PROVIDER];

/// The OAuth app an integration of `provider` connects with, when its credentials name
/// one (and the provider takes OAuth).
pub fn oauth_app(
    provider: &str,
    credentials: &Credentials,
    endpoints: &Endpoints,
) -> Option<oauth::App> {
    let (client_id, client_secret) = (
        credentials.oauth_client_id.clone()?,
        credentials.oauth_client_secret.clone()?,
    );
    match provider {
        hubspot::PROVIDER => Some(oauth::App {
            client_id,
            client_secret,
            authorize_url: endpoints.hubspot_authorize.clone(),
            token_url: format!("{}/oauth/v1/token", endpoints.hubspot.trim_end_matches('/')),
        }),
        _ => None,
    }
}

/// The scopes an integration of `provider` with `settings` asks for.
pub fn oauth_scopes(provider: &str, settings: Option<&Value>) -> Vec<String> {
    match provider {
        hubspot::PROVIDER => hubspot::Objects::from_settings(settings).scopes(),
        _ => Vec::new(),
    }
}

/// The connector of integration `row` with `credentials`, or `None` when the portal has
/// none for its provider. OAuth tokens it renews go to `tokens`.
pub fn connector_for(
    row: &portal_entities::integrations::integration::Model,
    credentials: &Credentials,
    endpoints: &Endpoints,
    remote: &Remote,
    tokens: Option<std::sync::Arc<dyn oauth::TokenSink>>,
) -> Option<Box<dyn Connector>> {
    let (provider, settings) = (row.provider.as_str(), row.settings.as_ref());
    // Limits apply per remote account: one integration is one account.
    let key = row.id.to_string();
    match provider {
        stripe::PROVIDER => Some(Box::new(stripe::Stripe::new(
            &endpoints.stripe,
            credentials,
            remote.clone(),
            (key, endpoints.pacing.stripe),
        ))),
        hubspot::PROVIDER => {
            let grant = match credentials.auth_method() {
                AuthMethod::OAuthAuthorizationCode => Some(oauth::Grant::AuthorizationCode),
                AuthMethod::OAuthClientCredentials => Some(oauth::Grant::ClientCredentials),
                AuthMethod::ApiKey | AuthMethod::None => None,
            };
            let auth = match (grant, oauth_app(provider, credentials, endpoints)) {
                (Some(grant), Some(app)) => {
                    hubspot::Auth::OAuth(std::sync::Arc::new(oauth::Session::new(
                        app,
                        grant,
                        oauth_scopes(provider, settings),
                        remote.http().clone(),
                        credentials.oauth.clone().unwrap_or_default(),
                        tokens,
                    )))
                }
                _ => hubspot::Auth::Token(credentials.api_key.clone()),
            };
            Some(Box::new(hubspot::HubSpot::new(
                &endpoints.hubspot,
                auth,
                // A public app signs its webhooks with its client secret.
                credentials
                    .webhook_secret
                    .clone()
                    .or_else(|| credentials.oauth_client_secret.clone()),
                hubspot::Objects::from_settings(settings),
                remote.clone(),
                hubspot::Paced {
                    key,
                    calls: endpoints.pacing.hubspot,
                    searches: endpoints.pacing.hubspot_search,
                },
            )))
        }
        _ => None,
    }
}
