//! Use-case tests against mockall mocks of the ports.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Services;
use super::activities::CreateActivity;
use super::auth::{RegisterInput, Registration, USERNAME_IS_AN_EMAIL, USERNAME_TAKEN};
use super::missions::{CreateMission, PlannedStep};
use super::steps::{CreateStep, UpdateStep};
use super::testing::{
    MockRepos, MockUow, fixed_now, sample_mission, sample_step, sample_user, services,
};
use super::users::WRONG_OLD_PASSWORD;
use crate::activity::{ActivityDetails, ActivityMessage, CustomActivityType};
use crate::activity_log::{Activity, ActivityQuery, NewActivity};
use crate::error::{Error, RepoError};
use crate::jobs::JobKind;
use crate::mission::{
    InvalidTransition, MissionAction, MissionChanges, MissionQuery, MissionStatus, MissionType,
    Progress, Title,
};
use crate::plan_step::{NewPlanStep, PlanStep, StepAction, StepStatus};
use crate::ports::{
    Credentials, IssuedTokens, MockPasswordHasher, MockTokenService, PasswordCheck, RefreshClaims,
    RefreshTokenRecord,
};
use crate::user::{PersonName, Principal, User, UserChanges, UserId, UserQuery};
use crate::validation::InvalidValue;

use crate::ids::{ActivityId, JobId, MissionId, StepId};

const OWNER: UserId = UserId(7);
const MISSION: MissionId = MissionId(42);
const PASSWORD: &str = "violet-Harbor-1987";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn principal(user_id: UserId) -> Principal {
    Principal {
        user_id,
        is_staff: false,
    }
}

fn uow_with(repos: MockRepos) -> Arc<MockUow> {
    Arc::new(MockUow {
        repos: Mutex::new(repos),
        ..MockUow::default()
    })
}

/// (commits, rollbacks) of the unit of work so far.
fn outcome(uow: &MockUow) -> (u32, u32) {
    (
        *uow.commits.lock().expect("commits"),
        *uow.rollbacks.lock().expect("rollbacks"),
    )
}

/// Services whose hasher and token service expect no call at all.
fn plain_services(uow: &Arc<MockUow>) -> Services {
    services(
        Arc::clone(uow),
        MockPasswordHasher::new(),
        MockTokenService::new(),
    )
}

/// The request-wide refusals of a validation error, as the domain words
/// them; panics on any other error.
fn general_errors(error: &Error) -> Vec<String> {
    match error {
        Error::Validation(errors) => errors.general().iter().map(ToString::to_string).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// The refusals of `field` in a validation error, as the domain words them;
/// panics on any other error.
fn field_errors(error: &Error, field: &str) -> Vec<String> {
    match error {
        Error::Validation(errors) => errors
            .field(field)
            .map(|refusals| refusals.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        other => panic!("expected a validation error on `{field}`, got {other:?}"),
    }
}

fn stored(activity: &NewActivity, now: DateTime<Utc>) -> Activity {
    Activity {
        id: ActivityId(1),
        kind: activity.kind.clone(),
        message: activity.message.clone(),
        details: activity.details.clone(),
        user: activity.user,
        mission: activity.mission,
        document: activity.document,
        timestamp: now,
    }
}

type ActivityLog = Arc<Mutex<Vec<NewActivity>>>;

/// Accepts every activity and keeps a copy for the test to inspect.
fn record_activities(repos: &mut MockRepos) -> ActivityLog {
    let log = ActivityLog::default();
    let sink = Arc::clone(&log);
    repos
        .activities
        .expect_record()
        .withf(|_, now| *now == fixed_now())
        .returning(move |activity, now| {
            sink.lock().expect("log").push(activity.clone());
            Ok(stored(activity, now))
        });
    log
}

fn kinds(log: &ActivityLog) -> Vec<String> {
    log.lock()
        .expect("log")
        .iter()
        .map(|activity| activity.kind.clone())
        .collect()
}

fn recorded(log: &ActivityLog) -> Vec<NewActivity> {
    log.lock().expect("log").clone()
}

fn issued(jti: &str) -> IssuedTokens {
    IssuedTokens {
        access: format!("access-{jti}"),
        refresh: format!("refresh-{jti}"),
        refresh_jti: jti.to_owned(),
        refresh_expires_at: fixed_now() + Duration::days(1),
    }
}

fn registration() -> Registration {
    Registration::parse(&RegisterInput {
        username: "alice".into(),
        email: "alice@example.com".into(),
        password: PASSWORD.into(),
        first_name: "Alice".into(),
        last_name: "Liddell".into(),
    })
    .expect("valid registration")
}

fn credentials(user: User) -> Credentials {
    Credentials {
        user,
        password_hash: "stored-hash".into(),
    }
}

fn transition_error(error: Error) -> InvalidTransition {
    match error {
        Error::InvalidTransition(transition) => transition,
        other => panic!("expected an invalid transition, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

#[test]
fn register_hashes_outside_the_transaction_and_records_one_activity() {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_username_exists()
        .withf(|username| username.as_str() == "alice")
        .times(1)
        .returning(|_| Ok(false));
    repos
        .users
        .expect_email_exists()
        .withf(|email, except| email.as_str() == "alice@example.com" && except.is_none())
        .times(1)
        .returning(|_, _| Ok(false));
    repos
        .users
        .expect_create()
        .withf(|user, now| {
            user.password_hash == "hashed-password"
                && !user.password_hash.contains(PASSWORD)
                && user.username.as_str() == "alice"
                && !user.is_staff
                && !user.is_superuser
                && *now == fixed_now()
        })
        .times(1)
        .returning(|_, _| Ok(sample_user(7)));
    let log = record_activities(&mut repos);
    repos
        .refresh_tokens
        .expect_insert()
        .withf(|user, jti, now, expires| {
            *user == OWNER
                && jti == "jti-1"
                && *now == fixed_now()
                && *expires == issued("jti-1").refresh_expires_at
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let uow = uow_with(repos);

    // While a transaction runs, MockUow holds the repositories' lock.
    let hashed_outside = Arc::new(Mutex::new(Vec::new()));
    let probe = (Arc::clone(&uow), Arc::clone(&hashed_outside));
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .withf(|password| password == PASSWORD)
        .times(1)
        .returning(move |_| {
            let outside = probe.0.repos.try_lock().is_ok();
            probe.1.lock().expect("probe").push(outside);
            "hashed-password".to_owned()
        });
    let mut tokens = MockTokenService::new();
    tokens
        .expect_issue()
        .withf(|user, now| *user == OWNER && *now == fixed_now())
        .times(1)
        .returning(|_, _| issued("jti-1"));

    let session = services(Arc::clone(&uow), hasher, tokens)
        .accounts()
        .register(registration())
        .expect("registered");

    assert_eq!(session.user.id, OWNER);
    assert_eq!(session.tokens, issued("jti-1"));
    assert_eq!(*hashed_outside.lock().expect("probe"), vec![true]);
    let activities = recorded(&log);
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].kind, "user_registered");
    assert_eq!(activities[0].user, Some(OWNER));
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn register_with_a_taken_username_creates_nothing() {
    let mut repos = MockRepos::default();
    repos.users.expect_username_exists().returning(|_| Ok(true));
    repos
        .users
        .expect_email_exists()
        .returning(|_, _| Ok(false));
    repos.users.expect_create().never();
    repos.activities.expect_record().never();
    repos.refresh_tokens.expect_insert().never();
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| "hashed".to_owned());
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();

    let error = services(Arc::clone(&uow), hasher, tokens)
        .accounts()
        .register(registration())
        .expect_err("username taken");

    assert_eq!(field_errors(&error, "username"), vec![USERNAME_TAKEN]);
    assert!(field_errors(&error, "email").is_empty());
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn register_with_a_username_that_is_another_users_email_creates_nothing() {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_username_exists()
        .withf(|username| username.as_str() == "bob@example.com")
        .returning(|_| Ok(false));
    // The username's key is looked up among emails, then the email's.
    repos
        .users
        .expect_email_exists()
        .withf(|email, _| email.as_str() == "bob@example.com")
        .times(1)
        .returning(|_, _| Ok(true));
    repos
        .users
        .expect_email_exists()
        .withf(|email, _| email.as_str() == "mallory@example.com")
        .times(1)
        .returning(|_, _| Ok(false));
    repos.users.expect_create().never();
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| "hashed".to_owned());
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    let registration = Registration::parse(&RegisterInput {
        username: "Bob@Example.com".into(),
        email: "mallory@example.com".into(),
        password: PASSWORD.into(),
        ..RegisterInput::default()
    })
    .expect("valid registration");

    let error = services(Arc::clone(&uow), hasher, tokens)
        .accounts()
        .register(registration)
        .expect_err("username is an email");

    assert_eq!(field_errors(&error, "username"), vec![USERNAME_IS_AN_EMAIL]);
    assert!(field_errors(&error, "email").is_empty());
}

#[test]
fn register_losing_the_username_race_gives_the_same_field_error() {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_username_exists()
        .returning(|_| Ok(false));
    repos
        .users
        .expect_email_exists()
        .returning(|_, _| Ok(false));
    repos.users.expect_create().times(1).returning(|_, _| {
        Err(RepoError::UniqueViolation(
            "auth_user_username_lower_uniq".into(),
        ))
    });
    repos.activities.expect_record().never();
    repos.refresh_tokens.expect_insert().never();
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| "hashed".to_owned());

    let error = services(Arc::clone(&uow), hasher, MockTokenService::new())
        .accounts()
        .register(registration())
        .expect_err("username raced");

    assert_eq!(field_errors(&error, "username"), vec![USERNAME_TAKEN]);
    assert_eq!(outcome(&uow), (0, 1));
}

// ---------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------

#[test]
fn login_of_an_unknown_user_burns_a_hash() {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_find_credentials()
        .withf(|login| login.as_str() == "ghost")
        .times(1)
        .returning(|_| Ok(None));
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_burn()
        .withf(|password| password == PASSWORD)
        .times(1)
        .return_const(());
    hasher.expect_verify().never();

    let error = services(Arc::clone(&uow), hasher, MockTokenService::new())
        .accounts()
        .login("  ghost ", PASSWORD)
        .expect_err("unknown user");

    assert!(matches!(error, Error::AuthenticationFailed), "{error:?}");
    assert_eq!(outcome(&uow), (0, 0));
}

#[test]
fn login_looks_the_account_up_by_its_normalised_key() {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_find_credentials()
        .withf(|login| login.as_str() == "ärger")
        .times(1)
        .returning(|_| Ok(None));
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_burn().times(1).return_const(());

    let error = services(Arc::clone(&uow), hasher, MockTokenService::new())
        .accounts()
        .login(" ÄRGER ", PASSWORD)
        .expect_err("unknown user");

    assert!(matches!(error, Error::AuthenticationFailed), "{error:?}");
}

/// Login mocks for a known user whose password checks as `check`; nothing may be written.
fn refused_login(user: User, check: PasswordCheck) -> (Arc<MockUow>, MockPasswordHasher) {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_find_credentials()
        .times(1)
        .return_once(move |_| Ok(Some(credentials(user))));
    repos.users.expect_touch_last_login().never();
    repos.users.expect_set_password_hash().never();
    repos.users.expect_replace_password_hash().never();
    repos.activities.expect_record().never();
    repos.refresh_tokens.expect_insert().never();
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|password, encoded| password == PASSWORD && encoded == "stored-hash")
        .times(1)
        .return_const(check);
    hasher.expect_burn().never();
    hasher.expect_hash().never();
    (uow_with(repos), hasher)
}

#[test]
fn login_with_a_wrong_password_fails_and_records_nothing() {
    let (uow, hasher) = refused_login(sample_user(7), PasswordCheck::Mismatch);
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();

    let error = services(Arc::clone(&uow), hasher, tokens)
        .accounts()
        .login("user7", PASSWORD)
        .expect_err("wrong password");

    assert!(matches!(error, Error::AuthenticationFailed), "{error:?}");
    assert_eq!(outcome(&uow), (0, 0));
}

#[test]
fn login_of_an_inactive_user_fails_even_with_the_right_password() {
    let inactive = User {
        is_active: false,
        ..sample_user(7)
    };
    let (uow, hasher) = refused_login(inactive, PasswordCheck::Match);
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();

    let error = services(Arc::clone(&uow), hasher, tokens)
        .accounts()
        .login("user7", PASSWORD)
        .expect_err("inactive");

    assert!(matches!(error, Error::AuthenticationFailed), "{error:?}");
    assert_eq!(outcome(&uow), (0, 0));
}

/// Login mocks for a successful login of user 7.
fn accepted_login(repos: &mut MockRepos) -> ActivityLog {
    repos
        .users
        .expect_find_credentials()
        .withf(|login| login.as_str() == "user7")
        .times(1)
        .returning(|_| Ok(Some(credentials(sample_user(7)))));
    repos
        .users
        .expect_touch_last_login()
        .withf(|id, now| *id == OWNER && *now == fixed_now())
        .times(1)
        .returning(|_, _| Ok(()));
    repos
        .refresh_tokens
        .expect_insert()
        .withf(|user, jti, _, _| *user == OWNER && jti == "jti-login")
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    repos
        .users
        .expect_find()
        .withf(|id| *id == OWNER)
        .returning(|_| {
            Ok(Some(User {
                last_login: Some(fixed_now()),
                ..sample_user(7)
            }))
        });
    record_activities(repos)
}

fn login_tokens() -> MockTokenService {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_issue()
        .withf(|user, _| *user == OWNER)
        .times(1)
        .returning(|_, _| issued("jti-login"));
    tokens
}

#[test]
fn login_replaces_an_outdated_hash() {
    let mut repos = MockRepos::default();
    let log = accepted_login(&mut repos);
    repos
        .users
        .expect_replace_password_hash()
        .withf(|id, _, hash| *id == OWNER && hash == "upgraded-hash")
        .times(1)
        .returning(|_, _, _| Ok(true));
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .times(1)
        .return_const(PasswordCheck::MatchNeedsRehash);
    hasher
        .expect_hash()
        .withf(|password| password == PASSWORD)
        .times(1)
        .returning(|_| "upgraded-hash".to_owned());

    let session = services(Arc::clone(&uow), hasher, login_tokens())
        .accounts()
        .login("user7", PASSWORD)
        .expect("logged in");

    assert_eq!(session.tokens, issued("jti-login"));
    assert_eq!(kinds(&log), vec!["user_logged_in"]);
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn login_records_the_login_and_touches_last_login() {
    let mut repos = MockRepos::default();
    let log = accepted_login(&mut repos);
    repos.users.expect_set_password_hash().never();
    repos.users.expect_replace_password_hash().never();
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .times(1)
        .return_const(PasswordCheck::Match);
    hasher.expect_hash().never();

    let session = services(Arc::clone(&uow), hasher, login_tokens())
        .accounts()
        .login("user7", PASSWORD)
        .expect("logged in");

    assert_eq!(session.user.id, OWNER);
    assert_eq!(session.user.last_login, Some(fixed_now()));
    let activities = recorded(&log);
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].kind, "user_logged_in");
    assert_eq!(activities[0].user, Some(OWNER));
    assert_eq!(outcome(&uow), (1, 0));
}

// ---------------------------------------------------------------------------
// Refresh
// ---------------------------------------------------------------------------

fn token_record(revoked: bool) -> RefreshTokenRecord {
    RefreshTokenRecord {
        user: OWNER,
        jti: "old-jti".into(),
        expires_at: fixed_now() + Duration::days(1),
        revoked_at: revoked.then(|| fixed_now() - Duration::hours(1)),
        replaced_by: revoked.then(|| "newer-jti".to_owned()),
    }
}

fn refresh_tokens_service() -> MockTokenService {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_decode_refresh()
        .withf(|token| token == "presented")
        .returning(|_| {
            Ok(RefreshClaims {
                user: OWNER,
                jti: "old-jti".into(),
            })
        });
    tokens
        .expect_issue()
        .withf(|user, now| *user == OWNER && *now == fixed_now())
        .returning(|_, _| issued("new-jti"));
    tokens
}

/// Refresh mocks: the presented token's row and an active owner.
fn refresh_repos(revoked: bool) -> MockRepos {
    let mut repos = MockRepos::default();
    repos
        .refresh_tokens
        .expect_find()
        .withf(|jti| jti == "old-jti")
        .returning(move |_| Ok(Some(token_record(revoked))));
    repos
        .users
        .expect_find()
        .withf(|id| *id == OWNER)
        .returning(|_| Ok(Some(sample_user(7))));
    repos
}

#[test]
fn refresh_with_a_revoked_token_revokes_every_token_and_commits() {
    let mut repos = refresh_repos(true);
    repos
        .refresh_tokens
        .expect_revoke()
        .returning(|_, _, _| Ok(false));
    repos
        .refresh_tokens
        .expect_revoke_all()
        .withf(|user, now| *user == OWNER && *now == fixed_now())
        .times(1)
        .returning(|_, _| Ok(3));
    repos.refresh_tokens.expect_insert().never();
    let uow = uow_with(repos);

    let error = services(
        Arc::clone(&uow),
        MockPasswordHasher::new(),
        refresh_tokens_service(),
    )
    .accounts()
    .refresh("presented")
    .expect_err("reused token");

    assert!(matches!(error, Error::TokenInvalid(_)), "{error:?}");
    // The revocation must persist: the transaction commits although the call fails.
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn refresh_losing_the_rotation_race_is_treated_as_reuse() {
    let mut repos = refresh_repos(false);
    repos
        .refresh_tokens
        .expect_revoke()
        .withf(|jti, _, _| jti == "old-jti")
        .times(1)
        .returning(|_, _, _| Ok(false));
    repos
        .refresh_tokens
        .expect_revoke_all()
        .withf(|user, _| *user == OWNER)
        .times(1)
        .returning(|_, _| Ok(1));
    repos.refresh_tokens.expect_insert().never();
    let uow = uow_with(repos);

    let error = services(
        Arc::clone(&uow),
        MockPasswordHasher::new(),
        refresh_tokens_service(),
    )
    .accounts()
    .refresh("presented")
    .expect_err("lost race");

    assert!(matches!(error, Error::TokenInvalid(_)), "{error:?}");
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn refresh_rotates_the_token() {
    let mut repos = refresh_repos(false);
    repos
        .refresh_tokens
        .expect_revoke()
        .withf(|jti, replaced_by, now| {
            jti == "old-jti" && *replaced_by == Some("new-jti") && *now == fixed_now()
        })
        .times(1)
        .returning(|_, _, _| Ok(true));
    repos
        .refresh_tokens
        .expect_insert()
        .withf(|user, jti, now, expires| {
            *user == OWNER
                && jti == "new-jti"
                && *now == fixed_now()
                && *expires == issued("new-jti").refresh_expires_at
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    repos.refresh_tokens.expect_revoke_all().never();
    let uow = uow_with(repos);

    let tokens = services(
        Arc::clone(&uow),
        MockPasswordHasher::new(),
        refresh_tokens_service(),
    )
    .accounts()
    .refresh("presented")
    .expect("rotated");

    assert_eq!(tokens, issued("new-jti"));
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn refresh_for_an_inactive_user_is_refused_without_revoking() {
    let mut repos = MockRepos::default();
    repos
        .refresh_tokens
        .expect_find()
        .returning(|_| Ok(Some(token_record(false))));
    repos.users.expect_find().returning(|_| {
        Ok(Some(User {
            is_active: false,
            ..sample_user(7)
        }))
    });
    repos.refresh_tokens.expect_revoke().never();
    repos.refresh_tokens.expect_revoke_all().never();
    repos.refresh_tokens.expect_insert().never();
    let uow = uow_with(repos);

    let error = services(
        Arc::clone(&uow),
        MockPasswordHasher::new(),
        refresh_tokens_service(),
    )
    .accounts()
    .refresh("presented")
    .expect_err("inactive");

    assert!(matches!(error, Error::TokenInvalid(_)), "{error:?}");
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// Mocks for the reads `change_password` starts with.
fn password_repos() -> MockRepos {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_find()
        .withf(|id| *id == OWNER)
        .returning(|_| Ok(Some(sample_user(7))));
    repos
        .users
        .expect_password_hash()
        .withf(|id| *id == OWNER)
        .returning(|_| Ok(Some("stored-hash".into())));
    repos
}

#[test]
fn change_password_with_a_wrong_old_password_writes_nothing() {
    let mut repos = password_repos();
    repos.users.expect_set_password_hash().never();
    repos.users.expect_replace_password_hash().never();
    repos.refresh_tokens.expect_revoke_all().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|password, encoded| password == "not-my-password" && encoded == "stored-hash")
        .times(1)
        .return_const(PasswordCheck::Mismatch);
    hasher.expect_hash().never();

    let error = services(Arc::clone(&uow), hasher, MockTokenService::new())
        .accounts()
        .change_password(principal(OWNER), "not-my-password", PASSWORD)
        .expect_err("wrong old password");

    assert_eq!(
        field_errors(&error, "old_password"),
        vec![WRONG_OLD_PASSWORD]
    );
    assert!(field_errors(&error, "new_password").is_empty());
    assert_eq!(outcome(&uow), (0, 0));
}

#[test]
fn change_password_sets_the_hash_revokes_tokens_and_records_it_in_one_commit() {
    let mut repos = password_repos();
    repos
        .users
        .expect_replace_password_hash()
        .withf(|id, expected, hash| *id == OWNER && expected == "stored-hash" && hash == "new-hash")
        .times(1)
        .returning(|_, _, _| Ok(true));
    repos
        .refresh_tokens
        .expect_revoke_all()
        .withf(|user, now| *user == OWNER && *now == fixed_now())
        .times(1)
        .returning(|_, _| Ok(2));
    let log = record_activities(&mut repos);
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .times(1)
        .return_const(PasswordCheck::Match);
    hasher
        .expect_hash()
        .withf(|password| password == PASSWORD)
        .times(1)
        .returning(|_| "new-hash".to_owned());

    services(Arc::clone(&uow), hasher, MockTokenService::new())
        .accounts()
        .change_password(principal(OWNER), "old-password", PASSWORD)
        .expect("changed");

    let activities = recorded(&log);
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].kind, "password_changed");
    assert_eq!(activities[0].user, Some(OWNER));
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn staff_only_use_cases_refuse_other_users_before_any_repository_call() {
    let mut repos = MockRepos::default();
    repos.users.expect_list().never();
    repos.users.expect_find().never();
    repos.users.expect_delete().never();
    repos.users.expect_update_account().never();
    repos.users.expect_save_profile().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let services = plain_services(&uow);
    let user = principal(OWNER);
    let promote = UserChanges {
        is_staff: Some(true),
        ..UserChanges::default()
    };

    let results = [
        (
            "list_users",
            services
                .accounts()
                .list_users(user, &UserQuery::default())
                .map(drop),
        ),
        (
            "get_user",
            services.accounts().get_user(user, UserId(8)).map(drop),
        ),
        (
            "update_user",
            services
                .accounts()
                .update_user(user, UserId(8), promote.clone())
                .map(drop),
        ),
        (
            "delete_user",
            services.accounts().delete_user(user, UserId(8)),
        ),
    ];

    for (name, result) in results {
        assert!(
            matches!(result, Err(Error::PermissionDenied)),
            "{name}: {result:?}"
        );
    }
    assert_eq!(outcome(&uow), (0, 0));
}

// ---------------------------------------------------------------------------
// Missions
// ---------------------------------------------------------------------------

/// `find` with the owner filter of a non-staff `owner` returns `mission` once.
fn expect_visible(repos: &mut MockRepos, owner: UserId, status: MissionStatus) {
    repos
        .missions
        .expect_lock()
        .withf(move |id, filter| *id == MISSION && *filter == Some(owner))
        .times(1)
        .returning(move |_, _| Ok(Some(sample_mission(MISSION, OWNER, status))));
}

/// `load_detail` after a change: the mission in `status` and no steps.
fn expect_reload(repos: &mut MockRepos, status: MissionStatus) {
    repos
        .missions
        .expect_find()
        .withf(|id, filter| *id == MISSION && filter.is_none())
        .returning(move |_, _| Ok(Some(sample_mission(MISSION, OWNER, status))));
    repos
        .steps
        .expect_list()
        .withf(|mission| *mission == MISSION)
        .returning(|_| Ok(Vec::new()));
    expect_no_documents(repos);
}

/// The mission's documents, read by `load_detail`: none.
fn expect_no_documents(repos: &mut MockRepos) {
    repos
        .documents
        .expect_list_for_mission()
        .withf(|mission| *mission == MISSION)
        .returning(|_| Ok(Vec::new()));
}

/// The engine is asked `times` times to advance the mission, now.
fn expect_advance(repos: &mut MockRepos, times: usize) {
    repos
        .jobs
        .expect_enqueue()
        .withf(|job, now| {
            job.kind == JobKind::AdvanceMission { mission: MISSION }
                && job.run_at == fixed_now()
                && *now == fixed_now()
        })
        .times(times)
        .returning(|_, _| Ok(Some(JobId(1))));
}

#[test]
fn create_mission_records_it_and_creates_the_plan_depth_first() {
    let draft = CreateMission::new(
        title("Retrieve Tax Documents"),
        MissionType::DocumentRetrieval,
    )
    .with_plan(vec![
        PlannedStep::new(title("A")).with_children(vec![
            PlannedStep::new(title("A1")),
            PlannedStep::new(title("A2")).with_children(vec![PlannedStep::new(title("A2a"))]),
        ]),
        PlannedStep::new(title("B")).with_action(
            StepAction::parse(&json!({"kind": "wait", "seconds": 30})).expect("an action"),
        ),
    ]);

    let mut repos = MockRepos::default();
    repos
        .missions
        .expect_create()
        .withf(|owner, mission, now| {
            *owner == OWNER
                && mission.title.as_str() == "Retrieve Tax Documents"
                && *now == fixed_now()
        })
        .times(1)
        .returning(|owner, _, _| Ok(sample_mission(MISSION, owner, MissionStatus::Pending)));
    let created: Arc<Mutex<Vec<PlanStep>>> = Arc::default();
    let requests: Arc<Mutex<Vec<NewPlanStep>>> = Arc::default();
    let next_id = AtomicI64::new(100);
    let (sink, request_sink) = (Arc::clone(&created), Arc::clone(&requests));
    repos
        .steps
        .expect_create()
        .times(5)
        .returning(move |step, _| {
            request_sink.lock().expect("requests").push(step.clone());
            let id = next_id.fetch_add(1, Ordering::SeqCst);
            let row = PlanStep {
                title: step.title.clone(),
                depth: step.depth,
                action: step.action.clone(),
                ..sample_step(
                    id,
                    step.mission,
                    step.parent.map(|parent| parent.0),
                    step.order,
                    StepStatus::Pending,
                )
            };
            sink.lock().expect("created").push(row.clone());
            Ok(row)
        });
    let log = record_activities(&mut repos);
    repos
        .missions
        .expect_find()
        .withf(|id, _| *id == MISSION)
        .returning(|_, _| Ok(Some(sample_mission(MISSION, OWNER, MissionStatus::Pending))));
    let listed = Arc::clone(&created);
    repos
        .steps
        .expect_list()
        .withf(|mission| *mission == MISSION)
        .returning(move |_| Ok(listed.lock().expect("created").clone()));
    expect_no_documents(&mut repos);
    let uow = uow_with(repos);

    let detail = plain_services(&uow)
        .missions()
        .create(principal(OWNER), draft)
        .expect("created");

    let shape: Vec<(String, Option<i64>, i32, u8)> = requests
        .lock()
        .expect("requests")
        .iter()
        .map(|step| {
            assert_eq!(step.mission, MISSION);
            (
                step.title.as_str().to_owned(),
                step.parent.map(|parent| parent.0),
                step.order,
                step.depth,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("A".to_owned(), None, 0, 1),
            ("A1".to_owned(), Some(100), 0, 2),
            ("A2".to_owned(), Some(100), 1, 2),
            ("A2a".to_owned(), Some(102), 0, 3),
            ("B".to_owned(), None, 1, 1),
        ]
    );
    assert_eq!(
        requests.lock().expect("requests")[4].action,
        StepAction::Wait { seconds: 30 }
    );
    let activities = recorded(&log);
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].kind, "mission_created");
    assert_eq!(activities[0].mission, Some(MISSION));
    assert_eq!(activities[0].user, Some(OWNER));
    assert_eq!(detail.mission.id, MISSION);
    let roots: Vec<i64> = detail.plan.roots().iter().map(|node| node.id.0).collect();
    assert_eq!(roots, vec![100, 104]);
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn mission_action_losing_the_race_reports_the_current_status_and_rolls_back() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::Pending);
    repos
        .missions
        .expect_transition()
        .withf(|id, from, change, now| {
            *id == MISSION
                && from == MissionAction::Start.allowed_from()
                && change.to == MissionStatus::InProgress
                && change.started_at == Some(fixed_now())
                && *now == fixed_now()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(false));
    // Another request cancelled it meanwhile.
    repos
        .missions
        .expect_find()
        .withf(|id, filter| *id == MISSION && filter.is_none())
        .times(1)
        .returning(|_, _| {
            Ok(Some(sample_mission(
                MISSION,
                OWNER,
                MissionStatus::Cancelled,
            )))
        });
    repos.activities.expect_record().never();
    repos.steps.expect_skip_open().never();
    let uow = uow_with(repos);

    let error = plain_services(&uow)
        .missions()
        .act(principal(OWNER), MISSION, MissionAction::Start)
        .expect_err("lost race");

    assert_eq!(
        transition_error(error),
        InvalidTransition::new("mission", "start", "cancelled")
    );
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn completing_a_mission_skips_open_steps_and_records_it() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::InProgress);
    repos
        .missions
        .expect_transition()
        .withf(|id, from, change, _| {
            *id == MISSION
                && from == MissionAction::Complete.allowed_from()
                && change.to == MissionStatus::Completed
                && change.completed_at == Some(fixed_now())
                && change.progress == Some(Progress::COMPLETE)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    repos
        .steps
        .expect_skip_open()
        .withf(|mission, now| *mission == MISSION && *now == fixed_now())
        .times(1)
        .returning(|_, _| Ok(2));
    let log = record_activities(&mut repos);
    expect_reload(&mut repos, MissionStatus::Completed);
    let uow = uow_with(repos);

    let detail = plain_services(&uow)
        .missions()
        .act(principal(OWNER), MISSION, MissionAction::Complete)
        .expect("completed");

    assert_eq!(detail.mission.status, MissionStatus::Completed);
    let activities = recorded(&log);
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].kind, "mission_completed");
    assert_eq!(activities[0].mission, Some(MISSION));
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn restarting_a_failed_mission_resets_failed_steps_and_enqueues_its_run() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::Failed);
    repos
        .missions
        .expect_transition()
        .withf(|id, from, change, _| {
            *id == MISSION
                && from == MissionAction::Start.allowed_from()
                && change.to == MissionStatus::InProgress
        })
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    // The failed automated step, then (after its reset) pending again: the
    // run is queued because there is automated work.
    let lists = AtomicUsize::new(0);
    repos.steps.expect_list().returning(move |_| {
        let reset = lists.fetch_add(1, Ordering::SeqCst) > 0;
        Ok(vec![
            sample_step(1, MISSION, None, 0, StepStatus::Completed),
            PlanStep {
                last_error: (!reset).then(|| "HTTP 503".into()),
                action: StepAction::Wait { seconds: 5 },
                ..sample_step(
                    2,
                    MISSION,
                    None,
                    1,
                    if reset {
                        StepStatus::Pending
                    } else {
                        StepStatus::Failed
                    },
                )
            },
        ])
    });
    repos
        .steps
        .expect_update()
        .withf(|id, changes, _| {
            *id == StepId(2)
                && changes.status == Some(StepStatus::Pending)
                && changes.last_error == Some(None)
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    expect_advance(&mut repos, 1);
    let log = record_activities(&mut repos);
    repos
        .missions
        .expect_find()
        .withf(|id, filter| *id == MISSION && filter.is_none())
        .returning(|_, _| {
            Ok(Some(sample_mission(
                MISSION,
                OWNER,
                MissionStatus::InProgress,
            )))
        });
    expect_no_documents(&mut repos);
    let uow = uow_with(repos);

    plain_services(&uow)
        .missions()
        .act(principal(OWNER), MISSION, MissionAction::Start)
        .expect("started");

    assert_eq!(kinds(&log), vec!["mission_started"]);
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn deleting_an_in_progress_mission_is_refused() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::InProgress);
    repos.missions.expect_delete().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);

    let error = plain_services(&uow)
        .missions()
        .delete(principal(OWNER), MISSION)
        .expect_err("in progress");

    assert_eq!(
        transition_error(error),
        InvalidTransition::new("mission", "delete", "in_progress")
    );
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn deleting_a_mission_keeps_its_id_and_title_in_the_activity() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::Paused);
    repos
        .missions
        .expect_delete()
        .withf(|id, protected| *id == MISSION && *protected == MissionStatus::InProgress)
        .times(1)
        .returning(|_, _| Ok(true));
    let log = record_activities(&mut repos);
    let uow = uow_with(repos);

    plain_services(&uow)
        .missions()
        .delete(principal(OWNER), MISSION)
        .expect("deleted");

    let activities = recorded(&log);
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].kind, "mission_deleted");
    assert_eq!(
        activities[0].details.get("mission_id"),
        Some(&json!(MISSION))
    );
    assert_eq!(
        activities[0].details.get("title"),
        Some(&json!("Retrieve Tax Documents"))
    );
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn another_owners_mission_is_not_found() {
    let stranger = UserId(8);
    let mut repos = MockRepos::default();
    // The read looks, the three writes lock first: none sees it.
    repos
        .missions
        .expect_find()
        .withf(move |id, filter| *id == MISSION && *filter == Some(stranger))
        .times(1)
        .returning(|_, _| Ok(None));
    repos
        .missions
        .expect_lock()
        .withf(move |id, filter| *id == MISSION && *filter == Some(stranger))
        .times(3)
        .returning(|_, _| Ok(None));
    repos.missions.expect_transition().never();
    repos.missions.expect_update().never();
    repos.missions.expect_delete().never();
    repos.steps.expect_list().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let services = plain_services(&uow);
    let changes = MissionChanges {
        title: Some(title("Mine now")),
        ..MissionChanges::default()
    };

    let results = [
        (
            "get",
            services
                .missions()
                .get(principal(stranger), MISSION)
                .map(drop),
        ),
        (
            "update",
            services
                .missions()
                .update(principal(stranger), MISSION, changes)
                .map(drop),
        ),
        (
            "act",
            services
                .missions()
                .act(principal(stranger), MISSION, MissionAction::Start)
                .map(drop),
        ),
        (
            "delete",
            services.missions().delete(principal(stranger), MISSION),
        ),
    ];

    for (name, result) in results {
        assert!(matches!(result, Err(Error::NotFound)), "{name}: {result:?}");
    }
    assert_eq!(outcome(&uow), (0, 3));
}

#[test]
fn a_failing_activity_insert_fails_the_use_case_and_rolls_back() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::Pending);
    repos
        .missions
        .expect_transition()
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    repos
        .missions
        .expect_find()
        .withf(|id, filter| *id == MISSION && filter.is_none())
        .returning(|_, _| {
            Ok(Some(sample_mission(
                MISSION,
                OWNER,
                MissionStatus::InProgress,
            )))
        });
    repos.steps.expect_list().returning(|_| {
        Ok(vec![PlanStep {
            action: StepAction::Wait { seconds: 5 },
            ..sample_step(1, MISSION, None, 0, StepStatus::Pending)
        }])
    });
    expect_advance(&mut repos, 1);
    repos
        .activities
        .expect_record()
        .times(1)
        .returning(|_, _| Err(RepoError::Other("disk full".into())));
    let uow = uow_with(repos);

    let error = plain_services(&uow)
        .missions()
        .act(principal(OWNER), MISSION, MissionAction::Start)
        .expect_err("activity failed");

    assert!(
        matches!(&error, Error::Repository(RepoError::Other(message)) if message == "disk full"),
        "{error:?}"
    );
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn mission_lists_are_restricted_to_the_owner_unless_staff() {
    let mut repos = MockRepos::default();
    repos
        .missions
        .expect_list()
        .withf(|query| query.owner == Some(OWNER))
        .times(1)
        .returning(|_| Err(RepoError::Other("own list".into())));
    repos
        .missions
        .expect_list()
        .withf(|query| query.owner.is_none())
        .times(1)
        .returning(|_| Err(RepoError::Other("everyone's list".into())));
    repos
        .activities
        .expect_list()
        .withf(|query| query.user == Some(OWNER))
        .times(1)
        .returning(|_| Err(RepoError::Other("own activities".into())));
    let uow = uow_with(repos);
    let services = plain_services(&uow);
    let staff = Principal {
        user_id: UserId(1),
        is_staff: true,
    };
    let message = |result: Result<(), Error>| match result {
        Err(Error::Repository(RepoError::Other(message))) => message,
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("the mocks only fail"),
    };

    // A client cannot widen its list by asking for everyone's.
    let everyone = MissionQuery::default();
    assert_eq!(
        message(
            services
                .missions()
                .list(principal(OWNER), everyone.clone())
                .map(drop)
        ),
        "own list"
    );
    assert_eq!(
        message(services.missions().list(staff, everyone).map(drop)),
        "everyone's list"
    );
    let others = ActivityQuery {
        user: Some(UserId(8)),
        ..ActivityQuery::default()
    };
    assert_eq!(
        message(
            services
                .activities()
                .list(principal(OWNER), others)
                .map(drop)
        ),
        "own activities"
    );
}

// ---------------------------------------------------------------------------
// Plan steps
// ---------------------------------------------------------------------------

/// `steps.list` returns `before` on the first call and `after` on the next ones.
fn expect_steps_before_after(repos: &mut MockRepos, before: Vec<PlanStep>, after: Vec<PlanStep>) {
    let calls = AtomicUsize::new(0);
    repos
        .steps
        .expect_list()
        .withf(|mission| *mission == MISSION)
        .returning(move |_| {
            Ok(if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                before.clone()
            } else {
                after.clone()
            })
        });
}

fn complete_status() -> UpdateStep {
    UpdateStep::status(StepStatus::Completed)
}

fn title(text: &str) -> Title {
    Title::parse(text).expect("a valid title")
}

#[test]
fn completing_the_last_open_leaf_completes_the_mission_in_the_same_transaction() {
    let mut repos = MockRepos::default();
    repos
        .missions
        .expect_find()
        .withf(|id, _| *id == MISSION)
        .returning(|_, _| {
            Ok(Some(sample_mission(
                MISSION,
                OWNER,
                MissionStatus::InProgress,
            )))
        });
    repos
        .missions
        .expect_lock()
        .withf(|id, _| *id == MISSION)
        .times(1)
        .returning(|_, _| {
            Ok(Some(sample_mission(
                MISSION,
                OWNER,
                MissionStatus::InProgress,
            )))
        });
    let step = |id, order, status| sample_step(id, MISSION, None, order, status);
    expect_steps_before_after(
        &mut repos,
        vec![
            step(1, 0, StepStatus::Completed),
            step(2, 1, StepStatus::InProgress),
        ],
        vec![
            step(1, 0, StepStatus::Completed),
            step(2, 1, StepStatus::Completed),
        ],
    );
    repos
        .steps
        .expect_update()
        .withf(|id, changes, _| {
            *id == StepId(2)
                && changes.status == Some(StepStatus::Completed)
                && changes.completed_at == Some(Some(fixed_now()))
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    repos
        .missions
        .expect_transition()
        .withf(|id, from, change, _| {
            *id == MISSION
                && from == MissionAction::Complete.allowed_from()
                && change.to == MissionStatus::Completed
        })
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    repos
        .steps
        .expect_skip_open()
        .withf(|mission, _| *mission == MISSION)
        .times(1)
        .returning(|_, _| Ok(0));
    repos.missions.expect_set_progress().never();
    expect_advance(&mut repos, 0);
    let log = record_activities(&mut repos);
    let uow = uow_with(repos);

    let node = plain_services(&uow)
        .steps()
        .update(principal(OWNER), MISSION, StepId(2), complete_status())
        .expect("completed");

    assert_eq!(node.id, StepId(2));
    assert_eq!(node.item.status, StepStatus::Completed);
    assert_eq!(kinds(&log), vec!["step_updated", "mission_completed"]);
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn completing_one_of_three_leaves_sets_progress_to_33() {
    let mut repos = MockRepos::default();
    repos
        .missions
        .expect_find()
        .withf(|id, _| *id == MISSION)
        .returning(|_, _| {
            Ok(Some(sample_mission(
                MISSION,
                OWNER,
                MissionStatus::InProgress,
            )))
        });
    repos
        .missions
        .expect_lock()
        .withf(|id, _| *id == MISSION)
        .times(1)
        .returning(|_, _| {
            Ok(Some(sample_mission(
                MISSION,
                OWNER,
                MissionStatus::InProgress,
            )))
        });
    // A parent with three leaves: the parent itself does not count.
    let tree = |first: StepStatus| {
        vec![
            sample_step(10, MISSION, None, 0, StepStatus::InProgress),
            sample_step(1, MISSION, Some(10), 0, first),
            sample_step(2, MISSION, Some(10), 1, StepStatus::Pending),
            sample_step(3, MISSION, Some(10), 2, StepStatus::Pending),
        ]
    };
    expect_steps_before_after(
        &mut repos,
        tree(StepStatus::Pending),
        tree(StepStatus::Completed),
    );
    repos
        .steps
        .expect_update()
        .withf(|id, changes, _| *id == StepId(1) && changes.status == Some(StepStatus::Completed))
        .times(1)
        .returning(|_, _, _| Ok(()));
    repos
        .missions
        .expect_set_progress()
        .withf(|id, progress, now| {
            *id == MISSION && Ok(*progress) == Progress::parse(33) && *now == fixed_now()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    repos.missions.expect_transition().never();
    repos.steps.expect_skip_open().never();
    // Only manual steps are left: the engine would find nothing to do, so
    // nothing is queued (a queued run would find nothing, again and again).
    expect_advance(&mut repos, 0);
    let log = record_activities(&mut repos);
    let uow = uow_with(repos);

    plain_services(&uow)
        .steps()
        .update(principal(OWNER), MISSION, StepId(1), complete_status())
        .expect("completed");

    assert_eq!(kinds(&log), vec!["step_updated"]);
    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn a_parent_from_another_mission_is_refused() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::Pending);
    repos
        .steps
        .expect_list()
        .withf(|mission| *mission == MISSION)
        .returning(|_| Ok(vec![sample_step(1, MISSION, None, 0, StepStatus::Pending)]));
    repos.steps.expect_next_order().never();
    repos.steps.expect_create().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let input = CreateStep::new(title("Borrowed parent")).under(StepId(999));

    let error = plain_services(&uow)
        .steps()
        .create(principal(OWNER), MISSION, input)
        .expect_err("foreign parent");

    assert_eq!(
        field_errors(&error, "parent"),
        vec!["Parent step must belong to the same mission."]
    );
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn moving_a_step_under_its_own_child_is_refused() {
    let mut repos = MockRepos::default();
    expect_visible(&mut repos, OWNER, MissionStatus::Pending);
    repos.steps.expect_list().returning(|_| {
        Ok(vec![
            sample_step(1, MISSION, None, 0, StepStatus::Pending),
            sample_step(2, MISSION, Some(1), 0, StepStatus::Pending),
        ])
    });
    repos.steps.expect_update().never();
    repos.steps.expect_set_depth().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let input = UpdateStep {
        parent: Some(Some(StepId(2))),
        ..UpdateStep::default()
    };

    let error = plain_services(&uow)
        .steps()
        .update(principal(OWNER), MISSION, StepId(1), input)
        .expect_err("cycle");

    assert_eq!(
        field_errors(&error, "parent"),
        vec!["A step cannot be its own ancestor."]
    );
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn moving_a_subtree_shifts_the_depth_of_its_descendants() {
    let mut repos = MockRepos::default();
    repos
        .missions
        .expect_find()
        .withf(|id, _| *id == MISSION)
        .returning(|_, _| Ok(Some(sample_mission(MISSION, OWNER, MissionStatus::Pending))));
    repos
        .missions
        .expect_lock()
        .withf(|id, _| *id == MISSION)
        .times(1)
        .returning(|_, _| Ok(Some(sample_mission(MISSION, OWNER, MissionStatus::Pending))));
    // 1 (root) and 3 (root) → 4 (child of 3) → 5 (depth 3); move 3 under 1.
    repos.steps.expect_list().returning(|_| {
        Ok(vec![
            sample_step(1, MISSION, None, 0, StepStatus::Pending),
            sample_step(3, MISSION, None, 1, StepStatus::Pending),
            sample_step(4, MISSION, Some(3), 0, StepStatus::Pending),
            PlanStep {
                depth: 3,
                ..sample_step(5, MISSION, Some(4), 0, StepStatus::Pending)
            },
        ])
    });
    repos
        .steps
        .expect_update()
        .withf(|id, changes, _| *id == StepId(3) && changes.parent == Some((Some(StepId(1)), 2)))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let depths: Arc<Mutex<Vec<(i64, u8)>>> = Arc::default();
    let sink = Arc::clone(&depths);
    repos
        .steps
        .expect_set_depth()
        .times(2)
        .returning(move |id, depth| {
            sink.lock().expect("depths").push((id.0, depth));
            Ok(())
        });
    let _log = record_activities(&mut repos);
    repos
        .missions
        .expect_set_progress()
        .returning(|_, _, _| Ok(()));
    let uow = uow_with(repos);
    let input = UpdateStep {
        parent: Some(Some(StepId(1))),
        ..UpdateStep::default()
    };

    plain_services(&uow)
        .steps()
        .update(principal(OWNER), MISSION, StepId(3), input)
        .expect("moved");

    assert_eq!(*depths.lock().expect("depths"), vec![(4, 3), (5, 4)]);
    assert_eq!(outcome(&uow), (1, 0));
}

// ---------------------------------------------------------------------------
// Activities
// ---------------------------------------------------------------------------

fn note() -> CreateActivity {
    CreateActivity::new(
        CustomActivityType::parse("note_added").expect("a custom type"),
        ActivityMessage::parse("Called the bank").expect("a message"),
    )
}

#[test]
fn an_activity_on_a_mission_not_owned_is_refused() {
    let mut repos = MockRepos::default();
    repos
        .missions
        .expect_find()
        .withf(|id, owner| *id == MISSION && *owner == Some(OWNER))
        .times(1)
        .returning(|_, _| Ok(None));
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let input = note().about_mission(MISSION);

    let error = plain_services(&uow)
        .activities()
        .create(principal(OWNER), input)
        .expect_err("not owned");

    match &error {
        Error::Validation(errors) => assert_eq!(
            errors.field("mission"),
            Some(&[InvalidValue::DoesNotExist { id: MISSION.0 }][..])
        ),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn a_custom_activity_is_recorded_for_the_caller() {
    let mut repos = MockRepos::default();
    repos
        .missions
        .expect_find()
        .withf(|id, owner| *id == MISSION && *owner == Some(OWNER))
        .times(1)
        .returning(|_, _| Ok(Some(sample_mission(MISSION, OWNER, MissionStatus::Pending))));
    // After the commit, the mission's state is read for its event.
    repos
        .missions
        .expect_find()
        .withf(|id, owner| *id == MISSION && owner.is_none())
        .times(1)
        .returning(|_, _| Ok(Some(sample_mission(MISSION, OWNER, MissionStatus::Pending))));
    let log = record_activities(&mut repos);
    let uow = uow_with(repos);
    let input = note()
        .with_details(ActivityDetails::parse(json!({"minutes": 5})).expect("details"))
        .about_mission(MISSION);

    let activity = plain_services(&uow)
        .activities()
        .create(principal(OWNER), input)
        .expect("recorded");

    assert_eq!(activity.kind, "note_added");
    let activities = recorded(&log);
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].user, Some(OWNER));
    assert_eq!(activities[0].mission, Some(MISSION));
    assert_eq!(activities[0].message, "Called the bank");
    assert_eq!(activities[0].details.get("minutes"), Some(&json!(5)));
    assert_eq!(outcome(&uow), (1, 0));
}

// ---------------------------------------------------------------------------
// Revoking live connections
// ---------------------------------------------------------------------------

/// Keeps every published event.
#[derive(Default)]
struct Published(Mutex<Vec<crate::events::Event>>);

impl crate::events::EventPublisher for Published {
    fn publish(&self, events: Vec<crate::events::Event>) {
        self.0.lock().expect("published").extend(events);
    }
}

impl Published {
    fn revoked(&self) -> Vec<UserId> {
        self.0
            .lock()
            .expect("published")
            .iter()
            .filter_map(|event| match event.payload {
                crate::events::EventPayload::SessionsRevoked(user) => {
                    assert_eq!(event.user, user, "addressed to the revoked user");
                    Some(user)
                }
                _ => None,
            })
            .collect()
    }
}

fn staff(user_id: UserId) -> Principal {
    Principal {
        user_id,
        is_staff: true,
    }
}

fn watched(mut ports: super::Ports) -> (Services, Arc<Published>) {
    let published = Arc::new(Published::default());
    ports.events = published.clone();
    (Services::new(ports, super::Limits::default()), published)
}

#[test]
fn a_password_change_revokes_sessions_only_once_committed() {
    // Refused: nothing is revoked.
    let uow = uow_with(password_repos());
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().return_const(PasswordCheck::Mismatch);
    let (services, published) =
        watched(super::testing::ports(uow, hasher, MockTokenService::new()));
    services
        .accounts()
        .change_password(principal(OWNER), "wrong", PASSWORD)
        .expect_err("wrong old password");
    assert!(published.revoked().is_empty());

    // The commit fails: nothing is revoked.
    let mut repos = password_repos();
    repos
        .users
        .expect_replace_password_hash()
        .returning(|_, _, _| Err(RepoError::Unavailable("down".into())));
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().return_const(PasswordCheck::Match);
    hasher.expect_hash().returning(|_| "new-hash".to_owned());
    let (services, published) = watched(super::testing::ports(
        Arc::clone(&uow),
        hasher,
        MockTokenService::new(),
    ));
    services
        .accounts()
        .change_password(principal(OWNER), "old-password", PASSWORD)
        .expect_err("the write fails");
    assert!(published.revoked().is_empty());
    assert_eq!(outcome(&uow), (0, 1));

    // Changed: the user's sessions are revoked.
    let mut repos = password_repos();
    repos
        .users
        .expect_replace_password_hash()
        .returning(|_, _, _| Ok(true));
    repos
        .refresh_tokens
        .expect_revoke_all()
        .returning(|_, _| Ok(1));
    record_activities(&mut repos);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().return_const(PasswordCheck::Match);
    hasher.expect_hash().returning(|_| "new-hash".to_owned());
    let (services, published) = watched(super::testing::ports(
        uow_with(repos),
        hasher,
        MockTokenService::new(),
    ));
    services
        .accounts()
        .change_password(principal(OWNER), "old-password", PASSWORD)
        .expect("changed");
    assert_eq!(published.revoked(), vec![OWNER]);
}

/// Repositories in which staff edits of user 8 succeed.
fn editable_user_repos() -> MockRepos {
    let mut repos = MockRepos::default();
    repos
        .users
        .expect_find()
        .returning(|id| Ok(Some(sample_user(id.0))));
    repos.users.expect_update_account().returning(|_, _| Ok(()));
    repos
        .users
        .expect_delete()
        .returning(|id| Ok(id == UserId(8)));
    record_activities(&mut repos);
    repos
}

#[test]
fn deactivating_or_deleting_a_user_revokes_their_sessions() {
    let (services, published) = watched(super::testing::ports(
        uow_with(editable_user_repos()),
        MockPasswordHasher::new(),
        MockTokenService::new(),
    ));
    let rename = UserChanges {
        first_name: Some(PersonName::parse("Ada").expect("a name")),
        is_active: Some(true),
        ..UserChanges::default()
    };
    services
        .accounts()
        .update_user(staff(OWNER), UserId(8), rename)
        .expect("updated");
    assert!(
        published.revoked().is_empty(),
        "no deactivation, no revocation"
    );

    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    services
        .accounts()
        .update_user(staff(OWNER), UserId(8), deactivate)
        .expect("deactivated");
    assert_eq!(published.revoked(), vec![UserId(8)]);

    services
        .accounts()
        .delete_user(staff(OWNER), UserId(9))
        .expect_err("no such user");
    assert_eq!(published.revoked(), vec![UserId(8)], "nothing deleted");
    services
        .accounts()
        .delete_user(staff(OWNER), UserId(8))
        .expect("deleted");
    assert_eq!(published.revoked(), vec![UserId(8), UserId(8)]);
}

#[test]
fn change_password_loses_to_a_change_made_meanwhile() {
    let mut repos = password_repos();
    repos
        .users
        .expect_replace_password_hash()
        .times(1)
        .returning(|_, _, _| Ok(false));
    repos.refresh_tokens.expect_revoke_all().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .times(1)
        .return_const(PasswordCheck::Match);
    hasher
        .expect_hash()
        .times(1)
        .returning(|_| "new-hash".to_owned());

    let error = services(Arc::clone(&uow), hasher, MockTokenService::new())
        .accounts()
        .change_password(principal(OWNER), "my-password", PASSWORD)
        .expect_err("the stored hash changed");

    assert_eq!(
        field_errors(&error, "old_password"),
        vec![WRONG_OLD_PASSWORD]
    );
    assert_eq!(outcome(&uow), (0, 1));
}
#[test]
fn a_mission_at_its_step_limit_takes_no_more_steps() {
    let mut repos = MockRepos::default();
    // The count is read from the locked mission row, not from a list.
    repos
        .missions
        .expect_lock()
        .withf(|id, filter| *id == MISSION && *filter == Some(OWNER))
        .times(1)
        .returning(|_, _| {
            Ok(Some(crate::mission::Mission {
                steps_total: 1000,
                ..sample_mission(MISSION, OWNER, MissionStatus::Pending)
            }))
        });
    repos.missions.expect_find().never();
    repos.steps.expect_create().never();
    repos.activities.expect_record().never();
    let uow = uow_with(repos);
    let input = CreateStep::new(title("One too many"));

    let error = plain_services(&uow)
        .steps()
        .create(principal(OWNER), MISSION, input)
        .expect_err("over the limit");

    assert_eq!(
        general_errors(&error),
        vec!["A mission can have at most 1000 plan steps."]
    );
    assert_eq!(outcome(&uow), (0, 1));
}

#[test]
fn a_plan_over_the_step_limit_is_refused_before_any_write() {
    let uow = uow_with(MockRepos::default());
    let limits = super::Limits {
        max_steps: super::steps::MaxSteps::new(3).expect("a positive limit"),
        ..super::Limits::default()
    };
    let services = Services::new(
        super::testing::ports(
            Arc::clone(&uow),
            MockPasswordHasher::new(),
            MockTokenService::new(),
        ),
        limits,
    );
    // Two roots, one with two children: four steps.
    let draft = CreateMission::new(title("Four"), MissionType::Custom).with_plan(vec![
        PlannedStep::new(title("a")).with_children(vec![
            PlannedStep::new(title("a1")),
            PlannedStep::new(title("a2")),
        ]),
        PlannedStep::new(title("b")),
    ]);

    let error = services
        .missions()
        .create(principal(OWNER), draft)
        .expect_err("over the limit");

    assert_eq!(
        field_errors(&error, "plan_steps"),
        vec!["A mission can have at most 3 plan steps."]
    );
    assert_eq!(outcome(&uow), (0, 0), "no transaction was opened");
}

#[test]
fn step_limits_hold_at_the_limit_and_refuse_past_it() {
    use super::steps::MaxSteps;
    assert_eq!(MaxSteps::new(0), None);
    assert_eq!(MaxSteps::default().get(), 1000);
    let limit = MaxSteps::DEFAULT;
    assert!(limit.check_plan(1000).is_ok());
    assert!(limit.check_plan(1001).is_err());
    assert!(limit.check_room(999, 1).is_ok());
    assert!(limit.check_room(1000, 1).is_err());
    assert!(limit.check_room(u64::MAX, 1).is_err());
}

/// Services whose events go to `events`, over `uow`.
fn services_publishing_to(
    uow: &Arc<MockUow>,
    events: crate::events::MockEventPublisher,
) -> Services {
    let mut ports = super::testing::ports(
        Arc::clone(uow),
        MockPasswordHasher::new(),
        MockTokenService::new(),
    );
    ports.events = Arc::new(events);
    Services::new(ports, super::Limits::default())
}

fn custom_activity() -> NewActivity {
    NewActivity {
        kind: "note".into(),
        message: "A note".into(),
        details: serde_json::Map::new(),
        user: Some(OWNER),
        mission: None,
        document: None,
    }
}

#[test]
fn a_committed_change_publishes_the_activities_it_recorded() {
    let mut repos = MockRepos::default();
    record_activities(&mut repos);
    let uow = uow_with(repos);
    let mut events = crate::events::MockEventPublisher::new();
    events
        .expect_publish()
        .withf(|events| {
            matches!(
                events.as_slice(),
                [crate::events::Event {
                    user,
                    payload: crate::events::EventPayload::ActivityCreated(activity),
                    ..
                }] if *user == OWNER && activity.kind == "note"
            )
        })
        .times(1)
        .return_const(());
    let services = services_publishing_to(&uow, events);

    services
        .context
        .write(|repos| Ok(repos.activities().record(&custom_activity(), fixed_now())?))
        .expect("committed");

    assert_eq!(outcome(&uow), (1, 0));
}

#[test]
fn a_rolled_back_change_publishes_nothing() {
    let mut repos = MockRepos::default();
    let log = record_activities(&mut repos);
    let uow = uow_with(repos);
    let mut events = crate::events::MockEventPublisher::new();
    events.expect_publish().never();
    let services = services_publishing_to(&uow, events);

    let result: Result<(), Error> = services.context.write(|repos| {
        repos.activities().record(&custom_activity(), fixed_now())?;
        Err(Error::NotFound)
    });

    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
    assert_eq!(
        recorded(&log).len(),
        1,
        "the activity was written, then rolled back"
    );
    assert_eq!(outcome(&uow), (0, 1));
}
