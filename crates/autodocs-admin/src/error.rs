//! How an admin page fails: as a page a person reads, never as JSON.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use autodocs_domain::{Error, RepoError};
use autodocs_http::error::ApiError;

use crate::pages;

/// The failures of an admin page.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No live staff session: to the login page, then back to this path.
    #[error("login required")]
    LoginRequired(Option<String>),
    /// A form without this session's CSRF token (or, at login, without the
    /// `csrftoken` cookie's): nothing was changed.
    #[error("CSRF verification failed. Request aborted.")]
    CsrfFailed,
    /// No such page or object.
    #[error("not found")]
    NotFound,
    /// Too many attempts: try again in this many seconds.
    #[error("too many attempts")]
    Throttled(u64),
    /// The database or a queue is busy or away: try again in this many seconds.
    #[error("temporarily unavailable")]
    Unavailable(u64),
    /// Anything else: logged, shown as a plain server error.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ApiError> for AdminError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Throttled(seconds) => AdminError::Throttled(seconds),
            ApiError::QueueFull(seconds) => AdminError::Unavailable(seconds),
            ApiError::Domain(Error::Repository(RepoError::Unavailable(_))) => {
                AdminError::Unavailable(1)
            }
            // A page past the end of a list (an old link) is not found.
            ApiError::NotFound
            | ApiError::InvalidPage
            | ApiError::Domain(Error::NotFound | Error::PastEnd(_)) => AdminError::NotFound,
            other => AdminError::Internal(other.to_string()),
        }
    }
}

/// Where the login page may send the browser back to: an admin path of
/// this site, nothing else (no open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with("/admin/")
                && !path.starts_with("/admin/login/")
                && !path.contains("//")
                && !path.contains('\\')
                && path.bytes().all(|byte| byte.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/admin/",
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::LoginRequired(_) => StatusCode::FOUND,
            AdminError::CsrfFailed => StatusCode::FORBIDDEN,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let (title, message) = match self {
            AdminError::LoginRequired(next) => {
                let target = format!(
                    "/admin/login/?next={}",
                    pages::query_escape(safe_next(next.as_deref()))
                );
                return response.insert_header((header::LOCATION, target)).finish();
            }
            AdminError::CsrfFailed => (
                "Forbidden (403)",
                "CSRF verification failed. Request aborted. Reload the page and submit the form again.",
            ),
            AdminError::NotFound => ("Page not found", "The page or the object does not exist."),
            AdminError::Throttled(seconds) | AdminError::Unavailable(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
                if matches!(self, AdminError::Throttled(_)) {
                    (
                        "Too many attempts",
                        "Too many attempts. Wait a moment and try again.",
                    )
                } else {
                    (
                        "Service unavailable",
                        "The service is busy. Wait a moment and try again.",
                    )
                }
            }
            AdminError::Internal(detail) => {
                tracing::error!(%detail, "an admin page failed");
                (
                    "Server error",
                    "Something went wrong on the server. It has been logged.",
                )
            }
        };
        response
            .content_type("text/html; charset=utf-8")
            .body(pages::error_page(title, message).into_string())
    }
}
