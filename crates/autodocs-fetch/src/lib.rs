//! The HTTP adapter of the domain's [`UrlFetcher`] port: downloads a URL into
//! an [`UploadSink`] for the `fetch_url` step action.
//!
//! [`HttpFetcher`] is blocking (it runs on the background workers' OS
//! threads, never on an async executor) and uses `reqwest`'s blocking client
//! over rustls. It applies a connect timeout, a total timeout covering the
//! whole body, a redirect limit, and, unless
//! [`FetchSettings::allow_private_networks`] is set, an SSRF guard:
//!
//! - an IP-literal host (of the URL or of any redirect target) is checked
//!   directly with [`is_private_or_local`];
//! - a host name is resolved by a resolver of this crate that refuses the
//!   name if *any* of its addresses is private or local, and otherwise hands
//!   the connector exactly the addresses it checked, so a second (rebound)
//!   DNS answer is never used;
//! - proxies are disabled, so the connection goes where the check looked.
//!
//! The body is streamed into the sink in chunks of at most 64 KiB; it is
//! never held whole.
//!
//! Errors come back as a [`FetchError`] class whose text a user may read
//! ("the address is not allowed", "the server did not answer", …); the
//! host, the address and the error chain stay in its detail, which this
//! crate logs at WARN (inside the worker's `job` span, so with the job id)
//! and nobody else shows.

#![warn(missing_docs)]

use std::error::Error as StdError;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autodocs_domain::plan_step::HttpUrl;
use autodocs_domain::ports::{FetchError, Fetched, UploadSink, UrlFetcher};
use percent_encoding::percent_decode_str;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_DISPOSITION, HeaderMap};
use reqwest::redirect::Policy;

/// The size of one read from the response body (and so of the largest chunk
/// handed to the sink).
pub const CHUNK_SIZE: usize = 64 * 1024;

/// The file name used when neither the response nor the URL suggests one.
pub const DEFAULT_FILENAME: &str = "download";

/// How an [`HttpFetcher`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// Allow loopback, private, link-local and other non-public addresses
    /// (`jobs.allow_private_networks`; for tests and closed networks only).
    /// Default `false`.
    pub allow_private_networks: bool,
    /// The longest wait for a TCP (and TLS) connection. Default 10 s.
    pub connect_timeout: Duration,
    /// The longest a whole fetch may take, redirects and body included.
    /// Default 60 s.
    pub total_timeout: Duration,
    /// The most redirects followed; one more fails the fetch. Default 5.
    pub max_redirects: usize,
    /// The `User-Agent` header sent. Default `autodocs/<version>`.
    pub user_agent: String,
    /// The slowest download kept, in bytes per second averaged since the
    /// request started: a slower one is aborted once `min_rate_grace` has
    /// passed, so a trickling server cannot hold a worker for the whole
    /// `total_timeout`. `0` turns the check off. Default 1024.
    pub min_bytes_per_second: u64,
    /// How long a download may run before its rate is judged. Default 10 s.
    pub min_rate_grace: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_redirects: 5,
            user_agent: concat!("autodocs/", env!("CARGO_PKG_VERSION")).to_owned(),
            min_bytes_per_second: 1024,
            min_rate_grace: Duration::from_secs(10),
        }
    }
}

/// A blocking [`UrlFetcher`] over `reqwest`, with the SSRF guard described
/// in the [crate documentation](crate).
///
/// Each [`fetch`](UrlFetcher::fetch) builds its own short-lived client on
/// the calling thread, so the fetcher itself may be created and dropped
/// anywhere, including inside an async runtime; `fetch` must be called from
/// a thread that is not driving an async runtime (a worker thread or
/// `spawn_blocking`).
#[derive(Debug, Clone, Default)]
pub struct HttpFetcher {
    settings: FetchSettings,
}

impl HttpFetcher {
    /// A fetcher with these settings.
    pub fn new(settings: FetchSettings) -> Self {
        Self { settings }
    }

    /// Its settings.
    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    fn client(&self) -> Result<reqwest::blocking::Client, FetchError> {
        let settings = &self.settings;
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .redirect(redirect_policy(
                settings.max_redirects,
                settings.allow_private_networks,
            ))
            .user_agent(settings.user_agent.as_str())
            .referer(false)
            .no_proxy();
        if !settings.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        builder.build().map_err(|error| FetchError::NoAnswer {
            detail: format!("could not build the HTTP client: {}", error_chain(&error)),
        })
    }

    fn deadline_error(&self, url: &str) -> FetchError {
        FetchError::NoAnswer {
            detail: format!(
                "timed out after {} s fetching {url}",
                self.settings.total_timeout.as_secs_f64()
            ),
        }
    }

    /// A failure before the response head arrived: refused by the guard,
    /// or no answer (DNS, connection, TLS, timeout).
    fn request_error(&self, error: &reqwest::Error, url: &str) -> FetchError {
        if let Some(guard) = find_guard_error(error) {
            return guard.into_fetch_error();
        }
        if error.is_timeout() {
            return self.deadline_error(url);
        }
        FetchError::NoAnswer {
            detail: format!("fetching {url}: {}", error_chain(error)),
        }
    }

    fn read_error(&self, error: &std::io::Error, url: &str) -> FetchError {
        if let Some(guard) = find_guard_error(error) {
            return guard.into_fetch_error();
        }
        let timed_out = error.kind() == std::io::ErrorKind::TimedOut
            || error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
        if timed_out {
            return self.deadline_error(url);
        }
        FetchError::CutOff {
            detail: format!("reading the body of {url} failed: {}", error_chain(error)),
        }
    }
}

impl UrlFetcher for HttpFetcher {
    fn fetch(&self, url: &HttpUrl, sink: &mut dyn UploadSink) -> Result<Fetched, FetchError> {
        let fetched = self.fetch_into(url, sink);
        if let Err(error) = &fetched {
            // The user reads only the class; the operator gets the rest.
            tracing::warn!(
                url = url.as_str(),
                error = %error,
                detail = %error.detail(),
                "fetch_url failed"
            );
        }
        fetched
    }
}

impl HttpFetcher {
    fn fetch_into(&self, url: &HttpUrl, sink: &mut dyn UploadSink) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        if !self.settings.allow_private_networks
            && let Some(ip) = url.host_ip()
            && is_private_or_local(ip)
        {
            return Err(FetchError::NotAllowed {
                detail: format!("{} is a private or local address", url.host()),
            });
        }
        let client = self.client()?;
        let mut response = client
            .get(url.as_str())
            .timeout(self.settings.total_timeout)
            .send()
            .map_err(|error| self.request_error(&error, url.as_str()))?;
        let final_url = response.url().clone();
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
                detail: format!("HTTP {} from {final_url}", status.as_u16()),
            });
        }
        let filename = suggested_filename(response.headers(), &final_url);

        let mut buffer = vec![0_u8; CHUNK_SIZE];
        let mut received: u64 = 0;
        loop {
            let read = match response.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.read_error(&error, final_url.as_str())),
            };
            sink.write(&buffer[..read])?;
            received = received.saturating_add(read as u64);
            let elapsed = started.elapsed();
            if elapsed > self.settings.total_timeout {
                return Err(self.deadline_error(final_url.as_str()));
            }
            if too_slow(received, elapsed, &self.settings) {
                return Err(FetchError::NoAnswer {
                    detail: format!(
                        "aborted: {final_url} sent {received} bytes in {:.1} s, slower than {} bytes/s",
                        elapsed.as_secs_f64(),
                        self.settings.min_bytes_per_second
                    ),
                });
            }
        }
        Ok(Fetched { filename })
    }
}

/// Whether a download that received `received` bytes in `elapsed` is below
/// the minimum rate, once the grace period is over.
pub fn too_slow(received: u64, elapsed: Duration, settings: &FetchSettings) -> bool {
    if settings.min_bytes_per_second == 0 || elapsed <= settings.min_rate_grace {
        return false;
    }
    (received as f64) < settings.min_bytes_per_second as f64 * elapsed.as_secs_f64()
}

/// Whether a fetch must refuse to connect to `ip`: true for every address
/// that is not public unicast.
///
/// IPv4: "this network" `0.0.0.0/8` (with the unspecified address),
/// `10.0.0.0/8`, CGNAT `100.64.0.0/10`, loopback `127.0.0.0/8`, link-local
/// `169.254.0.0/16`, `172.16.0.0/12`, IETF protocol assignments
/// `192.0.0.0/24`, the documentation ranges `192.0.2.0/24`,
/// `198.51.100.0/24` and `203.0.113.0/24`, the 6to4 relay `192.88.99.0/24`,
/// `192.168.0.0/16`, benchmarking `198.18.0.0/15`, multicast `224.0.0.0/4`,
/// reserved `240.0.0.0/4` and broadcast `255.255.255.255`.
///
/// IPv6: everything outside global unicast `2000::/3` (so unspecified `::`,
/// loopback `::1`, unique local `fc00::/7`, link-local `fe80::/10`,
/// site-local `fec0::/10`, multicast `ff00::/8`, discard `100::/64`, …),
/// and inside it the IETF block `2001::/23` (Teredo, benchmarking, ORCHID),
/// the documentation ranges `2001:db8::/32` and `3fff::/20`. Addresses that
/// embed an IPv4 address are judged by it: IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4
/// `2002:AABB:CCDD::/48`.
pub fn is_private_or_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_private_or_local_v4(ip),
        IpAddr::V6(ip) => is_private_or_local_v6(ip),
    }
}

fn is_private_or_local_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", including 0.0.0.0
        || a == 10
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, CGNAT
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (b & 0xf0) == 16)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224 // multicast, reserved, broadcast
}

fn is_private_or_local_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // ::/96 (unspecified, loopback, IPv4-compatible) and ::ffff:0:0/96 (IPv4-mapped).
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        return is_private_or_local_v4(embedded(s[6], s[7]));
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return is_private_or_local_v4(embedded(s[6], s[7]));
    }
    // Only global unicast 2000::/3 is public.
    if s[0] & 0xe000 != 0x2000 {
        return true;
    }
    // 2001::/23: IETF protocol assignments (Teredo, benchmarking, ORCHID, ...).
    if s[0] == 0x2001 && s[1] < 0x0200 {
        return true;
    }
    // Documentation: 2001:db8::/32 and 3fff::/20.
    if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] & 0xf000 == 0) {
        return true;
    }
    // 6to4 2002::/16 carries an IPv4 address in its next 32 bits.
    if s[0] == 0x2002 {
        return is_private_or_local_v4(embedded(s[1], s[2]));
    }
    false
}

/// Why the guard stopped a request; found again in reqwest's error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GuardError {
    /// The target is not allowed (a `NotAllowed`).
    Refused(String),
    /// The name resolved to no address at all (a `NoAnswer`).
    NoAddress(String),
    /// More redirects than allowed (a `TooManyRedirects`).
    TooManyRedirects { max: usize, url: String },
}

impl GuardError {
    fn into_fetch_error(self) -> FetchError {
        let detail = self.to_string();
        match self {
            GuardError::Refused(_) => FetchError::NotAllowed { detail },
            GuardError::NoAddress(_) => FetchError::NoAnswer { detail },
            GuardError::TooManyRedirects { .. } => FetchError::TooManyRedirects { detail },
        }
    }
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Refused(message) | GuardError::NoAddress(message) => f.write_str(message),
            GuardError::TooManyRedirects { max, url } => {
                write!(f, "too many redirects (more than {max}) at {url}")
            }
        }
    }
}

impl StdError for GuardError {}

/// The first [`GuardError`] in an error's source chain.
fn find_guard_error(error: &(dyn StdError + 'static)) -> Option<GuardError> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(guard) = error.downcast_ref::<GuardError>() {
            return Some(guard.clone());
        }
        current = error.source();
    }
    None
}

/// An error and its sources, joined with `": "` (repeated texts once).
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(error) = current {
        let part = error.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = error.source();
    }
    text
}

/// Resolves with the system resolver, then refuses the name if any of its
/// addresses is private or local; otherwise connects to exactly those.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = check_resolved(&host, found)?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The addresses of `host` if every one is allowed.
fn check_resolved(host: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, GuardError> {
    if let Some(bad) = found.iter().find(|addr| is_private_or_local(addr.ip())) {
        return Err(GuardError::Refused(format!(
            "{host} resolves to a private or local address ({})",
            bad.ip()
        )));
    }
    if found.is_empty() {
        return Err(GuardError::NoAddress(format!(
            "{host} resolves to no address"
        )));
    }
    Ok(found)
}

fn redirect_policy(max_redirects: usize, allow_private_networks: bool) -> Policy {
    Policy::custom(move |attempt| {
        match check_redirect(
            attempt.url(),
            attempt.previous().len(),
            max_redirects,
            allow_private_networks,
        ) {
            Ok(()) => attempt.follow(),
            Err(error) => attempt.error(error),
        }
    })
}

/// Whether to follow a redirect to `next`, `previous` URLs having been
/// requested already (the first one included).
fn check_redirect(
    next: &Url,
    previous: usize,
    max_redirects: usize,
    allow_private_networks: bool,
) -> Result<(), GuardError> {
    if previous > max_redirects {
        return Err(GuardError::TooManyRedirects {
            max: max_redirects,
            url: next.to_string(),
        });
    }
    if !matches!(next.scheme(), "http" | "https") {
        return Err(GuardError::Refused(format!(
            "redirect to a non-http(s) URL ({}:)",
            next.scheme()
        )));
    }
    if !allow_private_networks {
        let host = next.host_str().unwrap_or_default();
        let literal = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        // Names are checked by the resolver; the connector skips it for literals.
        if let Ok(ip) = literal.parse::<IpAddr>()
            && is_private_or_local(ip)
        {
            return Err(GuardError::Refused(format!(
                "redirect to {host}, a private or local address"
            )));
        }
    }
    Ok(())
}

/// The file name suggested by `Content-Disposition`, else by the last
/// non-empty path segment of `url` (percent-decoded), else
/// [`DEFAULT_FILENAME`].
fn suggested_filename(headers: &HeaderMap, url: &Url) -> String {
    headers
        .get(CONTENT_DISPOSITION)
        .and_then(|value| content_disposition_filename(&String::from_utf8_lossy(value.as_bytes())))
        .or_else(|| url_filename(url))
        .unwrap_or_else(|| DEFAULT_FILENAME.to_owned())
}

fn url_filename(url: &Url) -> Option<String> {
    let segment = url
        .path_segments()?
        .rev()
        .find(|segment| !segment.is_empty())?;
    let name = percent_decode_str(segment).decode_utf8_lossy();
    (!name.trim().is_empty()).then(|| name.into_owned())
}

/// The file name of a `Content-Disposition` value: `filename*` (RFC 5987)
/// if present and decodable, else `filename`.
fn content_disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (name, value) in disposition_params(value) {
        if name.eq_ignore_ascii_case("filename*") {
            extended = extended.or_else(|| decode_ext_value(&value));
        } else if name.eq_ignore_ascii_case("filename") {
            plain = plain.or(Some(value));
        }
    }
    extended
        .or(plain)
        .filter(|name: &String| !name.trim().is_empty())
}

/// The `name=value` parameters after the disposition type; quoted values
/// are unquoted.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let Some((_, mut rest)) = value.split_once(';') else {
        return params;
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return params;
        }
        let name_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let name = rest[..name_end].trim().to_owned();
        rest = &rest[name_end..];
        let Some(after_equals) = rest.strip_prefix('=') else {
            // A parameter without a value.
            continue;
        };
        let after_equals = after_equals.trim_start();
        let (value, remainder) = if let Some(quoted) = after_equals.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((index, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = index + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after_equals.find(';').unwrap_or(after_equals.len());
            (after_equals[..end].trim().to_owned(), &after_equals[end..])
        };
        params.push((name, value));
        rest = remainder;
    }
}

/// Decodes an RFC 5987 `charset'language'percent-encoded` value.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?.trim();
    let _language = parts.next()?;
    let encoded = parts.next()?;
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&byte| char::from(byte)).collect())
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(address: &str) -> bool {
        is_private_or_local(address.parse().expect("an IP address"))
    }

    #[test]
    fn the_minimum_rate_is_judged_after_the_grace_only() {
        let settings = FetchSettings {
            min_bytes_per_second: 1000,
            min_rate_grace: Duration::from_secs(10),
            ..FetchSettings::default()
        };
        // Within the grace: anything goes.
        assert!(!too_slow(0, Duration::from_secs(10), &settings));
        // After it: exactly the minimum is kept, one byte less is cut.
        assert!(!too_slow(20_000, Duration::from_secs(20), &settings));
        assert!(too_slow(19_999, Duration::from_secs(20), &settings));
        assert!(too_slow(0, Duration::from_millis(10_001), &settings));
        // 0 turns the check off.
        let off = FetchSettings {
            min_bytes_per_second: 0,
            ..settings
        };
        assert!(!too_slow(0, Duration::from_secs(3600), &off));
    }

    #[test]
    fn refuses_every_non_public_ipv4_range() {
        for address in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(forbidden(address), "{address} should be refused");
        }
    }

    #[test]
    fn allows_public_ipv4_including_range_neighbours() {
        for address in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.167.1.1",
            "192.169.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "203.0.114.1",
            "223.255.255.255",
        ] {
            assert!(!forbidden(address), "{address} should be allowed");
        }
    }

    #[test]
    fn refuses_every_non_public_ipv6_range() {
        for address in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "2001::1",
            "2001:1ff::1",
            "2001:db8::1",
            "3fff::1",
            "3fff:fff::1",
            "64:ff9b:1::1",
            "::ffff:0:7f00:1",
            "4000::1",
            "e000::1",
        ] {
            assert!(forbidden(address), "{address} should be refused");
        }
    }

    #[test]
    fn judges_ipv6_forms_of_ipv4_by_the_embedded_address() {
        for address in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.1.1",
            "::ffff:100.64.0.1",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
            "::127.0.0.1",
            "::10.1.2.3",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(forbidden(address), "{address} should be refused");
        }
        for address in [
            "::ffff:93.184.216.34",
            "::93.184.216.34",
            "64:ff9b::93.184.216.34",
            "2002:5db8:d822::1",
        ] {
            assert!(!forbidden(address), "{address} should be allowed");
        }
    }

    #[test]
    fn allows_public_ipv6() {
        for address in [
            "2606:4700::1111",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2a00:1450:4001::1",
            "3ffe::1",
            "3fff:1000::1",
            "2001:db9::1",
        ] {
            assert!(!forbidden(address), "{address} should be allowed");
        }
    }

    #[test]
    fn resolved_addresses_are_refused_if_any_is_forbidden() {
        let public: SocketAddr = "93.184.216.34:0".parse().expect("address");
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:0".parse().expect("address");
        assert_eq!(
            check_resolved("example.com", vec![public]),
            Ok(vec![public])
        );
        assert_eq!(
            check_resolved("evil.test", vec![public, loopback]),
            Err(GuardError::Refused(
                "evil.test resolves to a private or local address (127.0.0.1)".to_owned()
            ))
        );
        assert_eq!(
            check_resolved("evil.test", vec![mapped, public]),
            Err(GuardError::Refused(
                "evil.test resolves to a private or local address (::ffff:127.0.0.1)".to_owned()
            ))
        );
        assert!(matches!(
            check_resolved("void.test", Vec::new()),
            Err(GuardError::NoAddress(_))
        ));
    }

    #[test]
    fn redirects_are_limited_and_checked() {
        let url = |raw: &str| Url::parse(raw).expect("a URL");
        let public = url("https://example.com/a");
        // `previous` counts the first request: the fifth redirect has 5.
        assert_eq!(check_redirect(&public, 5, 5, false), Ok(()));
        assert!(matches!(
            check_redirect(&public, 6, 5, false),
            Err(GuardError::TooManyRedirects { max: 5, .. })
        ));
        assert!(matches!(
            check_redirect(&url("ftp://example.com/a"), 1, 5, true),
            Err(GuardError::Refused(_))
        ));
        assert!(matches!(
            check_redirect(&url("file:///etc/passwd"), 1, 5, true),
            Err(GuardError::Refused(_))
        ));
        for target in [
            "http://127.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://0x7f.1/",
            "http://2130706433/",
        ] {
            assert!(
                matches!(
                    check_redirect(&url(target), 1, 5, false),
                    Err(GuardError::Refused(_))
                ),
                "{target} should be refused"
            );
            assert_eq!(check_redirect(&url(target), 1, 5, true), Ok(()));
        }
        assert_eq!(
            check_redirect(&url("http://93.184.216.34/x"), 1, 5, false),
            Ok(())
        );
        assert_eq!(
            check_redirect(&url("http://[2606:4700::1111]/x"), 1, 5, false),
            Ok(())
        );
        // Names are left to the resolver.
        assert_eq!(
            check_redirect(&url("http://localhost/x"), 1, 5, false),
            Ok(())
        );
    }

    #[test]
    fn guard_errors_map_to_fetch_errors() {
        assert_eq!(
            GuardError::Refused("no".to_owned()).into_fetch_error(),
            FetchError::NotAllowed {
                detail: "no".to_owned()
            }
        );
        assert_eq!(
            GuardError::NoAddress("void.test resolves to no address".to_owned()).into_fetch_error(),
            FetchError::NoAnswer {
                detail: "void.test resolves to no address".to_owned()
            }
        );
        assert_eq!(
            GuardError::TooManyRedirects {
                max: 5,
                url: "http://a/".to_owned()
            }
            .into_fetch_error(),
            FetchError::TooManyRedirects {
                detail: "too many redirects (more than 5) at http://a/".to_owned()
            }
        );
    }

    #[test]
    fn what_a_user_reads_names_no_host_address_or_cause() {
        let cases = [
            (
                FetchError::NotAllowed {
                    detail: "intranet.corp resolves to a private or local address (10.1.2.3)"
                        .to_owned(),
                },
                "the address is not allowed",
            ),
            (
                FetchError::NoAnswer {
                    detail: "fetching http://db.internal:5432/: error trying to connect: \
                             dns error: failed to lookup address information"
                        .to_owned(),
                },
                "the server did not answer",
            ),
            (
                FetchError::Status {
                    status: 404,
                    detail: "HTTP 404 from http://files.internal/x".to_owned(),
                },
                "the server answered with an error (HTTP 404)",
            ),
            (
                FetchError::TooManyRedirects {
                    detail: "too many redirects (more than 5) at http://a.internal/".to_owned(),
                },
                "the server redirected too many times",
            ),
            (
                FetchError::CutOff {
                    detail: "reading the body of http://10.0.0.1/ failed: reset".to_owned(),
                },
                "the download was cut off",
            ),
            (
                FetchError::Upload(autodocs_domain::ports::UploadError::TooLarge { limit: 10 }),
                "the file is too large",
            ),
        ];
        for (error, shown) in cases {
            assert_eq!(error.to_string(), shown);
            if !matches!(error, FetchError::Upload(_)) {
                assert!(!error.detail().is_empty());
                assert!(!shown.contains(&error.detail()));
            }
        }
    }

    #[test]
    fn filename_comes_from_content_disposition() {
        let cases = [
            ("attachment; filename=\"report.pdf\"", Some("report.pdf")),
            ("attachment; filename=report.pdf", Some("report.pdf")),
            (
                "ATTACHMENT; FILENAME = report.pdf ; size=3",
                Some("report.pdf"),
            ),
            (
                "attachment; filename=\"a \\\"quoted\\\"; name.pdf\"",
                Some("a \"quoted\"; name.pdf"),
            ),
            (
                "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
                Some("résumé.pdf"),
            ),
            (
                "attachment; filename*=iso-8859-1'en'%E9t%E9.txt",
                Some("été.txt"),
            ),
            (
                "attachment; filename*=broken; filename=ok.txt",
                Some("ok.txt"),
            ),
            ("inline", None),
            ("attachment; filename=\"\"", None),
            ("attachment; flag; other=1", None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                content_disposition_filename(header).as_deref(),
                expected,
                "{header}"
            );
        }
    }

    #[test]
    fn filename_falls_back_to_the_url_then_a_default() {
        let headers = HeaderMap::new();
        let name = |raw: &str| suggested_filename(&headers, &Url::parse(raw).expect("a URL"));
        assert_eq!(
            name("https://example.com/files/tax%20form.pdf"),
            "tax form.pdf"
        );
        assert_eq!(name("https://example.com/files/statement/"), "statement");
        assert_eq!(name("https://example.com/a.pdf?x=1#y"), "a.pdf");
        assert_eq!(name("https://example.com/"), DEFAULT_FILENAME);
        assert_eq!(name("https://example.com"), DEFAULT_FILENAME);

        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_DISPOSITION,
            "attachment; filename=\"w2.pdf\""
                .parse()
                .expect("a header value"),
        );
        assert_eq!(
            suggested_filename(
                &headers,
                &Url::parse("https://example.com/x.bin").expect("URL")
            ),
            "w2.pdf"
        );
    }

    #[test]
    fn default_settings() {
        let settings = FetchSettings::default();
        assert!(!settings.allow_private_networks);
        assert_eq!(settings.connect_timeout, Duration::from_secs(10));
        assert_eq!(settings.total_timeout, Duration::from_secs(60));
        assert_eq!(settings.max_redirects, 5);
        assert!(settings.user_agent.starts_with("autodocs/"));
    }
}
