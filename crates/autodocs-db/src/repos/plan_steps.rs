use std::collections::HashMap;

use autodocs_domain::RepoError;
use autodocs_domain::mission::{Description, Title};
use autodocs_domain::paging::PageResult;
use autodocs_domain::plan_step::{
    NewPlanStep, PlanStep, StepAction, StepChanges, StepQuery, StepStatus,
};
use autodocs_domain::ports::{PlanStepRepository, RepoResult};
use autodocs_domain::{MissionId, StepId};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::paging::paginate;
use super::{Db, contains_pattern, lower};
use crate::error::OrRepoError;
use crate::schema::missions_mission as mission;
use crate::schema::missions_planstep as step;
use crate::time::{StoredTime, from_db, to_db};
use crate::uow::DieselRepos;

#[derive(Queryable, Selectable)]
#[diesel(table_name = step)]
struct StepRow {
    id: i64,
    mission_id: i64,
    parent_id: Option<i64>,
    title: String,
    description: String,
    position: i32,
    depth: i16,
    status: String,
    action: String,
    last_error: Option<String>,
    started_at: Option<StoredTime>,
    completed_at: Option<StoredTime>,
    created_at: StoredTime,
    updated_at: StoredTime,
}

/// A stored value that does not parse (the database checks should prevent it).
fn corrupt(id: i64, field: &str, error: impl std::fmt::Display) -> RepoError {
    RepoError::Other(format!("step {id} has an invalid stored {field}: {error}"))
}

/// The stored action; a manual step if the text is somehow not a valid action.
fn parse_action(stored: &str) -> StepAction {
    serde_json::from_str(stored)
        .ok()
        .and_then(|value| StepAction::parse(&value).ok())
        .unwrap_or(StepAction::Manual)
}

fn to_step(row: StepRow) -> RepoResult<PlanStep> {
    let id = row.id;
    Ok(PlanStep {
        id: StepId(id),
        mission: MissionId(row.mission_id),
        parent: row.parent_id.map(StepId),
        title: Title::parse(&row.title).map_err(|e| corrupt(id, "title", e))?,
        description: Description::parse(&row.description)
            .map_err(|e| corrupt(id, "description", e))?,
        order: row.position,
        depth: u8::try_from(row.depth).map_err(|e| corrupt(id, "depth", e))?,
        status: StepStatus::parse(&row.status).map_err(|e| corrupt(id, "status", e))?,
        action: parse_action(&row.action),
        last_error: row.last_error,
        started_at: row.started_at.map(from_db),
        completed_at: row.completed_at.map(from_db),
        created_at: from_db(row.created_at),
        updated_at: from_db(row.updated_at),
    })
}

impl PlanStepRepository for DieselRepos<'_> {
    fn list(&mut self, mission: MissionId) -> RepoResult<Vec<PlanStep>> {
        let mission = mission.0;
        let rows: Vec<StepRow> = step::table
            .filter(step::mission_id.eq(mission))
            .select(StepRow::as_select())
            .order((step::position.asc(), step::id.asc()))
            .load(self.conn)
            .repo()?;
        self.steps_seen(rows.iter().map(|row| (row.id, row.mission_id)));
        rows.into_iter().map(to_step).collect()
    }

    fn find(&mut self, mission: MissionId, id: StepId) -> RepoResult<Option<PlanStep>> {
        let mission = mission.0;
        let id = id.0;
        let row: Option<StepRow> = step::table
            .filter(step::id.eq(id))
            .filter(step::mission_id.eq(mission))
            .select(StepRow::as_select())
            .first(self.conn)
            .optional()
            .repo()?;
        self.steps_seen(row.iter().map(|row| (row.id, row.mission_id)));
        row.map(to_step).transpose()
    }

    fn mission_of(&mut self, id: StepId) -> RepoResult<Option<MissionId>> {
        let mission: Option<i64> = step::table
            .filter(step::id.eq(id.0))
            .select(step::mission_id)
            .first(self.conn)
            .optional()
            .repo()?;
        Ok(mission.map(MissionId))
    }

    fn search(&mut self, query: &StepQuery) -> RepoResult<PageResult<PlanStep>> {
        let filtered = || {
            let mut select = step::table.into_boxed::<Db>();
            if let Some(owner) = query.owner {
                select = select.filter(
                    step::mission_id.eq_any(
                        mission::table
                            .filter(mission::owner_id.eq(owner.0))
                            .select(mission::id),
                    ),
                );
            }
            if let Some(mission) = query.mission {
                select = select.filter(step::mission_id.eq(mission.0));
            }
            if !query.statuses.is_empty() {
                let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
                select = select.filter(step::status.eq_any(statuses));
            }
            if let Some(search) = query.search.as_deref().filter(|search| !search.is_empty()) {
                select = select.filter(
                    lower(step::title)
                        .like(contains_pattern(search))
                        .escape('\\'),
                );
            }
            select
        };
        let rows = filtered()
            .order((
                step::mission_id.desc(),
                step::depth.asc(),
                step::position.asc(),
                step::id.asc(),
            ))
            .select(StepRow::as_select());
        paginate(self.conn, &query.page, filtered().count(), rows, to_step)
    }

    fn create(&mut self, new: &NewPlanStep, now: DateTime<Utc>) -> RepoResult<PlanStep> {
        self.lock_mission_row(new.mission.0)?;
        let row: StepRow = diesel::insert_into(step::table)
            .values((
                step::mission_id.eq(new.mission.0),
                step::parent_id.eq(new.parent.map(|parent| parent.0)),
                step::title.eq(new.title.as_str()),
                step::description.eq(new.description.as_str()),
                step::position.eq(new.order),
                step::depth.eq(i16::from(new.depth)),
                step::status.eq(StepStatus::Pending.as_str()),
                step::action.eq(new.action.to_json().to_string()),
                step::created_at.eq(to_db(now)),
                step::updated_at.eq(to_db(now)),
            ))
            .returning(<StepRow as Selectable<Db>>::construct_selection())
            .get_result(self.conn)
            .repo()?;
        // The row as written comes back with the insert: no read-back.
        self.steps_seen([(row.id, row.mission_id)]);
        to_step(row)
    }

    fn update(&mut self, id: StepId, changes: &StepChanges, now: DateTime<Utc>) -> RepoResult<()> {
        let id = id.0;
        #[derive(AsChangeset)]
        #[diesel(table_name = step)]
        struct Changeset<'a> {
            title: Option<&'a str>,
            description: Option<&'a str>,
            position: Option<i32>,
            parent_id: Option<Option<i64>>,
            depth: Option<i16>,
            status: Option<&'static str>,
            started_at: Option<Option<NaiveDateTime>>,
            completed_at: Option<Option<NaiveDateTime>>,
            last_error: Option<Option<&'a str>>,
            updated_at: NaiveDateTime,
        }
        let changeset = Changeset {
            title: changes.title.as_ref().map(Title::as_str),
            description: changes.description.as_ref().map(Description::as_str),
            position: changes.order,
            parent_id: changes
                .parent
                .map(|(parent, _)| parent.map(|parent| parent.0)),
            depth: changes.parent.map(|(_, depth)| i16::from(depth)),
            status: changes.status.map(StepStatus::as_str),
            started_at: changes.started_at.map(|at| at.map(to_db)),
            completed_at: changes.completed_at.map(|at| at.map(to_db)),
            last_error: changes.last_error.as_ref().map(|error| error.as_deref()),
            updated_at: to_db(now),
        };
        self.lock_mission_of_step(id)?;
        diesel::update(step::table.find(id))
            .set(changeset)
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn start_pending(&mut self, id: StepId, now: DateTime<Utc>) -> RepoResult<bool> {
        let id = id.0;
        self.lock_mission_of_step(id)?;
        let updated = diesel::update(
            step::table
                .filter(step::id.eq(id))
                .filter(step::status.eq(StepStatus::Pending.as_str())),
        )
        .set((
            step::status.eq(StepStatus::InProgress.as_str()),
            step::started_at.eq(Some(to_db(now))),
            step::completed_at.eq(None::<chrono::NaiveDateTime>),
            step::updated_at.eq(to_db(now)),
        ))
        .execute(self.conn)
        .repo()?;
        Ok(updated == 1)
    }

    fn set_depth(&mut self, id: StepId, depth: u8) -> RepoResult<()> {
        let id = id.0;
        self.lock_mission_of_step(id)?;
        diesel::update(step::table.find(id))
            .set(step::depth.eq(i16::from(depth)))
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn delete(&mut self, id: StepId) -> RepoResult<u64> {
        let id = id.0;
        let mission: Option<i64> = step::table
            .find(id)
            .select(step::mission_id)
            .first(self.conn)
            .optional()
            .repo()?;
        let Some(mission) = mission else {
            return Ok(0);
        };
        self.lock_mission_row(mission)?;
        // Count the subtree first: the foreign key's ON DELETE CASCADE removes
        // the descendants, but the DELETE only reports the one row it names.
        let edges: Vec<(i64, Option<i64>)> = step::table
            .filter(step::mission_id.eq(mission))
            .select((step::id, step::parent_id))
            .load(self.conn)
            .repo()?;
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for (child, parent) in edges {
            if let Some(parent) = parent {
                children.entry(parent).or_default().push(child);
            }
        }
        let mut subtree: u64 = 0;
        let mut pending = vec![id];
        while let Some(next) = pending.pop() {
            subtree += 1;
            if let Some(kids) = children.remove(&next) {
                pending.extend(kids);
            }
        }
        let deleted = diesel::delete(step::table.find(id))
            .execute(self.conn)
            .repo()?;
        Ok(if deleted == 0 { 0 } else { subtree })
    }

    fn skip_open(&mut self, mission: MissionId, now: DateTime<Utc>) -> RepoResult<u64> {
        let mission = mission.0;
        self.lock_mission_row(mission)?;
        let open: Vec<&str> = StepStatus::OPEN.iter().map(|s| s.as_str()).collect();
        let skipped = diesel::update(
            step::table
                .filter(step::mission_id.eq(mission))
                .filter(step::status.eq_any(open)),
        )
        .set((
            step::status.eq(StepStatus::Skipped.as_str()),
            step::completed_at.eq(Some(to_db(now))),
            step::updated_at.eq(to_db(now)),
        ))
        .execute(self.conn)
        .repo()?;
        Ok(skipped as u64)
    }

    fn next_order(&mut self, mission: MissionId, parent: Option<StepId>) -> RepoResult<i32> {
        let mission = mission.0;
        let parent = parent.map(|parent| parent.0);
        let mut query = step::table
            .filter(step::mission_id.eq(mission))
            .into_boxed();
        query = match parent {
            Some(parent) => query.filter(step::parent_id.eq(parent)),
            None => query.filter(step::parent_id.is_null()),
        };
        let last: Option<i32> = query
            .select(diesel::dsl::max(step::position))
            .get_result(self.conn)
            .repo()?;
        Ok(last.map_or(0, |last| last.saturating_add(1)))
    }
}
