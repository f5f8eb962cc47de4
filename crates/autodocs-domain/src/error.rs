//! The errors a use case can end with: one enum per service, each with
//! just the failures its use cases can have, and [`Error`], which all of
//! them convert into.

use crate::paging::PastEnd;
use crate::ports::StorageError;
use crate::transition::InvalidTransition;
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

/// What every use-case error shares: it can be a failure of the storage
/// behind a port. The unit-of-work helpers ([`crate::ports::transaction`],
/// [`crate::ports::read`]) take any such error from the work they run and
/// tell the adapter whether the storage failed (so it can react, e.g. test
/// its pooled connections) or the work gave up on its own.
pub trait UseCaseError: From<RepoError> {
    /// The storage failure this error is, if it is one.
    fn storage_failure(&self) -> Option<&RepoError>;
}

impl UseCaseError for RepoError {
    fn storage_failure(&self) -> Option<&RepoError> {
        Some(self)
    }
}

impl From<StorageError> for RepoError {
    /// Failing file storage is a failure of the storage behind a port.
    fn from(error: StorageError) -> Self {
        RepoError::Other(error.to_string())
    }
}

/// How a [`MissionService`](crate::usecases::missions::MissionService) use case can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissionError {
    /// The command was refused, field by field.
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),
    /// No such mission, or it belongs to someone else.
    #[error("mission not found")]
    NotFound,
    /// The requested page of a list lies past its end.
    #[error(transparent)]
    PastEnd(#[from] PastEnd),
    /// The mission's status does not allow the action (or a racing
    /// request changed it first).
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// How a [`StepService`](crate::usecases::steps::StepService) use case can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The command was refused, field by field (a bad parent, too many
    /// steps, a plan nested too deeply ...).
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),
    /// No such step or mission, or the mission belongs to someone else.
    #[error("step not found")]
    NotFound,
    /// The requested page of a list lies past its end.
    #[error(transparent)]
    PastEnd(#[from] PastEnd),
    /// The step's status does not allow the change.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// How a [`DocumentService`](crate::usecases::documents::DocumentService) use case can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The command was refused, field by field.
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),
    /// No such document (or mission to file it under), or it belongs to
    /// someone else.
    #[error("document not found")]
    NotFound,
    /// The requested page of a list lies past its end.
    #[error(transparent)]
    PastEnd(#[from] PastEnd),
    /// The document's status does not allow the change.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// An uploaded file's sniffed type is not one of
    /// [`AllowedContentType::ALL`](crate::document::AllowedContentType::ALL).
    #[error("the file's content is not of an allowed type")]
    UnsupportedFileType,
    /// The storage (database or files) failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// How an [`ActivityService`](crate::usecases::activities::ActivityService) use case can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    /// The command was refused, field by field (e.g. a reference to a
    /// mission that is not the caller's).
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),
    /// No such activity, or it belongs to someone else.
    #[error("activity not found")]
    NotFound,
    /// The requested page of a list lies past its end.
    #[error(transparent)]
    PastEnd(#[from] PastEnd),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// How an [`AccountService`](crate::usecases::auth::AccountService) use case can fail:
/// registration, login, tokens, the caller's account, staff user management.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The command was refused, field by field (a taken username, a weak
    /// password, a wrong old password ...).
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),
    /// No such user.
    #[error("user not found")]
    NotFound,
    /// The requested page of a list lies past its end.
    #[error(transparent)]
    PastEnd(#[from] PastEnd),
    /// Wrong credentials or an inactive account.
    #[error("no active account found with the given credentials")]
    AuthenticationFailed,
    /// A token that is malformed, expired, of the wrong type or revoked.
    #[error("token refused: {0}")]
    TokenInvalid(TokenRefusal),
    /// Authenticated, but not staff.
    #[error("permission denied")]
    PermissionDenied,
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// How an [`Engine`](crate::usecases::engine::Engine) use case can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No job with that id in the state the use case needs (a dead or
    /// failed one to retry, a finished one to delete).
    #[error("job not found")]
    JobNotFound,
    /// The requested page of a list lies past its end.
    #[error(transparent)]
    PastEnd(#[from] PastEnd),
    /// A mission changed under the run (e.g. a racing pause): the change
    /// rolled back and the job runs again.
    #[error(transparent)]
    Mission(#[from] MissionError),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Implements what every use-case error shares: [`UseCaseError`], file
/// storage failures as [`RepoError`]s, and the conversion into [`Error`].
macro_rules! use_case_error {
    ($name:ident { $($variant:ident $(($payload:ident))?),+ $(,)? }) => {
        impl $name {
            /// A validation error on a single field.
            pub fn field(field: &str, message: impl Into<crate::validation::InvalidValue>) -> Self {
                $name::Validation(ValidationErrors::single(field, message))
            }
        }

        impl UseCaseError for $name {
            fn storage_failure(&self) -> Option<&RepoError> {
                match self {
                    $name::Repository(error) => Some(error),
                    _ => None,
                }
            }
        }

        impl From<StorageError> for $name {
            fn from(error: StorageError) -> Self {
                $name::Repository(error.into())
            }
        }

        impl From<$name> for Error {
            fn from(error: $name) -> Self {
                match error {
                    $($name::$variant $(($payload))? => use_case_error!(@into $variant $(($payload))?),)+
                }
            }
        }
    };
    (@into $variant:ident ($payload:ident)) => { Error::$variant($payload.into()) };
    (@into $variant:ident) => { Error::$variant };
}

use_case_error!(MissionError {
    Validation(errors),
    NotFound,
    PastEnd(past_end),
    InvalidTransition(refusal),
    Repository(error),
});
use_case_error!(StepError {
    Validation(errors),
    NotFound,
    PastEnd(past_end),
    InvalidTransition(refusal),
    Repository(error),
});
use_case_error!(DocumentError {
    Validation(errors),
    NotFound,
    PastEnd(past_end),
    InvalidTransition(refusal),
    UnsupportedFileType,
    Repository(error),
});
use_case_error!(ActivityError {
    Validation(errors),
    NotFound,
    PastEnd(past_end),
    Repository(error),
});
use_case_error!(AccountError {
    Validation(errors),
    NotFound,
    PastEnd(past_end),
    AuthenticationFailed,
    TokenInvalid(refusal),
    PermissionDenied,
    Repository(error),
});

impl UseCaseError for EngineError {
    fn storage_failure(&self) -> Option<&RepoError> {
        match self {
            EngineError::Repository(error) => Some(error),
            EngineError::Mission(error) => error.storage_failure(),
            EngineError::JobNotFound | EngineError::PastEnd(_) => None,
        }
    }
}

impl From<EngineError> for Error {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::JobNotFound => Error::NotFound,
            EngineError::PastEnd(past_end) => Error::PastEnd(past_end),
            EngineError::Mission(error) => error.into(),
            EngineError::Repository(error) => Error::Repository(error),
        }
    }
}

/// Any use case's failure: what every service's error converts into, for
/// a caller that handles them all in one place (the HTTP layer maps each
/// variant to a status code). A use case itself returns the error of its
/// service ([`MissionError`], [`StepError`], [`DocumentError`],
/// [`ActivityError`], [`AccountError`], [`EngineError`]), so a caller
/// matches only what that use case can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input was refused, field by field (400).
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),
    /// The object does not exist or belongs to someone else (404).
    #[error("not found")]
    NotFound,
    /// The requested page of a list lies past its end (404).
    #[error(transparent)]
    PastEnd(#[from] PastEnd),
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

impl UseCaseError for Error {
    fn storage_failure(&self) -> Option<&RepoError> {
        match self {
            Error::Repository(error) => Some(error),
            _ => None,
        }
    }
}

impl From<StorageError> for Error {
    fn from(error: StorageError) -> Self {
        Error::Repository(error.into())
    }
}

/// A result whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The errors of the use cases that touch a mission along the way (its
/// progress, its status): they can say that it is gone or that its state
/// machine refused.
pub(crate) trait MissionRefusal: UseCaseError + From<InvalidTransition> {
    /// The mission does not exist (or is not the caller's).
    fn mission_not_found() -> Self;
}

impl MissionRefusal for MissionError {
    fn mission_not_found() -> Self {
        MissionError::NotFound
    }
}

impl MissionRefusal for StepError {
    fn mission_not_found() -> Self {
        StepError::NotFound
    }
}

impl MissionRefusal for DocumentError {
    fn mission_not_found() -> Self {
        DocumentError::NotFound
    }
}

impl From<InvalidTransition> for EngineError {
    fn from(refusal: InvalidTransition) -> Self {
        EngineError::Mission(refusal.into())
    }
}

impl MissionRefusal for EngineError {
    fn mission_not_found() -> Self {
        EngineError::Mission(MissionError::NotFound)
    }
}
