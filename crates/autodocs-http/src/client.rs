//! Who is asking, and at which address they reached us: the base of every
//! absolute URL and the client address every per-address limit keys on.
//!
//! Anyone can send `X-Forwarded-Host`, `X-Forwarded-Proto`,
//! `X-Forwarded-For` or `Forwarded`; believing them from anyone lets a
//! client put its own host into the links other code hands out, and change
//! its address at will to escape throttling. So they are read only when the
//! connection itself comes from an address in `server.trusted_proxies`, and
//! `server.public_url`, when set, beats every header.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::web;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The longest host (with port) believed; DNS names stop at 253.
const MAX_HOST_LEN: usize = 260;

/// An IP network: `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32`,
/// `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a trusted-proxy entry is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an address, or not `address/prefix`.
    #[error("{0:?} is not an IP address or network such as 10.0.0.0/8, 127.0.0.1 or ::1/128")]
    Malformed(String),
    /// The prefix is longer than the address.
    #[error("{text:?}: the prefix length must be at most {max}")]
    PrefixTooLong {
        /// The entry as written.
        text: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || CidrError::Malformed(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = canonical(address.parse::<IpAddr>().map_err(|_| malformed())?);
        let max = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take `+8`.
            Some(digits)
                if !digits.is_empty()
                    && digits.len() <= 3
                    && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                digits.parse::<u8>().map_err(|_| malformed())?
            }
            Some(_) => return Err(malformed()),
        };
        if prefix > max {
            return Err(CidrError::PrefixTooLong {
                text: text.to_owned(),
                max,
            });
        }
        // `10.1.2.3/8` means the network it lies in.
        Ok(Self {
            network: mask(network, prefix),
            prefix,
        })
    }
}

impl Cidr {
    /// Whether `address` lies in this network (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        match (self.network, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(address, self.prefix) == self.network
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `address` with all but its first `prefix` bits cleared.
fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & kept).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & kept).into())
        }
    }
}

/// An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`; it is
/// the same client as `a.b.c.d`.
fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

/// The networks whose connections may speak for the client through
/// forwarded headers (`server.trusted_proxies`); empty: nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses the entries of `server.trusted_proxies`. Blank entries are
    /// skipped (an empty environment variable means none), and brackets and
    /// quotes around entries are dropped, so a JSON-style list given as one
    /// string (`["10.0.0.0/8", "::1"]`) reads like `10.0.0.0/8,::1`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, CidrError> {
        entries
            .iter()
            .flat_map(|entry| entry.as_ref().split(','))
            .map(|entry| entry.trim_matches(|c: char| c.is_whitespace() || "[]\"'".contains(c)))
            .filter(|entry| !entry.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Cidr>, _>>()
            .map(Self)
    }

    /// Whether `address` is a trusted proxy.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks, as written back (`10.0.0.0/8`).
    pub fn networks(&self) -> &[Cidr] {
        &self.0
    }
}

/// Why `server.public_url` cannot be the base of absolute URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "server.public_url {0:?} must be an absolute http(s) URL such as https://api.example.com \
     (no query, fragment, user or spaces)"
)]
pub struct PublicUrlError(String);

/// Decides, for each request, the public base URL and the client address.
#[derive(Debug, Clone, Default)]
pub struct ClientPolicy {
    /// `server.public_url` without its trailing `/`; `None` when unset.
    public_url: Option<String>,
    trusted: TrustedProxies,
}

impl ClientPolicy {
    /// The policy of `server.public_url` (empty: from the request) and
    /// `server.trusted_proxies`.
    pub fn new(public_url: &str, trusted: TrustedProxies) -> Result<Self, PublicUrlError> {
        let public_url = match public_url.trim() {
            "" => None,
            url => Some(parse_public_url(url)?),
        };
        Ok(Self {
            public_url,
            trusted,
        })
    }

    /// The scheme and host (`https://api.example.com`, no trailing `/`)
    /// absolute URLs of `request` start with.
    pub fn base_url(&self, request: &HttpRequest) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let peer = request.peer_addr().map(|peer| peer.ip());
        let connection = Origin {
            scheme: if request.app_config().secure() {
                "https"
            } else {
                "http"
            },
            host: request
                .headers()
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
                .or_else(|| {
                    request
                        .uri()
                        .authority()
                        .map(|authority| authority.as_str())
                })
                .filter(|host| valid_host(host))
                .map(str::to_owned)
                .unwrap_or_else(|| request.app_config().local_addr().to_string()),
        };
        let origin = match peer {
            Some(peer) if self.trusted.contains(peer) => {
                forwarded_origin(request.headers(), connection)
            }
            _ => connection,
        };
        format!("{}://{}", origin.scheme, origin.host)
    }

    /// The address of the client behind `request`: the connection's peer,
    /// or, when that peer is a trusted proxy, the rightmost address of the
    /// forwarded chain that is not a trusted proxy. `None` only for a
    /// request with no connection (unit tests).
    pub fn client_ip(&self, request: &HttpRequest) -> Option<IpAddr> {
        let peer = request.peer_addr()?.ip();
        Some(client_behind(peer, request.headers(), &self.trusted))
    }

    /// The base URL of `request` under the server's policy.
    pub fn base_url_of(request: &HttpRequest) -> String {
        match request.app_data::<web::Data<crate::AppState>>() {
            Some(state) => state.client.base_url(request),
            // Not wired (a bare test request): the safe default.
            None => ClientPolicy::default().base_url(request),
        }
    }

    /// The client address of `request` under the server's policy.
    pub fn client_ip_of(request: &HttpRequest) -> Option<IpAddr> {
        match request.app_data::<web::Data<crate::AppState>>() {
            Some(state) => state.client.client_ip(request),
            None => ClientPolicy::default().client_ip(request),
        }
    }
}

/// `server.public_url`, checked and without its trailing `/`.
fn parse_public_url(url: &str) -> Result<String, PublicUrlError> {
    let refuse = || PublicUrlError(url.to_owned());
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(refuse)?;
    let host = rest.split('/').next().unwrap_or_default();
    if !valid_host(host)
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@'))
    {
        return Err(refuse());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A scheme and a host (with its port, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: &'static str,
    host: String,
}

/// Whether a Host-like value is a plain host and port: letters, digits and
/// `.-_:[]` only, so no user part (`@`), path, query, space or control
/// character can ride into a URL built from it.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

/// `http` or `https` as the forwarded value names it; nothing else.
fn scheme(value: &str) -> Option<&'static str> {
    match value.trim().to_ascii_lowercase().as_str() {
        "http" => Some("http"),
        "https" => Some("https"),
        _ => None,
    }
}

/// Every value of header `name`, in order, as one comma-separated list.
fn list_values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Vec<&'a str> {
    headers
        .get_all(name)
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').collect::<Vec<_>>(),
            // Not text: one entry no parser accepts.
            Err(_) => vec!["\u{0}"],
        })
        .map(str::trim)
        .collect()
}

/// The `Forwarded` elements (RFC 7239), each its `name=value` pairs with the
/// names lowercased and quotes removed.
fn forwarded_elements(headers: &HeaderMap) -> Vec<Vec<(String, String)>> {
    list_values(headers, &header::FORWARDED)
        .into_iter()
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .map(|(name, value)| {
                    (
                        name.trim().to_ascii_lowercase(),
                        value.trim().trim_matches('"').to_owned(),
                    )
                })
                .collect()
        })
        .collect()
}

/// The origin a trusted proxy reports: the last (the nearest proxy's)
/// `X-Forwarded-Host` / `X-Forwarded-Proto` value, else the last
/// `Forwarded` element's `host` / `proto`; what it does not report, or
/// reports malformed, stays as the connection has it.
fn forwarded_origin(headers: &HeaderMap, connection: Origin) -> Origin {
    let last_forwarded = forwarded_elements(headers).pop().unwrap_or_default();
    let forwarded = |name: &str| {
        last_forwarded
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let host = list_values(headers, &X_FORWARDED_HOST)
        .last()
        .map(|host| (*host).to_owned())
        .or_else(|| forwarded("host"))
        .filter(|host| valid_host(host));
    let proto = list_values(headers, &X_FORWARDED_PROTO)
        .last()
        .map(|proto| (*proto).to_owned())
        .or_else(|| forwarded("proto"))
        .and_then(|proto| scheme(&proto));
    Origin {
        scheme: proto.unwrap_or(connection.scheme),
        host: host.unwrap_or(connection.host),
    }
}

/// The client behind a connection from `peer`: `peer` itself unless it is a
/// trusted proxy; then the forwarded chain (`X-Forwarded-For`, else the
/// `for=` of `Forwarded`) is walked from the right, past trusted proxies,
/// to the first address that is not one. A malformed or hidden (`unknown`)
/// entry ends the walk at `peer`: who is behind it cannot be known.
fn client_behind(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let mut chain: Vec<String> = list_values(headers, &X_FORWARDED_FOR)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if chain.is_empty() {
        chain = forwarded_elements(headers)
            .into_iter()
            .map(|element| {
                element
                    .into_iter()
                    .rev()
                    .find(|(key, _)| key == "for")
                    .map(|(_, value)| value)
                    .unwrap_or_default()
            })
            .collect();
    }
    walk_chain(peer, chain.iter().map(String::as_str), trusted)
}

/// The rightmost-untrusted rule over `chain` (leftmost entry first).
fn walk_chain<'a>(
    peer: IpAddr,
    chain: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut farthest = peer;
    for entry in chain.rev() {
        let Some(address) = chain_address(entry) else {
            return peer;
        };
        if !trusted.contains(address) {
            return address;
        }
        farthest = address;
    }
    // Every hop is a trusted proxy: the request began at the farthest one.
    farthest
}

/// One forwarded hop: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn chain_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|inner| inner.strip_suffix(']'))
                .and_then(|inner| inner.parse::<IpAddr>().ok())
        })
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).expect("valid networks")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn networks_parse_with_or_without_a_prefix() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("127.0.0.1", "127.0.0.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1", "::1/128"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:db8:ffff::1/32", "2001:db8::/32"),
            ("::ffff:192.168.0.1", "192.168.0.1/32"),
        ];
        for (text, shown) in cases {
            let cidr: Cidr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(cidr.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn bad_networks_are_refused() {
        for text in [
            "",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/8/8",
            "fe80::1%eth0",
            "1.2.3.4 /8",
            "/8",
            "10.0.0.0/0008",
        ] {
            assert!(text.parse::<Cidr>().is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                text: "10.0.0.0/33".into(),
                max: 32
            })
        );
        assert!("::/129".parse::<Cidr>().is_err());
        assert!(TrustedProxies::parse(&["10.0.0.0/8", "nonsense"]).is_err());
    }

    #[test]
    fn membership_follows_the_prefix() {
        let net = trusted(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]);
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("192.168.1.7")));
        assert!(!net.contains(ip("192.168.1.8")));
        assert!(net.contains(ip("fd12::1")));
        assert!(!net.contains(ip("fe80::1")));
        // A dual-stack socket's view of an IPv4 client.
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!(trusted(&["0.0.0.0/0"]).contains(ip("203.0.113.9")));
        assert!(!trusted(&["0.0.0.0/0"]).contains(ip("2001:db8::1")));
        assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn lists_read_from_one_string_as_from_a_list() {
        let expected = trusted(&["10.0.0.0/8", "::1"]);
        assert_eq!(trusted(&["10.0.0.0/8,::1"]), expected);
        assert_eq!(trusted(&[" 10.0.0.0/8 , ::1 "]), expected);
        assert_eq!(trusted(&["[\"10.0.0.0/8\", \"::1\"]"]), expected);
        assert_eq!(trusted(&["[\"10.0.0.0/8\"", "\"::1\"]"]), expected);
        assert!(trusted(&[""]).is_empty());
        assert!(trusted(&["[]"]).is_empty());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        let forged = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        assert_eq!(
            client_behind(ip("127.0.0.1"), &forged, &none),
            ip("127.0.0.1")
        );
        let other = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            client_behind(ip("127.0.0.1"), &forged, &other),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        let peer = ip("127.0.0.1");
        // Whatever the client wrote on the left is ignored.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(client_behind(peer, &h, &proxies), ip("203.0.113.9"));
        // Several headers read as one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9:4711"),
        ]);
        assert_eq!(client_behind(peer, &h, &proxies), ip("203.0.113.9"));
        let h = headers(&[("x-forwarded-for", "[2001:db8::7]:80")]);
        assert_eq!(client_behind(peer, &h, &proxies), ip("2001:db8::7"));
        // Only trusted hops: the farthest of them.
        let h = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(client_behind(peer, &h, &proxies), ip("10.0.0.3"));
        // Nothing forwarded: the proxy itself.
        assert_eq!(client_behind(peer, &HeaderMap::new(), &proxies), peer);
        // A dual-stack peer address is its IPv4 address.
        assert_eq!(
            client_behind(ip("::ffff:127.0.0.1"), &h, &proxies),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn a_malformed_hop_ends_the_walk_at_the_peer() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for chain in [
            "203.0.113.9, garbage",
            "203.0.113.9, unknown, 10.0.0.2",
            "203.0.113.9,,10.0.0.2",
            "1.2.3.4 5.6.7.8",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                X_FORWARDED_FOR,
                HeaderValue::from_str(chain).expect("header"),
            );
            assert_eq!(client_behind(peer, &h, &proxies), peer, "{chain}");
        }
        // A malformed hop left of the client does not matter.
        let h = headers(&[("x-forwarded-for", "garbage, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(client_behind(peer, &h, &proxies), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_for_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let h = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8::9]:4711\";proto=https, for=10.0.0.5",
        )]);
        assert_eq!(client_behind(peer, &h, &proxies), ip("2001:db8::9"));
        let h = headers(&[("forwarded", "for=_hidden, for=10.0.0.5")]);
        assert_eq!(client_behind(peer, &h, &proxies), peer);
    }

    #[test]
    fn trusted_proxies_report_the_origin_and_bad_values_are_ignored() {
        let connection = || Origin {
            scheme: "http",
            host: "real.example:8000".into(),
        };
        let h = headers(&[
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            forwarded_origin(&h, connection()),
            Origin {
                scheme: "https",
                host: "api.example.com".into()
            }
        );
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4;host=\"api.example.com:8443\";proto=HTTPS",
        )]);
        assert_eq!(
            forwarded_origin(&h, connection()),
            Origin {
                scheme: "https",
                host: "api.example.com:8443".into()
            }
        );
        // The nearest proxy's value (the last) counts.
        let h = headers(&[("x-forwarded-host", "evil.example, api.example.com")]);
        assert_eq!(forwarded_origin(&h, connection()).host, "api.example.com");
        for bad in [
            "evil.example/path",
            "user@evil.example",
            "evil example",
            "a?b",
            "",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                X_FORWARDED_HOST,
                HeaderValue::from_str(bad).expect("header"),
            );
            h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("javascript"));
            assert_eq!(forwarded_origin(&h, connection()), connection(), "{bad:?}");
        }
    }

    #[test]
    fn hosts_are_plain_names_and_ports() {
        for good in [
            "example.com",
            "127.0.0.1:8000",
            "[::1]:8000",
            "my_host",
            "a-b.c",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a@b",
            "a\tb",
            "a\\b",
            "a?b",
            "a#b",
            "a%2Fb",
            &"x".repeat(300),
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn public_urls_are_absolute_http_urls() {
        let policy = |url: &str| ClientPolicy::new(url, TrustedProxies::default());
        assert_eq!(
            policy("https://api.example.com/").map(|p| p.public_url),
            Ok(Some("https://api.example.com".to_owned()))
        );
        assert_eq!(
            policy("http://127.0.0.1:8000/prefix").map(|p| p.public_url),
            Ok(Some("http://127.0.0.1:8000/prefix".to_owned()))
        );
        assert_eq!(policy("  ").map(|p| p.public_url), Ok(None));
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://",
            "https://a b",
            "https://u@x",
            "https://x?q",
        ] {
            assert!(policy(bad).is_err(), "{bad:?}");
        }
    }

    #[actix_web::test]
    async fn requests_get_their_origin_from_the_policy() {
        use actix_web::test::TestRequest;
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("address");
        let forged = || {
            TestRequest::get()
                .peer_addr(peer)
                .insert_header((header::HOST, "real.example:8000"))
                .insert_header((X_FORWARDED_HOST, "evil.example"))
                .insert_header((X_FORWARDED_PROTO, "https"))
                .insert_header((X_FORWARDED_FOR, "203.0.113.9"))
                .to_http_request()
        };
        let plain = ClientPolicy::default();
        assert_eq!(plain.base_url(&forged()), "http://real.example:8000");
        assert_eq!(plain.client_ip(&forged()), Some(ip("127.0.0.1")));

        let behind = ClientPolicy::new("", trusted(&["127.0.0.0/8"])).expect("policy");
        assert_eq!(behind.base_url(&forged()), "https://evil.example");
        assert_eq!(behind.client_ip(&forged()), Some(ip("203.0.113.9")));

        let public = ClientPolicy::new("https://api.example.com", trusted(&["127.0.0.0/8"]))
            .expect("policy");
        assert_eq!(public.base_url(&forged()), "https://api.example.com");

        // A Host that could carry a URL falls back to the listening address.
        let request = TestRequest::get()
            .peer_addr(peer)
            .insert_header((header::HOST, "evil.example/x?"))
            .to_http_request();
        let base = plain.base_url(&request);
        assert!(!base.contains("evil"), "{base}");
        assert!(base.starts_with("http://"), "{base}");
    }
}
