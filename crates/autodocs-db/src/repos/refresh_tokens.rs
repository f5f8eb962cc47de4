use autodocs_domain::ports::{RefreshTokenRecord, RefreshTokenRepository, RepoResult};
use autodocs_domain::user::UserId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::error::OrRepoError;
use crate::schema::auth_refreshtoken;
use crate::time::{from_db, to_db};
use crate::uow::DieselRepos;

impl RefreshTokenRepository for DieselRepos<'_> {
    fn insert(
        &mut self,
        user: UserId,
        jti: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()> {
        diesel::insert_into(auth_refreshtoken::table)
            .values((
                auth_refreshtoken::user_id.eq(user.0),
                auth_refreshtoken::jti.eq(jti),
                auth_refreshtoken::created_at.eq(to_db(now)),
                auth_refreshtoken::expires_at.eq(to_db(expires_at)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn find(&mut self, jti: &str) -> RepoResult<Option<RefreshTokenRecord>> {
        type Row = (
            i64,
            String,
            NaiveDateTime,
            Option<NaiveDateTime>,
            Option<String>,
        );
        let row: Option<Row> = auth_refreshtoken::table
            .filter(auth_refreshtoken::jti.eq(jti))
            .select((
                auth_refreshtoken::user_id,
                auth_refreshtoken::jti,
                auth_refreshtoken::expires_at,
                auth_refreshtoken::revoked_at,
                auth_refreshtoken::replaced_by,
            ))
            .first(self.conn)
            .optional()
            .repo()?;
        Ok(row.map(
            |(user, jti, expires_at, revoked_at, replaced_by)| RefreshTokenRecord {
                user: UserId(user),
                jti,
                expires_at: from_db(expires_at),
                revoked_at: revoked_at.map(from_db),
                replaced_by,
            },
        ))
    }

    #[allow(clippy::needless_lifetimes)] // matches the port, whose lifetime mockall needs
    fn revoke<'a>(
        &mut self,
        jti: &str,
        replaced_by: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let updated = diesel::update(
            auth_refreshtoken::table
                .filter(auth_refreshtoken::jti.eq(jti))
                .filter(auth_refreshtoken::revoked_at.is_null()),
        )
        .set((
            auth_refreshtoken::revoked_at.eq(Some(to_db(now))),
            auth_refreshtoken::replaced_by.eq(replaced_by),
        ))
        .execute(self.conn)
        .repo()?;
        Ok(updated == 1)
    }

    fn revoke_all(&mut self, user: UserId, now: DateTime<Utc>) -> RepoResult<u64> {
        let updated = diesel::update(
            auth_refreshtoken::table
                .filter(auth_refreshtoken::user_id.eq(user.0))
                .filter(auth_refreshtoken::revoked_at.is_null()),
        )
        .set(auth_refreshtoken::revoked_at.eq(Some(to_db(now))))
        .execute(self.conn)
        .repo()?;
        Ok(updated as u64)
    }

    fn purge_expired(&mut self, now: DateTime<Utc>) -> RepoResult<u64> {
        let deleted = diesel::delete(
            auth_refreshtoken::table.filter(auth_refreshtoken::expires_at.lt(to_db(now))),
        )
        .execute(self.conn)
        .repo()?;
        Ok(deleted as u64)
    }
}
