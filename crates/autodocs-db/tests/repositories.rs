//! The repository test suite of the diesel adapter.
//!
//! Every test body runs against SQLite (a fresh file in a temporary
//! directory) and, when `TEST_DATABASE_URL` points at a PostgreSQL server,
//! against a fresh PostgreSQL database created for the test and dropped
//! afterwards.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use autodocs_db::{Backend, Database, DieselUnitOfWork, PoolSettings};
use autodocs_domain::activity_log::{Activity, ActivityQuery, NewActivity};
use autodocs_domain::paging::PageRequest;
use autodocs_domain::ports::{Repositories, read, transaction};
use autodocs_domain::user::{
    Email, NewUser, PersonName, User, UserChanges, UserId, UserProfile, UserQuery, Username,
};
use autodocs_domain::{Error, RepoError};
use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::json;

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

/// Keeps the test database alive; removes it on drop.
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = self {
            match PgConnection::establish(admin_url) {
                Ok(mut conn) => {
                    if let Err(error) = conn
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    {
                        eprintln!("could not drop test database {name}: {error}");
                    }
                }
                Err(error) => eprintln!("could not connect to drop test database {name}: {error}"),
            }
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

fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: 10,
        ..PoolSettings::default()
    }
}

/// Opens and migrates `url`, checking the migrations were pending before.
fn open_migrated(url: &str) -> DieselUnitOfWork {
    let database = Database::connect(url, &settings()).expect("connect to the test database");
    let pending = database
        .pending_migrations()
        .expect("list pending migrations");
    assert!(
        !pending.is_empty(),
        "a fresh database has pending migrations"
    );
    let applied = database.migrate().expect("migrate the test database");
    assert_eq!(
        applied.len(),
        pending.len(),
        "every pending migration applied: {applied:?} vs {pending:?}"
    );
    DieselUnitOfWork::new(database)
}

/// A fresh, migrated database of `backend`, or `None` if that backend is not configured.
fn fresh(backend: Backend) -> Option<(DieselUnitOfWork, Guard)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join("test.sqlite3");
            let url = format!("sqlite://{}", path.display());
            let uow = open_migrated(&url);
            Some((uow, Guard::Sqlite(dir)))
        }
        Backend::Postgres => {
            let admin_url = std::env::var("TEST_DATABASE_URL")
                .ok()
                .filter(|url| !url.trim().is_empty())?;
            let name = format!("repo_test_{}", unique_suffix());
            let mut admin =
                PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .expect("create the test database");
            drop(admin);
            // From here on the guard drops the database, even if migrating panics.
            let guard = Guard::Postgres {
                admin_url: admin_url.clone(),
                name: name.clone(),
            };
            let uow = open_migrated(&with_database(&admin_url, &name));
            Some((uow, guard))
        }
    }
}

fn run(backend: Backend, test: fn(&DieselUnitOfWork)) {
    let Some((uow, guard)) = fresh(backend) else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    test(&uow);
    // Close the pool before the database is dropped.
    drop(uow);
    drop(guard);
}

/// Generates `mod name { fn sqlite(); fn postgres(); }` running the same body.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::run(autodocs_db::Backend::Sqlite, super::$name);
                }

                #[test]
                fn postgres() {
                    super::run(autodocs_db::Backend::Postgres, super::$name);
                }
            }
        )*
    };
}

on_both_backends!(
    migrations_apply_and_are_idempotent,
    users_create_and_find_case_insensitively,
    users_exists_checks,
    users_unique_violations,
    users_update_account_is_partial,
    users_profile_round_trip,
    users_password_and_last_login,
    users_list_search_filter_and_pages,
    users_delete_cascades,
    refresh_tokens_lifecycle,
    activities_record_and_find,
    activities_list_filters_and_pages,
    transaction_error_rolls_back_everything,
    transaction_panic_rolls_back_and_pool_survives,
    concurrent_transactions_all_commit,
    timestamps_round_trip_at_microseconds,
);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs a transaction that must succeed.
fn tx<T>(
    uow: &DieselUnitOfWork,
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, Error>,
) -> T {
    match transaction(uow, work) {
        Ok(value) => value,
        Err(error) => panic!("transaction failed: {error:?}"),
    }
}

/// Runs a read that must succeed.
fn rd<T>(
    uow: &DieselUnitOfWork,
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, Error>,
) -> T {
    match read(uow, work) {
        Ok(value) => value,
        Err(error) => panic!("read failed: {error:?}"),
    }
}

/// An instant with a non-zero microsecond part, exactly representable in both databases.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
        .single()
        .expect("valid instant")
        + Duration::microseconds(123_456)
}

fn new_user(username: &str, email: &str) -> NewUser {
    NewUser {
        username: Username::parse(username).expect("valid username"),
        email: Email::parse(email).expect("valid email"),
        first_name: PersonName::parse("First").expect("valid name"),
        last_name: PersonName::parse("Last").expect("valid name"),
        password_hash: format!("pbkdf2_sha256$1000000$salt${username}"),
        is_staff: false,
        is_superuser: false,
    }
}

fn create_user(uow: &DieselUnitOfWork, username: &str, email: &str) -> User {
    let user = new_user(username, email);
    tx(uow, |repos| Ok(repos.users().create(&user, t0())?))
}

fn activity(kind: &str, message: &str, user: Option<UserId>) -> NewActivity {
    NewActivity {
        kind: kind.to_owned(),
        message: message.to_owned(),
        details: serde_json::Map::new(),
        user,
        mission: None,
        document: None,
    }
}

fn record(uow: &DieselUnitOfWork, new: &NewActivity, at: DateTime<Utc>) -> Activity {
    tx(uow, |repos| Ok(repos.activities().record(new, at)?))
}

fn list_activities(
    uow: &DieselUnitOfWork,
    query: ActivityQuery,
) -> autodocs_domain::paging::Page<Activity> {
    rd(uow, |repos| Ok(repos.activities().list(&query)?))
}

fn list_users(uow: &DieselUnitOfWork, query: UserQuery) -> autodocs_domain::paging::Page<User> {
    rd(uow, |repos| Ok(repos.users().list(&query)?))
}

fn usernames(page: &autodocs_domain::paging::Page<User>) -> Vec<&str> {
    page.items
        .iter()
        .map(|user| user.username.as_str())
        .collect()
}

fn all_activities(uow: &DieselUnitOfWork) -> u64 {
    list_activities(uow, ActivityQuery::default()).count
}

fn all_users(uow: &DieselUnitOfWork) -> u64 {
    list_users(uow, UserQuery::default()).count
}

// ---------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------

fn migrations_apply_and_are_idempotent(uow: &DieselUnitOfWork) {
    let database = uow.database();
    assert!(database.ping(), "the migrated database answers");
    assert_eq!(
        database.pending_migrations().expect("pending migrations"),
        Vec::<String>::new()
    );
    assert_eq!(
        database.migrate().expect("second migrate"),
        Vec::<String>::new(),
        "nothing left to apply"
    );
    assert_eq!(
        database.pending_migrations().expect("pending migrations"),
        Vec::<String>::new()
    );
    // The schema is usable: every table the repositories read exists.
    assert_eq!(all_users(uow), 0);
    assert_eq!(all_activities(uow), 0);
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("none")?)),
        None
    );
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

fn users_create_and_find_case_insensitively(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    assert!(alice.id.0 > 0);
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.email, "alice@example.com");
    assert_eq!(alice.first_name, "First");
    assert_eq!(alice.last_name, "Last");
    assert!(alice.is_active && !alice.is_staff && !alice.is_superuser);
    assert_eq!(alice.date_joined, t0());
    assert_eq!(alice.last_login, None);
    assert_eq!(
        alice.profile,
        UserProfile::default(),
        "a default profile is created with the user"
    );
    assert_eq!(alice.profile.timezone, "UTC");

    let bob = create_user(uow, "bob", "bob@example.com");
    assert_ne!(alice.id, bob.id);

    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find(alice.id)?)),
        Some(alice.clone())
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .users()
            .find(UserId(alice.id.0 + 1000))?)),
        None
    );

    for login in [
        "alice",
        "ALICE",
        "Alice",
        "alice@example.com",
        "Alice@Example.com",
        "ALICE@EXAMPLE.COM",
    ] {
        let found = rd(uow, |repos| Ok(repos.users().find_credentials(login)?));
        let credentials = found.unwrap_or_else(|| panic!("{login} finds alice"));
        assert_eq!(credentials.user, alice, "{login}");
        assert_eq!(
            credentials.password_hash,
            "pbkdf2_sha256$1000000$salt$alice"
        );
    }
    let found = rd(uow, |repos| {
        Ok(repos.users().find_credentials("BOB@example.COM")?)
    });
    assert_eq!(found.map(|c| c.user.id), Some(bob.id));
    for login in ["carol", "alic", "alice@example", "%", "_lice", ""] {
        assert_eq!(
            rd(uow, |repos| Ok(repos.users().find_credentials(login)?)),
            None,
            "{login}"
        );
    }
}

fn users_exists_checks(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");

    for (name, expected) in [
        ("alice", true),
        ("ALICE", true),
        ("Alice", true),
        ("alic", false),
        ("al_ce", false),
    ] {
        assert_eq!(
            rd(uow, |repos| Ok(repos.users().username_exists(name)?)),
            expected,
            "{name}"
        );
    }
    let email_exists = |email: &str, except: Option<UserId>| {
        rd(uow, |repos| {
            Ok(repos.users().email_exists(email, except)?)
        })
    };
    assert!(email_exists("alice@example.com", None));
    assert!(email_exists("Alice@Example.COM", None));
    assert!(
        email_exists("ALICE@EXAMPLE.COM", Some(bob.id)),
        "taken by someone other than bob"
    );
    assert!(
        !email_exists("ALICE@EXAMPLE.COM", Some(alice.id)),
        "alice's own address is not taken for alice"
    );
    assert!(!email_exists("carol@example.com", None));
    assert!(!email_exists("alice@example.co", None));
}

fn unique_violation(result: Result<User, Error>) -> String {
    match result {
        Err(Error::Repository(RepoError::UniqueViolation(name))) => name,
        other => panic!("expected a unique violation, got {other:?}"),
    }
}

fn users_unique_violations(uow: &DieselUnitOfWork) {
    create_user(uow, "alice", "alice@example.com");

    let same_username = new_user("ALICE", "other@example.com");
    let name = unique_violation(transaction(uow, |repos| {
        Ok(repos.users().create(&same_username, t0())?)
    }));
    assert!(
        name.contains("username"),
        "constraint name {name:?} names the username"
    );

    let same_email = new_user("alice2", "Alice@EXAMPLE.com");
    let name = unique_violation(transaction(uow, |repos| {
        Ok(repos.users().create(&same_email, t0())?)
    }));
    assert!(
        name.contains("email"),
        "constraint name {name:?} names the email"
    );

    // The refused inserts left nothing behind (no orphan row, no profile).
    assert_eq!(all_users(uow), 1);
    // And the connection is still usable after the failures.
    let carol = create_user(uow, "carol", "carol@example.com");
    assert_eq!(carol.username, "carol");
    assert_eq!(all_users(uow), 2);
}

fn users_update_account_is_partial(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");

    let changes = UserChanges {
        first_name: Some(PersonName::parse("Alicia").expect("name")),
        ..UserChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.users().update_account(alice.id, &changes)?)
    });
    let after = rd(uow, |repos| Ok(repos.users().find(alice.id)?)).expect("alice still exists");
    assert_eq!(
        after,
        User {
            first_name: "Alicia".into(),
            ..alice.clone()
        },
        "only first_name changed"
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find(bob.id)?)),
        Some(bob.clone()),
        "bob untouched"
    );

    let changes = UserChanges {
        email: Some(Email::parse("alicia@example.org").expect("email")),
        last_name: Some(PersonName::parse("").expect("name")),
        is_active: Some(false),
        is_staff: Some(true),
        ..UserChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.users().update_account(alice.id, &changes)?)
    });
    let after = rd(uow, |repos| Ok(repos.users().find(alice.id)?)).expect("alice still exists");
    assert_eq!(
        after,
        User {
            first_name: "Alicia".into(),
            email: "alicia@example.org".into(),
            last_name: String::new(),
            is_active: false,
            is_staff: true,
            ..alice.clone()
        }
    );

    // An empty change set is a no-op.
    tx(uow, |repos| {
        Ok(repos
            .users()
            .update_account(alice.id, &UserChanges::default())?)
    });
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find(alice.id)?)),
        Some(after)
    );

    // Taking bob's email is a unique violation.
    let changes = UserChanges {
        email: Some(Email::parse("BOB@example.com").expect("email")),
        ..UserChanges::default()
    };
    match transaction(uow, |repos| {
        Ok(repos.users().update_account(alice.id, &changes)?)
    }) {
        Err(Error::Repository(RepoError::UniqueViolation(name))) => {
            assert!(name.contains("email"), "{name}")
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
}

fn users_profile_round_trip(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let preferences = json!({
        "theme": "dark",
        "page_size": 50,
        "ratio": 0.5,
        "beta": true,
        "nothing": null,
        "nested": {"columns": ["name", "status"], "quote": "it's \"quoted\" ü"}
    });
    let profile = UserProfile {
        phone: "+33 1 23 45 67 89".into(),
        organization: "ACME".into(),
        bio: "Line one\nline two — with ünïcode".into(),
        timezone: "Europe/Paris".into(),
        preferences: preferences.as_object().expect("object").clone(),
    };
    tx(uow, |repos| {
        Ok(repos
            .users()
            .save_profile(alice.id, &profile, t0() + Duration::hours(1))?)
    });
    let after = rd(uow, |repos| Ok(repos.users().find(alice.id)?)).expect("alice exists");
    assert_eq!(after.profile, profile);
    assert_eq!(
        serde_json::Value::Object(after.profile.preferences.clone()),
        preferences
    );
    assert_eq!(after.profile.timezone, "Europe/Paris");
    assert_eq!(
        User {
            profile: UserProfile::default(),
            ..after.clone()
        },
        alice,
        "account fields untouched"
    );
    // Also through the login path.
    let credentials =
        rd(uow, |repos| Ok(repos.users().find_credentials("alice")?)).expect("alice by login");
    assert_eq!(credentials.user.profile, profile);
    // Bob's profile is untouched.
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find(bob.id)?)).map(|u| u.profile),
        Some(UserProfile::default())
    );

    // Saving again replaces the whole profile, preferences included.
    let emptier = UserProfile {
        timezone: "America/New_York".into(),
        ..UserProfile::default()
    };
    tx(uow, |repos| {
        Ok(repos
            .users()
            .save_profile(alice.id, &emptier, t0() + Duration::hours(2))?)
    });
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find(alice.id)?)).map(|u| u.profile),
        Some(emptier)
    );
}

fn users_password_and_last_login(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().password_hash(alice.id)?)).as_deref(),
        Some("pbkdf2_sha256$1000000$salt$alice")
    );
    tx(uow, |repos| {
        Ok(repos
            .users()
            .set_password_hash(alice.id, "pbkdf2_sha256$1$new$hash")?)
    });
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().password_hash(alice.id)?)).as_deref(),
        Some("pbkdf2_sha256$1$new$hash")
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().password_hash(bob.id)?)).as_deref(),
        Some("pbkdf2_sha256$1000000$salt$bob")
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .users()
            .password_hash(UserId(bob.id.0 + 1000))?)),
        None
    );

    let login_at = t0() + Duration::days(3) + Duration::microseconds(7);
    tx(uow, |repos| {
        Ok(repos.users().touch_last_login(alice.id, login_at)?)
    });
    let after = rd(uow, |repos| Ok(repos.users().find(alice.id)?)).expect("alice exists");
    assert_eq!(after.last_login, Some(login_at));
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find(bob.id)?)).and_then(|u| u.last_login),
        None
    );
}

fn users_list_search_filter_and_pages(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let a_b = create_user(uow, "a_b", "ab@example.com");
    let axb = create_user(uow, "axb", "axb@example.com");
    let percent = create_user(uow, "carol", "per%cent@example.com");
    let dave = create_user(uow, "dave", "dave@sample.org");

    let search = |needle: &str| {
        list_users(
            uow,
            UserQuery {
                search: Some(needle.to_owned()),
                ..UserQuery::default()
            },
        )
    };
    // Case-insensitive substring of username or email.
    assert_eq!(usernames(&search("ALI")), ["alice"]);
    assert_eq!(usernames(&search("SAMPLE.ORG")), ["dave"]);
    assert_eq!(search("example.com").count, 4);
    // `_` and `%` are literal characters, not wildcards.
    let underscore = search("_");
    assert_eq!(
        usernames(&underscore),
        ["a_b"],
        "`_` matches only a literal underscore"
    );
    assert_eq!(underscore.count, 1);
    assert_eq!(
        usernames(&search("a_b")),
        ["a_b"],
        "`a_b` does not match `axb`"
    );
    let percent_page = search("%");
    assert_eq!(
        usernames(&percent_page),
        ["carol"],
        "`%` matches only a literal percent sign"
    );
    assert_eq!(percent_page.count, 1);
    assert_eq!(search("r%c").count, 1);
    assert_eq!(search("a%b").count, 0, "`a%b` is not `a…b`");
    assert_eq!(search("\\").count, 0, "a backslash is literal too");
    assert_eq!(search("nobody").count, 0);
    assert_eq!(search("").count, 5, "an empty search is no filter");

    // is_active filter.
    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.users().update_account(axb.id, &deactivate)?)
    });
    tx(uow, |repos| {
        Ok(repos.users().update_account(dave.id, &deactivate)?)
    });
    let active = list_users(
        uow,
        UserQuery {
            is_active: Some(true),
            ..UserQuery::default()
        },
    );
    assert_eq!(usernames(&active), ["alice", "a_b", "carol"]);
    let inactive = list_users(
        uow,
        UserQuery {
            is_active: Some(false),
            ..UserQuery::default()
        },
    );
    assert_eq!(usernames(&inactive), ["axb", "dave"]);
    assert!(inactive.items.iter().all(|user| !user.is_active));
    let inactive_a = list_users(
        uow,
        UserQuery {
            search: Some("A".into()),
            is_active: Some(false),
            ..UserQuery::default()
        },
    );
    assert_eq!(usernames(&inactive_a), ["axb", "dave"]);

    // Pagination: ordered by id, count is the whole filtered list.
    let ids = [alice.id, a_b.id, axb.id, percent.id, dave.id];
    let page = |number: u32| {
        list_users(
            uow,
            UserQuery {
                page: PageRequest::new(number, 2),
                ..UserQuery::default()
            },
        )
    };
    let first = page(1);
    assert_eq!((first.count, first.page, first.page_size), (5, 1, 2));
    assert_eq!(
        first.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        ids[0..2]
    );
    assert!(first.has_next() && !first.has_previous());
    let second = page(2);
    assert_eq!((second.count, second.page), (5, 2));
    assert_eq!(
        second.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        ids[2..4]
    );
    let third = page(3);
    assert_eq!((third.count, third.page), (5, 3));
    assert_eq!(
        third.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        ids[4..5]
    );
    assert!(!third.has_next());
    let past_end = page(4);
    assert_eq!(
        past_end.page, 0,
        "a page past the end is reported as page 0"
    );
    assert_eq!(past_end.count, 5);
    assert!(past_end.items.is_empty());
    let last = list_users(
        uow,
        UserQuery {
            page: PageRequest::parse(Some("last"), Some("2")).expect("page"),
            ..UserQuery::default()
        },
    );
    assert_eq!(last.page, 3);
    assert_eq!(
        last.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        ids[4..5]
    );
    // Page 1 of an empty result exists.
    let empty = list_users(
        uow,
        UserQuery {
            search: Some("nobody".into()),
            ..UserQuery::default()
        },
    );
    assert_eq!((empty.count, empty.page, empty.items.len()), (0, 1, 0));
    // Filters and pages combine.
    let filtered = list_users(
        uow,
        UserQuery {
            is_active: Some(true),
            page: PageRequest::new(2, 2),
            ..UserQuery::default()
        },
    );
    assert_eq!((filtered.count, filtered.page), (3, 2));
    assert_eq!(usernames(&filtered), ["carol"]);
}

fn users_delete_cascades(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let profile = UserProfile {
        bio: "soon gone".into(),
        ..UserProfile::default()
    };
    tx(uow, |repos| {
        Ok(repos.users().save_profile(alice.id, &profile, t0())?)
    });
    let expires = t0() + Duration::days(1);
    tx(uow, |repos| {
        repos
            .refresh_tokens()
            .insert(alice.id, "alice-1", t0(), expires)?;
        repos
            .refresh_tokens()
            .insert(alice.id, "alice-2", t0(), expires)?;
        repos
            .refresh_tokens()
            .insert(bob.id, "bob-1", t0(), expires)?;
        Ok(())
    });
    let alice_activity = record(
        uow,
        &activity("login", "Alice logged in", Some(alice.id)),
        t0(),
    );
    let bob_activity = record(uow, &activity("login", "Bob logged in", Some(bob.id)), t0());
    let system_activity = record(uow, &activity("system", "System event", None), t0());

    assert!(
        tx(uow, |repos| Ok(repos.users().delete(alice.id)?)),
        "alice deleted"
    );
    assert!(
        !tx(uow, |repos| Ok(repos.users().delete(alice.id)?)),
        "a second delete finds nothing"
    );

    assert_eq!(rd(uow, |repos| Ok(repos.users().find(alice.id)?)), None);
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find_credentials("alice")?)),
        None
    );
    assert!(!rd(uow, |repos| Ok(repos
        .users()
        .username_exists("alice")?)));
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().password_hash(alice.id)?)),
        None
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("alice-1")?)),
        None,
        "tokens cascade"
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("alice-2")?)),
        None,
        "tokens cascade"
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(alice_activity.id, None)?)),
        None,
        "activities cascade"
    );
    let alices = list_activities(
        uow,
        ActivityQuery {
            user: Some(alice.id),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(alices.count, 0);
    assert!(alices.items.is_empty());

    // Everyone else's rows stay.
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find(bob.id)?)),
        Some(bob.clone())
    );
    assert!(rd(uow, |repos| Ok(repos.refresh_tokens().find("bob-1")?)).is_some());
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(bob_activity.id, None)?)),
        Some(bob_activity)
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(system_activity.id, None)?)),
        Some(system_activity)
    );
    assert_eq!(all_activities(uow), 2);
    assert_eq!(all_users(uow), 1);

    // The profile went with the user: a new user may take the same names,
    // and gets a fresh default profile.
    let again = create_user(uow, "alice", "alice@example.com");
    assert_ne!(again.id, alice.id);
    assert_eq!(again.profile, UserProfile::default());
}

// ---------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------

fn refresh_tokens_lifecycle(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let now = t0();
    let later = now + Duration::days(1);
    tx(uow, |repos| {
        let tokens = repos.refresh_tokens();
        tokens.insert(alice.id, "a1", now, later)?;
        tokens.insert(alice.id, "a2", now, later + Duration::microseconds(1))?;
        tokens.insert(alice.id, "a3", now, later)?;
        tokens.insert(bob.id, "b1", now, later)?;
        Ok(())
    });

    let a1 = rd(uow, |repos| Ok(repos.refresh_tokens().find("a1")?)).expect("a1 stored");
    assert_eq!(a1.user, alice.id);
    assert_eq!(a1.jti, "a1");
    assert_eq!(a1.expires_at, later);
    assert_eq!(a1.revoked_at, None);
    let a2 = rd(uow, |repos| Ok(repos.refresh_tokens().find("a2")?)).expect("a2 stored");
    assert_eq!(a2.expires_at, later + Duration::microseconds(1));
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("A1")?)),
        None,
        "jti lookup is exact"
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("zz")?)),
        None
    );

    // A jti is unique.
    match transaction(uow, |repos| {
        Ok(repos.refresh_tokens().insert(bob.id, "a1", now, later)?)
    }) {
        Err(Error::Repository(RepoError::UniqueViolation(_))) => {}
        other => panic!("expected a unique violation, got {other:?}"),
    }

    // revoke: true once, then false (a conditional update).
    let revoked_at = now + Duration::minutes(5);
    assert!(tx(uow, |repos| Ok(repos.refresh_tokens().revoke(
        "a1",
        Some("a2"),
        revoked_at
    )?)));
    assert!(!tx(uow, |repos| Ok(repos.refresh_tokens().revoke(
        "a1",
        Some("a3"),
        revoked_at + Duration::minutes(1)
    )?)));
    assert!(!tx(uow, |repos| Ok(repos
        .refresh_tokens()
        .revoke("missing", None, revoked_at)?)));
    let a1 = rd(uow, |repos| Ok(repos.refresh_tokens().find("a1")?)).expect("a1 stored");
    assert_eq!(
        a1.revoked_at,
        Some(revoked_at),
        "the first revocation's instant is kept"
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("a2")?)).and_then(|t| t.revoked_at),
        None
    );

    // Two revocations racing inside one transaction: only the first wins.
    let (first, second) = tx(uow, |repos| {
        let first = repos.refresh_tokens().revoke("a2", None, revoked_at)?;
        let second = repos.refresh_tokens().revoke("a2", None, revoked_at)?;
        Ok((first, second))
    });
    assert!(first && !second);

    // revoke_all counts only live tokens, of that user only.
    let all_at = now + Duration::hours(1);
    assert_eq!(
        tx(uow, |repos| Ok(repos
            .refresh_tokens()
            .revoke_all(alice.id, all_at)?)),
        1,
        "only a3 was live"
    );
    assert_eq!(
        tx(uow, |repos| Ok(repos
            .refresh_tokens()
            .revoke_all(alice.id, all_at)?)),
        0
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("a3")?)).and_then(|t| t.revoked_at),
        Some(all_at)
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("a1")?)).and_then(|t| t.revoked_at),
        Some(revoked_at)
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("b1")?)).and_then(|t| t.revoked_at),
        None,
        "bob untouched"
    );
    assert!(!tx(uow, |repos| Ok(repos
        .refresh_tokens()
        .revoke("a3", None, all_at)?)));

    // purge_expired deletes only tokens that expired strictly before `now`.
    tx(uow, |repos| {
        let tokens = repos.refresh_tokens();
        tokens.insert(
            bob.id,
            "expired-1",
            now - Duration::days(2),
            now - Duration::days(1),
        )?;
        tokens.insert(
            bob.id,
            "expired-2",
            now - Duration::days(2),
            now - Duration::microseconds(1),
        )?;
        tokens.insert(
            alice.id,
            "expired-3",
            now - Duration::days(2),
            now - Duration::hours(1),
        )?;
        tokens.insert(bob.id, "at-now", now - Duration::days(2), now)?;
        Ok(())
    });
    assert_eq!(
        tx(uow, |repos| Ok(repos
            .refresh_tokens()
            .purge_expired(now)?)),
        3
    );
    assert_eq!(
        tx(uow, |repos| Ok(repos
            .refresh_tokens()
            .purge_expired(now)?)),
        0
    );
    for gone in ["expired-1", "expired-2", "expired-3"] {
        assert_eq!(
            rd(uow, |repos| Ok(repos.refresh_tokens().find(gone)?)),
            None,
            "{gone}"
        );
    }
    for kept in ["at-now", "a1", "a2", "a3", "b1"] {
        assert!(
            rd(uow, |repos| Ok(repos.refresh_tokens().find(kept)?)).is_some(),
            "{kept} kept"
        );
    }
    // Revoked but unexpired tokens are not purged; once expired they are.
    assert_eq!(
        tx(uow, |repos| Ok(repos
            .refresh_tokens()
            .purge_expired(later + Duration::microseconds(1))?)),
        4
    );
    assert!(
        rd(uow, |repos| Ok(repos.refresh_tokens().find("a2")?)).is_some(),
        "a2 expires one µs later"
    );
}

// ---------------------------------------------------------------------------
// Activities
// ---------------------------------------------------------------------------

fn activities_record_and_find(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let mut new = activity(
        "document_uploaded",
        "Document \"tax.pdf\" uploaded",
        Some(alice.id),
    );
    new.details =
        json!({"size": 1234, "name": "tax.pdf", "tags": ["a", "b"], "nested": {"ok": true}})
            .as_object()
            .expect("object")
            .clone();
    let at = t0() + Duration::microseconds(1);
    let recorded = record(uow, &new, at);
    assert!(recorded.id > 0);
    assert_eq!(
        recorded,
        Activity {
            id: recorded.id,
            kind: new.kind.clone(),
            message: new.message.clone(),
            details: new.details.clone(),
            user: Some(alice.id),
            mission: None,
            document: None,
            timestamp: at,
        }
    );
    let second = record(uow, &activity("login", "Logged in", Some(alice.id)), at);
    assert_ne!(second.id, recorded.id);
    let anonymous = record(uow, &activity("system", "Maintenance", None), at);
    assert_eq!(anonymous.user, None);

    // find: what was recorded is what is read back.
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(recorded.id, None)?)),
        Some(recorded.clone())
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(recorded.id, Some(alice.id))?)),
        Some(recorded.clone())
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(recorded.id, Some(bob.id))?)),
        None,
        "other owner"
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(anonymous.id, None)?)),
        Some(anonymous.clone())
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(anonymous.id, Some(alice.id))?)),
        None,
        "no owner"
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .activities()
            .find(anonymous.id + 1000, None)?)),
        None
    );
}

fn activities_list_filters_and_pages(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let at = |minutes: i64| t0() + Duration::minutes(minutes);
    let a0 = record(
        uow,
        &activity("login", "Alice logged in", Some(alice.id)),
        at(0),
    );
    let a1 = record(
        uow,
        &activity(
            "document_uploaded",
            "Document UPLOADED: tax.pdf",
            Some(alice.id),
        ),
        at(1),
    );
    let a2 = record(
        uow,
        &activity("mission_created", "Mission created", Some(alice.id)),
        at(2),
    );
    let a3 = record(
        uow,
        &activity("logout", "Alice logged out (100% done)", Some(alice.id)),
        at(3),
    );
    let a4 = record(
        uow,
        &activity(
            "document_uploaded",
            "document uploaded: idcard.png",
            Some(alice.id),
        ),
        at(4),
    );
    // Same instant as a4, recorded later: ties break on id, newest first.
    let a4b = record(
        uow,
        &activity("login", "Alice logged in again", Some(alice.id)),
        at(4),
    );
    let b0 = record(
        uow,
        &activity("login", "Bob logged in", Some(bob.id)),
        at(2),
    );
    let sys = record(
        uow,
        &activity("system", "System maintenance 100_percent", None),
        at(5),
    );

    let ids = |page: &autodocs_domain::paging::Page<Activity>| {
        page.items.iter().map(|a| a.id).collect::<Vec<_>>()
    };
    let of_alice = || ActivityQuery {
        user: Some(alice.id),
        ..ActivityQuery::default()
    };

    // Everyone's, newest first.
    let everything = list_activities(uow, ActivityQuery::default());
    assert_eq!(everything.count, 8);
    assert_eq!(
        ids(&everything),
        [sys.id, a4b.id, a4.id, a3.id, b0.id, a2.id, a1.id, a0.id]
    );
    assert_eq!(
        everything.items[0], sys,
        "listed rows read back as recorded"
    );

    // Owner filter.
    let alices = list_activities(uow, of_alice());
    assert_eq!(alices.count, 6);
    assert_eq!(ids(&alices), [a4b.id, a4.id, a3.id, a2.id, a1.id, a0.id]);
    let bobs = list_activities(
        uow,
        ActivityQuery {
            user: Some(bob.id),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&bobs), [b0.id]);

    // Several kinds.
    let kinds = list_activities(
        uow,
        ActivityQuery {
            kinds: vec!["login".into(), "logout".into()],
            ..of_alice()
        },
    );
    assert_eq!(ids(&kinds), [a4b.id, a3.id, a0.id]);
    let one_kind = list_activities(
        uow,
        ActivityQuery {
            kinds: vec!["document_uploaded".into()],
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&one_kind), [a4.id, a1.id]);
    let no_kind = list_activities(
        uow,
        ActivityQuery {
            kinds: vec!["nope".into()],
            ..ActivityQuery::default()
        },
    );
    assert_eq!((no_kind.count, no_kind.items.len()), (0, 0));

    // A mission or document no activity concerns.
    let mission = list_activities(
        uow,
        ActivityQuery {
            mission: Some(999_999),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(
        (mission.count, mission.page, mission.items.len()),
        (0, 1, 0)
    );
    let document = list_activities(
        uow,
        ActivityQuery {
            document: Some(999_999),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(document.count, 0);

    // since / until are inclusive bounds.
    let window = list_activities(
        uow,
        ActivityQuery {
            since: Some(at(1)),
            until: Some(at(3)),
            ..of_alice()
        },
    );
    assert_eq!(ids(&window), [a3.id, a2.id, a1.id]);
    let since = list_activities(
        uow,
        ActivityQuery {
            since: Some(at(4)),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&since), [sys.id, a4b.id, a4.id]);
    let until = list_activities(
        uow,
        ActivityQuery {
            until: Some(at(0)),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&until), [a0.id]);
    let just_after = list_activities(
        uow,
        ActivityQuery {
            since: Some(at(0) + Duration::microseconds(1)),
            until: Some(at(1) - Duration::microseconds(1)),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(just_after.count, 0, "bounds are exact to the microsecond");
    let instant = list_activities(
        uow,
        ActivityQuery {
            since: Some(at(2)),
            until: Some(at(2)),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&instant), [b0.id, a2.id]);

    // Search: case-insensitive substring of the message; wildcards literal.
    let uploaded = list_activities(
        uow,
        ActivityQuery {
            search: Some("Uploaded".into()),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&uploaded), [a4.id, a1.id]);
    let alice_in = list_activities(
        uow,
        ActivityQuery {
            search: Some("ALICE LOGGED".into()),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&alice_in), [a4b.id, a3.id, a0.id]);
    let percent = list_activities(
        uow,
        ActivityQuery {
            search: Some("100%".into()),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&percent), [a3.id], "`%` is literal");
    let underscore = list_activities(
        uow,
        ActivityQuery {
            search: Some("_".into()),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(ids(&underscore), [sys.id], "`_` is literal");
    let empty_search = list_activities(
        uow,
        ActivityQuery {
            search: Some(String::new()),
            ..ActivityQuery::default()
        },
    );
    assert_eq!(empty_search.count, 8);

    // Filters combine.
    let combined = list_activities(
        uow,
        ActivityQuery {
            kinds: vec!["login".into(), "document_uploaded".into()],
            since: Some(at(1)),
            search: Some("tax".into()),
            ..of_alice()
        },
    );
    assert_eq!(ids(&combined), [a1.id]);

    // Pages.
    let page = |number: u32| {
        list_activities(
            uow,
            ActivityQuery {
                page: PageRequest::new(number, 4),
                ..of_alice()
            },
        )
    };
    let first = page(1);
    assert_eq!((first.count, first.page, first.page_size), (6, 1, 4));
    assert_eq!(ids(&first), [a4b.id, a4.id, a3.id, a2.id]);
    let second = page(2);
    assert_eq!((second.count, second.page), (6, 2));
    assert_eq!(ids(&second), [a1.id, a0.id]);
    let past_end = page(3);
    assert_eq!(
        (past_end.count, past_end.page),
        (6, 0),
        "past the end is page 0"
    );
    assert!(past_end.items.is_empty());
    let last = list_activities(
        uow,
        ActivityQuery {
            page: PageRequest::parse(Some("last"), Some("4")).expect("page"),
            ..of_alice()
        },
    );
    assert_eq!((last.page, ids(&last)), (2, vec![a1.id, a0.id]));
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

fn assert_nothing_left(uow: &DieselUnitOfWork, username: &str) {
    assert_eq!(
        rd(uow, |repos| Ok(repos.users().find_credentials(username)?)),
        None,
        "user rolled back"
    );
    assert!(
        !rd(uow, |repos| Ok(repos.users().username_exists(username)?)),
        "user rolled back"
    );
    assert_eq!(all_users(uow), 0, "no user row");
    assert_eq!(all_activities(uow), 0, "no activity row");
}

fn transaction_error_rolls_back_everything(uow: &DieselUnitOfWork) {
    let user = new_user("ghost", "ghost@example.com");
    let mut created = None;
    let outcome: Result<(), Error> = transaction(uow, |repos| {
        let ghost = repos.users().create(&user, t0())?;
        created = Some(ghost.id);
        // Visible inside the transaction.
        assert!(repos.users().find(ghost.id)?.is_some());
        let recorded = repos
            .activities()
            .record(&activity("login", "Ghost appeared", Some(ghost.id)), t0())?;
        assert!(repos.activities().find(recorded.id, None)?.is_some());
        repos
            .refresh_tokens()
            .insert(ghost.id, "ghost-token", t0(), t0() + Duration::days(1))?;
        Err(Error::NotFound)
    });
    assert!(
        matches!(outcome, Err(Error::NotFound)),
        "the closure's error comes back: {outcome:?}"
    );
    let ghost = created.expect("the closure ran");
    assert_eq!(rd(uow, |repos| Ok(repos.users().find(ghost)?)), None);
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .refresh_tokens()
            .find("ghost-token")?)),
        None
    );
    assert_nothing_left(uow, "ghost");

    // A failing repository call in the middle rolls back the earlier writes too.
    create_user(uow, "taken", "taken@example.com");
    let second = new_user("TAKEN", "other@example.com");
    let outcome = transaction(uow, |repos| {
        repos
            .activities()
            .record(&activity("system", "before the failure", None), t0())?;
        repos.users().create(&second, t0())?;
        Ok(())
    });
    assert!(
        matches!(
            outcome,
            Err(Error::Repository(RepoError::UniqueViolation(_)))
        ),
        "{outcome:?}"
    );
    assert_eq!(
        all_activities(uow),
        0,
        "the activity recorded before the failure is rolled back"
    );
    assert_eq!(all_users(uow), 1);

    // A successful transaction commits both.
    let kept = new_user("kept", "kept@example.com");
    tx(uow, |repos| {
        let user = repos.users().create(&kept, t0())?;
        repos
            .activities()
            .record(&activity("login", "kept", Some(user.id)), t0())?;
        Ok(())
    });
    assert_eq!(all_users(uow), 2);
    assert_eq!(all_activities(uow), 1);
}

fn transaction_panic_rolls_back_and_pool_survives(uow: &DieselUnitOfWork) {
    let user = new_user("ghost", "ghost@example.com");
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        transaction(uow, |repos| -> Result<(), Error> {
            let ghost = repos.users().create(&user, t0())?;
            repos
                .activities()
                .record(&activity("login", "Ghost appeared", Some(ghost.id)), t0())?;
            panic!("the transaction body panics");
        })
    }));
    assert!(outcome.is_err(), "the panic propagates");
    assert_nothing_left(uow, "ghost");

    // The pool (and its connections) still work afterwards, for writes and reads,
    // more times than there are connections in the pool.
    for n in 0..(settings().max_connections + 2) {
        let user = new_user(&format!("user{n}"), &format!("user{n}@example.com"));
        let outcome = transaction(uow, |repos| {
            let user = repos.users().create(&user, t0())?;
            repos
                .activities()
                .record(&activity("login", "after the panic", Some(user.id)), t0())?;
            Ok(())
        });
        assert!(
            outcome.is_ok(),
            "transaction {n} after a panicked one: {outcome:?}"
        );
    }
    assert!(uow.database().ping());
    let expected = u64::from(settings().max_connections + 2);
    assert_eq!(all_users(uow), expected);
    assert_eq!(all_activities(uow), expected);
}

fn concurrent_transactions_all_commit(uow: &DieselUnitOfWork) {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let alice = create_user(uow, "alice", "alice@example.com");
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let uow = uow.clone();
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for n in 0..PER_THREAD {
                        let new = activity(
                            "concurrent",
                            &format!("thread {thread} write {n}"),
                            Some(alice.id),
                        );
                        let outcome = transaction(&uow, |repos| {
                            // Read then write, the pattern that deadlocks on a
                            // SQLite lock upgrade if the transaction is deferred.
                            repos.activities().list(&ActivityQuery {
                                page: PageRequest::new(1, 1),
                                ..ActivityQuery::default()
                            })?;
                            repos
                                .activities()
                                .record(&new, Utc::now().trunc_subsecs(6))?;
                            Ok(())
                        });
                        if let Err(error) = outcome {
                            failures.push(format!("thread {thread} write {n}: {error:?}"));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("thread finished"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} transactions failed: {failures:#?}",
        failures.len()
    );
    let page = list_activities(
        uow,
        ActivityQuery {
            kinds: vec!["concurrent".into()],
            ..ActivityQuery::default()
        },
    );
    assert_eq!(page.count, (THREADS * PER_THREAD) as u64);
}

fn timestamps_round_trip_at_microseconds(uow: &DieselUnitOfWork) {
    let now = Utc::now().trunc_subsecs(6);
    // Also instants whose fraction has trailing zeros or none at all, and one
    // with a single microsecond: they must order and compare exactly.
    let instants = [
        now,
        t0(),
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("instant"),
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("instant")
            + Duration::microseconds(1),
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("instant")
            + Duration::milliseconds(500),
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59)
            .single()
            .expect("instant")
            + Duration::microseconds(999_999),
    ];
    for (n, instant) in instants.iter().enumerate() {
        let user = new_user(&format!("user{n}"), &format!("user{n}@example.com"));
        let created = tx(uow, |repos| Ok(repos.users().create(&user, *instant)?));
        let found = rd(uow, |repos| Ok(repos.users().find(created.id)?)).expect("user stored");
        assert_eq!(found.date_joined, *instant, "date_joined of {instant}");
        tx(uow, |repos| {
            Ok(repos.users().touch_last_login(created.id, *instant)?)
        });
        let found = rd(uow, |repos| Ok(repos.users().find(created.id)?)).expect("user stored");
        assert_eq!(found.last_login, Some(*instant), "last_login of {instant}");

        let jti = format!("jti-{n}");
        tx(uow, |repos| {
            Ok(repos
                .refresh_tokens()
                .insert(created.id, &jti, *instant, *instant)?)
        });
        tx(uow, |repos| {
            Ok(repos.refresh_tokens().revoke(&jti, None, *instant)?)
        });
        let token = rd(uow, |repos| Ok(repos.refresh_tokens().find(&jti)?)).expect("token stored");
        assert_eq!(
            (token.expires_at, token.revoked_at),
            (*instant, Some(*instant)),
            "token of {instant}"
        );

        let recorded = record(
            uow,
            &activity("tick", &format!("tick {n}"), Some(created.id)),
            *instant,
        );
        let found = rd(uow, |repos| {
            Ok(repos.activities().find(recorded.id, None)?)
        })
        .expect("activity stored");
        assert_eq!(found.timestamp, *instant, "activity timestamp of {instant}");
        // An exact instant bound finds exactly it.
        let exact = list_activities(
            uow,
            ActivityQuery {
                since: Some(*instant),
                until: Some(*instant),
                ..ActivityQuery::default()
            },
        );
        assert_eq!(
            exact.items.iter().map(|a| a.id).collect::<Vec<_>>(),
            [recorded.id],
            "bounds at {instant}"
        );
    }
    // Newest first across all the instants.
    let mut sorted = instants.to_vec();
    sorted.sort_by(|a, b| b.cmp(a));
    let listed = list_activities(uow, ActivityQuery::default());
    assert_eq!(
        listed.items.iter().map(|a| a.timestamp).collect::<Vec<_>>(),
        sorted
    );
}
