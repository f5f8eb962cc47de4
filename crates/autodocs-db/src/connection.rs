//! Connections, the pool and migrations for both backends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, ManageConnection, Pool, PooledConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// One connection type over both backends.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// PostgreSQL, for production and several processes.
    Postgresql(diesel::PgConnection),
    /// SQLite, the embedded default.
    Sqlite(diesel::SqliteConnection),
}

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite://path`, `sqlite:path` or a bare path.
    Sqlite,
}

impl Backend {
    /// The backend of a database URL.
    pub fn of(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Why the database could not be opened, migrated or reached.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The pool could not hand out a connection.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections kept open.
    pub max_connections: u32,
    /// How long a caller waits for a free connection.
    pub connection_timeout: Duration,
    /// SQLite's busy timeout: how long a writer waits for another process's lock.
    pub sqlite_busy_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            // Short: while the database is unreachable a request waits at
            // most this long for its 503, and a pool this size is never
            // busy that long when the database answers.
            connection_timeout: Duration::from_secs(2),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// How much of the database file SQLite reads through a memory map instead
/// of `read` calls. Every commit of another connection invalidates a
/// connection's page cache, so under writes readers re-read pages all the
/// time; mapped, that costs no system call and no copy. The mapped pages
/// are the kernel's page cache, shared by all connections.
const SQLITE_MMAP_BYTES: u64 = 256 * 1024 * 1024;

/// SQLite needs its pragmas on every connection the pool opens.
#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout_ms: u128,
}

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        if let AnyConnection::Sqlite(sqlite) = conn {
            sqlite
                .batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = {};",
                    self.busy_timeout_ms, SQLITE_MMAP_BYTES
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// How long after a database failure every connection is tested before it
/// is handed out: connections opened before an outage are dead sockets
/// once the server restarted, and each would otherwise fail one request.
const SUSPECT_WINDOW: Duration = Duration::from_secs(30);

/// How long a caller waits for a connection while the last attempt to open
/// one failed: the pool keeps retrying in the background, and a request
/// gets its 503 now rather than after the full timeout.
const FAIL_FAST_TIMEOUT: Duration = Duration::from_millis(250);

/// How often the SQLite file's identity is checked on checkout.
const FILE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What the pool has learned about whether the database answers.
#[derive(Debug)]
struct Availability {
    epoch: Instant,
    /// Milliseconds after `epoch` (plus one) of the last failure; 0: none.
    last_failure: AtomicU64,
    /// The last attempt to open a connection failed, none succeeded since.
    down: AtomicBool,
}

impl Availability {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_failure: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn note_failure(&self) {
        self.last_failure
            .store(self.now_ms().saturating_add(1), Ordering::Relaxed);
    }

    fn connect_failed(&self) {
        self.note_failure();
        self.down.store(true, Ordering::Relaxed);
    }

    fn connect_succeeded(&self) {
        self.down.store(false, Ordering::Relaxed);
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether pooled connections may be dead and must be tested first.
    fn suspect(&self) -> bool {
        let last = self.last_failure.load(Ordering::Relaxed);
        last != 0
            && (self.is_down()
                || self.now_ms().saturating_sub(last - 1)
                    < u64::try_from(SUSPECT_WINDOW.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The SQLite file a pool was opened on. A file deleted or replaced under a
/// running server must not be written into (the writes would vanish with
/// the unlinked inode) nor silently recreated empty: once the path no longer
/// names the file opened at start, the database is unavailable for good.
#[derive(Debug)]
struct SqliteFile {
    path: PathBuf,
    /// `(device, inode)` of the file, once the first connection created it.
    identity: OnceLock<(u64, u64)>,
    /// Milliseconds after the availability epoch of the last check (plus one).
    checked_at: AtomicU64,
    gone: AtomicBool,
}

impl SqliteFile {
    /// `None` for in-memory databases and URIs, which have no file to watch.
    fn for_url(url: &str) -> Option<Self> {
        let path = normalise_url(url);
        if path.is_empty() || path.starts_with(':') || path.starts_with("file:") {
            return None;
        }
        Some(Self {
            path: PathBuf::from(path),
            identity: OnceLock::new(),
            checked_at: AtomicU64::new(0),
            gone: AtomicBool::new(false),
        })
    }

    fn current_identity(&self) -> Option<(u64, u64)> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&self.path)
                .ok()
                .map(|meta| (meta.dev(), meta.ino()))
        }
        #[cfg(not(unix))]
        {
            std::fs::metadata(&self.path).ok().map(|_| (0, 0))
        }
    }

    /// Remembers the file the pool opened.
    fn remember(&self) {
        if let Some(identity) = self.current_identity() {
            let _ = self.identity.set(identity);
        }
    }

    /// Fails once the path stops naming the remembered file; `force` checks
    /// now, otherwise at most every [`FILE_CHECK_INTERVAL`].
    fn check(&self, availability: &Availability, force: bool) -> Result<(), String> {
        let gone = || {
            format!(
                "the database file {} was deleted or replaced",
                self.path.display()
            )
        };
        if self.gone.load(Ordering::Relaxed) {
            return Err(gone());
        }
        let Some(expected) = self.identity.get() else {
            return Ok(());
        };
        let now = availability.now_ms().saturating_add(1);
        let last = self.checked_at.load(Ordering::Relaxed);
        let interval = u64::try_from(FILE_CHECK_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if !force && last != 0 && now.saturating_sub(last) < interval {
            return Ok(());
        }
        self.checked_at.store(now, Ordering::Relaxed);
        if self.current_identity() == Some(*expected) {
            return Ok(());
        }
        self.gone.store(true, Ordering::Relaxed);
        availability.connect_failed();
        tracing::error!(path = %self.path.display(), "the database file was deleted or replaced; refusing to use it");
        Err(gone())
    }
}

/// Diesel's manager, plus what the pool learns about the database: failed
/// connects mark it down, and while failures are recent every connection
/// is tested on checkout, so dead ones are dropped instead of failing a
/// request each.
#[derive(Debug)]
struct Manager {
    inner: ConnectionManager<AnyConnection>,
    availability: Arc<Availability>,
    file: Option<Arc<SqliteFile>>,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        if let Some(file) = &self.file {
            // Opening a missing SQLite file would create an empty one.
            file.check(&self.availability, true).map_err(|reason| {
                diesel::r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(reason))
            })?;
        }
        match self.inner.connect() {
            Ok(conn) => {
                self.availability.connect_succeeded();
                Ok(conn)
            }
            Err(error) => {
                self.availability.connect_failed();
                Err(error)
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        if !self.availability.suspect() {
            return Ok(());
        }
        self.inner.is_valid(conn).inspect_err(|_| {
            self.availability.note_failure();
        })
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        self.inner.has_broken(conn)
    }
}

/// A pool of connections to one database.
#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager>,
    backend: Backend,
    availability: Arc<Availability>,
    file: Option<Arc<SqliteFile>>,
    connection_timeout: Duration,
    /// SQLite allows one writer at a time: writers of this process queue
    /// here instead of spinning on SQLite's busy handler.
    write_lock: Option<Arc<Mutex<()>>>,
    /// Account checks of this process, fresh for a second.
    access_cache: Arc<crate::access_cache::AccessCache>,
}

impl Database {
    /// Opens a pool for `url` (`sqlite://file`, `postgres://…`).
    pub fn connect(url: &str, settings: &PoolSettings) -> Result<Self, DatabaseError> {
        let backend = Backend::of(url);
        // One direct attempt first: the pool would retry until its timeout
        // and then report only that the URL suits none of its backends.
        probe(backend, url)?;
        let availability = Arc::new(Availability::new());
        let file = match backend {
            Backend::Sqlite => SqliteFile::for_url(url).map(Arc::new),
            Backend::Postgres => None,
        };
        let manager = Manager {
            inner: ConnectionManager::<AnyConnection>::new(connection_url(url)),
            availability: Arc::clone(&availability),
            file: file.clone(),
        };
        let builder = Pool::builder()
            .max_size(settings.max_connections)
            // Connections are opened on demand: a background connect racing
            // a short command's exit (`check`, `migrate`) must not happen.
            .min_idle(Some(0))
            .connection_timeout(settings.connection_timeout)
            // `Manager::is_valid` only tests while failures are recent.
            .test_on_check_out(true);
        let builder = match backend {
            Backend::Sqlite => builder.connection_customizer(Box::new(SqlitePragmas {
                busy_timeout_ms: settings.sqlite_busy_timeout.as_millis(),
            })),
            Backend::Postgres => builder,
        };
        let pool = builder
            .build(manager)
            .map_err(|error| DatabaseError::Connect(error.to_string()))?;
        let write_lock = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        let database = Self {
            pool,
            backend,
            availability,
            file,
            connection_timeout: settings.connection_timeout,
            write_lock,
            access_cache: Arc::default(),
        };
        // Fail now, with the reason, rather than on the first request.
        database.connection()?;
        if let Some(file) = &database.file {
            file.remember();
        }
        Ok(database)
    }

    /// The account checks this process keeps (see `access_cache`).
    pub(crate) fn access_cache(&self) -> &crate::access_cache::AccessCache {
        &self.access_cache
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection from the pool.
    ///
    /// Fails at once when the SQLite file was deleted or replaced, and
    /// within [`FAIL_FAST_TIMEOUT`] while the database refuses connections.
    pub fn connection(
        &self,
    ) -> Result<PooledConnection<impl ManageConnection<Connection = AnyConnection>>, DatabaseError>
    {
        if let Some(file) = &self.file {
            file.check(&self.availability, false)
                .map_err(DatabaseError::Connect)?;
        }
        let timeout = if self.availability.is_down() {
            FAIL_FAST_TIMEOUT
        } else {
            self.connection_timeout
        };
        self.pool.get_timeout(timeout).map_err(|error| {
            self.availability.note_failure();
            DatabaseError::Connect(error.to_string())
        })
    }

    /// Records that the database failed a statement (a lost connection):
    /// pooled connections are tested before use for a while.
    pub(crate) fn note_unavailable(&self) {
        self.availability.note_failure();
    }

    pub(crate) fn write_lock(&self) -> Option<&Arc<Mutex<()>>> {
        self.write_lock.as_ref()
    }

    fn migrations(&self) -> EmbeddedMigrations {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration, then fills in the users' identity
    /// keys that SQL could not compute (see
    /// [`Database::backfill_identity_keys`]; conflicts are logged as
    /// warnings); returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, DatabaseError> {
        let applied = {
            let mut conn = self.connection()?;
            let applied = conn
                .run_pending_migrations(self.migrations())
                .map_err(|error| DatabaseError::Migration(error.to_string()))?;
            applied.iter().map(ToString::to_string).collect()
        };
        for conflict in self.backfill_identity_keys()? {
            tracing::warn!(
                user_id = conflict.user_id,
                field = conflict.field,
                "{conflict}"
            );
        }
        Ok(applied)
    }

    /// Computes the identity keys (normalised username and email) of users
    /// written before the keys existed, or by an older server. Two accounts
    /// whose names differ only in case or Unicode form cannot both hold a
    /// key: the older keeps it, and the newer is returned, never an error,
    /// so that an operator can rename one of them.
    pub fn backfill_identity_keys(
        &self,
    ) -> Result<Vec<crate::identity::IdentityConflict>, DatabaseError> {
        let mut conn = self.connection()?;
        crate::identity::backfill_identity_keys(&mut conn)
            .map_err(|error| DatabaseError::Migration(format!("identity keys: {error}")))
    }

    /// The versions of migrations not yet applied.
    pub fn pending_migrations(&self) -> Result<Vec<String>, DatabaseError> {
        let mut conn = self.connection()?;
        let pending = conn
            .pending_migrations(self.migrations())
            .map_err(|error| DatabaseError::Migration(error.to_string()))?;
        Ok(pending
            .iter()
            .map(|migration| migration.name().to_string())
            .collect())
    }

    /// Every migration of this backend, oldest first, with whether it has
    /// been applied (`autodocs showmigrations`).
    pub fn migration_status(&self) -> Result<Vec<(String, bool)>, DatabaseError> {
        use diesel::migration::MigrationSource;
        let mut conn = self.connection()?;
        let applied = conn
            .applied_migrations()
            .map_err(|error| DatabaseError::Migration(error.to_string()))?;
        let all = MigrationSource::<diesel::pg::Pg>::migrations(&self.migrations())
            .map_err(|error| DatabaseError::Migration(error.to_string()))?;
        Ok(all
            .iter()
            .map(|migration| {
                let name = migration.name();
                (name.to_string(), applied.contains(&name.version()))
            })
            .collect())
    }

    /// Connections lent out and idle in the pool now.
    pub fn pool_use(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
        )
    }

    /// Whether the database answers a trivial query.
    pub fn ping(&self) -> bool {
        self.connection()
            .is_ok_and(|mut conn| conn.batch_execute("SELECT 1").is_ok())
    }
}

/// The URL the pool connects with: on PostgreSQL, unless the operator chose
/// otherwise, a connect timeout, so an unreachable server (packets dropped
/// rather than refused) costs seconds, not minutes of TCP retries.
pub(crate) fn connection_url(url: &str) -> String {
    let url = normalise_url(url);
    match Backend::of(&url) {
        Backend::Postgres if !url.contains("connect_timeout=") => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}connect_timeout={PG_CONNECT_TIMEOUT_SECONDS}")
        }
        _ => url,
    }
}

/// Opens one connection the way the pool will, to report why it cannot
/// in the database's own words, on one line.
fn probe(backend: Backend, url: &str) -> Result<(), DatabaseError> {
    match backend {
        Backend::Sqlite => {
            let Some(file) = SqliteFile::for_url(url) else {
                return Ok(());
            };
            match file.path.parent() {
                Some(folder) if !folder.as_os_str().is_empty() && !folder.is_dir() => {
                    Err(DatabaseError::Connect(format!(
                        "the SQLite database's folder {} does not exist; create it, or point \
                         database.url at a file in a folder that does",
                        folder.display()
                    )))
                }
                _ => Ok(()),
            }
        }
        Backend::Postgres => {
            use diesel::Connection;
            diesel::pg::PgConnection::establish(&connection_url(url))
                .map(drop)
                .map_err(|error| {
                    DatabaseError::Connect(format!(
                        "PostgreSQL refused or could not be reached: {}",
                        one_line(&error.to_string())
                    ))
                })
        }
    }
}

/// libpq's multi-line messages (a reason, then a hint) as one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// libpq's `connect_timeout` added to PostgreSQL URLs that set none.
pub(crate) const PG_CONNECT_TIMEOUT_SECONDS: u32 = 3;

/// Diesel's SQLite connection takes a path (or `file:` URI), not `sqlite://`.
fn normalise_url(url: &str) -> String {
    match Backend::of(url) {
        Backend::Postgres => url.to_owned(),
        Backend::Sqlite => url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url)
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(Backend::of("postgres://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("postgresql://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("sqlite://autodocs.sqlite3"), Backend::Sqlite);
        assert_eq!(
            normalise_url("sqlite://autodocs.sqlite3"),
            "autodocs.sqlite3"
        );
        assert_eq!(normalise_url("sqlite:///tmp/x.db"), "/tmp/x.db");
        assert_eq!(normalise_url(":memory:"), ":memory:");
        assert_eq!(
            connection_url("postgres://u@h/db"),
            "postgres://u@h/db?connect_timeout=3"
        );
        assert_eq!(
            connection_url("postgres://u@h/db?sslmode=disable"),
            "postgres://u@h/db?sslmode=disable&connect_timeout=3"
        );
        assert_eq!(
            connection_url("postgres://u@h/db?connect_timeout=9"),
            "postgres://u@h/db?connect_timeout=9"
        );
        assert_eq!(connection_url("sqlite:///tmp/x.db"), "/tmp/x.db");
    }
}
