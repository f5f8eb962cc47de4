//! Live events: what changed, for whom, published after the change commits.

use crate::activity_log::Activity;
use crate::document::Document;
use crate::ids::{ActivityId, DocumentId, MissionId};
use crate::mission::Mission;
use crate::user::UserId;

/// What an event carries.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    /// An activity was recorded (`activity.created`).
    ActivityCreated(Activity),
    /// A mission's fields, status or progress changed, or it was created (`mission.updated`).
    MissionUpdated(Mission),
    /// A document was uploaded, changed or verified (`document.updated`).
    DocumentUpdated(Document),
    /// The user was deactivated or deleted, or changed password: whatever
    /// was opened on their old credentials must end. Not a frame: live
    /// connections of the user are closed instead.
    SessionsRevoked(UserId),
}

impl EventPayload {
    /// The event name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            EventPayload::ActivityCreated(_) => "activity.created",
            EventPayload::MissionUpdated(_) => "mission.updated",
            EventPayload::DocumentUpdated(_) => "document.updated",
            EventPayload::SessionsRevoked(_) => "user.sessions_revoked",
        }
    }

    /// What to load to rebuild this event elsewhere (another process).
    pub fn reference(&self) -> EventRef {
        match self {
            EventPayload::ActivityCreated(activity) => EventRef::Activity(activity.id),
            EventPayload::MissionUpdated(mission) => EventRef::Mission(mission.id),
            EventPayload::DocumentUpdated(document) => EventRef::Document(document.id),
            EventPayload::SessionsRevoked(user) => EventRef::SessionsRevoked(*user),
        }
    }
}

/// An event and its audience.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The user whose sockets receive it.
    pub user: UserId,
    /// The mission it concerns, for mission sockets.
    pub mission: Option<MissionId>,
    /// The content.
    pub payload: EventPayload,
}

impl Event {
    /// The event that ends a user's live connections (deactivation,
    /// deletion, password change); publish it only after the change commits.
    pub fn sessions_revoked(user: UserId) -> Self {
        Self {
            user,
            mission: None,
            payload: EventPayload::SessionsRevoked(user),
        }
    }
}

/// A small reference to an event's subject, for transports with size limits
/// (PostgreSQL's `NOTIFY` payload is under 8000 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventRef {
    /// An activity by id.
    Activity(ActivityId),
    /// A mission by id.
    Mission(MissionId),
    /// A document by id.
    Document(DocumentId),
    /// The revocation of a user's live connections; carries everything
    /// itself (there is no row to load).
    SessionsRevoked(UserId),
}

impl EventRef {
    /// A compact text form, `a:12`, `m:3` or `r:7` (user 7's sessions revoked).
    pub fn encode(&self) -> String {
        match self {
            EventRef::Activity(id) => format!("a:{id}"),
            EventRef::Mission(id) => format!("m:{id}"),
            EventRef::Document(id) => format!("d:{id}"),
            EventRef::SessionsRevoked(user) => format!("r:{}", user.0),
        }
    }

    /// Parses [`EventRef::encode`]'s form.
    pub fn decode(text: &str) -> Option<Self> {
        let (kind, id) = text.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "a" => Some(EventRef::Activity(ActivityId(id))),
            "m" => Some(EventRef::Mission(MissionId(id))),
            "d" => Some(EventRef::Document(DocumentId(id))),
            "r" => Some(EventRef::SessionsRevoked(UserId(id))),
            _ => None,
        }
    }
}

/// Delivers events to live clients. Called only after a commit, never for a
/// rolled-back change; must not block (hand work off if it has to).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait EventPublisher: Send + Sync {
    /// Delivers events, in order.
    fn publish(&self, events: Vec<Event>);
}

/// A publisher that drops everything, for commands with no live clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardEvents;

impl EventPublisher for DiscardEvents {
    fn publish(&self, _events: Vec<Event>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip() {
        for reference in [
            EventRef::Activity(ActivityId(12)),
            EventRef::Mission(MissionId(3)),
            EventRef::Document(DocumentId(5)),
            EventRef::SessionsRevoked(UserId(9)),
        ] {
            assert_eq!(EventRef::decode(&reference.encode()), Some(reference));
        }
        for bad in ["", "a", "a:", "x:1", "a:one", "m:1:2"] {
            assert_eq!(EventRef::decode(bad), None, "{bad}");
        }
    }
}
