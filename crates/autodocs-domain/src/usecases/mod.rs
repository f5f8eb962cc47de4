//! The use cases: each one validates its input, runs its change in one unit
//! of work together with the activity it records, and returns domain values.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::activity_log::Activity;
use crate::error::{RepoError, UseCaseError};
use crate::events::{Event, EventPayload, EventPublisher, EventRef};
use crate::ids::{DocumentId, MissionId};
use crate::jobs::JobSignal;
use crate::ports::{
    self, Clock, FileStorage, PasswordHasher, Repositories, TokenService, UnitOfWork, UrlFetcher,
};

pub mod activities;
pub mod admin_sessions;
pub mod auth;
pub mod documents;
pub mod engine;
pub mod missions;
pub mod steps;
pub mod sweep;
pub mod users;

/// The ports a [`Services`] is built from: everything the use cases need
/// from the outside world.
#[derive(Clone)]
pub struct Ports {
    /// Transactions over the repositories.
    pub uow: Arc<dyn UnitOfWork>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Token signing and checking.
    pub tokens: Arc<dyn TokenService>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Downloads for `fetch_url` steps.
    pub fetcher: Arc<dyn UrlFetcher>,
    /// Live events, published after each commit.
    pub events: Arc<dyn EventPublisher>,
    /// Where document bytes live.
    pub storage: Arc<dyn FileStorage>,
}

/// The limits the use cases enforce; [`Default`] gives the documented ones.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// The most steps one mission may hold.
    pub max_steps: steps::MaxSteps,
    /// The limits of the storage sweep.
    pub sweep: sweep::SweepPolicy,
}

impl Default for Limits {
    /// 25 MiB uploads, [`steps::MaxSteps::DEFAULT`], the default sweep policy.
    fn default() -> Self {
        Self {
            max_upload_bytes: 25 * 1024 * 1024,
            max_steps: steps::MaxSteps::DEFAULT,
            sweep: sweep::SweepPolicy::default(),
        }
    }
}

/// What every service shares: the ports, the limits and the write path.
/// Private, so the only way to change state is a use case, which commits
/// and then publishes.
pub(crate) struct Context {
    pub(crate) uow: Arc<dyn UnitOfWork>,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    pub(crate) tokens: Arc<dyn TokenService>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) fetcher: Arc<dyn UrlFetcher>,
    pub(crate) events: Arc<dyn EventPublisher>,
    pub(crate) storage: Arc<dyn FileStorage>,
    pub(crate) max_upload_bytes: u64,
    pub(crate) max_steps: steps::MaxSteps,
    pub(crate) sweep: sweep::SweepPolicy,
    pub(crate) job_signal: Arc<JobSignal>,
}

/// The use cases, one service per aggregate, wired once from the [`Ports`].
///
/// Cloning is cheap (the services share one context).
///
/// ```
/// # fn wire(ports: autodocs_domain::usecases::Ports) {
/// use autodocs_domain::usecases::{Limits, Services};
///
/// let services = Services::new(ports, Limits::default());
/// let _missions = services.missions();
/// let _engine = services.engine();
/// # }
/// ```
#[derive(Clone)]
pub struct Services {
    context: Arc<Context>,
    missions: missions::MissionService,
    steps: steps::StepService,
    documents: documents::DocumentService,
    activities: activities::ActivityService,
    accounts: auth::AccountService,
    engine: engine::Engine,
    sweep: sweep::StorageSweep,
}

impl Services {
    /// Wires the services over `ports`, enforcing `limits`.
    pub fn new(ports: Ports, limits: Limits) -> Self {
        let context = Arc::new(Context {
            uow: ports.uow,
            hasher: ports.hasher,
            tokens: ports.tokens,
            clock: ports.clock,
            fetcher: ports.fetcher,
            events: ports.events,
            storage: ports.storage,
            max_upload_bytes: limits.max_upload_bytes,
            max_steps: limits.max_steps,
            sweep: limits.sweep,
            job_signal: Arc::default(),
        });
        Self {
            missions: missions::MissionService::from(&context),
            steps: steps::StepService::from(&context),
            documents: documents::DocumentService::from(&context),
            activities: activities::ActivityService::from(&context),
            accounts: auth::AccountService::from(&context),
            engine: engine::Engine::from(&context),
            sweep: sweep::StorageSweep::from(&context),
            context,
        }
    }

    /// Missions: create, list, read, edit, delete, start/pause/resume/cancel.
    pub fn missions(&self) -> &missions::MissionService {
        &self.missions
    }

    /// A mission's plan steps.
    pub fn steps(&self) -> &steps::StepService {
        &self.steps
    }

    /// Documents: upload, list, read, open, edit, verify, delete.
    pub fn documents(&self) -> &documents::DocumentService {
        &self.documents
    }

    /// The activity log.
    pub fn activities(&self) -> &activities::ActivityService {
        &self.activities
    }

    /// Accounts: registration, login, tokens, the caller's own account and
    /// staff user management.
    pub fn accounts(&self) -> &auth::AccountService {
        &self.accounts
    }

    /// The job engine: what workers claim and run.
    pub fn engine(&self) -> &engine::Engine {
        &self.engine
    }

    /// The storage sweep.
    pub fn sweep(&self) -> &sweep::StorageSweep {
        &self.sweep
    }

    /// The largest upload accepted, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.context.max_upload_bytes
    }

    /// Now, by the services' clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.context.clock.now()
    }

    /// Wakes the workers sharing these services after a commit that
    /// enqueued a job.
    pub fn job_signal(&self) -> &Arc<JobSignal> {
        &self.context.job_signal
    }

    /// Rebuilds the event a reference points at, for delivery in another
    /// process; `None` when its subject is gone.
    pub fn load_event(&self, reference: EventRef) -> Result<Option<Event>, RepoError> {
        self.context.load_event(reference)
    }
}

/// Declares a service: a handle on the shared [`Context`].
macro_rules! service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            pub(in crate::usecases) context: std::sync::Arc<super::Context>,
        }

        impl From<&std::sync::Arc<super::Context>> for $name {
            fn from(context: &std::sync::Arc<super::Context>) -> Self {
                Self {
                    context: std::sync::Arc::clone(context),
                }
            }
        }
    };
}
pub(crate) use service;

impl Context {
    /// Runs a change in one transaction, then (only once it committed)
    /// publishes the events of the activities it recorded: every change
    /// records an activity, so this one place covers them all.
    pub(crate) fn write<T, E: UseCaseError>(
        &self,
        work: impl FnOnce(&mut dyn Repositories) -> Result<T, E>,
    ) -> Result<T, E> {
        JobSignal::reset_thread();
        let (output, recorded) = ports::recorded_transaction(&*self.uow, work)?;
        self.job_signal.committed();
        self.publish_recorded(recorded);
        Ok(output)
    }

    fn publish_recorded(&self, recorded: Vec<Activity>) {
        if recorded.is_empty() {
            return;
        }
        let missions: BTreeSet<MissionId> = recorded
            .iter()
            .filter_map(|activity| activity.mission)
            .collect();
        let documents: BTreeSet<DocumentId> = recorded
            .iter()
            .filter_map(|activity| activity.document)
            .collect();
        let mut events: Vec<Event> = recorded
            .into_iter()
            .filter_map(|activity| {
                let user = activity.user?;
                Some(Event {
                    user,
                    mission: activity.mission,
                    payload: EventPayload::ActivityCreated(activity),
                })
            })
            .collect();
        // The committed state of each document and mission touched (they may
        // be gone: deleted). A failed read costs only these frames; the
        // activity frames still go out.
        let loaded = ports::read(&*self.uow, |repos| -> Result<_, RepoError> {
            let mut loaded = Vec::with_capacity(missions.len() + documents.len());
            for id in &documents {
                if let Some(document) = repos.documents().find(*id, None)? {
                    loaded.push(document_event(document));
                }
            }
            for id in &missions {
                if let Some(mission) = repos.missions().find(*id, None)? {
                    loaded.push(mission_event(mission));
                }
            }
            Ok(loaded)
        });
        if let Ok(loaded) = loaded {
            events.extend(loaded);
        }
        self.events.publish(events);
    }

    fn load_event(&self, reference: EventRef) -> Result<Option<Event>, RepoError> {
        if let EventRef::SessionsRevoked(user) = reference {
            return Ok(Some(Event::sessions_revoked(user)));
        }
        ports::read(&*self.uow, |repos| {
            Ok(match reference {
                EventRef::Activity(id) => repos.activities().find(id, None)?.and_then(|activity| {
                    let user = activity.user?;
                    Some(Event {
                        user,
                        mission: activity.mission,
                        payload: EventPayload::ActivityCreated(activity),
                    })
                }),
                EventRef::Mission(id) => repos.missions().find(id, None)?.map(mission_event),
                EventRef::Document(id) => repos.documents().find(id, None)?.map(document_event),
                EventRef::SessionsRevoked(user) => Some(Event::sessions_revoked(user)),
            })
        })
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

fn mission_event(mission: crate::mission::Mission) -> Event {
    Event {
        user: mission.owner,
        mission: Some(mission.id),
        payload: EventPayload::MissionUpdated(mission),
    }
}

fn document_event(document: crate::document::Document) -> Event {
    Event {
        user: document.owner,
        mission: document.mission,
        payload: EventPayload::DocumentUpdated(document),
    }
}
