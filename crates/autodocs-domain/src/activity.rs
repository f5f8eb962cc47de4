//! The activity log: an append-only audit trail of what happened.
//!
//! The server writes a [`SystemActivity`] in the same transaction as every
//! change it describes; clients may add their own entries with a
//! [`CustomActivityType`], which can never pass for a system one.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};

use crate::mission::MissionAction;
use crate::text::text_value;
use crate::validation::{InvalidValue, bounded_text};

/// An activity type the server records by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemActivity {
    /// `user_registered`.
    UserRegistered,
    /// `user_logged_in`.
    UserLoggedIn,
    /// `profile_updated`.
    ProfileUpdated,
    /// `password_changed`.
    PasswordChanged,
    /// `mission_created`.
    MissionCreated,
    /// `mission_updated`.
    MissionUpdated,
    /// `mission_deleted`.
    MissionDeleted,
    /// `mission_started`.
    MissionStarted,
    /// `mission_paused`.
    MissionPaused,
    /// `mission_resumed`.
    MissionResumed,
    /// `mission_completed`.
    MissionCompleted,
    /// `mission_cancelled`.
    MissionCancelled,
    /// `mission_failed`.
    MissionFailed,
    /// `mission_overdue`.
    MissionOverdue,
    /// `step_created`.
    StepCreated,
    /// `step_updated`.
    StepUpdated,
    /// `step_deleted`.
    StepDeleted,
    /// `document_uploaded`.
    DocumentUploaded,
    /// `document_updated`.
    DocumentUpdated,
    /// `document_verified`.
    DocumentVerified,
    /// `document_rejected`.
    DocumentRejected,
    /// `document_deleted`.
    DocumentDeleted,
}

impl SystemActivity {
    /// Every system activity type.
    pub const ALL: [SystemActivity; 22] = [
        SystemActivity::UserRegistered,
        SystemActivity::UserLoggedIn,
        SystemActivity::ProfileUpdated,
        SystemActivity::PasswordChanged,
        SystemActivity::MissionCreated,
        SystemActivity::MissionUpdated,
        SystemActivity::MissionDeleted,
        SystemActivity::MissionStarted,
        SystemActivity::MissionPaused,
        SystemActivity::MissionResumed,
        SystemActivity::MissionCompleted,
        SystemActivity::MissionCancelled,
        SystemActivity::MissionFailed,
        SystemActivity::MissionOverdue,
        SystemActivity::StepCreated,
        SystemActivity::StepUpdated,
        SystemActivity::StepDeleted,
        SystemActivity::DocumentUploaded,
        SystemActivity::DocumentUpdated,
        SystemActivity::DocumentVerified,
        SystemActivity::DocumentRejected,
        SystemActivity::DocumentDeleted,
    ];

    /// The wire name, e.g. `mission_created`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SystemActivity::UserRegistered => "user_registered",
            SystemActivity::UserLoggedIn => "user_logged_in",
            SystemActivity::ProfileUpdated => "profile_updated",
            SystemActivity::PasswordChanged => "password_changed",
            SystemActivity::MissionCreated => "mission_created",
            SystemActivity::MissionUpdated => "mission_updated",
            SystemActivity::MissionDeleted => "mission_deleted",
            SystemActivity::MissionStarted => "mission_started",
            SystemActivity::MissionPaused => "mission_paused",
            SystemActivity::MissionResumed => "mission_resumed",
            SystemActivity::MissionCompleted => "mission_completed",
            SystemActivity::MissionCancelled => "mission_cancelled",
            SystemActivity::MissionFailed => "mission_failed",
            SystemActivity::MissionOverdue => "mission_overdue",
            SystemActivity::StepCreated => "step_created",
            SystemActivity::StepUpdated => "step_updated",
            SystemActivity::StepDeleted => "step_deleted",
            SystemActivity::DocumentUploaded => "document_uploaded",
            SystemActivity::DocumentUpdated => "document_updated",
            SystemActivity::DocumentVerified => "document_verified",
            SystemActivity::DocumentRejected => "document_rejected",
            SystemActivity::DocumentDeleted => "document_deleted",
        }
    }

    /// The system type with this exact wire name, if it is one.
    pub fn from_name(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// The default message, e.g. `Mission created`: the wire name with its
    /// first letter capitalised and underscores as spaces.
    pub const fn message(self) -> &'static str {
        match self {
            SystemActivity::UserRegistered => "User registered",
            SystemActivity::UserLoggedIn => "User logged in",
            SystemActivity::ProfileUpdated => "Profile updated",
            SystemActivity::PasswordChanged => "Password changed",
            SystemActivity::MissionCreated => "Mission created",
            SystemActivity::MissionUpdated => "Mission updated",
            SystemActivity::MissionDeleted => "Mission deleted",
            SystemActivity::MissionStarted => "Mission started",
            SystemActivity::MissionPaused => "Mission paused",
            SystemActivity::MissionResumed => "Mission resumed",
            SystemActivity::MissionCompleted => "Mission completed",
            SystemActivity::MissionCancelled => "Mission cancelled",
            SystemActivity::MissionFailed => "Mission failed",
            SystemActivity::MissionOverdue => "Mission overdue",
            SystemActivity::StepCreated => "Step created",
            SystemActivity::StepUpdated => "Step updated",
            SystemActivity::StepDeleted => "Step deleted",
            SystemActivity::DocumentUploaded => "Document uploaded",
            SystemActivity::DocumentUpdated => "Document updated",
            SystemActivity::DocumentVerified => "Document verified",
            SystemActivity::DocumentRejected => "Document rejected",
            SystemActivity::DocumentDeleted => "Document deleted",
        }
    }

    /// The activity recorded when a mission action succeeds
    /// (`start` → `mission_started`, …, `fail` → `mission_failed`).
    pub const fn for_mission_action(action: MissionAction) -> Self {
        match action {
            MissionAction::Start => SystemActivity::MissionStarted,
            MissionAction::Pause => SystemActivity::MissionPaused,
            MissionAction::Resume => SystemActivity::MissionResumed,
            MissionAction::Complete => SystemActivity::MissionCompleted,
            MissionAction::Cancel => SystemActivity::MissionCancelled,
            MissionAction::Fail => SystemActivity::MissionFailed,
        }
    }
}

impl From<MissionAction> for SystemActivity {
    fn from(action: MissionAction) -> Self {
        Self::for_mission_action(action)
    }
}

impl fmt::Display for SystemActivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest activity type, in characters.
const MAX_TYPE_CHARS: usize = 50;

/// Whether `raw` matches `^[a-z][a-z0-9_]{0,49}$`.
fn matches_type_pattern(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_lowercase()
                && rest.len() < MAX_TYPE_CHARS
                && rest
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        }
        None => false,
    }
}

fn pattern_error() -> InvalidValue {
    InvalidValue::new(
        "Enter a valid activity type: a lowercase letter followed by at most 49 lowercase \
         letters, digits or underscores.",
    )
}

/// A client-chosen activity type: matches `^[a-z][a-z0-9_]{0,49}$` and is
/// not a [`SystemActivity`] name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct CustomActivityType(String);

impl CustomActivityType {
    /// Checks a client's type (surrounding whitespace trimmed).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue::blank());
        }
        if !matches_type_pattern(trimmed) {
            return Err(pattern_error());
        }
        if SystemActivity::from_name(trimmed).is_some() {
            return Err(InvalidValue::new(format!(
                "\"{trimmed}\" is a reserved system activity type."
            )));
        }
        Ok(Self(trimmed.to_owned()))
    }
}
text_value!(CustomActivityType);

/// The type of an activity: one of the server's or a client's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActivityType {
    /// Recorded by the server.
    System(SystemActivity),
    /// Posted by a client.
    Custom(CustomActivityType),
}

impl ActivityType {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            ActivityType::System(kind) => kind.as_str(),
            ActivityType::Custom(kind) => kind.as_str(),
        }
    }

    /// Whether the server records this type by itself.
    pub fn is_system(&self) -> bool {
        matches!(self, ActivityType::System(_))
    }

    /// The type of a client's `POST`: must be a [`CustomActivityType`].
    pub fn parse_custom(raw: &str) -> Result<Self, InvalidValue> {
        CustomActivityType::parse(raw).map(ActivityType::Custom)
    }

    /// A `?type=` filter value, or a type read back from storage: any string
    /// matching the pattern, system or not (whitespace trimmed).
    pub fn parse_filter(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue::blank());
        }
        if let Some(kind) = SystemActivity::from_name(trimmed) {
            return Ok(ActivityType::System(kind));
        }
        if !matches_type_pattern(trimmed) {
            return Err(pattern_error());
        }
        Ok(ActivityType::Custom(CustomActivityType(trimmed.to_owned())))
    }
}

impl From<SystemActivity> for ActivityType {
    fn from(kind: SystemActivity) -> Self {
        ActivityType::System(kind)
    }
}

impl From<CustomActivityType> for ActivityType {
    fn from(kind: CustomActivityType) -> Self {
        ActivityType::Custom(kind)
    }
}

impl fmt::Display for ActivityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ActivityType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ActivityType {
    /// Permissive, like [`ActivityType::parse_filter`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse_filter(&raw).map_err(serde::de::Error::custom)
    }
}

/// The text of an activity: 1–1000 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ActivityMessage(String);

impl ActivityMessage {
    /// The most characters a message may have.
    pub const MAX_CHARS: usize = 1000;

    /// Trims `raw` and checks it is non-blank and at most 1000 characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        bounded_text(raw, Self::MAX_CHARS).map(Self)
    }
}
text_value!(ActivityMessage);

impl From<SystemActivity> for ActivityMessage {
    /// The default message of a system activity, e.g. `Mission created`.
    fn from(kind: SystemActivity) -> Self {
        Self(kind.message().to_owned())
    }
}

/// The `details` of an activity: a JSON object.
///
/// From a client ([`parse`](Self::parse)) it must serialise to at most
/// 16 KiB. The server builds its own with [`empty`](Self::empty) and
/// [`insert`](Self::insert), which do not check the size.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ActivityDetails(Map<String, Value>);

impl ActivityDetails {
    /// The most bytes a client's details may take, serialised as compact JSON.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Checks a client's value: a JSON object of at most 16 384 bytes once serialised.
    pub fn parse(value: Value) -> Result<Self, InvalidValue> {
        let Value::Object(map) = value else {
            return Err(InvalidValue::new("Details must be a JSON object."));
        };
        let mut counter = ByteCounter {
            count: 0,
            limit: Self::MAX_BYTES,
        };
        if serde_json::to_writer(&mut counter, &map).is_err() || counter.count > Self::MAX_BYTES {
            return Err(InvalidValue::new(format!(
                "Details must be at most {} bytes when serialised.",
                Self::MAX_BYTES
            )));
        }
        Ok(Self(map))
    }

    /// `{}`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key; for details built by the server.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The object as a JSON value.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The object as a JSON value, owned.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ActivityDetails {
    /// Validating, like [`ActivityDetails::parse`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::parse(value).map_err(serde::de::Error::custom)
    }
}

/// Counts serialised bytes, and stops the serialiser once past the limit.
struct ByteCounter {
    count: usize,
    limit: usize,
}

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.count = self.count.saturating_add(buf.len());
        if self.count > self.limit {
            Err(std::io::Error::other("too large"))
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn system_types() {
        let names = [
            "user_registered",
            "user_logged_in",
            "profile_updated",
            "password_changed",
            "mission_created",
            "mission_updated",
            "mission_deleted",
            "mission_started",
            "mission_paused",
            "mission_resumed",
            "mission_completed",
            "mission_cancelled",
            "mission_failed",
            "mission_overdue",
            "step_created",
            "step_updated",
            "step_deleted",
            "document_uploaded",
            "document_updated",
            "document_verified",
            "document_rejected",
            "document_deleted",
        ];
        for (kind, name) in SystemActivity::ALL.into_iter().zip(names) {
            assert_eq!(kind.as_str(), name);
            assert!(matches_type_pattern(name));
            assert_eq!(SystemActivity::from_name(name), Some(kind));
            assert_eq!(serde_json::to_value(kind).expect("serialise"), json!(name));
            // The message is the name in words.
            let words = name.replace('_', " ");
            let mut chars = words.chars();
            let expected: String = chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect();
            assert_eq!(kind.message(), expected);
            assert_eq!(
                ActivityType::parse_filter(name),
                Ok(ActivityType::System(kind))
            );
        }
        assert_eq!(SystemActivity::MissionCreated.message(), "Mission created");
        assert_eq!(SystemActivity::from_name("Mission_created"), None);
        assert_eq!(
            ActivityMessage::from(SystemActivity::MissionStarted).as_str(),
            "Mission started"
        );
    }

    #[test]
    fn mission_actions_map_to_activities() {
        let expected = [
            (MissionAction::Start, "mission_started"),
            (MissionAction::Pause, "mission_paused"),
            (MissionAction::Resume, "mission_resumed"),
            (MissionAction::Complete, "mission_completed"),
            (MissionAction::Cancel, "mission_cancelled"),
            (MissionAction::Fail, "mission_failed"),
        ];
        for (action, name) in expected {
            assert_eq!(SystemActivity::from(action).as_str(), name);
        }
    }

    #[test]
    fn custom_types() {
        for ok in [
            "a",
            "note",
            "called_bank2",
            "x_",
            &format!("a{}", "b".repeat(49)),
        ] {
            let kind = CustomActivityType::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(kind.as_str(), ok);
            assert_eq!(
                ActivityType::parse_custom(ok).map(|k| k.is_system()),
                Ok(false)
            );
        }
        assert_eq!(
            CustomActivityType::parse(" note ").map(CustomActivityType::into_inner),
            Ok("note".to_owned())
        );
        for bad in [
            "Note",
            "1note",
            "_note",
            "note-taken",
            "note taken",
            "notë",
            "a\nb",
            "a\0",
            "note.x",
            &format!("a{}", "b".repeat(50)),
        ] {
            assert_eq!(
                CustomActivityType::parse(bad),
                Err(pattern_error()),
                "{bad:?}"
            );
            assert!(ActivityType::parse_filter(bad).is_err(), "{bad:?}");
        }
        assert_eq!(CustomActivityType::parse("  "), Err(InvalidValue::blank()));
        assert_eq!(
            CustomActivityType::parse("mission_created"),
            Err(InvalidValue::new(
                "\"mission_created\" is a reserved system activity type."
            ))
        );
        for kind in SystemActivity::ALL {
            assert!(CustomActivityType::parse(kind.as_str()).is_err());
        }
        assert!(serde_json::from_value::<CustomActivityType>(json!("user_logged_in")).is_err());
    }

    #[test]
    fn activity_type_filter_and_serde() {
        let custom = ActivityType::parse_filter("called_bank").expect("valid");
        assert_eq!(custom.as_str(), "called_bank");
        assert!(!custom.is_system());
        let system = ActivityType::parse_filter("mission_paused").expect("valid");
        assert_eq!(system, ActivityType::System(SystemActivity::MissionPaused));
        assert!(system.is_system());
        assert_eq!(
            serde_json::to_value(&system).expect("serialise"),
            json!("mission_paused")
        );
        let back: ActivityType = serde_json::from_value(json!("called_bank")).expect("deserialise");
        assert_eq!(back, custom);
        assert!(serde_json::from_value::<ActivityType>(json!("Bad Type")).is_err());
        assert_eq!(
            ActivityType::from(SystemActivity::StepDeleted).to_string(),
            "step_deleted"
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            ActivityMessage::parse(" hi ").expect("valid").as_str(),
            "hi"
        );
        assert_eq!(ActivityMessage::parse(""), Err(InvalidValue::blank()));
        assert!(ActivityMessage::parse(&"m".repeat(1000)).is_ok());
        assert_eq!(
            ActivityMessage::parse(&"m".repeat(1001)),
            Err(InvalidValue::too_long(1000))
        );
    }

    #[test]
    fn details() {
        let not_object = Err(InvalidValue::new("Details must be a JSON object."));
        let too_big = Err(InvalidValue::new(
            "Details must be at most 16384 bytes when serialised.",
        ));
        for bad in [
            json!(null),
            json!([]),
            json!("x"),
            json!(1),
            json!(true),
            json!([{"a": 1}]),
        ] {
            assert_eq!(ActivityDetails::parse(bad), not_object);
        }
        let ok = ActivityDetails::parse(json!({"a": [1, 2], "b": {"c": null}})).expect("valid");
        assert_eq!(ok.to_json(), json!({"a": [1, 2], "b": {"c": null}}));
        assert!(ActivityDetails::parse(json!({})).expect("valid").is_empty());

        // {"k":"<n x's>"} is n + 8 bytes.
        let exact = json!({"k": "x".repeat(ActivityDetails::MAX_BYTES - 8)});
        assert_eq!(serde_json::to_vec(&exact).expect("serialise").len(), 16_384);
        assert!(ActivityDetails::parse(exact).is_ok());
        let over = json!({"k": "x".repeat(ActivityDetails::MAX_BYTES - 7)});
        assert_eq!(ActivityDetails::parse(over), too_big);
        let huge = json!({"k": "x".repeat(10 * 1024 * 1024)});
        assert_eq!(ActivityDetails::parse(huge), too_big);
        // Escapes count as serialised: 3000 newlines are 6000 bytes each way... ×3.
        let escaped =
            json!({"a": "\n".repeat(3000), "b": "\n".repeat(3000), "c": "\n".repeat(3000)});
        assert_eq!(ActivityDetails::parse(escaped), too_big);

        let mut server = ActivityDetails::empty();
        server.insert("error", "timeout").insert("attempt", 3);
        assert_eq!(
            server.into_value(),
            json!({"error": "timeout", "attempt": 3})
        );
        assert!(serde_json::from_value::<ActivityDetails>(json!([1])).is_err());
        assert_eq!(
            serde_json::to_value(ActivityDetails::parse(json!({"x": 1})).expect("valid"))
                .expect("serialise"),
            json!({"x": 1})
        );
    }
}
