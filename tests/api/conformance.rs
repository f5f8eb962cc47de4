//! Schema conformance: every HTTP response the black-box suite receives is
//! checked against the server's own OpenAPI document (`GET /api/schema/`),
//! so the document the frontend generates its client from cannot drift from
//! what the server really answers (issue 13, item 2).
//!
//! The harness calls [`check_response`] for every response it reads; a
//! response the document does not describe fails the test that saw it, with
//! the method, path, status, the JSON pointer that failed and the body.
//!
//! What is checked, for a request to an `/api/` path:
//! - the operation (method + path template) is documented; a request no
//!   operation matches may only have been answered 404 or 405 with the
//!   contract's JSON error (tests probe unknown routes on purpose);
//! - the status is documented for that operation (`"404"`, `"4XX"` or
//!   `"default"`);
//! - a body comes with a content type the response lists; a JSON body
//!   validates against that media type's schema (JSON Schema 2020-12, the
//!   dialect of OpenAPI 3.1, `$ref`s resolved inside the document, formats
//!   such as `date-time` asserted).
//!
//! `/ws/`, `/metrics`, `/admin/` and `/static/` are not in the OpenAPI
//! document and are not checked.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use jsonschema::Validator;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::harness::{Backend, TestApp};

/// Whether a gap in the document (an undocumented operation, status, or a
/// response documented without content) fails the test; otherwise it is only
/// recorded and printed. A response that contradicts the document (body not
/// matching its schema, a content type other than the listed ones, invalid
/// JSON, a missing body) always fails. On: the whole suite runs with no gap.
pub const STRICT_STATUS: bool = true;

/// When set, every failure is also appended to this file as a JSON line
/// (kind, method, path, status, detail), so one run of the suite can be
/// summarised: `jq -r .kind FILE | sort | uniq -c`.
pub const REPORT_ENV: &str = "AUTODOCS_CONFORMANCE_REPORT";

/// How much of a body a failure message shows.
const MAX_BODY_IN_MESSAGE: usize = 1500;

/// How many validation errors a failure message lists.
const MAX_ERRORS_IN_MESSAGE: usize = 8;

// ---------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------

/// Why a response does not conform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// No operation in the document for this method and path, and the
    /// answer was not a 404/405 contract error.
    UndocumentedOperation,
    /// The operation does not list this status (nor a range nor `default`).
    UndocumentedStatus,
    /// A body where the response documents no content at all (a gap in the
    /// document, like an undocumented status).
    UndocumentedContent,
    /// A body whose content type is not among those the response lists.
    UndocumentedContentType,
    /// An empty body where the response documents content.
    MissingBody,
    /// A JSON content type whose body does not parse.
    InvalidJson,
    /// The JSON body does not match the documented schema.
    BodyMismatch,
    /// The document itself is broken at this response (unresolvable `$ref`,
    /// schema that does not compile).
    BrokenSchema,
}

impl Kind {
    /// Whether this kind fails the test (see [`STRICT_STATUS`]).
    pub fn fails_test(self) -> bool {
        match self {
            Kind::UndocumentedOperation | Kind::UndocumentedStatus | Kind::UndocumentedContent => {
                STRICT_STATUS
            }
            _ => true,
        }
    }
}

/// One response that does not conform.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: Kind,
    pub method: String,
    /// The request path as sent (query included).
    pub path: String,
    pub status: u16,
    /// What exactly is wrong (for a body mismatch: pointer and error per line).
    pub detail: String,
    /// The response body, truncated.
    pub body: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OpenAPI conformance: {:?}: {} {} -> {}\n{}\nbody: {}",
            self.kind, self.method, self.path, self.status, self.detail, self.body
        )
    }
}

/// A response that passed, and how much of it could be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checked {
    /// Not an `/api/` path (or a CORS preflight): not in the document.
    Skipped,
    /// No operation matches; a 404/405 contract error, which is allowed.
    Unrouted,
    /// Documented status without a body (or HEAD).
    NoBody,
    /// Documented JSON content type, but the media type has no schema.
    NoSchema,
    /// A JSON body validated against its schema.
    Validated,
    /// A documented non-JSON content type (downloads, HTML).
    NonJson,
}

/// The parts of an exchange the checker looks at.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub method: &'a Method,
    /// The URL (absolute or a path), query included.
    pub url: &'a str,
    pub status: u16,
    /// The response's `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

// ---------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}` possibly with a literal prefix/suffix inside the segment.
    Param {
        prefix: String,
        suffix: String,
    },
}

impl Segment {
    fn parse(segment: &str) -> Segment {
        match (segment.find('{'), segment.rfind('}')) {
            (Some(open), Some(close)) if open < close => Segment::Param {
                prefix: segment[..open].to_owned(),
                suffix: segment[close + 1..].to_owned(),
            },
            _ => Segment::Literal(segment.to_owned()),
        }
    }

    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Literal(literal) => literal == segment,
            Segment::Param { prefix, suffix } => {
                segment.len() > prefix.len() + suffix.len()
                    && segment.starts_with(prefix.as_str())
                    && segment.ends_with(suffix.as_str())
            }
        }
    }
}

/// A key of the document's `paths`, split for matching.
#[derive(Debug, Clone)]
struct Template {
    key: String,
    segments: Vec<Segment>,
}

/// A loaded OpenAPI document with its compiled validators.
pub struct Spec {
    doc: Value,
    templates: Vec<Template>,
    /// Compiled validators by the JSON pointer of their schema; compiled on
    /// first use, shared by every test in the process.
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Spec {
    /// Wraps an OpenAPI 3.1 document.
    pub fn new(doc: Value) -> Spec {
        let templates = doc
            .get("paths")
            .and_then(Value::as_object)
            .map(|paths| {
                paths
                    .keys()
                    .map(|key| Template {
                        key: key.clone(),
                        segments: split(key).into_iter().map(Segment::parse).collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Spec {
            doc,
            templates,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The `paths` key a request path is served by: templates match segment
    /// by segment, and where several match, a literal segment wins over a
    /// parameter at the first place they differ (`/api/users/me/` is not
    /// `/api/users/{id}/`), as OpenAPI prescribes.
    fn template_for(&self, path: &str) -> Option<&Template> {
        let segments = split(path);
        self.templates
            .iter()
            .filter(|t| {
                t.segments.len() == segments.len()
                    && t.segments.iter().zip(&segments).all(|(t, s)| t.matches(s))
            })
            .max_by_key(|t| {
                t.segments
                    .iter()
                    .map(|s| matches!(s, Segment::Literal(_)))
                    .collect::<Vec<bool>>()
            })
    }

    /// Follows `$ref`s (local ones, `#/...`) from `pointer`; returns the
    /// pointer and value of the target.
    fn resolve(&self, mut pointer: String) -> Result<(String, &Value), String> {
        for _ in 0..16 {
            let value = self
                .doc
                .pointer(&pointer)
                .ok_or_else(|| format!("nothing at #{pointer}"))?;
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    pointer =
                        percent_decode(reference.strip_prefix('#').ok_or_else(|| {
                            format!("non-local $ref {reference:?} at #{pointer}")
                        })?);
                }
                None => return Ok((pointer, value)),
            }
        }
        Err(format!("$ref chain too long at #{pointer}"))
    }

    /// The compiled validator for the schema at `pointer`: the whole document
    /// as the root (so `$ref`s resolve inside it; 2020-12 ignores the
    /// OpenAPI keywords beside them) with a `$ref` to the schema.
    fn validator(&self, pointer: &str) -> Result<Arc<Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(validator) = cache.get(pointer) {
            return Ok(Arc::clone(validator));
        }
        let mut root: Map<String, Value> = self.doc.as_object().cloned().unwrap_or_default();
        root.insert(
            "$schema".to_owned(),
            Value::from("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert(
            "$ref".to_owned(),
            Value::from(format!("#{}", uri_fragment(pointer))),
        );
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .map_err(|e| format!("the schema at #{pointer} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(pointer.to_owned(), Arc::clone(&validator));
        Ok(validator)
    }

    /// Checks one exchange against the document.
    pub fn check(&self, exchange: &Exchange<'_>) -> Result<Checked, Failure> {
        let Exchange {
            method,
            url,
            status,
            content_type,
            body,
        } = *exchange;
        let fail = |kind: Kind, detail: String| Failure {
            kind,
            method: method.to_string(),
            path: path_and_query(url),
            status,
            detail,
            body: truncate(&String::from_utf8_lossy(body), MAX_BODY_IN_MESSAGE),
        };

        let path = normalize(request_path(url));
        if !path.starts_with("/api/") {
            return Ok(Checked::Skipped);
        }
        // OPTIONS is CORS preflight, answered (or refused) by the middleware
        // for any path; it is not an operation of the API.
        if method == Method::OPTIONS {
            return Ok(Checked::Skipped);
        }
        let head = method == Method::HEAD;
        let essence = content_type.map(media_essence);

        let operation = self.template_for(&path).and_then(|template| {
            let method_key = method.as_str().to_ascii_lowercase();
            self.doc["paths"][&template.key]
                .get(&method_key)
                .map(|_| (template, method_key))
        });
        let Some((template, method_key)) = operation else {
            let contract_error = head
                || (essence.as_deref().is_some_and(is_json)
                    && serde_json::from_slice::<Value>(body)
                        .is_ok_and(|v| v.get("detail").is_some_and(Value::is_string)));
            if matches!(status, 404 | 405) && contract_error {
                return Ok(Checked::Unrouted);
            }
            let why = match self.template_for(&path) {
                Some(t) => format!(
                    "the document has {} but no {} operation on it",
                    t.key, method
                ),
                None => "no path in the document matches".to_owned(),
            };
            return Err(fail(
                Kind::UndocumentedOperation,
                format!("{why} (only a 404/405 with a JSON {{\"detail\"}} may answer that)"),
            ));
        };

        let operation_pointer = format!("/paths/{}/{method_key}", escape(&template.key));
        let responses = &self.doc["paths"][&template.key][&method_key]["responses"];
        let Some(key) = response_key(responses, status) else {
            let listed: Vec<&String> = responses
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            return Err(fail(
                Kind::UndocumentedStatus,
                format!(
                    "{method} {} documents the statuses {listed:?}, not {status}",
                    template.key
                ),
            ));
        };
        let (response_pointer, response) = self
            .resolve(format!("{operation_pointer}/responses/{}", escape(&key)))
            .map_err(|e| fail(Kind::BrokenSchema, e))?;
        let content = response
            .get("content")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty());

        if head || status == StatusCode::NOT_MODIFIED.as_u16() {
            return Ok(Checked::NoBody);
        }
        if body.is_empty() {
            return match content {
                // An empty body with a JSON content type announced, or where
                // the response documents nothing but content, is a mismatch.
                Some(c)
                    if essence.as_deref().is_some_and(is_json) || !status_may_be_empty(status) =>
                {
                    Err(fail(
                        Kind::MissingBody,
                        format!(
                            "an empty body where {key} documents {:?}",
                            c.keys().collect::<Vec<_>>()
                        ),
                    ))
                }
                _ => Ok(Checked::NoBody),
            };
        }
        let essence = essence.unwrap_or_else(|| "application/octet-stream".to_owned());
        let Some(content) = content else {
            return Err(fail(
                Kind::UndocumentedContent,
                format!("a {essence} body where response {key} documents no content"),
            ));
        };
        let Some(media_key) = media_key(content, &essence) else {
            return Err(fail(
                Kind::UndocumentedContentType,
                format!(
                    "content type {essence} is not among {:?} documented for {key}",
                    content.keys().collect::<Vec<_>>()
                ),
            ));
        };
        if !is_json(&essence) {
            return Ok(Checked::NonJson);
        }
        let instance: Value = serde_json::from_slice(body).map_err(|e| {
            fail(
                Kind::InvalidJson,
                format!("Content-Type {essence} but the body is not JSON: {e}"),
            )
        })?;
        let media = &content[&media_key];
        if media.get("schema").is_none() {
            return Ok(Checked::NoSchema);
        }
        let schema_pointer = format!("{response_pointer}/content/{}/schema", escape(&media_key));
        let validator = self
            .validator(&schema_pointer)
            .map_err(|e| fail(Kind::BrokenSchema, e))?;
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(MAX_ERRORS_IN_MESSAGE)
            .map(|e| {
                format!(
                    "  at {:?} (schema {}): {}",
                    e.instance_path().as_str(),
                    e.schema_path().as_str(),
                    truncate(&e.to_string(), 300)
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(Checked::Validated)
        } else {
            Err(fail(
                Kind::BodyMismatch,
                format!(
                    "the body does not match #{schema_pointer}:\n{}",
                    errors.join("\n")
                ),
            ))
        }
    }
}

/// Statuses whose responses may legitimately come without a body even when
/// the document lists content for them (none do today; 204 never has one).
fn status_may_be_empty(status: u16) -> bool {
    status == 204
}

/// The `responses` key for a status: exact, then its range (`4XX`), then
/// `default`.
fn response_key(responses: &Value, status: u16) -> Option<String> {
    let responses = responses.as_object()?;
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    responses
        .keys()
        .find(|k| **k == exact)
        .or_else(|| responses.keys().find(|k| k.eq_ignore_ascii_case(&range)))
        .or_else(|| responses.keys().find(|k| *k == "default"))
        .cloned()
}

/// The `content` key a response content type falls under: exact, then
/// `type/*`, then `*/*`.
fn media_key(content: &Map<String, Value>, essence: &str) -> Option<String> {
    let wildcard = format!("{}/*", essence.split('/').next().unwrap_or_default());
    let keyed: Vec<(String, &String)> = content.keys().map(|k| (media_essence(k), k)).collect();
    [essence, wildcard.as_str(), "*/*"]
        .iter()
        .find_map(|want| keyed.iter().find(|(e, _)| e == want))
        .map(|(_, k)| (*k).clone())
}

/// `application/json; charset=utf-8` -> `application/json`.
fn media_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json")
}

/// The path of a URL or of a bare path, without query or fragment.
fn request_path(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => parsed.path().to_owned(),
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// Path and query, for messages.
fn path_and_query(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_owned(),
        },
        Err(_) => url.to_owned(),
    }
}

/// What the server's `NormalizePath(TrailingSlash::Always)` makes of a path:
/// runs of `/` merged, a trailing `/` added.
fn normalize(path: String) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The non-empty segments of a path.
fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// A JSON pointer as a URI fragment: path templates put `{` and `}` in
/// pointers, which a URI must percent-encode (RFC 6901, section 6).
fn uri_fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || b"/~-._!$&'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The inverse of `uri_fragment` for the `$ref`s the document holds.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

// ---------------------------------------------------------------------------
// The process-wide checker the harness calls
// ---------------------------------------------------------------------------

/// The server's document, fetched once per test process.
static SPEC: tokio::sync::OnceCell<Spec> = tokio::sync::OnceCell::const_new();

/// Every failure seen in this process (for a summary).
static FAILURES: Mutex<Vec<Failure>> = Mutex::new(Vec::new());

/// How many responses passed, by how much could be checked.
static CHECKED: Mutex<Vec<(Checked, u64)>> = Mutex::new(Vec::new());

/// The document, fetched from a server of its own: fetching it from the
/// server under test would show up in that server's throttle counters,
/// metrics and logs, which some tests count.
pub async fn spec() -> &'static Spec {
    SPEC.get_or_init(|| async {
        let app = TestApp::spawn(Backend::Sqlite).await;
        let url = app.url("/api/schema/");
        let response = app
            .client()
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", app.server_log()));
        let status = response.status();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"));
        assert_eq!(status, StatusCode::OK, "GET /api/schema/: {text}");
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET /api/schema/ is JSON ({e}): {text}"));
        Spec::new(doc)
    })
    .await
}

/// Checks a response the suite received; panics (failing the test that saw
/// it) when it does not conform, unless the kind is gated by
/// [`STRICT_STATUS`], in which case it is only recorded and printed.
pub async fn check_response(
    method: &Method,
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let exchange = Exchange {
        method,
        url,
        status: status.as_u16(),
        content_type,
        body,
    };
    let outcome = spec().await.check(&exchange);
    record(outcome);
}

/// Records an outcome; panics on a failure that fails tests.
fn record(outcome: Result<Checked, Failure>) {
    let failure = match outcome {
        Ok(checked) => {
            let mut counts = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
            match counts.iter_mut().find(|(c, _)| *c == checked) {
                Some((_, n)) => *n += 1,
                None => counts.push((checked, 1)),
            }
            return;
        }
        Err(failure) => failure,
    };
    FAILURES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(failure.clone());
    if let Some(path) = std::env::var_os(REPORT_ENV) {
        let line = serde_json::json!({
            "kind": format!("{:?}", failure.kind),
            "method": failure.method,
            "path": failure.path,
            "status": failure.status,
            "detail": failure.detail,
        });
        // One write per line: tests append from many threads at once.
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }
    if failure.kind.fails_test() {
        panic!("{failure}");
    }
    eprintln!(
        "{failure}\n(recorded, not failing: STRICT_STATUS is off; this process so far: {})",
        summary()
    );
}

/// A summary of this process's checks: passes by how much was checked,
/// failures by kind.
pub fn summary() -> String {
    let checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut kinds: HashMap<Kind, usize> = HashMap::new();
    for failure in FAILURES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        *kinds.entry(failure.kind).or_default() += 1;
    }
    let mut kinds: Vec<(Kind, usize)> = kinds.into_iter().collect();
    kinds.sort();
    format!("passed: {checked:?}; failed: {kinds:?}")
}

/// For the few tests that use the HTTP client directly (they need the raw
/// bytes or run requests in spawned tasks): reads the body and checks the
/// response like the harness does; returns status, headers and body.
pub async fn read_checked(
    method: &Method,
    url: &str,
    response: reqwest::Response,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"))
        .to_vec();
    check_response(method, url, status, &headers, &bytes).await;
    (status, headers, bytes)
}
