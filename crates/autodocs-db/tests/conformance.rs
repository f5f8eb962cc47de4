//! The port conformance suite (`autodocs-conformance`), on the diesel
//! adapter: on SQLite (a fresh file in a temporary directory) and, when
//! `TEST_DATABASE_URL` points at a PostgreSQL server, on a fresh
//! PostgreSQL database created for each test and dropped afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use autodocs_conformance::Fixture;
use autodocs_db::{Database, DieselUnitOfWork, PoolSettings};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// Drops a test database on drop (after the pool closed: the fixture drops
/// its unit of work first).
struct DropDatabase {
    admin_url: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = &self.name;
        match PgConnection::establish(&self.admin_url) {
            Ok(mut conn) => {
                if let Err(error) =
                    conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                {
                    eprintln!("could not drop test database {name}: {error}");
                }
            }
            Err(error) => eprintln!("could not connect to drop test database {name}: {error}"),
        }
    }
}

/// A name no other test (of this or another process) uses.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), n, nanos)
}

/// `url` with its database (path) replaced by `database`; query kept.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("database URL has a scheme");
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(authority, _)| authority);
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn open_migrated(url: &str) -> DieselUnitOfWork {
    let settings = PoolSettings {
        max_connections: 4,
        ..PoolSettings::default()
    };
    let database = Database::connect(url, &settings).expect("connect to the test database");
    database.migrate().expect("migrate the test database");
    DieselUnitOfWork::new(database)
}

/// A fresh, migrated SQLite file.
fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
    Fixture::with_guard(open_migrated(&url), dir)
}

/// A fresh, migrated PostgreSQL database, or `None` without `TEST_DATABASE_URL`.
fn postgres() -> Option<Fixture> {
    let Some(admin_url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return None;
    };
    let name = format!("conformance_{}", unique_suffix());
    let mut admin = PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("create the test database");
    drop(admin);
    // From here on the guard drops the database, even if migrating panics.
    let guard = DropDatabase {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    let uow = open_migrated(&with_database(&admin_url, &name));
    Some(Fixture::with_guard(uow, guard))
}

mod sqlite {
    autodocs_conformance::port_conformance!(super::sqlite);
}

mod postgres {
    autodocs_conformance::port_conformance!(super::postgres);
}
