//! Configuration of the `portal` binary: a TOML file plus environment overrides,
//! validated once at start-up with messages that say what to fix. Secrets are never
//! printed (`Debug` redacts them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use portal_gateway::subgraph::{ErrorExposure, SubgraphSettings};
use portal_identity::IdentitySettings;
use portal_integrations::connectors::Pacing;
use portal_kit::mail::{Mailer, Transport};
use portal_kit::secret::DataKey;
use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Database settings.
    pub database: DatabaseConfig,
    /// Gateway settings.
    pub gateway: GatewayConfig,
    /// Settings shared by gateway and subgraphs.
    pub internal: InternalConfig,
    /// Sign-in and token settings.
    pub identity: IdentityConfig,
    /// Outgoing email.
    pub mail: MailConfig,
    /// Background job workers.
    pub jobs: JobsConfig,
    /// Stored files (exports).
    pub files: FilesConfig,
    /// Secure messaging.
    pub messages: MessagesConfig,
    /// Outbound webhook delivery.
    pub webhooks: WebhooksConfig,
    /// Integrations' connectors.
    pub connectors: ConnectorsConfig,
    /// The tamper-evident audit log.
    pub audit: AuditConfig,
    /// Logs, metrics and shutdown.
    pub telemetry: TelemetryConfig,
}

/// Logs, metrics and shutdown (`docs/operations.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` (default) or `json`. Env: `PORTAL_LOG_FORMAT`; `--log-format` overrides.
    pub log_format: crate::telemetry::LogFormat,
    /// Where to serve Prometheus metrics (`GET /metrics`), e.g. `127.0.0.1:9464`; unset:
    /// no metrics are kept. Keep it off the public network. Env: `PORTAL_METRICS_LISTEN`;
    /// `--metrics-listen` overrides.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long a shutdown (SIGTERM, Ctrl-C) waits for requests, streams and jobs in
    /// flight before it gives the jobs' leases back and exits. Env:
    /// `PORTAL_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace_secs: u64,
    /// How long a shutdown keeps serving with `/ready` failing before it stops accepting,
    /// so that balancers take the process out first (about two of their probe intervals).
    /// Env: `PORTAL_SHUTDOWN_DELAY_SECS`.
    pub shutdown_delay_secs: u64,
    /// Export traces to this OpenTelemetry collector (OTLP over HTTP, e.g.
    /// `http://collector:4318`); unset: nothing is exported. Env:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans (default `portal`, or `portal-<role>`). Env:
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// Share of new traces exported, 0–1 (default 1); a caller's `traceparent` sampling
    /// decision is followed. Env: `OTEL_TRACES_SAMPLER_ARG`.
    pub trace_sample_ratio: f64,
}

impl TelemetryConfig {
    /// Where spans go, for a process whose role is `role` (`None`: all-in-one).
    pub fn trace_export(&self, role: Option<&str>) -> Option<crate::telemetry::TraceExport> {
        let endpoint = self.otlp_endpoint.clone()?;
        Some(crate::telemetry::TraceExport {
            endpoint,
            service: self.service_name.clone().unwrap_or_else(|| {
                role.map_or_else(|| "portal".to_owned(), |r| format!("portal-{r}"))
            }),
            sample_ratio: self.trace_sample_ratio,
        })
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: Default::default(),
            metrics_listen: None,
            shutdown_grace_secs: 25,
            shutdown_delay_secs: 0,
            otlp_endpoint: None,
            service_name: None,
            trace_sample_ratio: 1.0,
        }
    }
}

/// The tamper-evident audit log (`docs/compliance.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A chain that grew is checkpointed (its head signed) at least this often, in seconds.
    pub checkpoint_every_secs: u64,
    /// … or as soon as this many events were chained since its last checkpoint.
    pub checkpoint_events: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let policy = portal_kit::audit::chain::CheckpointPolicy::default();
        Self {
            checkpoint_every_secs: policy.every.num_seconds().unsigned_abs(),
            checkpoint_events: policy.events.unsigned_abs(),
        }
    }
}

impl AuditConfig {
    /// When chains are checkpointed.
    pub fn checkpoints(&self) -> portal_kit::audit::chain::CheckpointPolicy {
        portal_kit::audit::chain::CheckpointPolicy {
            every: chrono::Duration::seconds(
                i64::try_from(self.checkpoint_every_secs.max(1)).unwrap_or(i64::MAX),
            ),
            events: i64::try_from(self.checkpoint_events.max(1)).unwrap_or(i64::MAX),
        }
    }
}

/// Where integrations' connectors call (`docs/integrations.md`). A deployment setting,
/// never a tenant's: the tenant's credentials are sent there.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// Stripe's API. Env: `PORTAL_STRIPE_API_URL`.
    pub stripe_url: String,
    /// HubSpot's API. Env: `PORTAL_HUBSPOT_API_URL`.
    pub hubspot_url: String,
    /// HubSpot's OAuth consent page. Env: `PORTAL_HUBSPOT_AUTHORIZE_URL`.
    pub hubspot_authorize_url: String,
    /// The public base URL of this gateway as remotes call it (`https://api.example.com`):
    /// inbound webhooks go to `<it>/integrations/<id>/webhook`, and HubSpot's signature
    /// covers that URL. Unset: `identity.public_url`, else the request's `Host` over
    /// plain HTTP. Env: `PORTAL_WEBHOOK_BASE_URL`.
    pub webhook_base_url: Option<String>,
    /// Calls (other than search) to one HubSpot account per ten seconds, per process:
    /// 100 suits every plan; Professional and Enterprise allow 190.
    pub hubspot_calls_per_10s: u32,
    /// Searches of one HubSpot account per second, per process (HubSpot allows five).
    pub hubspot_searches_per_second: u32,
    /// Calls to one Stripe account per second, per process (Stripe allows 100 live, 25
    /// in test mode).
    pub stripe_calls_per_second: u32,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        let defaults = portal_integrations::connectors::Endpoints::default();
        Self {
            stripe_url: defaults.stripe,
            hubspot_url: defaults.hubspot,
            hubspot_authorize_url: defaults.hubspot_authorize,
            webhook_base_url: None,
            hubspot_calls_per_10s: Pacing::HUBSPOT_CALLS_PER_10S,
            hubspot_searches_per_second: Pacing::HUBSPOT_SEARCHES_PER_SECOND,
            stripe_calls_per_second: Pacing::STRIPE_CALLS_PER_SECOND,
        }
    }
}

impl ConnectorsConfig {
    /// The endpoints connectors call.
    pub fn endpoints(&self) -> portal_integrations::connectors::Endpoints {
        portal_integrations::connectors::Endpoints {
            stripe: self.stripe_url.clone(),
            hubspot: self.hubspot_url.clone(),
            hubspot_authorize: self.hubspot_authorize_url.clone(),
            public_url: None,
            pacing: Pacing::new(
                self.hubspot_calls_per_10s,
                self.hubspot_searches_per_second,
                self.stripe_calls_per_second,
            ),
        }
    }
}

/// Outbound webhook delivery (`docs/integrations.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Networks deliveries may reach besides public addresses (CIDRs, e.g.
    /// `127.0.0.1/32`): for tests, benchmarks or a partner over a private link. Empty by
    /// default — loopback, private, link-local and metadata addresses are refused — and
    /// logged loudly when set. Env: `PORTAL_WEBHOOKS_ALLOW_NETWORKS` (comma-separated).
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Whether `http` URLs are called. Default: only with `--demo`. Env:
    /// `PORTAL_WEBHOOKS_ALLOW_HTTP`.
    pub allow_http: Option<bool>,
    /// How long to wait for a receiver's answer, in seconds.
    pub timeout_secs: u64,
    /// An endpoint whose every delivery has failed for this many days is disabled.
    pub disable_after_days: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_networks: Vec::new(),
            allow_http: None,
            timeout_secs: 10,
            disable_after_days: 5,
        }
    }
}

/// Secure messaging (`docs/messages.md`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// A ClamAV daemon (`host:port` of its `TCPSocket`) that scans every attachment before
    /// anyone may download it. Unset: attachments are not scanned (and say so). Env:
    /// `PORTAL_CLAMD`.
    pub clamd: Option<String>,
}

impl MessagesConfig {
    /// The malware scanner attachments are judged by.
    pub fn scanner(&self) -> std::sync::Arc<dyn portal_kit::scan::MalwareScanner> {
        match &self.clamd {
            Some(address) => std::sync::Arc::new(portal_kit::scan::Clamd::new(address.clone())),
            None => std::sync::Arc::new(portal_kit::scan::NotScanned),
        }
    }
}

/// Stored files: exports today (`docs/operations.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// The directory files are kept in; every process of a deployment must see the same
    /// one. Default: `files` next to the SQLite database, else `data/files`. Env:
    /// `PORTAL_FILES_DIR`.
    pub dir: Option<std::path::PathBuf>,
    /// Keep files in an S3-compatible bucket instead: `s3://bucket[/prefix]` (then `dir`
    /// only holds scratch files). Credentials from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). Env: `PORTAL_FILES_URL`.
    pub url: Option<String>,
    /// The bucket's region (default `us-east-1`). Env: `PORTAL_FILES_S3_REGION`.
    pub s3_region: Option<String>,
    /// An S3-compatible endpoint (`http(s)://host:port`: MinIO, Ceph, …); unset: AWS. Env:
    /// `PORTAL_FILES_S3_ENDPOINT`.
    pub s3_endpoint: Option<String>,
    /// How long a download link works, in seconds.
    pub link_ttl_secs: u64,
    /// How long a file is kept, in days.
    pub retention_days: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            dir: None,
            url: None,
            s3_region: None,
            s3_endpoint: None,
            link_ttl_secs: 300,
            retention_days: 7,
        }
    }
}

/// Background job workers (`docs/jobs.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// How long a claimed job is a worker's before another may take it, in seconds
    /// (heartbeats renew it while the job runs). Env: `PORTAL_JOB_LEASE_SECS`.
    pub lease_secs: u64,
    /// How often a worker looks for work without a wake-up, in milliseconds.
    pub poll_ms: u64,
    /// Most jobs a worker claims and runs at once. Env: `PORTAL_JOB_BATCH`.
    pub batch: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            lease_secs: 30,
            poll_ms: 250,
            batch: 16,
        }
    }
}

/// Outgoing email: SMTP when `smtp_url` is set, else `.eml` files in `dir`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Sender, `Name <address>`.
    pub from: String,
    /// `smtp://user:pass@host:587?tls=required` or `smtps://user:pass@host:465`.
    /// Env: `PORTAL_SMTP_URL`.
    pub smtp_url: Option<String>,
    /// Without SMTP: the directory mail is written to (default: `mail/` next to the
    /// SQLite database, else `./data/mail`).
    pub dir: Option<PathBuf>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "Portal <no-reply@portal.localhost>".into(),
            smtp_url: None,
            dir: None,
        }
    }
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("from", &self.from)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("dir", &self.dir)
            .finish()
    }
}

/// Sign-in and token settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// `iss` of access tokens.
    pub issuer: String,
    /// Lifetime of access tokens in seconds (30–3600).
    pub access_token_ttl_secs: u64,
    /// Age in days at which the token signing key is replaced (1–365).
    pub key_rotation_days: u64,
    /// Secret (≥ 32 bytes) that seals secrets at rest, such as token signing keys.
    /// Env: `PORTAL_DATA_KEY`. Without it, an SQLite deployment keeps a generated key in
    /// `secret.key` next to the database file; PostgreSQL deployments must set it.
    pub data_key: Option<String>,
    /// Base URL of the web front end, for links in emails (password resets, invitations)
    /// and the SSO redirect. Env: `PORTAL_PUBLIC_URL`. Required by the processes that
    /// send mail (all-in-one, identity) unless `--demo`, which uses the listen address.
    pub public_url: Option<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: "portal".into(),
            access_token_ttl_secs: 300,
            key_rotation_days: 30,
            data_key: None,
            public_url: None,
        }
    }
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("issuer", &self.issuer)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("key_rotation_days", &self.key_rotation_days)
            .field("data_key", &self.data_key.as_ref().map(|_| "<redacted>"))
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// Database settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://…`. Env: `DATABASE_URL`.
    pub url: String,
    /// Pool size per process.
    pub max_connections: u32,
    /// SQLite only: `full` (default: every acknowledged commit survives a power loss) or
    /// `normal` (faster writes; a power loss can lose the last commits). Env:
    /// `PORTAL_SQLITE_SYNCHRONOUS`.
    pub sqlite_synchronous: portal_kit::db::SqliteDurability,
}

/// Gateway settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Subgraph URLs by name. With `--supergraph` they override the URLs in the
    /// supergraph; otherwise they override the defaults (`127.0.0.1:4001`–`4005`).
    pub subgraphs: BTreeMap<String, String>,
    /// Timeout of one subgraph request, in milliseconds.
    pub subgraph_timeout_ms: u64,
    /// Per-subgraph timeouts in milliseconds, overriding `subgraph_timeout_ms`.
    pub subgraph_timeouts_ms: BTreeMap<String, u64>,
    /// What clients see of subgraph errors: `mask` (default: only deliberate client
    /// errors such as `BAD_USER_INPUT` keep their message), `mask_all` or `expose`.
    pub subgraph_errors: ErrorExposure,
    /// Trust the development identity headers (never in production).
    pub dev_headers: bool,
    /// Serve HTTPS with this PEM certificate chain (with `tls_key`); every role. Env:
    /// `PORTAL_TLS_CERT`.
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `tls_cert`. Env: `PORTAL_TLS_KEY`.
    pub tls_key: Option<std::path::PathBuf>,
    /// Send `Strict-Transport-Security` although the portal serves plain HTTP (a proxy in
    /// front terminates TLS); always sent when the portal serves TLS itself.
    pub hsts: bool,
    /// Most tokens in one GraphQL document.
    pub max_tokens: usize,
    /// Deepest field nesting of an operation.
    pub max_depth: usize,
    /// Most aliases in an operation.
    pub max_aliases: usize,
    /// Most root fields in an operation.
    pub max_root_fields: usize,
    /// Most fields in an operation once its fragments are expanded.
    pub max_fields: usize,
    /// Most directives written in one document.
    pub max_directives: usize,
    /// Most times one directive may be repeated at one location.
    pub max_repeated_directive: usize,
    /// Most validation errors reported for one document (the rest are summarized).
    pub max_validation_errors: usize,
    /// Most query plans kept in the plan cache.
    pub plan_cache_size: usize,
    /// Most operations executing at once (further requests queue).
    pub max_concurrent_operations: usize,
    /// Field-level authorization: `auto` (default: `filter` on the portal's supergraph,
    /// `off` on a supergraph of other subgraphs), `filter` (denied fields are null with
    /// an error), `reject` (refuse the operation), `dry_run` (log only) or `off`.
    pub authorization: AuthorizationMode,
    /// Authorize introspection (`Query.__schema`, `Query.__type`) like any field: only
    /// roles the policies allow may introspect. Unset: on, except with `--demo`.
    pub authorize_introspection: Option<bool>,
    /// Serve the in-browser IDE at `GET /graphql` (browsers asking for HTML). Off by
    /// default; `--demo` turns it on. Env: `PORTAL_IDE`.
    pub ide: bool,
    /// Load balancers / proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names
    /// the client; empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Web origins (`https://app.example.com`) whose pages may call the gateway from the
    /// browser (CORS). Empty (the default): none — same-origin pages only.
    pub cors_origins: Vec<String>,
    /// Custom progressive-override labels (`@override(from:, label: "…")`) treated as
    /// active: the fields they label move to their new subgraph. `percent(p)` labels need
    /// nothing here: each request draws.
    pub override_labels: Vec<String>,
    /// Subscription limits (`docs/subscriptions.md`).
    pub subscriptions: SubscriptionsConfig,
    /// Rate limits (`docs/operations.md#rate-limits`).
    pub rate_limits: RateLimitsConfig,
}

/// Rate limits of the gateway (`[gateway.rate_limits]`). A quota whose `per_second` is 0
/// turns that limit off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Whether any limit applies. Env: `PORTAL_RATE_LIMITS` (`on`/`off`).
    pub enabled: bool,
    /// Share the limits between gateway replicas through this Redis (`redis://host:6379`);
    /// unset: each process limits alone. Env: `PORTAL_REDIS_URL`.
    pub redis_url: Option<String>,
    /// Per client address (before authentication).
    pub per_ip: Quota,
    /// Per signed-in user.
    pub per_user: Quota,
    /// Per API key.
    pub per_api_key: Quota,
    /// Per tenant: all its users and keys together.
    pub per_tenant: Quota,
}

use portal_gateway::rate_limit::Quota;

impl Default for RateLimitsConfig {
    fn default() -> Self {
        let quota = |per_second: f64, burst: u32| Quota { per_second, burst };
        Self {
            enabled: true,
            redis_url: None,
            per_ip: quota(100.0, 200),
            per_user: quota(50.0, 100),
            per_api_key: quota(100.0, 200),
            per_tenant: quota(500.0, 1_000),
        }
    }
}

impl RateLimitsConfig {
    /// The limits in force (`None` when off).
    pub fn limits(&self) -> Option<portal_gateway::rate_limit::RateLimits> {
        if !self.enabled {
            return None;
        }
        let on = |quota: Quota| (quota.per_second > 0.0 && quota.burst > 0).then_some(quota);
        Some(portal_gateway::rate_limit::RateLimits {
            per_ip: on(self.per_ip),
            per_user: on(self.per_user),
            per_api_key: on(self.per_api_key),
            per_tenant: on(self.per_tenant),
        })
    }
}

/// Subscription limits of one gateway (`[gateway.subscriptions]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionsConfig {
    /// Most subscriptions open at once, over every transport.
    pub max_total: usize,
    /// Most subscriptions one user or service account holds open at once.
    pub max_per_principal: usize,
    /// Most subscriptions on one WebSocket connection.
    pub max_per_connection: usize,
    /// Most WebSocket connections open at once.
    pub max_websocket_connections: usize,
    /// Seconds between re-checks of an idle subscription's credential and policies.
    pub recheck_secs: u64,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        let limits = portal_gateway::limits::Limits::default();
        Self {
            max_total: limits.max_subscriptions,
            max_per_principal: limits.max_subscriptions_per_principal,
            max_per_connection: limits.max_subscriptions_per_connection,
            max_websocket_connections: limits.max_websocket_connections,
            recheck_secs: limits.subscription_recheck.as_secs(),
        }
    }
}

/// Field-level authorization mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationMode {
    /// `Filter` wherever the gateway can reach the portal's subgraphs — all-in-one, or
    /// holding the internal token secret they require; `Off`, with a warning, for a bare
    /// gateway without the secret: no portal subgraph answers it, and no policy names
    /// other subgraphs' fields.
    #[default]
    Auto,
    /// Null denied fields with a `FORBIDDEN` error; refuse mutations with any.
    Filter,
    /// Refuse operations with any denied field.
    Reject,
    /// Log what would be denied.
    DryRun,
    /// No field-level authorization.
    Off,
}

impl AuthorizationMode {
    /// The gateway mode for a gateway that can (`reaches_portal`) or cannot reach the
    /// portal's subgraphs; `None` when off.
    pub fn gateway_mode(self, reaches_portal: bool) -> Option<portal_gateway::authz::Mode> {
        use portal_gateway::authz::Mode;
        match self {
            Self::Auto => reaches_portal.then_some(Mode::Filter),
            Self::Filter => Some(Mode::Filter),
            Self::Reject => Some(Mode::Reject),
            Self::DryRun => Some(Mode::DryRun),
            Self::Off => None,
        }
    }
}

/// Settings shared by the gateway and the subgraphs.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalConfig {
    /// Secret the gateway signs subgraph requests with (≥ 32 bytes).
    /// Env: `PORTAL_INTERNAL_TOKEN_SECRET`. Required when processes talk over HTTP.
    pub token_secret: Option<String>,
    /// The gateway's GraphQL endpoint as the portal's other processes reach it (workers
    /// and the reports subgraph read through it as a user). Default
    /// `http://127.0.0.1:4000/graphql`. Env: `PORTAL_GATEWAY_URL`.
    pub gateway_url: Option<String>,
}

impl std::fmt::Debug for InternalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalConfig")
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("gateway_url", &self.gateway_url)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/portal.db?mode=rwc".into(),
            max_connections: 16,
            sqlite_synchronous: Default::default(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let limits = portal_gateway::limits::Limits::default();
        Self {
            subgraphs: BTreeMap::new(),
            subgraph_timeout_ms: 10_000,
            subgraph_timeouts_ms: BTreeMap::new(),
            subgraph_errors: ErrorExposure::Mask,
            dev_headers: false,
            tls_cert: None,
            tls_key: None,
            hsts: false,
            max_tokens: limits.max_tokens,
            max_depth: limits.max_depth,
            max_aliases: limits.max_aliases,
            max_root_fields: limits.max_root_fields,
            max_fields: limits.max_fields,
            max_directives: limits.max_directives,
            max_repeated_directive: limits.max_repeated_directive,
            max_validation_errors: limits.max_validation_errors,
            plan_cache_size: limits.plan_cache_size,
            max_concurrent_operations: limits.max_concurrent_operations,
            authorization: AuthorizationMode::Auto,
            authorize_introspection: None,
            ide: false,
            trusted_proxies: Vec::new(),
            override_labels: Vec::new(),
            cors_origins: Vec::new(),
            subscriptions: SubscriptionsConfig::default(),
            rate_limits: RateLimitsConfig::default(),
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Where connectors call, and the public URL inbound webhooks are addressed to.
    pub fn connector_endpoints(&self) -> portal_integrations::connectors::Endpoints {
        portal_integrations::connectors::Endpoints {
            public_url: self
                .connectors
                .webhook_base_url
                .clone()
                .or_else(|| self.identity.public_url.clone()),
            ..self.connectors.endpoints()
        }
    }

    /// Loads `path` (if given, else `portal.toml` when present, else defaults), then applies
    /// environment overrides, then validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let default_path = Path::new("portal.toml");
        let path = path.or_else(|| default_path.exists().then_some(default_path));
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|err| ConfigError::Parse {
                    path: path.to_owned(),
                    message: err.to_string(),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Applies `DATABASE_URL`, `PORTAL_INTERNAL_TOKEN_SECRET`, `PORTAL_GATEWAY_URL`,
    /// `PORTAL_DEV_HEADERS`,
    /// `PORTAL_SUBGRAPH_TIMEOUT_MS` and `PORTAL_SUBGRAPH_<NAME>_URL`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(url) = var("DATABASE_URL") {
            self.database.url = url;
        }
        if let Some(mode) = var("PORTAL_SQLITE_SYNCHRONOUS") {
            self.database.sqlite_synchronous = match mode.as_str() {
                "full" => portal_kit::db::SqliteDurability::Full,
                "normal" => portal_kit::db::SqliteDurability::Normal,
                _ => {
                    return Err(ConfigError::Invalid(
                        "PORTAL_SQLITE_SYNCHRONOUS must be full or normal".into(),
                    ));
                }
            };
        }
        if let Some(url) = var("PORTAL_GATEWAY_URL") {
            self.internal.gateway_url = Some(url);
        }
        if let Some(secret) = var("PORTAL_INTERNAL_TOKEN_SECRET") {
            self.internal.token_secret = Some(secret);
        }
        if let Some(secret) = var("PORTAL_DATA_KEY") {
            self.identity.data_key = Some(secret);
        }
        if let Some(url) = var("PORTAL_PUBLIC_URL") {
            self.identity.public_url = Some(url);
        }
        if let Some(path) = var("PORTAL_TLS_CERT") {
            self.gateway.tls_cert = Some(path.into());
        }
        if let Some(path) = var("PORTAL_TLS_KEY") {
            self.gateway.tls_key = Some(path.into());
        }
        if let Some(networks) = var("PORTAL_WEBHOOKS_ALLOW_NETWORKS") {
            self.webhooks.allow_networks = networks
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    n.parse().map_err(|_| {
                        ConfigError::Invalid(format!(
                            "PORTAL_WEBHOOKS_ALLOW_NETWORKS: `{n}` is not a CIDR like 127.0.0.1/32"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(url) = var("PORTAL_STRIPE_API_URL") {
            self.connectors.stripe_url = url;
        }
        if let Some(url) = var("PORTAL_HUBSPOT_API_URL") {
            self.connectors.hubspot_url = url;
        }
        if let Some(url) = var("PORTAL_HUBSPOT_AUTHORIZE_URL") {
            self.connectors.hubspot_authorize_url = url;
        }
        if let Some(url) = var("PORTAL_WEBHOOK_BASE_URL") {
            self.connectors.webhook_base_url = Some(url);
        }
        if let Some(value) = var("PORTAL_WEBHOOKS_ALLOW_HTTP") {
            self.webhooks.allow_http = Some(matches!(value.as_str(), "1" | "true" | "yes"));
        }
        if let Some(format) = var("PORTAL_LOG_FORMAT") {
            self.telemetry.log_format = match format.as_str() {
                "text" => crate::telemetry::LogFormat::Text,
                "json" => crate::telemetry::LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid(
                        "PORTAL_LOG_FORMAT must be text or json".into(),
                    ));
                }
            };
        }
        if let Some(listen) = var("PORTAL_METRICS_LISTEN") {
            self.telemetry.metrics_listen = Some(listen.parse().map_err(|_| {
                ConfigError::Invalid(
                    "PORTAL_METRICS_LISTEN must be an address like 127.0.0.1:9464".into(),
                )
            })?);
        }
        if let Some(secs) = var("PORTAL_SHUTDOWN_GRACE_SECS") {
            self.telemetry.shutdown_grace_secs = secs.parse().map_err(|_| {
                ConfigError::Invalid(
                    "PORTAL_SHUTDOWN_GRACE_SECS must be a number of seconds".into(),
                )
            })?;
        }
        if let Some(value) = var("PORTAL_RATE_LIMITS") {
            self.gateway.rate_limits.enabled = match value.as_str() {
                "1" | "true" | "on" => true,
                "0" | "false" | "off" => false,
                _ => {
                    return Err(ConfigError::Invalid(
                        "PORTAL_RATE_LIMITS must be on or off".into(),
                    ));
                }
            };
        }
        if let Some(url) = var("PORTAL_REDIS_URL") {
            self.gateway.rate_limits.redis_url = Some(url);
        }
        if let Some(endpoint) = var("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|e| !e.is_empty()) {
            self.telemetry.otlp_endpoint = Some(endpoint);
        }
        if let Some(name) = var("OTEL_SERVICE_NAME").filter(|n| !n.is_empty()) {
            self.telemetry.service_name = Some(name);
        }
        if let Some(ratio) = var("OTEL_TRACES_SAMPLER_ARG") {
            self.telemetry.trace_sample_ratio = ratio
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1".into(),
                    )
                })?;
        }
        if let Some(secs) = var("PORTAL_SHUTDOWN_DELAY_SECS") {
            self.telemetry.shutdown_delay_secs = secs.parse().map_err(|_| {
                ConfigError::Invalid(
                    "PORTAL_SHUTDOWN_DELAY_SECS must be a number of seconds".into(),
                )
            })?;
        }
        if let Some(batch) = var("PORTAL_JOB_BATCH") {
            self.jobs.batch = batch.parse().map_err(|_| {
                ConfigError::Invalid("PORTAL_JOB_BATCH must be a number of jobs".into())
            })?;
        }
        if let Some(address) = var("PORTAL_CLAMD") {
            self.messages.clamd = Some(address);
        }
        if let Some(dir) = var("PORTAL_FILES_DIR") {
            self.files.dir = Some(dir.into());
        }
        if let Some(url) = var("PORTAL_FILES_URL") {
            self.files.url = Some(url);
        }
        if let Some(region) = var("PORTAL_FILES_S3_REGION") {
            self.files.s3_region = Some(region);
        }
        if let Some(endpoint) = var("PORTAL_FILES_S3_ENDPOINT") {
            self.files.s3_endpoint = Some(endpoint);
        }
        if let Some(ide) = var("PORTAL_IDE") {
            self.gateway.ide = match ide.as_str() {
                "1" | "true" | "on" => true,
                "0" | "false" | "off" => false,
                _ => {
                    return Err(ConfigError::Invalid(
                        "PORTAL_IDE must be true or false".into(),
                    ));
                }
            };
        }
        if let Some(secs) = var("PORTAL_JOB_LEASE_SECS") {
            self.jobs.lease_secs = secs.parse().map_err(|_| {
                ConfigError::Invalid("PORTAL_JOB_LEASE_SECS must be a number of seconds".into())
            })?;
        }
        if let Some(url) = var("PORTAL_SMTP_URL") {
            self.mail.smtp_url = Some(url);
        }
        if let Some(mode) = var("PORTAL_AUTHORIZATION") {
            self.gateway.authorization = match mode.as_str() {
                "auto" => AuthorizationMode::Auto,
                "filter" => AuthorizationMode::Filter,
                "reject" => AuthorizationMode::Reject,
                "dry_run" => AuthorizationMode::DryRun,
                "off" => AuthorizationMode::Off,
                _ => {
                    return Err(ConfigError::Invalid(
                        "PORTAL_AUTHORIZATION must be auto, filter, reject, dry_run or off".into(),
                    ));
                }
            };
        }
        if let Some(origins) = var("PORTAL_CORS_ORIGINS") {
            self.gateway.cors_origins = origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(flag) = var("PORTAL_DEV_HEADERS") {
            self.gateway.dev_headers = matches!(flag.as_str(), "1" | "true" | "yes");
        }
        if let Some(ms) = var("PORTAL_SUBGRAPH_TIMEOUT_MS") {
            self.gateway.subgraph_timeout_ms = ms.parse().map_err(|_| {
                ConfigError::Invalid("PORTAL_SUBGRAPH_TIMEOUT_MS must be a number".into())
            })?;
        }
        for name in crate::subgraphs::NAMES {
            if let Some(url) = var(&format!("PORTAL_SUBGRAPH_{}_URL", name.to_uppercase())) {
                self.gateway.subgraphs.insert(name.to_string(), url);
            }
        }
        Ok(())
    }

    /// URLs of the portal's own subgraphs: the defaults (`127.0.0.1:4001`–`4005`) with
    /// `gateway.subgraphs` applied.
    pub fn subgraph_urls(&self) -> BTreeMap<String, String> {
        let mut urls: BTreeMap<String, String> = crate::subgraphs::NAMES
            .iter()
            .zip(4001..)
            .map(|(name, port)| (name.to_string(), format!("http://127.0.0.1:{port}/graphql")))
            .collect();
        for (name, url) in &self.gateway.subgraphs {
            urls.insert(name.clone(), url.clone());
        }
        urls
    }

    /// The gateway's request limits.
    pub fn limits(&self) -> portal_gateway::limits::Limits {
        portal_gateway::limits::Limits {
            max_tokens: self.gateway.max_tokens,
            max_depth: self.gateway.max_depth,
            max_aliases: self.gateway.max_aliases,
            max_root_fields: self.gateway.max_root_fields,
            max_fields: self.gateway.max_fields,
            max_directives: self.gateway.max_directives,
            max_repeated_directive: self.gateway.max_repeated_directive,
            max_validation_errors: self.gateway.max_validation_errors,
            plan_cache_size: self.gateway.plan_cache_size,
            max_concurrent_operations: self.gateway.max_concurrent_operations,
            max_subscriptions: self.gateway.subscriptions.max_total,
            max_subscriptions_per_principal: self.gateway.subscriptions.max_per_principal,
            max_subscriptions_per_connection: self.gateway.subscriptions.max_per_connection,
            max_websocket_connections: self.gateway.subscriptions.max_websocket_connections,
            subscription_recheck: Duration::from_secs(
                self.gateway.subscriptions.recheck_secs.max(1),
            ),
        }
    }

    /// Subgraph timeouts and error exposure for the gateway.
    pub fn subgraph_settings(&self) -> SubgraphSettings {
        SubgraphSettings {
            timeout: Duration::from_millis(self.gateway.subgraph_timeout_ms),
            timeouts: self
                .gateway
                .subgraph_timeouts_ms
                .iter()
                .map(|(name, ms)| (name.clone(), Duration::from_millis(*ms)))
                .collect(),
            errors: self.gateway.subgraph_errors,
        }
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "database.url must start with sqlite: or postgres://".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "database.max_connections must be at least 1".into(),
            ));
        }
        if let Some(secret) = &self.internal.token_secret
            && secret.len() < 32
        {
            return Err(ConfigError::Invalid(
                "internal.token_secret must be at least 32 bytes".into(),
            ));
        }
        if let Some(secret) = &self.identity.data_key
            && secret.len() < 32
        {
            return Err(ConfigError::Invalid(
                "identity.data_key must be at least 32 bytes".into(),
            ));
        }
        if !(30..=3600).contains(&self.identity.access_token_ttl_secs) {
            return Err(ConfigError::Invalid(
                "identity.access_token_ttl_secs must be between 30 and 3600".into(),
            ));
        }
        if !(1..=365).contains(&self.identity.key_rotation_days) {
            return Err(ConfigError::Invalid(
                "identity.key_rotation_days must be between 1 and 365".into(),
            ));
        }
        if let Some(url) = &self.identity.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(
                "identity.public_url must be an http(s) URL".into(),
            ));
        }
        if let Some(url) = &self.connectors.webhook_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(
                "connectors.webhook_base_url must be an http(s) URL".into(),
            ));
        }
        self.mailer().map(|_| ()).map_err(ConfigError::Invalid)?;
        self.trusted_proxies()?;
        self.cors_origins()?;
        if self.identity.issuer.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "identity.issuer must not be empty".into(),
            ));
        }
        for (name, url) in &self.gateway.subgraphs {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "gateway.subgraphs.{name} must be an http(s) URL"
                )));
            }
        }
        if !(1..=3600).contains(&self.jobs.lease_secs) {
            return Err(ConfigError::Invalid(
                "jobs.lease_secs must be between 1 and 3600".into(),
            ));
        }
        if self.jobs.poll_ms == 0 || self.jobs.batch == 0 {
            return Err(ConfigError::Invalid(
                "jobs.poll_ms and jobs.batch must be at least 1".into(),
            ));
        }
        let gateway = &self.gateway;
        for (name, value) in [
            ("max_tokens", gateway.max_tokens),
            ("max_depth", gateway.max_depth),
            ("max_aliases", gateway.max_aliases),
            ("max_root_fields", gateway.max_root_fields),
            ("max_fields", gateway.max_fields),
            ("max_directives", gateway.max_directives),
            ("max_repeated_directive", gateway.max_repeated_directive),
            ("max_validation_errors", gateway.max_validation_errors),
            ("plan_cache_size", gateway.plan_cache_size),
            (
                "max_concurrent_operations",
                gateway.max_concurrent_operations,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "gateway.{name} must be at least 1"
                )));
            }
        }
        if self
            .gateway
            .subgraph_timeouts_ms
            .values()
            .any(|ms| *ms == 0)
        {
            return Err(ConfigError::Invalid(
                "gateway.subgraph_timeouts_ms values must be positive".into(),
            ));
        }
        if self.gateway.subgraph_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "gateway.subgraph_timeout_ms must be positive".into(),
            ));
        }
        if let Some(url) = &self.files.url {
            portal_kit::storage::S3Location::parse(url)
                .map_err(|err| ConfigError::Invalid(format!("files.url: {err}")))?;
        }
        if let Some(endpoint) = &self.files.s3_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(
                "files.s3_endpoint must be an http(s) URL".into(),
            ));
        }
        if !(10..=3_600).contains(&self.files.link_ttl_secs) {
            return Err(ConfigError::Invalid(
                "files.link_ttl_secs must be between 10 and 3600".into(),
            ));
        }
        if !(1..=3_650).contains(&self.files.retention_days) {
            return Err(ConfigError::Invalid(
                "files.retention_days must be between 1 and 3650".into(),
            ));
        }
        Ok(())
    }

    /// Where stored files are kept — `files.url`'s bucket, else `files.dir` — with links
    /// signed with a key derived from the data key.
    pub fn file_store(&self) -> Result<portal_kit::storage::FileStore, ConfigError> {
        let dir = match (&self.files.dir, sqlite_path(&self.database.url)) {
            (Some(dir), _) => dir.clone(),
            (None, Some(db)) => Path::new(db)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("files"),
            (None, None) => Path::new("data").join("files"),
        };
        let store =
            match &self.files.url {
                Some(url) => {
                    let mut location = portal_kit::storage::S3Location::parse(url)
                        .map_err(|err| ConfigError::Invalid(format!("files.url: {err}")))?;
                    if let Some(region) = &self.files.s3_region {
                        location.region = region.clone();
                    }
                    location.endpoint = self.files.s3_endpoint.clone();
                    portal_kit::storage::FileStore::s3(
                        &location,
                        &dir.join(".scratch"),
                        &self.data_key()?,
                    )
                    .map_err(|err| ConfigError::Invalid(format!("files.url {url}: {err:?}")))?
                }
                None => portal_kit::storage::FileStore::local(&dir, &self.data_key()?).map_err(
                    |err| ConfigError::Invalid(format!("files.dir {}: {err:?}", dir.display())),
                )?,
            };
        Ok(store
            .with_link_ttl(chrono::Duration::seconds(self.files.link_ttl_secs as i64))
            .with_retention(chrono::Duration::days(self.files.retention_days as i64))
            .with_base_url(self.identity.public_url.clone()))
    }

    /// The key sealing secrets at rest: `identity.data_key`, else (SQLite only) the key in
    /// `secret.key` next to the database file, created on first use with mode 0600.
    pub fn data_key(&self) -> Result<DataKey, ConfigError> {
        if let Some(secret) = &self.identity.data_key {
            return Ok(DataKey::from_secret(secret.as_bytes()));
        }
        let Some(db_path) = sqlite_path(&self.database.url) else {
            return Err(ConfigError::Invalid(
                "identity.data_key (or PORTAL_DATA_KEY) is required with PostgreSQL".into(),
            ));
        };
        let dir = Path::new(db_path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let path = dir.join("secret.key");
        let invalid = |err: std::io::Error| {
            ConfigError::Invalid(format!("cannot use {}: {err}", path.display()))
        };
        if !path.exists() {
            portal_kit::files::create_private_dir(dir).map_err(invalid)?;
            let bytes = portal_kit::secret::random_bytes::<32>()
                .map_err(|_| ConfigError::Invalid("no randomness for secret.key".into()))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, hex::encode(bytes).as_bytes())
                        .map_err(invalid)?;
                    tracing::warn!(path = %path.display(), "generated a data key; back it up with the database");
                }
                // Another process created it first: use theirs.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(invalid(err)),
            }
        }
        let secret = std::fs::read_to_string(&path).map_err(invalid)?;
        let secret = secret.trim();
        if secret.len() < 32 {
            return Err(ConfigError::Invalid(format!(
                "{} holds fewer than 32 bytes",
                path.display()
            )));
        }
        Ok(DataKey::from_secret(secret.as_bytes()))
    }

    /// Identity's settings.
    pub fn identity_settings(&self) -> Result<IdentitySettings, ConfigError> {
        let mut settings = IdentitySettings::new(self.data_key()?);
        settings.issuer = self.identity.issuer.clone();
        settings.access_token_ttl = Duration::from_secs(self.identity.access_token_ttl_secs);
        settings.key_rotation = Duration::from_secs(self.identity.key_rotation_days * 86_400);
        settings.public_url = self
            .identity
            .public_url
            .clone()
            .unwrap_or_else(|| DEMO_PUBLIC_URL.into());
        Ok(settings)
    }

    /// Identity's settings for a process that writes mail: the public URL is required
    /// (links in mail must reach users), except in demo mode, where it defaults to
    /// `http://<gateway>` (`gateway`: where the demo's gateway listens).
    pub fn identity_settings_for_mail(
        &self,
        demo: bool,
        gateway: SocketAddr,
    ) -> Result<IdentitySettings, ConfigError> {
        let mut settings = self.identity_settings()?;
        match (&self.identity.public_url, demo) {
            (Some(_), _) => {}
            (None, true) => {
                // A wildcard listen address is no place to send a browser to.
                let host = if gateway.ip().is_unspecified() {
                    SocketAddr::from(([127, 0, 0, 1], gateway.port()))
                } else {
                    gateway
                };
                settings.public_url = format!("http://{host}");
            }
            (None, false) => {
                return Err(ConfigError::Invalid(
                    "identity.public_url (env PORTAL_PUBLIC_URL) is required: links in \
                     password-reset and invitation mail point there, e.g. \
                     https://portal.example.com (--demo uses the listen address)"
                        .into(),
                ));
            }
        }
        Ok(settings)
    }

    /// `gateway.trusted_proxies` parsed (a bare address is a /32 or /128 range).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.gateway
            .trusted_proxies
            .iter()
            .map(|raw| {
                raw.parse::<ipnet::IpNet>()
                    .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "gateway.trusted_proxies: `{raw}` is not an address or CIDR range"
                        ))
                    })
            })
            .collect()
    }

    /// The configured CORS origins, checked: `scheme://host[:port]`, nothing more.
    pub fn cors_origins(&self) -> Result<Vec<String>, ConfigError> {
        self.gateway
            .cors_origins
            .iter()
            .map(|raw| {
                let rest = raw
                    .strip_prefix("https://")
                    .or_else(|| raw.strip_prefix("http://"));
                let valid = rest.is_some_and(|host| {
                    !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
                });
                if valid {
                    Ok(raw.clone())
                } else {
                    Err(ConfigError::Invalid(format!(
                        "gateway.cors_origins: `{raw}` is not an origin (scheme://host[:port], no path)"
                    )))
                }
            })
            .collect()
    }

    /// The outgoing mail transport: SMTP when configured, else a mail directory.
    pub fn mailer(&self) -> Result<Mailer, String> {
        let transport = match &self.mail.smtp_url {
            Some(url) => Mailer::smtp(url)?,
            None => Transport::Directory(self.mail.dir.clone().unwrap_or_else(|| {
                sqlite_path(&self.database.url)
                    .and_then(|p| Path::new(p).parent())
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("data"))
                    .join("mail")
            })),
        };
        Mailer::new(&self.mail.from, transport)
    }

    /// The internal token secret, required for HTTP between processes.
    pub fn require_token_secret(&self) -> Result<&str, ConfigError> {
        self.internal.token_secret.as_deref().ok_or_else(|| {
            ConfigError::Invalid(
                "internal.token_secret (or PORTAL_INTERNAL_TOKEN_SECRET) is required when the \
                 gateway and subgraphs run as separate processes"
                    .into(),
            )
        })
    }

    /// The gateway's GraphQL endpoint for the portal's other processes.
    pub fn gateway_url(&self) -> String {
        self.internal
            .gateway_url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:4000/graphql".to_owned())
    }
}

/// The file path of an SQLite URL (`sqlite://path?…`), `None` for in-memory or other
/// databases.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Where links point when no public URL is configured and nothing sends them (commands
/// that send no mail).
const DEMO_PUBLIC_URL: &str = "http://127.0.0.1:4000";

/// Parses `HOST:PORT`.
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("`{raw}` is not HOST:PORT (for example 127.0.0.1:4000)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_links_need_a_public_url_except_in_the_demo_which_uses_the_gateway() {
        let mut config = Config::default();
        config.identity.data_key = Some("a-data-key-for-this-test-a-data-key".into());
        let wildcard: SocketAddr = "0.0.0.0:8080"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 8080)));
        assert!(config.identity_settings_for_mail(false, wildcard).is_err());
        let demo = config.identity_settings_for_mail(true, wildcard).ok();
        assert_eq!(
            demo.map(|s| s.public_url).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        config.identity.public_url = Some("https://portal.example.com".into());
        let set = config.identity_settings_for_mail(false, wildcard).ok();
        assert_eq!(
            set.map(|s| s.public_url).as_deref(),
            Some("https://portal.example.com")
        );
    }

    #[test]
    fn automatic_authorization_enforces_wherever_the_portals_subgraphs_are_reachable() {
        use portal_gateway::authz::Mode;
        let auto = AuthorizationMode::Auto;
        assert_eq!(AuthorizationMode::default(), auto);
        assert_eq!(auto.gateway_mode(true), Some(Mode::Filter));
        assert_eq!(auto.gateway_mode(false), None);
        assert_eq!(
            AuthorizationMode::Filter.gateway_mode(false),
            Some(Mode::Filter)
        );
        assert_eq!(
            AuthorizationMode::Reject.gateway_mode(false),
            Some(Mode::Reject)
        );
        assert_eq!(
            AuthorizationMode::DryRun.gateway_mode(true),
            Some(Mode::DryRun)
        );
        assert_eq!(AuthorizationMode::Off.gateway_mode(true), None);
    }

    #[test]
    fn cors_origins_must_be_origins() {
        let mut config = Config::default();
        config.gateway.cors_origins = vec![
            "https://app.example.com".into(),
            "http://localhost:5173".into(),
        ];
        assert!(config.validate().is_ok());
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/path",
            "https://",
        ] {
            config.gateway.cors_origins = vec![bad.into()];
            assert!(config.validate().is_err(), "{bad}");
        }
        let mut from_env = Config::default();
        let env = |name: &str| {
            (name == "PORTAL_CORS_ORIGINS").then(|| "https://a.example, https://b.example".into())
        };
        assert!(from_env.apply_env(env).is_ok());
        assert_eq!(
            from_env.gateway.cors_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = toml::from_str::<Config>("[database]\nurll = \"x\"").err();
        assert!(err.is_some_and(|e| e.to_string().contains("urll")));
    }

    #[test]
    fn environment_overrides_the_file_and_short_secrets_are_refused() {
        let mut config = Config::default();
        config
            .apply_env(|name| match name {
                "DATABASE_URL" => Some("postgres://localhost/x".into()),
                "PORTAL_INTERNAL_TOKEN_SECRET" => Some("short".into()),
                _ => None,
            })
            .expect("env applies");
        assert_eq!(config.database.url, "postgres://localhost/x");
        assert!(config.validate().is_err());
    }
}
