//! The URL of a `fetch_url` step: an absolute http(s) URL, parsed strictly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::validation::InvalidValue;

/// An absolute `http://` or `https://` URL, checked strictly.
///
/// Accepted: a scheme of `http` or `https` (any case), `://`, a host that is a
/// DNS name (ASCII letters, digits, `-` and `.`; punycode for international
/// names), a dotted-quad IPv4 address or a bracketed IPv6 address, an optional
/// port 1..=65535, then an optional path, query and fragment. At most 2048
/// characters, all printable ASCII.
///
/// Refused, among others: other schemes (`file:`, `javascript:`, `ftp:`),
/// credentials (`user@host`), backslashes, whitespace and control characters,
/// non-ASCII characters, empty hosts and labels, and numeric hosts that are
/// not plain dotted quads (`0x7f.1`, `2130706433`, `127.1`), which some
/// clients would read as other addresses than an address check sees.
///
/// The adapter that fetches must still refuse private, loopback and
/// link-local addresses after resolving [`host`](Self::host).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct HttpUrl {
    url: String,
    https: bool,
    host: String,
    port: Option<u16>,
}

impl HttpUrl {
    /// The longest URL accepted, in characters.
    pub const MAX_CHARS: usize = 2048;

    /// Checks `raw` (surrounding whitespace is trimmed first).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new("Enter a valid URL.");
        let url = raw.trim();
        if url.is_empty() {
            return Err(InvalidValue::blank());
        }
        if url.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::too_long(Self::MAX_CHARS));
        }
        let (scheme, rest) = url.split_once(':').ok_or_else(invalid)?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(InvalidValue::new("Only http and https URLs are allowed."));
        };
        if !url.bytes().all(|byte| byte.is_ascii_graphic()) {
            // Whitespace, control characters and non-ASCII.
            return Err(invalid());
        }
        if url.contains('\\') {
            return Err(invalid());
        }
        let rest = rest.strip_prefix("//").ok_or_else(invalid)?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.contains('@') {
            return Err(InvalidValue::new("URLs with credentials are not allowed."));
        }
        let (host, port) = split_host_port(authority).ok_or_else(invalid)?;
        let host = check_host(host).ok_or_else(invalid)?;
        Ok(Self {
            url: url.to_owned(),
            https,
            host,
            port,
        })
    }

    /// The URL as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host, lowercased; an IPv6 address without its brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host as an IP address, when it is an address literal rather than a name.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The port: the explicit one, else 443 for https and 80 for http.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl From<HttpUrl> for String {
    fn from(url: HttpUrl) -> String {
        url.url
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = InvalidValue;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

/// Splits `host[:port]` or `[v6][:port]`; `None` if malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let close = bracketed.find(']')?;
        let host = &authority[..close + 2];
        match &bracketed[close + 1..] {
            "" => (host, None),
            after => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let port: u16 = digits.parse().ok()?;
            if port == 0 {
                return None;
            }
            Some(port)
        }
    };
    Some((host, port))
}

/// Validates a host and returns it lowercased (IPv6 without brackets).
fn check_host(host: &str) -> Option<String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        // No zone identifiers; std's parser is strict.
        let address: Ipv6Addr = inner.parse().ok()?;
        return Some(address.to_string());
    }
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    for label in &labels {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
    }
    // As in the WHATWG URL standard, a host whose last label looks numeric is
    // an IPv4 address; accept only the canonical dotted quad.
    let last = labels.last()?;
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        let address: Ipv4Addr = host.parse().ok()?;
        // std refuses leading zeros and short forms; keep the canonical text.
        if address.to_string() != host {
            return None;
        }
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = [
            ("https://example.com", "example.com", 443),
            ("http://example.com/", "example.com", 80),
            ("HTTPS://Example.COM:8443/a/b?c=d#e", "example.com", 8443),
            ("https://a-b.c-d.example/x%20y", "a-b.c-d.example", 443),
            ("http://93.184.216.34/file.pdf", "93.184.216.34", 80),
            ("http://[::1]:8080/", "::1", 8080),
            ("http://[2001:DB8::1]/", "2001:db8::1", 80),
            (
                "https://xn--bcher-kva.example/",
                "xn--bcher-kva.example",
                443,
            ),
            ("https://example.com?q", "example.com", 443),
            ("https://example.com#frag", "example.com", 443),
        ];
        for (raw, host, port) in ok {
            let url = HttpUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(url.host(), host, "{raw}");
            assert_eq!(url.port(), port, "{raw}");
            assert_eq!(url.as_str(), raw);
        }
        assert_eq!(
            HttpUrl::parse("http://[::1]/").expect("valid").host_ip(),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1/")
                .expect("valid")
                .host_ip(),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            HttpUrl::parse("http://example.com/")
                .expect("valid")
                .host_ip(),
            None
        );
        assert!(
            HttpUrl::parse("https://example.com")
                .expect("valid")
                .is_https()
        );
        assert_eq!(
            HttpUrl::parse("  https://example.com  ")
                .expect("valid")
                .as_str(),
            "https://example.com"
        );

        let bad = [
            "example.com",
            "//example.com",
            "http:/example.com",
            "http:example.com",
            "http://",
            "http:///path",
            "http://:80/",
            "http://example.com:/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com:123456/",
            "http://example.com:8o/",
            "http://exa mple.com/",
            "http://example.com/a b",
            "http://example.com/a\nb",
            "http://example.com/a\tb",
            "http://example.com/\u{7f}",
            "http://exämple.com/",
            "http://example.com/ä",
            "http://example.com\\@evil.com/",
            "http://evil.com\\x",
            "http://a@b.com/",
            "http://@b.com/",
            "http://example..com/",
            "http://.example.com/",
            "http://example.com./",
            "http://-example.com/",
            "http://exa_mple.com/",
            "http://example%2ecom/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://127.1/",
            "http://127.000.0.1/",
            "http://017.0.0.1/",
            "http://1.2.3.4.5/",
            "http://256.0.0.1/",
            "http://[::1/",
            "http://[::1]x/",
            "http://[fe80::1%25eth0]/",
            "http://[example.com]/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/html,hi",
            "httpx://example.com",
        ];
        for raw in bad {
            assert!(HttpUrl::parse(raw).is_err(), "{raw:?} should be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(HttpUrl::parse(&long), Err(InvalidValue::too_long(2048)));
        let long_label = format!("https://{}.com/", "a".repeat(64));
        assert!(HttpUrl::parse(&long_label).is_err());
    }
}
