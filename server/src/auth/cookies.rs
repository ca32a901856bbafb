//! Cookie mode for browser apps: the access and refresh tokens in `HttpOnly`, `SameSite=Lax`
//! cookies, and a readable CSRF cookie whose value cookie-authenticated mutations must echo in
//! the `X-CSRF-Token` header.
//!
//! The CSRF token is a signed double-submit token bound to the session (OWASP's "signed double
//! submit cookie"): `<session id>.<HMAC(key, session id)>`. The server issues a fresh one with
//! every session and never takes one over from a cookie the browser brought; a request must
//! echo it in the header, it must verify, and it must name the session of the credentials it
//! rides on. With `Secure`, every cookie has the `__Host-` prefix (host-only, `Path=/`, secure),
//! so a sibling subdomain cannot plant one; the plain names are then ignored.

use cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use hmac::{Hmac, Mac};
use poem::{Request, http::header};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

/// Header that must carry the CSRF cookie's value.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The names of the session cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// Access token, sent to every path (HTTP and WebSocket).
    pub access: &'static str,
    /// Refresh token: only the GraphQL endpoint reads it.
    pub refresh: &'static str,
    /// CSRF token, readable by the page's scripts.
    pub csrf: &'static str,
    /// Path of the refresh cookie (`__Host-` cookies must have `Path=/`).
    refresh_path: &'static str,
}

/// The cookie names for `secure` (`__Host-` prefixed) or plain (local development) mode.
pub fn names(secure: bool) -> Names {
    if secure {
        Names {
            access: "__Host-access_token",
            refresh: "__Host-refresh_token",
            csrf: "__Host-csrf_token",
            refresh_path: "/",
        }
    } else {
        Names {
            access: "access_token",
            refresh: "refresh_token",
            csrf: "csrf_token",
            refresh_path: "/graphql",
        }
    }
}

/// The session cookies a request carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jar {
    pub access: Option<String>,
    pub refresh: Option<String>,
    pub csrf: Option<String>,
    /// More than one CSRF cookie came (a planted one beside ours): refuse the request.
    pub duplicate_csrf: bool,
}

/// The session cookies of a request, under the names of `secure` mode.
pub fn parse(req: &Request, secure: bool) -> Jar {
    let names = names(secure);
    let mut jar = Jar::default();
    let mut csrf_seen = 0;
    let cookies = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse_encoded(v.to_owned()))
        .filter_map(Result::ok);
    for cookie in cookies {
        let value = Some(cookie.value().to_owned());
        match cookie.name() {
            n if n == names.access => jar.access = value,
            n if n == names.refresh => jar.refresh = value,
            n if n == names.csrf => {
                csrf_seen += 1;
                jar.csrf = value;
            }
            _ => {}
        }
    }
    jar.duplicate_csrf = csrf_seen > 1;
    jar
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
    let n = names(secure);
    vec![
        build(n.access, access.to_owned(), "/", true, secure, access_ttl),
        build(
            n.refresh,
            refresh.to_owned(),
            n.refresh_path,
            true,
            secure,
            refresh_ttl,
        ),
        build(n.csrf, csrf.to_owned(), "/", false, secure, refresh_ttl),
    ]
}

/// `Set-Cookie` values that remove the session cookies.
pub fn clear(secure: bool) -> Vec<String> {
    let n = names(secure);
    vec![
        build(n.access, String::new(), "/", true, secure, 0),
        build(n.refresh, String::new(), n.refresh_path, true, secure, 0),
        build(n.csrf, String::new(), "/", false, secure, 0),
    ]
}

fn mac(key: &[u8], session: Uuid) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(b"csrf\0");
    mac.update(session.as_bytes());
    Some(mac)
}

/// The CSRF token of `session`: `<session id>.<HMAC>` (URL-safe base64).
pub fn csrf_token(key: &[u8], session: Uuid) -> String {
    use base64::Engine as _;
    let tag = mac(key, session)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!(
        "{session}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The session a CSRF token was issued for, if it verifies (in constant time).
pub fn csrf_session(key: &[u8], token: &str) -> Option<Uuid> {
    use base64::Engine as _;
    let (session, tag) = token.split_once('.')?;
    let session = Uuid::parse_str(session).ok()?;
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tag)
        .ok()?;
    mac(key, session)?.verify_slice(&tag).ok()?;
    Some(session)
}

/// The session named by a request's CSRF proof: the `X-CSRF-Token` header equal to the CSRF
/// cookie (compared in constant time), and a token that verifies. `None` for anything else,
/// including two CSRF cookies.
pub fn csrf_proof(
    req: &Request,
    cookie: Option<&str>,
    duplicate: bool,
    key: &[u8],
) -> Option<Uuid> {
    if duplicate {
        return None;
    }
    let cookie = cookie?;
    let header = req.headers().get(CSRF_HEADER)?.to_str().ok()?;
    let equal = bool::from(cookie.as_bytes().ct_eq(header.as_bytes()));
    if !equal {
        return None;
    }
    csrf_session(key, cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_have_the_right_attributes() {
        let cookies = set_session("a", 900, "r", 3600, "c", true);
        assert!(cookies[0].starts_with("__Host-access_token=a") && cookies[0].contains("HttpOnly"));
        assert!(cookies[0].contains("SameSite=Lax") && cookies[0].contains("Secure"));
        // `__Host-` cookies are host-only with `Path=/`.
        assert!(
            cookies
                .iter()
                .all(|c| c.contains("Path=/;") || c.ends_with("Path=/"))
        );
        assert!(cookies.iter().all(|c| !c.contains("Domain")));
        assert!(
            cookies[1].starts_with("__Host-refresh_token=r") && cookies[1].contains("HttpOnly")
        );
        assert!(!cookies[2].contains("HttpOnly"));
        let plain = set_session("a", 900, "r", 3600, "c", false);
        assert!(plain[1].starts_with("refresh_token=r") && plain[1].contains("Path=/graphql"));
        assert!(
            clear(false)
                .iter()
                .all(|c| c.contains("Max-Age=0") && !c.contains("Secure"))
        );
    }

    #[test]
    fn csrf_tokens_verify_only_for_their_session_and_key() {
        let (key, session) = (b"key-one".as_slice(), Uuid::new_v4());
        let token = csrf_token(key, session);
        assert_eq!(csrf_session(key, &token), Some(session));
        assert_eq!(csrf_session(b"key-two", &token), None);
        let other = Uuid::new_v4();
        let forged = format!("{other}.{}", token.split_once('.').map_or("", |t| t.1));
        assert_eq!(csrf_session(key, &forged), None);
        assert_eq!(csrf_session(key, "garbage"), None);
    }
}
