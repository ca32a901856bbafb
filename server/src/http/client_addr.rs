//! The client's address behind proxies. A request whose TCP peer is one of `TRUSTED_PROXIES`
//! comes from the address its `TRUSTED_PROXY_HEADER` (`X-Forwarded-For`, or RFC 7239
//! `Forwarded`) names: read from the right, the first address that is not a trusted proxy
//! (each proxy appends the address it was reached from, so only what the trusted proxies wrote
//! is believed, and whatever a client put in front of it does not matter). When every address
//! is a trusted proxy the leftmost is the client. A header that cannot be read that far (an
//! entry that is no address, an obfuscated or `unknown` node) is ignored, as it is from any
//! peer that is not trusted: the client is then the peer. The address goes to the request as
//! [`ClientIp`], which per-IP rate limits and the sessions' recorded address use.
//!
//! Written here rather than taken from a crate: the few crates doing this are tied to other
//! frameworks (axum, actix), and the rules are short; `ipnet` does the address ranges.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;
use poem::{Endpoint, Middleware, Request, Result, http::HeaderMap};

use crate::{auth::ClientIp, config::ForwardedHeader};

/// Which peers are trusted and what header they set.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn new(nets: &[IpNet], header: ForwardedHeader) -> Self {
        Self {
            nets: nets.iter().map(IpNet::trunc).collect(),
            header,
        }
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.nets.iter().any(|net| net.contains(&addr))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let (name, parse): (&str, fn(&str) -> Option<IpAddr>) = match self.header {
            ForwardedHeader::XForwardedFor => ("x-forwarded-for", x_forwarded_for_entry),
            ForwardedHeader::Forwarded => ("forwarded", forwarded_element),
        };
        // Several header lines are one list, in order.
        let mut entries = Vec::new();
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else {
                return peer;
            };
            entries.extend(value.split(','));
        }
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(addr) = parse(entry) else {
                // Unreadable before an untrusted address was found: ignore the header.
                return peer;
            };
            let addr = addr.to_canonical();
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }
}

/// An address with an optional port: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn address(text: &str) -> Option<IpAddr> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

fn x_forwarded_for_entry(entry: &str) -> Option<IpAddr> {
    address(entry.trim())
}

/// The `for=` node of one element of `Forwarded` (`for=192.0.2.60;proto=http;by=203.0.113.43`):
/// a token or a quoted string, an IPv6 address in brackets (`for="[2001:db8::1]:4711"`).
fn forwarded_element(element: &str) -> Option<IpAddr> {
    let mut node = None;
    for pair in element.split(';') {
        let (key, value) = pair.trim().split_once('=')?;
        if key.trim().eq_ignore_ascii_case("for") {
            if node.is_some() {
                return None;
            }
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"')?,
                None => value,
            };
            node = Some(value);
        }
    }
    // IPv6 must be bracketed (and so quoted) in `Forwarded`.
    let node = node?;
    if !node.starts_with('[') && node.contains(':') && node.parse::<SocketAddr>().is_err() {
        return None;
    }
    address(node)
}

impl<E: Endpoint> Middleware<E> for TrustedProxies {
    type Output = ClientAddrEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ClientAddrEndpoint {
            inner,
            proxies: self.clone(),
        }
    }
}

/// The endpoint wrapped by [`TrustedProxies`]: puts the [`ClientIp`] on each request.
pub struct ClientAddrEndpoint<E> {
    inner: E,
    proxies: TrustedProxies,
}

impl<E: Endpoint> Endpoint for ClientAddrEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if let Some(peer) = req.remote_addr().as_socket_addr().map(SocketAddr::ip) {
            let client = self.proxies.client(peer, req.headers());
            req.extensions_mut().insert(ClientIp(client));
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn proxies(nets: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let nets: Vec<IpNet> = nets
            .iter()
            .filter_map(|n| {
                n.parse()
                    .ok()
                    .or_else(|| n.parse::<IpAddr>().ok().map(IpNet::from))
            })
            .collect();
        TrustedProxies::new(&nets, header)
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(name, value);
            }
        }
        map
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let none = proxies(&[], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(none.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        let some = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(some.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7"], ForwardedHeader::XForwardedFor);
        // The client forged the first entry; the proxies appended the rest.
        let h = headers(
            "x-forwarded-for",
            &["6.6.6.6, 203.0.113.9", "10.1.2.3, 192.0.2.7"],
        );
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Garbage the client put in front of what the proxy appended does not matter.
        let h = headers("x-forwarded-for", &["not an address, 203.0.113.9:4711"]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Every entry trusted: the leftmost.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // No header: the peer.
        assert_eq!(p.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // IPv6, bracketed with a port, and a peer seen as an IPv4-mapped address.
        let h = headers("x-forwarded-for", &["[2001:db8::5]:443"]);
        assert_eq!(p.client(ip("::ffff:10.0.0.1"), &h), ip("2001:db8::5"));
    }

    #[test]
    fn a_header_unreadable_before_the_client_is_ignored() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        for value in [
            "203.0.113.9, unknown",
            "203.0.113.9, ",
            "300.1.1.1",
            "_hidden",
        ] {
            let h = headers("x-forwarded-for", &[value]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{value}");
        }
    }

    #[test]
    fn forwarded_is_read_only_when_configured() {
        let xff = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let fwd = proxies(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let mut h = headers("forwarded", &["for=203.0.113.9;proto=https;by=10.0.0.1"]);
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.4"));
        assert_eq!(xff.client(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        assert_eq!(fwd.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_elements() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let cases = [
            (r#"for=192.0.2.60;proto=http, for=10.0.0.2"#, "192.0.2.60"),
            (r#"For="[2001:db8:cafe::17]:4711""#, "2001:db8:cafe::17"),
            (r#"for="192.0.2.43:47011", for=10.3.3.3"#, "192.0.2.43"),
            // Malformed or unknown nodes: the header is ignored.
            (r#"for=unknown"#, "10.0.0.1"),
            (r#"for=_hidden, for=10.0.0.2"#, "10.0.0.1"),
            (r#"for=2001:db8::1"#, "10.0.0.1"),
            (r#"for="192.0.2.1"#, "10.0.0.1"),
            (r#"proto=https"#, "10.0.0.1"),
            (r#"for=192.0.2.1;for=192.0.2.2"#, "10.0.0.1"),
        ];
        for (value, client) in cases {
            let h = headers("forwarded", &[value]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip(client), "{value}");
        }
    }
}
