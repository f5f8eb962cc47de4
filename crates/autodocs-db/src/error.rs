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
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    RepoError::Unavailable(info.message().to_owned())
                }
                _ if is_unavailable(info.message()) => {
                    RepoError::Unavailable(info.message().to_owned())
                }
                _ => RepoError::Other(info.message().to_owned()),
            }
        }
        other => RepoError::Other(other.to_string()),
    }
}

/// Messages of failures that are the database's state, not the request's:
/// a busy SQLite file, a file gone from under the server, a PostgreSQL
/// server shutting down, restarting or out of connection slots, or a
/// connection lost mid-statement. libpq reports some of these without a
/// SQLSTATE, so the text is all there is to go on.
fn is_unavailable(message: &str) -> bool {
    const MARKERS: &[&str] = &[
        // SQLite
        "database is locked",
        "database is busy",
        "disk I/O error",
        "unable to open database file",
        "attempt to write a readonly database",
        "database or disk is full",
        // PostgreSQL (57P01-57P03, 53300) and libpq
        "terminating connection",
        "the database system is",
        "too many clients",
        "remaining connection slots",
        "server closed the connection",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "connection to server",
        "SSL SYSCALL error",
        "SSL connection has been closed",
        "canceling statement due to conflict with recovery",
    ];
    MARKERS.iter().any(|marker| message.contains(marker))
}

pub(crate) trait OrRepoError<T> {
    fn repo(self) -> Result<T, RepoError>;
}

impl<T> OrRepoError<T> for Result<T, DieselError> {
    fn repo(self) -> Result<T, RepoError> {
        self.map_err(repo_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn lost_connections_and_shutdowns_are_unavailable() {
        for (kind, message) in [
            (DatabaseErrorKind::ClosedConnection, "anything"),
            (
                DatabaseErrorKind::UnableToSendCommand,
                "no connection to the server",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            (
                DatabaseErrorKind::Unknown,
                "sorry, too many clients already",
            ),
            (DatabaseErrorKind::Unknown, "database is locked"),
            (
                DatabaseErrorKind::Unknown,
                "attempt to write a readonly database",
            ),
        ] {
            assert!(
                matches!(
                    repo_error(database_error(kind, message)),
                    RepoError::Unavailable(_)
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn other_failures_stay_what_they_are() {
        assert!(matches!(
            repo_error(database_error(DatabaseErrorKind::Unknown, "syntax error")),
            RepoError::Other(_)
        ));
        assert!(matches!(
            repo_error(database_error(DatabaseErrorKind::UniqueViolation, "dup")),
            RepoError::UniqueViolation(_)
        ));
    }
}
