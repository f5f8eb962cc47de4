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

/// The throttle and lockout counters of a fresh, migrated database: what
/// `autodocs_db::rate_windows` gives a server (in process on SQLite, the
/// shared table on PostgreSQL).
mod rate_windows {
    use autodocs_conformance::WindowsFixture;
    use autodocs_db::{Backend, Database, PoolSettings};

    use super::support::PgTestDatabase;

    fn open(url: &str) -> Database {
        let settings = PoolSettings {
            max_connections: 4,
            ..PoolSettings::default()
        };
        let database = Database::connect(url, &settings).expect("connect to the test database");
        database.migrate().expect("migrate the test database");
        database
    }

    fn sqlite() -> WindowsFixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
        let database = open(&url);
        assert_eq!(database.backend(), Backend::Sqlite);
        WindowsFixture::with_guard(autodocs_db::rate_windows(&database), (database, dir))
    }

    fn postgres() -> Option<WindowsFixture> {
        let test_database = PgTestDatabase::create("rate_windows")?;
        let database = open(&test_database.url);
        // The shared table, not an in-process stand-in.
        assert!(autodocs_db::rate_windows(&database).blocks());
        Some(WindowsFixture::with_guard(
            autodocs_db::rate_windows(&database),
            (database, test_database),
        ))
    }

    mod sqlite {
        autodocs_conformance::rate_windows_conformance!(super::sqlite);
    }

    mod postgres {
        autodocs_conformance::rate_windows_conformance!(super::postgres);
    }
}

/// Two pools on one PostgreSQL database stand for two server processes:
/// they count against one limit.
#[test]
fn two_pools_on_one_postgres_database_share_a_limit() {
    use autodocs_domain::rate_window::{RateKey, WindowHit};

    let Some(test_database) = PgTestDatabase::create("rate_windows_shared") else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let settings = PoolSettings {
        max_connections: 2,
        ..PoolSettings::default()
    };
    let one = Database::connect(&test_database.url, &settings).expect("connect");
    one.migrate().expect("migrate");
    let two = Database::connect(&test_database.url, &settings).expect("connect again");
    let (first, second) = (
        autodocs_db::rate_windows(&one),
        autodocs_db::rate_windows(&two),
    );
    let key = RateKey::new("auth", "192.0.2.7");
    let minute = std::time::Duration::from_secs(60);
    let counted = |hit: WindowHit| matches!(hit, WindowHit::Counted { .. });
    assert!(counted(first.hit(&key, 3, minute).expect("hit")));
    assert!(counted(second.hit(&key, 3, minute).expect("hit")));
    assert!(counted(first.hit(&key, 3, minute).expect("hit")));
    assert!(!counted(second.hit(&key, 3, minute).expect("hit")));
    assert!(!counted(first.hit(&key, 3, minute).expect("hit")));
    drop((first, second, one, two));
}
