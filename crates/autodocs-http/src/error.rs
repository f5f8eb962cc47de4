//! The JSON error bodies of the contract, one type for every failure.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use autodocs_domain::document::AllowedContentType;
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use autodocs_domain::{Error, RepoError, TokenRefusal};
use serde_json::{Map, Value, json};

/// Seconds a client is asked to wait after a 503: the pool notices a
/// database that came back within about a second.
pub const RETRY_AFTER_UNAVAILABLE: &str = "2";

/// Every way a request can fail, rendered as the contract's JSON.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case failed.
    #[error(transparent)]
    Domain(#[from] Error),
    /// The body is not valid JSON.
    #[error("JSON parse error - {0}")]
    MalformedJson(String),
    /// The body has a content type the endpoint does not take.
    #[error("Unsupported media type \"{0}\" in request.")]
    UnsupportedMediaType(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// A multipart body that cannot be parsed (or was cut off).
    #[error("Multipart form parse error - {0}")]
    MalformedMultipart(String),
    /// Credentials the HTTP layer itself refuses (a malformed
    /// `Authorization` header, a socket whose user was revoked), worded as
    /// SimpleJWT words them.
    #[error("{0}")]
    CredentialsRefused(&'static str),
    /// No credentials were sent.
    #[error("Authentication credentials were not provided.")]
    NotAuthenticated,
    /// The route does not exist.
    #[error("Not found.")]
    NotFound,
    /// A page past the end.
    #[error("Invalid page.")]
    InvalidPage,
    /// The route exists but not with this method.
    #[error("Method \"{0}\" not allowed.")]
    MethodNotAllowed(String),
    /// A malformed request that has no field to blame.
    #[error("{0}")]
    BadRequest(String),
    /// Too many requests; try again in this many seconds.
    #[error("Request was throttled. Expected available in {0} seconds.")]
    Throttled(u64),
    /// A blocking task could not run (the pool shut down or the task panicked).
    #[error("internal error: {0}")]
    Internal(String),
    /// The request body stopped arriving for `server.body_timeout_seconds`.
    #[error("The request body stopped arriving; the request was cut off.")]
    RequestTimeout,
    /// A bounded queue (password hashing) is full; try again in this many seconds.
    #[error("Service temporarily unavailable.")]
    QueueFull(u64),
    /// A signed download link that is not valid or has expired.
    #[error(transparent)]
    Link(#[from] crate::links::LinkError),
}

/// Each service's error reaches the client as the [`Error`] it converts
/// into: one mapping to statuses and bodies for all of them.
macro_rules! from_service_error {
    ($($error:ident),+ $(,)?) => {
        $(impl From<autodocs_domain::$error> for ApiError {
            fn from(error: autodocs_domain::$error) -> Self {
                ApiError::Domain(error.into())
            }
        })+
    };
}

from_service_error!(
    MissionError,
    StepError,
    DocumentError,
    ActivityError,
    AccountError,
    EngineError,
    RepoError,
);

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Domain(Error::Validation(errors))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

/// The key DRF uses for errors that belong to no single field.
pub const NON_FIELD_ERRORS: &str = "non_field_errors";

/// Words a refusal as DRF (or Django, for the domain's own rules) does.
pub fn drf_message(error: &InvalidValue) -> String {
    match error {
        InvalidValue::Required => "This field is required.".to_owned(),
        InvalidValue::Null => "This field may not be null.".to_owned(),
        InvalidValue::Blank => "This field may not be blank.".to_owned(),
        InvalidValue::TooLong { max } => {
            format!("Ensure this field has no more than {max} characters.")
        }
        InvalidValue::InvalidChoice { value } => format!("\"{value}\" is not a valid choice."),
        InvalidValue::AtMost { max } => {
            format!("Ensure this value is less than or equal to {max}.")
        }
        InvalidValue::AtLeast { min } => {
            format!("Ensure this value is greater than or equal to {min}.")
        }
        InvalidValue::DoesNotExist { id } => {
            format!("Invalid pk \"{id}\" - object does not exist.")
        }
        InvalidValue::Rule { message, .. } => message.clone(),
    }
}

/// SimpleJWT's words for why a token was refused.
pub fn token_refusal_message(refusal: TokenRefusal) -> &'static str {
    match refusal {
        TokenRefusal::Expired => "Token is expired",
        TokenRefusal::WrongType => "Token has wrong type",
        TokenRefusal::Invalid => "Token is invalid",
        TokenRefusal::InvalidOrExpired => "Token is invalid or expired",
        TokenRefusal::Revoked => "Token is blacklisted",
        TokenRefusal::UserInactive => "User is inactive",
        TokenRefusal::UserNotFound => "User not found",
    }
}

/// SimpleJWT's 401 body for a refused token.
fn token_not_valid(reason: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"message": reason}],
    })
}

/// The 415 message for a file whose sniffed type is not allowed.
pub fn unsupported_file_type_message() -> String {
    let allowed: Vec<&str> = AllowedContentType::ALL
        .iter()
        .map(|kind| kind.mime())
        .collect();
    format!(
        "Unsupported file type: the content is not one of {}.",
        allowed.join(", ")
    )
}

fn drf_messages(errors: &[InvalidValue]) -> Value {
    Value::from(errors.iter().map(drf_message).collect::<Vec<_>>())
}

/// Renders validation errors as DRF does: `{"field": ["message", ...]}`,
/// request-wide errors under `non_field_errors`, and `a.b` keys nested as
/// `{"a": {"b": [...]}}`.
pub fn validation_body(errors: &ValidationErrors) -> Value {
    let mut body = Map::new();
    if !errors.general().is_empty() {
        body.insert(NON_FIELD_ERRORS.to_owned(), drf_messages(errors.general()));
    }
    for (field, refusals) in errors.fields() {
        let messages = drf_messages(refusals);
        match field.split_once('.') {
            Some((outer, inner)) => {
                let nested = body
                    .entry(outer.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(nested) = nested {
                    nested.insert(inner.to_owned(), messages);
                }
            }
            None => {
                body.insert(field.clone(), messages);
            }
        }
    }
    Value::Object(body)
}

impl ApiError {
    fn body(&self) -> Value {
        match self {
            ApiError::Domain(Error::Validation(errors)) => validation_body(errors),
            ApiError::Domain(Error::NotFound) | ApiError::NotFound => {
                json!({"detail": "Not found."})
            }
            ApiError::Domain(Error::InvalidTransition(error)) => {
                json!({"detail": error.to_string(), "code": "invalid_transition"})
            }
            ApiError::Domain(Error::AuthenticationFailed) => json!({
                "detail": "No active account found with the given credentials",
                "code": "authentication_failed",
            }),
            ApiError::Domain(Error::TokenInvalid(refusal)) => {
                token_not_valid(token_refusal_message(*refusal))
            }
            ApiError::CredentialsRefused(reason) => token_not_valid(reason),
            ApiError::Domain(Error::PermissionDenied) => {
                json!({"detail": "You do not have permission to perform this action."})
            }
            ApiError::Domain(Error::Repository(RepoError::Unavailable(_))) => {
                json!({"detail": "Service temporarily unavailable.", "code": "service_unavailable"})
            }
            ApiError::Domain(Error::Repository(_)) | ApiError::Internal(_) => {
                json!({"detail": "Internal server error."})
            }
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => {
                json!({"detail": self.to_string()})
            }
            ApiError::UnsupportedMediaType(_) => {
                json!({"detail": self.to_string(), "code": "unsupported_media_type"})
            }
            ApiError::TooLarge(detail) => json!({"detail": detail, "code": "file_too_large"}),
            ApiError::Domain(Error::UnsupportedFileType) => {
                json!({"detail": unsupported_file_type_message(), "code": "unsupported_file_type"})
            }
            ApiError::MalformedMultipart(_) => json!({"detail": self.to_string()}),
            ApiError::NotAuthenticated => {
                json!({"detail": self.to_string(), "code": "not_authenticated"})
            }
            ApiError::InvalidPage | ApiError::Domain(Error::PastEnd(_)) => {
                json!({"detail": "Invalid page."})
            }
            ApiError::MethodNotAllowed(_) | ApiError::Throttled(_) => {
                json!({"detail": self.to_string()})
            }
            ApiError::RequestTimeout => {
                json!({"detail": self.to_string(), "code": "request_timeout"})
            }
            ApiError::QueueFull(_) => {
                json!({"detail": self.to_string(), "code": "service_unavailable"})
            }
            ApiError::Link(error) => json!({"detail": error.to_string(), "code": error.code()}),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Domain(error) => match error {
                Error::Validation(_) => StatusCode::BAD_REQUEST,
                Error::NotFound | Error::PastEnd(_) => StatusCode::NOT_FOUND,
                Error::InvalidTransition(_) => StatusCode::CONFLICT,
                Error::AuthenticationFailed | Error::TokenInvalid(_) => StatusCode::UNAUTHORIZED,
                Error::PermissionDenied => StatusCode::FORBIDDEN,
                Error::UnsupportedFileType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Error::Repository(RepoError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
                Error::Repository(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MalformedMultipart(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAuthenticated | ApiError::CredentialsRefused(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NotFound | ApiError::InvalidPage => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::QueueFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Link(_) => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = HttpResponse::build(status);
        if let ApiError::Throttled(seconds) | ApiError::QueueFull(seconds) = self {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let ApiError::RequestTimeout = self {
            // The rest of the body may still come: the connection cannot be reused.
            response.insert_header((header::CONNECTION, HeaderValue::from_static("close")));
        }

        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            ));
        }
        let mut response = response.json(self.body());
        // Every 503 tells the client when to come back (unless its cause
        // already said so).
        if status == StatusCode::SERVICE_UNAVAILABLE
            && !response.headers().contains_key(header::RETRY_AFTER)
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE),
            );
        }
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn an_unreachable_database_is_a_503_with_retry_after() {
        let error = ApiError::Domain(Error::Repository(RepoError::Unavailable(
            "server closed the connection unexpectedly".into(),
        )));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE))
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        // No internals (the driver's message) leak.
        assert_eq!(
            body,
            json!({"detail": "Service temporarily unavailable.", "code": "service_unavailable"})
        );
    }

    #[test]
    fn the_unsupported_type_message_lists_the_allowed_types() {
        let message = unsupported_file_type_message();
        assert!(message.contains("application/pdf"));
        assert!(message.contains("application/vnd.oasis.opendocument.text"));
    }
}
