//! The in-browser GraphQL IDE (GraphiQL): one page and its assets, all served by the
//! gateway itself — no CDN, so it works on machines without internet access — under a
//! strict Content-Security-Policy that allows scripts from this origin only.
//!
//! Off unless enabled (`gateway.ide`, on with `--demo`). The bundles are released builds
//! kept with their licences in `gateway/assets/ide/` (see its README).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The IDE page's Content-Security-Policy: scripts, styles, fonts and requests from this
/// origin only (styles may be inline: the editor sets them), no framing, no plugins.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Starts GraphiQL from the configuration the page embeds as a JSON data block (not
/// executed, so the CSP needs no inline-script exception).
const INIT_JS: &str = r#"(function () {
  var config = JSON.parse(document.getElementById('ide-config').textContent);
  var fetcher = GraphiQL.createFetcher({ url: config.endpoint });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    headers: config.headers,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: config.headers.length > 2
  }));
})();
"#;

/// The assets by name: (content, media type).
fn asset(name: &str) -> Option<(&'static [u8], &'static str)> {
    Some(match name {
        "graphiql.min.js" => (
            include_bytes!("../assets/ide/graphiql.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "graphiql.min.css" => (
            include_bytes!("../assets/ide/graphiql.min.css"),
            "text/css; charset=utf-8",
        ),
        "react.production.min.js" => (
            include_bytes!("../assets/ide/react.production.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../assets/ide/react-dom.production.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "init.js" => (INIT_JS.as_bytes(), "text/javascript; charset=utf-8"),
        _ => return None,
    })
}

/// Routes for the IDE's assets (`/ide/{file}`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/ide/{file}", get(serve_asset))
}

async fn serve_asset(Path(file): Path<String>) -> Response {
    let Some((body, media_type)) = asset(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The IDE page, starting with `headers` in its Headers tab, with its security headers.
pub fn page(headers: &[(String, String)]) -> Response {
    let initial: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    let initial = if initial.is_empty() {
        String::new()
    } else {
        serde_json::to_string_pretty(&initial).unwrap_or_default()
    };
    let config = serde_json::json!({ "endpoint": "/graphql", "headers": initial });
    // `<` escaped so no value can close the data block.
    let config = config.to_string().replace('<', "\\u003c");
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Portal GraphQL</title>
<link rel="stylesheet" href="/ide/graphiql.min.css">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading the GraphQL IDE…</div>
<noscript>The GraphQL IDE needs JavaScript. Without it, send requests to <code>POST /graphql</code> with any GraphQL client.</noscript>
<script id="ide-config" type="application/json">{config}</script>
<script src="/ide/react.production.min.js"></script>
<script src="/ide/react-dom.production.min.js"></script>
<script src="/ide/graphiql.min.js"></script>
<script src="/ide/init.js"></script>
</body>
</html>
"#
    );
    let mut response = axum::response::Html(html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_loads_is_served() {
        let page = page(&[]);
        let csp = page.headers().get(header::CONTENT_SECURITY_POLICY);
        assert_eq!(csp.and_then(|v| v.to_str().ok()), Some(PAGE_CSP));
        for file in [
            "graphiql.min.js",
            "graphiql.min.css",
            "react.production.min.js",
            "react-dom.production.min.js",
            "init.js",
        ] {
            let (body, _) = asset(file).expect(file);
            assert!(body.len() > 100, "{file} is empty");
        }
        assert!(asset("../Cargo.toml").is_none());
    }
}
