//! The database's identity (the one-row `autodocs_instance` table).

use autodocs_domain::instance::DatabaseIdentity;
use autodocs_domain::ports::{InstanceRepository, RepoResult};
use diesel::prelude::*;

use crate::error::OrRepoError;
use crate::schema::autodocs_instance as instance;
use crate::uow::DieselRepos;

impl InstanceRepository for DieselRepos<'_> {
    fn database_identity(&mut self) -> RepoResult<Option<DatabaseIdentity>> {
        let stored: Option<String> = instance::table
            .find(1)
            .select(instance::instance_id)
            .first(self.conn)
            .optional()
            .repo()?;
        // A row that is not an identity (edited by hand) ties nothing: the
        // sweep then refuses, as without one.
        Ok(stored.and_then(|raw| DatabaseIdentity::parse(&raw).ok()))
    }
}
