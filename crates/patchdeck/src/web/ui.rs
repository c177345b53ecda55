//! Serves the web UI embedded at build time (see `build.rs`): static files with their content
//! type, long caching for the hashed `assets/`, and `index.html` for every other path that is
//! not the API (the single-page app routes in the browser).

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/webui.rs"));
}

/// Whether the web UI was built into this binary (`web/dist` existed when it was compiled).
pub fn built() -> bool {
    embedded::BUILT
}

/// Shown when the binary was built without the web UI.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Patchdeck</title>\
<p>The web UI was not built into this binary. Build it with <code>npm ci &amp;&amp; npm run build</code> \
in <code>web/</code>, then rebuild the manager (<code>scripts/run.sh</code> does both). The API is at \
<code>/api/v1</code>.</p>";

/// The page's content security policy: everything from this origin; MUI injects style tags.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn find(path: &str) -> Option<&'static [u8]> {
    embedded::FILES.iter().find(|(p, _)| *p == path).map(|(_, bytes)| *bytes)
}

/// The fallback of the router: a UI file, or `index.html` for an app route.
pub async fn serve_ui(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") || path == "metrics" {
        return crate::web::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response();
    }
    let (name, bytes, immutable) = match find(path).filter(|_| !path.is_empty()) {
        Some(bytes) => (path, bytes, path.starts_with("assets/")),
        None if !embedded::BUILT => ("index.html", NOT_BUILT.as_bytes(), false),
        None => ("index.html", find("index.html").unwrap_or(NOT_BUILT.as_bytes()), false),
    };
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
