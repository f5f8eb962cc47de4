//! The tables of the in-memory database and the rules the SQL schema
//! enforces on them (unique keys, foreign keys, cascades).

use std::collections::BTreeMap;

use autodocs_domain::RepoError;
use autodocs_domain::activity_log::Activity;
use autodocs_domain::admin_session::{AdminSession, SessionDigest};
use autodocs_domain::document::Document;
use autodocs_domain::instance::DatabaseIdentity;
use autodocs_domain::mission::Mission;
use autodocs_domain::plan_step::PlanStep;
use autodocs_domain::ports::RefreshTokenRecord;
use autodocs_domain::user::User;
use autodocs_domain::{ActivityId, DocumentId, JobId, MissionId, StepId};
use chrono::{DateTime, Utc};

/// A user row: the user (with its profile) and what only the adapter sees.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub(crate) user: User,
    pub(crate) password: String,
    pub(crate) username_key: String,
    /// `None` for an empty email, as in the SQL schema.
    pub(crate) email_key: Option<String>,
}

/// A mission row: the mission (its counts are computed when read) and the
/// overdue flag.
#[derive(Debug, Clone)]
pub(crate) struct MissionRow {
    pub(crate) mission: Mission,
    pub(crate) overdue_notified_at: Option<DateTime<Utc>>,
}

/// A job row, as `jobs_job` stores it.
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub(crate) id: JobId,
    pub(crate) kind: String,
    pub(crate) payload: serde_json::Value,
    pub(crate) status: &'static str,
    pub(crate) attempts: i32,
    pub(crate) max_attempts: i32,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) locked_by: Option<String>,
    pub(crate) locked_until: Option<DateTime<Utc>>,
    pub(crate) last_error: Option<String>,
    pub(crate) unique_key: Option<String>,
    pub(crate) mission: Option<MissionId>,
    pub(crate) step: Option<StepId>,
    pub(crate) updated_at: DateTime<Utc>,
}

/// The last id handed out per table (ids are never reused, like
/// `AUTOINCREMENT` and sequences).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sequences {
    pub(crate) users: i64,
    pub(crate) tokens: i64,
    pub(crate) missions: i64,
    pub(crate) steps: i64,
    pub(crate) documents: i64,
    pub(crate) activities: i64,
    pub(crate) jobs: i64,
}

/// Every table. A transaction works on a clone and replaces the shared
/// state only when it commits.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) ids: Sequences,
    pub(crate) users: BTreeMap<i64, UserRow>,
    /// Refresh tokens by row id.
    pub(crate) tokens: BTreeMap<i64, RefreshTokenRecord>,
    /// Admin sessions by the digest of their key.
    pub(crate) admin_sessions: BTreeMap<SessionDigest, AdminSession>,
    pub(crate) missions: BTreeMap<MissionId, MissionRow>,
    pub(crate) steps: BTreeMap<StepId, PlanStep>,
    pub(crate) documents: BTreeMap<DocumentId, Document>,
    pub(crate) activities: BTreeMap<ActivityId, Activity>,
    pub(crate) jobs: BTreeMap<JobId, JobRow>,
    pub(crate) identity: DatabaseIdentity,
}

impl State {
    pub(crate) fn new(identity: DatabaseIdentity) -> Self {
        Self {
            ids: Sequences::default(),
            users: BTreeMap::new(),
            tokens: BTreeMap::new(),
            admin_sessions: BTreeMap::new(),
            missions: BTreeMap::new(),
            steps: BTreeMap::new(),
            documents: BTreeMap::new(),
            activities: BTreeMap::new(),
            jobs: BTreeMap::new(),
            identity,
        }
    }

    /// A mission as read: with its step and document counts.
    pub(crate) fn mission_with_counts(&self, row: &MissionRow) -> Mission {
        let id = row.mission.id;
        let mut mission = row.mission.clone();
        let steps = self.steps.values().filter(|step| step.mission == id);
        let (total, completed) = steps.fold((0u64, 0u64), |(total, completed), step| {
            let done = step.status == autodocs_domain::plan_step::StepStatus::Completed;
            (total + 1, completed + u64::from(done))
        });
        mission.steps_total = total;
        mission.steps_completed = completed;
        mission.document_count = self
            .documents
            .values()
            .filter(|document| document.mission == Some(id))
            .count() as u64;
        mission
    }

    /// Deletes a user and everything that cascades from it.
    pub(crate) fn delete_user(&mut self, id: i64) -> bool {
        if self.users.remove(&id).is_none() {
            return false;
        }
        self.tokens.retain(|_, token| token.user.0 != id);
        self.admin_sessions
            .retain(|_, session| session.user.0 != id);
        let missions: Vec<MissionId> = self
            .missions
            .values()
            .filter(|row| row.mission.owner.0 == id)
            .map(|row| row.mission.id)
            .collect();
        for mission in missions {
            self.delete_mission(mission);
        }
        let documents: Vec<DocumentId> = self
            .documents
            .values()
            .filter(|document| document.owner.0 == id)
            .map(|document| document.id)
            .collect();
        for document in documents {
            self.delete_document(document);
        }
        self.activities
            .retain(|_, activity| activity.user.is_none_or(|user| user.0 != id));
        true
    }

    /// Deletes a mission and what cascades from it (steps, jobs); documents
    /// and activities only lose the reference.
    pub(crate) fn delete_mission(&mut self, id: MissionId) -> bool {
        if self.missions.remove(&id).is_none() {
            return false;
        }
        let steps: Vec<StepId> = self
            .steps
            .values()
            .filter(|step| step.mission == id)
            .map(|step| step.id)
            .collect();
        self.delete_steps(&steps);
        self.jobs.retain(|_, job| job.mission != Some(id));
        for document in self.documents.values_mut() {
            if document.mission == Some(id) {
                document.mission = None;
            }
        }
        for activity in self.activities.values_mut() {
            if activity.mission == Some(id) {
                activity.mission = None;
            }
        }
        true
    }

    /// Deletes steps (jobs holding one go with it, as the foreign key cascades).
    pub(crate) fn delete_steps(&mut self, ids: &[StepId]) {
        for id in ids {
            self.steps.remove(id);
        }
        self.jobs
            .retain(|_, job| job.step.is_none_or(|step| !ids.contains(&step)));
    }

    /// Deletes a document; activities only lose the reference.
    pub(crate) fn delete_document(&mut self, id: DocumentId) -> bool {
        if self.documents.remove(&id).is_none() {
            return false;
        }
        for activity in self.activities.values_mut() {
            if activity.document == Some(id) {
                activity.document = None;
            }
        }
        true
    }
}

/// A foreign key that names no row.
pub(crate) fn missing(what: &str) -> RepoError {
    RepoError::ConstraintViolation(format!("{what} does not exist"))
}

/// A page of `items` (already filtered and sorted), as the SQL adapters cut it.
pub(crate) fn page_of<T>(
    items: Vec<T>,
    request: autodocs_domain::paging::PageRequest,
) -> autodocs_domain::paging::PageResult<T> {
    use autodocs_domain::paging::{Page, PageResult, PastEnd};
    let count = items.len() as u64;
    let Some(page) = request.resolve(count) else {
        return PageResult::PastEnd(PastEnd { count });
    };
    let offset = usize::try_from(request.offset_of(page)).unwrap_or(usize::MAX);
    let size = usize::try_from(request.page_size()).unwrap_or(usize::MAX);
    PageResult::Found(Page {
        count,
        page,
        page_size: request.page_size(),
        items: items.into_iter().skip(offset).take(size).collect(),
    })
}

/// SQL `lower(haystack) LIKE '%' || lower(needle) || '%'`.
pub(crate) fn contains_folded(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// `n` random bytes as hex (falls back to a hash of the time and a counter
/// if the system has no randomness to give).
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        use sha2::{Digest, Sha256};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!("{nanos}:{}", COUNTER.fetch_add(1, Ordering::Relaxed));
        let digest = Sha256::digest(seed.as_bytes());
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = digest[i % digest.len()];
        }
    }
    hex(&bytes)
}

/// Sorts `items` as the SQL adapters order a list: by `ordering` (or
/// `default` when it is empty), ties broken by id in the direction of the
/// first key, so pages never overlap.
pub(crate) fn sort_by_ordering<T, K: Copy, I: Ord>(
    items: &mut [T],
    ordering: &[autodocs_domain::paging::OrderField<K>],
    default: autodocs_domain::paging::OrderField<K>,
    compare: impl Fn(&T, &T, autodocs_domain::paging::OrderField<K>) -> std::cmp::Ordering,
    id: impl Fn(&T) -> I,
) {
    let default = [default];
    let ordering = if ordering.is_empty() {
        &default[..]
    } else {
        ordering
    };
    let ids_descending = ordering[0].descending;
    items.sort_by(|a, b| {
        ordering
            .iter()
            .map(|item| compare(a, b, *item))
            .find(|order| order.is_ne())
            .unwrap_or_else(|| {
                let by_id = id(a).cmp(&id(b));
                if ids_descending {
                    by_id.reverse()
                } else {
                    by_id
                }
            })
    });
}
