//! The port conformance suite (`autodocs-conformance`), on the diesel
//! adapter: on SQLite (a fresh file in a temporary directory) and, when
//! `TEST_DATABASE_URL` points at a PostgreSQL server, on a fresh
//! PostgreSQL database created for each test and dropped afterwards.

mod support;

use autodocs_conformance::Fixture;
use autodocs_db::{Database, DieselUnitOfWork, PoolSettings};

use support::PgTestDatabase;

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
    let Some(database) = PgTestDatabase::create("conformance") else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return None;
    };
    // From here on the guard drops the database, even if migrating panics.
    let uow = open_migrated(&database.url);
    Some(Fixture::with_guard(uow, database))
}

mod sqlite {
    autodocs_conformance::port_conformance!(super::sqlite);
}

mod postgres {
    autodocs_conformance::port_conformance!(super::postgres);
}
