//! Missions: their lifecycle state machine and the values they are made of.
//!
//! A mission is a job such as "Retrieve Tax Documents". Its `status` changes
//! only through [`MissionAction`]s, applied with [`MissionStatus::apply`];
//! every other field is a value type whose `parse` is its only constructor, so
//! a value that exists is a valid one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::ids::MissionId;
use crate::text::text_value;
use crate::validation::{InvalidValue, bounded_text, optional_text};

pub use crate::transition::InvalidTransition;

/// Where a mission is in its lifecycle.
///
/// Serialised as its wire name (`"in_progress"`); displayed in human words
/// (`"in progress"`).
///
/// Transitions are methods that answer with a `Result`, so a refused one
/// cannot be applied by mistake:
///
/// ```
/// use autodocs_domain::mission::{MissionAction, MissionStatus};
///
/// let running = MissionStatus::Pending.apply(MissionAction::Start)?;
/// assert_eq!(running, MissionStatus::InProgress);
/// assert_eq!(running.apply(MissionAction::Pause)?, MissionStatus::Paused);
/// let refused = MissionStatus::Completed.apply(MissionAction::Pause);
/// assert!(refused.is_err());
/// assert_eq!(MissionStatus::parse("in_progress")?, MissionStatus::InProgress);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MissionStatus {
    /// Created, not started yet. The status of every new mission.
    #[default]
    Pending,
    /// Running: its automated steps are executed by the workers.
    InProgress,
    /// Stopped by the user; no new step starts until it is resumed.
    Paused,
    /// Done; its open steps were skipped and its progress is 100.
    Completed,
    /// A step failed after its retries; the mission may be started again.
    Failed,
    /// Abandoned by the user.
    Cancelled,
}

impl MissionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [MissionStatus; 6] = [
        MissionStatus::Pending,
        MissionStatus::InProgress,
        MissionStatus::Paused,
        MissionStatus::Completed,
        MissionStatus::Failed,
        MissionStatus::Cancelled,
    ];

    /// The wire name: `pending`, `in_progress`, `paused`, `completed`,
    /// `failed` or `cancelled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MissionStatus::Pending => "pending",
            MissionStatus::InProgress => "in_progress",
            MissionStatus::Paused => "paused",
            MissionStatus::Completed => "completed",
            MissionStatus::Failed => "failed",
            MissionStatus::Cancelled => "cancelled",
        }
    }

    /// The status with this exact wire name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| InvalidValue::invalid_choice(raw))
    }

    /// The status an `action` leads to from this one.
    ///
    /// The rules (API.md, "Missions"):
    ///
    /// | action     | from                                | to            |
    /// |------------|-------------------------------------|---------------|
    /// | `start`    | `pending`, `failed`                 | `in_progress` |
    /// | `pause`    | `in_progress`                       | `paused`      |
    /// | `resume`   | `paused`                            | `in_progress` |
    /// | `complete` | `in_progress`, `paused`             | `completed`   |
    /// | `cancel`   | `pending`, `in_progress`, `paused`  | `cancelled`   |
    /// | `fail`     | `in_progress`, `paused`             | `failed`      |
    ///
    /// Anything else is an [`InvalidTransition`], e.g.
    /// `Cannot pause a mission that is pending.`
    pub fn apply(self, action: MissionAction) -> Result<MissionStatus, InvalidTransition> {
        if action.allowed_from().contains(&self) {
            Ok(action.target())
        } else {
            Err(InvalidTransition::new(
                "mission",
                action.as_str(),
                self.as_str(),
            ))
        }
    }

    /// The statuses from which `action` is legal; see [`MissionAction::allowed_from`].
    pub fn allowed_from(action: MissionAction) -> &'static [MissionStatus] {
        action.allowed_from()
    }

    /// Whether a mission in this status may be deleted: every status but
    /// `in_progress` (deleting a running mission is a 409).
    pub const fn can_delete(self) -> bool {
        !matches!(self, MissionStatus::InProgress)
    }

    /// Whether no action leads out of this status: `completed` and `cancelled`.
    ///
    /// `failed` is not terminal: a failed mission may be started again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, MissionStatus::Completed | MissionStatus::Cancelled)
    }

    /// Whether the mission is still to be finished: `pending`, `in_progress`
    /// or `paused` (the statuses in which it can become overdue).
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            MissionStatus::Pending | MissionStatus::InProgress | MissionStatus::Paused
        )
    }
}

impl fmt::Display for MissionStatus {
    /// Human words: `pending`, `in progress`, `paused`, `completed`, `failed`,
    /// `cancelled`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MissionStatus::InProgress => "in progress",
            other => other.as_str(),
        })
    }
}

impl FromStr for MissionStatus {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// Whether a mission with this status and deadline is overdue at `now`:
/// it has a deadline in the past and is still open ([`MissionStatus::is_open`]).
pub fn is_overdue(
    status: MissionStatus,
    deadline: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    status.is_open() && deadline.is_some_and(|deadline| deadline < now)
}

/// Something done to a mission that changes its status.
///
/// Every action but `fail` has an endpoint (`POST /api/missions/{id}/<action>/`);
/// `fail` is used by the job engine when a step fails after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionAction {
    /// `pending` or `failed` → `in_progress`; sets `started_at`.
    Start,
    /// `in_progress` → `paused`.
    Pause,
    /// `paused` → `in_progress`.
    Resume,
    /// `in_progress` or `paused` → `completed`; open steps become `skipped`,
    /// progress 100, sets `completed_at`.
    Complete,
    /// `pending`, `in_progress` or `paused` → `cancelled`.
    Cancel,
    /// `in_progress` or `paused` → `failed` (job engine only).
    Fail,
}

impl MissionAction {
    /// Every action.
    pub const ALL: [MissionAction; 6] = [
        MissionAction::Start,
        MissionAction::Pause,
        MissionAction::Resume,
        MissionAction::Complete,
        MissionAction::Cancel,
        MissionAction::Fail,
    ];

    /// The verb: `start`, `pause`, `resume`, `complete`, `cancel`, `fail`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MissionAction::Start => "start",
            MissionAction::Pause => "pause",
            MissionAction::Resume => "resume",
            MissionAction::Complete => "complete",
            MissionAction::Cancel => "cancel",
            MissionAction::Fail => "fail",
        }
    }

    /// The action with this exact verb.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == raw)
            .ok_or_else(|| InvalidValue::invalid_choice(raw))
    }

    /// The statuses from which this action is legal.
    ///
    /// Meant for an atomic compare-and-set:
    /// `UPDATE missions SET status = <target> WHERE id = ? AND status IN (<allowed_from>)`,
    /// so that of two clients racing on the same mission only one wins.
    pub const fn allowed_from(self) -> &'static [MissionStatus] {
        use MissionStatus::*;
        match self {
            MissionAction::Start => &[Pending, Failed],
            MissionAction::Pause => &[InProgress],
            MissionAction::Resume => &[Paused],
            MissionAction::Complete => &[InProgress, Paused],
            MissionAction::Cancel => &[Pending, InProgress, Paused],
            MissionAction::Fail => &[InProgress, Paused],
        }
    }

    /// The status this action leads to when it is legal.
    pub const fn target(self) -> MissionStatus {
        match self {
            MissionAction::Start | MissionAction::Resume => MissionStatus::InProgress,
            MissionAction::Pause => MissionStatus::Paused,
            MissionAction::Complete => MissionStatus::Completed,
            MissionAction::Cancel => MissionStatus::Cancelled,
            MissionAction::Fail => MissionStatus::Failed,
        }
    }
}

impl fmt::Display for MissionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MissionAction {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// The title of a mission or of a plan step: 1–200 characters after trimming.
///
/// ```
/// use autodocs_domain::mission::Title;
///
/// assert_eq!(Title::parse("  Retrieve Tax Documents ")?.as_str(), "Retrieve Tax Documents");
/// assert!(Title::parse("   ").is_err());
/// assert!(Title::parse(&"x".repeat(201)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Title(String);

impl Title {
    /// The most characters a title may have.
    pub const MAX_CHARS: usize = 200;

    /// Trims `raw` and checks it is non-blank and at most 200 characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        bounded_text(raw, Self::MAX_CHARS).map(Self)
    }
}
text_value!(Title);

/// A free-text description: at most 10 000 characters after trimming; empty allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Description(String);

impl Description {
    /// The most characters a description may have.
    pub const MAX_CHARS: usize = 10_000;

    /// Trims `raw` and checks it is at most 10 000 characters (and has no NUL).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        optional_text(raw, Self::MAX_CHARS).map(Self)
    }

    /// Whether the description is empty (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
text_value!(Description);

/// How urgent a mission is. Ordered by urgency: `Low < Medium < High < Urgent`.
///
/// ```
/// use autodocs_domain::mission::Priority;
///
/// assert_eq!(Priority::default(), Priority::Medium);
/// assert_eq!(Priority::parse("urgent")?, Priority::Urgent);
/// assert!(Priority::parse("URGENT").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// `low`, rank 0.
    Low,
    /// `medium`, rank 1; the default.
    #[default]
    Medium,
    /// `high`, rank 2.
    High,
    /// `urgent`, rank 3.
    Urgent,
}

impl Priority {
    /// Every priority, least urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    /// The wire name: `low`, `medium`, `high` or `urgent`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// The priority with this exact wire name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str() == raw)
            .ok_or_else(|| InvalidValue::invalid_choice(raw))
    }

    /// Urgency as a number, 0 (`low`) to 3 (`urgent`): store this so that
    /// ordering by priority in SQL orders by urgency, not by the alphabet.
    pub const fn rank(self) -> i16 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }

    /// The priority of a [`rank`](Self::rank), if it is one of 0..=3.
    pub const fn from_rank(rank: i16) -> Option<Self> {
        match rank {
            0 => Some(Priority::Low),
            1 => Some(Priority::Medium),
            2 => Some(Priority::High),
            3 => Some(Priority::Urgent),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// What kind of job a mission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionType {
    /// `document_retrieval`.
    DocumentRetrieval,
    /// `document_verification`.
    DocumentVerification,
    /// `form_submission`.
    FormSubmission,
    /// `data_extraction`.
    DataExtraction,
    /// `custom`.
    Custom,
}

impl MissionType {
    /// Every mission type.
    pub const ALL: [MissionType; 5] = [
        MissionType::DocumentRetrieval,
        MissionType::DocumentVerification,
        MissionType::FormSubmission,
        MissionType::DataExtraction,
        MissionType::Custom,
    ];

    /// The wire name, e.g. `document_retrieval`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MissionType::DocumentRetrieval => "document_retrieval",
            MissionType::DocumentVerification => "document_verification",
            MissionType::FormSubmission => "form_submission",
            MissionType::DataExtraction => "data_extraction",
            MissionType::Custom => "custom",
        }
    }

    /// The mission type with this exact wire name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| InvalidValue::invalid_choice(raw))
    }
}

impl fmt::Display for MissionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MissionType {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// A percentage of done work, 0 to 100.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(into = "u8", try_from = "i64")]
pub struct Progress(u8);

impl Progress {
    /// 0 %.
    pub const ZERO: Progress = Progress(0);
    /// 100 %: the progress of every completed mission.
    pub const COMPLETE: Progress = Progress(100);

    /// Checks that `value` is within 0..=100 (e.g. a value read back from the database).
    pub fn parse(value: i64) -> Result<Self, InvalidValue> {
        if value < 0 {
            Err(InvalidValue::at_least(0))
        } else if value > 100 {
            Err(InvalidValue::at_most(100))
        } else {
            // In 0..=100, so the conversion is lossless.
            Ok(Self(value as u8))
        }
    }

    /// The share of `done` out of `total`, rounded down: `floor(done * 100 / total)`;
    /// 0 when `total` is 0, and at most 100 even if `done > total`.
    ///
    /// ```
    /// use autodocs_domain::mission::Progress;
    ///
    /// assert_eq!(Progress::from_leaves(1, 3), Progress::parse(33)?);
    /// assert_eq!(Progress::from_leaves(0, 0), Progress::ZERO);
    /// assert_eq!(Progress::from_leaves(5, 4), Progress::COMPLETE);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_leaves(done: usize, total: usize) -> Self {
        if total == 0 {
            return Self::ZERO;
        }
        let done = done.min(total) as u128;
        let percent = done * 100 / total as u128;
        // done <= total, so percent <= 100.
        Self(percent as u8)
    }

    /// The percentage, 0..=100.
    pub const fn value(self) -> u8 {
        self.0
    }
}

impl From<Progress> for u8 {
    fn from(progress: Progress) -> u8 {
        progress.0
    }
}

impl TryFrom<i64> for Progress {
    type Error = InvalidValue;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A field missions can be listed by (`?ordering=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionSortKey {
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `priority`, by urgency ([`Priority::rank`]), not by the alphabet.
    Priority,
    /// `progress`.
    Progress,
    /// `title`.
    Title,
    /// `deadline`.
    Deadline,
}

impl MissionSortKey {
    /// Every sortable field.
    pub const ALL: [MissionSortKey; 6] = [
        MissionSortKey::CreatedAt,
        MissionSortKey::UpdatedAt,
        MissionSortKey::Priority,
        MissionSortKey::Progress,
        MissionSortKey::Title,
        MissionSortKey::Deadline,
    ];

    /// The field name as written in `?ordering=`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MissionSortKey::CreatedAt => "created_at",
            MissionSortKey::UpdatedAt => "updated_at",
            MissionSortKey::Priority => "priority",
            MissionSortKey::Progress => "progress",
            MissionSortKey::Title => "title",
            MissionSortKey::Deadline => "deadline",
        }
    }
}

/// One item of a mission list's `?ordering=`, e.g. `-priority`.
pub type MissionOrderField = crate::paging::OrderField<MissionSortKey>;

impl MissionOrderField {
    /// The default ordering of mission lists: `-created_at`, newest first.
    pub const DEFAULT: MissionOrderField = MissionOrderField {
        field: MissionSortKey::CreatedAt,
        descending: true,
    };
}

impl crate::paging::SortKey for MissionSortKey {
    const KEYS: &'static [Self] = &MissionSortKey::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MissionAction as A;
    use MissionStatus as S;

    /// The expected result of every action from every status, written out
    /// independently of the implementation.
    fn expected(from: MissionStatus, action: MissionAction) -> Option<MissionStatus> {
        match (from, action) {
            (S::Pending, A::Start) => Some(S::InProgress),
            (S::Failed, A::Start) => Some(S::InProgress),
            (S::InProgress, A::Pause) => Some(S::Paused),
            (S::Paused, A::Resume) => Some(S::InProgress),
            (S::InProgress, A::Complete) => Some(S::Completed),
            (S::Paused, A::Complete) => Some(S::Completed),
            (S::Pending, A::Cancel) => Some(S::Cancelled),
            (S::InProgress, A::Cancel) => Some(S::Cancelled),
            (S::Paused, A::Cancel) => Some(S::Cancelled),
            (S::InProgress, A::Fail) => Some(S::Failed),
            (S::Paused, A::Fail) => Some(S::Failed),
            _ => None,
        }
    }

    #[test]
    fn every_status_times_every_action() {
        let mut legal = 0;
        for from in S::ALL {
            for action in A::ALL {
                let got = from.apply(action);
                match expected(from, action) {
                    Some(to) => {
                        legal += 1;
                        assert_eq!(got, Ok(to), "{from:?} {action:?}");
                        assert!(S::allowed_from(action).contains(&from));
                    }
                    None => {
                        let error = got.expect_err("transition should be refused");
                        assert_eq!(error.entity, "mission");
                        assert_eq!(error.action, action.as_str());
                        assert_eq!(error.from, from.as_str());
                        assert!(!S::allowed_from(action).contains(&from));
                    }
                }
            }
        }
        assert_eq!(legal, 11);
    }

    #[test]
    fn transition_messages() {
        let error = S::Pending.apply(A::Pause).expect_err("refused");
        assert_eq!(error.to_string(), "Cannot pause a mission that is pending.");
        let error = S::InProgress.apply(A::Start).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "Cannot start a mission that is in_progress."
        );
        let error = S::Completed.apply(A::Cancel).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "Cannot cancel a mission that is completed."
        );
        assert_eq!(InvalidTransition::CODE, "invalid_transition");
    }

    #[test]
    fn delete_terminal_open() {
        for status in S::ALL {
            assert_eq!(status.can_delete(), status != S::InProgress);
            assert_eq!(
                status.is_terminal(),
                matches!(status, S::Completed | S::Cancelled)
            );
            // A terminal status has no way out.
            if status.is_terminal() {
                assert!(A::ALL.into_iter().all(|a| status.apply(a).is_err()));
            }
        }
        assert!(S::Paused.is_open());
        assert!(!S::Failed.is_open());
    }

    #[test]
    fn overdue() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let past = now - chrono::Duration::seconds(1);
        let future = now + chrono::Duration::seconds(1);
        assert!(is_overdue(S::InProgress, Some(past), now));
        assert!(is_overdue(S::Pending, Some(past), now));
        assert!(!is_overdue(S::InProgress, Some(future), now));
        assert!(!is_overdue(S::InProgress, Some(now), now));
        assert!(!is_overdue(S::InProgress, None, now));
        assert!(!is_overdue(S::Completed, Some(past), now));
        assert!(!is_overdue(S::Cancelled, Some(past), now));
    }

    #[test]
    fn status_wire_names() {
        let names = [
            "pending",
            "in_progress",
            "paused",
            "completed",
            "failed",
            "cancelled",
        ];
        for (status, name) in S::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(S::parse(name), Ok(status));
            assert_eq!(name.parse::<S>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serialise"),
                serde_json::json!(name)
            );
            assert_eq!(
                serde_json::from_value::<S>(serde_json::json!(name)).expect("deserialise"),
                status
            );
        }
        for bad in [
            "",
            "Pending",
            "in progress",
            "IN_PROGRESS",
            " pending",
            "done",
        ] {
            assert_eq!(S::parse(bad), Err(InvalidValue::invalid_choice(bad)));
        }
        assert_eq!(S::InProgress.to_string(), "in progress");
        assert_eq!(S::Cancelled.to_string(), "cancelled");
        assert_eq!(S::default(), S::Pending);
    }

    #[test]
    fn action_wire_names() {
        let names = ["start", "pause", "resume", "complete", "cancel", "fail"];
        for (action, name) in A::ALL.into_iter().zip(names) {
            assert_eq!(action.as_str(), name);
            assert_eq!(A::parse(name), Ok(action));
            assert_eq!(action.to_string(), name);
        }
        assert!(A::parse("stop").is_err());
    }

    #[test]
    fn titles_and_descriptions() {
        assert_eq!(Title::parse("  Tax  ").expect("valid").as_str(), "Tax");
        assert_eq!(Title::parse("   "), Err(InvalidValue::blank()));
        assert_eq!(Title::parse(""), Err(InvalidValue::blank()));
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            Title::parse(&"é".repeat(201)),
            Err(InvalidValue::too_long(200))
        );
        assert!(Title::parse("a\0b").is_err());
        let title: Title = serde_json::from_value(serde_json::json!(" x ")).expect("valid");
        assert_eq!(title.as_str(), "x");
        assert!(serde_json::from_value::<Title>(serde_json::json!("")).is_err());
        assert_eq!(
            serde_json::to_value(&title).expect("serialise"),
            serde_json::json!("x")
        );

        assert!(Description::parse("").expect("valid").is_empty());
        assert!(Description::parse("  ").expect("valid").is_empty());
        assert!(Description::parse(&"a".repeat(10_000)).is_ok());
        assert_eq!(
            Description::parse(&"a".repeat(10_001)),
            Err(InvalidValue::too_long(10_000))
        );
    }

    #[test]
    fn priorities() {
        for (rank, priority) in Priority::ALL.into_iter().enumerate() {
            assert_eq!(priority.rank(), rank as i16);
            assert_eq!(Priority::from_rank(rank as i16), Some(priority));
            assert_eq!(Priority::parse(priority.as_str()), Ok(priority));
        }
        assert_eq!(Priority::from_rank(4), None);
        assert_eq!(Priority::from_rank(-1), None);
        assert!(Priority::Urgent > Priority::High);
        assert!(Priority::Low < Priority::Medium);
        assert_eq!(Priority::default(), Priority::Medium);
        assert!(Priority::parse("critical").is_err());
        assert!(Priority::parse("High").is_err());
    }

    #[test]
    fn mission_types() {
        let names = [
            "document_retrieval",
            "document_verification",
            "form_submission",
            "data_extraction",
            "custom",
        ];
        for (kind, name) in MissionType::ALL.into_iter().zip(names) {
            assert_eq!(kind.as_str(), name);
            assert_eq!(MissionType::parse(name), Ok(kind));
        }
        assert!(MissionType::parse("retrieval").is_err());
    }

    #[test]
    fn progress_rounding() {
        assert_eq!(Progress::from_leaves(1, 3).value(), 33);
        assert_eq!(Progress::from_leaves(2, 3).value(), 66);
        assert_eq!(Progress::from_leaves(3, 3).value(), 100);
        assert_eq!(Progress::from_leaves(0, 0).value(), 0);
        assert_eq!(Progress::from_leaves(0, 5).value(), 0);
        assert_eq!(Progress::from_leaves(199, 200).value(), 99);
        assert_eq!(Progress::from_leaves(7, 3).value(), 100);
        assert_eq!(
            Progress::from_leaves(usize::MAX - 1, usize::MAX).value(),
            99
        );
        assert_eq!(Progress::parse(100), Ok(Progress::COMPLETE));
        assert_eq!(Progress::parse(0), Ok(Progress::ZERO));
        assert!(Progress::parse(101).is_err());
        assert!(Progress::parse(-1).is_err());
        assert_eq!(
            serde_json::to_value(Progress::from_leaves(1, 2)).expect("serialise"),
            serde_json::json!(50)
        );
        assert!(serde_json::from_value::<Progress>(serde_json::json!(101)).is_err());
    }

    #[test]
    fn ordering() {
        assert_eq!(
            MissionOrderField::parse("priority"),
            Ok(MissionOrderField {
                field: MissionSortKey::Priority,
                descending: false
            })
        );
        assert_eq!(
            MissionOrderField::parse("-deadline"),
            Ok(MissionOrderField {
                field: MissionSortKey::Deadline,
                descending: true
            })
        );
        for key in MissionSortKey::ALL {
            let item = MissionOrderField::parse(&format!("-{}", key.as_str())).expect("valid");
            assert_eq!(item.field, key);
            assert_eq!(item.to_string(), format!("-{}", key.as_str()));
        }
        for bad in [
            "owner",
            "--title",
            "+title",
            "-",
            "title;drop",
            "Title",
            "status",
        ] {
            assert!(MissionOrderField::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            MissionOrderField::parse("id"),
            Err(InvalidValue::invalid_choice("id"))
        );
        assert_eq!(
            MissionOrderField::parse_list("-priority, title,,"),
            Ok(vec![
                MissionOrderField {
                    field: MissionSortKey::Priority,
                    descending: true
                },
                MissionOrderField {
                    field: MissionSortKey::Title,
                    descending: false
                },
            ])
        );
        assert_eq!(MissionOrderField::parse_list(""), Ok(vec![]));
        assert!(MissionOrderField::parse_list("title,nope").is_err());
        assert_eq!(MissionOrderField::DEFAULT.to_string(), "-created_at");
    }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// A mission as stored, with the counts its list and detail views show.
#[derive(Debug, Clone, PartialEq)]
pub struct Mission {
    /// Primary key.
    pub id: MissionId,
    /// Title.
    pub title: Title,
    /// Description, possibly empty.
    pub description: Description,
    /// Kind of mission.
    pub kind: MissionType,
    /// Lifecycle status.
    pub status: MissionStatus,
    /// Urgency.
    pub priority: Priority,
    /// Share of done leaf steps.
    pub progress: Progress,
    /// Its owner.
    pub owner: crate::user::UserId,
    /// Optional deadline.
    pub deadline: Option<DateTime<Utc>>,
    /// When it was last started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// How many plan steps it has, at every level.
    pub steps_total: u64,
    /// How many of them are `completed`.
    pub steps_completed: u64,
    /// How many documents are attached to it.
    pub document_count: u64,
}

/// A mission to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMission {
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Kind.
    pub kind: MissionType,
    /// Urgency.
    pub priority: Priority,
    /// Optional deadline.
    pub deadline: Option<DateTime<Utc>>,
}

/// Changes to a mission's editable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MissionChanges {
    /// New title.
    pub title: Option<Title>,
    /// New description.
    pub description: Option<Description>,
    /// New kind.
    pub kind: Option<MissionType>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New deadline (`Some(None)` clears it).
    pub deadline: Option<Option<DateTime<Utc>>>,
}

impl MissionChanges {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The names of the fields that change, for the activity's details.
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.title.is_some() {
            fields.push("title");
        }
        if self.description.is_some() {
            fields.push("description");
        }
        if self.kind.is_some() {
            fields.push("type");
        }
        if self.priority.is_some() {
            fields.push("priority");
        }
        if self.deadline.is_some() {
            fields.push("deadline");
        }
        fields
    }
}

/// A status change to apply conditionally, with the timestamps it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissionTransition {
    /// The new status.
    pub to: MissionStatus,
    /// Sets `started_at` when given.
    pub started_at: Option<DateTime<Utc>>,
    /// Sets `completed_at` when given.
    pub completed_at: Option<DateTime<Utc>>,
    /// Sets `progress` when given.
    pub progress: Option<Progress>,
}

impl MissionTransition {
    /// The change an action makes at `now`.
    pub fn for_action(action: MissionAction, to: MissionStatus, now: DateTime<Utc>) -> Self {
        Self {
            to,
            started_at: (action == MissionAction::Start).then_some(now),
            completed_at: (action == MissionAction::Complete).then_some(now),
            progress: (action == MissionAction::Complete).then_some(Progress::COMPLETE),
        }
    }
}

/// The filters and ordering of a mission list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MissionQuery {
    /// Only this owner's missions (`None`: everyone's, staff only).
    pub owner: Option<crate::user::UserId>,
    /// Any of these statuses (empty: all).
    pub statuses: Vec<MissionStatus>,
    /// Any of these types.
    pub kinds: Vec<MissionType>,
    /// Any of these priorities.
    pub priorities: Vec<Priority>,
    /// Case-insensitive substring of title or description.
    pub search: Option<String>,
    /// Sort keys, first one first (empty: `-created_at`).
    pub ordering: Vec<MissionOrderField>,
    /// Which page.
    pub page: crate::paging::PageRequest,
}
