//! Cross-cutting request handling: request ids and safe 500 bodies.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse};
use serde_json::json;

/// The header carrying the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Echoes (or creates) `X-Request-Id`, and replaces the body of every 500
/// with the contract's `{"detail": "Internal server error.", "request_id"}`.
pub async fn request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| acceptable(value))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let method = request.method().clone();
    let target = logged_target(request.path(), request.query_string());
    let started = std::time::Instant::now();
    // The span goes with the future (not entered across `.await`), so lines
    // of other requests polled on this thread never carry this id.
    let outcome = tracing::Instrument::instrument(next.call(request), span.clone()).await;
    // An error an inner middleware returns instead of a response is
    // rendered by actix after every middleware: the same finishing touches
    // are added to it as a response mapper.
    let (status, outcome) = match outcome {
        Ok(response) => {
            let (request, response) = response.map_into_boxed_body().into_parts();
            let response = with_request_id(&id, response);
            (
                response.status(),
                Ok(ServiceResponse::new(request, response)),
            )
        }
        Err(mut error) => {
            let status = error.as_response_error().status_code();
            error.add_response_mapper(move |response| with_request_id(&id, response));
            (status, Err(error))
        }
    };
    span.in_scope(|| {
        tracing::info!(
            target: "autodocs::access",
            %method,
            path = %target,
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "access"
        );
    });
    outcome
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
