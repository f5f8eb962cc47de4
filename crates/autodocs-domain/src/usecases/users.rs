//! The user's own account and profile, and staff user management.

use crate::activity::SystemActivity;
use crate::activity_log::NewActivity;
use crate::error::AccountError;
use crate::events::Event;
use crate::paging::Page;
use crate::password_policy::{NewPassword, PasswordAttributes};
use crate::ports::{self, PasswordCheck, PasswordHasher};
use crate::user::{IdentityKey, Principal, User, UserChanges, UserId, UserQuery};
use crate::validation::ValidationErrors;

use super::auth::AccountService;
use super::auth::{EMAIL_TAKEN, unique_violation_as_field};

/// A password change read and judged against the policy, for
/// [`PasswordChange::check`].
#[derive(Debug, Clone)]
pub struct PasswordChange {
    user: UserId,
    stored: String,
    new_password: std::result::Result<NewPassword, Vec<crate::validation::InvalidValue>>,
}

impl PasswordChange {
    /// Checks the old password and hashes the new one (PBKDF2: run it where
    /// it holds up no other request). A wrong old password and a new one the
    /// policy refuses are reported together, as Django does.
    pub fn check(
        self,
        hasher: &dyn PasswordHasher,
        old_password: &str,
    ) -> Result<CheckedPasswordChange, AccountError> {
        let mut errors = ValidationErrors::new();
        if hasher.verify(old_password, &self.stored) == PasswordCheck::Mismatch {
            errors.add("old_password", WRONG_OLD_PASSWORD);
        }
        match self.new_password {
            Ok(new_password) if errors.is_empty() => Ok(CheckedPasswordChange {
                user: self.user,
                hash: hasher.hash(new_password.as_str()),
                checked: self.stored,
            }),
            Ok(_) => Err(errors.into()),
            Err(messages) => {
                messages
                    .into_iter()
                    .for_each(|message| errors.add("new_password", message));
                Err(errors.into())
            }
        }
    }
}

/// A password change whose old password matched, with the new hash, for
/// [`AccountService::finish_password_change`]; only [`PasswordChange::check`]
/// makes one.
#[derive(Debug, Clone)]
pub struct CheckedPasswordChange {
    user: UserId,
    hash: String,
    checked: String,
}

/// The message Django gives for a wrong current password.
pub const WRONG_OLD_PASSWORD: &str =
    "Your old password was entered incorrectly. Please enter it again.";

impl AccountService {
    /// The caller's own account.
    pub fn me(&self, principal: Principal) -> Result<User, AccountError> {
        ports::read(&*self.context.uow, |repos| {
            repos
                .users()
                .find(principal.user_id)?
                .ok_or(AccountError::NotFound)
        })
    }

    /// Updates the caller's own account and profile (never the flags) and
    /// records `profile_updated`.
    pub fn update_me(
        &self,
        principal: Principal,
        mut changes: UserChanges,
    ) -> Result<User, AccountError> {
        changes.is_active = None;
        changes.is_staff = None;
        self.apply_changes(principal.user_id, principal.user_id, changes)
    }

    /// Changes the caller's password; every refresh token of the user dies.
    /// Hashes on the calling thread: [`AccountService::begin_password_change`],
    /// then [`PasswordChange::check`], then [`AccountService::finish_password_change`].
    pub fn change_password(
        &self,
        principal: Principal,
        old_password: &str,
        new_password: &str,
    ) -> Result<(), AccountError> {
        let change = self.begin_password_change(principal, new_password)?;
        let checked = change.check(&*self.context.hasher, old_password)?;
        self.finish_password_change(checked)
    }

    /// The first step of a password change: reads the caller's account and
    /// stored hash, and judges the new password against the policy.
    pub fn begin_password_change(
        &self,
        principal: Principal,
        new_password: &str,
    ) -> Result<PasswordChange, AccountError> {
        let user = self.me(principal)?;
        let stored = ports::read(&*self.context.uow, |repos| {
            repos
                .users()
                .password_hash(user.id)?
                .ok_or(AccountError::NotFound)
        })?;
        let attributes = PasswordAttributes {
            username: &user.username,
            email: &user.email,
            first_name: &user.first_name,
            last_name: &user.last_name,
        };
        Ok(PasswordChange {
            user: user.id,
            stored,
            new_password: NewPassword::parse(new_password, &attributes),
        })
    }

    /// The last step of a password change: stores the new hash, if the
    /// stored one is still the one the old password was checked against
    /// (a concurrent change wins, and this one is told the old password is
    /// wrong), kills every refresh token and records `password_changed`.
    pub fn finish_password_change(
        &self,
        checked: CheckedPasswordChange,
    ) -> Result<(), AccountError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            if !repos.users().replace_password_hash(
                checked.user,
                &checked.checked,
                &checked.hash,
            )? {
                return Err(AccountError::field("old_password", WRONG_OLD_PASSWORD));
            }
            repos.refresh_tokens().revoke_all(checked.user, now)?;
            repos.activities().record(
                &NewActivity::system(SystemActivity::PasswordChanged, checked.user),
                now,
            )?;
            Ok(())
        })?;
        // Live connections were opened on the old password: end them too.
        self.revoke_sessions(checked.user);
        Ok(())
    }

    /// Staff: a page of users.
    pub fn list_users(
        &self,
        principal: Principal,
        query: &UserQuery,
    ) -> Result<Page<User>, AccountError> {
        require_staff(principal)?;
        let found = ports::read(&*self.context.uow, |repos| repos.users().list(query))?;
        Ok(found.found()?)
    }

    /// Staff: one user.
    pub fn get_user(&self, principal: Principal, id: UserId) -> Result<User, AccountError> {
        require_staff(principal)?;
        ports::read(&*self.context.uow, |repos| {
            repos.users().find(id)?.ok_or(AccountError::NotFound)
        })
    }

    /// Staff: the usernames of these users, in one read, for lists that
    /// name each row's owner (a user deleted since is left out).
    pub fn usernames(
        &self,
        principal: Principal,
        ids: impl IntoIterator<Item = UserId>,
    ) -> Result<std::collections::BTreeMap<UserId, String>, AccountError> {
        require_staff(principal)?;
        let mut ids: Vec<UserId> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(std::collections::BTreeMap::new());
        }
        ports::read(&*self.context.uow, |repos| {
            Ok(repos.users().usernames(&ids)?)
        })
    }

    /// Staff: updates any user, flags included.
    pub fn update_user(
        &self,
        principal: Principal,
        id: UserId,
        changes: UserChanges,
    ) -> Result<User, AccountError> {
        require_staff(principal)?;
        self.apply_changes(principal.user_id, id, changes)
    }

    /// Staff: deletes a user and everything they own.
    pub fn delete_user(&self, principal: Principal, id: UserId) -> Result<(), AccountError> {
        require_staff(principal)?;
        let deleted = self.context.write(|repos| repos.users().delete(id))?;
        if deleted {
            self.revoke_sessions(id);
            Ok(())
        } else {
            Err(AccountError::NotFound)
        }
    }

    fn apply_changes(
        &self,
        actor: UserId,
        id: UserId,
        changes: UserChanges,
    ) -> Result<User, AccountError> {
        let now = self.context.clock.now();
        let deactivates = changes.is_active == Some(false);
        let user = self.context.write(|repos| {
            let mut user = repos.users().find(id)?.ok_or(AccountError::NotFound)?;
            if let Some(email) = &changes.email
                && repos
                    .users()
                    .email_exists(&IdentityKey::of(email.as_str()), Some(id))?
            {
                return Err(AccountError::field("email", EMAIL_TAKEN));
            }
            if changes.touches_account() {
                repos
                    .users()
                    .update_account(id, &changes)
                    .map_err(unique_violation_as_field)?;
            }
            if !changes.profile.is_empty() {
                changes.profile.apply_to(&mut user.profile);
                repos.users().save_profile(id, &user.profile, now)?;
            }
            if changes.is_active == Some(false) || changes.is_staff == Some(false) {
                // An admin session lives only while its account is active staff.
                repos.admin_sessions().close_all(id)?;
            }
            let activity = NewActivity::system(SystemActivity::ProfileUpdated, actor)
                .with_detail("user_id", id.0);
            repos.activities().record(&activity, now)?;
            repos.users().find(id)?.ok_or(AccountError::NotFound)
        })?;
        if deactivates {
            self.revoke_sessions(id);
        }
        Ok(user)
    }

    /// Ends a user's live connections, once the change that calls for it
    /// has committed (a rolled-back deactivation must not cut anyone off).
    fn revoke_sessions(&self, user: UserId) {
        self.context
            .events
            .publish(vec![Event::sessions_revoked(user)]);
    }
}

/// Refuses anyone but staff ([`AccountError::PermissionDenied`]). Every staff use
/// case checks it first; an inbound adapter that must refuse before even
/// reading a request (a permission check before validation) calls it too.
pub fn require_staff(principal: Principal) -> Result<(), AccountError> {
    if principal.is_staff {
        Ok(())
    } else {
        Err(AccountError::PermissionDenied)
    }
}
