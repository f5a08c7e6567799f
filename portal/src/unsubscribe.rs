//! `/notifications/unsubscribe/<link>`: one-click unsubscribe from notification emails
//! (RFC 8058), served by the gateway process in every deployment mode.
//!
//! Each notification email names this link in its `List-Unsubscribe` header (with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`) and in its text. The link is signed
//! for one user, their tenant and a topic (one notification event, or `ALL`). `POST`
//! unsubscribes — what mail clients send for one click, and what the page's button sends;
//! `GET` only shows that page, because link scanners and previews fetch links nobody
//! clicked. Unsubscribing sets the user's email frequency of the topic's events to `OFF`,
//! audited as the user; it can be undone in the portal's notification preferences.
//! Answers: `200` done (or the page), `404` a link this portal did not sign.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use portal_messages::domain::notifications::NotificationEvent;
use portal_messages::store::Store;
use portal_messages::store::notifications;

use crate::files::{refuse, request_meta};

struct Unsubscribe {
    messages: Store,
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// The `/notifications/unsubscribe/{link}` route over messages' store.
pub fn router(messages: Store, trusted_proxies: Vec<ipnet::IpNet>) -> Router {
    let state = Arc::new(Unsubscribe {
        messages,
        trusted_proxies,
    });
    Router::new()
        .route(
            "/notifications/unsubscribe/{link}",
            get(confirm_page).post(unsubscribe),
        )
        .with_state(state)
}

/// The events a topic covers, if the link names a known one.
fn events_of(topic: &str) -> Option<Vec<NotificationEvent>> {
    if topic == "ALL" {
        return Some(NotificationEvent::ALL.to_vec());
    }
    NotificationEvent::from_db(topic).map(|event| vec![event])
}

fn page(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn not_signed() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "this unsubscribe link is not valid",
    )
}

async fn confirm_page(State(state): State<Arc<Unsubscribe>>, Path(link): Path<String>) -> Response {
    let Some((_, _, topic)) = state.messages.files.verify_unsubscribe(&link) else {
        return not_signed();
    };
    if events_of(&topic).is_none() {
        return not_signed();
    }
    page(
        StatusCode::OK,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
         <body><p>Stop these notification emails?</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" \
         value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>\
         </body></html>"
            .to_owned(),
    )
}

async fn unsubscribe(
    State(state): State<Arc<Unsubscribe>>,
    Path(link): Path<String>,
    parts: Parts,
) -> Response {
    let Some((tenant_id, user, topic)) = state.messages.files.verify_unsubscribe(&link) else {
        return not_signed();
    };
    let Some(events) = events_of(&topic) else {
        return not_signed();
    };
    let meta = request_meta(&parts, &state.trusted_proxies);
    match notifications::unsubscribe(&state.messages.db, (tenant_id, user), &events, &meta).await {
        Ok(()) => page(
            StatusCode::OK,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribed</title>\
             </head><body><p>You will no longer get these emails. You can turn them on \
             again in your notification preferences.</p></body></html>"
                .to_owned(),
        ),
        Err(err) => {
            tracing::error!(?err, "unsubscribing");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "try again in a moment",
            )
        }
    }
}
