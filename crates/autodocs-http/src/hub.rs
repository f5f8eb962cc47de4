//! The in-process event hub: routes each event to the sockets of its user
//! (and mission), through small bounded queues.
//!
//! A socket whose queue is full is too slow to keep up: it is dropped from
//! the hub and its task closes it with a close frame, so one slow client can
//! neither grow memory nor hold up the others. A user holds at most
//! [`SocketPolicy::max_sockets_per_user`] sockets, and a user whose
//! credentials are revoked (deactivated, deleted, new password) loses all
//! of them at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autodocs_domain::MissionId;
use autodocs_domain::events::{Event, EventPayload, EventPublisher};
use autodocs_domain::user::UserId;
use tokio::sync::{mpsc, oneshot};

use crate::views::{activity_json, document_json_at, mission_json};

/// Frames a socket may have waiting before it counts as too slow.
pub const SOCKET_QUEUE: usize = 256;

/// A serialised frame, shared by every socket it goes to.
pub type Frame = Arc<str>;

/// How long a revocation is remembered, to refuse the sockets whose
/// account check raced with it (far longer than such a check takes).
const REVOCATION_MEMORY: Duration = Duration::from_secs(60);

/// Why the hub ended a socket; its task closes the socket accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Its queue was full: the reader is too slow.
    TooSlow,
    /// Its user was deactivated or deleted, or changed password.
    Revoked,
    /// The server is shutting down.
    ShuttingDown,
}

/// The limits sockets are held to.
#[derive(Debug, Clone)]
pub struct SocketPolicy {
    /// Sockets one user may hold open at once (on this process).
    pub max_sockets_per_user: usize,
    /// Browser origins allowed to open a socket (the CORS origins); `*`
    /// allows every origin.
    pub allowed_origins: Vec<String>,
    /// How often an idle socket is pinged.
    pub ping_interval: Duration,
    /// A peer that sent nothing, not even a pong, for this long is dropped.
    pub peer_timeout: Duration,
}

impl Default for SocketPolicy {
    fn default() -> Self {
        Self {
            max_sockets_per_user: 20,
            allowed_origins: vec!["http://localhost:3000".to_owned()],
            ping_interval: Duration::from_secs(20),
            peer_timeout: Duration::from_secs(60),
        }
    }
}

impl SocketPolicy {
    /// Whether a request with this `Origin` header may open a socket. No
    /// header (a non-browser client) is allowed: the check only stops other
    /// sites from riding a browser's credentials.
    pub fn allows_origin(&self, origin: Option<&[u8]>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        self.allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.as_bytes() == origin)
    }
}

/// Why a socket could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The user already holds as many sockets as allowed.
    TooManySockets,
    /// The user's credentials were revoked while the socket was being
    /// authenticated.
    Revoked,
}

struct Subscriber {
    id: u64,
    mission: Option<MissionId>,
    queue: mpsc::Sender<Frame>,
    kick: Option<oneshot::Sender<Kick>>,
}

impl Subscriber {
    fn kick(&mut self, why: Kick) {
        if let Some(kick) = self.kick.take() {
            // The task may already be gone; then there is no one to tell.
            let _ = kick.send(why);
        }
    }
}

/// Routes events to the sockets of this process.
#[derive(Default)]
pub struct EventHub {
    /// Scheme and host for the absolute URLs inside frames (no request to take them from).
    base_url: String,
    policy: SocketPolicy,
    next_id: AtomicU64,
    subscribers: Mutex<HashMap<UserId, Vec<Subscriber>>>,
    /// When each recently revoked user was revoked.
    revoked: Mutex<HashMap<UserId, Instant>>,
}

/// A socket's registration; dropping it unsubscribes.
pub struct Subscription {
    hub: Arc<EventHub>,
    user: UserId,
    id: u64,
    /// The frames for this socket; `None` once the hub dropped it.
    pub frames: mpsc::Receiver<Frame>,
    /// Resolves when the hub ends this socket, with the reason.
    pub kicked: oneshot::Receiver<Kick>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.user, self.id);
    }
}

/// The JSON frame of an event, as the contract shows it; document URLs
/// are made absolute under `base_url`. `None` for events that are not sent
/// to clients (a revocation closes sockets instead).
pub fn frame_of(event: &Event, base_url: &str) -> Option<String> {
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
        EventPayload::SessionsRevoked(_) => return None,
    };
    // These views hold only strings, numbers and JSON maps: they always render.
    Some(rendered.unwrap_or_default())
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

    /// Like [`EventHub::new`], holding sockets to `policy`.
    pub fn with_policy(base_url: impl Into<String>, policy: SocketPolicy) -> Arc<Self> {
        let base_url: String = base_url.into();
        Arc::new(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            policy,
            ..Self::default()
        })
    }

    /// The limits sockets are held to.
    pub fn policy(&self) -> &SocketPolicy {
        &self.policy
    }

    /// Sockets open on this process, every user's.
    pub fn open_sockets(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<Subscriber>>> {
        // Nothing the lock guards can be left half-changed by a panic.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a socket for a user's events (only one mission's, if
    /// given), unless the user already holds the most sockets allowed, or
    /// was revoked since `authenticated_since` (the instant its account
    /// check started: a revocation that committed after that check read the
    /// account reached no socket, so it is caught here).
    pub fn subscribe(
        self: &Arc<Self>,
        user: UserId,
        mission: Option<MissionId>,
        authenticated_since: Instant,
    ) -> Result<Subscription, Refused> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, frames) = mpsc::channel(SOCKET_QUEUE);
        let (kick, kicked) = oneshot::channel();
        {
            let mut subscribers = self.lock();
            // Checked under the subscribers' lock, which `revoke` also holds
            // while it records: a revocation is either seen here or finds
            // this socket registered.
            if self.revoked_since(user, authenticated_since) {
                return Err(Refused::Revoked);
            }
            let list = subscribers.entry(user).or_default();
            if list.len() >= self.policy.max_sockets_per_user {
                if list.is_empty() {
                    subscribers.remove(&user);
                }
                return Err(Refused::TooManySockets);
            }
            list.push(Subscriber {
                id,
                mission,
                queue,
                kick: Some(kick),
            });
        }
        Ok(Subscription {
            hub: Arc::clone(self),
            user,
            id,
            frames,
            kicked,
        })
    }

    fn revoked_since(&self, user: UserId, since: Instant) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&user)
            .is_some_and(|revoked_at| *revoked_at >= since)
    }

    /// Ends every socket of a user whose credentials were revoked, and
    /// refuses the sockets being authenticated for them right now.
    pub fn revoke(&self, user: UserId) {
        let mut subscribers = self.lock();
        {
            let now = Instant::now();
            let mut revoked = self
                .revoked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            revoked.retain(|_, at| now.duration_since(*at) < REVOCATION_MEMORY);
            revoked.insert(user, now);
        }
        if let Some(mut list) = subscribers.remove(&user) {
            list.iter_mut()
                .for_each(|subscriber| subscriber.kick(Kick::Revoked));
        }
    }

    /// How many sockets a user holds.
    pub fn sockets_of(&self, user: UserId) -> usize {
        self.lock().get(&user).map_or(0, Vec::len)
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
        for (_, mut list) in self.lock().drain() {
            list.iter_mut()
                .for_each(|subscriber| subscriber.kick(Kick::ShuttingDown));
        }
    }

    /// Delivers a ready frame to a user's sockets (those of `mission`, for
    /// mission sockets).
    pub fn deliver(&self, user: UserId, mission: Option<MissionId>, frame: Frame) {
        let mut subscribers = self.lock();
        let Some(list) = subscribers.get_mut(&user) else {
            return;
        };
        list.retain_mut(|subscriber| {
            if subscriber.mission.is_some() && subscriber.mission != mission {
                return true;
            }
            // Full (too slow) or closed: drop it; its task closes the socket.
            let delivered = subscriber.queue.try_send(Arc::clone(&frame)).is_ok();
            if !delivered {
                subscriber.kick(Kick::TooSlow);
            }
            delivered
        });
        if list.is_empty() {
            subscribers.remove(&user);
        }
    }
}

impl EventPublisher for EventHub {
    fn publish(&self, events: Vec<Event>) {
        for event in events {
            if let EventPayload::SessionsRevoked(user) = event.payload {
                self.revoke(user);
                continue;
            }
            if let Some(frame) = frame_of(&event, &self.base_url) {
                self.deliver(event.user, event.mission, Arc::from(frame));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_user_and_mission_and_drops_slow_sockets() {
        let hub = EventHub::new("http://test");
        let mut alice = subscribe(&hub, 1, None);
        let mut alice_mission = subscribe(&hub, 1, Some(MissionId(7)));
        let mut bob = subscribe(&hub, 2, None);
        hub.deliver(UserId(1), Some(MissionId(7)), Arc::from("a"));
        hub.deliver(UserId(1), Some(MissionId(8)), Arc::from("b"));
        assert_eq!(alice.frames.try_recv().ok().as_deref(), Some("a"));
        assert_eq!(alice.frames.try_recv().ok().as_deref(), Some("b"));
        assert_eq!(alice_mission.frames.try_recv().ok().as_deref(), Some("a"));
        assert!(alice_mission.frames.try_recv().is_err());
        assert!(bob.frames.try_recv().is_err());
        for _ in 0..=SOCKET_QUEUE {
            hub.deliver(UserId(2), None, Arc::from("x"));
        }
        assert_eq!(hub.socket_count(), 2, "the slow socket is dropped");
        assert_eq!(bob.kicked.try_recv(), Ok(Kick::TooSlow));
        drop(alice);
        assert_eq!(hub.socket_count(), 1);
    }

    fn subscribe(hub: &Arc<EventHub>, user: i64, mission: Option<MissionId>) -> Subscription {
        hub.subscribe(UserId(user), mission, Instant::now())
            .expect("a free slot")
    }

    fn hub_with_cap(max_sockets_per_user: usize) -> Arc<EventHub> {
        EventHub::with_policy(
            "http://test",
            SocketPolicy {
                max_sockets_per_user,
                ..SocketPolicy::default()
            },
        )
    }

    #[test]
    fn sockets_per_user_are_capped_and_a_closed_one_frees_its_slot() {
        let hub = hub_with_cap(3);
        let mut held: Vec<Subscription> = (0..3).map(|_| subscribe(&hub, 1, None)).collect();
        assert_eq!(
            hub.subscribe(UserId(1), Some(MissionId(4)), Instant::now())
                .err(),
            Some(Refused::TooManySockets)
        );
        // Another user is not affected.
        let _bob = subscribe(&hub, 2, None);
        held.pop();
        held.push(subscribe(&hub, 1, None));
        assert_eq!(hub.sockets_of(UserId(1)), 3);
    }

    #[test]
    fn revoking_kicks_every_socket_of_the_user_and_refuses_racing_ones() {
        let hub = hub_with_cap(5);
        let checked_before = Instant::now();
        let mut alice = subscribe(&hub, 1, None);
        let mut alice_mission = subscribe(&hub, 1, Some(MissionId(3)));
        let mut bob = subscribe(&hub, 2, None);
        hub.publish(vec![Event::sessions_revoked(UserId(1))]);
        assert_eq!(alice.kicked.try_recv(), Ok(Kick::Revoked));
        assert_eq!(alice_mission.kicked.try_recv(), Ok(Kick::Revoked));
        assert!(bob.kicked.try_recv().is_err(), "bob keeps his socket");
        assert_eq!(hub.sockets_of(UserId(1)), 0);
        // Authenticated before the revocation: refused; after it: accepted.
        assert_eq!(
            hub.subscribe(UserId(1), None, checked_before).err(),
            Some(Refused::Revoked)
        );
        assert!(hub.subscribe(UserId(1), None, Instant::now()).is_ok());
    }

    #[test]
    fn shutdown_kicks_everyone() {
        let hub = hub_with_cap(5);
        let mut alice = subscribe(&hub, 1, None);
        hub.close_all();
        assert_eq!(alice.kicked.try_recv(), Ok(Kick::ShuttingDown));
        assert_eq!(hub.socket_count(), 0);
    }

    #[test]
    fn origins() {
        let policy = SocketPolicy::default();
        assert!(policy.allows_origin(None));
        assert!(policy.allows_origin(Some(b"http://localhost:3000")));
        assert!(!policy.allows_origin(Some(b"http://evil.example")));
        assert!(!policy.allows_origin(Some(b"http://localhost:3000.evil.example")));
        let any = SocketPolicy {
            allowed_origins: vec!["*".to_owned()],
            ..SocketPolicy::default()
        };
        assert!(any.allows_origin(Some(b"http://evil.example")));
    }
}
