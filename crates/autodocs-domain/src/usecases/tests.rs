//! Interaction checks of the use cases, against mockall mocks of the ports:
//! what only a mock can see or provoke, such as the password hashed outside
//! the transaction, no repository call before a permission check, a lost
//! race, a failing write rolling everything back, events published only
//! after the commit, a hash burnt for an unknown user.
//!
//! What the use cases *do* (the state they leave, the activities they
//! record, the events they publish, the jobs they queue) is tested on the
//! in-memory adapter, in this crate's `tests/` directory.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::Services;
use super::auth::{RegisterInput, Registration, USERNAME_TAKEN};
use super::missions::{CreateMission, PlannedStep};
use super::testing::{
    MockRepos, MockUow, fixed_now, sample_mission, sample_step, sample_user, services,
};
use super::users::WRONG_OLD_PASSWORD;
use crate::activity_log::{Activity, NewActivity};
use crate::error::{AccountError, Error, MissionError, RepoError};
use crate::jobs::JobKind;
use crate::mission::{InvalidTransition, MissionAction, MissionStatus, MissionType, Title};
use crate::plan_step::{PlanStep, StepAction, StepStatus};
use crate::ports::{
    Credentials, IssuedTokens, MockPasswordHasher, MockTokenService, PasswordCheck, RefreshClaims,
    RefreshTokenRecord,
};
use crate::user::{Principal, User, UserChanges, UserId, UserQuery};

use crate::ids::{ActivityId, JobId, MissionId};

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

/// The refusals of `field` in a validation error, as the domain words them;
/// panics on any other error.
fn field_errors<E: Clone + Into<Error>>(error: &E, field: &str) -> Vec<String> {
    match error.clone().into() {
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

fn title(text: &str) -> Title {
    Title::parse(text).expect("a valid title")
}

fn transition_error(error: impl Into<Error>) -> InvalidTransition {
    match error.into() {
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

    assert!(
        matches!(error, AccountError::AuthenticationFailed),
        "{error:?}"
    );
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

    assert!(
        matches!(error, AccountError::AuthenticationFailed),
        "{error:?}"
    );
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

    assert!(matches!(error, AccountError::TokenInvalid(_)), "{error:?}");
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

    assert!(matches!(error, AccountError::TokenInvalid(_)), "{error:?}");
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

    assert!(matches!(error, AccountError::TokenInvalid(_)), "{error:?}");
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
            matches!(result, Err(AccountError::PermissionDenied)),
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
        matches!(&error, MissionError::Repository(RepoError::Other(message)) if message == "disk full"),
        "{error:?}"
    );
    assert_eq!(outcome(&uow), (0, 1));
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
        .write(|repos| repos.activities().record(&custom_activity(), fixed_now()))
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

// ---------------------------------------------------------------------------
// The unit-of-work helpers and the errors of the services
// ---------------------------------------------------------------------------

/// A unit of work that keeps what the work told it and can fail its commit.
#[derive(Default)]
struct RecordingUow {
    repos: Mutex<MockRepos>,
    seen: Mutex<Vec<Result<(), crate::ports::Rollback>>>,
    commit_fails: bool,
}

impl crate::ports::UnitOfWork for RecordingUow {
    fn run_in_transaction(
        &self,
        work: &mut dyn FnMut(
            &mut dyn crate::ports::Repositories,
        ) -> Result<(), crate::ports::Rollback>,
    ) -> Result<(), crate::ports::Rollback> {
        let mut repos = self.repos.lock().expect("repos");
        let outcome = work(&mut *repos);
        self.seen.lock().expect("seen").push(outcome.clone());
        outcome?;
        if self.commit_fails {
            return Err(crate::ports::Rollback::Storage(RepoError::Unavailable(
                "commit lost the connection".into(),
            )));
        }
        Ok(())
    }

    fn run_read(
        &self,
        work: &mut dyn FnMut(
            &mut dyn crate::ports::Repositories,
        ) -> Result<(), crate::ports::Rollback>,
    ) -> Result<(), crate::ports::Rollback> {
        self.run_in_transaction(work)
    }
}

#[test]
fn a_refusal_of_the_work_reaches_its_caller_as_is_and_the_adapter_as_aborted() {
    let uow = RecordingUow::default();
    let error = crate::ports::transaction(&uow, |_| -> Result<(), MissionError> {
        Err(MissionError::NotFound)
    })
    .expect_err("the work refused");
    assert_eq!(error, MissionError::NotFound);
    assert_eq!(
        *uow.seen.lock().expect("seen"),
        vec![Err(crate::ports::Rollback::Aborted)]
    );
}

#[test]
fn a_storage_failure_in_the_work_is_shown_to_the_adapter_and_returned_to_the_caller() {
    let uow = RecordingUow::default();
    let lost = RepoError::Unavailable("connection reset".into());
    let error = crate::ports::read(&uow, |_| -> Result<(), AccountError> {
        Err(AccountError::Repository(lost.clone()))
    })
    .expect_err("the storage failed");
    assert_eq!(error, AccountError::Repository(lost.clone()));
    assert_eq!(
        *uow.seen.lock().expect("seen"),
        vec![Err(crate::ports::Rollback::Storage(lost))]
    );
}

#[test]
fn a_failed_commit_becomes_the_storage_error_of_the_callers_own_type() {
    let uow = RecordingUow {
        commit_fails: true,
        ..RecordingUow::default()
    };
    let error = crate::ports::transaction(&uow, |_| Ok::<_, crate::error::StepError>(7))
        .expect_err("the commit failed");
    assert!(
        matches!(
            &error,
            crate::error::StepError::Repository(RepoError::Unavailable(_))
        ),
        "{error:?}"
    );
}

#[test]
fn every_service_error_keeps_its_meaning_in_the_common_error() {
    let refusal = InvalidTransition::new("mission", "start", "completed");
    assert!(matches!(
        Error::from(MissionError::InvalidTransition(refusal.clone())),
        Error::InvalidTransition(converted) if converted == refusal
    ));
    assert!(matches!(
        Error::from(crate::error::DocumentError::UnsupportedFileType),
        Error::UnsupportedFileType
    ));
    assert!(matches!(
        Error::from(AccountError::TokenInvalid(crate::TokenRefusal::Revoked)),
        Error::TokenInvalid(crate::TokenRefusal::Revoked)
    ));
    assert!(matches!(
        Error::from(crate::error::EngineError::JobNotFound),
        Error::NotFound
    ));
    assert!(matches!(
        Error::from(crate::error::EngineError::Mission(MissionError::NotFound)),
        Error::NotFound
    ));
    let field = crate::error::StepError::field("parent", "Plan steps are nested too deeply.");
    assert_eq!(
        field_errors(&field, "parent"),
        vec!["Plan steps are nested too deeply."]
    );
}
