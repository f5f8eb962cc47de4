//! Translation of diesel's errors into the domain's `RepoError`.

use autodocs_domain::RepoError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub(crate) fn repo_error(error: DieselError) -> RepoError {
    match error {
        DieselError::DatabaseError(kind, info) => {
            let name = info
                .constraint_name()
                .map(str::to_owned)
                .unwrap_or_else(|| info.message().to_owned());
            match kind {
                DatabaseErrorKind::UniqueViolation => RepoError::UniqueViolation(name),
                DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::NotNullViolation => RepoError::ConstraintViolation(name),
                DatabaseErrorKind::ClosedConnection => {
                    RepoError::Unavailable(info.message().to_owned())
                }
                _ if is_busy(info.message()) => RepoError::Unavailable(info.message().to_owned()),
                _ => RepoError::Other(info.message().to_owned()),
            }
        }
        other => RepoError::Other(other.to_string()),
    }
}

fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

pub(crate) trait OrRepoError<T> {
    fn repo(self) -> Result<T, RepoError>;
}

impl<T> OrRepoError<T> for Result<T, DieselError> {
    fn repo(self) -> Result<T, RepoError> {
        self.map_err(repo_error)
    }
}
