//! The job queue settles, whatever users do (issue 11).
//!
//! Hundreds of random sequences of mission, step and document actions run
//! through the real use cases on a real SQLite database, interleaved with
//! synchronous worker steps under a deterministic clock (and a seeded
//! generator, so a failure replays). After each sequence the worker loop
//! must drain the queue completely within a bounded number of rounds: a
//! job that re-enqueues itself forever, or a mission whose run keeps
//! coming back with nothing to do, fails here. A running mission left with
//! automated work but no queued run (a lost wakeup) fails too.
//!
//! Also: maintenance jobs are enqueued once per period however often they
//! are scheduled and however quickly they finish.

use std::sync::{Arc, Mutex};

use autodocs_db::{Database, DieselUnitOfWork, PoolSettings};
use autodocs_domain::events::DiscardEvents;
use autodocs_domain::jobs::{JobOutcome, JobStatus, retry_delay};
use autodocs_domain::mission::MissionAction;
use autodocs_domain::mission::{MissionType, Title};
use autodocs_domain::plan_step::{StepAction, StepStatus};
use autodocs_domain::ports::{
    Clock, FetchError, Fetched, MockPasswordHasher, MockTokenService, UploadSink, UrlFetcher,
};
use autodocs_domain::usecases::missions::{CreateMission, PlannedStep};
use autodocs_domain::usecases::steps::{CreateStep, UpdateStep};
use autodocs_domain::usecases::{Limits, Ports, Services};
use autodocs_domain::user::{Email, NewUser, PersonName, Principal, Username};
use autodocs_domain::{Error, plan_step::HttpUrl};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

/// A clock the test moves.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn advance_to(&self, at: DateTime<Utc>) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if at > *now {
            *now = at;
        }
    }
    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `/ok…` serves a small text file; anything else fails (transiently).
struct FakeFetcher;

impl UrlFetcher for FakeFetcher {
    fn fetch(&self, url: &HttpUrl, sink: &mut dyn UploadSink) -> Result<Fetched, FetchError> {
        if !url.as_str().contains("/ok") {
            return Err(FetchError::Status {
                status: 503,
                detail: "HTTP 503".into(),
            });
        }
        sink.write(b"Quarterly report\nAll figures checked.\n")
            .map_err(FetchError::Upload)?;
        Ok(Fetched {
            filename: "report.txt".into(),
        })
    }
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

struct World {
    services: Services,
    clock: Arc<TestClock>,
    principal: Principal,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("drain.sqlite3").display());
    let database = Database::connect(&url, &PoolSettings::default()).expect("open SQLite");
    database.migrate().expect("migrate");
    let storage = autodocs_storage::LocalStorage::new(dir.path().join("media"));
    storage.prepare().expect("media root");
    let clock = Arc::new(TestClock(Mutex::new(
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
            .single()
            .expect("a date"),
    )));
    let uow = Arc::new(DieselUnitOfWork::new(database));
    let services = Services::new(
        Ports {
            uow: uow.clone(),
            hasher: Arc::new(MockPasswordHasher::new()),
            tokens: Arc::new(MockTokenService::new()),
            clock: clock.clone(),
            fetcher: Arc::new(FakeFetcher),
            events: Arc::new(DiscardEvents),
            storage: Arc::new(storage),
        },
        Limits {
            max_upload_bytes: 1 << 20,
            ..Limits::default()
        },
    );
    let user = autodocs_domain::ports::transaction(&*uow, |repos| {
        repos.users().create(
            &NewUser {
                username: Username::parse("anna").expect("username"),
                email: Email::parse("anna@example.com").expect("email"),
                first_name: PersonName::parse("Anna").expect("name"),
                last_name: PersonName::parse("Test").expect("name"),
                password_hash: "pbkdf2_sha256$1$x$y".into(),
                is_staff: false,
                is_superuser: false,
            },
            clock.now(),
        )
    })
    .expect("a user");
    World {
        services,
        clock,
        principal: Principal {
            user_id: user.id,
            is_staff: false,
        },
        _dir: dir,
    }
}

/// One worker step: claim and run one due job. `false` when none was due.
fn work_once(world: &World) -> bool {
    let lease = Duration::seconds(60);
    let Some(job) = world
        .services
        .engine()
        .claim_job("drain", lease, false)
        .expect("claim")
    else {
        return false;
    };
    let outcome = match world.services.engine().run_job(&job) {
        Ok(outcome) => outcome,
        Err(error) => JobOutcome::Failed(error.to_string()),
    };
    world
        .services
        .engine()
        .settle_job(&job, "drain", outcome, retry_delay(job.attempt, 0.5))
        .expect("settle");
    true
}

/// Runs the worker until nothing is queued or running, moving the clock to
/// each next due time; panics if that takes more than `max_rounds`.
fn drain(world: &World, max_rounds: usize, context: &str) -> usize {
    for round in 0..max_rounds {
        if work_once(world) {
            continue;
        }
        match world.services.engine().next_job_due().expect("next due") {
            None => return round,
            Some(due) => world.clock.advance_to(due + Duration::milliseconds(1)),
        }
    }
    let open: Vec<String> = world
        .services
        .engine()
        .list_jobs(None, 20)
        .expect("list")
        .into_iter()
        .filter(|job| matches!(job.status, JobStatus::Queued | JobStatus::Running))
        .map(|job| format!("{job:?}"))
        .collect();
    panic!("the queue did not drain in {max_rounds} rounds ({context}); open jobs: {open:#?}");
}

fn random_action(rng: &mut Rng) -> StepAction {
    let action = match rng.below(6) {
        0 | 1 => json!({"kind": "manual"}),
        2 => json!({"kind": "wait", "seconds": 1 + rng.below(3)}),
        3 => json!({"kind": "verify_documents"}),
        4 => json!({"kind": "fetch_url", "url": "https://files.example.com/ok/report.txt"}),
        _ => json!({"kind": "fetch_url", "url": "https://files.example.com/broken"}),
    };
    StepAction::parse(&action).expect("a valid action")
}

fn title(text: String) -> Title {
    Title::parse(&text).expect("a valid title")
}

fn random_plan(rng: &mut Rng, depth: u32) -> Vec<PlannedStep> {
    let count = rng.below(if depth == 0 { 4 } else { 3 });
    (0..count)
        .map(|i| {
            let step = PlannedStep::new(title(format!("step {depth}.{i}")))
                .with_action(random_action(rng));
            if depth < 2 && rng.below(4) == 0 {
                step.with_children(random_plan(rng, depth + 1))
            } else {
                step
            }
        })
        .collect()
}

/// An error a user action may legitimately meet; anything else is a bug.
fn expected(result: Result<(), impl Into<Error>>, what: &str) {
    match result.map_err(Into::into) {
        Ok(())
        | Err(Error::InvalidTransition(_))
        | Err(Error::NotFound)
        | Err(Error::Validation(_)) => {}
        Err(error) => panic!("{what}: {error}"),
    }
}

#[test]
fn random_sequences_always_drain_the_queue() {
    let world = world();
    let seed = std::env::var("DRAIN_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_1111_u64);
    let mut rng = Rng(seed);
    let principal = world.principal;
    let services = &world.services;
    for sequence in 0..300 {
        let draft = CreateMission::new(title(format!("Mission {sequence}")), MissionType::Custom)
            .with_plan(random_plan(&mut rng, 0));
        let mission = services
            .missions()
            .create(principal, draft)
            .expect("created")
            .mission
            .id;
        let actions = 3 + rng.below(10);
        for _ in 0..actions {
            let steps: Vec<autodocs_domain::StepId> = services
                .steps()
                .list(principal, mission)
                .expect("steps")
                .depth_first()
                .map(|(node, _)| node.id)
                .collect();
            match rng.below(10) {
                0..=2 => {
                    let action = *rng
                        .pick(&[
                            MissionAction::Start,
                            MissionAction::Start,
                            MissionAction::Pause,
                            MissionAction::Resume,
                            MissionAction::Complete,
                            MissionAction::Cancel,
                        ])
                        .expect("an action");
                    expected(
                        services
                            .missions()
                            .act(principal, mission, action)
                            .map(drop),
                        "mission action",
                    );
                }
                3 | 4 => {
                    let parent = if rng.below(3) == 0 {
                        rng.pick(&steps).copied()
                    } else {
                        None
                    };
                    let input = CreateStep {
                        parent,
                        ..CreateStep::new(title("added".into()))
                            .with_action(random_action(&mut rng))
                    };
                    expected(
                        services.steps().create(principal, mission, input).map(drop),
                        "create step",
                    );
                }
                5 | 6 => {
                    if let Some(step) = rng.pick(&steps).copied() {
                        let status = *rng
                            .pick(&["pending", "in_progress", "completed", "skipped", "failed"])
                            .expect("a status");
                        let input = UpdateStep {
                            status: Some(StepStatus::parse(status).expect("a status")),
                            title: Some(title(format!("edited {}", rng.below(1000)))),
                            ..UpdateStep::default()
                        };
                        expected(
                            services
                                .steps()
                                .update(principal, mission, step, input)
                                .map(drop),
                            "update step",
                        );
                    }
                }
                7 => {
                    if let Some(step) = rng.pick(&steps).copied() {
                        expected(
                            services.steps().delete(principal, mission, step),
                            "delete step",
                        );
                    }
                }
                _ => {
                    // A worker gets there between two user actions.
                    for _ in 0..rng.below(3) {
                        work_once(&world);
                    }
                    world
                        .clock
                        .advance(Duration::milliseconds(rng.below(1500) as i64));
                }
            }
        }
        let rounds = drain(&world, 400, &format!("seed {seed}, sequence {sequence}"));
        assert!(rounds < 400);
        // Settled: a running mission is left only waiting for its user.
        let detail = services
            .missions()
            .get(principal, mission)
            .expect("mission");
        if detail.mission.status == autodocs_domain::mission::MissionStatus::InProgress {
            let plan = &detail.plan;
            let waiting_for_user = match plan.next_runnable().and_then(|id| plan.find(id)) {
                Some(node) => {
                    node.item.action == StepAction::Manual || node.item.status == StepStatus::Failed
                }
                None => !plan.all_leaves_done(),
            };
            assert!(
                waiting_for_user,
                "seed {seed}, sequence {sequence}: mission {mission} is in progress with \
                 automated work and nothing queued: {plan:#?}"
            );
        }
    }
}

#[test]
fn maintenance_is_enqueued_once_per_period() {
    let world = world();
    let period = Duration::minutes(5);
    let retain = Duration::hours(24);
    // Start of a period, so the minutes below stay inside it.
    let start = Utc
        .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
        .single()
        .expect("a date");
    world.clock.advance_to(start);
    assert_eq!(
        world
            .services
            .engine()
            .schedule_maintenance(period, retain)
            .expect("schedule"),
        4
    );
    for minute in 0..5 {
        // Each time the jobs finish first, then the scheduler offers them again.
        drain(&world, 50, "maintenance");
        world
            .clock
            .advance_to(start + Duration::minutes(minute) + Duration::seconds(30));
        assert_eq!(
            world
                .services
                .engine()
                .schedule_maintenance(period, retain)
                .expect("schedule"),
            0,
            "minute {minute}: this period's jobs already ran"
        );
    }
    world.clock.advance_to(start + period);
    assert_eq!(
        world
            .services
            .engine()
            .schedule_maintenance(period, retain)
            .expect("schedule"),
        4,
        "the next period"
    );
    drain(&world, 50, "maintenance");
    let jobs = world.services.engine().list_jobs(None, 100).expect("list");
    assert_eq!(jobs.len(), 8, "{jobs:#?}");
    assert!(
        jobs.iter().all(|job| job.status == JobStatus::Done),
        "{jobs:#?}"
    );
}
