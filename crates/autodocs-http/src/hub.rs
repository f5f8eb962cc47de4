//! The in-process event hub: routes each event to the sockets of its user
//! (and mission), through small bounded queues.
//!
//! A socket whose queue is full is too slow to keep up: it is dropped from
//! the hub and its task closes it with a close frame, so one slow client can
//! neither grow memory nor hold up the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use autodocs_domain::events::{Event, EventPayload, EventPublisher};
use autodocs_domain::user::UserId;
use tokio::sync::mpsc;

use crate::views::{activity_json, document_json_at, mission_json};

/// Frames a socket may have waiting before it counts as too slow.
pub const SOCKET_QUEUE: usize = 256;

/// A serialised frame, shared by every socket it goes to.
pub type Frame = Arc<str>;

struct Subscriber {
    id: u64,
    mission: Option<i64>,
    queue: mpsc::Sender<Frame>,
}

/// Routes events to the sockets of this process.
#[derive(Default)]
pub struct EventHub {
    /// Scheme and host for the absolute URLs inside frames (no request to take them from).
    base_url: String,
    next_id: AtomicU64,
    subscribers: Mutex<HashMap<UserId, Vec<Subscriber>>>,
}

/// A socket's registration; dropping it unsubscribes.
pub struct Subscription {
    hub: Arc<EventHub>,
    user: UserId,
    id: u64,
    /// The frames for this socket; `None` once the hub dropped it.
    pub frames: mpsc::Receiver<Frame>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.user, self.id);
    }
}

/// The JSON frame of an event, as the contract shows it; document URLs
/// are made absolute under `base_url`.
pub fn frame_of(event: &Event, base_url: &str) -> String {
    #[derive(serde::Serialize)]
    struct FrameJson<'a, T> {
        event: &'a str,
        data: T,
    }
    let event_name = event.payload.name();
    let rendered = match &event.payload {
        EventPayload::ActivityCreated(activity) => serde_json::to_string(&FrameJson {
            event: event_name,
            data: activity_json(activity),
        }),
        EventPayload::MissionUpdated(mission) => serde_json::to_string(&FrameJson {
            event: event_name,
            data: mission_json(mission),
        }),
        EventPayload::DocumentUpdated(document) => serde_json::to_string(&FrameJson {
            event: event_name,
            data: document_json_at(base_url, document),
        }),
    };
    // These views hold only strings, numbers and JSON maps: they always render.
    rendered.unwrap_or_default()
}

impl EventHub {
    /// An empty hub whose frames link documents under `base_url`
    /// (e.g. `http://127.0.0.1:8000`).
    pub fn new(base_url: impl Into<String>) -> Arc<Self> {
        let base_url: String = base_url.into();
        Arc::new(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            ..Self::default()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<Subscriber>>> {
        // Nothing the lock guards can be left half-changed by a panic.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a socket for a user's events (only one mission's, if given).
    pub fn subscribe(self: &Arc<Self>, user: UserId, mission: Option<i64>) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, frames) = mpsc::channel(SOCKET_QUEUE);
        self.lock()
            .entry(user)
            .or_default()
            .push(Subscriber { id, mission, queue });
        Subscription {
            hub: Arc::clone(self),
            user,
            id,
            frames,
        }
    }

    fn remove(&self, user: UserId, id: u64) {
        let mut subscribers = self.lock();
        if let Some(list) = subscribers.get_mut(&user) {
            list.retain(|subscriber| subscriber.id != id);
            if list.is_empty() {
                subscribers.remove(&user);
            }
        }
    }

    /// How many sockets are registered.
    pub fn socket_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Drops every socket's queue: each socket task then closes its socket
    /// with a close frame (used at shutdown).
    pub fn close_all(&self) {
        self.lock().clear();
    }

    /// Delivers a ready frame to a user's sockets (those of `mission`, for
    /// mission sockets).
    pub fn deliver(&self, user: UserId, mission: Option<i64>, frame: Frame) {
        let mut subscribers = self.lock();
        let Some(list) = subscribers.get_mut(&user) else {
            return;
        };
        list.retain(|subscriber| {
            if subscriber.mission.is_some() && subscriber.mission != mission {
                return true;
            }
            // Full (too slow) or closed: drop it; its task closes the socket.
            subscriber.queue.try_send(Arc::clone(&frame)).is_ok()
        });
        if list.is_empty() {
            subscribers.remove(&user);
        }
    }
}

impl EventPublisher for EventHub {
    fn publish(&self, events: Vec<Event>) {
        for event in events {
            let frame: Frame = Arc::from(frame_of(&event, &self.base_url));
            self.deliver(event.user, event.mission, frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_user_and_mission_and_drops_slow_sockets() {
        let hub = EventHub::new("http://test");
        let mut alice = hub.subscribe(UserId(1), None);
        let mut alice_mission = hub.subscribe(UserId(1), Some(7));
        let mut bob = hub.subscribe(UserId(2), None);
        hub.deliver(UserId(1), Some(7), Arc::from("a"));
        hub.deliver(UserId(1), Some(8), Arc::from("b"));
        assert_eq!(alice.frames.try_recv().ok().as_deref(), Some("a"));
        assert_eq!(alice.frames.try_recv().ok().as_deref(), Some("b"));
        assert_eq!(alice_mission.frames.try_recv().ok().as_deref(), Some("a"));
        assert!(alice_mission.frames.try_recv().is_err());
        assert!(bob.frames.try_recv().is_err());
        for _ in 0..=SOCKET_QUEUE {
            hub.deliver(UserId(2), None, Arc::from("x"));
        }
        assert_eq!(hub.socket_count(), 2, "the slow socket is dropped");
        drop(alice);
        assert_eq!(hub.socket_count(), 1);
    }
}
