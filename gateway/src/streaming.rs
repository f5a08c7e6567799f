//! Streaming over HTTP, negotiated by `Accept` like the best peers do:
//!
//! - `text/event-stream`: GraphQL over server-sent events (the `graphql-sse` protocol,
//!   distinct connections mode): an `event: next` per response, a final
//!   `event: complete`, comment heartbeats every [`SSE_HEARTBEAT`].
//! - `multipart/mixed;subscriptionSpec=1.0`: Apollo's multipart subscriptions (what
//!   Apollo Client uses): a part `{"payload": <response>}` per event, `{}` heartbeats
//!   every [`MULTIPART_HEARTBEAT`], a part `{"payload": null, "errors": […]}` when the
//!   stream fails as a whole, and the closing boundary at the end.
//!
//! Both end when the responses end (the subscription's source ended, the caller's
//! credential lapsed, or the gateway closed its streams).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response as HttpResponse;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use portal_kit::serve::with_heartbeats;

use crate::subscribe::Responses;

/// How often an idle event stream carries a heartbeat comment.
pub const SSE_HEARTBEAT: Duration = Duration::from_secs(12);

/// How often an idle multipart stream carries an empty `{}` part.
pub const MULTIPART_HEARTBEAT: Duration = Duration::from_secs(5);

/// The media types of the streaming transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamingMode {
    /// `text/event-stream`.
    ServerSentEvents,
    /// `multipart/mixed;subscriptionSpec=1.0`.
    Multipart,
}

impl StreamingMode {
    /// The streaming transport the `Accept` header asks for, if any (in the client's order
    /// of preference).
    pub fn negotiate(headers: &axum::http::HeaderMap) -> Option<Self> {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|item| {
                let mut parts = item.split(';').map(str::trim);
                let media = parts.next()?.to_ascii_lowercase();
                match media.as_str() {
                    "text/event-stream" => Some(Self::ServerSentEvents),
                    "multipart/mixed" => {
                        // Only the subscription protocol; `deferSpec` (incremental
                        // delivery of @defer) is not offered.
                        let subscriptions = parts.any(|p| {
                            p.replace('"', "")
                                .eq_ignore_ascii_case("subscriptionSpec=1.0")
                        });
                        subscriptions.then_some(Self::Multipart)
                    }
                    _ => None,
                }
            })
    }
}

/// `responses` as the HTTP response of `mode`.
pub fn respond(mode: StreamingMode, responses: Responses) -> HttpResponse {
    match mode {
        StreamingMode::ServerSentEvents => server_sent_events(responses),
        StreamingMode::Multipart => multipart(responses),
    }
}

fn server_sent_events(responses: Responses) -> HttpResponse {
    let events = responses
        .map(|response| {
            let data = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
            portal_kit::serve::sse_event("next", &data)
        })
        .chain(stream::once(async {
            portal_kit::serve::sse_event("complete", "")
        }));
    stream_response(
        with_heartbeats(events, SSE_HEARTBEAT, Bytes::from_static(b":\n\n")),
        "text/event-stream; charset=utf-8",
    )
}

const BOUNDARY_PART: &[u8] = b"\r\n--graphql\r\ncontent-type: application/json\r\n\r\n";

fn multipart(responses: Responses) -> HttpResponse {
    let parts = responses
        .map(|response| {
            if response.data.is_none() {
                // The stream failed as a whole (refused mid-way, source gone): a
                // transport-level error, outside the payload.
                part(&serde_json::json!({ "payload": null, "errors": response.errors }))
            } else {
                part(&serde_json::json!({ "payload": response }))
            }
        })
        .chain(stream::once(async {
            Bytes::from_static(b"\r\n--graphql--\r\n")
        }));
    stream_response(
        with_heartbeats(parts, MULTIPART_HEARTBEAT, part(&serde_json::json!({}))),
        "multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0",
    )
}

fn part(json: &serde_json::Value) -> Bytes {
    let mut out = BOUNDARY_PART.to_vec();
    out.extend(serde_json::to_vec(json).unwrap_or_else(|_| b"{}".to_vec()));
    Bytes::from(out)
}

fn stream_response(
    body: impl futures::Stream<Item = Bytes> + Send + 'static,
    content_type: &'static str,
) -> HttpResponse {
    let body = body.map(Ok::<_, std::convert::Infallible>);
    let mut http = HttpResponse::new(Body::from_stream(body));
    *http.status_mut() = StatusCode::OK;
    let headers = http.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Proxies that buffer (nginx) would hold events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    http
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
        );
        headers
    }

    #[test]
    fn accept_headers_select_the_streaming_transport() {
        assert_eq!(
            StreamingMode::negotiate(&accept("text/event-stream")),
            Some(StreamingMode::ServerSentEvents)
        );
        assert_eq!(
            StreamingMode::negotiate(&accept(
                "multipart/mixed;subscriptionSpec=\"1.0\", application/json"
            )),
            Some(StreamingMode::Multipart)
        );
        assert_eq!(
            StreamingMode::negotiate(&accept("multipart/mixed;deferSpec=20220824")),
            None
        );
        assert_eq!(StreamingMode::negotiate(&accept("application/json")), None);
    }
}
