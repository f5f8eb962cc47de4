//! Missions and their plan steps.

use std::cmp::Ordering;
use std::collections::HashMap;

use autodocs_domain::RepoError;
use autodocs_domain::mission::{
    Mission, MissionChanges, MissionOrderField, MissionQuery, MissionSortKey, MissionStatus,
    MissionTransition, NewMission, Progress,
};
use autodocs_domain::paging::PageResult;
use autodocs_domain::plan_step::{NewPlanStep, PlanStep, StepChanges, StepQuery, StepStatus};
use autodocs_domain::ports::{MissionRepository, PlanStepRepository, RepoResult};
use autodocs_domain::user::UserId;
use autodocs_domain::{MissionId, StepId};
use chrono::{DateTime, Utc};

use crate::state::{MissionRow, contains_folded, missing, page_of, sort_by_ordering};
use crate::uow::MemoryRepos;

/// Missions' open statuses, as `overdue` reads them.
const OPEN: [MissionStatus; 3] = [
    MissionStatus::Pending,
    MissionStatus::InProgress,
    MissionStatus::Paused,
];

/// One sort key. Deadlines without a value sort last ascending and first
/// descending (PostgreSQL's rule, which the diesel adapter applies on both
/// backends). Titles compare by their bytes (SQLite's `BINARY` collation).
fn compare_missions(a: &Mission, b: &Mission, item: MissionOrderField) -> Ordering {
    let ascending = match item.field {
        MissionSortKey::CreatedAt => a.created_at.cmp(&b.created_at),
        MissionSortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        MissionSortKey::Priority => a.priority.rank().cmp(&b.priority.rank()),
        MissionSortKey::Progress => a.progress.value().cmp(&b.progress.value()),
        MissionSortKey::Title => a.title.as_str().cmp(b.title.as_str()),
        MissionSortKey::Deadline => match (a.deadline, b.deadline) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(&b),
        },
    };
    if item.descending {
        ascending.reverse()
    } else {
        ascending
    }
}

impl MemoryRepos {
    fn mission_row(&mut self, id: MissionId) -> Option<&mut MissionRow> {
        self.state.missions.get_mut(&id)
    }
}

impl MissionRepository for MemoryRepos {
    fn create(
        &mut self,
        owner: UserId,
        new: &NewMission,
        now: DateTime<Utc>,
    ) -> RepoResult<Mission> {
        if !self.state.users.contains_key(&owner.0) {
            return Err(missing("the mission's owner"));
        }
        self.state.ids.missions += 1;
        let mission = Mission {
            id: MissionId(self.state.ids.missions),
            title: new.title.clone(),
            description: new.description.clone(),
            kind: new.kind,
            status: MissionStatus::Pending,
            priority: new.priority,
            progress: Progress::ZERO,
            owner,
            deadline: new.deadline,
            started_at: None,
            completed_at: None,
            created_at: now,
            updated_at: now,
            steps_total: 0,
            steps_completed: 0,
            document_count: 0,
        };
        self.state.missions.insert(
            mission.id,
            MissionRow {
                mission: mission.clone(),
                overdue_notified_at: None,
            },
        );
        Ok(mission)
    }

    fn find(&mut self, id: MissionId, owner: Option<UserId>) -> RepoResult<Option<Mission>> {
        Ok(self
            .state
            .missions
            .get(&id)
            .filter(|row| owner.is_none_or(|owner| row.mission.owner == owner))
            .map(|row| self.state.mission_with_counts(row)))
    }

    fn lock(&mut self, id: MissionId, owner: Option<UserId>) -> RepoResult<Option<Mission>> {
        // Transactions run one at a time: holding the state is the lock.
        MissionRepository::find(self, id, owner)
    }

    fn list(&mut self, query: &MissionQuery) -> RepoResult<PageResult<Mission>> {
        let search = query.search.as_deref().filter(|search| !search.is_empty());
        let mut missions: Vec<Mission> = self
            .state
            .missions
            .values()
            .map(|row| &row.mission)
            .filter(|m| query.owner.is_none_or(|owner| m.owner == owner))
            .filter(|m| query.statuses.is_empty() || query.statuses.contains(&m.status))
            .filter(|m| query.kinds.is_empty() || query.kinds.contains(&m.kind))
            .filter(|m| {
                query.priorities.is_empty()
                    || query
                        .priorities
                        .iter()
                        .any(|p| p.rank() == m.priority.rank())
            })
            .filter(|m| {
                search.is_none_or(|term| {
                    contains_folded(m.title.as_str(), term)
                        || contains_folded(m.description.as_str(), term)
                })
            })
            .cloned()
            .collect();
        sort_by_ordering(
            &mut missions,
            &query.ordering,
            MissionOrderField::DEFAULT,
            compare_missions,
            |item| item.id,
        );
        let page = page_of(missions, query.page);
        let state = &self.state;
        Ok(page.map(|mission| match state.missions.get(&mission.id) {
            Some(row) => state.mission_with_counts(row),
            None => mission,
        }))
    }

    fn update(
        &mut self,
        id: MissionId,
        changes: &MissionChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        if let Some(row) = self.mission_row(id) {
            let mission = &mut row.mission;
            if let Some(title) = &changes.title {
                mission.title = title.clone();
            }
            if let Some(description) = &changes.description {
                mission.description = description.clone();
            }
            if let Some(kind) = changes.kind {
                mission.kind = kind;
            }
            if let Some(priority) = changes.priority {
                mission.priority = priority;
            }
            if let Some(deadline) = changes.deadline {
                mission.deadline = deadline;
            }
            mission.updated_at = now;
        }
        Ok(())
    }

    fn transition(
        &mut self,
        id: MissionId,
        from: &[MissionStatus],
        change: &MissionTransition,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let Some(row) = self.mission_row(id) else {
            return Ok(false);
        };
        let mission = &mut row.mission;
        if !from.contains(&mission.status) {
            return Ok(false);
        }
        mission.status = change.to;
        if let Some(at) = change.started_at {
            mission.started_at = Some(at);
        }
        if let Some(at) = change.completed_at {
            mission.completed_at = Some(at);
        }
        if let Some(progress) = change.progress {
            mission.progress = progress;
        }
        mission.updated_at = now;
        Ok(true)
    }

    fn set_progress(
        &mut self,
        id: MissionId,
        progress: Progress,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        if let Some(row) = self.mission_row(id) {
            row.mission.progress = progress;
            row.mission.updated_at = now;
        }
        Ok(())
    }

    fn overdue(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<Mission>> {
        Ok(self
            .state
            .missions
            .values()
            .filter(|row| row.mission.deadline.is_some_and(|deadline| deadline < now))
            .filter(|row| row.overdue_notified_at.is_none())
            .filter(|row| OPEN.contains(&row.mission.status))
            .take(500)
            .map(|row| self.state.mission_with_counts(row))
            .collect())
    }

    fn mark_overdue(&mut self, id: MissionId, now: DateTime<Utc>) -> RepoResult<bool> {
        match self.mission_row(id) {
            Some(row) if row.overdue_notified_at.is_none() => {
                row.overdue_notified_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn delete(&mut self, id: MissionId, protected: MissionStatus) -> RepoResult<bool> {
        match self.state.missions.get(&id) {
            Some(row) if row.mission.status != protected => Ok(self.state.delete_mission(id)),
            _ => Ok(false),
        }
    }
}

impl PlanStepRepository for MemoryRepos {
    fn list(&mut self, mission: MissionId) -> RepoResult<Vec<PlanStep>> {
        let mut steps: Vec<PlanStep> = self
            .state
            .steps
            .values()
            .filter(|step| step.mission == mission)
            .cloned()
            .collect();
        steps.sort_by_key(|step| (step.order, step.id));
        Ok(steps)
    }

    fn find(&mut self, mission: MissionId, id: StepId) -> RepoResult<Option<PlanStep>> {
        Ok(self
            .state
            .steps
            .get(&id)
            .filter(|step| step.mission == mission)
            .cloned())
    }

    fn mission_of(&mut self, id: StepId) -> RepoResult<Option<MissionId>> {
        Ok(self.state.steps.get(&id).map(|step| step.mission))
    }

    fn search(&mut self, query: &StepQuery) -> RepoResult<PageResult<PlanStep>> {
        let search = query.search.as_deref().filter(|search| !search.is_empty());
        let missions = &self.state.missions;
        let mut steps: Vec<PlanStep> = self
            .state
            .steps
            .values()
            .filter(|step| {
                query.owner.is_none_or(|owner| {
                    missions
                        .get(&step.mission)
                        .is_some_and(|row| row.mission.owner == owner)
                })
            })
            .filter(|step| query.mission.is_none_or(|mission| step.mission == mission))
            .filter(|step| query.statuses.is_empty() || query.statuses.contains(&step.status))
            .filter(|step| search.is_none_or(|term| contains_folded(step.title.as_str(), term)))
            .cloned()
            .collect();
        steps.sort_by_key(|step| {
            (
                std::cmp::Reverse(step.mission),
                step.depth,
                step.order,
                step.id,
            )
        });
        Ok(page_of(steps, query.page))
    }

    fn create(&mut self, new: &NewPlanStep, now: DateTime<Utc>) -> RepoResult<PlanStep> {
        if !self.state.missions.contains_key(&new.mission) {
            return Err(missing("the step's mission"));
        }
        if new
            .parent
            .is_some_and(|parent| !self.state.steps.contains_key(&parent))
        {
            return Err(missing("the step's parent"));
        }
        if !(1..=5).contains(&new.depth) {
            return Err(RepoError::ConstraintViolation(
                "missions_planstep_depth_check".into(),
            ));
        }
        self.state.ids.steps += 1;
        let step = PlanStep {
            id: StepId(self.state.ids.steps),
            mission: new.mission,
            parent: new.parent,
            title: new.title.clone(),
            description: new.description.clone(),
            order: new.order,
            depth: new.depth,
            status: StepStatus::Pending,
            action: new.action.clone(),
            last_error: None,
            started_at: None,
            completed_at: None,
            created_at: now,
            updated_at: now,
        };
        self.state.steps.insert(step.id, step.clone());
        Ok(step)
    }

    fn update(&mut self, id: StepId, changes: &StepChanges, now: DateTime<Utc>) -> RepoResult<()> {
        if let Some((Some(parent), _)) = changes.parent
            && !self.state.steps.contains_key(&parent)
        {
            return Err(missing("the step's parent"));
        }
        if let Some((_, depth)) = changes.parent
            && !(1..=5).contains(&depth)
        {
            return Err(RepoError::ConstraintViolation(
                "missions_planstep_depth_check".into(),
            ));
        }
        let Some(step) = self.state.steps.get_mut(&id) else {
            return Ok(());
        };
        if let Some(title) = &changes.title {
            step.title = title.clone();
        }
        if let Some(description) = &changes.description {
            step.description = description.clone();
        }
        if let Some(order) = changes.order {
            step.order = order;
        }
        if let Some((parent, depth)) = changes.parent {
            step.parent = parent;
            step.depth = depth;
        }
        if let Some(status) = changes.status {
            step.status = status;
        }
        if let Some(at) = changes.started_at {
            step.started_at = at;
        }
        if let Some(at) = changes.completed_at {
            step.completed_at = at;
        }
        if let Some(error) = &changes.last_error {
            step.last_error = error.clone();
        }
        step.updated_at = now;
        Ok(())
    }

    fn start_pending(&mut self, id: StepId, now: DateTime<Utc>) -> RepoResult<bool> {
        match self.state.steps.get_mut(&id) {
            Some(step) if step.status == StepStatus::Pending => {
                step.status = StepStatus::InProgress;
                step.started_at = Some(now);
                step.completed_at = None;
                step.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn set_depth(&mut self, id: StepId, depth: u8) -> RepoResult<()> {
        if !(1..=5).contains(&depth) {
            return Err(RepoError::ConstraintViolation(
                "missions_planstep_depth_check".into(),
            ));
        }
        if let Some(step) = self.state.steps.get_mut(&id) {
            step.depth = depth;
        }
        Ok(())
    }

    fn delete(&mut self, id: StepId) -> RepoResult<u64> {
        if !self.state.steps.contains_key(&id) {
            return Ok(0);
        }
        let mut children: HashMap<StepId, Vec<StepId>> = HashMap::new();
        for step in self.state.steps.values() {
            if let Some(parent) = step.parent {
                children.entry(parent).or_default().push(step.id);
            }
        }
        let mut subtree = Vec::new();
        let mut pending = vec![id];
        while let Some(next) = pending.pop() {
            subtree.push(next);
            if let Some(kids) = children.remove(&next) {
                pending.extend(kids);
            }
        }
        self.state.delete_steps(&subtree);
        Ok(subtree.len() as u64)
    }

    fn skip_open(&mut self, mission: MissionId, now: DateTime<Utc>) -> RepoResult<u64> {
        let mut skipped = 0;
        for step in self.state.steps.values_mut() {
            if step.mission == mission && StepStatus::OPEN.contains(&step.status) {
                step.status = StepStatus::Skipped;
                step.completed_at = Some(now);
                step.updated_at = now;
                skipped += 1;
            }
        }
        Ok(skipped)
    }

    fn next_order(&mut self, mission: MissionId, parent: Option<StepId>) -> RepoResult<i32> {
        let last = self
            .state
            .steps
            .values()
            .filter(|step| step.mission == mission && step.parent == parent)
            .map(|step| step.order)
            .max();
        Ok(last.map_or(0, |last| last.saturating_add(1)))
    }
}
