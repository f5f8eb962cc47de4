//! Cross-cutting request handling: the request span and access log (on
//! tracing-actix-web's `TracingLogger`), request ids, safe 500 bodies and
//! security headers.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};
use serde_json::json;
use tracing::Span;
use tracing_actix_web::{RootSpanBuilder, TracingLogger};

/// The header carrying the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// What a request's access line reports besides its status, taken as it
/// arrives (the path as sent, before trailing-slash normalisation).
#[derive(Debug, Clone)]
struct Arrival {
    method: Method,
    target: String,
    at: Instant,
}

/// The root span of every request and its access line, for
/// tracing-actix-web's [`TracingLogger`] (the outermost middleware).
///
/// The span is `request{request_id, http.method, http.route}`: lines logged
/// while the request is handled carry it, on the event loop (the logger
/// enters it for each poll, never across an `.await`, so another request's
/// lines on the same thread never carry this id) and, through
/// [`crate::lane`], on the database lane, the blocking pool and the hashing
/// threads. `http.status_code` is recorded once the answer is known.
pub struct RequestSpan;

/// The middleware that opens the request span and writes the access line.
pub fn request_tracing() -> TracingLogger<RequestSpan> {
    TracingLogger::new()
}

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .filter(|value| acceptable(value))
            .map(str::to_owned)
            .unwrap_or_else(|| generated_id(request));
        let route = request.match_pattern();
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            http.method = %request.method(),
            http.route = route.as_deref().map(tracing::field::display),
            http.status_code = tracing::field::Empty,
        );
        let arrival = Arrival {
            method: request.method().clone(),
            target: logged_target(request.path(), request.query_string()),
            at: Instant::now(),
        };
        let mut extensions = request.extensions_mut();
        extensions.insert(RequestId(id));
        extensions.insert(arrival);
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, arrival, route) = match outcome {
            Ok(response) => (
                response.status(),
                response.request().extensions().get::<Arrival>().cloned(),
                // After routing (and the trailing slash added): the template.
                response.request().match_pattern(),
            ),
            Err(error) => (
                error.as_response_error().status_code(),
                error
                    .as_error::<Unanswered>()
                    .map(|unanswered| unanswered.arrival.clone()),
                None,
            ),
        };
        if let Some(arrival) = &arrival {
            crate::metrics::metrics().observe_request(
                arrival.method.as_str(),
                route.as_deref().unwrap_or(crate::metrics::UNMATCHED_ROUTE),
                status.as_u16(),
                arrival.at.elapsed().as_secs_f64(),
            );
        }
        span.in_scope(|| {
            tracing::info!(
                target: "autodocs::access",
                method = arrival.as_ref().map(|a| tracing::field::display(&a.method)),
                path = arrival.as_ref().map(|a| tracing::field::display(&a.target)),
                status = status.as_u16(),
                // Whole microseconds: `1.107`, not `1.1067900000000002`.
                latency_ms = arrival
                    .as_ref()
                    .map(|a| a.at.elapsed().as_micros() as f64 / 1000.0),
                "access"
            );
        });
        // After the access line, whose status is its own field.
        span.record("http.status_code", status.as_u16());
    }
}

/// A new request id: the one tracing-actix-web made for this request, in
/// the same form as ever (32 hex digits).
fn generated_id(request: &ServiceRequest) -> String {
    let made = request
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| **id);
    made.unwrap_or_else(uuid::Uuid::new_v4).simple().to_string()
}

/// The path and query as an access log shows them: a signed download
/// link's token (`?link=`) is a credential, so its value is replaced.
fn logged_target(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            // A percent-encoded name may decode to `link`: redacted too.
            Some((name, _)) if name == "link" || name.contains('%') => {
                format!("{name}=[redacted]")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", redacted.join("&"))
}

/// Echoes `X-Request-Id` (the id [`RequestSpan`] settled on) on every
/// answer, and replaces the body of every 500 with the contract's
/// `{"detail": "Internal server error.", "request_id"}`. Runs inside
/// [`request_tracing`] and [`security_headers`].
pub async fn request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let (id, arrival) = {
        let extensions = request.extensions();
        (
            extensions.get::<RequestId>().map(|id| id.0.clone()),
            extensions.get::<Arrival>().cloned(),
        )
    };
    // Only without the request span (a test app without it) is there none.
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    match next.call(request).await {
        Ok(response) => {
            let (request, response) = response.map_into_boxed_body().into_parts();
            let response = with_request_id(&id, response);
            Ok(ServiceResponse::new(request, response))
        }
        // An error an inner middleware returns instead of a response is
        // rendered by actix after every middleware: the same finishing
        // touches are added to it as a response mapper, and it takes along
        // what its access line needs (the request went with the error).
        Err(error) => {
            let mut error = match arrival {
                Some(arrival) => Error::from(Unanswered { error, arrival }),
                None => error,
            };
            error.add_response_mapper(move |response| with_request_id(&id, response));
            Err(error)
        }
    }
}

/// An error an inner service returned instead of a response, with the
/// request's [`Arrival`] for its access line; answers as the error does.
#[derive(Debug)]
struct Unanswered {
    error: Error,
    arrival: Arrival,
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl ResponseError for Unanswered {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        self.error.error_response()
    }
}

/// Sets `X-Request-Id`, and makes a 500's body the contract's safe one.
fn with_request_id(id: &str, response: HttpResponse) -> HttpResponse {
    let mut response = if response.status() == StatusCode::INTERNAL_SERVER_ERROR {
        HttpResponse::InternalServerError()
            .json(json!({"detail": "Internal server error.", "request_id": id}))
    } else {
        response
    };
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The security headers every response carries (API.md, "Operations").
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    /// Whether to send `Strict-Transport-Security`: only when clients reach
    /// the server over https (an HSTS header over plain http is ignored by
    /// browsers, and on a local http server it would pin a name to https).
    pub strict_transport_security: bool,
}

impl SecurityHeaders {
    /// The headers for a server whose public URL is `public_url`.
    pub fn for_public_url(public_url: &str) -> Self {
        let https = public_url
            .trim()
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        Self {
            strict_transport_security: https,
        }
    }
}

const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Adds the security headers to every response (replacing, never
/// duplicating, one a route set itself), and renders a refused CORS
/// request, which actix-cors answers in plain text, as the contract's
/// `{"detail": ...}` with actix-cors's status. Errors the inner services
/// return instead of a response are rendered here, so that they get the
/// headers too.
pub async fn security_headers(
    policy: SecurityHeaders,
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    match next.call(request).await {
        Ok(response) => {
            let (request, response) = response.into_parts();
            Ok(ServiceResponse::new(
                request,
                secured(policy, response.map_into_boxed_body()),
            ))
        }
        Err(mut error) => {
            error.add_response_mapper(move |response| secured(policy, response));
            Err(error)
        }
    }
}

fn secured(policy: SecurityHeaders, response: HttpResponse) -> HttpResponse {
    let mut response = match response
        .error()
        .and_then(|error| error.as_error::<actix_cors::CorsError>())
    {
        Some(refusal) => {
            let mut json =
                HttpResponse::build(response.status()).json(json!({"detail": refusal.to_string()}));
            // Keep what actix-cors said besides its body (`Vary: Origin`).
            for (name, value) in response.headers() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    json.headers_mut().append(name.clone(), value.clone());
                }
            }
            json
        }
        None => response,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if policy.strict_transport_security {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::SecurityHeaders;

    #[test]
    fn hsts_only_for_https_public_urls() {
        for (url, hsts) in [
            ("https://docs.example.com", true),
            ("HTTPS://docs.example.com/", true),
            (" https://x", true),
            ("http://docs.example.com", false),
            ("", false),
            ("https:/", false),
        ] {
            assert_eq!(
                SecurityHeaders::for_public_url(url).strict_transport_security,
                hsts,
                "{url:?}"
            );
        }
    }
}

#[cfg(test)]
mod access_log_tests {
    use super::logged_target;

    #[test]
    fn link_tokens_never_reach_the_log() {
        assert_eq!(logged_target("/api/health/", ""), "/api/health/");
        assert_eq!(
            logged_target("/api/documents/1/download/", "link=s3cr3t.tok&x=1"),
            "/api/documents/1/download/?link=[redacted]&x=1"
        );
        assert_eq!(
            logged_target("/a/", "status=pending&link=abc&link=def"),
            "/a/?status=pending&link=[redacted]&link=[redacted]"
        );
        assert_eq!(logged_target("/a/", "linkage=1"), "/a/?linkage=1");
        assert_eq!(logged_target("/a/", "lin%6B=abc"), "/a/?lin%6B=[redacted]");
    }
}

#[cfg(test)]
mod request_span_tests {
    use std::sync::{Arc, Mutex};

    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};

    use super::*;

    /// Everything the test subscriber formats, in text without colours.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// An inner middleware that refuses `/refused/` with an error instead
    /// of a response, as a middleware using `?` would.
    async fn refusing(
        request: ServiceRequest,
        next: Next<impl MessageBody + 'static>,
    ) -> Result<ServiceResponse<impl MessageBody>, Error> {
        if request.path() == "/refused/" {
            return Err(actix_web::error::ErrorForbidden("refused"));
        }
        next.call(request).await
    }

    #[actix_web::test]
    async fn one_access_line_per_request_in_its_span() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = test::init_service(
            App::new()
                .route(
                    "/hello/",
                    web::get().to(|| async {
                        tracing::info!("handling");
                        HttpResponse::Ok().finish()
                    }),
                )
                .route(
                    "/boom/",
                    web::get()
                        .to(|| async { HttpResponse::InternalServerError().body("a secret") }),
                )
                .wrap(from_fn(refusing))
                .wrap(from_fn(request_id))
                .wrap(request_tracing()),
        )
        .await;

        let hello = test::TestRequest::get()
            .uri("/hello/?link=s3cr3t&x=1")
            .insert_header((REQUEST_ID, "r-1"))
            .to_request();
        let response = test::call_service(&app, hello).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get(&REQUEST_ID).map(|v| v.as_bytes()),
            Some(&b"r-1"[..])
        );
        let boom = test::TestRequest::get()
            .uri("/boom/")
            .insert_header((REQUEST_ID, "r-2"))
            .to_request();
        let response = test::call_service(&app, boom).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = test::read_body(response).await;
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).ok(),
            Some(json!({"detail": "Internal server error.", "request_id": "r-2"}))
        );
        // An error instead of a response: rendered by actix, id and all.
        let refused = test::TestRequest::post()
            .uri("/refused/")
            .insert_header((REQUEST_ID, "r-3"))
            .to_request();
        let response = match test::try_call_service(&app, refused).await {
            Ok(response) => response.into_parts().1.map_into_boxed_body(),
            Err(error) => error.error_response(),
        };
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers().get(&REQUEST_ID).map(|v| v.as_bytes()),
            Some(&b"r-3"[..])
        );
        // Not an acceptable id (a space): a new one.
        let odd = test::TestRequest::get()
            .uri("/hello/")
            .insert_header((REQUEST_ID, "a b"))
            .to_request();
        let response = test::call_service(&app, odd).await;
        let made = response
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(
            made.len() == 32 && made.bytes().all(|b| b.is_ascii_hexdigit()),
            "{made:?}"
        );

        let lines = captured.lines();
        let access: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("autodocs::access"))
            .collect();
        assert_eq!(access.len(), 4, "one access line per request: {lines:#?}");
        let made = format!("request_id={made}");
        let expect = [
            (
                "request_id=r-1",
                "method=GET path=/hello/?link=[redacted]&x=1 status=200",
            ),
            ("request_id=r-2", "method=GET path=/boom/ status=500"),
            ("request_id=r-3", "method=POST path=/refused/ status=403"),
            (made.as_str(), "method=GET path=/hello/ status=200"),
        ];
        for (line, (id, fields)) in access.iter().zip(expect) {
            assert!(line.contains(id) && line.contains(fields), "{line}");
            assert!(
                line.contains(" INFO ") && line.contains("latency_ms="),
                "{line}"
            );
        }
        let handling: Vec<&String> = lines.iter().filter(|l| l.contains("handling")).collect();
        assert_eq!(handling.len(), 2, "{lines:#?}");
        assert!(handling[0].contains("request_id=r-1"), "{}", handling[0]);
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("s3cr3t") || l.contains("a secret")),
            "{lines:#?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains('\u{1b}')),
            "no colour codes"
        );
    }
}
