//! The batched queries behind the integrations subgraph's DataLoaders (see
//! [`portal_kit::loader`]): each runs once per tenant in a request tick.

use portal_entities::integrations::{external_ref, integration, webhook_attempt, webhook_endpoint};

use crate::store;

portal_kit::fetch_by_ids!(
    /// Integration lookups by `(tenant, id)`, batched into one query per tenant.
    pub IntegrationsById: integration::Model = store::integrations_by_ids
);

portal_kit::fetch_by_ids!(
    /// Webhook endpoint lookups by `(tenant, id)`, batched into one query per tenant.
    pub WebhookEndpointsById: webhook_endpoint::Model = store::webhook_endpoints_by_ids
);

portal_kit::fetch_by_ids!(
    /// `Account.externalRefs` by `(tenant, account id)`, batched into one query per tenant
    /// (their integrations then go through [`IntegrationsById`], one more query).
    pub RefsByAccount: Vec<external_ref::Model> = store::refs_by_accounts
);

portal_kit::fetch_by_ids!(
    /// `WebhookMessage.attempts` by `(tenant, message id)`, batched into one query per
    /// tenant.
    pub AttemptsByMessage: Vec<webhook_attempt::Model> = store::webhooks::attempts_by_messages
);

portal_kit::fetch_by_ids!(
    /// `Integration.errorRate` by `(tenant, integration id)`: the last day's runs, one
    /// query per tenant.
    pub RunStatsByIntegration: crate::store::connectors::RunStats =
        crate::store::connectors::recent_run_stats
);

portal_kit::fetch_by_ids!(
    /// An endpoint's health by `(tenant, endpoint id)`: one counting query per tenant,
    /// then a few indexed lookups per endpoint.
    pub EndpointStatsById: crate::store::webhooks::EndpointStats =
        crate::store::webhooks::endpoint_stats
);
