//! Records of the activity log, the audit trail every change writes to.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::activity::SystemActivity;
use crate::ids::{ActivityId, DocumentId, MissionId};
use crate::paging::PageRequest;
use crate::user::UserId;

/// One row of the append-only activity log.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Primary key.
    pub id: ActivityId,
    /// A system type such as `mission_created`, or a client's own type.
    pub kind: String,
    /// Human-readable summary.
    pub message: String,
    /// Free-form JSON object.
    pub details: Map<String, Value>,
    /// Whose activity it is.
    pub user: Option<UserId>,
    /// The mission it concerns.
    pub mission: Option<MissionId>,
    /// The document it concerns.
    pub document: Option<DocumentId>,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
}

/// An activity to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    /// Its type.
    pub kind: String,
    /// Its message.
    pub message: String,
    /// Its details object.
    pub details: Map<String, Value>,
    /// Whose activity it is.
    pub user: Option<UserId>,
    /// The mission it concerns.
    pub mission: Option<MissionId>,
    /// The document it concerns.
    pub document: Option<DocumentId>,
}

impl NewActivity {
    /// A system activity of `user` with the type's default message and no details.
    pub fn system(kind: SystemActivity, user: UserId) -> Self {
        Self {
            kind: kind.as_str().to_owned(),
            message: kind.message().to_owned(),
            details: Map::new(),
            user: Some(user),
            mission: None,
            document: None,
        }
    }

    /// Sets the mission it concerns.
    pub fn with_mission(mut self, mission: MissionId) -> Self {
        self.mission = Some(mission);
        self
    }

    /// Sets the document it concerns.
    pub fn with_document(mut self, document: DocumentId) -> Self {
        self.document = Some(document);
        self
    }

    /// Adds one entry to the details.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// The filters of the activity list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityQuery {
    /// Only this user's activities (`None`: everyone's, staff only).
    pub user: Option<UserId>,
    /// Only these types.
    pub kinds: Vec<String>,
    /// Only this mission's.
    pub mission: Option<MissionId>,
    /// Only this document's.
    pub document: Option<DocumentId>,
    /// At or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At or before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the message.
    pub search: Option<String>,
    /// Which page.
    pub page: PageRequest,
}
