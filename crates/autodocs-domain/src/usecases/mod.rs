//! The use cases: each one validates its input, runs its change in one unit
//! of work together with the activity it records, and returns domain values.

use std::sync::Arc;

use std::collections::BTreeSet;

use crate::activity_log::Activity;
use crate::error::Result;
use crate::events::{Event, EventPayload, EventPublisher, EventRef};
use crate::ports::{self, Clock, PasswordHasher, Repositories, TokenService, UnitOfWork};

pub mod activities;
pub mod auth;
pub mod documents;
pub mod engine;
pub mod missions;
pub mod steps;
pub mod sweep;
pub mod users;

/// The ports every use case draws on, wired once by the binary.
#[derive(Clone)]
pub struct Services {
    /// Transactions over the repositories.
    pub uow: Arc<dyn UnitOfWork>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Token signing and checking.
    pub tokens: Arc<dyn TokenService>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Downloads for `fetch_url` steps.
    pub fetcher: Arc<dyn crate::ports::UrlFetcher>,
    /// Live events, published after each commit.
    pub events: Arc<dyn EventPublisher>,
    /// Where document bytes live.
    pub storage: Arc<dyn crate::ports::FileStorage>,
    /// The largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// The most steps one mission may hold.
    pub max_steps: steps::MaxSteps,
    /// The limits of the storage sweep.
    pub sweep: sweep::SweepPolicy,
    /// Wakes the workers sharing these services after a commit that
    /// enqueued a job.
    pub job_signal: Arc<crate::jobs::JobSignal>,
}

impl Services {
    /// Runs a change in one transaction, then (only once it committed)
    /// publishes the events of the activities it recorded: every change
    /// records an activity, so this one place covers them all.
    pub(crate) fn write<T>(
        &self,
        work: impl FnOnce(&mut dyn Repositories) -> Result<T>,
    ) -> Result<T> {
        let mut recorded = Vec::new();
        crate::jobs::JobSignal::reset_thread();
        let output = ports::transaction(&*self.uow, |repos| {
            let output = work(repos)?;
            recorded = repos.take_recorded();
            Ok(output)
        })?;
        self.job_signal.committed();
        self.publish_recorded(recorded);
        Ok(output)
    }

    fn publish_recorded(&self, recorded: Vec<Activity>) {
        if recorded.is_empty() {
            return;
        }
        let missions: BTreeSet<i64> = recorded
            .iter()
            .filter_map(|activity| activity.mission)
            .collect();
        let documents: BTreeSet<i64> = recorded
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
        let loaded = ports::read(&*self.uow, |repos| {
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

    /// Rebuilds the event a reference points at, for delivery in another
    /// process; `None` when its subject is gone.
    pub fn load_event(&self, reference: EventRef) -> Result<Option<Event>> {
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
