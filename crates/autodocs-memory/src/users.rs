//! Users, refresh tokens and the activity log.

use std::cmp::Ordering;

use autodocs_domain::ActivityId;
use autodocs_domain::RepoError;
use autodocs_domain::activity_log::{Activity, ActivityQuery, NewActivity};
use autodocs_domain::admin_session::{AdminSession, SessionDigest};
use autodocs_domain::paging::PageResult;
use autodocs_domain::ports::{
    ActivityRepository, AdminSessionRepository, Credentials, RefreshTokenRecord,
    RefreshTokenRepository, RepoResult, UserRepository,
};
use autodocs_domain::user::{
    AccountAccess, IdentityKey, NewUser, User, UserChanges, UserId, UserOrderField, UserProfile,
    UserQuery, UserSortKey, normalise_identity,
};
use chrono::{DateTime, Utc};

use crate::state::{UserRow, contains_folded, missing, page_of};
use crate::uow::MemoryRepos;

/// The key stored for an email: none for an empty one.
fn email_key(email: &str) -> Option<String> {
    let key = IdentityKey::of(email);
    (!key.as_str().is_empty()).then(|| key.as_str().to_owned())
}

fn taken(index: &str) -> RepoError {
    RepoError::UniqueViolation(index.to_owned())
}

/// `None` (never logged in) sorts last in both directions.
fn compare_last_login(a: &UserRow, b: &UserRow, descending: bool) -> Ordering {
    match (a.user.last_login, b.user.last_login) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) if descending => b.cmp(&a),
        (Some(a), Some(b)) => a.cmp(&b),
    }
}

fn compare_users(a: &UserRow, b: &UserRow, item: UserOrderField) -> Ordering {
    let ascending = match item.field {
        UserSortKey::Id => a.user.id.0.cmp(&b.user.id.0),
        UserSortKey::Username => a.username_key.cmp(&b.username_key),
        // NULL keys: last ascending, first descending (PostgreSQL's rule).
        UserSortKey::Email => match (&a.email_key, &b.email_key) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(b),
        },
        UserSortKey::DateJoined => a.user.date_joined.cmp(&b.user.date_joined),
        UserSortKey::LastLogin => return compare_last_login(a, b, item.descending),
    };
    if item.descending {
        ascending.reverse()
    } else {
        ascending
    }
}

impl MemoryRepos {
    fn user_row(&mut self, id: UserId) -> Option<&mut UserRow> {
        self.state.users.get_mut(&id.0)
    }
}

impl UserRepository for MemoryRepos {
    fn create(&mut self, new: &NewUser, now: DateTime<Utc>) -> RepoResult<User> {
        let username_key = IdentityKey::of(new.username.as_str()).as_str().to_owned();
        let email_key = email_key(new.email.as_str());
        let users = &self.state.users;
        if users.values().any(|row| row.username_key == username_key) {
            return Err(taken("auth_user_username_key_uniq"));
        }
        if email_key.is_some() && users.values().any(|row| row.email_key == email_key) {
            return Err(taken("auth_user_email_key_uniq"));
        }
        self.state.ids.users += 1;
        let id = self.state.ids.users;
        let user = User {
            id: UserId(id),
            username: new.username.as_str().to_owned(),
            email: new.email.as_str().to_owned(),
            first_name: new.first_name.as_str().to_owned(),
            last_name: new.last_name.as_str().to_owned(),
            is_staff: new.is_staff,
            is_superuser: new.is_superuser,
            is_active: true,
            date_joined: now,
            last_login: None,
            profile: UserProfile::default(),
        };
        self.state.users.insert(
            id,
            UserRow {
                user: user.clone(),
                password: new.password_hash.clone(),
                username_key,
                email_key,
            },
        );
        Ok(user)
    }

    fn find(&mut self, id: UserId) -> RepoResult<Option<User>> {
        Ok(self.state.users.get(&id.0).map(|row| row.user.clone()))
    }

    fn usernames(
        &mut self,
        ids: &[UserId],
    ) -> RepoResult<std::collections::BTreeMap<UserId, String>> {
        Ok(ids
            .iter()
            .filter_map(|id| {
                let row = self.state.users.get(&id.0)?;
                Some((*id, row.user.username.clone()))
            })
            .collect())
    }

    fn access(&mut self, id: UserId) -> RepoResult<Option<AccountAccess>> {
        Ok(self.state.users.get(&id.0).map(|row| AccountAccess {
            is_active: row.user.is_active,
            is_staff: row.user.is_staff,
        }))
    }

    fn find_credentials(&mut self, login: &IdentityKey) -> RepoResult<Option<Credentials>> {
        let key = login.as_str();
        let matching: Vec<&UserRow> = self
            .state
            .users
            .values()
            .filter(|row| row.username_key == key || row.email_key.as_deref() == Some(key))
            .take(2)
            .collect();
        // The email's owner wins over a username shaped like that email.
        let chosen = matching
            .iter()
            .find(|row| row.email_key.as_deref() == Some(key))
            .or_else(|| matching.first());
        Ok(chosen.map(|row| Credentials {
            user: row.user.clone(),
            password_hash: row.password.clone(),
        }))
    }

    fn password_hash(&mut self, id: UserId) -> RepoResult<Option<String>> {
        Ok(self.state.users.get(&id.0).map(|row| row.password.clone()))
    }

    fn username_exists(&mut self, username: &IdentityKey) -> RepoResult<bool> {
        Ok(self
            .state
            .users
            .values()
            .any(|row| row.username_key == username.as_str()))
    }

    fn email_exists(&mut self, email: &IdentityKey, except: Option<UserId>) -> RepoResult<bool> {
        let except = except.map_or(0, |id| id.0);
        Ok(self
            .state
            .users
            .values()
            .any(|row| row.email_key.as_deref() == Some(email.as_str()) && row.user.id.0 != except))
    }

    fn set_password_hash(&mut self, id: UserId, hash: &str) -> RepoResult<()> {
        if let Some(row) = self.user_row(id) {
            row.password = hash.to_owned();
        }
        Ok(())
    }

    fn replace_password_hash(
        &mut self,
        id: UserId,
        expected: &str,
        hash: &str,
    ) -> RepoResult<bool> {
        match self.user_row(id) {
            Some(row) if row.password == expected => {
                row.password = hash.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn touch_last_login(&mut self, id: UserId, now: DateTime<Utc>) -> RepoResult<()> {
        if let Some(row) = self.user_row(id) {
            row.user.last_login = Some(now);
        }
        Ok(())
    }

    fn update_account(&mut self, id: UserId, changes: &UserChanges) -> RepoResult<()> {
        if !changes.touches_account() {
            return Ok(());
        }
        if let Some(email) = &changes.email {
            let key = email_key(email.as_str());
            let clash = key.is_some()
                && self
                    .state
                    .users
                    .values()
                    .any(|row| row.user.id != id && row.email_key == key);
            if clash {
                return Err(taken("auth_user_email_key_uniq"));
            }
        }
        let Some(row) = self.user_row(id) else {
            return Ok(());
        };
        if let Some(email) = &changes.email {
            row.user.email = email.as_str().to_owned();
            row.email_key = email_key(email.as_str());
        }
        if let Some(name) = &changes.first_name {
            row.user.first_name = name.as_str().to_owned();
        }
        if let Some(name) = &changes.last_name {
            row.user.last_name = name.as_str().to_owned();
        }
        if let Some(active) = changes.is_active {
            row.user.is_active = active;
        }
        if let Some(staff) = changes.is_staff {
            row.user.is_staff = staff;
        }
        Ok(())
    }

    fn save_profile(
        &mut self,
        id: UserId,
        profile: &UserProfile,
        _now: DateTime<Utc>,
    ) -> RepoResult<()> {
        if let Some(row) = self.user_row(id) {
            row.user.profile = profile.clone();
        }
        Ok(())
    }

    fn list(&mut self, query: &UserQuery) -> RepoResult<PageResult<User>> {
        let search = query
            .search
            .as_deref()
            .filter(|search| !search.is_empty())
            .map(normalise_identity);
        let mut rows: Vec<&UserRow> = self
            .state
            .users
            .values()
            .filter(|row| {
                search.as_deref().is_none_or(|term| {
                    row.username_key.contains(term)
                        || row
                            .email_key
                            .as_deref()
                            .is_some_and(|key| key.contains(term))
                })
            })
            .filter(|row| {
                query
                    .is_active
                    .is_none_or(|active| row.user.is_active == active)
            })
            .filter(|row| {
                query
                    .is_staff
                    .is_none_or(|staff| row.user.is_staff == staff)
            })
            .collect();
        let ordering: &[UserOrderField] = if query.ordering.is_empty() {
            &[UserOrderField::DEFAULT]
        } else {
            &query.ordering
        };
        rows.sort_by(|a, b| {
            ordering
                .iter()
                .map(|item| compare_users(a, b, *item))
                .find(|order| order.is_ne())
                .unwrap_or_else(|| a.user.id.0.cmp(&b.user.id.0))
        });
        let users = rows.into_iter().map(|row| row.user.clone()).collect();
        Ok(page_of(users, query.page))
    }

    fn delete(&mut self, id: UserId) -> RepoResult<bool> {
        Ok(self.state.delete_user(id.0))
    }
}

impl RefreshTokenRepository for MemoryRepos {
    fn insert(
        &mut self,
        user: UserId,
        jti: &str,
        _now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()> {
        if !self.state.users.contains_key(&user.0) {
            return Err(missing("the token's user"));
        }
        if self.state.tokens.values().any(|token| token.jti == jti) {
            return Err(taken("auth_refreshtoken_jti_key"));
        }
        self.state.ids.tokens += 1;
        self.state.tokens.insert(
            self.state.ids.tokens,
            RefreshTokenRecord {
                user,
                jti: jti.to_owned(),
                expires_at,
                revoked_at: None,
                replaced_by: None,
            },
        );
        Ok(())
    }

    fn find(&mut self, jti: &str) -> RepoResult<Option<RefreshTokenRecord>> {
        Ok(self
            .state
            .tokens
            .values()
            .find(|token| token.jti == jti)
            .cloned())
    }

    #[allow(clippy::needless_lifetimes)] // matches the port
    fn revoke<'a>(
        &mut self,
        jti: &str,
        replaced_by: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let live = self
            .state
            .tokens
            .values_mut()
            .find(|token| token.jti == jti && token.revoked_at.is_none());
        Ok(match live {
            Some(token) => {
                token.revoked_at = Some(now);
                token.replaced_by = replaced_by.map(str::to_owned);
                true
            }
            None => false,
        })
    }

    fn revoke_all(&mut self, user: UserId, now: DateTime<Utc>) -> RepoResult<u64> {
        let mut revoked = 0;
        for token in self.state.tokens.values_mut() {
            if token.user == user && token.revoked_at.is_none() {
                token.revoked_at = Some(now);
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    fn purge_expired(&mut self, now: DateTime<Utc>) -> RepoResult<u64> {
        let before = self.state.tokens.len();
        self.state.tokens.retain(|_, token| token.expires_at >= now);
        Ok((before - self.state.tokens.len()) as u64)
    }
}

impl ActivityRepository for MemoryRepos {
    fn record(&mut self, new: &NewActivity, now: DateTime<Utc>) -> RepoResult<Activity> {
        if new
            .user
            .is_some_and(|user| !self.state.users.contains_key(&user.0))
        {
            return Err(missing("the activity's user"));
        }
        if new
            .mission
            .is_some_and(|mission| !self.state.missions.contains_key(&mission))
        {
            return Err(missing("the activity's mission"));
        }
        if new
            .document
            .is_some_and(|document| !self.state.documents.contains_key(&document))
        {
            return Err(missing("the activity's document"));
        }
        self.state.ids.activities += 1;
        let activity = Activity {
            id: ActivityId(self.state.ids.activities),
            kind: new.kind.clone(),
            message: new.message.clone(),
            details: new.details.clone(),
            user: new.user,
            mission: new.mission,
            document: new.document,
            timestamp: now,
        };
        self.state.activities.insert(activity.id, activity.clone());
        Ok(activity)
    }

    fn find(&mut self, id: ActivityId, owner: Option<UserId>) -> RepoResult<Option<Activity>> {
        Ok(self
            .state
            .activities
            .get(&id)
            .filter(|activity| owner.is_none_or(|owner| activity.user == Some(owner)))
            .cloned())
    }

    fn list(&mut self, query: &ActivityQuery) -> RepoResult<PageResult<Activity>> {
        let search = query.search.as_deref().filter(|search| !search.is_empty());
        let mut activities: Vec<Activity> = self
            .state
            .activities
            .values()
            .filter(|a| query.user.is_none_or(|user| a.user == Some(user)))
            .filter(|a| query.kinds.is_empty() || query.kinds.contains(&a.kind))
            .filter(|a| {
                query
                    .mission
                    .is_none_or(|mission| a.mission == Some(mission))
            })
            .filter(|a| {
                query
                    .document
                    .is_none_or(|document| a.document == Some(document))
            })
            .filter(|a| query.since.is_none_or(|since| a.timestamp >= since))
            .filter(|a| query.until.is_none_or(|until| a.timestamp <= until))
            .filter(|a| search.is_none_or(|term| contains_folded(&a.message, term)))
            .cloned()
            .collect();
        // Newest first; the id breaks ties.
        activities.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(b.id.cmp(&a.id)));
        Ok(page_of(activities, query.page))
    }
}

impl AdminSessionRepository for MemoryRepos {
    fn open(
        &mut self,
        digest: &SessionDigest,
        user: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()> {
        if !self.state.users.contains_key(&user.0) {
            return Err(missing("the session's user"));
        }
        if self.state.admin_sessions.contains_key(digest) {
            return Err(taken("admin_session_digest_key"));
        }
        self.state.admin_sessions.insert(
            digest.clone(),
            AdminSession {
                user,
                created_at: now,
                expires_at,
            },
        );
        Ok(())
    }

    fn find_live(
        &mut self,
        digest: &SessionDigest,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<AdminSession>> {
        Ok(self
            .state
            .admin_sessions
            .get(digest)
            .filter(|session| session.expires_at > now)
            .cloned())
    }

    fn close(&mut self, digest: &SessionDigest) -> RepoResult<bool> {
        Ok(self.state.admin_sessions.remove(digest).is_some())
    }

    fn close_all(&mut self, user: UserId) -> RepoResult<u64> {
        let before = self.state.admin_sessions.len();
        self.state
            .admin_sessions
            .retain(|_, session| session.user != user);
        Ok((before - self.state.admin_sessions.len()) as u64)
    }

    fn purge_expired(&mut self, now: DateTime<Utc>) -> RepoResult<u64> {
        let before = self.state.admin_sessions.len();
        self.state
            .admin_sessions
            .retain(|_, session| session.expires_at >= now);
        Ok((before - self.state.admin_sessions.len()) as u64)
    }
}
