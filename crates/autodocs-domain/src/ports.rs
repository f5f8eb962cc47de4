//! The ports: what the domain needs from the outside world.
//!
//! Repositories are synchronous (diesel is); the HTTP layer runs use cases on
//! a blocking pool. Every repository reached through a [`Repositories`] value
//! shares one transaction, so a change, its activity row and its jobs commit
//! together or not at all.

use chrono::{DateTime, Utc};

use crate::activity_log::{Activity, ActivityQuery, NewActivity};
use crate::admin_session::{AdminSession, SessionDigest};
use crate::document::{
    Document, DocumentChanges, DocumentQuery, DocumentVerification, NewDocument, ObservedFile,
    StorageKey, UploadedFile,
};
use crate::error::{RepoError, UseCaseError};
use crate::ids::{ActivityId, DocumentId, JobId, MissionId, StepId};
use crate::mission::{
    Mission, MissionChanges, MissionQuery, MissionStatus, MissionTransition, NewMission, Progress,
};
use crate::paging::PageResult;
use crate::plan_step::{NewPlanStep, PlanStep, StepChanges};
use crate::user::{IdentityKey, NewUser, User, UserChanges, UserId, UserProfile, UserQuery};

/// Result of a repository call.
pub type RepoResult<T> = Result<T, RepoError>;

/// What the login path needs about an account.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// Its encoded password hash.
    pub password_hash: String,
}

/// Storage of users and their profiles.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UserRepository {
    /// Inserts a user and its default profile. The adapter stores the
    /// [`IdentityKey`] of the username and of the email beside them, and
    /// refuses (unique violation) a key another user holds.
    fn create(&mut self, user: &NewUser, now: DateTime<Utc>) -> RepoResult<User>;
    /// A user by id.
    fn find(&mut self, id: UserId) -> RepoResult<Option<User>>;
    /// The usernames of these users, in one read (ids of users that no
    /// longer exist are left out).
    fn usernames(
        &mut self,
        ids: &[UserId],
    ) -> RepoResult<std::collections::BTreeMap<UserId, String>>;
    /// Whether a user is active and staff: the one indexed read every
    /// authenticated request makes, lighter than [`UserRepository::find`].
    fn access(&mut self, id: UserId) -> RepoResult<Option<crate::user::AccountAccess>>;
    /// A user and its password hash by the key of a username or an email.
    /// An account whose email has the key wins over another account whose
    /// username has it (a username shaped like an email never shadows that
    /// email's owner).
    fn find_credentials(&mut self, login: &IdentityKey) -> RepoResult<Option<Credentials>>;
    /// The password hash of a user.
    fn password_hash(&mut self, id: UserId) -> RepoResult<Option<String>>;
    /// Whether a user's username has this key.
    fn username_exists(&mut self, username: &IdentityKey) -> RepoResult<bool>;
    /// Whether a user other than `except` has an email with this key.
    fn email_exists(&mut self, email: &IdentityKey, except: Option<UserId>) -> RepoResult<bool>;
    /// Replaces the password hash.
    fn set_password_hash(&mut self, id: UserId, hash: &str) -> RepoResult<()>;
    /// Replaces the password hash only if it is still `expected` (the one
    /// a password was checked against); `false` when it changed meanwhile.
    fn replace_password_hash(&mut self, id: UserId, expected: &str, hash: &str)
    -> RepoResult<bool>;
    /// Records a successful login.
    fn touch_last_login(&mut self, id: UserId, now: DateTime<Utc>) -> RepoResult<()>;
    /// Applies account changes to the user row (not the profile); a new
    /// email's [`IdentityKey`] is stored with it.
    fn update_account(&mut self, id: UserId, changes: &UserChanges) -> RepoResult<()>;
    /// Replaces the profile.
    fn save_profile(
        &mut self,
        id: UserId,
        profile: &UserProfile,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// A page of users; the search matches the keys of usernames and emails.
    fn list(&mut self, query: &UserQuery) -> RepoResult<PageResult<User>>;
    /// Deletes a user and, by cascade, everything they own. False if absent.
    fn delete(&mut self, id: UserId) -> RepoResult<bool>;
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Its owner.
    pub user: UserId,
    /// Its unique id (the JWT `jti`).
    pub jti: String,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// When it was rotated away, logged out or revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token that replaced it, when it was rotated away (not logged out).
    pub replaced_by: Option<String>,
}

/// Storage of the admin pages' staff sessions, by the digest of their key.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AdminSessionRepository {
    /// Records a new session of `user`, live until `expires_at`.
    fn open(
        &mut self,
        digest: &SessionDigest,
        user: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// The session with this digest, if it is still live at `now`.
    fn find_live(
        &mut self,
        digest: &SessionDigest,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<AdminSession>>;
    /// Ends a session; true if it existed.
    fn close(&mut self, digest: &SessionDigest) -> RepoResult<bool>;
    /// Ends every session of a user; returns how many.
    fn close_all(&mut self, user: UserId) -> RepoResult<u64>;
    /// Deletes sessions that expired before `now`; returns how many.
    fn purge_expired(&mut self, now: DateTime<Utc>) -> RepoResult<u64>;
}

/// Storage of issued refresh tokens, for rotation and reuse detection.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RefreshTokenRepository {
    /// Records a newly issued token.
    fn insert(
        &mut self,
        user: UserId,
        jti: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// A token by jti.
    fn find(&mut self, jti: &str) -> RepoResult<Option<RefreshTokenRecord>>;
    /// Revokes a token if it is still live; true if this call revoked it
    /// (a conditional update, so two racing rotations cannot both win).
    #[allow(clippy::needless_lifetimes)] // mockall cannot mock an elided lifetime inside Option<&str>
    fn revoke<'a>(
        &mut self,
        jti: &str,
        replaced_by: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Revokes every live token of a user; returns how many.
    fn revoke_all(&mut self, user: UserId, now: DateTime<Utc>) -> RepoResult<u64>;
    /// Deletes tokens that expired before `now`; returns how many.
    fn purge_expired(&mut self, now: DateTime<Utc>) -> RepoResult<u64>;
}

/// Storage of the activity log.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ActivityRepository {
    /// Appends an activity.
    fn record(&mut self, activity: &NewActivity, now: DateTime<Utc>) -> RepoResult<Activity>;
    /// One activity, if `owner` (when given) is its user.
    fn find(&mut self, id: ActivityId, owner: Option<UserId>) -> RepoResult<Option<Activity>>;
    /// A page of activities, newest first.
    fn list(&mut self, query: &ActivityQuery) -> RepoResult<PageResult<Activity>>;
}

/// Storage of missions.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait MissionRepository {
    /// Inserts a mission (status `pending`, progress 0).
    fn create(
        &mut self,
        owner: UserId,
        mission: &NewMission,
        now: DateTime<Utc>,
    ) -> RepoResult<Mission>;
    /// A mission with its counts, if `owner` (when given) owns it.
    fn find(&mut self, id: MissionId, owner: Option<UserId>) -> RepoResult<Option<Mission>>;
    /// Like [`MissionRepository::find`], but first locks the mission's row
    /// until the transaction ends. Every transaction that writes a
    /// mission's steps locks the mission first, so two transactions on the
    /// same mission always take their locks in the same order (mission,
    /// then steps) and cannot deadlock; and what is read after the lock
    /// (e.g. the step count) stays true until the commit.
    fn lock(&mut self, id: MissionId, owner: Option<UserId>) -> RepoResult<Option<Mission>>;
    /// A page of missions with their counts, without one query per row.
    fn list(&mut self, query: &MissionQuery) -> RepoResult<PageResult<Mission>>;
    /// Applies changes to the editable fields.
    fn update(
        &mut self,
        id: MissionId,
        changes: &MissionChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Applies a status change only if the status is still one of `from`
    /// (a conditional update); true if this call won.
    fn transition(
        &mut self,
        id: MissionId,
        from: &[MissionStatus],
        change: &MissionTransition,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Stores a recomputed progress.
    fn set_progress(
        &mut self,
        id: MissionId,
        progress: Progress,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Open missions (pending, in progress, paused) whose deadline passed
    /// and that were not flagged overdue yet.
    fn overdue(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<Mission>>;
    /// Flags a mission overdue unless it already is (conditional); true if this call did.
    fn mark_overdue(&mut self, id: MissionId, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Deletes a mission unless its status is `protected` (conditional); true if deleted.
    fn delete(&mut self, id: MissionId, protected: MissionStatus) -> RepoResult<bool>;
}

/// Storage of plan steps.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PlanStepRepository {
    /// Every step of a mission, flat, by `order` then id.
    fn list(&mut self, mission: MissionId) -> RepoResult<Vec<PlanStep>>;
    /// One step of a mission.
    fn find(&mut self, mission: MissionId, id: StepId) -> RepoResult<Option<PlanStep>>;
    /// The mission a step belongs to, if the step exists.
    fn mission_of(&mut self, id: StepId) -> RepoResult<Option<MissionId>>;
    /// One page of steps across missions: newest mission first; within a
    /// mission, by depth, then order, then id.
    fn search(&mut self, query: &crate::plan_step::StepQuery) -> RepoResult<PageResult<PlanStep>>;
    /// Inserts a step.
    fn create(&mut self, step: &NewPlanStep, now: DateTime<Utc>) -> RepoResult<PlanStep>;
    /// Applies changes to a step.
    fn update(&mut self, id: StepId, changes: &StepChanges, now: DateTime<Utc>) -> RepoResult<()>;
    /// Starts a pending step (a conditional update); true if this call did,
    /// so two runs racing for the same step cannot both start it.
    fn start_pending(&mut self, id: StepId, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Sets the stored depth of a step (after its subtree moved).
    fn set_depth(&mut self, id: StepId, depth: u8) -> RepoResult<()>;
    /// Deletes a step and its subtree; returns how many rows went.
    fn delete(&mut self, id: StepId) -> RepoResult<u64>;
    /// Marks every open step (pending, in progress, failed) of a mission `skipped`.
    fn skip_open(&mut self, mission: MissionId, now: DateTime<Utc>) -> RepoResult<u64>;
    /// The `order` a new last child of `parent` gets.
    fn next_order(&mut self, mission: MissionId, parent: Option<StepId>) -> RepoResult<i32>;
}

/// Storage of document rows (the bytes live behind [`FileStorage`]).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait DocumentRepository {
    /// Inserts a document (status `uploaded`).
    fn create(&mut self, document: &NewDocument, now: DateTime<Utc>) -> RepoResult<Document>;
    /// A document, if `owner` (when given) owns it.
    fn find(&mut self, id: DocumentId, owner: Option<UserId>) -> RepoResult<Option<Document>>;
    /// A page of documents.
    fn list(&mut self, query: &DocumentQuery) -> RepoResult<PageResult<Document>>;
    /// Every document of a mission, newest first.
    fn list_for_mission(&mut self, mission: MissionId) -> RepoResult<Vec<Document>>;
    /// Applies changes to the editable fields.
    fn update(
        &mut self,
        id: DocumentId,
        changes: &DocumentChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Stores the result of a verification.
    fn set_verification(
        &mut self,
        id: DocumentId,
        verification: &DocumentVerification,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Deletes a document row; false if it was absent.
    fn delete(&mut self, id: DocumentId) -> RepoResult<bool>;
    /// Which of `keys` some document row references.
    fn existing_storage_keys(&mut self, keys: &[StorageKey]) -> RepoResult<Vec<StorageKey>>;
    /// Whether any document row exists at all (the storage sweep never
    /// runs on a database without documents: it could prove nothing).
    fn any_exist(&mut self) -> RepoResult<bool>;
}

/// Facts about the database itself.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait InstanceRepository {
    /// The random identity the database got when it was first migrated;
    /// `None` when its migrations have not created it yet.
    fn database_identity(&mut self) -> RepoResult<Option<crate::instance::DatabaseIdentity>>;
}

/// The durable job queue, in the application's database.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait JobQueue {
    /// Enqueues a job in the caller's transaction; `None` when a live job
    /// with the same unique key already exists.
    fn enqueue(
        &mut self,
        job: &crate::jobs::NewJob,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<JobId>>;
    /// Takes the lease of the next due job (queued and due, or running with
    /// an expired lease), skipping jobs other workers hold. With
    /// `spare_busy_users`, jobs of users who already have a job running are
    /// skipped too (maintenance jobs belong to no user and are never
    /// skipped). Claiming releases a [`crate::jobs::JobKey::Pending`] key.
    fn claim(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        spare_busy_users: bool,
    ) -> RepoResult<Option<crate::jobs::ClaimedJob>>;
    /// When the next job falls due: the earliest `run_at` of a queued job
    /// or lease end of a running one (`None`: an empty queue). A plain read,
    /// so idle workers can look often without taking a write lock.
    fn next_due(&mut self) -> RepoResult<Option<DateTime<Utc>>>;
    /// Extends the lease of a job this worker still holds to `until`;
    /// `false` when the worker no longer holds it.
    fn renew(
        &mut self,
        id: JobId,
        worker: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Puts a job this worker holds back in the queue for `run_at` under its
    /// pending `key`, without counting an attempt; when another job already
    /// waits under that key, that one is brought forward to `run_at` (if
    /// later) and this one finishes, so one subject never piles up jobs.
    fn reschedule(
        &mut self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
        key: &crate::jobs::JobKey,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Records that running job `job` runs plan step `step`, unless another
    /// running job with a live lease already does (`false`: leave the step
    /// to it). A job whose lease lapsed loses its step to whoever asks. At
    /// most one job holds a step (a unique index), so a step's action never
    /// runs twice at once; the step is released when the job leaves `running`.
    fn take_step(&mut self, job: JobId, step: StepId, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Jobs for an operator, newest first, optionally of one status.
    fn list(
        &mut self,
        status: Option<crate::jobs::JobStatus>,
        limit: i64,
    ) -> RepoResult<Vec<crate::jobs::JobRecord>>;
    /// One page of jobs for an operator, newest first.
    fn search(
        &mut self,
        query: &crate::jobs::JobQuery,
    ) -> RepoResult<PageResult<crate::jobs::JobRecord>>;
    /// Deletes one finished (done or dead) job; `false` when there is no
    /// such job or it may still run.
    fn delete_finished(&mut self, id: JobId) -> RepoResult<bool>;
    /// Makes a dead (or failed, waiting for its retry) job due at `now`
    /// with its attempts reset; `false` when there is no such job.
    fn retry(&mut self, id: JobId, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Deletes finished jobs last touched before `before` (and dead ones too
    /// when `dead`); returns how many.
    fn purge(&mut self, before: DateTime<Utc>, dead: bool) -> RepoResult<u64>;
    /// Ends a job this worker holds: done.
    fn finish(&mut self, id: JobId, worker: &str, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Puts a job this worker holds back in the queue for `run_at`;
    /// `error` is kept, and `count_attempt: false` gives the attempt back.
    fn requeue(
        &mut self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
        error: Option<String>,
        count_attempt: bool,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Declares a job dead, kept for inspection.
    fn bury(
        &mut self,
        id: JobId,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Counts jobs of one status.
    fn count(&mut self, status: crate::jobs::JobStatus) -> RepoResult<u64>;
}

/// Every repository, bound to one transaction.
pub trait Repositories {
    /// The job queue.
    fn jobs(&mut self) -> &mut dyn JobQueue;
    /// Missions.
    fn missions(&mut self) -> &mut dyn MissionRepository;
    /// Plan steps.
    fn steps(&mut self) -> &mut dyn PlanStepRepository;
    /// Users and profiles.
    fn users(&mut self) -> &mut dyn UserRepository;
    /// Refresh tokens.
    fn refresh_tokens(&mut self) -> &mut dyn RefreshTokenRepository;
    /// The activity log.
    fn activities(&mut self) -> &mut dyn ActivityRepository;
    /// Documents.
    fn documents(&mut self) -> &mut dyn DocumentRepository;
    /// Staff sessions of the admin pages.
    fn admin_sessions(&mut self) -> &mut dyn AdminSessionRepository;
    /// The database's own identity.
    fn instance(&mut self) -> &mut dyn InstanceRepository;
}

/// Why the work of a unit of work ended without committing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// The storage failed (in the work, or opening or committing it).
    Storage(RepoError),
    /// The work gave up for a reason of its own, which its caller keeps.
    Aborted,
}

impl From<RepoError> for Rollback {
    fn from(error: RepoError) -> Self {
        Rollback::Storage(error)
    }
}

/// Opens transactions over the repositories.
///
/// The closure is `FnMut` only to keep the trait object-safe; [`transaction`]
/// and [`read`] call it once, keep its value or its error (of any
/// [`UseCaseError`] type), and return it.
pub trait UnitOfWork: Send + Sync {
    /// Runs `work` in one transaction: committed if it returns `Ok`, rolled
    /// back otherwise (its error is returned as it is).
    fn run_in_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback>;
    /// Runs read-only `work` on a connection, without the cost of a write transaction.
    fn run_read(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
    ) -> Result<(), Rollback>;
}

/// Which port method [`run_once`] drives.
type Runner<'u> = &'u dyn Fn(
    &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Rollback>,
) -> Result<(), Rollback>;

/// Runs `work` once through `runner`, keeping its value or its own error.
fn run_once<T, E: UseCaseError>(
    runner: Runner<'_>,
    what: &str,
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, E>,
) -> Result<T, E> {
    let mut work = Some(work);
    let mut outcome: Option<Result<T, E>> = None;
    let ran = runner(&mut |repos| {
        let work = work
            .take()
            .ok_or_else(|| RepoError::Other(format!("{what} body ran twice")))?;
        let result = work(repos);
        let rollback = match &result {
            Ok(_) => None,
            Err(error) => Some(
                error
                    .storage_failure()
                    .map_or(Rollback::Aborted, |failure| {
                        Rollback::Storage(failure.clone())
                    }),
            ),
        };
        outcome = Some(result);
        rollback.map_or(Ok(()), Err)
    });
    match (ran, outcome) {
        // The work's own error comes first: a failed rollback after it
        // adds nothing the caller can act on.
        (_, Some(Err(error))) => Err(error),
        (Ok(()), Some(Ok(output))) => Ok(output),
        (Err(Rollback::Storage(error)), _) => Err(error.into()),
        (Ok(()) | Err(Rollback::Aborted), _) => {
            Err(RepoError::Other(format!("{what} body did not run")).into())
        }
    }
}

/// Runs `work` in one transaction of `uow` and returns its value, or its
/// error (the transaction then rolled back).
pub fn transaction<T, E: UseCaseError>(
    uow: &(impl UnitOfWork + ?Sized),
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, E>,
) -> Result<T, E> {
    run_once(&|work| uow.run_in_transaction(work), "transaction", work)
}

/// Runs read-only `work` on `uow` and returns its value.
pub fn read<T, E: UseCaseError>(
    uow: &(impl UnitOfWork + ?Sized),
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, E>,
) -> Result<T, E> {
    run_once(&|work| uow.run_read(work), "read", work)
}

/// Runs `work` in one transaction of `uow` and returns its value with the
/// activities it recorded, in order, for publishing once committed.
///
/// The repositories `work` sees are wrapped in a [`RecordingRepositories`],
/// so every adapter gets this for free; a rolled-back transaction returns
/// its error and nothing recorded.
pub fn recorded_transaction<T, E: UseCaseError>(
    uow: &(impl UnitOfWork + ?Sized),
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, E>,
) -> Result<(T, Vec<Activity>), E> {
    transaction(uow, |repos| {
        let mut recording = RecordingRepositories::new(repos);
        let output = work(&mut recording)?;
        Ok((output, recording.into_recorded()))
    })
}

/// Repositories that remember every activity recorded through them (they
/// become `activity.created` events once the transaction commits).
pub struct RecordingRepositories<'a> {
    inner: &'a mut dyn Repositories,
    recorded: Vec<Activity>,
}

impl<'a> RecordingRepositories<'a> {
    /// Wraps the repositories of one transaction.
    pub fn new(inner: &'a mut dyn Repositories) -> Self {
        Self {
            inner,
            recorded: Vec::new(),
        }
    }

    /// The activities recorded so far, in order.
    pub fn into_recorded(self) -> Vec<Activity> {
        self.recorded
    }
}

impl ActivityRepository for RecordingRepositories<'_> {
    fn record(&mut self, activity: &NewActivity, now: DateTime<Utc>) -> RepoResult<Activity> {
        let recorded = self.inner.activities().record(activity, now)?;
        self.recorded.push(recorded.clone());
        Ok(recorded)
    }

    fn find(&mut self, id: ActivityId, owner: Option<UserId>) -> RepoResult<Option<Activity>> {
        self.inner.activities().find(id, owner)
    }

    fn list(&mut self, query: &ActivityQuery) -> RepoResult<PageResult<Activity>> {
        self.inner.activities().list(query)
    }
}

impl Repositories for RecordingRepositories<'_> {
    fn jobs(&mut self) -> &mut dyn JobQueue {
        self.inner.jobs()
    }
    fn missions(&mut self) -> &mut dyn MissionRepository {
        self.inner.missions()
    }
    fn steps(&mut self) -> &mut dyn PlanStepRepository {
        self.inner.steps()
    }
    fn users(&mut self) -> &mut dyn UserRepository {
        self.inner.users()
    }
    fn refresh_tokens(&mut self) -> &mut dyn RefreshTokenRepository {
        self.inner.refresh_tokens()
    }
    fn activities(&mut self) -> &mut dyn ActivityRepository {
        self
    }
    fn documents(&mut self) -> &mut dyn DocumentRepository {
        self.inner.documents()
    }
    fn admin_sessions(&mut self) -> &mut dyn AdminSessionRepository {
        self.inner.admin_sessions()
    }
    fn instance(&mut self) -> &mut dyn InstanceRepository {
        self.inner.instance()
    }
}

/// Why file storage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The key cannot name a file of this storage.
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    /// The storage could not read or write.
    #[error("file storage failed: {0}")]
    Io(String),
}

/// Why an upload could not be received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// More than `limit` bytes were sent; nothing was kept.
    #[error("The file is larger than {limit} bytes.")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The storage failed; nothing was kept.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Receives the bytes of one upload into a temporary place, measuring its
/// size, SHA-256 and type as they pass (the bytes are never held whole).
///
/// Dropping a sink without [`finish`](Self::finish) discards everything.
pub trait UploadSink: Send {
    /// Appends bytes; refuses them once the limit is passed.
    fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError>;
    /// Ends the upload: the bytes are durable in a temporary place, not yet stored.
    fn finish(self: Box<Self>) -> Result<Box<dyn StagedUpload>, UploadError>;
}

/// A received upload, durable but not yet stored under a key.
///
/// Dropping it without [`persist`](Self::persist) discards it.
pub trait StagedUpload: Send {
    /// What was measured while receiving it.
    fn file(&self) -> &UploadedFile;
    /// Moves it into place atomically under a fresh, server-chosen key.
    fn persist(self: Box<Self>) -> Result<StorageKey, StorageError>;
}

/// A readable, seekable stored file.
pub trait FileRead: std::io::Read + std::io::Seek + Send {}

impl<T: std::io::Read + std::io::Seek + Send> FileRead for T {}

/// A stored file opened for reading.
pub struct StoredFile {
    /// Its current size in bytes.
    pub size: u64,
    /// Its bytes.
    pub reader: Box<dyn FileRead>,
}

impl std::fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFile")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Where document bytes live (a local directory by default). Blocking:
/// call it from a blocking pool, as the use cases are.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait FileStorage: Send + Sync {
    /// Starts receiving an upload of at most `max_bytes`.
    fn begin_upload(&self, max_bytes: u64) -> Result<Box<dyn UploadSink>, StorageError>;
    /// Opens a stored file; `None` if it is missing.
    fn open(&self, key: &StorageKey) -> Result<Option<StoredFile>, StorageError>;
    /// Re-reads a stored file whole: its size, SHA-256 and sniffed type.
    fn inspect(&self, key: &StorageKey) -> Result<ObservedFile, StorageError>;
    /// Deletes a stored file; false if it was already gone.
    fn delete(&self, key: &StorageKey) -> Result<bool, StorageError>;
    /// Deletes temporary files (half-received uploads) untouched for
    /// `min_age`; returns how many (with `dry_run`, how many it would
    /// delete, deleting nothing). An upload being received touches its
    /// temporary file at least every few seconds while bytes arrive.
    fn sweep_temporary(
        &self,
        min_age: std::time::Duration,
        dry_run: bool,
    ) -> Result<u64, StorageError>;
    /// The keys of stored files untouched for `min_age` (quarantined files
    /// are not stored files; links are never followed).
    fn stale_keys(&self, min_age: std::time::Duration) -> Result<Vec<StorageKey>, StorageError>;
    /// Moves a stored file into quarantine, where it is kept (under the same
    /// key) until [`FileStorage::purge_quarantined`]; its quarantine age
    /// starts now. False if it was already gone.
    fn quarantine(&self, key: &StorageKey) -> Result<bool, StorageError>;
    /// The keys of files quarantined at least `min_age` ago.
    fn expired_quarantine(
        &self,
        min_age: std::time::Duration,
    ) -> Result<Vec<StorageKey>, StorageError>;
    /// Deletes a quarantined file for good; false if it was already gone.
    fn purge_quarantined(&self, key: &StorageKey) -> Result<bool, StorageError>;
    /// The text of the marker naming the database this storage belongs to
    /// (trimmed; `None` when there is no marker). Returned raw: a marker
    /// that is not a valid identity names no database of ours.
    fn read_marker(&self) -> Result<Option<String>, StorageError>;
    /// Writes the marker naming the database this storage belongs to.
    fn write_marker(
        &self,
        identity: &crate::instance::DatabaseIdentity,
    ) -> Result<(), StorageError>;
}

/// Fixed-window counters every process serving the API shares: the
/// per-address throttle of the anonymous auth endpoints and the lockouts
/// after failed logins and password changes (see [`crate::rate_window`]).
///
/// Blocking, like the repositories: an adapter that waits on the database
/// is called from a blocking pool ([`RateWindows::blocks`] says whether it
/// does). Each call is atomic on its own, across every process sharing the
/// adapter's store: two processes counting the last allowed hit of a key
/// at once get one `Counted` and one `Refused`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RateWindows: Send + Sync {
    /// Counts one hit on `key` unless its running window holds `limit`
    /// hits already (then nothing is counted: the answer is `Refused`, with
    /// the time until the window ends). With no running window (none yet,
    /// or the last one ended) a new one of length `window` starts with this
    /// hit. The window never moves while it runs: hits, refused or not, do
    /// not extend it.
    ///
    /// Adapters that share their store between processes measure windows
    /// by the store's clock, so processes whose clocks disagree still agree
    /// on when a window ends.
    fn hit(
        &self,
        key: &crate::rate_window::RateKey,
        limit: u32,
        window: std::time::Duration,
    ) -> RepoResult<crate::rate_window::WindowHit>;

    /// Gives back one hit counted in the window `stamp` (an attempt that
    /// turned out not to be a failure). Nothing happens when that window
    /// has ended or been replaced, or when its count is 0 already.
    fn give_back(
        &self,
        key: &crate::rate_window::RateKey,
        stamp: crate::rate_window::WindowStamp,
    ) -> RepoResult<()>;

    /// Forgets every window that has ended; returns how many. Adapters also
    /// prune on their own now and then, so their store holds at most the
    /// keys hit within the longest window.
    fn prune(&self) -> RepoResult<u64>;

    /// Whether a call may wait on I/O (a database round trip), so callers
    /// on an event loop must run it on a blocking pool. The in-process
    /// adapter only takes a mutex for a moment and answers `false`.
    fn blocks(&self) -> bool {
        true
    }
}

/// The current time, injectable for tests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password does not match (or the hash is unusable).
    Mismatch,
    /// It matches and the hash is current.
    Match,
    /// It matches, but the hash uses weaker parameters and should be replaced.
    MatchNeedsRehash,
}

/// Hashes and checks passwords (Django's `pbkdf2_sha256` format in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a password with a fresh salt.
    fn hash(&self, password: &str) -> String;
    /// Checks a password against an encoded hash, in constant time.
    fn verify(&self, password: &str, encoded: &str) -> PasswordCheck;
    /// Spends as long as a `verify` would, for logins of unknown users.
    fn burn(&self, password: &str);
}

/// An access/refresh token pair just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
    /// The refresh token's `jti`, to be stored.
    pub refresh_jti: String,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// The claims of a refresh token that passed signature and expiry checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    /// Its owner.
    pub user: UserId,
    /// Its id.
    pub jti: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, malformed, or missing claims.
    #[error("Token is invalid")]
    Invalid,
    /// Past its `exp`.
    #[error("Token is expired")]
    Expired,
    /// An access token where a refresh token was expected, or the reverse.
    #[error("Token has wrong type")]
    WrongType,
}

/// Issues and checks signed tokens (HS256 JWTs in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenService: Send + Sync {
    /// Issues an access and a refresh token for a user.
    fn issue(&self, user: UserId, now: DateTime<Utc>) -> IssuedTokens;
    /// Checks a refresh token's signature, expiry and type.
    fn decode_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError>;
    /// Checks an access token's signature, expiry and type; returns its user.
    fn decode_access(&self, token: &str) -> Result<UserId, TokenError>;
    /// Like [`TokenService::decode_access`], also telling when the token
    /// expires (a live connection opened with it must end then).
    fn decode_access_claims(&self, token: &str) -> Result<AccessClaims, TokenError>;
}

/// The claims of an access token that passed signature and expiry checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessClaims {
    /// Its user.
    pub user: UserId,
    /// Its `exp`: from this instant on the token is refused.
    pub expires_at: DateTime<Utc>,
}

/// What a fetch learned besides the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// A file name suggested by the response or the URL (unsanitised).
    pub filename: String,
}

/// Why a URL could not be fetched, by what the user can do about it.
///
/// The `Display` text is what a user may read (it is recorded in the step's
/// failure and in `mission_failed`): it never names a host, an address, a
/// port or a system error. The `detail` of each variant is for the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL or a redirect points somewhere fetches may not go: a
    /// loopback, private, link-local or otherwise non-public address, or a
    /// scheme other than http(s). Permanent.
    #[error("the address is not allowed")]
    NotAllowed {
        /// What exactly was refused (for the log).
        detail: String,
    },
    /// The server could not be reached or did not answer in time: DNS
    /// failure, connection refused, TLS failure, timeout, too slow.
    #[error("the server did not answer")]
    NoAnswer {
        /// The error chain (for the log).
        detail: String,
    },
    /// The server answered with an HTTP error status.
    #[error("the server answered with an error (HTTP {status})")]
    Status {
        /// The status code (safe to show).
        status: u16,
        /// Where it came from (for the log).
        detail: String,
    },
    /// The server redirected more often than allowed.
    #[error("the server redirected too many times")]
    TooManyRedirects {
        /// The redirect chain's end (for the log).
        detail: String,
    },
    /// The body stopped arriving part-way.
    #[error("the download was cut off")]
    CutOff {
        /// The error chain (for the log).
        detail: String,
    },
    /// The body could not be received: too large, or storage failed.
    #[error("{}", upload_message(.0))]
    Upload(#[from] UploadError),
}

/// The user's text for an upload failure during a fetch.
fn upload_message(error: &UploadError) -> &'static str {
    match error {
        UploadError::TooLarge { .. } => "the file is too large",
        UploadError::Storage(_) => "the file could not be stored",
    }
}

impl FetchError {
    /// The details for the log: host, address, error chain (never shown to
    /// a user).
    pub fn detail(&self) -> String {
        match self {
            FetchError::NotAllowed { detail }
            | FetchError::NoAnswer { detail }
            | FetchError::Status { detail, .. }
            | FetchError::TooManyRedirects { detail }
            | FetchError::CutOff { detail } => detail.clone(),
            FetchError::Upload(error) => error.to_string(),
        }
    }

    /// Whether trying again cannot help (the step fails at once).
    pub fn is_permanent(&self) -> bool {
        matches!(self, FetchError::NotAllowed { .. } | FetchError::Upload(_))
    }
}

/// Downloads a URL into an upload sink (with timeouts, a redirect limit and
/// an SSRF guard in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UrlFetcher: Send + Sync {
    /// Streams the body of `url` into `sink`.
    fn fetch(
        &self,
        url: &crate::plan_step::HttpUrl,
        sink: &mut dyn UploadSink,
    ) -> Result<Fetched, FetchError>;
}
