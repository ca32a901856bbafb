//! What a request tells about its sender: address, stable traits for the device fingerprint,
//! and the auth cookies it carries.

use std::net::IpAddr;

use poem::{Request, http::header};
use sha2::{Digest, Sha256};

use super::cookies;

/// The client's address, when the HTTP layer resolved it (behind trusted proxies, the one
/// their header names); otherwise the TCP peer is the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Request traits the auth flows need, resolved once per HTTP request or WebSocket.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub accept_language: Option<String>,
    pub device_id: Option<String>,
    /// The refresh-token cookie, if the browser sent one.
    pub refresh_cookie: Option<String>,
    /// The CSRF cookie, if the browser sent one.
    pub csrf_cookie: Option<String>,
    /// The browser sent more than one CSRF cookie (one of them planted).
    pub duplicate_csrf: bool,
    /// The access-token cookie, if the browser sent one.
    pub access_cookie: Option<String>,
}

fn header_value(req: &Request, name: impl header::AsHeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().chars().take(512).collect::<String>())
        .filter(|v| !v.is_empty())
}

impl RequestMeta {
    /// Reads `req`; `secure_cookies` says which cookie names count (`__Host-` ones when the
    /// cookies are `Secure`).
    pub fn from_request(req: &Request, secure_cookies: bool) -> Self {
        let jar = cookies::parse(req, secure_cookies);
        Self {
            ip: match req.extensions().get::<ClientIp>() {
                Some(ClientIp(ip)) => Some(ip.to_string()),
                None => req
                    .remote_addr()
                    .as_socket_addr()
                    .map(|a| a.ip().to_string()),
            },
            user_agent: header_value(req, header::USER_AGENT),
            accept_language: header_value(req, header::ACCEPT_LANGUAGE),
            device_id: header_value(req, "x-device-id"),
            refresh_cookie: jar.refresh,
            csrf_cookie: jar.csrf,
            duplicate_csrf: jar.duplicate_csrf,
            access_cookie: jar.access,
        }
    }

    /// Hash of the stable traits of the device: User-Agent, Accept-Language, `X-Device-Id`.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [&self.user_agent, &self.accept_language, &self.device_id] {
            hasher.update(part.as_deref().unwrap_or("").as_bytes());
            hasher.update(b"\n");
        }
        super::tokens::hex(&hasher.finalize())
    }

    /// The key rate limits count per address.
    pub fn ip_key(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_every_trait() {
        let base = RequestMeta {
            user_agent: Some("ua".into()),
            accept_language: Some("en".into()),
            device_id: None,
            ..Default::default()
        };
        let mut other_device = base.clone();
        other_device.device_id = Some("d1".into());
        let mut other_language = base.clone();
        other_language.accept_language = Some("de".into());
        assert_eq!(base.fingerprint(), base.clone().fingerprint());
        assert_ne!(base.fingerprint(), other_device.fingerprint());
        assert_ne!(base.fingerprint(), other_language.fingerprint());
    }
}
