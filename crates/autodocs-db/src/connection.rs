//! Connections, the pool and migrations for both backends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
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
            connection_timeout: Duration::from_secs(5),
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

/// A pool of connections to one database.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager<AnyConnection>>,
    backend: Backend,
    /// SQLite allows one writer at a time: writers of this process queue
    /// here instead of spinning on SQLite's busy handler.
    write_lock: Option<Arc<Mutex<()>>>,
}

impl Database {
    /// Opens a pool for `url` (`sqlite://file`, `postgres://…`).
    pub fn connect(url: &str, settings: &PoolSettings) -> Result<Self, DatabaseError> {
        let backend = Backend::of(url);
        let manager = ConnectionManager::<AnyConnection>::new(normalise_url(url));
        let builder = Pool::builder()
            .max_size(settings.max_connections)
            // Connections are opened on demand: a background connect racing
            // a short command's exit (`check`, `migrate`) must not happen.
            .min_idle(Some(0))
            .connection_timeout(settings.connection_timeout)
            .test_on_check_out(false);
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
            write_lock,
        };
        // Fail now, with the reason, rather than on the first request.
        database.connection()?;
        Ok(database)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection from the pool.
    pub fn connection(
        &self,
    ) -> Result<PooledConnection<ConnectionManager<AnyConnection>>, DatabaseError> {
        self.pool
            .get()
            .map_err(|error| DatabaseError::Connect(error.to_string()))
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

    /// Applies every pending migration; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, DatabaseError> {
        let mut conn = self.connection()?;
        let applied = conn
            .run_pending_migrations(self.migrations())
            .map_err(|error| DatabaseError::Migration(error.to_string()))?;
        Ok(applied.iter().map(ToString::to_string).collect())
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

    /// Whether the database answers a trivial query.
    pub fn ping(&self) -> bool {
        self.connection()
            .is_ok_and(|mut conn| conn.batch_execute("SELECT 1").is_ok())
    }
}

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
    }
}
