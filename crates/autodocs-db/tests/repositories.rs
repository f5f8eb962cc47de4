//! The repository test suite of the diesel adapter.
//!
//! Every test body runs against SQLite (a fresh file in a temporary
//! directory) and, when `TEST_DATABASE_URL` points at a PostgreSQL server,
//! against a fresh PostgreSQL database created for the test and dropped
//! afterwards.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use autodocs_db::{Backend, Database, DieselUnitOfWork, PoolSettings};
use autodocs_domain::activity_log::{Activity, ActivityQuery, NewActivity};
use autodocs_domain::mission::{
    Description, Mission, MissionAction, MissionChanges, MissionOrderField, MissionQuery,
    MissionStatus, MissionTransition, MissionType, NewMission, Priority, Progress, Title,
};
use autodocs_domain::paging::PageRequest;
use autodocs_domain::paging::{Page, PageResult, PastEnd};
use autodocs_domain::plan_step::{NewPlanStep, PlanStep, StepAction, StepChanges, StepStatus};
use autodocs_domain::ports::{Repositories, read, transaction};
use autodocs_domain::user::{
    Email, IdentityKey, NewUser, PersonName, User, UserChanges, UserId, UserProfile, UserQuery,
    Username,
};
use autodocs_domain::{ActivityId, DocumentId, MissionId, StepId};
use autodocs_domain::{Error, RepoError};
use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use diesel::connection::SimpleConnection;
use serde_json::json;
use support::PgTestDatabase;

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

/// Keeps the test database alive; a PostgreSQL one is dropped with it.
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] PgTestDatabase),
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
            let database = PgTestDatabase::create("repo_test")?;
            // From here on the guard drops the database, even if migrating panics.
            let uow = open_migrated(&database.url);
            Some((uow, Guard::Postgres(database)))
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
    users_identity_keys_fold_case_and_unicode_forms,
    users_identity_keys_are_backfilled,
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
    missions_create_and_find_by_owner,
    missions_list_filters_and_search,
    missions_list_ordering_and_pages,
    missions_counts_without_a_query_per_row,
    hot_reads_are_prepared_once,
    account_checks_see_this_process_changes_at_once,
    missions_update_is_partial,
    missions_transition_race_has_one_winner,
    missions_transition_from_wrong_status_changes_nothing,
    missions_delete_spares_protected_status,
    steps_create_list_and_find,
    steps_update_status_timestamps_and_parent,
    steps_delete_counts_the_subtree,
    steps_skip_open_and_next_order,
    documents_round_trip_filter_verify_and_delete,
    step_writes_lock_their_mission_first,
    the_database_has_one_random_identity,
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

fn list_activities_result(uow: &DieselUnitOfWork, query: ActivityQuery) -> PageResult<Activity> {
    rd(uow, |repos| Ok(repos.activities().list(&query)?))
}

fn list_activities(uow: &DieselUnitOfWork, query: ActivityQuery) -> Page<Activity> {
    found_page(list_activities_result(uow, query))
}

fn list_users_result(uow: &DieselUnitOfWork, query: UserQuery) -> PageResult<User> {
    rd(uow, |repos| Ok(repos.users().list(&query)?))
}

fn list_users(uow: &DieselUnitOfWork, query: UserQuery) -> Page<User> {
    found_page(list_users_result(uow, query))
}

/// The page a list found; fails the test on a page past the end.
fn found_page<T>(result: PageResult<T>) -> Page<T> {
    match result.found() {
        Ok(page) => page,
        Err(past_end) => panic!("expected a page, got {past_end:?}"),
    }
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
        let found = rd(uow, |repos| {
            Ok(repos.users().find_credentials(&IdentityKey::of(login))?)
        });
        let credentials = found.unwrap_or_else(|| panic!("{login} finds alice"));
        assert_eq!(credentials.user, alice, "{login}");
        assert_eq!(
            credentials.password_hash,
            "pbkdf2_sha256$1000000$salt$alice"
        );
    }
    let found = rd(uow, |repos| {
        Ok(repos
            .users()
            .find_credentials(&IdentityKey::of("BOB@example.COM"))?)
    });
    assert_eq!(found.map(|c| c.user.id), Some(bob.id));
    for login in ["carol", "alic", "alice@example", "%", "_lice", ""] {
        assert_eq!(
            rd(uow, |repos| Ok(repos
                .users()
                .find_credentials(&IdentityKey::of(login))?)),
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
            rd(uow, |repos| Ok(repos
                .users()
                .username_exists(&IdentityKey::of(name))?)),
            expected,
            "{name}"
        );
    }
    let email_exists = |email: &str, except: Option<UserId>| {
        rd(uow, |repos| {
            Ok(repos
                .users()
                .email_exists(&IdentityKey::of(email), except)?)
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

fn users_identity_keys_fold_case_and_unicode_forms(uow: &DieselUnitOfWork) {
    let aerger = create_user(uow, "Ärger", "aerger@example.com");
    let strasse = create_user(uow, "Straße", "strasse@example.com");
    let ligature = create_user(uow, "\u{FB01}sh", "fish@example.com");
    let juergen = create_user(uow, "juergen", "Jürgen@Bücher.de");

    // The database itself refuses a second account with the same key, on
    // both backends (SQLite's lower() would have let `ärger` through).
    for (username, email, field) in [
        ("ärger", "other1@example.com", "username"),
        ("ÄRGER", "other2@example.com", "username"),
        ("STRASSE", "other3@example.com", "username"),
        ("fish", "other4@example.com", "username"),
        ("other5", "JÜRGEN@bücher.DE", "email"),
        ("other6", "jürgen@BÜCHER.de", "email"),
    ] {
        let duplicate = new_user(username, email);
        let name = unique_violation(transaction(uow, |repos| {
            Ok(repos.users().create(&duplicate, t0())?)
        }));
        assert!(name.contains(field), "{username} {email}: {name:?}");
    }
    assert_eq!(all_users(uow), 4);

    let found = |login: &str| {
        rd(uow, |repos| {
            Ok(repos.users().find_credentials(&IdentityKey::of(login))?)
        })
        .map(|credentials| credentials.user.id)
    };
    for login in ["Ärger", "ärger", "ÄRGER", "A\u{308}rger"] {
        assert_eq!(found(login), Some(aerger.id), "{login}");
    }
    assert_eq!(found("strasse"), Some(strasse.id));
    assert_eq!(found("FISH"), Some(ligature.id));
    assert_eq!(found("jürgen@bücher.de"), Some(juergen.id));
    assert_eq!(found("arger"), None);

    // A username shaped like an email never shadows that email's owner,
    // whichever account is older.
    let squatter = create_user(uow, "bob@example.com", "mallory@example.com");
    let bob = create_user(uow, "bob", "Bob@Example.com");
    assert_eq!(found("BOB@example.com"), Some(bob.id));
    assert_eq!(found("mallory@example.com"), Some(squatter.id));
    let exists = |email: &str| {
        rd(uow, |repos| {
            Ok(repos.users().email_exists(&IdentityKey::of(email), None)?)
        })
    };
    assert!(exists("bob@EXAMPLE.com"));

    // A changed email carries its key along.
    let changes = UserChanges {
        email: Some(Email::parse("Zoë@Example.com").expect("email")),
        ..UserChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.users().update_account(aerger.id, &changes)?)
    });
    assert!(exists("ZOË@example.com"));
    assert!(!exists("aerger@example.com"));
    assert_eq!(found("zoë@example.com"), Some(aerger.id));

    // Staff search folds the term and the stored values alike.
    let search = |needle: &str| {
        list_users(
            uow,
            UserQuery {
                search: Some(needle.to_owned()),
                ..UserQuery::default()
            },
        )
    };
    assert_eq!(usernames(&search("ärg")), ["Ärger"]);
    assert_eq!(usernames(&search("ÄRG")), ["Ärger"]);
    assert_eq!(usernames(&search("ZOË")), ["Ärger"]);
    assert_eq!(usernames(&search("rasse")), ["Straße"]);
    assert_eq!(usernames(&search("BÜCHER")), ["juergen"]);
}

fn users_identity_keys_are_backfilled(uow: &DieselUnitOfWork) {
    let aerger = create_user(uow, "Ärger", "Aerger@Example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let database = uow.database();
    {
        let mut conn = database.connection().expect("connection");
        // Rows as an older server left them: no keys, and (the old
        // indexes compared lower(), ASCII-only on SQLite) a second `ärger`.
        conn.batch_execute(
            "UPDATE auth_user SET username_key = NULL, email_key = NULL;
             INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                 email, is_staff, is_active, date_joined)
             VALUES ('x', FALSE, 'ÄRGER', '', '', 'AERGER@example.com', FALSE, TRUE,
                 '2026-01-01 00:00:00'),
                 ('x', FALSE, 'noemail', '', '', '', FALSE, TRUE, '2026-01-01 00:00:00');",
        )
        .expect("legacy rows");
    }
    let conflicts = database.backfill_identity_keys().expect("backfill");
    let fields: Vec<(&str, Option<i64>)> = conflicts
        .iter()
        .map(|conflict| (conflict.field, conflict.holder_id))
        .collect();
    assert_eq!(
        fields,
        [
            ("username", Some(aerger.id.0)),
            ("email", Some(aerger.id.0))
        ],
        "the newer of two colliding accounts is reported, not an error: {conflicts:?}"
    );
    assert!(
        conflicts[0].to_string().contains("ÄRGER"),
        "{}",
        conflicts[0]
    );
    let found = |login: &str| {
        rd(uow, |repos| {
            Ok(repos.users().find_credentials(&IdentityKey::of(login))?)
        })
        .map(|credentials| credentials.user.id)
    };
    assert_eq!(
        found("ärger"),
        Some(aerger.id),
        "the older account keeps its key"
    );
    assert_eq!(found("aerger@example.com"), Some(aerger.id));
    assert_eq!(found("BOB"), Some(bob.id));
    assert_eq!(found("Bob@Example.com"), Some(bob.id));
    // Running it again reports the same conflict and changes nothing else;
    // migrate runs it too, without failing.
    assert_eq!(
        database.backfill_identity_keys().expect("second backfill"),
        conflicts
    );
    assert_eq!(database.migrate().expect("migrate"), Vec::<String>::new());
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
    let credentials = rd(uow, |repos| {
        Ok(repos.users().find_credentials(&IdentityKey::of("alice"))?)
    })
    .expect("alice by login");
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
    let page_result = |number: u32| {
        list_users_result(
            uow,
            UserQuery {
                page: PageRequest::new(number, 2),
                ..UserQuery::default()
            },
        )
    };
    let page = |number: u32| found_page(page_result(number));
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
    assert_eq!(page_result(4).found().map(drop), Err(PastEnd { count: 5 }));
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
        rd(uow, |repos| Ok(repos
            .users()
            .find_credentials(&IdentityKey::of("alice"))?)),
        None
    );
    assert!(!rd(uow, |repos| Ok(repos
        .users()
        .username_exists(&IdentityKey::of("alice"))?)));
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
    assert!(recorded.id.0 > 0);
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
            .find(ActivityId(anonymous.id.0 + 1000), None)?)),
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
            mission: Some(MissionId(999_999)),
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
            document: Some(DocumentId(999_999)),
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
    let page_result = |number: u32| {
        list_activities_result(
            uow,
            ActivityQuery {
                page: PageRequest::new(number, 4),
                ..of_alice()
            },
        )
    };
    let page = |number: u32| found_page(page_result(number));
    let first = page(1);
    assert_eq!((first.count, first.page, first.page_size), (6, 1, 4));
    assert_eq!(ids(&first), [a4b.id, a4.id, a3.id, a2.id]);
    let second = page(2);
    assert_eq!((second.count, second.page), (6, 2));
    assert_eq!(ids(&second), [a1.id, a0.id]);
    assert_eq!(page_result(3).found().map(drop), Err(PastEnd { count: 6 }));
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
        rd(uow, |repos| Ok(repos
            .users()
            .find_credentials(&IdentityKey::of(username))?)),
        None,
        "user rolled back"
    );
    assert!(
        !rd(uow, |repos| Ok(repos
            .users()
            .username_exists(&IdentityKey::of(username))?)),
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
        let outcome = transaction(uow, |repos| -> Result<_, RepoError> {
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
                        let outcome = transaction(&uow, |repos| -> Result<_, RepoError> {
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

// ---------------------------------------------------------------------------
// Missions
// ---------------------------------------------------------------------------

fn new_mission(title: &str, kind: MissionType, priority: Priority) -> NewMission {
    NewMission {
        title: Title::parse(title).expect("valid title"),
        description: Description::default(),
        kind,
        priority,
        deadline: None,
    }
}

fn create_mission(
    uow: &DieselUnitOfWork,
    owner: UserId,
    new: &NewMission,
    at: DateTime<Utc>,
) -> Mission {
    tx(uow, |repos| Ok(repos.missions().create(owner, new, at)?))
}

/// A custom, medium-priority mission created at `t0() + minutes`.
fn simple_mission(uow: &DieselUnitOfWork, owner: UserId, title: &str, minutes: i64) -> Mission {
    create_mission(
        uow,
        owner,
        &new_mission(title, MissionType::Custom, Priority::Medium),
        t0() + Duration::minutes(minutes),
    )
}

fn find_mission(uow: &DieselUnitOfWork, id: MissionId, owner: Option<UserId>) -> Option<Mission> {
    rd(uow, |repos| Ok(repos.missions().find(id, owner)?))
}

fn list_missions_result(uow: &DieselUnitOfWork, query: MissionQuery) -> PageResult<Mission> {
    rd(uow, |repos| Ok(repos.missions().list(&query)?))
}

fn list_missions(uow: &DieselUnitOfWork, query: MissionQuery) -> Page<Mission> {
    found_page(list_missions_result(uow, query))
}

fn mission_ids(page: &Page<Mission>) -> Vec<MissionId> {
    page.items.iter().map(|mission| mission.id).collect()
}

fn ordered(ordering: &str) -> MissionQuery {
    MissionQuery {
        ordering: MissionOrderField::parse_list(ordering).expect("valid ordering"),
        ..MissionQuery::default()
    }
}

fn transition(
    uow: &DieselUnitOfWork,
    id: MissionId,
    action: MissionAction,
    at: DateTime<Utc>,
) -> bool {
    let change = MissionTransition::for_action(action, action.target(), at);
    tx(uow, |repos| {
        Ok(repos
            .missions()
            .transition(id, action.allowed_from(), &change, at)?)
    })
}

/// Inserts a document row directly (the documents repository is not this suite's concern).
fn insert_document(uow: &DieselUnitOfWork, owner: UserId, mission: Option<MissionId>, key: &str) {
    use autodocs_db::schema::documents_document as document;
    use diesel::prelude::*;
    let mut conn = uow.database().connection().expect("a connection");
    let at = t0().naive_utc();
    diesel::insert_into(document::table)
        .values((
            document::name.eq(key),
            document::type_.eq("other"),
            document::status.eq("uploaded"),
            document::verified.eq(false),
            document::verification_error.eq(""),
            document::mission_id.eq(mission.map(|mission| mission.0)),
            document::owner_id.eq(owner.0),
            document::original_filename.eq(format!("{key}.pdf")),
            document::content_type.eq("application/pdf"),
            document::size.eq(1_i64),
            document::sha256.eq("0".repeat(64)),
            document::storage_key.eq(key),
            document::uploaded_at.eq(at),
            document::updated_at.eq(at),
        ))
        .execute(&mut *conn)
        .expect("insert a document");
}

fn missions_create_and_find_by_owner(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let deadline = t0() + Duration::days(3);
    let new = NewMission {
        title: Title::parse("Retrieve Tax Documents").expect("title"),
        description: Description::parse("Every form of 2025").expect("description"),
        kind: MissionType::DocumentRetrieval,
        priority: Priority::High,
        deadline: Some(deadline),
    };
    let created = create_mission(uow, alice.id, &new, t0());
    assert!(created.id.0 > 0);
    assert_eq!(created.title.as_str(), "Retrieve Tax Documents");
    assert_eq!(created.description.as_str(), "Every form of 2025");
    assert_eq!(created.kind, MissionType::DocumentRetrieval);
    assert_eq!(created.status, MissionStatus::Pending);
    assert_eq!(created.priority, Priority::High);
    assert_eq!(created.progress, Progress::ZERO);
    assert_eq!(created.owner, alice.id);
    assert_eq!(created.deadline, Some(deadline));
    assert_eq!((created.started_at, created.completed_at), (None, None));
    assert_eq!((created.created_at, created.updated_at), (t0(), t0()));
    assert_eq!(
        (
            created.steps_total,
            created.steps_completed,
            created.document_count
        ),
        (0, 0, 0)
    );

    assert_eq!(find_mission(uow, created.id, None), Some(created.clone()));
    assert_eq!(
        find_mission(uow, created.id, Some(alice.id)),
        Some(created.clone())
    );
    assert_eq!(
        find_mission(uow, created.id, Some(bob.id)),
        None,
        "bob does not own it"
    );
    assert_eq!(
        find_mission(uow, MissionId(created.id.0 + 1000), None),
        None
    );

    let other = simple_mission(uow, bob.id, "Bob's", 1);
    assert_ne!(other.id, created.id);
    assert_eq!(other.deadline, None);
    assert_eq!(other.priority, Priority::Medium);
}

fn missions_list_filters_and_search(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let bob = create_user(uow, "bob", "bob@example.com");
    let create = |owner: UserId, title: &str, description: &str, kind, priority, minutes| {
        let new = NewMission {
            description: Description::parse(description).expect("description"),
            ..new_mission(title, kind, priority)
        };
        create_mission(uow, owner, &new, t0() + Duration::minutes(minutes))
    };
    use MissionType as K;
    use Priority as P;
    let tax = create(
        alice.id,
        "Tax Documents",
        "",
        K::DocumentRetrieval,
        P::High,
        0,
    );
    let percent = create(alice.id, "100% done", "", K::Custom, P::Low, 1);
    let a_b = create(alice.id, "a_b", "", K::FormSubmission, P::Urgent, 2);
    let axb = create(
        alice.id,
        "axb",
        "About TAXES",
        K::DataExtraction,
        P::Medium,
        3,
    );
    let bobs = create(bob.id, "Bob tax", "", K::DocumentRetrieval, P::High, 4);
    assert!(transition(uow, percent.id, MissionAction::Start, t0()));
    assert!(transition(uow, a_b.id, MissionAction::Start, t0()));
    assert!(transition(uow, a_b.id, MissionAction::Pause, t0()));
    assert!(transition(uow, bobs.id, MissionAction::Cancel, t0()));

    let of_alice = || MissionQuery {
        owner: Some(alice.id),
        ..MissionQuery::default()
    };
    // Default ordering: newest first.
    assert_eq!(
        mission_ids(&list_missions(uow, of_alice())),
        [axb.id, a_b.id, percent.id, tax.id]
    );
    let everyone = list_missions(uow, MissionQuery::default());
    assert_eq!(everyone.count, 5);
    assert_eq!(
        mission_ids(&everyone),
        [bobs.id, axb.id, a_b.id, percent.id, tax.id]
    );

    let by_status = |statuses: Vec<MissionStatus>| {
        mission_ids(&list_missions(
            uow,
            MissionQuery {
                statuses,
                ..of_alice()
            },
        ))
    };
    assert_eq!(by_status(vec![MissionStatus::Pending]), [axb.id, tax.id]);
    assert_eq!(
        by_status(vec![MissionStatus::InProgress, MissionStatus::Paused]),
        [a_b.id, percent.id]
    );
    assert_eq!(
        by_status(vec![MissionStatus::Cancelled]),
        Vec::<MissionId>::new()
    );

    let by_kind = |kinds: Vec<MissionType>| {
        mission_ids(&list_missions(
            uow,
            MissionQuery {
                kinds,
                ..MissionQuery::default()
            },
        ))
    };
    assert_eq!(by_kind(vec![K::DocumentRetrieval]), [bobs.id, tax.id]);
    assert_eq!(
        by_kind(vec![K::Custom, K::DataExtraction]),
        [axb.id, percent.id]
    );
    assert_eq!(
        by_kind(vec![K::DocumentVerification]),
        Vec::<MissionId>::new()
    );

    let by_priority = |priorities: Vec<Priority>| {
        mission_ids(&list_missions(
            uow,
            MissionQuery {
                priorities,
                ..of_alice()
            },
        ))
    };
    assert_eq!(by_priority(vec![P::High]), [tax.id]);
    assert_eq!(by_priority(vec![P::Urgent, P::Low]), [a_b.id, percent.id]);

    let search = |needle: &str, query: MissionQuery| {
        mission_ids(&list_missions(
            uow,
            MissionQuery {
                search: Some(needle.to_owned()),
                ..query
            },
        ))
    };
    // Case-insensitive, in the title or the description.
    assert_eq!(search("TAX", of_alice()), [axb.id, tax.id]);
    assert_eq!(
        search("tax", MissionQuery::default()),
        [bobs.id, axb.id, tax.id]
    );
    assert_eq!(search("taxes", of_alice()), [axb.id]);
    // Wildcards are literal.
    assert_eq!(search("%", of_alice()), [percent.id]);
    assert_eq!(search("_", of_alice()), [a_b.id]);
    assert_eq!(search("a_b", of_alice()), [a_b.id]);
    assert_eq!(search("nothing", of_alice()), Vec::<MissionId>::new());
    // An empty search filters nothing.
    assert_eq!(search("", of_alice()).len(), 4);

    // Filters combine.
    assert_eq!(
        search(
            "tax",
            MissionQuery {
                kinds: vec![K::DocumentRetrieval],
                statuses: vec![MissionStatus::Pending],
                ..MissionQuery::default()
            }
        ),
        [tax.id]
    );
}

fn missions_list_ordering_and_pages(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let create = |title: &str, priority, minutes, deadline: Option<i64>| {
        let new = NewMission {
            deadline: deadline.map(|days| t0() + Duration::days(days)),
            ..new_mission(title, MissionType::Custom, priority)
        };
        create_mission(uow, alice.id, &new, t0() + Duration::minutes(minutes))
    };
    let medium = create("bravo", Priority::Medium, 0, Some(2));
    let urgent = create("delta", Priority::Urgent, 1, None);
    let low = create("alpha", Priority::Low, 2, Some(1));
    let high = create("charlie", Priority::High, 3, None);
    // Same creation time and priority as `medium`: ties are broken by id.
    let medium2 = create("echo", Priority::Medium, 0, Some(3));

    let ids = |ordering: &str| mission_ids(&list_missions(uow, ordered(ordering)));
    assert_eq!(
        ids(""),
        [high.id, low.id, urgent.id, medium2.id, medium.id],
        "default -created_at, then -id"
    );
    assert_eq!(
        ids("created_at"),
        [medium.id, medium2.id, urgent.id, low.id, high.id]
    );
    // By urgency, not by the alphabet.
    assert_eq!(
        ids("-priority"),
        [urgent.id, high.id, medium2.id, medium.id, low.id]
    );
    assert_eq!(
        ids("priority"),
        [low.id, medium.id, medium2.id, high.id, urgent.id]
    );
    assert_eq!(
        ids("title"),
        [low.id, medium.id, high.id, urgent.id, medium2.id]
    );
    assert_eq!(
        ids("-title"),
        [medium2.id, urgent.id, high.id, medium.id, low.id]
    );
    // Several keys.
    assert_eq!(
        ids("-priority,title"),
        [urgent.id, high.id, medium.id, medium2.id, low.id]
    );
    assert_eq!(
        ids("-priority,-title"),
        [urgent.id, high.id, medium2.id, medium.id, low.id]
    );
    assert_eq!(
        ids("priority,-created_at"),
        [low.id, medium.id, medium2.id, high.id, urgent.id],
        "equal creation times: the id, ascending like the first key"
    );
    // Missing deadlines last ascending, first descending, on both backends.
    assert_eq!(
        ids("deadline"),
        [low.id, medium.id, medium2.id, urgent.id, high.id]
    );
    assert_eq!(
        ids("-deadline"),
        [high.id, urgent.id, medium2.id, medium.id, low.id]
    );
    // Progress and updated_at are orderable too.
    tx(uow, |repos| {
        repos
            .missions()
            .set_progress(high.id, Progress::parse(50).expect("progress"), t0())?;
        Ok(repos
            .missions()
            .set_progress(low.id, Progress::parse(10).expect("progress"), t0())?)
    });
    assert_eq!(
        ids("-progress,title"),
        [high.id, low.id, medium.id, urgent.id, medium2.id]
    );
    assert_eq!(
        ids("updated_at"),
        [medium.id, low.id, high.id, medium2.id, urgent.id],
        "set_progress set updated_at to t0; equal times by id"
    );

    // Pages follow the ordering.
    let page_result = |number: u32| {
        list_missions_result(
            uow,
            MissionQuery {
                page: PageRequest::new(number, 2),
                ..ordered("title")
            },
        )
    };
    let page = |number: u32| found_page(page_result(number));
    let first = page(1);
    assert_eq!((first.count, first.page, first.page_size), (5, 1, 2));
    assert_eq!(mission_ids(&first), [low.id, medium.id]);
    assert!(first.has_next());
    let second = page(2);
    assert_eq!(mission_ids(&second), [high.id, urgent.id]);
    let third = page(3);
    assert_eq!((third.page, mission_ids(&third)), (3, vec![medium2.id]));
    assert!(!third.has_next());
    assert_eq!(page_result(4).found().map(drop), Err(PastEnd { count: 5 }));
    let last = list_missions(
        uow,
        MissionQuery {
            page: PageRequest::parse(Some("last"), Some("2")).expect("page"),
            ..ordered("title")
        },
    );
    assert_eq!((last.page, mission_ids(&last)), (3, vec![medium2.id]));
    // An empty list still has a page 1.
    let empty = list_missions(
        uow,
        MissionQuery {
            search: Some("nothing".into()),
            ..MissionQuery::default()
        },
    );
    assert_eq!((empty.count, empty.page, empty.items.len()), (0, 1, 0));
}

/// Counts the statements a connection runs and the ones it prepares into
/// diesel's statement cache.
#[derive(Default)]
struct StatementLog {
    started: Arc<AtomicU64>,
    cached: Arc<AtomicU64>,
}

impl diesel::connection::Instrumentation for StatementLog {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent as Event;
        match event {
            Event::StartQuery { .. } => self.started.fetch_add(1, Ordering::SeqCst),
            Event::CacheQuery { .. } => self.cached.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
}

/// The reads every request makes (the account check, a page of missions,
/// a mission with its steps and documents) are prepared on first use and
/// then reused: none of them is parsed again per request.
fn hot_reads_are_prepared_once(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let mission = simple_mission(uow, alice.id, "first", 0);
    create_step(uow, &new_step(mission.id, None, "root", 0), t0());
    insert_document(uow, alice.id, Some(mission.id), "doc-1");
    let log = StatementLog::default();
    let (started, cached) = (Arc::clone(&log.started), Arc::clone(&log.cached));
    {
        // Sequential use of the pool gets back this same idle connection.
        use diesel::Connection as _;
        let mut conn = uow.database().connection().expect("connection");
        conn.set_instrumentation(log);
    }
    let hot_reads = || {
        rd(uow, |repos| {
            assert!(repos.users().access(alice.id)?.is_some());
            let query = MissionQuery {
                owner: Some(alice.id),
                ..MissionQuery::default()
            };
            assert_eq!(found_page(repos.missions().list(&query)?).items.len(), 1);
            assert!(repos.missions().find(mission.id, Some(alice.id))?.is_some());
            assert_eq!(repos.steps().list(mission.id)?.len(), 1);
            assert_eq!(repos.documents().list_for_mission(mission.id)?.len(), 1);
            Ok(())
        })
    };
    hot_reads();
    let first_started = started.load(Ordering::SeqCst);
    assert!(
        first_started >= 5,
        "the reads ran on the instrumented connection"
    );
    assert_eq!(
        cached.load(Ordering::SeqCst),
        first_started,
        "every statement went into the cache"
    );
    hot_reads();
    // The account check of the second round is answered by the process's
    // cache (fresh for a second): one statement fewer, nothing prepared.
    assert_eq!(started.load(Ordering::SeqCst), 2 * first_started - 1);
    assert_eq!(
        cached.load(Ordering::SeqCst),
        first_started,
        "the second round prepared nothing"
    );
}

/// The account check is kept by the process for a second, but a change
/// this process commits (deactivation, staff, deletion) is seen by its
/// next read at once.
fn account_checks_see_this_process_changes_at_once(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let access = |uow: &DieselUnitOfWork| rd(uow, |repos| Ok(repos.users().access(alice.id)?));
    let active = access(uow).expect("alice exists");
    assert!(active.is_active && !active.is_staff);
    assert_eq!(access(uow), Some(active), "kept");

    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.users().update_account(alice.id, &deactivate)?)
    });
    assert!(
        !access(uow).expect("alice exists").is_active,
        "seen at once"
    );

    let promote = UserChanges {
        is_active: Some(true),
        is_staff: Some(true),
        ..UserChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.users().update_account(alice.id, &promote)?)
    });
    let staff = access(uow).expect("alice exists");
    assert!(staff.is_active && staff.is_staff);

    // A rolled-back change evicts nothing it did not make.
    let failed: Result<(), Error> = transaction(uow, |repos| {
        repos.users().update_account(alice.id, &deactivate)?;
        Err(Error::NotFound)
    });
    assert!(failed.is_err());
    assert!(access(uow).expect("alice exists").is_active);

    tx(uow, |repos| {
        Ok(repos.users().delete(alice.id).map(|_| ())?)
    });
    assert_eq!(access(uow), None, "a deleted account is gone at once");
}

fn missions_counts_without_a_query_per_row(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let busy = simple_mission(uow, alice.id, "busy", 0);
    let docs_only = simple_mission(uow, alice.id, "docs only", 1);
    let empty = simple_mission(uow, alice.id, "empty", 2);
    let root = create_step(uow, &new_step(busy.id, None, "root", 0), t0());
    let child = create_step(uow, &new_step(busy.id, Some(&root), "child", 0), t0());
    let other = create_step(uow, &new_step(busy.id, None, "other", 1), t0());
    create_step(uow, &new_step(busy.id, Some(&child), "grandchild", 0), t0());
    let done = |step: &PlanStep| {
        let changes = StepChanges::status(step.status, StepStatus::Completed, t0());
        tx(uow, |repos| {
            Ok(repos.steps().update(step.id, &changes, t0())?)
        });
    };
    done(&child);
    done(&other);
    let skipped = StepChanges::status(StepStatus::Pending, StepStatus::Skipped, t0());
    tx(uow, |repos| {
        Ok(repos.steps().update(root.id, &skipped, t0())?)
    });
    insert_document(uow, alice.id, Some(busy.id), "doc-1");
    insert_document(uow, alice.id, Some(busy.id), "doc-2");
    insert_document(uow, alice.id, Some(docs_only.id), "doc-3");
    insert_document(uow, alice.id, None, "doc-4");

    let counts = |mission: &Mission| {
        (
            mission.steps_total,
            mission.steps_completed,
            mission.document_count,
        )
    };
    let found = find_mission(uow, busy.id, None).expect("busy");
    assert_eq!(counts(&found), (4, 2, 2), "skipped is not completed");
    assert_eq!(
        counts(&find_mission(uow, docs_only.id, None).expect("docs only")),
        (0, 0, 1)
    );
    assert_eq!(
        counts(&find_mission(uow, empty.id, None).expect("empty")),
        (0, 0, 0)
    );

    let listed = list_missions(uow, MissionQuery::default());
    let listed: Vec<(MissionId, (u64, u64, u64))> = listed
        .items
        .iter()
        .map(|mission| (mission.id, counts(mission)))
        .collect();
    assert_eq!(
        listed,
        [
            (empty.id, (0, 0, 0)),
            (docs_only.id, (0, 0, 1)),
            (busy.id, (4, 2, 2)),
        ]
    );
    // The list item equals the detail record.
    let page = list_missions(uow, ordered("title"));
    assert_eq!(page.items[0], found);

    // The counts follow documents that move, detach or go, and step
    // subtrees that are deleted, in the same transaction.
    let busy_documents = rd(uow, |repos| {
        Ok(repos.documents().list_for_mission(busy.id)?)
    });
    let move_to = |id: DocumentId, mission: Option<MissionId>| {
        let changes = autodocs_domain::document::DocumentChanges {
            mission: Some(mission),
            ..Default::default()
        };
        tx(uow, |repos| {
            Ok(repos.documents().update(id, &changes, t0())?)
        });
    };
    move_to(busy_documents[0].id, Some(docs_only.id));
    move_to(busy_documents[1].id, None);
    let subtree = tx(uow, |repos| Ok(repos.steps().delete(root.id)?));
    assert_eq!(subtree, 3, "root, child and grandchild");
    let docs_only_documents = rd(uow, |repos| {
        Ok(repos.documents().list_for_mission(docs_only.id)?)
    });
    tx(uow, |repos| {
        Ok(repos.documents().delete(docs_only_documents[0].id)?)
    });
    let counts_of = |id: MissionId| counts(&find_mission(uow, id, None).expect("mission"));
    assert_eq!(
        counts_of(busy.id),
        (1, 1, 0),
        "only `other`, completed, is left"
    );
    assert_eq!(
        counts_of(docs_only.id),
        (0, 0, 1),
        "one moved in, one deleted"
    );
    tx(uow, |repos| {
        Ok(repos
            .missions()
            .delete(busy.id, MissionStatus::InProgress)?)
    });
    assert_eq!(counts_of(docs_only.id), (0, 0, 1));
}

fn missions_update_is_partial(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let deadline = t0() + Duration::days(7);
    let new = NewMission {
        description: Description::parse("original").expect("description"),
        deadline: Some(deadline),
        ..new_mission("Original", MissionType::Custom, Priority::Low)
    };
    let mission = create_mission(uow, alice.id, &new, t0());
    let untouched = simple_mission(uow, alice.id, "untouched", 1);
    let t1 = t0() + Duration::hours(1);

    let changes = MissionChanges {
        title: Some(Title::parse("Renamed").expect("title")),
        priority: Some(Priority::Urgent),
        ..MissionChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.missions().update(mission.id, &changes, t1)?)
    });
    let updated = find_mission(uow, mission.id, None).expect("mission");
    assert_eq!(
        updated,
        Mission {
            title: Title::parse("Renamed").expect("title"),
            priority: Priority::Urgent,
            updated_at: t1,
            ..mission.clone()
        }
    );
    // The rank followed the priority.
    assert_eq!(
        mission_ids(&list_missions(uow, ordered("-priority"))),
        [mission.id, untouched.id]
    );

    // `Some(None)` clears the deadline; the rest stays.
    let t2 = t1 + Duration::hours(1);
    let changes = MissionChanges {
        deadline: Some(None),
        kind: Some(MissionType::FormSubmission),
        description: Some(Description::default()),
        ..MissionChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.missions().update(mission.id, &changes, t2)?)
    });
    let cleared = find_mission(uow, mission.id, None).expect("mission");
    assert_eq!(cleared.deadline, None);
    assert_eq!(cleared.kind, MissionType::FormSubmission);
    assert!(cleared.description.is_empty());
    assert_eq!(cleared.title.as_str(), "Renamed");
    assert_eq!(cleared.priority, Priority::Urgent);
    assert_eq!((cleared.created_at, cleared.updated_at), (t0(), t2));

    // A new deadline; an empty change only touches updated_at.
    let changes = MissionChanges {
        deadline: Some(Some(deadline)),
        ..MissionChanges::default()
    };
    tx(uow, |repos| {
        Ok(repos.missions().update(mission.id, &changes, t2)?)
    });
    assert_eq!(
        find_mission(uow, mission.id, None).and_then(|m| m.deadline),
        Some(deadline)
    );
    let t3 = t2 + Duration::hours(1);
    tx(uow, |repos| {
        Ok(repos
            .missions()
            .update(mission.id, &MissionChanges::default(), t3)?)
    });
    let touched = find_mission(uow, mission.id, None).expect("mission");
    assert_eq!(
        touched,
        Mission {
            updated_at: t3,
            ..find_mission(uow, mission.id, None).expect("mission")
        }
    );
    assert_eq!(touched.deadline, Some(deadline));
    assert_eq!(find_mission(uow, untouched.id, None), Some(untouched));
}

fn missions_transition_race_has_one_winner(uow: &DieselUnitOfWork) {
    const THREADS: usize = 20;
    let alice = create_user(uow, "alice", "alice@example.com");
    let mission = simple_mission(uow, alice.id, "contested", 0);
    let t1 = t0() + Duration::hours(1);
    let barrier = std::sync::Barrier::new(THREADS);
    let outcomes: Vec<Result<bool, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let uow = uow.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    let change = MissionTransition::for_action(
                        MissionAction::Start,
                        MissionStatus::InProgress,
                        t1,
                    );
                    barrier.wait();
                    transaction(&uow, |repos| {
                        repos.missions().transition(
                            mission.id,
                            &[MissionStatus::Pending],
                            &change,
                            t1,
                        )
                    })
                    .map_err(|error| format!("{error:?}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("thread finished"))
            .collect()
    });
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(failures.is_empty(), "transactions failed: {failures:#?}");
    let winners = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
    assert_eq!(winners, 1, "exactly one caller wins: {outcomes:?}");
    let started = find_mission(uow, mission.id, None).expect("mission");
    assert_eq!(started.status, MissionStatus::InProgress);
    assert_eq!(started.started_at, Some(t1));
    assert_eq!(started.updated_at, t1);
    assert_eq!(started.completed_at, None);
}

fn missions_transition_from_wrong_status_changes_nothing(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let mission = simple_mission(uow, alice.id, "mission", 0);
    let t1 = t0() + Duration::hours(1);
    // Pending cannot be paused or completed.
    assert!(!transition(uow, mission.id, MissionAction::Pause, t1));
    assert!(!transition(uow, mission.id, MissionAction::Complete, t1));
    assert!(
        !transition(
            uow,
            MissionId(mission.id.0 + 1000),
            MissionAction::Start,
            t1
        ),
        "no such mission"
    );
    assert_eq!(find_mission(uow, mission.id, None), Some(mission.clone()));
    let nothing = tx(uow, |repos| {
        Ok(repos.missions().transition(
            mission.id,
            &[],
            &MissionTransition::for_action(MissionAction::Start, MissionStatus::InProgress, t1),
            t1,
        )?)
    });
    assert!(!nothing, "no allowed status: nothing matches");

    assert!(transition(uow, mission.id, MissionAction::Start, t1));
    assert!(!transition(uow, mission.id, MissionAction::Start, t1));
    let t2 = t1 + Duration::hours(1);
    tx(uow, |repos| {
        Ok(repos
            .missions()
            .set_progress(mission.id, Progress::parse(40).expect("progress"), t2)?)
    });
    let t3 = t2 + Duration::hours(1);
    assert!(transition(uow, mission.id, MissionAction::Pause, t3));
    let paused = find_mission(uow, mission.id, None).expect("mission");
    assert_eq!(
        (
            paused.status,
            paused.started_at,
            paused.progress.value(),
            paused.updated_at
        ),
        (MissionStatus::Paused, Some(t1), 40, t3),
        "pause keeps started_at and progress"
    );
    let t4 = t3 + Duration::hours(1);
    assert!(transition(uow, mission.id, MissionAction::Complete, t4));
    let completed = find_mission(uow, mission.id, None).expect("mission");
    assert_eq!(completed.status, MissionStatus::Completed);
    assert_eq!(completed.progress, Progress::COMPLETE);
    assert_eq!(completed.completed_at, Some(t4));
    assert_eq!(completed.started_at, Some(t1));
    // Completed is terminal.
    for action in MissionAction::ALL {
        assert!(!transition(
            uow,
            mission.id,
            action,
            t4 + Duration::hours(1)
        ));
    }
    assert_eq!(find_mission(uow, mission.id, None), Some(completed));
}

fn missions_delete_spares_protected_status(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let running = simple_mission(uow, alice.id, "running", 0);
    let idle = simple_mission(uow, alice.id, "idle", 1);
    let step = create_step(uow, &new_step(idle.id, None, "step", 0), t0());
    insert_document(uow, alice.id, Some(idle.id), "doc");
    assert!(transition(uow, running.id, MissionAction::Start, t0()));

    let delete = |id: MissionId| {
        tx(uow, |repos| {
            Ok(repos.missions().delete(id, MissionStatus::InProgress)?)
        })
    };
    assert!(!delete(running.id), "an in-progress mission is kept");
    assert!(find_mission(uow, running.id, None).is_some());
    assert!(delete(idle.id));
    assert_eq!(find_mission(uow, idle.id, None), None);
    assert!(!delete(idle.id), "already gone");
    assert_eq!(
        rd(uow, |repos| Ok(repos.steps().find(idle.id, step.id)?)),
        None,
        "its steps went with it"
    );
    assert_eq!(list_missions(uow, MissionQuery::default()).count, 1);

    assert!(transition(uow, running.id, MissionAction::Pause, t0()));
    assert!(delete(running.id), "deletable once paused");
}

// ---------------------------------------------------------------------------
// Plan steps
// ---------------------------------------------------------------------------

fn new_step(mission: MissionId, parent: Option<&PlanStep>, title: &str, order: i32) -> NewPlanStep {
    NewPlanStep {
        mission,
        parent: parent.map(|parent| parent.id),
        title: Title::parse(title).expect("valid title"),
        description: Description::default(),
        order,
        depth: parent.map_or(1, |parent| parent.depth + 1),
        action: StepAction::Manual,
    }
}

fn create_step(uow: &DieselUnitOfWork, new: &NewPlanStep, at: DateTime<Utc>) -> PlanStep {
    tx(uow, |repos| Ok(repos.steps().create(new, at)?))
}

fn list_steps(uow: &DieselUnitOfWork, mission: MissionId) -> Vec<PlanStep> {
    rd(uow, |repos| Ok(repos.steps().list(mission)?))
}

fn step_ids(steps: &[PlanStep]) -> Vec<StepId> {
    steps.iter().map(|step| step.id).collect()
}

fn find_step(uow: &DieselUnitOfWork, mission: MissionId, id: StepId) -> Option<PlanStep> {
    rd(uow, |repos| Ok(repos.steps().find(mission, id)?))
}

fn update_step(uow: &DieselUnitOfWork, id: StepId, changes: &StepChanges, at: DateTime<Utc>) {
    tx(uow, |repos| Ok(repos.steps().update(id, changes, at)?));
}

fn steps_create_list_and_find(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let mission = simple_mission(uow, alice.id, "mission", 0);
    let other = simple_mission(uow, alice.id, "other", 1);

    let wait = StepAction::parse(&json!({"kind": "wait", "seconds": 5})).expect("action");
    let first = create_step(
        uow,
        &NewPlanStep {
            description: Description::parse("Gather the forms").expect("description"),
            action: wait.clone(),
            ..new_step(mission.id, None, "First", 0)
        },
        t0(),
    );
    assert!(first.id.0 > 0);
    assert_eq!(first.mission, mission.id);
    assert_eq!(first.parent, None);
    assert_eq!(first.title.as_str(), "First");
    assert_eq!(first.description.as_str(), "Gather the forms");
    assert_eq!((first.order, first.depth), (0, 1));
    assert_eq!(first.status, StepStatus::Pending);
    assert_eq!(first.action, wait);
    assert_eq!(first.last_error, None);
    assert_eq!((first.started_at, first.completed_at), (None, None));
    assert_eq!((first.created_at, first.updated_at), (t0(), t0()));

    let fetch =
        StepAction::parse(&json!({"kind": "fetch_url", "url": "https://example.com/a?b=c"}))
            .expect("action");
    let second = create_step(
        uow,
        &NewPlanStep {
            action: fetch.clone(),
            ..new_step(mission.id, None, "Second", 1)
        },
        t0(),
    );
    let child = create_step(uow, &new_step(mission.id, Some(&first), "Child", 0), t0());
    assert_eq!((child.parent, child.depth), (Some(first.id), 2));
    let also_first = create_step(uow, &new_step(mission.id, None, "Also first", 0), t0());
    let elsewhere = create_step(uow, &new_step(other.id, None, "Elsewhere", 0), t0());

    // Flat, by order then id.
    let steps = list_steps(uow, mission.id);
    assert_eq!(
        step_ids(&steps),
        [first.id, child.id, also_first.id, second.id]
    );
    assert_eq!(steps[0], first);
    assert_eq!(steps[3].action, fetch);
    assert_eq!(step_ids(&list_steps(uow, other.id)), [elsewhere.id]);
    assert!(list_steps(uow, MissionId(other.id.0 + 1000)).is_empty());

    assert_eq!(find_step(uow, mission.id, child.id), Some(child.clone()));
    assert_eq!(
        find_step(uow, other.id, child.id),
        None,
        "a step of another mission"
    );
    assert_eq!(find_step(uow, mission.id, StepId(child.id.0 + 1000)), None);

    // An action that somehow is not valid JSON reads as manual.
    {
        use autodocs_db::schema::missions_planstep as step;
        use diesel::prelude::*;
        let mut conn = uow.database().connection().expect("a connection");
        diesel::update(step::table.find(second.id.0))
            .set(step::action.eq("not json"))
            .execute(&mut *conn)
            .expect("corrupt the action");
    }
    assert_eq!(
        find_step(uow, mission.id, second.id).map(|step| step.action),
        Some(StepAction::Manual)
    );

    // A parent in another mission... is the domain's check; a missing one is refused.
    let orphan = NewPlanStep {
        parent: Some(StepId(elsewhere.id.0 + 1000)),
        depth: 2,
        ..new_step(mission.id, None, "Orphan", 0)
    };
    let refused = transaction(uow, |repos| Ok(repos.steps().create(&orphan, t0())?));
    assert!(
        matches!(
            refused,
            Err(Error::Repository(RepoError::ConstraintViolation(_)))
        ),
        "{refused:?}"
    );
}

fn steps_update_status_timestamps_and_parent(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let mission = simple_mission(uow, alice.id, "mission", 0);
    let a = create_step(uow, &new_step(mission.id, None, "a", 0), t0());
    let b = create_step(uow, &new_step(mission.id, None, "b", 1), t0());
    let child = create_step(uow, &new_step(mission.id, Some(&a), "child", 0), t0());
    let at = |hours: i64| t0() + Duration::hours(hours);

    // Status changes and their timestamps.
    update_step(
        uow,
        child.id,
        &StepChanges::status(StepStatus::Pending, StepStatus::InProgress, at(1)),
        at(1),
    );
    let started = find_step(uow, mission.id, child.id).expect("step");
    assert_eq!(
        started,
        PlanStep {
            status: StepStatus::InProgress,
            started_at: Some(at(1)),
            updated_at: at(1),
            ..child.clone()
        }
    );
    update_step(
        uow,
        child.id,
        &StepChanges {
            last_error: Some(Some("connection refused".into())),
            ..StepChanges::status(StepStatus::InProgress, StepStatus::Failed, at(2))
        },
        at(2),
    );
    let failed = find_step(uow, mission.id, child.id).expect("step");
    assert_eq!(failed.status, StepStatus::Failed);
    assert_eq!(
        (failed.started_at, failed.completed_at),
        (Some(at(1)), Some(at(2)))
    );
    assert_eq!(failed.last_error.as_deref(), Some("connection refused"));
    update_step(
        uow,
        child.id,
        &StepChanges {
            last_error: Some(None),
            ..StepChanges::status(StepStatus::Failed, StepStatus::Pending, at(3))
        },
        at(3),
    );
    let reset = find_step(uow, mission.id, child.id).expect("step");
    assert_eq!(
        reset,
        PlanStep {
            updated_at: at(3),
            ..child.clone()
        },
        "back to pending clears the timestamps and the error"
    );

    // Title, description and order alone.
    update_step(
        uow,
        b.id,
        &StepChanges {
            title: Some(Title::parse("B renamed").expect("title")),
            description: Some(Description::parse("more").expect("description")),
            order: Some(7),
            ..StepChanges::default()
        },
        at(4),
    );
    let renamed = find_step(uow, mission.id, b.id).expect("step");
    assert_eq!(
        renamed,
        PlanStep {
            title: Title::parse("B renamed").expect("title"),
            description: Description::parse("more").expect("description"),
            order: 7,
            updated_at: at(4),
            ..b.clone()
        }
    );

    // Moves: under another parent, then to the top level.
    update_step(
        uow,
        b.id,
        &StepChanges {
            parent: Some((Some(child.id), 3)),
            order: Some(0),
            ..StepChanges::default()
        },
        at(5),
    );
    let moved = find_step(uow, mission.id, b.id).expect("step");
    assert_eq!(
        (moved.parent, moved.depth, moved.order),
        (Some(child.id), 3, 0)
    );
    update_step(
        uow,
        child.id,
        &StepChanges {
            parent: Some((None, 1)),
            ..StepChanges::default()
        },
        at(6),
    );
    tx(uow, |repos| Ok(repos.steps().set_depth(b.id, 2)?));
    let top = find_step(uow, mission.id, child.id).expect("step");
    assert_eq!((top.parent, top.depth, top.updated_at), (None, 1, at(6)));
    let b_now = find_step(uow, mission.id, b.id).expect("step");
    assert_eq!(
        (b_now.parent, b_now.depth, b_now.updated_at),
        (Some(child.id), 2, at(5)),
        "set_depth changes only the depth"
    );
    assert_eq!(find_step(uow, mission.id, a.id), Some(a));
}

fn steps_delete_counts_the_subtree(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let mission = simple_mission(uow, alice.id, "mission", 0);
    let other = simple_mission(uow, alice.id, "other", 1);
    let root = create_step(uow, &new_step(mission.id, None, "root", 0), t0());
    let middle = create_step(uow, &new_step(mission.id, Some(&root), "middle", 0), t0());
    let leaf = create_step(uow, &new_step(mission.id, Some(&middle), "leaf", 0), t0());
    let sibling = create_step(uow, &new_step(mission.id, None, "sibling", 1), t0());
    let sibling_child = create_step(
        uow,
        &new_step(mission.id, Some(&sibling), "sibling child", 0),
        t0(),
    );
    let elsewhere = create_step(uow, &new_step(other.id, None, "elsewhere", 0), t0());

    let delete = |id: StepId| tx(uow, |repos| Ok(repos.steps().delete(id)?));
    assert_eq!(delete(root.id), 3, "root, middle and leaf");
    assert_eq!(
        step_ids(&list_steps(uow, mission.id)),
        [sibling_child.id, sibling.id]
    );
    assert_eq!(find_step(uow, mission.id, leaf.id), None);
    assert_eq!(delete(root.id), 0, "already gone");
    assert_eq!(delete(sibling_child.id), 1, "a leaf");
    assert_eq!(step_ids(&list_steps(uow, mission.id)), [sibling.id]);
    assert_eq!(delete(sibling.id), 1);
    assert!(list_steps(uow, mission.id).is_empty());
    assert_eq!(step_ids(&list_steps(uow, other.id)), [elsewhere.id]);
}

fn steps_skip_open_and_next_order(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    let mission = simple_mission(uow, alice.id, "mission", 0);
    let other = simple_mission(uow, alice.id, "other", 1);
    let next_order = |mission: MissionId, parent: Option<StepId>| {
        rd(uow, |repos| {
            Ok(repos.steps().next_order(mission, parent)?)
        })
    };
    assert_eq!(next_order(mission.id, None), 0, "no step yet");

    let at = |hours: i64| t0() + Duration::hours(hours);
    let with_status = |title: &str, order: i32, status: StepStatus| {
        let step = create_step(uow, &new_step(mission.id, None, title, order), t0());
        if status != StepStatus::Pending {
            update_step(
                uow,
                step.id,
                &StepChanges::status(StepStatus::Pending, status, at(1)),
                at(1),
            );
        }
        find_step(uow, mission.id, step.id).expect("step")
    };
    let pending = with_status("pending", 0, StepStatus::Pending);
    let running = with_status("running", 5, StepStatus::InProgress);
    let failed = with_status("failed", 2, StepStatus::Failed);
    let completed = with_status("completed", 3, StepStatus::Completed);
    let skipped = with_status("skipped", 4, StepStatus::Skipped);
    let elsewhere = create_step(uow, &new_step(other.id, None, "elsewhere", 9), t0());

    assert_eq!(next_order(mission.id, None), 6, "after the largest order");
    assert_eq!(next_order(other.id, None), 10);
    assert_eq!(next_order(mission.id, Some(pending.id)), 0, "no child yet");
    let child = create_step(uow, &new_step(mission.id, Some(&pending), "child", 2), t0());
    assert_eq!(next_order(mission.id, Some(pending.id)), 3);
    assert_eq!(
        next_order(mission.id, None),
        6,
        "children do not count at the top level"
    );
    create_step(
        uow,
        &new_step(mission.id, Some(&child), "grandchild", 4),
        t0(),
    );
    assert_eq!(next_order(mission.id, Some(pending.id)), 3);
    assert_eq!(next_order(mission.id, Some(child.id)), 5);

    let skipped_count = tx(uow, |repos| {
        Ok(repos.steps().skip_open(mission.id, at(2))?)
    });
    assert_eq!(
        skipped_count, 5,
        "pending, running, failed, child, grandchild"
    );
    for open in [&pending, &running, &failed] {
        let step = find_step(uow, mission.id, open.id).expect("step");
        assert_eq!(step.status, StepStatus::Skipped, "{}", open.title);
        assert_eq!(step.completed_at, Some(at(2)), "{}", open.title);
        assert_eq!(step.updated_at, at(2), "{}", open.title);
        assert_eq!(step.started_at, open.started_at, "{}", open.title);
    }
    assert_eq!(
        find_step(uow, mission.id, completed.id),
        Some(completed),
        "done steps are left alone"
    );
    assert_eq!(find_step(uow, mission.id, skipped.id), Some(skipped));
    assert_eq!(
        find_step(uow, other.id, elsewhere.id),
        Some(elsewhere),
        "another mission's steps are left alone"
    );
    assert_eq!(
        tx(uow, |repos| Ok(repos
            .steps()
            .skip_open(mission.id, at(3))?)),
        0,
        "nothing left open"
    );
}

// ---------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------

fn new_document(
    owner: UserId,
    mission: Option<MissionId>,
    name: &str,
    kind: autodocs_domain::document::DocumentType,
    size: u64,
    key: &str,
) -> autodocs_domain::document::NewDocument {
    use autodocs_domain::document::{
        AllowedContentType, DocumentName, NewDocument, OriginalFilename, StorageKey,
    };
    NewDocument {
        name: DocumentName::parse(name).expect("valid name"),
        kind,
        mission,
        owner,
        original_filename: OriginalFilename::sanitize(&format!("{name}.pdf")),
        content_type: AllowedContentType::Pdf,
        size,
        sha256: format!("{size:064x}"),
        storage_key: StorageKey::parse(key).expect("valid key"),
    }
}

fn documents_round_trip_filter_verify_and_delete(uow: &DieselUnitOfWork) {
    use autodocs_domain::document::{
        DocumentChanges, DocumentName, DocumentOrderField, DocumentQuery, DocumentStatus,
        DocumentType, DocumentVerification, StorageKey, VerificationOutcome,
    };
    let anna = create_user(uow, "anna", "anna@example.com");
    let ben = create_user(uow, "ben", "ben@example.com");
    let mission = simple_mission(uow, anna.id, "Taxes", 0);
    let at = |minutes: i64| t0() + Duration::minutes(minutes);
    assert!(!rd(uow, |repos| Ok(repos.documents().any_exist()?)));

    let new = new_document(
        anna.id,
        Some(mission.id),
        "Alpha 100%",
        DocumentType::Invoice,
        10,
        "k1",
    );
    let first = tx(uow, |repos| Ok(repos.documents().create(&new, at(1))?));
    assert_eq!(first.name.as_str(), "Alpha 100%");
    assert_eq!(first.kind, DocumentType::Invoice);
    assert_eq!(first.status, DocumentStatus::Uploaded);
    assert!(!first.verified());
    assert_eq!(first.verified_at, None);
    assert_eq!(first.verification_error, "");
    assert_eq!(first.mission, Some(mission.id));
    assert_eq!(first.owner, anna.id);
    assert_eq!(first.original_filename.as_str(), "Alpha 100%.pdf");
    assert_eq!(first.content_type, "application/pdf");
    assert_eq!(first.size, 10);
    assert_eq!(first.sha256, format!("{:064x}", 10));
    assert_eq!(first.storage_key.as_str(), "k1");
    assert_eq!(first.uploaded_at, at(1));
    assert_eq!(first.updated_at, at(1));
    let second = tx(uow, |repos| {
        Ok(repos.documents().create(
            &new_document(
                anna.id,
                None,
                "beta",
                DocumentType::Other,
                3_000_000_000,
                "k2",
            ),
            at(2),
        )?)
    });
    assert_eq!(second.size, 3_000_000_000, "sizes past 32 bits survive");
    let bens = tx(uow, |repos| {
        Ok(repos.documents().create(
            &new_document(ben.id, None, "alpha of ben", DocumentType::Invoice, 5, "k3"),
            at(3),
        )?)
    });
    // Storage keys are unique.
    let duplicate = transaction(uow, |repos| {
        Ok(repos.documents().create(
            &new_document(ben.id, None, "dup", DocumentType::Other, 1, "k3"),
            at(4),
        )?)
    });
    assert!(
        matches!(
            duplicate,
            Err(Error::Repository(RepoError::UniqueViolation(_)))
        ),
        "{duplicate:?}"
    );

    // Find, by owner.
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .documents()
            .find(first.id, Some(anna.id))?)),
        Some(first.clone())
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos
            .documents()
            .find(first.id, Some(ben.id))?)),
        None
    );
    assert_eq!(
        rd(uow, |repos| Ok(repos.documents().find(first.id, None)?)),
        Some(first.clone())
    );

    // The mission counts and lists it.
    let found = rd(uow, |repos| Ok(repos.missions().find(mission.id, None)?)).expect("mission");
    assert_eq!(found.document_count, 1);
    let listed = rd(uow, |repos| {
        Ok(repos.documents().list_for_mission(mission.id)?)
    });
    assert_eq!(listed, vec![first.clone()]);

    // Lists.
    let ids = |query: DocumentQuery| -> Vec<DocumentId> {
        found_page(rd(uow, |repos| Ok(repos.documents().list(&query)?)))
            .items
            .iter()
            .map(|document| document.id)
            .collect()
    };
    let own = DocumentQuery {
        owner: Some(anna.id),
        ..DocumentQuery::default()
    };
    assert_eq!(ids(own.clone()), vec![second.id, first.id]);
    assert_eq!(
        ids(DocumentQuery::default()),
        vec![bens.id, second.id, first.id]
    );
    assert_eq!(
        ids(DocumentQuery {
            kinds: vec![DocumentType::Invoice],
            ..own.clone()
        }),
        vec![first.id]
    );
    assert_eq!(
        ids(DocumentQuery {
            missions: vec![mission.id],
            ..DocumentQuery::default()
        }),
        vec![first.id]
    );
    assert_eq!(
        ids(DocumentQuery {
            search: Some("ALPHA".into()),
            ..DocumentQuery::default()
        }),
        vec![bens.id, first.id]
    );
    assert_eq!(
        ids(DocumentQuery {
            search: Some("0%".into()),
            ..DocumentQuery::default()
        }),
        vec![first.id]
    );
    assert_eq!(
        ids(DocumentQuery {
            ordering: DocumentOrderField::parse_list("-size").expect("ordering"),
            ..DocumentQuery::default()
        }),
        vec![second.id, first.id, bens.id]
    );
    let page = found_page(rd(uow, |repos| {
        Ok(repos.documents().list(&DocumentQuery {
            page: PageRequest::new(2, 2),
            ..DocumentQuery::default()
        })?)
    }));
    assert_eq!((page.count, page.page), (3, 2));
    assert_eq!(page.items.len(), 1);

    // Update and verification.
    tx(uow, |repos| {
        Ok(repos.documents().update(
            first.id,
            &DocumentChanges {
                name: Some(DocumentName::parse("Renamed").expect("name")),
                kind: None,
                mission: Some(None),
            },
            at(5),
        )?)
    });
    let outcome = VerificationOutcome::Verified;
    let verification =
        DocumentVerification::of(DocumentStatus::Uploaded, &outcome, at(6)).expect("allowed");
    tx(uow, |repos| {
        Ok(repos
            .documents()
            .set_verification(first.id, &verification, at(6))?)
    });
    let updated = rd(uow, |repos| Ok(repos.documents().find(first.id, None)?)).expect("document");
    assert_eq!(updated.name.as_str(), "Renamed");
    assert_eq!(updated.kind, DocumentType::Invoice);
    assert_eq!(updated.mission, None);
    assert_eq!(updated.status, DocumentStatus::Verified);
    assert_eq!(updated.verified_at, Some(at(6)));
    assert_eq!(updated.updated_at, at(6));
    assert_eq!(
        ids(DocumentQuery {
            verified: Some(true),
            ..DocumentQuery::default()
        }),
        vec![first.id]
    );
    let rejection = VerificationOutcome::Rejected("Checksum mismatch.".into());
    let verification =
        DocumentVerification::of(updated.status, &rejection, at(7)).expect("allowed");
    tx(uow, |repos| {
        Ok(repos
            .documents()
            .set_verification(first.id, &verification, at(7))?)
    });
    let rejected = rd(uow, |repos| Ok(repos.documents().find(first.id, None)?)).expect("document");
    assert_eq!(rejected.status, DocumentStatus::Rejected);
    assert_eq!(rejected.verified_at, None);
    assert_eq!(rejected.verification_error, "Checksum mismatch.");
    assert_eq!(
        ids(DocumentQuery {
            statuses: vec![DocumentStatus::Rejected],
            ..DocumentQuery::default()
        }),
        vec![first.id]
    );

    // Which keys are referenced.
    let keys: Vec<StorageKey> = ["k1", "k2", "gone"]
        .iter()
        .map(|key| StorageKey::parse(key).expect("key"))
        .collect();
    let mut known = rd(uow, |repos| {
        Ok(repos.documents().existing_storage_keys(&keys)?)
    });
    known.sort();
    assert_eq!(known, keys[..2].to_vec());
    assert!(rd(uow, |repos| Ok(repos.documents().any_exist()?)));

    // Delete.
    assert!(tx(uow, |repos| Ok(repos.documents().delete(first.id)?)));
    assert!(!tx(uow, |repos| Ok(repos.documents().delete(first.id)?)));
    assert_eq!(
        rd(uow, |repos| Ok(repos.documents().find(first.id, None)?)),
        None
    );
}

/// The deadlock shape of issue 11: a mission action holds the mission row
/// and then writes its steps (`complete` skips the open ones), while a step
/// write that never asked for the mission's lock (the engine's
/// `start_pending`, a plain `update`) would lock its step and then, through
/// the counting trigger, the mission. The adapter locks the mission before
/// any step write, so the second one waits instead of deadlocking
/// (PostgreSQL would abort one of them with 40P01). On SQLite writers run
/// one at a time and the same body simply passes.
fn step_writes_lock_their_mission_first(uow: &DieselUnitOfWork) {
    let alice = create_user(uow, "alice", "alice@example.com");
    for round in 0..3 {
        let mission = simple_mission(uow, alice.id, &format!("contested {round}"), round);
        let steps: Vec<PlanStep> = (0..3)
            .map(|i| create_step(uow, &new_step(mission.id, None, &format!("s{i}"), i), t0()))
            .collect();
        assert!(transition(uow, mission.id, MissionAction::Start, t0()));
        let t1 = t0() + Duration::hours(1);
        let (action, step_write) = std::thread::scope(|scope| {
            let action = scope.spawn(|| {
                transaction(uow, |repos| -> Result<_, RepoError> {
                    let change = MissionTransition::for_action(
                        MissionAction::Complete,
                        MissionStatus::Completed,
                        t1,
                    );
                    let won = repos.missions().transition(
                        mission.id,
                        MissionAction::Complete.allowed_from(),
                        &change,
                        t1,
                    )?;
                    // Hold the mission row while the step write starts.
                    std::thread::sleep(std::time::Duration::from_millis(400));
                    repos.steps().skip_open(mission.id, t1)?;
                    Ok(won)
                })
                .map_err(|error| format!("{error:?}"))
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            let step_write = scope.spawn(|| {
                let step = steps[round as usize % steps.len()].id;
                transaction(uow, |repos| -> Result<_, RepoError> {
                    let started = repos.steps().start_pending(step, t1)?;
                    let changes = StepChanges {
                        title: Some(Title::parse("renamed").expect("valid title")),
                        ..StepChanges::default()
                    };
                    repos.steps().update(step, &changes, t1)?;
                    Ok(started)
                })
                .map_err(|error| format!("{error:?}"))
            });
            (
                action.join().expect("the action finished"),
                step_write.join().expect("the step write finished"),
            )
        });
        assert_eq!(action, Ok(true), "the action committed");
        // It waited for the mission: the step it found was already skipped.
        assert_eq!(
            step_write,
            Ok(false),
            "the step write committed after the action"
        );
        let after = find_mission(uow, mission.id, None).expect("mission");
        let listed = list_steps(uow, mission.id);
        assert_eq!(after.status, MissionStatus::Completed);
        assert_eq!(after.steps_total, listed.len() as u64);
        assert!(listed.iter().all(|step| step.status == StepStatus::Skipped));
    }
}

/// Migrations give each database its own identity (the media root's
/// marker names it), stable across reads.
fn the_database_has_one_random_identity(uow: &DieselUnitOfWork) {
    let identity = rd(uow, |repos| Ok(repos.instance().database_identity()?))
        .expect("migrations create the identity");
    assert!(identity.as_str().len() >= 32, "{identity}");
    assert_eq!(
        rd(uow, |repos| Ok(repos.instance().database_identity()?)),
        Some(identity)
    );
}
