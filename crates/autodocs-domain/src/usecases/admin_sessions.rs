//! The admin pages' staff sessions (see [`crate::admin_session`]): opened
//! by a staff member's login, checked on every request, closed by logout,
//! deactivation or loss of staff status.

use chrono::Duration;

use crate::admin_session::{AdminSession, SessionDigest, SignedInStaff};
use crate::error::AccountError;
use crate::ports;
use crate::user::Principal;

use super::auth::{AccountService, VerifiedLogin};

impl AccountService {
    /// Opens an admin session under `digest` (the SHA-256 of a key only the
    /// browser holds) for a checked login, recording the login. Only an
    /// active staff member may open one: anyone else is refused with
    /// [`AccountError::PermissionDenied`] (active, not staff) or
    /// [`AccountError::AuthenticationFailed`], and nothing is recorded.
    pub fn open_admin_session(
        &self,
        verified: VerifiedLogin,
        digest: &SessionDigest,
        lifetime: Duration,
    ) -> Result<AdminSession, AccountError> {
        let now = self.context.clock.now();
        let user = verified.user();
        self.context.write(|repos| {
            match repos.users().access(user)? {
                Some(access) if access.is_active && access.is_staff => {}
                Some(access) if access.is_active => return Err(AccountError::PermissionDenied),
                _ => return Err(AccountError::AuthenticationFailed),
            }
            verified.record(repos, now)?;
            let expires_at = now + lifetime;
            repos.admin_sessions().open(digest, user, now, expires_at)?;
            Ok(AdminSession {
                user,
                created_at: now,
                expires_at,
            })
        })
    }

    /// The staff member a live admin session signs in, with their
    /// username, in one read. An expired or closed session, or one whose
    /// account has since been deactivated or lost staff status, is
    /// [`AccountError::AuthenticationFailed`].
    pub fn admin_principal(&self, digest: &SessionDigest) -> Result<SignedInStaff, AccountError> {
        let now = self.context.clock.now();
        ports::read(&*self.context.uow, |repos| {
            let Some(session) = repos.admin_sessions().find_live(digest, now)? else {
                return Err(AccountError::AuthenticationFailed);
            };
            match repos.users().find(session.user)? {
                Some(user) if user.is_active && user.is_staff => Ok(SignedInStaff {
                    principal: Principal {
                        user_id: session.user,
                        is_staff: true,
                    },
                    username: user.username,
                }),
                _ => Err(AccountError::AuthenticationFailed),
            }
        })
    }

    /// Closes an admin session (logout); closing one that is already gone
    /// is not an error.
    pub fn close_admin_session(&self, digest: &SessionDigest) -> Result<(), AccountError> {
        self.context
            .write(|repos| repos.admin_sessions().close(digest))?;
        Ok(())
    }
}
