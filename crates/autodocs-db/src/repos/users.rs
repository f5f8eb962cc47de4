use std::collections::BTreeMap;

use autodocs_domain::paging::PageResult;
use autodocs_domain::ports::{Credentials, RepoResult, UserRepository};
use autodocs_domain::user::{
    AccountAccess, IdentityKey, NewUser, User, UserChanges, UserId, UserOrderField, UserProfile,
    UserQuery, UserSortKey, normalise_identity,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::paging::paginate;
use super::{Db, json_object, json_text, like_contains};
use crate::error::OrRepoError;
use crate::schema::{auth_user, users_userprofile};
use crate::time::{from_db, to_db};
use crate::uow::DieselRepos;

#[derive(Queryable, Selectable)]
#[diesel(table_name = auth_user)]
struct UserRow {
    id: i64,
    password: String,
    last_login: Option<NaiveDateTime>,
    is_superuser: bool,
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    is_staff: bool,
    is_active: bool,
    date_joined: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users_userprofile)]
struct ProfileRow {
    phone: String,
    organization: String,
    bio: String,
    timezone: String,
    preferences: String,
}

fn to_user(row: UserRow, profile: ProfileRow) -> User {
    User {
        id: UserId(row.id),
        username: row.username,
        email: row.email,
        first_name: row.first_name,
        last_name: row.last_name,
        is_staff: row.is_staff,
        is_superuser: row.is_superuser,
        is_active: row.is_active,
        date_joined: from_db(row.date_joined),
        last_login: row.last_login.map(from_db),
        profile: UserProfile {
            phone: profile.phone,
            organization: profile.organization,
            bio: profile.bio,
            timezone: profile.timezone,
            preferences: json_object(&profile.preferences),
        },
    }
}

type UserWithProfile = (UserRow, ProfileRow);

/// The key stored for an email: none for an empty one (legacy rows), so
/// that empty emails never collide in the unique index.
fn email_key(email: &str) -> Option<String> {
    let key = IdentityKey::of(email);
    (!key.as_str().is_empty()).then(|| key.as_str().to_owned())
}

type WithProfile = diesel::dsl::InnerJoin<auth_user::table, users_userprofile::table>;
type BoxedUsers<'a> = diesel::dsl::IntoBoxed<'a, WithProfile, Db>;

fn with_profile() -> WithProfile {
    auth_user::table.inner_join(users_userprofile::table)
}

/// Appends one sort key of the staff user list.
fn then_order(query: BoxedUsers<'_>, item: UserOrderField) -> BoxedUsers<'_> {
    use UserSortKey as Key;
    match (item.field, item.descending) {
        (Key::Id, false) => query.then_order_by(auth_user::id.asc()),
        (Key::Id, true) => query.then_order_by(auth_user::id.desc()),
        (Key::Username, false) => query.then_order_by(auth_user::username_key.asc()),
        (Key::Username, true) => query.then_order_by(auth_user::username_key.desc()),
        (Key::Email, false) => query.then_order_by(auth_user::email_key.asc()),
        (Key::Email, true) => query.then_order_by(auth_user::email_key.desc()),
        (Key::DateJoined, false) => query.then_order_by(auth_user::date_joined.asc()),
        (Key::DateJoined, true) => query.then_order_by(auth_user::date_joined.desc()),
        // Never logged in sorts last in both directions, on both databases.
        (Key::LastLogin, false) => query
            .then_order_by(auth_user::last_login.is_null().asc())
            .then_order_by(auth_user::last_login.asc()),
        (Key::LastLogin, true) => query
            .then_order_by(auth_user::last_login.is_null().asc())
            .then_order_by(auth_user::last_login.desc()),
    }
}

impl UserRepository for DieselRepos<'_> {
    fn create(&mut self, user: &NewUser, now: DateTime<Utc>) -> RepoResult<User> {
        let id: i64 = diesel::insert_into(auth_user::table)
            .values((
                auth_user::password.eq(&user.password_hash),
                auth_user::is_superuser.eq(user.is_superuser),
                auth_user::username.eq(user.username.as_str()),
                auth_user::first_name.eq(user.first_name.as_str()),
                auth_user::last_name.eq(user.last_name.as_str()),
                auth_user::email.eq(user.email.as_str()),
                // The keys are computed here, from the values written beside
                // them, so no caller can store one without the other.
                auth_user::username_key.eq(Some(IdentityKey::of(user.username.as_str()).as_str())),
                auth_user::email_key.eq(email_key(user.email.as_str())),
                auth_user::is_staff.eq(user.is_staff),
                auth_user::is_active.eq(true),
                auth_user::date_joined.eq(to_db(now)),
            ))
            .returning(auth_user::id)
            .get_result(self.conn)
            .repo()?;
        let profile = UserProfile::default();
        diesel::insert_into(users_userprofile::table)
            .values((
                users_userprofile::user_id.eq(id),
                users_userprofile::phone.eq(&profile.phone),
                users_userprofile::organization.eq(&profile.organization),
                users_userprofile::bio.eq(&profile.bio),
                users_userprofile::timezone.eq(&profile.timezone),
                users_userprofile::preferences.eq(json_text(&profile.preferences)),
                users_userprofile::created_at.eq(to_db(now)),
                users_userprofile::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        self.find(UserId(id))?
            .ok_or_else(|| autodocs_domain::RepoError::Other("user vanished after insert".into()))
    }

    fn find(&mut self, id: UserId) -> RepoResult<Option<User>> {
        let row: Option<UserWithProfile> = with_profile()
            .filter(auth_user::id.eq(id.0))
            .select((UserRow::as_select(), ProfileRow::as_select()))
            .first(self.conn)
            .optional()
            .repo()?;
        Ok(row.map(|(user, profile)| to_user(user, profile)))
    }

    fn usernames(&mut self, ids: &[UserId]) -> RepoResult<BTreeMap<UserId, String>> {
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let rows: Vec<(i64, String)> = auth_user::table
            .filter(auth_user::id.eq_any(ids))
            .select((auth_user::id, auth_user::username))
            .load(self.conn)
            .repo()?;
        Ok(rows
            .into_iter()
            .map(|(id, username)| (UserId(id), username))
            .collect())
    }

    fn access(&mut self, id: UserId) -> RepoResult<Option<AccountAccess>> {
        let cache = self.access_cache;
        if let Some(hit) = cache.and_then(|cache| cache.get(id.0)) {
            return Ok(Some(hit));
        }
        let epoch = cache.map(|cache| cache.epoch());
        let flags: Option<(bool, bool)> = auth_user::table
            .find(id.0)
            .select((auth_user::is_active, auth_user::is_staff))
            .first(self.conn)
            .optional()
            .repo()?;
        let access = flags.map(|(is_active, is_staff)| AccountAccess {
            is_active,
            is_staff,
        });
        if let (Some(cache), Some(epoch), Some(access)) = (cache, epoch, access) {
            cache.put(id.0, access, epoch);
        }
        Ok(access)
    }

    fn find_credentials(&mut self, login: &IdentityKey) -> RepoResult<Option<Credentials>> {
        let key = login.as_str();
        let rows: Vec<UserWithProfile> = with_profile()
            .filter(
                auth_user::username_key
                    .eq(key)
                    .or(auth_user::email_key.eq(key)),
            )
            .select((UserRow::as_select(), ProfileRow::as_select()))
            .order(auth_user::id)
            .limit(2)
            .load(self.conn)
            .repo()?;
        // Each key is unique per column, so at most one row matches by email
        // and one by username: the email's owner wins, so that a username
        // shaped like someone's email never signs in as (or instead of) them.
        let mut rows = rows;
        let position = rows
            .iter()
            .position(|(user, _)| email_key(&user.email).as_deref() == Some(key))
            .unwrap_or(0);
        if rows.is_empty() {
            return Ok(None);
        }
        let (user, profile) = rows.swap_remove(position);
        let password_hash = user.password.clone();
        Ok(Some(Credentials {
            user: to_user(user, profile),
            password_hash,
        }))
    }

    fn password_hash(&mut self, id: UserId) -> RepoResult<Option<String>> {
        auth_user::table
            .find(id.0)
            .select(auth_user::password)
            .first(self.conn)
            .optional()
            .repo()
    }

    fn username_exists(&mut self, username: &IdentityKey) -> RepoResult<bool> {
        let query = auth_user::table.filter(auth_user::username_key.eq(username.as_str()));
        diesel::select(diesel::dsl::exists(query))
            .get_result(self.conn)
            .repo()
    }

    fn email_exists(&mut self, email: &IdentityKey, except: Option<UserId>) -> RepoResult<bool> {
        let query = auth_user::table
            .filter(auth_user::email_key.eq(email.as_str()))
            .filter(auth_user::id.ne(except.map_or(0, |id| id.0)));
        diesel::select(diesel::dsl::exists(query))
            .get_result(self.conn)
            .repo()
    }

    fn set_password_hash(&mut self, id: UserId, hash: &str) -> RepoResult<()> {
        diesel::update(auth_user::table.find(id.0))
            .set(auth_user::password.eq(hash))
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn replace_password_hash(
        &mut self,
        id: UserId,
        expected: &str,
        hash: &str,
    ) -> RepoResult<bool> {
        let changed = diesel::update(
            auth_user::table
                .find(id.0)
                .filter(auth_user::password.eq(expected)),
        )
        .set(auth_user::password.eq(hash))
        .execute(self.conn)
        .repo()?;
        Ok(changed == 1)
    }

    fn touch_last_login(&mut self, id: UserId, now: DateTime<Utc>) -> RepoResult<()> {
        diesel::update(auth_user::table.find(id.0))
            .set(auth_user::last_login.eq(Some(to_db(now))))
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn update_account(&mut self, id: UserId, changes: &UserChanges) -> RepoResult<()> {
        if changes.is_active.is_some() || changes.is_staff.is_some() {
            self.changed_accounts.push(id.0);
        }
        #[derive(AsChangeset)]
        #[diesel(table_name = auth_user)]
        struct AccountChanges<'a> {
            email: Option<&'a str>,
            // `Some(None)` clears the key (an empty email); `None` leaves it.
            email_key: Option<Option<String>>,
            first_name: Option<&'a str>,
            last_name: Option<&'a str>,
            is_active: Option<bool>,
            is_staff: Option<bool>,
        }
        let changeset = AccountChanges {
            email: changes.email.as_ref().map(|email| email.as_str()),
            email_key: changes
                .email
                .as_ref()
                .map(|email| email_key(email.as_str())),
            first_name: changes.first_name.as_ref().map(|name| name.as_str()),
            last_name: changes.last_name.as_ref().map(|name| name.as_str()),
            is_active: changes.is_active,
            is_staff: changes.is_staff,
        };
        if changes.touches_account() {
            diesel::update(auth_user::table.find(id.0))
                .set(changeset)
                .execute(self.conn)
                .repo()?;
        }
        Ok(())
    }

    fn save_profile(
        &mut self,
        id: UserId,
        profile: &UserProfile,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        diesel::update(users_userprofile::table.filter(users_userprofile::user_id.eq(id.0)))
            .set((
                users_userprofile::phone.eq(&profile.phone),
                users_userprofile::organization.eq(&profile.organization),
                users_userprofile::bio.eq(&profile.bio),
                users_userprofile::timezone.eq(&profile.timezone),
                users_userprofile::preferences.eq(json_text(&profile.preferences)),
                users_userprofile::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn list(&mut self, query: &UserQuery) -> RepoResult<PageResult<User>> {
        let filtered = || {
            let mut select = with_profile().into_boxed();
            if let Some(search) = query.search.as_deref().filter(|search| !search.is_empty()) {
                // The keys are folded in Rust, for every script, on both
                // databases; the term is folded alike.
                let pattern = like_contains(&normalise_identity(search));
                select = select.filter(
                    auth_user::username_key
                        .like(pattern.clone())
                        .escape('\\')
                        .or(auth_user::email_key.like(pattern).escape('\\')),
                );
            }
            if let Some(active) = query.is_active {
                select = select.filter(auth_user::is_active.eq(active));
            }
            if let Some(staff) = query.is_staff {
                select = select.filter(auth_user::is_staff.eq(staff));
            }
            select
        };
        let ordering: &[UserOrderField] = if query.ordering.is_empty() {
            &[UserOrderField::DEFAULT]
        } else {
            &query.ordering
        };
        let mut ordered = filtered();
        for item in ordering {
            ordered = then_order(ordered, *item);
        }
        // A total order, so pages never overlap: the id breaks ties.
        ordered = ordered.then_order_by(auth_user::id.asc());
        paginate(
            self.conn,
            &query.page,
            filtered().count(),
            ordered.select((UserRow::as_select(), ProfileRow::as_select())),
            |(user, profile): UserWithProfile| Ok(to_user(user, profile)),
        )
    }

    fn delete(&mut self, id: UserId) -> RepoResult<bool> {
        self.changed_accounts.push(id.0);
        let deleted = diesel::delete(auth_user::table.find(id.0))
            .execute(self.conn)
            .repo()?;
        Ok(deleted > 0)
    }
}
