//! Filling in the identity keys of users written before they existed.
//!
//! The keys (`auth_user.username_key`, `.email_key`) are the domain's
//! `IdentityKey`: Unicode normalisation and case folding that SQL cannot do
//! on SQLite, so the migration that adds the columns leaves them empty and
//! this pass, run by [`crate::Database::migrate`], computes them in Rust.

use autodocs_domain::user::IdentityKey;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::connection::AnyConnection;
use crate::schema::auth_user;

/// Two existing accounts whose usernames (or emails) differ only in case or
/// compatibility form, found while filling in the keys: the older account
/// keeps the key; the newer one's stays empty, so it cannot sign in by that
/// name until an operator renames one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConflict {
    /// The account left without a key.
    pub user_id: i64,
    /// `username` or `email`.
    pub field: &'static str,
    /// Its value.
    pub value: String,
    /// The account that holds the same key, if it could be read.
    pub holder_id: Option<i64>,
}

impl std::fmt::Display for IdentityConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let holder = self
            .holder_id
            .map_or_else(|| "another user".to_owned(), |id| format!("user {id}"));
        write!(
            f,
            "user {} has {} {:?}, the same as {holder}'s but for case or Unicode form; \
             its {}_key is left empty (it cannot sign in with it) until one of them is changed",
            self.user_id, self.field, self.value, self.field
        )
    }
}

type Row = (i64, String, String, Option<String>, Option<String>);

/// Computes the keys of every user that lacks one; returns the accounts
/// whose key another account already holds, in id order (the older account
/// keeps the key). Each update is its own statement, so a refused one
/// leaves the others in place, on PostgreSQL too.
pub(crate) fn backfill_identity_keys(
    conn: &mut AnyConnection,
) -> QueryResult<Vec<IdentityConflict>> {
    let rows: Vec<Row> = auth_user::table
        .filter(
            auth_user::username_key
                .is_null()
                .or(auth_user::email_key.is_null().and(auth_user::email.ne(""))),
        )
        .select((
            auth_user::id,
            auth_user::username,
            auth_user::email,
            auth_user::username_key,
            auth_user::email_key,
        ))
        .order(auth_user::id)
        .load(conn)?;
    let mut conflicts = Vec::new();
    for (id, username, email, username_key, email_key) in rows {
        if username_key.is_none() {
            let key = IdentityKey::of(&username);
            let updated = diesel::update(
                auth_user::table
                    .find(id)
                    .filter(auth_user::username_key.is_null()),
            )
            .set(auth_user::username_key.eq(key.as_str()))
            .execute(conn);
            if is_conflict(updated)? {
                let holder_id = auth_user::table
                    .filter(auth_user::username_key.eq(key.as_str()))
                    .select(auth_user::id)
                    .first(conn)
                    .optional()?;
                conflicts.push(IdentityConflict {
                    user_id: id,
                    field: "username",
                    value: username,
                    holder_id,
                });
            }
        }
        let key = IdentityKey::of(&email);
        if email_key.is_none() && !key.as_str().is_empty() {
            let updated = diesel::update(
                auth_user::table
                    .find(id)
                    .filter(auth_user::email_key.is_null()),
            )
            .set(auth_user::email_key.eq(key.as_str()))
            .execute(conn);
            if is_conflict(updated)? {
                let holder_id = auth_user::table
                    .filter(auth_user::email_key.eq(key.as_str()))
                    .select(auth_user::id)
                    .first(conn)
                    .optional()?;
                conflicts.push(IdentityConflict {
                    user_id: id,
                    field: "email",
                    value: email,
                    holder_id,
                });
            }
        }
    }
    Ok(conflicts)
}

/// Whether an update was refused by a unique index; other errors pass on.
fn is_conflict(updated: QueryResult<usize>) -> QueryResult<bool> {
    match updated {
        Ok(_) => Ok(false),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(true),
        Err(error) => Err(error),
    }
}
