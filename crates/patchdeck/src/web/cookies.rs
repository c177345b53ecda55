//! The browser's session cookies. Tokens never appear in a URL or in a response body for the
//! browser: only in these cookies.
//!
//! | cookie | holds | flags |
//! |---|---|---|
//! | `pd_access` | the access token (JWT) | HttpOnly, Secure, SameSite=Strict, Path=/ |
//! | `pd_refresh` | the refresh token | HttpOnly, Secure, SameSite=Strict, Path=/api/v1/auth |
//! | `pd_csrf` | a random CSRF token the web UI echoes in `X-CSRF-Token` | Secure, SameSite=Strict, Path=/ (readable by script, on purpose) |
//! | `pd_oidc` | the sealed pending SSO login (state, nonce, PKCE verifier) | HttpOnly, Secure, SameSite=Lax, Path=/api/v1/auth/oidc, 10 minutes |

use std::time::Duration;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, CookieJar, SameSite};

pub const ACCESS_COOKIE: &str = "pd_access";
pub const REFRESH_COOKIE: &str = "pd_refresh";
pub const CSRF_COOKIE: &str = "pd_csrf";
pub const OIDC_COOKIE: &str = "pd_oidc";
/// The header that must repeat the CSRF cookie on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

const REFRESH_PATH: &str = "/api/v1/auth";
const OIDC_PATH: &str = "/api/v1/auth/oidc";

/// The request's cookies.
pub fn jar(headers: &HeaderMap) -> CookieJar {
    let mut jar = CookieJar::new();
    for value in headers.get_all(COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for cookie in Cookie::split_parse(text).flatten() {
            jar.add_original(cookie.into_owned());
        }
    }
    jar
}

fn build(name: &'static str, value: String, path: &'static str, max_age: Duration, http_only: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .secure(true)
        .http_only(http_only)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)))
        .build()
}

/// Appends `Set-Cookie` headers for a new or refreshed session.
pub fn set_session(
    headers: &mut HeaderMap,
    access: &str,
    access_lifetime: Duration,
    refresh: &str,
    refresh_lifetime: Duration,
    csrf: &str,
) {
    append(headers, build(ACCESS_COOKIE, access.to_owned(), "/", access_lifetime, true));
    append(headers, build(REFRESH_COOKIE, refresh.to_owned(), REFRESH_PATH, refresh_lifetime, true));
    append(headers, build(CSRF_COOKIE, csrf.to_owned(), "/", refresh_lifetime, false));
}

/// Appends `Set-Cookie` headers that delete the session cookies.
pub fn clear_session(headers: &mut HeaderMap) {
    append(headers, build(ACCESS_COOKIE, String::new(), "/", Duration::ZERO, true));
    append(headers, build(REFRESH_COOKIE, String::new(), REFRESH_PATH, Duration::ZERO, true));
    append(headers, build(CSRF_COOKIE, String::new(), "/", Duration::ZERO, false));
}

/// The pending SSO login. `SameSite=Lax`: the identity provider's redirect back is a top-level
/// cross-site navigation, which `Strict` would strip the cookie from.
pub fn set_oidc(headers: &mut HeaderMap, sealed: &str) {
    let mut cookie = build(OIDC_COOKIE, sealed.to_owned(), OIDC_PATH, Duration::from_secs(600), true);
    cookie.set_same_site(SameSite::Lax);
    append(headers, cookie);
}

/// Deletes the pending SSO login cookie.
pub fn clear_oidc(headers: &mut HeaderMap) {
    let mut cookie = build(OIDC_COOKIE, String::new(), OIDC_PATH, Duration::ZERO, true);
    cookie.set_same_site(SameSite::Lax);
    append(headers, cookie);
}

fn append(headers: &mut HeaderMap, cookie: Cookie<'static>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        headers.append(SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_http_only_secure_and_strict() {
        let mut headers = HeaderMap::new();
        set_session(&mut headers, "a.b.c", Duration::from_secs(900), "pdr_x", Duration::from_secs(3600), "csrf1");
        let all: Vec<String> = headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(all.len(), 3);
        for c in &all {
            assert!(c.contains("Secure") && c.contains("SameSite=Strict"), "{c}");
        }
        assert!(all[0].starts_with("pd_access=a.b.c") && all[0].contains("HttpOnly"));
        assert!(all[1].contains("Path=/api/v1/auth") && all[1].contains("HttpOnly"));
        assert!(all[2].starts_with("pd_csrf=csrf1") && !all[2].contains("HttpOnly"));
        let mut request = HeaderMap::new();
        request.insert(COOKIE, HeaderValue::from_static("pd_access=a.b.c; other=1"));
        assert_eq!(jar(&request).get(ACCESS_COOKIE).unwrap().value(), "a.b.c");
    }
}
