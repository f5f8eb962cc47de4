use autodocs_domain::admin_session::{AdminSession, SessionDigest};
use autodocs_domain::ports::{AdminSessionRepository, RepoResult};
use autodocs_domain::user::UserId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::error::OrRepoError;
use crate::schema::admin_session;
use crate::time::{from_db, to_db};
use crate::uow::DieselRepos;

impl AdminSessionRepository for DieselRepos<'_> {
    fn open(
        &mut self,
        digest: &SessionDigest,
        user: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()> {
        diesel::insert_into(admin_session::table)
            .values((
                admin_session::digest.eq(digest.as_str()),
                admin_session::user_id.eq(user.0),
                admin_session::created_at.eq(to_db(now)),
                admin_session::expires_at.eq(to_db(expires_at)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn find_live(
        &mut self,
        digest: &SessionDigest,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<AdminSession>> {
        let row: Option<(i64, NaiveDateTime, NaiveDateTime)> = admin_session::table
            .filter(admin_session::digest.eq(digest.as_str()))
            .filter(admin_session::expires_at.gt(to_db(now)))
            .select((
                admin_session::user_id,
                admin_session::created_at,
                admin_session::expires_at,
            ))
            .first(self.conn)
            .optional()
            .repo()?;
        Ok(row.map(|(user, created_at, expires_at)| AdminSession {
            user: UserId(user),
            created_at: from_db(created_at),
            expires_at: from_db(expires_at),
        }))
    }

    fn close(&mut self, digest: &SessionDigest) -> RepoResult<bool> {
        let deleted =
            diesel::delete(admin_session::table.filter(admin_session::digest.eq(digest.as_str())))
                .execute(self.conn)
                .repo()?;
        Ok(deleted > 0)
    }

    fn close_all(&mut self, user: UserId) -> RepoResult<u64> {
        let deleted =
            diesel::delete(admin_session::table.filter(admin_session::user_id.eq(user.0)))
                .execute(self.conn)
                .repo()?;
        Ok(deleted as u64)
    }

    fn purge_expired(&mut self, now: DateTime<Utc>) -> RepoResult<u64> {
        let deleted =
            diesel::delete(admin_session::table.filter(admin_session::expires_at.lt(to_db(now))))
                .execute(self.conn)
                .repo()?;
        Ok(deleted as u64)
    }
}
