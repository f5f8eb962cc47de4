//! The mission engine and the maintenance jobs, run by background workers.
//!
//! While a mission is `in_progress`, its automated steps run one at a time
//! in tree order (depth first, by `order`); a `manual` step waits for the
//! user. Each run of [`Engine::run_job`] does one step of work and is
//! idempotent: a worker that dies mid-job loses its lease and the job runs
//! again from what was committed.

use chrono::{DateTime, Duration, Utc};

use crate::activity::SystemActivity;
use crate::activity_log::NewActivity;
use crate::error::{DocumentError, EngineError, MissionRefusal, RepoError};
use crate::ids::{JobId, MissionId, StepId};
use crate::jobs::{
    ClaimedJob, JobKind, JobOutcome, JobQuery, JobRecord, JobSignal, JobStatus, NewJob, QueueStats,
};
use crate::mission::{Mission, MissionAction, MissionStatus};
use crate::paging::Page;
use crate::plan_step::{PlanStep, PlanStepTree, StepAction, StepChanges, StepStatus};
use crate::ports::{self, FetchError, Repositories};
use crate::user::Principal;

use super::documents::{UploadDocument, UploadedPart};
use super::missions::{apply_action, recompute_progress};

/// What the first phase of a mission run decided.
enum Next {
    /// Nothing to do now.
    Idle,
    /// Run this step's action (it is `in_progress`).
    Run(Box<Mission>, Box<PlanStep>),
}

/// Why an action failed, and whether trying again can help.
/// The step failure a user reads when the server itself failed.
pub const INTERNAL_FAILURE: &str = "an internal error interrupted the step";

struct ActionFailure {
    /// What the user reads (the step's error, `mission_failed` details).
    message: String,
    /// What only the operator reads (the job's `last_error`, the worker's
    /// log): host names, addresses, error chains.
    detail: Option<String>,
    permanent: bool,
}

impl ActionFailure {
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            detail: None,
            permanent: true,
        }
    }

    /// A failure of the server's own machinery (database, storage): the
    /// user reads that it was internal and temporary; the operator reads
    /// what it was (it may name internal hosts and paths).
    fn internal(error: &dyn std::fmt::Display) -> Self {
        Self {
            message: INTERNAL_FAILURE.to_owned(),
            detail: Some(error.to_string()),
            permanent: false,
        }
    }

    /// A failed fetch: the user reads its class, the operator its detail.
    fn fetch(error: &FetchError) -> Self {
        Self {
            message: error.to_string(),
            detail: Some(error.detail()),
            permanent: error.is_permanent(),
        }
    }

    /// The job's error for the queue and the worker's log.
    fn for_operator(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{}: {detail}", self.message),
            None => self.message.clone(),
        }
    }
}

/// Enqueues the run of a mission in the caller's transaction, unless a run
/// of it is already waiting in the queue (it will see this change too).
pub(crate) fn enqueue_advance(
    repos: &mut dyn Repositories,
    mission: MissionId,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    let job = NewJob::now(JobKind::AdvanceMission { mission }, now).coalesced();
    if repos.jobs().enqueue(&job, now)?.is_some() {
        JobSignal::note_enqueued();
    }
    Ok(())
}

/// Whether the engine has something to do on this plan of an `in_progress`
/// mission: its next open leaf is automated and has not failed, or every
/// leaf is done (the run completes the mission). A manual step, a failed
/// step or an empty plan waits for the user: queuing a run then would only
/// find nothing to do, again and again.
fn has_automated_work(plan: &PlanStepTree<PlanStep>) -> bool {
    match plan.next_runnable().and_then(|id| plan.find(id)) {
        Some(node) => node.item.action.is_automated() && node.item.status != StepStatus::Failed,
        None => plan.all_leaves_done(),
    }
}

/// Queues the run of an `in_progress` mission if it has automated work, in
/// the caller's transaction; otherwise the mission waits without any job.
pub(crate) fn wake_if_runnable(
    repos: &mut dyn Repositories,
    mission_id: MissionId,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    let running = repos
        .missions()
        .find(mission_id, None)?
        .is_some_and(|mission| mission.status == MissionStatus::InProgress);
    if !running {
        return Ok(());
    }
    let plan = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
    if has_automated_work(&plan) {
        enqueue_advance(repos, mission_id, now)?;
    }
    Ok(())
}

super::service!(
    /// The job engine: what workers claim, run and settle.
    ///
    /// A worker's loop, one job at a time:
    ///
    /// ```
    /// # let memory = autodocs_memory::services();
    /// # let services = &memory.services;
    /// # let session = services.accounts().register(
    /// #     autodocs_domain::usecases::auth::Registration::parse(
    /// #         &autodocs_domain::usecases::auth::RegisterInput {
    /// #             username: "anna".into(),
    /// #             email: "anna@example.com".into(),
    /// #             password: "violet-Harbor-1987".into(),
    /// #             first_name: "Anna".into(),
    /// #             last_name: "Berg".into(),
    /// #         },
    /// #     )?,
    /// # )?;
    /// # let anna = autodocs_domain::user::Principal { user_id: session.user.id, is_staff: false };
    /// # let created = services.missions().create(anna, autodocs_domain::usecases::missions::CreateMission::new(
    /// #     autodocs_domain::mission::Title::parse("Retrieve Tax Documents")?,
    /// #     autodocs_domain::mission::MissionType::DocumentRetrieval,
    /// # ))?;
    /// # let mission = created.mission.id;
    /// use autodocs_domain::jobs::retry_delay;
    /// use autodocs_domain::mission::MissionAction;
    ///
    /// services.missions().act(anna, mission, MissionAction::Start)?;
    /// let lease = chrono::Duration::minutes(5);
    /// while let Some(job) = services.engine().claim_job("worker-1", lease, true)? {
    ///     let outcome = services.engine().run_job(&job)?;
    ///     services
    ///         .engine()
    ///         .settle_job(&job, "worker-1", outcome, retry_delay(job.attempt, 0.5))?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Engine
);

impl Engine {
    /// Takes the lease of the next due job, if any. Jobs of users who have
    /// no job running come first, so one user's slow jobs cannot delay
    /// another's by more than one job; a user's further jobs are taken only
    /// when nobody else's are due, and never by a worker that is `last_free`
    /// (it stays available to the other users and to maintenance).
    pub fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        last_free: bool,
    ) -> Result<Option<ClaimedJob>, RepoError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let fair = repos.jobs().claim(worker, now, lease, true)?;
            if fair.is_some() || last_free {
                return Ok(fair);
            }
            repos.jobs().claim(worker, now, lease, false)
        })
    }

    /// When the next job falls due (`None`: nothing queued or running), by
    /// a read that takes no write lock.
    pub fn next_job_due(&self) -> Result<Option<DateTime<Utc>>, RepoError> {
        ports::read(&*self.context.uow, |repos| repos.jobs().next_due())
    }

    /// Extends the lease of a job the worker is still running; `false` when
    /// it lost the lease (another worker may have taken the job over).
    pub fn renew_lease(&self, job: &ClaimedJob, worker: &str) -> Result<bool, RepoError> {
        let now = self.context.clock.now();
        let until = now + job.lease;
        ports::transaction(&*self.context.uow, |repos| {
            repos.jobs().renew(job.id, worker, until, now)
        })
    }

    /// Jobs for an operator, newest first.
    pub fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: i64,
    ) -> Result<Vec<JobRecord>, RepoError> {
        ports::read(&*self.context.uow, |repos| repos.jobs().list(status, limit))
    }

    /// One page of jobs for an operator, newest first.
    pub fn search_jobs(&self, query: &JobQuery) -> Result<Page<JobRecord>, EngineError> {
        let found = ports::read(&*self.context.uow, |repos| repos.jobs().search(query))?;
        Ok(found.found()?)
    }

    /// How many jobs are in each status and when the next one falls due,
    /// in one read (the metrics scrape this).
    pub fn queue_stats(&self) -> Result<QueueStats, RepoError> {
        ports::read(&*self.context.uow, |repos| {
            let jobs = repos.jobs();
            let mut counts = Vec::with_capacity(JobStatus::ALL.len());
            for status in JobStatus::ALL {
                counts.push((status, jobs.count(status)?));
            }
            Ok(QueueStats {
                counts,
                next_due: jobs.next_due()?,
            })
        })
    }

    /// Deletes a finished (done or dead) job, as an operator tidying the
    /// queue does ([`EngineError::JobNotFound`] when there is no such job
    /// or it may still run).
    pub fn delete_finished_job(&self, id: JobId) -> Result<(), EngineError> {
        if self
            .context
            .write(|repos| repos.jobs().delete_finished(id))?
        {
            Ok(())
        } else {
            Err(EngineError::JobNotFound)
        }
    }

    /// Makes a dead or failed job due now with its attempts reset
    /// ([`EngineError::JobNotFound`] when no such job waits for it).
    pub fn retry_job(&self, id: JobId) -> Result<(), EngineError> {
        let now = self.context.clock.now();
        if self.context.write(|repos| repos.jobs().retry(id, now))? {
            self.context.job_signal.notify();
            Ok(())
        } else {
            Err(EngineError::JobNotFound)
        }
    }

    /// Deletes finished jobs older than `retain` (dead ones too when `dead`).
    pub fn purge_jobs(&self, retain: Duration, dead: bool) -> Result<u64, RepoError> {
        let before = self.context.clock.now() - retain;
        ports::transaction(&*self.context.uow, |repos| repos.jobs().purge(before, dead))
    }

    /// Records what became of a job: done, run again later, retried with
    /// `retry_in` of backoff, or dead once its attempts are spent.
    pub fn settle_job(
        &self,
        job: &ClaimedJob,
        worker: &str,
        outcome: JobOutcome,
        retry_in: Duration,
    ) -> Result<(), RepoError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let jobs = repos.jobs();
            match outcome {
                JobOutcome::Done => jobs.finish(job.id, worker, now)?,
                JobOutcome::RunAgainAt(at) => {
                    match job.kind.as_ref().and_then(JobKind::pending_key) {
                        Some(key) => jobs.reschedule(job.id, worker, at, &key, now)?,
                        None => jobs.requeue(job.id, worker, at, None, false, now)?,
                    }
                }
                JobOutcome::Failed(error)
                    if job.attempt >= job.max_attempts || job.kind.is_none() =>
                {
                    jobs.bury(job.id, worker, &error, now)?
                }
                JobOutcome::Failed(error) => {
                    jobs.requeue(job.id, worker, now + retry_in, Some(error), true, now)?
                }
            };
            Ok(())
        })
    }

    /// Runs one claimed job; the worker applies the outcome to the queue.
    pub fn run_job(&self, job: &ClaimedJob) -> Result<JobOutcome, EngineError> {
        let Some(kind) = &job.kind else {
            return Ok(JobOutcome::Failed(format!(
                "unknown job kind {:?}",
                job.kind_name
            )));
        };
        match kind {
            JobKind::AdvanceMission { mission } => self.advance_mission(*mission, job),
            JobKind::PurgeRefreshTokens => {
                let now = self.context.clock.now();
                self.context.write(|repos| {
                    repos.refresh_tokens().purge_expired(now)?;
                    repos.admin_sessions().purge_expired(now)
                })?;
                Ok(JobOutcome::Done)
            }
            JobKind::SweepFiles => {
                // A refusal is in the report; the binary's worker runs
                // this job itself to log it (the domain does no logging).
                super::sweep::StorageSweep::from(&self.context).run(false)?;
                Ok(JobOutcome::Done)
            }
            JobKind::FlagOverdueMissions => {
                self.flag_overdue_missions()?;
                Ok(JobOutcome::Done)
            }
            JobKind::PurgeFinishedJobs { retain_seconds } => {
                self.purge_jobs(Duration::seconds(*retain_seconds), false)?;
                Ok(JobOutcome::Done)
            }
        }
    }

    /// Enqueues the periodic maintenance jobs of the current period. Each
    /// one's key names its period and stays on the job after it finished,
    /// so however often and from however many processes this is called,
    /// each job runs once per period. Finished jobs are kept for `retain`.
    pub fn schedule_maintenance(
        &self,
        period: Duration,
        retain: Duration,
    ) -> Result<u64, RepoError> {
        let now = self.context.clock.now();
        let bucket = now.timestamp() / period.num_seconds().max(1);
        let enqueued = self.context.write(|repos| -> Result<_, RepoError> {
            let mut enqueued = 0;
            for kind in [
                JobKind::PurgeRefreshTokens,
                JobKind::SweepFiles,
                JobKind::FlagOverdueMissions,
                JobKind::PurgeFinishedJobs {
                    retain_seconds: retain.num_seconds(),
                },
            ] {
                let key = format!("{}:{bucket}", kind.name());
                if repos
                    .jobs()
                    .enqueue(&NewJob::now(kind, now).unique(key), now)?
                    .is_some()
                {
                    enqueued += 1;
                    JobSignal::note_enqueued();
                }
            }
            Ok(enqueued)
        })?;
        Ok(enqueued)
    }

    /// Records `mission_overdue` once for each open mission past its deadline.
    pub fn flag_overdue_missions(&self) -> Result<u64, RepoError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let overdue = repos.missions().overdue(now)?;
            let mut flagged = 0;
            for mission in overdue {
                if repos.missions().mark_overdue(mission.id, now)? {
                    let mut activity =
                        NewActivity::system(SystemActivity::MissionOverdue, mission.owner)
                            .with_mission(mission.id);
                    if let Some(deadline) = mission.deadline {
                        activity = activity.with_detail("deadline", deadline.to_rfc3339());
                    }
                    repos.activities().record(&activity, now)?;
                    flagged += 1;
                }
            }
            Ok(flagged)
        })
    }

    fn advance_mission(
        &self,
        mission_id: MissionId,
        job: &ClaimedJob,
    ) -> Result<JobOutcome, EngineError> {
        let now = self.context.clock.now();
        let next = self.context.write(|repos| -> Result<_, EngineError> {
            let Some(mission) = repos.missions().find(mission_id, None)? else {
                return Ok(Next::Idle);
            };
            let tree = PlanStepTree::of_steps(repos.steps().list(mission_id)?);
            // A step already running finishes even if the mission was paused
            // meanwhile (its result is kept); pausing only stops new steps.
            if mission.status == MissionStatus::Paused {
                let running = tree
                    .leaves()
                    .find(|node| {
                        node.item.status == StepStatus::InProgress
                            && node.item.action.is_automated()
                    })
                    .map(|node| node.item.clone());
                return Ok(match running {
                    Some(step) if runs_here(repos, job, &step, now)? => {
                        Next::Run(Box::new(mission), Box::new(step))
                    }
                    _ => Next::Idle,
                });
            }
            if mission.status != MissionStatus::InProgress {
                return Ok(Next::Idle);
            }
            let Some(step_id) = tree.next_runnable() else {
                // Completes the mission if every leaf is done; an empty plan
                // waits for the user, and nothing is queued for it.
                recompute_progress::<EngineError>(repos, mission_id, now)?;
                return Ok(Next::Idle);
            };
            let Some(step) = tree.find(step_id).map(|node| node.item.clone()) else {
                return Ok(Next::Idle);
            };
            match (step.status, step.action.is_automated()) {
                (_, false) | (StepStatus::Failed, _) => Ok(Next::Idle),
                (StepStatus::InProgress, true) => {
                    // Another run is on it, unless its worker died (its lease
                    // lapsed): then this run takes it over.
                    if runs_here(repos, job, &step, now)? {
                        Ok(Next::Run(Box::new(mission), Box::new(step)))
                    } else {
                        Ok(Next::Idle)
                    }
                }
                (_, true) => {
                    if !repos.steps().start_pending(step.id, now)?
                        || !runs_here(repos, job, &step, now)?
                    {
                        return Ok(Next::Idle);
                    }
                    record_step(repos, &mission, step.id, StepStatus::InProgress, now)?;
                    let started = PlanStep {
                        status: StepStatus::InProgress,
                        started_at: Some(now),
                        ..step
                    };
                    Ok(Next::Run(Box::new(mission), Box::new(started)))
                }
            }
        })?;
        let Next::Run(mission, step) = next else {
            return Ok(JobOutcome::Done);
        };
        match self.run_action(&mission, &step) {
            Ok(Some(later)) => Ok(JobOutcome::RunAgainAt(later)),
            Ok(None) => self.finish_step(&mission, &step),
            Err(failure) if failure.permanent || job.attempt >= job.max_attempts => {
                self.fail_step(&mission, &step, &failure.message)?;
                Ok(JobOutcome::Done)
            }
            Err(failure) => {
                let now = self.context.clock.now();
                self.context.write(|repos| {
                    repos.steps().update(
                        step.id,
                        &StepChanges {
                            last_error: Some(Some(failure.message.clone())),
                            ..StepChanges::default()
                        },
                        now,
                    )
                })?;
                Ok(JobOutcome::Failed(failure.for_operator()))
            }
        }
    }

    /// Runs a step's action; `Some(instant)` means "not finished, look again then".
    fn run_action(
        &self,
        mission: &Mission,
        step: &PlanStep,
    ) -> Result<Option<DateTime<Utc>>, ActionFailure> {
        let owner = Principal {
            user_id: mission.owner,
            is_staff: false,
        };
        match &step.action {
            StepAction::Manual => Ok(None),
            StepAction::Wait { seconds } => {
                let due = step.started_at.unwrap_or_else(|| self.context.clock.now())
                    + Duration::seconds(i64::from(*seconds));
                Ok((self.context.clock.now() < due).then_some(due))
            }
            StepAction::VerifyDocuments => {
                let documents = ports::read(&*self.context.uow, |repos| {
                    repos.documents().list_for_mission(mission.id)
                })
                .map_err(|error| ActionFailure::internal(&error))?;
                for document in documents {
                    match super::documents::DocumentService::from(&self.context)
                        .verify(owner, document.id)
                    {
                        Ok(_) | Err(DocumentError::NotFound) => {}
                        Err(error) => return Err(ActionFailure::internal(&error)),
                    }
                }
                Ok(None)
            }
            StepAction::FetchUrl { url } => {
                let mut sink = super::documents::DocumentService::from(&self.context)
                    .begin_upload()
                    .map_err(|error| ActionFailure::internal(&error))?;
                let fetched = self
                    .context
                    .fetcher
                    .fetch(url, sink.as_mut())
                    .map_err(|error| ActionFailure::fetch(&error))?;
                let staged = sink
                    .finish()
                    .map_err(|error| ActionFailure::fetch(&FetchError::Upload(error)))?;
                let part = UploadedPart {
                    filename: fetched.filename,
                    declared_type: None,
                    staged,
                };
                // The document and the step's completion commit together, and
                // only while the step is still in progress: a fetch retried
                // after a crash, or one that lost its step, adds no second
                // document.
                let completed = std::cell::Cell::new(false);
                let outcome = super::documents::DocumentService::from(&self.context).upload_then(
                    owner,
                    UploadDocument::new(part).in_mission(mission.id),
                    &mut |repos| {
                        let now = self.context.clock.now();
                        if complete_step::<DocumentError>(repos, mission, step.id, now)? {
                            completed.set(true);
                            Ok(())
                        } else {
                            Err(DocumentError::NotFound)
                        }
                    },
                );
                match outcome {
                    Ok(_) => Ok(None),
                    Err(DocumentError::NotFound) if !completed.get() => Ok(None),
                    Err(DocumentError::Repository(error)) => Err(ActionFailure::internal(&error)),
                    Err(DocumentError::UnsupportedFileType) => {
                        Err(ActionFailure::permanent("the file type is not allowed"))
                    }
                    Err(error) => Err(ActionFailure::permanent(format!(
                        "The downloaded file was refused: {error}"
                    ))),
                }
            }
        }
    }

    /// Marks a step completed (even if the mission was paused meanwhile:
    /// its result is kept) and continues with the next step if the mission
    /// is still running and that step is automated.
    fn finish_step(&self, mission: &Mission, step: &PlanStep) -> Result<JobOutcome, EngineError> {
        let now = self.context.clock.now();
        let still_running = self.context.write(|repos| -> Result<_, EngineError> {
            if repos.steps().find(mission.id, step.id)?.is_none() {
                return Ok(false);
            }
            complete_step::<EngineError>(repos, mission, step.id, now)?;
            let status = repos
                .missions()
                .find(mission.id, None)?
                .map(|current| current.status);
            if status != Some(MissionStatus::InProgress) {
                return Ok(false);
            }
            let plan = PlanStepTree::of_steps(repos.steps().list(mission.id)?);
            Ok(has_automated_work(&plan))
        })?;
        Ok(if still_running {
            JobOutcome::RunAgainAt(now)
        } else {
            JobOutcome::Done
        })
    }

    /// A step that failed for good fails its mission (`mission_failed`,
    /// the error in `details`).
    fn fail_step(
        &self,
        mission: &Mission,
        step: &PlanStep,
        message: &str,
    ) -> Result<(), EngineError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let changes = StepChanges {
                last_error: Some(Some(message.to_owned())),
                ..StepChanges::status(step.status, StepStatus::Failed, now)
            };
            repos.steps().update(step.id, &changes, now)?;
            record_step(repos, mission, step.id, StepStatus::Failed, now)?;
            let Some(current) = repos.missions().find(mission.id, None)? else { return Ok(()) };
            if current.status.apply(MissionAction::Fail).is_ok() {
                let details = serde_json::json!({"error": message, "step_id": step.id, "step": step.title.as_str()});
                let details = match details {
                    serde_json::Value::Object(map) => Some(map),
                    _ => None,
                };
                apply_action::<EngineError>(
                    repos,
                    &current,
                    current.owner,
                    MissionAction::Fail,
                    now,
                    details,
                )?;
            }
            Ok(())
        })
    }
}

/// Whether this run may run `step`'s action: a timer is safe to look at
/// from any run; any other action belongs to one running job at a time.
fn runs_here(
    repos: &mut dyn Repositories,
    job: &ClaimedJob,
    step: &PlanStep,
    now: DateTime<Utc>,
) -> Result<bool, RepoError> {
    if matches!(step.action, StepAction::Wait { .. }) {
        return Ok(true);
    }
    repos.jobs().take_step(job.id, step.id, now)
}

/// Completes a step this run finished, in the caller's transaction, if it
/// is still in progress; `false` when another run already ended it.
fn complete_step<E: MissionRefusal>(
    repos: &mut dyn Repositories,
    mission: &Mission,
    step: StepId,
    now: DateTime<Utc>,
) -> Result<bool, E> {
    let Some(current) = repos.steps().find(mission.id, step)? else {
        return Ok(false);
    };
    if current.status != StepStatus::InProgress {
        return Ok(false);
    }
    let changes = StepChanges::status(current.status, StepStatus::Completed, now);
    repos.steps().update(step, &changes, now)?;
    record_step(repos, mission, step, StepStatus::Completed, now)?;
    recompute_progress::<E>(repos, mission.id, now)?;
    Ok(true)
}

fn record_step(
    repos: &mut dyn Repositories,
    mission: &Mission,
    step: StepId,
    status: StepStatus,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    let activity = NewActivity::system(SystemActivity::StepUpdated, mission.owner)
        .with_mission(mission.id)
        .with_detail("step_id", step)
        .with_detail("status", status.as_str())
        .with_detail("automated", true);
    repos.activities().record(&activity, now)?;
    Ok(())
}
