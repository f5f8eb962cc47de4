//! The AutoDocs domain: missions broken into plan steps that gather and
//! verify documents, with every change written to an activity log.
//!
//! This crate is pure: state machines, value types parsed at the edge, the
//! use cases, and the ports (traits) they need. It does no I/O; adapters
//! provide the implementations (`autodocs-db` for SQLite and PostgreSQL,
//! `autodocs-memory` in memory, `autodocs-storage` for files on disk).
//! Other Rust services can depend on it alone.
//!
//! # The shape
//!
//! - **Value types** ([`mission::Title`], [`mission::Priority`],
//!   [`user::Username`], [`user::IdentityKey`], ...) are parsed once, at the
//!   edge, so an invalid one cannot be built.
//! - **State machines** ([`mission::MissionStatus`],
//!   [`plan_step::StepStatus`]) answer every transition with a `Result`.
//! - **Ports** ([`ports`]) are what the use cases need from the outside:
//!   repositories bound to one transaction ([`ports::UnitOfWork`]), file
//!   storage, a clock, password hashing, tokens, a URL fetcher and an
//!   [`events::EventPublisher`]; and the fixed-window counters of the
//!   throttles and lockouts ([`ports::RateWindows`]), which every process
//!   serving the API must share.
//! - **Services** ([`Services`], built from [`Ports`] and [`Limits`]) are
//!   the use cases, one service per aggregate. Each change commits together
//!   with the activity it records and the jobs it enqueues, and only then
//!   are its events published ([`ports::recorded_transaction`]).
//!
//! # A mission's life
//!
//! Driven here on the in-memory adapter (`autodocs-memory`):
//!
//! ```
//! use autodocs_domain::mission::{MissionAction, MissionStatus, MissionType, Progress, Title};
//! use autodocs_domain::plan_step::StepStatus;
//! use autodocs_domain::usecases::auth::{RegisterInput, Registration};
//! use autodocs_domain::usecases::missions::{CreateMission, PlannedStep};
//! use autodocs_domain::usecases::steps::UpdateStep;
//! use autodocs_domain::user::Principal;
//!
//! let memory = autodocs_memory::services();
//! let services = &memory.services;
//!
//! // Someone registers ...
//! let session = services.accounts().register(Registration::parse(&RegisterInput {
//!     username: "anna".into(),
//!     email: "anna@example.com".into(),
//!     password: "violet-Harbor-1987".into(),
//!     first_name: "Anna".into(),
//!     last_name: "Berg".into(),
//! })?)?;
//! let anna = Principal { user_id: session.user.id, is_staff: false };
//!
//! // ... plans a mission of one step done by hand ...
//! // (commands are built from the domain's value types: a `Title` that
//! // parsed is one a mission can have)
//! let draft = CreateMission::new(Title::parse("Retrieve Tax Documents")?, MissionType::DocumentRetrieval)
//!     .with_plan(vec![PlannedStep::new(Title::parse("Sign the consent form")?)]);
//! let created = services.missions().create(anna, draft)?;
//! let mission = created.mission.id;
//! assert_eq!(created.mission.status, MissionStatus::Pending);
//!
//! // ... starts it (the engine's jobs run on the queue) ...
//! services.missions().act(anna, mission, MissionAction::Start)?;
//! memory.drain_jobs("worker-1", 100)?;
//!
//! // ... and completes the step, which completes the mission.
//! let step = created.plan.roots()[0].id;
//! services.steps().update(anna, mission, step, UpdateStep::status(StepStatus::Completed))?;
//! memory.drain_jobs("worker-1", 100)?;
//!
//! let detail = services.missions().get(anna, mission)?;
//! assert_eq!(detail.mission.status, MissionStatus::Completed);
//! assert_eq!(detail.mission.progress, Progress::COMPLETE);
//! // Every change was recorded, and published once it committed.
//! assert!(memory.events.events().len() >= 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod activity;
pub mod activity_log;
pub mod admin_session;
pub mod document;
pub mod error;
pub mod events;
pub mod ids;
pub mod instance;
pub mod jobs;
pub mod mission;
pub mod paging;
pub mod password_policy;
pub mod plan_step;
pub mod ports;
pub mod rate_window;
mod text;
pub mod transition;
pub mod usecases;
pub mod user;
pub mod validation;

pub use error::{
    AccountError, ActivityError, DocumentError, EngineError, Error, MissionError, RepoError,
    Result, StepError, TokenRefusal, UseCaseError,
};
pub use ids::{ActivityId, DocumentId, JobId, MissionId, StepId, UserId};
pub use usecases::{Limits, Ports, Services};

/// The README's examples, compiled with the doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
