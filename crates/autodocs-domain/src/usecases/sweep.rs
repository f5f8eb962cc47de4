//! The storage sweep, and the marker that ties a media root to its database.
//!
//! A stored file without a document row is garbage only if the database
//! the server talks to is the one the files belong to. So the sweep owns
//! these rules (the storage adapter only does the file work):
//!
//! - it refuses, touching no stored file, unless the media root's marker
//!   names this database ([`bind_media_root`] writes it), and
//!   while the database has no document rows at all;
//! - an unreferenced stored file is never deleted: it is moved to
//!   quarantine, at most [`SweepPolicy::max_moves`] per sweep, and deleted
//!   only once it has sat there for [`SweepPolicy::quarantine_for`];
//! - only half-received uploads (temporary files untouched for
//!   [`SweepPolicy::temporary_age`]) are deleted outright: no row can ever
//!   reference them, whatever the database, so they go even when the rest
//!   of the sweep is refused.

use std::fmt;

use chrono::Duration;

use crate::document::StorageKey;
use crate::error::RepoError;
use crate::instance::DatabaseIdentity;
use crate::ports::{self, FileStorage, UnitOfWork};

/// How keys are checked against the database, per query.
const KEY_BATCH: usize = 500;

/// The limits of a sweep (from the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    /// An unreferenced stored file younger than this is spared (its row
    /// may be about to commit in another process).
    pub min_age: Duration,
    /// A temporary file untouched for this long is a dead upload.
    pub temporary_age: Duration,
    /// How long a quarantined file is kept before it is deleted.
    pub quarantine_for: Duration,
    /// The most stored files one sweep moves to quarantine; the rest wait
    /// for the next sweep (so a mistake costs a bounded, restorable amount).
    pub max_moves: u64,
}

impl SweepPolicy {
    /// The margin added to the body timeout for temporary files: a live
    /// upload touches its file every few seconds while bytes arrive, and a
    /// busy server may take a moment between receiving and storing.
    pub const TEMPORARY_MARGIN: Duration = Duration::seconds(60);

    /// The age after which a temporary file is a dead upload, given the
    /// body timeout (a body that sends nothing for that long is cut).
    pub fn temporary_age_for(body_timeout: std::time::Duration) -> Duration {
        Duration::from_std(body_timeout).unwrap_or(Duration::days(1)) + Self::TEMPORARY_MARGIN
    }
}

impl Default for SweepPolicy {
    fn default() -> Self {
        Self {
            min_age: Duration::minutes(10),
            temporary_age: Self::temporary_age_for(std::time::Duration::from_secs(30)),
            quarantine_for: Duration::days(7),
            max_moves: 100,
        }
    }
}

/// Why a sweep left the stored files alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepRefusal {
    /// The database has no identity yet (its migrations are not applied).
    NoDatabaseIdentity,
    /// The media root carries no marker, so nothing ties its files to this
    /// database.
    Unmarked,
    /// The media root is marked for another database.
    OtherDatabase {
        /// What the marker says.
        marker: String,
        /// This database's identity.
        database: DatabaseIdentity,
    },
    /// The database has no document rows: every file would look
    /// unreferenced, which proves nothing.
    NoDocuments,
}

impl fmt::Display for SweepRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDatabaseIdentity => f.write_str(
                "the database has no identity yet (run `autodocs migrate`), \
                 so nothing ties the media root to it",
            ),
            Self::Unmarked => f.write_str(
                "the media root carries no marker of this database \
                 (`autodocs migrate` writes it when the media root is new or \
                 clearly belongs to this database; see docs/operations.md)",
            ),
            Self::OtherDatabase { marker, database } => write!(
                f,
                "the media root is marked for database {marker}, but this is \
                 database {database} (wrong DATABASE_URL or media root?)"
            ),
            Self::NoDocuments => f.write_str(
                "the database has no document rows, so no stored file can be \
                 proven unreferenced",
            ),
        }
    }
}

/// What a sweep did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Nothing was changed: this is what the sweep would do.
    pub dry_run: bool,
    /// Half-received uploads deleted.
    pub temporary: u64,
    /// Why stored files were left alone; `None` when they were swept.
    pub refused: Option<SweepRefusal>,
    /// Unreferenced stored files moved to quarantine.
    pub quarantined: Vec<StorageKey>,
    /// Unreferenced stored files left for a later sweep (past the cap).
    pub deferred: u64,
    /// Quarantined files deleted after their time in quarantine.
    pub purged: Vec<StorageKey>,
}

impl SweepReport {
    /// Whether the sweep changed (or would change) anything.
    pub fn is_empty(&self) -> bool {
        self.temporary == 0 && self.quarantined.is_empty() && self.purged.is_empty()
    }
}

/// What [`StorageSweep::bind_media_root`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRootBinding {
    /// The marker was written: the media root now belongs to this database.
    Bound(DatabaseIdentity),
    /// The marker already names this database.
    AlreadyBound(DatabaseIdentity),
    /// The marker names another database; it is left alone (never rebound).
    OtherDatabase {
        /// What the marker says.
        marker: String,
        /// This database's identity.
        database: DatabaseIdentity,
    },
    /// The media root has no marker but holds stored files this database
    /// does not reference (it has no documents, or none of them is among
    /// the files): not bound, so the sweep refuses until an operator
    /// decides (see docs/operations.md).
    ForeignFiles,
    /// The database has no identity (its migrations are not applied).
    NoDatabaseIdentity,
}

/// The refusal, if any, for a database identity and a marker.
fn refusal(identity: Option<&DatabaseIdentity>, marker: Option<&str>) -> Option<SweepRefusal> {
    let identity = match identity {
        Some(identity) => identity,
        None => return Some(SweepRefusal::NoDatabaseIdentity),
    };
    match marker {
        None => Some(SweepRefusal::Unmarked),
        Some(marker) if marker != identity.as_str() => Some(SweepRefusal::OtherDatabase {
            marker: marker.to_owned(),
            database: identity.clone(),
        }),
        Some(_) => None,
    }
}

/// The database's identity and whether it has document rows.
fn database_facts(uow: &dyn UnitOfWork) -> Result<(Option<DatabaseIdentity>, bool), RepoError> {
    ports::read(uow, |repos| {
        let identity = repos.instance().database_identity()?;
        let any = repos.documents().any_exist()?;
        Ok((identity, any))
    })
}

/// Which of `keys` the database references.
fn referenced(uow: &dyn UnitOfWork, keys: &[StorageKey]) -> Result<Vec<StorageKey>, RepoError> {
    ports::read(uow, |repos| repos.documents().existing_storage_keys(keys))
}

/// Ties the media root `storage` to the database behind `uow` by writing
/// its marker, when it is safe to: the media root has no marker, and either
/// holds no stored file or holds files some of which this database
/// references (so a fresh database never claims a media root full of
/// another database's files). A marker for another database is never
/// replaced. Run by `migrate` (the command and serve's auto-migrate),
/// which needs no other service; the caller logs the outcome.
pub fn bind_media_root(
    uow: &dyn UnitOfWork,
    storage: &dyn FileStorage,
) -> Result<MediaRootBinding, RepoError> {
    let (identity, any_documents) = database_facts(uow)?;
    let Some(identity) = identity else {
        return Ok(MediaRootBinding::NoDatabaseIdentity);
    };
    match storage.read_marker()? {
        Some(marker) if marker == identity.as_str() => {
            return Ok(MediaRootBinding::AlreadyBound(identity));
        }
        Some(marker) => {
            return Ok(MediaRootBinding::OtherDatabase {
                marker,
                database: identity,
            });
        }
        None => {}
    }
    let stored = storage.stale_keys(std::time::Duration::ZERO)?;
    if !stored.is_empty() {
        let mut ours = false;
        if any_documents {
            for keys in stored.chunks(KEY_BATCH) {
                if !referenced(uow, keys)?.is_empty() {
                    ours = true;
                    break;
                }
            }
        }
        if !ours {
            return Ok(MediaRootBinding::ForeignFiles);
        }
    }
    storage.write_marker(&identity)?;
    Ok(MediaRootBinding::Bound(identity))
}

super::service!(
    /// The storage sweep: files no document references, moved aside or deleted.
    ///
    /// ```
    /// # let memory = autodocs_memory::services();
    /// # let services = &memory.services;
    /// // The storage is bound to this database first (a marker), so a
    /// // sweep never runs over another database's files ...
    /// services.sweep().bind_media_root()?;
    /// // ... and a dry run reports what it would do, touching nothing.
    /// let report = services.sweep().run(true)?;
    /// assert!(report.quarantined.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    StorageSweep
);

impl StorageSweep {
    /// [`bind_media_root`] on these services' database and storage.
    pub fn bind_media_root(&self) -> Result<MediaRootBinding, RepoError> {
        bind_media_root(&*self.context.uow, &*self.context.storage)
    }

    /// Sweeps the media root under [`Limits::sweep`](super::Limits::sweep) (see the module
    /// documentation for the rules). With `dry_run`, changes nothing and
    /// reports what it would do. A refusal is a report, not an error: the
    /// caller logs or prints its reason.
    pub fn run(&self, dry_run: bool) -> Result<SweepReport, RepoError> {
        let policy = self.context.sweep;
        let mut report = SweepReport {
            dry_run,
            temporary: self
                .context
                .storage
                .sweep_temporary(to_std(policy.temporary_age), dry_run)?,
            ..SweepReport::default()
        };
        let (identity, any_documents) = database_facts(&*self.context.uow)?;
        let marker = self.context.storage.read_marker()?;
        report.refused = refusal(identity.as_ref(), marker.as_deref())
            .or_else(|| (!any_documents).then_some(SweepRefusal::NoDocuments));
        if report.refused.is_some() {
            return Ok(report);
        }

        for key in self
            .context
            .storage
            .expired_quarantine(to_std(policy.quarantine_for))?
        {
            if dry_run || self.context.storage.purge_quarantined(&key)? {
                report.purged.push(key);
            }
        }

        let stale = self.context.storage.stale_keys(to_std(policy.min_age))?;
        for keys in stale.chunks(KEY_BATCH) {
            let known = referenced(&*self.context.uow, keys)?;
            for key in keys.iter().filter(|key| !known.contains(key)) {
                if report.quarantined.len() as u64 >= policy.max_moves {
                    report.deferred += 1;
                } else if dry_run || self.context.storage.quarantine(key)? {
                    report.quarantined.push(key.clone());
                }
            }
        }
        Ok(report)
    }
}

fn to_std(duration: Duration) -> std::time::Duration {
    duration.to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mockall::predicate::eq;

    use super::*;
    use crate::ports::{MockFileStorage, MockInstanceRepository, MockPasswordHasher};
    use crate::usecases::Services;
    use crate::usecases::testing::{MockRepos, MockUow};

    const OURS: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn key(n: u8) -> StorageKey {
        StorageKey::parse(&format!("00000000-0000-4000-8000-0000000000{n:02}")).expect("key")
    }

    /// A unit of work whose database has identity `identity`, `documents`
    /// document rows, and references exactly `referenced`.
    fn uow(identity: Option<&str>, documents: bool, referenced: Vec<StorageKey>) -> Arc<MockUow> {
        let mut repos = MockRepos::default();
        let mut instance = MockInstanceRepository::new();
        let identity = identity.map(|raw| DatabaseIdentity::parse(raw).expect("identity"));
        instance
            .expect_database_identity()
            .returning(move || Ok(identity.clone()));
        repos.instance = instance;
        repos
            .documents
            .expect_any_exist()
            .returning(move || Ok(documents));
        repos
            .documents
            .expect_existing_storage_keys()
            .returning(move |keys| {
                Ok(keys
                    .iter()
                    .filter(|key| referenced.contains(key))
                    .cloned()
                    .collect())
            });
        Arc::new(MockUow {
            repos: std::sync::Mutex::new(repos),
            ..MockUow::default()
        })
    }

    fn with_storage(uow: Arc<MockUow>, storage: MockFileStorage) -> Services {
        with_storage_and_policy(uow, storage, SweepPolicy::default())
    }

    fn with_storage_and_policy(
        uow: Arc<MockUow>,
        storage: MockFileStorage,
        sweep: SweepPolicy,
    ) -> Services {
        let mut ports = crate::usecases::testing::ports(
            uow,
            MockPasswordHasher::new(),
            crate::ports::MockTokenService::new(),
        );
        ports.storage = Arc::new(storage);
        let limits = crate::usecases::Limits {
            sweep,
            ..crate::usecases::Limits::default()
        };
        Services::new(ports, limits)
    }

    /// Storage that holds stale files `stored`, marked `marker`, and fails
    /// the test if anything is moved or purged.
    fn untouchable(marker: Option<&str>, stored: Vec<StorageKey>) -> MockFileStorage {
        let mut storage = MockFileStorage::new();
        let marker = marker.map(str::to_owned);
        storage
            .expect_read_marker()
            .returning(move || Ok(marker.clone()));
        storage.expect_sweep_temporary().returning(|_, _| Ok(2));
        storage
            .expect_stale_keys()
            .returning(move |_| Ok(stored.clone()));
        storage.expect_quarantine().never();
        storage.expect_purge_quarantined().never();
        storage.expect_delete().never();
        storage.expect_write_marker().never();
        storage
    }

    #[test]
    fn refuses_without_a_marker_of_this_database_or_without_documents() {
        let stored = vec![key(1), key(2)];
        let cases = [
            (Some(OURS), None, true, SweepRefusal::Unmarked),
            (
                Some(OURS),
                Some("feedfacefeedfacefeedfacefeedface"),
                true,
                SweepRefusal::OtherDatabase {
                    marker: "feedfacefeedfacefeedfacefeedface".to_owned(),
                    database: DatabaseIdentity::parse(OURS).expect("identity"),
                },
            ),
            (Some(OURS), Some(OURS), false, SweepRefusal::NoDocuments),
            (None, Some(OURS), true, SweepRefusal::NoDatabaseIdentity),
        ];
        for (identity, marker, documents, expected) in cases {
            let services = with_storage(
                uow(identity, documents, Vec::new()),
                untouchable(marker, stored.clone()),
            );
            let report = services.sweep().run(false).expect("sweep");
            assert_eq!(report.refused, Some(expected.clone()), "{expected}");
            assert!(report.quarantined.is_empty());
            assert!(report.purged.is_empty());
            // Dead uploads go whatever the database: nothing can reference them.
            assert_eq!(report.temporary, 2);
        }
    }

    #[test]
    fn moves_unreferenced_files_to_quarantine_up_to_the_cap() {
        let stored: Vec<StorageKey> = (1..=5).map(key).collect();
        let mut storage = MockFileStorage::new();
        storage
            .expect_read_marker()
            .returning(|| Ok(Some(OURS.to_owned())));
        storage.expect_sweep_temporary().returning(|_, _| Ok(0));
        let listed = stored.clone();
        storage
            .expect_stale_keys()
            .returning(move |_| Ok(listed.clone()));
        storage
            .expect_expired_quarantine()
            .with(eq(std::time::Duration::from_secs(7 * 24 * 3600)))
            .returning(|_| Ok(vec![key(9)]));
        storage
            .expect_purge_quarantined()
            .with(eq(key(9)))
            .times(1)
            .returning(|_| Ok(true));
        // 1 and 3 are referenced; of 2, 4, 5 the cap lets two move.
        storage
            .expect_quarantine()
            .withf(|key_| *key_ != key(1) && *key_ != key(3))
            .times(2)
            .returning(|_| Ok(true));
        storage.expect_delete().never();
        let policy = SweepPolicy {
            max_moves: 2,
            ..SweepPolicy::default()
        };
        let services =
            with_storage_and_policy(uow(Some(OURS), true, vec![key(1), key(3)]), storage, policy);
        let report = services.sweep().run(false).expect("sweep");
        assert_eq!(report.refused, None);
        assert_eq!(report.quarantined, vec![key(2), key(4)]);
        assert_eq!(report.deferred, 1);
        assert_eq!(report.purged, vec![key(9)]);
    }

    #[test]
    fn a_dry_run_changes_nothing() {
        let mut storage = untouchable(Some(OURS), vec![key(1), key(2)]);
        storage.checkpoint();
        storage
            .expect_read_marker()
            .returning(|| Ok(Some(OURS.to_owned())));
        storage
            .expect_sweep_temporary()
            .withf(|_, dry_run| *dry_run)
            .returning(|_, _| Ok(1));
        storage
            .expect_stale_keys()
            .returning(|_| Ok(vec![key(1), key(2)]));
        storage
            .expect_expired_quarantine()
            .returning(|_| Ok(vec![key(7)]));
        storage.expect_quarantine().never();
        storage.expect_purge_quarantined().never();
        let services = with_storage(uow(Some(OURS), true, vec![key(1)]), storage);
        let report = services.sweep().run(true).expect("sweep");
        assert!(report.dry_run);
        assert_eq!(report.quarantined, vec![key(2)]);
        assert_eq!(report.purged, vec![key(7)]);
        assert_eq!(report.temporary, 1);
    }

    #[test]
    fn binding_writes_a_marker_only_when_safe() {
        // A fresh media root: bound.
        let mut storage = untouchable(None, Vec::new());
        storage.checkpoint();
        storage.expect_read_marker().returning(|| Ok(None));
        storage.expect_stale_keys().returning(|_| Ok(Vec::new()));
        storage
            .expect_write_marker()
            .withf(|identity| identity.as_str() == OURS)
            .times(1)
            .returning(|_| Ok(()));
        let services = with_storage(uow(Some(OURS), false, Vec::new()), storage);
        assert_eq!(
            services.sweep().bind_media_root().expect("bind"),
            MediaRootBinding::Bound(DatabaseIdentity::parse(OURS).expect("identity"))
        );

        // Files, but an empty database (the incident): not bound.
        let services = with_storage(
            uow(Some(OURS), false, Vec::new()),
            untouchable(None, vec![key(1)]),
        );
        assert_eq!(
            services.sweep().bind_media_root().expect("bind"),
            MediaRootBinding::ForeignFiles
        );

        // Files, and a database with documents, none of them these files: not bound.
        let services = with_storage(
            uow(Some(OURS), true, vec![key(5)]),
            untouchable(None, vec![key(1)]),
        );
        assert_eq!(
            services.sweep().bind_media_root().expect("bind"),
            MediaRootBinding::ForeignFiles
        );

        // Marked for another database: never rebound.
        let services = with_storage(
            uow(Some(OURS), true, vec![key(1)]),
            untouchable(Some("feedface"), vec![key(1)]),
        );
        assert!(matches!(
            services.sweep().bind_media_root().expect("bind"),
            MediaRootBinding::OtherDatabase { .. }
        ));

        // Files this database references: bound.
        let mut storage = untouchable(None, vec![key(1), key(2)]);
        storage.checkpoint();
        storage.expect_read_marker().returning(|| Ok(None));
        storage
            .expect_stale_keys()
            .returning(|_| Ok(vec![key(1), key(2)]));
        storage.expect_write_marker().times(1).returning(|_| Ok(()));
        let services = with_storage(uow(Some(OURS), true, vec![key(2)]), storage);
        assert!(matches!(
            services.sweep().bind_media_root().expect("bind"),
            MediaRootBinding::Bound(_)
        ));
    }
}
