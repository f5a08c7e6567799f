//! HTTP transport (GraphQL over HTTP): `POST /graphql` with a JSON body, `GET /graphql`
//! for queries (or the in-browser IDE when a browser asks for HTML), `GET /health`.
//!
//! Only `application/json` bodies are accepted on POST: a browser cannot send that
//! cross-origin without a CORS preflight, which is the CSRF protection.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value};

use portal_kit::RequestMeta;
use portal_kit::telemetry::RequestContext;

use crate::auth::Authentication;
use crate::gateway::{AllowedOperations, Gateway};
use crate::rate_limit::{Allowance, Limiter as RateLimiter, Refusal, Scope};
use crate::response::{GraphQLError, Request, Response};
use crate::streaming::{self, StreamingMode};
use crate::subgraph::Caller;
use crate::subscribe::Recheck;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Shared state of the HTTP app.
pub struct AppState {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// How callers are authenticated.
    pub authentication: Authentication,
    /// The in-browser IDE: `None` when off (the production default), else the request
    /// headers it starts with (the demo identity, in demo mode).
    pub ide: Option<Vec<(String, String)>>,
    /// Proxies (load balancers) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Rate limits per client address, user, API key and tenant (`None`: none).
    pub rate_limiter: Option<RateLimiter>,
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy — then the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy (entries are
/// appended by each hop, so the rightmost untrusted one is the first a trusted hop saw).
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .or(Some(peer))
}

/// The gateway's HTTP app.
pub fn router(state: Arc<AppState>) -> Router {
    let ide_enabled = state.ide.is_some();
    let router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/internal/supergraph", get(supergraph_sdl))
        .route("/health", get(|| async { "ok" }));
    let router = if ide_enabled {
        router.merge(crate::ide::routes())
    } else {
        router
    };
    router.with_state(state)
}

/// `GET /internal/supergraph`: the supergraph SDL served now, for the portal's own
/// processes (an internal token addressed to the gateway), which validate what they will
/// ask (report definitions) against it. `401` for anyone else.
async fn supergraph_sdl(State(state): State<Arc<AppState>>, headers: HeaderMap) -> HttpResponse {
    if !state.authentication.is_internal(&headers) {
        return (StatusCode::UNAUTHORIZED, "internal callers only").into_response();
    }
    let sdl = state.gateway.current().supergraph.sdl.clone();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], sdl).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

async fn graphql_get(
    State(state): State<Arc<AppState>>,
    websocket: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    parts: Parts,
    Query(params): Query<GetParams>,
) -> HttpResponse {
    let context = RequestContext::of(&parts.extensions, &parts.headers);
    let headers = parts.headers;
    let connect = parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned();
    if let Err(refused) = limit_address(&state, &headers, connect.as_ref()).await {
        return refused;
    }
    if let Ok(websocket) = websocket {
        let mut meta = request_meta(&state, &headers, connect, None);
        meta.traceparent = Some(context.trace.header());
        return crate::ws::upgrade(state.clone(), websocket, &headers, meta);
    }
    let Some(_admitted) = state.gateway.admit(ADMISSION_WAIT).await else {
        return overloaded();
    };
    if params.query.is_none() && params.extensions.is_none() {
        if let Some(ide_headers) = &state.ide
            && accepts(&headers, "text/html")
        {
            return crate::ide::page(ide_headers);
        }
        return respond(
            &headers,
            request_error("a `query` parameter is required", "BAD_REQUEST"),
            None,
            Caching::NoStore,
        );
    }

    let (variables, extensions) = match (
        json_object_param(params.variables.as_deref(), "variables"),
        json_object_param(params.extensions.as_deref(), "extensions"),
    ) {
        (Ok(variables), Ok(extensions)) => (variables, extensions),
        (Err(response), _) | (_, Err(response)) => {
            return respond(&headers, response, None, Caching::NoStore);
        }
    };
    let request = Request {
        query: params.query.unwrap_or_default(),
        operation_name: params.operation_name,
        variables,
        extensions,
    };
    answer(
        &state,
        (headers, connect, context),
        request,
        AllowedOperations::QueriesOnly,
        _admitted,
    )
    .await
}

/// A GET parameter holding a JSON object (`variables`, `extensions`), if given.
fn json_object_param(
    raw: Option<&str>,
    name: &str,
) -> Result<Option<Map<String, Value>>, Response> {
    raw.map(serde_json::from_str::<Map<String, Value>>)
        .transpose()
        .map_err(|_| request_error(&format!("`{name}` must be a JSON object"), "BAD_REQUEST"))
}

async fn graphql_post(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Body,
) -> HttpResponse {
    let connect = parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned();
    if let Err(refused) = limit_address(&state, &parts.headers, connect.as_ref()).await {
        return refused;
    }
    let Some(_admitted) = state.gateway.admit(ADMISSION_WAIT).await else {
        return overloaded();
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let response = request_error("the request body is too large", "PAYLOAD_TOO_LARGE");
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(response)).into_response();
        }
    };
    let context = RequestContext::of(&parts.extensions, &parts.headers);
    let headers = parts.headers;
    let connect = parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        let response = request_error(
            "requests must be sent as application/json",
            "UNSUPPORTED_MEDIA_TYPE",
        );
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, axum::Json(response)).into_response();
    }
    let request = match serde_json::from_slice::<Request>(&body) {
        Ok(request) => request,
        Err(_) => {
            return respond(
                &headers,
                request_error(
                    "the body must be a GraphQL request: {\"query\": …}",
                    "BAD_REQUEST",
                ),
                None,
                Caching::NoStore,
            );
        }
    };
    answer(
        &state,
        (headers, connect, context),
        request,
        AllowedOperations::All,
        _admitted,
    )
    .await
}

/// Answers `request` as one response, or — when the client asks for a stream — as a
/// stream in the negotiated mode (which holds no execution slot while it lasts).
async fn answer(
    state: &Arc<AppState>,
    (headers, connect, context): (HeaderMap, Option<ConnectInfo<SocketAddr>>, RequestContext),
    request: Request,
    allowed: AllowedOperations,
    admitted: crate::gateway::Admitted<'_>,
) -> HttpResponse {
    let Some(mode) = StreamingMode::negotiate(&headers) else {
        let response = run(state, (headers, connect, context), request, allowed).await;
        drop(admitted);
        return response;
    };
    drop(admitted);
    let streaming = if allowed == AllowedOperations::QueriesOnly {
        AllowedOperations::StreamingReadOnly
    } else {
        AllowedOperations::Streaming
    };
    stream(state, (headers, connect, context), request, streaming, mode).await
}

/// Runs `request` as a stream of responses in the negotiated `mode`. A request refused
/// before it runs gets a JSON error response with a 4xx status.
async fn stream(
    state: &Arc<AppState>,
    (headers, connect, context): (HeaderMap, Option<ConnectInfo<SocketAddr>>, RequestContext),
    mut request: Request,
    allowed: AllowedOperations,
    mode: StreamingMode,
) -> HttpResponse {
    let (caller, request_id, allowance) =
        match authenticated(state, &headers, connect, context).await {
            Ok(authenticated) => authenticated,
            Err(response) => return response,
        };
    let allowed = if caller.actor.delegation.is_some() {
        // Streams are for people; a delegated caller reads.
        AllowedOperations::StreamingReadOnly
    } else {
        allowed
    };
    let refused = |response: Response| {
        let status = refusal_status(&response);
        let mut http = (status, axum::Json(response)).into_response();
        http.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        http
    };
    if let Err(error) = state.gateway.persisted_queries().resolve(&mut request) {
        return refused(Response::request_error(error));
    }
    let recheck = recheck(
        &state.authentication,
        Arc::new(crate::auth::credential_headers(&headers, None)),
    );
    let mut http = match state
        .gateway
        .subscribe(request, &caller, allowed, recheck)
        .await
    {
        Ok(responses) => streaming::respond(mode, responses),
        Err(response) => refused(response),
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        http.headers_mut().insert("x-request-id", id);
    }
    with_allowance(&mut http, allowance);
    http
}

/// The status of a streaming request refused before it ran.
fn refusal_status(response: &Response) -> StatusCode {
    let code = response.errors.first().and_then(GraphQLError::code);
    match code {
        Some("UNAUTHENTICATED") => StatusCode::UNAUTHORIZED,
        Some("FORBIDDEN") => StatusCode::FORBIDDEN,
        Some("METHOD_NOT_ALLOWED") => StatusCode::METHOD_NOT_ALLOWED,
        Some("TOO_MANY_SUBSCRIPTIONS") => StatusCode::TOO_MANY_REQUESTS,
        Some("UNAVAILABLE") => StatusCode::SERVICE_UNAVAILABLE,
        Some(code) if code.starts_with("SUBGRAPH_") => StatusCode::BAD_GATEWAY,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A re-check of `credentials` (the credential headers a stream was opened with) for
/// [`Gateway::subscribe`](crate::gateway::Gateway::subscribe).
pub fn recheck(authentication: &Authentication, credentials: Arc<HeaderMap>) -> Recheck {
    let authentication = authentication.clone();
    Arc::new(move || {
        let authentication = authentication.clone();
        let credentials = credentials.clone();
        Box::pin(async move { authentication.authenticate(&credentials).await })
    })
}

async fn run(
    state: &AppState,
    (headers, connect, context): (HeaderMap, Option<ConnectInfo<SocketAddr>>, RequestContext),
    mut request: Request,
    allowed: AllowedOperations,
) -> HttpResponse {
    let (caller, request_id, allowance) =
        match authenticated(state, &headers, connect, context).await {
            Ok(authenticated) => authenticated,
            Err(response) => return response,
        };
    // Answers to signed-in callers, and to anything but a GET query, may carry personal
    // data: no cache (browser, proxy or CDN) may keep them.
    let caching = if caller.actor.tenant_id.is_none() && allowed == AllowedOperations::QueriesOnly {
        Caching::Default
    } else {
        Caching::NoStore
    };
    if let Err(error) = state.gateway.persisted_queries().resolve(&mut request) {
        return respond(
            &headers,
            Response::request_error(error),
            Some(&request_id),
            caching,
        );
    }
    // A component acting for someone absent reads; it never changes anything for them —
    // except a service account's own agent (a connector's sync), which writes as the
    // account's key would.
    let allowed = if caller.actor.may_write() {
        allowed
    } else {
        AllowedOperations::QueriesOnly
    };
    let response = state.gateway.execute(request, &caller, allowed).await;
    let mut http = respond(&headers, response, Some(&request_id), caching);
    with_allowance(&mut http, allowance);
    http
}

/// The caller of a request, its request id and the rate limit it was let in under, or
/// the `401` or `429` that refuses it.
async fn authenticated(
    state: &AppState,
    headers: &HeaderMap,
    connect: Option<ConnectInfo<SocketAddr>>,
    context: RequestContext,
) -> Result<(Caller, String, Option<Allowance>), HttpResponse> {
    let RequestContext { request_id, trace } = context;
    let actor = match state.authentication.authenticate(headers).await {
        Ok(actor) => actor,
        Err(error) => {
            let response = Response::request_error(error);
            let mut http = (StatusCode::UNAUTHORIZED, axum::Json(response)).into_response();
            http.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return Err(http);
        }
    };
    let allowance = match &state.rate_limiter {
        Some(limiter) => limiter
            .check(&principal_limits(&actor, headers))
            .await
            .map_err(|refusal| too_many_requests(refusal, &request_id))?,
        None => None,
    };
    let mut meta = request_meta(state, headers, connect, Some(request_id.clone()));
    meta.traceparent = Some(trace.header());
    Ok((Caller { actor, meta }, request_id, allowance))
}

/// The limits an authenticated caller is counted against: its API key or its user, and
/// its tenant. Components acting for someone absent (delegated credentials: the portal's
/// own workers) are not limited.
pub(crate) fn principal_limits(
    actor: &portal_kit::Actor,
    headers: &HeaderMap,
) -> Vec<(Scope, String)> {
    use sha2::Digest;
    if actor.delegation.is_some() {
        return Vec::new();
    }
    let mut checks = Vec::with_capacity(2);
    let presented_key = headers
        .get(crate::auth::API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|token| token.starts_with(portal_kit::access_token::API_KEY_PREFIX))
        });
    if let Some(key) = presented_key {
        // Keyed by a digest: the limiter's store (Redis) never holds a key.
        let digest = sha2::Sha256::digest(key.trim().as_bytes());
        checks.push((Scope::ApiKey, hex::encode(&digest[..16])));
    } else if let Some(user) = actor.id {
        checks.push((Scope::User, user.to_string()));
    }
    if let Some(tenant) = actor.tenant_id {
        checks.push((Scope::Tenant, tenant.to_string()));
    }
    checks
}

/// Counts the request against its client address's limit, before anything else is done
/// for it; `Err` is the `429`.
async fn limit_address(
    state: &AppState,
    headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
) -> Result<(), HttpResponse> {
    let Some(limiter) = &state.rate_limiter else {
        return Ok(());
    };
    let Some(ip) = client_ip(
        connect.map(|ConnectInfo(addr)| addr.ip()),
        headers,
        &state.trusted_proxies,
    ) else {
        return Ok(());
    };
    limiter
        .check(&[(Scope::Ip, crate::rate_limit::address_key(ip))])
        .await
        .map(|_| ())
        .map_err(|refusal| too_many_requests(refusal, ""))
}

/// The error a request refused by a rate limit gets.
pub(crate) fn rate_limited_error(refusal: &Refusal) -> GraphQLError {
    let retry = crate::rate_limit::retry_after_secs(refusal.retry_after);
    GraphQLError::new(
        format!(
            "too many requests for this {}; retry in {retry} s",
            refusal.scope.name().replace('_', " ")
        ),
        "RATE_LIMITED",
    )
    .with_extension("scope", Value::from(refusal.scope.name()))
    .with_extension("retryAfter", Value::from(retry))
}

/// `429 Too Many Requests` with `Retry-After` and the limit's `RateLimit` headers.
fn too_many_requests(refusal: Refusal, request_id: &str) -> HttpResponse {
    let retry = crate::rate_limit::retry_after_secs(refusal.retry_after);
    let response = Response::request_error(rate_limited_error(&refusal));
    let mut http = (StatusCode::TOO_MANY_REQUESTS, axum::Json(response)).into_response();
    let headers = http.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    if let Ok(value) = HeaderValue::from_str(&crate::rate_limit::policy_header(
        refusal.scope,
        refusal.quota,
    )) {
        headers.insert("ratelimit-policy", value);
    }
    if let Ok(value) = HeaderValue::from_str(&crate::rate_limit::limit_header(
        refusal.scope,
        0,
        refusal.retry_after,
    )) {
        headers.insert("ratelimit", value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(request_id)
        && !request_id.is_empty()
    {
        headers.insert("x-request-id", id);
    }
    http
}

/// The `RateLimit` headers of the tightest limit a request was let in under.
fn with_allowance(http: &mut HttpResponse, allowance: Option<Allowance>) {
    let Some(allowance) = allowance else {
        return;
    };
    let headers = http.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&crate::rate_limit::policy_header(
        allowance.scope,
        allowance.quota,
    )) {
        headers.insert("ratelimit-policy", value);
    }
    if let Ok(value) = HeaderValue::from_str(&crate::rate_limit::limit_header(
        allowance.scope,
        allowance.remaining,
        allowance.reset,
    )) {
        headers.insert("ratelimit", value);
    }
}

/// The audit facts of a request: its id, the client's address and user agent.
fn request_meta(
    state: &AppState,
    headers: &HeaderMap,
    connect: Option<ConnectInfo<SocketAddr>>,
    request_id: Option<String>,
) -> RequestMeta {
    RequestMeta {
        request_id,
        source_ip: client_ip(
            connect.map(|ConnectInfo(addr)| addr.ip()),
            headers,
            &state.trusted_proxies,
        )
        .map(|ip| ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        traceparent: None,
    }
}

/// How long a request may wait for an execution slot before it is turned away.
const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn overloaded() -> HttpResponse {
    let response = request_error("the gateway is overloaded; retry later", "UNAVAILABLE");
    let mut http = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(response)).into_response();
    http.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    http
}

fn request_error(message: &str, code: &str) -> Response {
    Response::request_error(GraphQLError::new(message, code))
}

/// Whether a response may be kept by caches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caching {
    /// `Cache-Control: no-store`: the answer may carry personal data.
    NoStore,
    /// No instruction (an anonymous GET query: public data, cacheable by URL).
    Default,
}

/// Serializes `response` in the media type the client accepts, with the status code
/// GraphQL over HTTP prescribes for it.
fn respond(
    headers: &HeaderMap,
    response: Response,
    request_id: Option<&str>,
    caching: Caching,
) -> HttpResponse {
    let graphql_response = accepts(headers, GRAPHQL_RESPONSE);
    let has_code = |code: &str| response.errors.iter().any(|e| e.code() == Some(code));
    let status = if response.data.is_some() {
        StatusCode::OK
    } else if has_code("OPERATION_NOT_SUPPORTED") {
        // A subscription asked for as a single response: not acceptable as asked.
        StatusCode::NOT_ACCEPTABLE
    } else if has_code("METHOD_NOT_ALLOWED") {
        StatusCode::METHOD_NOT_ALLOWED
    } else if graphql_response && has_code("QUERY_PLANNING_FAILED") {
        // The gateway's own failure, not the request's.
        StatusCode::INTERNAL_SERVER_ERROR
    } else if graphql_response || has_code("BAD_REQUEST") {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = if graphql_response {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    let body = serde_json::to_vec(&response).unwrap_or_default();
    let mut http = (status, body).into_response();
    let headers = http.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The answer depends on who asks: a cache keyed by URL alone must not reuse it.
    headers.insert(
        header::VARY,
        HeaderValue::from_static("accept, authorization, x-api-key"),
    );
    if caching == Caching::NoStore {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert("x-request-id", id);
    }
    http
}

fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(media_type))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(xff) {
            headers.insert("x-forwarded-for", value);
        }
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = ["10.0.0.0/8"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().ok();
        // A direct client cannot claim another address.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Behind the balancer: the nearest untrusted hop, not what the client wrote first.
        assert_eq!(
            client_ip(
                ip("10.0.0.5"),
                &headers("1.2.3.4, 198.51.100.7, 10.0.0.2"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers("garbage"), &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), &HeaderMap::new(), &[]),
            ip("10.0.0.5")
        );
    }
}
