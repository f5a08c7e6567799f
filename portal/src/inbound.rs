//! `POST /integrations/<id>/webhook`: webhooks from an integration's remote (Stripe,
//! HubSpot), served by the gateway process in every deployment mode.
//!
//! The body is checked against the integration's webhook secret the way the remote signs
//! (Stripe's `Stripe-Signature`; HubSpot's `X-HubSpot-Signature-v3`, which covers the
//! public URL too: configure `identity.public_url`); a verified webhook starts an incremental sync run,
//! which reads the changes from the remote's API itself — the payload is a nudge, never
//! data the portal applies, so a replayed or reordered webhook can do no harm. Answers:
//! `200` accepted (a run in progress reads the change unless it is already finishing, in
//! which case the five-minute schedule does; an integration never synced starts nothing
//! until a person backfills it), `400` refused signature (audited), `404` an integration
//! that does not exist or takes no webhooks (no connector, no webhook secret).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sea_orm::DatabaseConnection;
use serde_json::json;
use uuid::Uuid;

use portal_integrations::connectors::{self, Endpoints, WebhookRejection};
use portal_integrations::domain::sync::RunMode;
use portal_integrations::store::connectors as state;
use portal_kit::envelope::TenantKeys;
use portal_kit::{Actor, ApiError};

use crate::files::{refuse, request_meta};

struct Inbound {
    db: DatabaseConnection,
    keys: TenantKeys,
    endpoints: Endpoints,
    remote: connectors::Remote,
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// The `/integrations/{id}/webhook` route.
pub fn router(
    db: DatabaseConnection,
    keys: TenantKeys,
    endpoints: Endpoints,
    trusted_proxies: Vec<ipnet::IpNet>,
) -> anyhow::Result<Router> {
    let remote = portal_integrations::sync::remote_for_requests()
        .map_err(|err| anyhow::anyhow!("the connectors' client: {err}"))?;
    let state = Arc::new(Inbound {
        db,
        keys,
        endpoints,
        remote,
        trusted_proxies,
    });
    Ok(Router::new()
        .route("/integrations/{id}/webhook", post(receive))
        .with_state(state))
}

fn unknown() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no integration with a connector here",
    )
}

fn unavailable() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the webhook could not be taken now; send it again",
    )
}

/// The URL the remote sent the request to: the configured public URL (behind a proxy
/// that terminates TLS, the request's own scheme and host are not what the remote used),
/// else the request's `Host` over plain HTTP.
fn public_url(endpoints: &Endpoints, parts: &Parts) -> String {
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    match &endpoints.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => {
            let host = parts
                .headers
                .get(axum::http::header::HOST)
                .and_then(|host| host.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}{path}")
        }
    }
}

async fn receive(
    State(inbound): State<Arc<Inbound>>,
    Path(id): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return unknown();
    };
    let row = match state::integration_for_webhook(&inbound.db, id).await {
        Ok(Some(row)) if state::is_configured(&row) => row,
        Ok(_) => return unknown(),
        Err(err) => {
            tracing::warn!(error = ?err, "reading an integration for a webhook");
            return unavailable();
        }
    };
    let Ok(creds) = state::credentials(&inbound.keys, &row).await else {
        return unavailable();
    };
    let Some(connector) =
        connectors::connector_for(&row, &creds, &inbound.endpoints, &inbound.remote, None)
    else {
        return unknown();
    };
    let meta = request_meta(&parts, &inbound.trusted_proxies);
    let url = public_url(&inbound.endpoints, &parts);
    let request = connectors::Inbound {
        method: parts.method.as_str(),
        url: &url,
        headers: &parts.headers,
        body: &body,
    };
    let now = chrono::Utc::now().timestamp_millis();
    if let Err(rejection) = connector.verify_webhook(&request, now) {
        // No secret: it takes no webhooks — as if there were nothing here (and nothing
        // audited for every stray request).
        if rejection == WebhookRejection::NoSecret {
            return unknown();
        }
        let reason = rejection.to_string();
        if let Err(err) = state::record_refused_webhook(&inbound.db, &row, &meta, &reason).await {
            tracing::warn!(error = ?err, "auditing a refused webhook");
        }
        return refuse(StatusCode::BAD_REQUEST, "INVALID_SIGNATURE", &reason);
    }
    // Never synced: a person starts with a backfill; until then webhooks change nothing.
    if row.sync_cursor.is_none() {
        return (StatusCode::OK, axum::Json(json!({ "received": true }))).into_response();
    }
    let started = state::start_run(
        &inbound.db,
        &Actor::anonymous(),
        &meta,
        row.tenant_id,
        row.id,
        RunMode::Incremental,
        None,
    )
    .await;
    match started {
        // A run in progress reads this change too; a paused or unconfigured integration
        // takes nothing (the remote is told all is well: it would only retry).
        Ok(_) | Err(ApiError::Conflict(_) | ApiError::BadUserInput { .. }) => {
            (StatusCode::OK, axum::Json(json!({ "received": true }))).into_response()
        }
        Err(err) => {
            tracing::warn!(error = ?err, "starting a sync run for a webhook");
            unavailable()
        }
    }
}
