//! The errors a use case can end with.

use crate::mission::InvalidTransition;
use crate::validation::ValidationErrors;

/// A failure of the storage behind a port, translated by the adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    /// A unique constraint refused the write; the name says which.
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// A foreign key or check constraint refused the write.
    #[error("constraint violated: {0}")]
    ConstraintViolation(String),
    /// The database could not be reached or the pool was exhausted.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else the storage reported.
    #[error("storage error: {0}")]
    Other(String),
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Its signature and claims are fine, but it has expired.
    #[error("expired")]
    Expired,
    /// An access token where a refresh token is expected, or the reverse.
    #[error("wrong token type")]
    WrongType,
    /// Malformed, or not signed with this service's key.
    #[error("invalid")]
    Invalid,
    /// Not (or no longer) a refresh token this service issued and kept.
    #[error("invalid or expired")]
    InvalidOrExpired,
    /// Revoked: rotated, logged out, or revoked with every token of its user.
    #[error("revoked")]
    Revoked,
    /// Its user has been deactivated.
    #[error("user inactive")]
    UserInactive,
    /// Its user no longer exists.
    #[error("user not found")]
    UserNotFound,
}

/// How a use case can fail. The HTTP layer maps each variant to a status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input was refused, field by field (400).
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),
    /// The object does not exist or belongs to someone else (404).
    #[error("not found")]
    NotFound,
    /// The requested page of a list lies past its end (404).
    #[error(transparent)]
    PastEnd(#[from] crate::paging::PastEnd),
    /// A state machine refused the action (409).
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// Wrong credentials or an inactive account (401).
    #[error("no active account found with the given credentials")]
    AuthenticationFailed,
    /// A token that is malformed, expired, of the wrong type or revoked (401).
    #[error("token refused: {0}")]
    TokenInvalid(TokenRefusal),
    /// Authenticated, but not allowed to do this (403).
    #[error("permission denied")]
    PermissionDenied,
    /// An uploaded file's sniffed type is not one of
    /// [`AllowedContentType::ALL`](crate::document::AllowedContentType::ALL) (415).
    #[error("the file's content is not of an allowed type")]
    UnsupportedFileType,
    /// The storage failed (500, or 503 when unavailable).
    #[error(transparent)]
    Repository(#[from] RepoError),
}

impl Error {
    /// A validation error on a single field.
    pub fn field(field: &str, message: impl Into<crate::validation::InvalidValue>) -> Self {
        Error::Validation(ValidationErrors::single(field, message))
    }
}

/// The result of a use case.
pub type Result<T, E = Error> = std::result::Result<T, E>;
