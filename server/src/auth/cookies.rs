//! Cookie mode for browser apps: the access and refresh tokens in `HttpOnly`, `SameSite=Lax`
//! cookies, and a readable CSRF cookie whose value cookie-authenticated mutations must echo in
//! the `X-CSRF-Token` header (double submit).

use std::collections::HashMap;

use cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use poem::{Request, http::header};

/// Access-token cookie (sent to every path: HTTP and WebSocket).
pub const ACCESS: &str = "access_token";
/// Refresh-token cookie (sent only to the GraphQL endpoint).
pub const REFRESH: &str = "refresh_token";
/// CSRF cookie, readable by the page's scripts.
pub const CSRF: &str = "csrf_token";
/// Header that must carry the CSRF cookie's value.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The cookies of a request, by name.
pub fn parse(req: &Request) -> HashMap<String, String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse_encoded(v.to_owned()))
        .filter_map(Result::ok)
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect()
}

fn build(
    name: &'static str,
    value: String,
    path: &'static str,
    http_only: bool,
    secure: bool,
    max_age: i64,
) -> String {
    Cookie::build((name, value))
        .path(path)
        .http_only(http_only)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(max_age))
        .build()
        .encoded()
        .to_string()
}

/// `Set-Cookie` values that store a session in the browser.
pub fn set_session(
    access: &str,
    access_ttl: i64,
    refresh: &str,
    refresh_ttl: i64,
    csrf: &str,
    secure: bool,
) -> Vec<String> {
    vec![
        build(ACCESS, access.to_owned(), "/", true, secure, access_ttl),
        build(
            REFRESH,
            refresh.to_owned(),
            "/graphql",
            true,
            secure,
            refresh_ttl,
        ),
        build(CSRF, csrf.to_owned(), "/", false, secure, refresh_ttl),
    ]
}

/// `Set-Cookie` values that remove the session cookies.
pub fn clear(secure: bool) -> Vec<String> {
    vec![
        build(ACCESS, String::new(), "/", true, secure, 0),
        build(REFRESH, String::new(), "/graphql", true, secure, 0),
        build(CSRF, String::new(), "/", false, secure, 0),
    ]
}

/// Whether the `X-CSRF-Token` header equals the CSRF cookie (compared in constant time).
pub fn csrf_matches(req: &Request, cookie: Option<&str>) -> bool {
    let (Some(cookie), Some(header)) = (
        cookie,
        req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    !cookie.is_empty()
        && cookie.len() == header.len()
        && cookie
            .bytes()
            .zip(header.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_have_the_right_attributes() {
        let cookies = set_session("a", 900, "r", 3600, "c", true);
        assert!(cookies[0].starts_with("access_token=a") && cookies[0].contains("HttpOnly"));
        assert!(cookies[0].contains("SameSite=Lax") && cookies[0].contains("Secure"));
        assert!(cookies[1].contains("Path=/graphql") && cookies[1].contains("HttpOnly"));
        assert!(!cookies[2].contains("HttpOnly"));
        assert!(
            clear(false)
                .iter()
                .all(|c| c.contains("Max-Age=0") && !c.contains("Secure"))
        );
    }
}
