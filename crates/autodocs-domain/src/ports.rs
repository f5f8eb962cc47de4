//! The ports: what the domain needs from the outside world.
//!
//! Repositories are synchronous (diesel is); the HTTP layer runs use cases on
//! a blocking pool. Every repository reached through a [`Repositories`] value
//! shares one transaction, so a change, its activity row and its jobs commit
//! together or not at all.

use chrono::{DateTime, Utc};

use crate::activity_log::{Activity, ActivityQuery, NewActivity};
use crate::error::{Error, RepoError};
use crate::mission::{
    Mission, MissionChanges, MissionQuery, MissionStatus, MissionTransition, NewMission, Progress,
};
use crate::paging::Page;
use crate::plan_step::{NewPlanStep, PlanStep, StepChanges};
use crate::user::{NewUser, User, UserChanges, UserId, UserProfile, UserQuery};

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
    /// Inserts a user and its default profile.
    fn create(&mut self, user: &NewUser, now: DateTime<Utc>) -> RepoResult<User>;
    /// A user by id.
    fn find(&mut self, id: UserId) -> RepoResult<Option<User>>;
    /// A user and its password hash by username or email, both case-insensitive.
    fn find_credentials(&mut self, login: &str) -> RepoResult<Option<Credentials>>;
    /// The password hash of a user.
    fn password_hash(&mut self, id: UserId) -> RepoResult<Option<String>>;
    /// Whether a username is taken, case-insensitively.
    fn username_exists(&mut self, username: &str) -> RepoResult<bool>;
    /// Whether an email is taken by another user than `except`, case-insensitively.
    fn email_exists(&mut self, email: &str, except: Option<UserId>) -> RepoResult<bool>;
    /// Replaces the password hash.
    fn set_password_hash(&mut self, id: UserId, hash: &str) -> RepoResult<()>;
    /// Records a successful login.
    fn touch_last_login(&mut self, id: UserId, now: DateTime<Utc>) -> RepoResult<()>;
    /// Applies account changes to the user row (not the profile).
    fn update_account(&mut self, id: UserId, changes: &UserChanges) -> RepoResult<()>;
    /// Replaces the profile.
    fn save_profile(
        &mut self,
        id: UserId,
        profile: &UserProfile,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// A page of users.
    fn list(&mut self, query: &UserQuery) -> RepoResult<Page<User>>;
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
    fn find(&mut self, id: i64, owner: Option<UserId>) -> RepoResult<Option<Activity>>;
    /// A page of activities, newest first.
    fn list(&mut self, query: &ActivityQuery) -> RepoResult<Page<Activity>>;
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
    fn find(&mut self, id: i64, owner: Option<UserId>) -> RepoResult<Option<Mission>>;
    /// A page of missions with their counts, without one query per row.
    fn list(&mut self, query: &MissionQuery) -> RepoResult<Page<Mission>>;
    /// Applies changes to the editable fields.
    fn update(&mut self, id: i64, changes: &MissionChanges, now: DateTime<Utc>) -> RepoResult<()>;
    /// Applies a status change only if the status is still one of `from`
    /// (a conditional update); true if this call won.
    fn transition(
        &mut self,
        id: i64,
        from: &[MissionStatus],
        change: &MissionTransition,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Stores a recomputed progress.
    fn set_progress(&mut self, id: i64, progress: Progress, now: DateTime<Utc>) -> RepoResult<()>;
    /// Deletes a mission unless its status is `protected` (conditional); true if deleted.
    fn delete(&mut self, id: i64, protected: MissionStatus) -> RepoResult<bool>;
}

/// Storage of plan steps.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PlanStepRepository {
    /// Every step of a mission, flat, by `order` then id.
    fn list(&mut self, mission: i64) -> RepoResult<Vec<PlanStep>>;
    /// One step of a mission.
    fn find(&mut self, mission: i64, id: i64) -> RepoResult<Option<PlanStep>>;
    /// Inserts a step.
    fn create(&mut self, step: &NewPlanStep, now: DateTime<Utc>) -> RepoResult<PlanStep>;
    /// Applies changes to a step.
    fn update(&mut self, id: i64, changes: &StepChanges, now: DateTime<Utc>) -> RepoResult<()>;
    /// Sets the stored depth of a step (after its subtree moved).
    fn set_depth(&mut self, id: i64, depth: u8) -> RepoResult<()>;
    /// Deletes a step and its subtree; returns how many rows went.
    fn delete(&mut self, id: i64) -> RepoResult<u64>;
    /// Marks every open step (pending, in progress, failed) of a mission `skipped`.
    fn skip_open(&mut self, mission: i64, now: DateTime<Utc>) -> RepoResult<u64>;
    /// The `order` a new last child of `parent` gets.
    fn next_order(&mut self, mission: i64, parent: Option<i64>) -> RepoResult<i32>;
}

/// Every repository, bound to one transaction.
pub trait Repositories {
    /// The activities recorded through this unit of work so far, taken out
    /// (they become `activity.created` events once the transaction commits).
    fn take_recorded(&mut self) -> Vec<Activity>;
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
}

/// Opens transactions over the repositories.
///
/// The closure is `FnMut` only to keep the trait object-safe; [`transaction`]
/// and [`read`] call it once and return its value.
pub trait UnitOfWork: Send + Sync {
    /// Runs `work` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    fn run_in_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Error>,
    ) -> Result<(), Error>;
    /// Runs read-only `work` on a connection, without the cost of a write transaction.
    fn run_read(
        &self,
        work: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), Error>,
    ) -> Result<(), Error>;
}

/// Runs `work` in one transaction of `uow` and returns its value.
pub fn transaction<T>(
    uow: &(impl UnitOfWork + ?Sized),
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut work = Some(work);
    let mut output = None;
    uow.run_in_transaction(&mut |repos| {
        let work = work.take().ok_or_else(|| {
            Error::Repository(RepoError::Other("transaction body ran twice".into()))
        })?;
        output = Some(work(repos)?);
        Ok(())
    })?;
    output.ok_or_else(|| Error::Repository(RepoError::Other("transaction body did not run".into())))
}

/// Runs read-only `work` on `uow` and returns its value.
pub fn read<T>(
    uow: &(impl UnitOfWork + ?Sized),
    work: impl FnOnce(&mut dyn Repositories) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut work = Some(work);
    let mut output = None;
    uow.run_read(&mut |repos| {
        let work = work
            .take()
            .ok_or_else(|| Error::Repository(RepoError::Other("read body ran twice".into())))?;
        output = Some(work(repos)?);
        Ok(())
    })?;
    output.ok_or_else(|| Error::Repository(RepoError::Other("read body did not run".into())))
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
}
