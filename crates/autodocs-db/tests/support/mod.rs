//! The throwaway PostgreSQL databases the adapter's test suites run on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// A database created for one test on the server of `TEST_DATABASE_URL`;
/// dropped (connections forced out) when this value is dropped, so drop
/// the pool first.
pub struct PgTestDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl PgTestDatabase {
    /// Creates a database named `<prefix>_<unique suffix>`, or `None` when
    /// `TEST_DATABASE_URL` is not set.
    pub fn create(prefix: &str) -> Option<Self> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())?;
        let name = format!("{prefix}_{}", unique_suffix());
        let mut admin = PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create the test database");
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgTestDatabase {
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
