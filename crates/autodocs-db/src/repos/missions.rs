use autodocs_domain::MissionId;
use autodocs_domain::RepoError;
use autodocs_domain::mission::{
    Description, Mission, MissionChanges, MissionOrderField, MissionQuery, MissionSortKey,
    MissionStatus, MissionTransition, MissionType, NewMission, Priority, Progress, Title,
};
use autodocs_domain::paging::{Page, PageResult};
use autodocs_domain::ports::{MissionRepository, RepoResult};
use autodocs_domain::user::UserId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::paging::paginate;
use super::{Db, as_count, contains_pattern, lower};
use crate::error::OrRepoError;
use crate::schema::missions_mission as mission;
use crate::time::{StoredTime, from_db, to_db};
use crate::uow::DieselRepos;

#[derive(Queryable, Selectable)]
#[diesel(table_name = mission)]
struct MissionRow {
    id: i64,
    title: String,
    description: String,
    type_: String,
    status: String,
    priority: String,
    progress: i16,
    owner_id: i64,
    deadline: Option<StoredTime>,
    started_at: Option<StoredTime>,
    completed_at: Option<StoredTime>,
    created_at: StoredTime,
    updated_at: StoredTime,
    steps_total: i32,
    steps_completed: i32,
    document_count: i32,
}

/// A stored value that does not parse (the database checks should prevent it).
fn corrupt(id: i64, field: &str, error: impl std::fmt::Display) -> RepoError {
    RepoError::Other(format!(
        "mission {id} has an invalid stored {field}: {error}"
    ))
}

fn to_mission(row: MissionRow) -> RepoResult<Mission> {
    let id = row.id;
    Ok(Mission {
        id: MissionId(id),
        title: Title::parse(&row.title).map_err(|e| corrupt(id, "title", e))?,
        description: Description::parse(&row.description)
            .map_err(|e| corrupt(id, "description", e))?,
        kind: MissionType::parse(&row.type_).map_err(|e| corrupt(id, "type", e))?,
        status: MissionStatus::parse(&row.status).map_err(|e| corrupt(id, "status", e))?,
        priority: Priority::parse(&row.priority).map_err(|e| corrupt(id, "priority", e))?,
        progress: Progress::parse(i64::from(row.progress))
            .map_err(|e| corrupt(id, "progress", e))?,
        owner: UserId(row.owner_id),
        deadline: row.deadline.map(from_db),
        started_at: row.started_at.map(from_db),
        completed_at: row.completed_at.map(from_db),
        created_at: from_db(row.created_at),
        updated_at: from_db(row.updated_at),
        steps_total: as_count(i64::from(row.steps_total)),
        steps_completed: as_count(i64::from(row.steps_completed)),
        document_count: as_count(i64::from(row.document_count)),
    })
}

/// Appends one sort key. Deadlines without a value sort last ascending and
/// first descending on both backends (PostgreSQL's rule).
fn then_order(
    query: mission::BoxedQuery<'_, Db>,
    item: MissionOrderField,
) -> mission::BoxedQuery<'_, Db> {
    use MissionSortKey as Key;
    match (item.field, item.descending) {
        (Key::CreatedAt, false) => query.then_order_by(mission::created_at.asc()),
        (Key::CreatedAt, true) => query.then_order_by(mission::created_at.desc()),
        (Key::UpdatedAt, false) => query.then_order_by(mission::updated_at.asc()),
        (Key::UpdatedAt, true) => query.then_order_by(mission::updated_at.desc()),
        (Key::Priority, false) => query.then_order_by(mission::priority_rank.asc()),
        (Key::Priority, true) => query.then_order_by(mission::priority_rank.desc()),
        (Key::Progress, false) => query.then_order_by(mission::progress.asc()),
        (Key::Progress, true) => query.then_order_by(mission::progress.desc()),
        (Key::Title, false) => query.then_order_by(mission::title.asc()),
        (Key::Title, true) => query.then_order_by(mission::title.desc()),
        (Key::Deadline, false) => query
            .then_order_by(mission::deadline.is_null().asc())
            .then_order_by(mission::deadline.asc()),
        (Key::Deadline, true) => query
            .then_order_by(mission::deadline.is_null().desc())
            .then_order_by(mission::deadline.desc()),
    }
}

impl DieselRepos<'_> {
    /// A mission row, with the counts its triggers keep.
    /// Fixed-shape queries (one per case, not one boxed query): diesel
    /// caches their prepared statements by type, without rendering the SQL
    /// again on every request.
    fn mission_row(&mut self, id: i64, owner: Option<UserId>) -> RepoResult<Option<MissionRow>> {
        let by_id = mission::table.filter(mission::id.eq(id));
        match owner {
            Some(owner) => by_id
                .filter(mission::owner_id.eq(owner.0))
                .select(MissionRow::as_select())
                .get_result(self.conn),
            None => by_id.select(MissionRow::as_select()).get_result(self.conn),
        }
        .optional()
        .repo()
    }

    /// The page every client asks for first: their own missions, no other
    /// filter, the default order. A fixed-shape query, so its statement is
    /// cached by type (staff lists across owners take the general path).
    /// The owner's first page and their mission count.
    ///
    /// On PostgreSQL in one statement, the count a window over the owner's
    /// rows (no rows: the owner has none, so 0): a round trip costs more
    /// than reading the owner's rows. On SQLite, in process, the window
    /// made SQLite read and sort every row of the owner before the limit
    /// (the list fell from ~27,000 to ~10,000 req/s), while an indexed
    /// `COUNT(*)` and a page read by the index cost no round trip.
    fn first_page_of(&mut self, owner: UserId, limit: i64) -> RepoResult<(i64, Vec<MissionRow>)> {
        let owned = mission::table.filter(mission::owner_id.eq(owner.0));
        let newest_first = (mission::created_at.desc(), mission::id.desc());
        if matches!(self.conn, crate::connection::AnyConnection::Sqlite(_)) {
            let count = owned.count().get_result(self.conn).repo()?;
            let rows = owned
                .order(newest_first)
                .select(MissionRow::as_select())
                .limit(limit)
                .load(self.conn)
                .repo()?;
            return Ok((count, rows));
        }
        let rows: Vec<(MissionRow, i64)> = owned
            .order(newest_first)
            .select((MissionRow::as_select(), diesel::dsl::count_star().over()))
            .limit(limit)
            .load(self.conn)
            .repo()?;
        let count = rows.first().map_or(0, |(_, count)| *count);
        Ok((count, rows.into_iter().map(|(row, _)| row).collect()))
    }
}

impl MissionRepository for DieselRepos<'_> {
    fn create(
        &mut self,
        owner: UserId,
        new: &NewMission,
        now: DateTime<Utc>,
    ) -> RepoResult<Mission> {
        let row: MissionRow = diesel::insert_into(mission::table)
            .values((
                mission::title.eq(new.title.as_str()),
                mission::description.eq(new.description.as_str()),
                mission::type_.eq(new.kind.as_str()),
                mission::status.eq(MissionStatus::Pending.as_str()),
                mission::priority.eq(new.priority.as_str()),
                mission::priority_rank.eq(new.priority.rank()),
                mission::progress.eq(i16::from(Progress::ZERO.value())),
                mission::owner_id.eq(owner.0),
                mission::deadline.eq(new.deadline.map(to_db)),
                mission::created_at.eq(to_db(now)),
                mission::updated_at.eq(to_db(now)),
            ))
            .returning(<MissionRow as Selectable<Db>>::construct_selection())
            .get_result(self.conn)
            .repo()?;
        // A row just inserted is this transaction's alone; it comes back
        // with the insert (defaults included), so there is no read-back.
        self.mission_row_locked(row.id);
        to_mission(row)
    }

    fn lock(&mut self, id: MissionId, owner: Option<UserId>) -> RepoResult<Option<Mission>> {
        let id = id.0;
        self.lock_mission_row(id)?;
        self.find(MissionId(id), owner)
    }

    fn find(&mut self, id: MissionId, owner: Option<UserId>) -> RepoResult<Option<Mission>> {
        let id = id.0;
        self.mission_row(id, owner)?.map(to_mission).transpose()
    }

    fn list(&mut self, query: &MissionQuery) -> RepoResult<PageResult<Mission>> {
        let unfiltered = query.statuses.is_empty()
            && query.kinds.is_empty()
            && query.priorities.is_empty()
            && query.search.as_deref().is_none_or(str::is_empty);
        let default_order =
            query.ordering.is_empty() || query.ordering == [MissionOrderField::DEFAULT];
        let first_page = unfiltered && default_order && query.page.page() == 1;
        if let Some(owner) = query.owner.filter(|_| first_page) {
            let limit = i64::from(query.page.page_size());
            let (count, rows) = self.first_page_of(owner, limit)?;
            let items = rows
                .into_iter()
                .map(to_mission)
                .collect::<RepoResult<Vec<_>>>()?;
            return Ok(PageResult::Found(Page {
                count: as_count(count),
                page: 1,
                page_size: query.page.page_size(),
                items,
            }));
        }
        let filtered = || {
            let mut select = mission::table.into_boxed::<Db>();
            if let Some(owner) = query.owner {
                select = select.filter(mission::owner_id.eq(owner.0));
            }
            if !query.statuses.is_empty() {
                let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
                select = select.filter(mission::status.eq_any(statuses));
            }
            if !query.kinds.is_empty() {
                let kinds: Vec<&str> = query.kinds.iter().map(|k| k.as_str()).collect();
                select = select.filter(mission::type_.eq_any(kinds));
            }
            if !query.priorities.is_empty() {
                let ranks: Vec<i16> = query.priorities.iter().map(|p| p.rank()).collect();
                select = select.filter(mission::priority_rank.eq_any(ranks));
            }
            if let Some(search) = query.search.as_deref().filter(|search| !search.is_empty()) {
                let pattern = contains_pattern(search);
                select = select.filter(
                    lower(mission::title)
                        .like(pattern.clone())
                        .escape('\\')
                        .or(lower(mission::description).like(pattern).escape('\\')),
                );
            }
            select
        };
        let ordering: &[MissionOrderField] = if query.ordering.is_empty() {
            &[MissionOrderField::DEFAULT]
        } else {
            &query.ordering
        };
        let mut ordered = filtered();
        for item in ordering {
            ordered = then_order(ordered, *item);
        }
        // A total order, so pages never overlap: the id breaks ties, in the
        // direction of the first key.
        ordered = if ordering[0].descending {
            ordered.then_order_by(mission::id.desc())
        } else {
            ordered.then_order_by(mission::id.asc())
        };
        let rows = ordered.select(MissionRow::as_select());
        paginate(self.conn, &query.page, filtered().count(), rows, to_mission)
    }

    fn update(
        &mut self,
        id: MissionId,
        changes: &MissionChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let id = id.0;
        #[derive(AsChangeset)]
        #[diesel(table_name = mission)]
        struct Changeset<'a> {
            title: Option<&'a str>,
            description: Option<&'a str>,
            type_: Option<&'static str>,
            priority: Option<&'static str>,
            priority_rank: Option<i16>,
            deadline: Option<Option<NaiveDateTime>>,
            updated_at: NaiveDateTime,
        }
        let changeset = Changeset {
            title: changes.title.as_ref().map(Title::as_str),
            description: changes.description.as_ref().map(Description::as_str),
            type_: changes.kind.map(MissionType::as_str),
            priority: changes.priority.map(Priority::as_str),
            priority_rank: changes.priority.map(Priority::rank),
            deadline: changes.deadline.map(|deadline| deadline.map(to_db)),
            updated_at: to_db(now),
        };
        diesel::update(mission::table.find(id))
            .set(changeset)
            .execute(self.conn)
            .repo()?;
        self.mission_row_locked(id);
        Ok(())
    }

    fn transition(
        &mut self,
        id: MissionId,
        from: &[MissionStatus],
        change: &MissionTransition,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let id = id.0;
        #[derive(AsChangeset)]
        #[diesel(table_name = mission)]
        struct Changeset {
            status: &'static str,
            started_at: Option<Option<NaiveDateTime>>,
            completed_at: Option<Option<NaiveDateTime>>,
            progress: Option<i16>,
            updated_at: NaiveDateTime,
        }
        if from.is_empty() {
            return Ok(false);
        }
        let changeset = Changeset {
            status: change.to.as_str(),
            started_at: change.started_at.map(|at| Some(to_db(at))),
            completed_at: change.completed_at.map(|at| Some(to_db(at))),
            progress: change.progress.map(|progress| i16::from(progress.value())),
            updated_at: to_db(now),
        };
        let from: Vec<&str> = from.iter().map(|status| status.as_str()).collect();
        // One conditional UPDATE: of two racing callers only one matches.
        let updated = diesel::update(
            mission::table
                .filter(mission::id.eq(id))
                .filter(mission::status.eq_any(from)),
        )
        .set(changeset)
        .execute(self.conn)
        .repo()?;
        if updated == 1 {
            self.mission_row_locked(id);
        }
        Ok(updated == 1)
    }

    fn set_progress(
        &mut self,
        id: MissionId,
        progress: Progress,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let id = id.0;
        diesel::update(mission::table.find(id))
            .set((
                mission::progress.eq(i16::from(progress.value())),
                mission::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        self.mission_row_locked(id);
        Ok(())
    }

    fn overdue(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<Mission>> {
        let open = [
            MissionStatus::Pending,
            MissionStatus::InProgress,
            MissionStatus::Paused,
        ]
        .map(MissionStatus::as_str);
        let rows: Vec<MissionRow> = mission::table
            .filter(mission::deadline.lt(to_db(now)))
            .filter(mission::overdue_notified_at.is_null())
            .filter(mission::status.eq_any(open))
            .order(mission::id.asc())
            .limit(500)
            .select(MissionRow::as_select())
            .load(self.conn)
            .repo()?;
        rows.into_iter().map(to_mission).collect()
    }

    fn mark_overdue(&mut self, id: MissionId, now: DateTime<Utc>) -> RepoResult<bool> {
        let id = id.0;
        let updated = diesel::update(
            mission::table
                .filter(mission::id.eq(id))
                .filter(mission::overdue_notified_at.is_null()),
        )
        .set(mission::overdue_notified_at.eq(Some(to_db(now))))
        .execute(self.conn)
        .repo()?;
        if updated == 1 {
            self.mission_row_locked(id);
        }
        Ok(updated == 1)
    }

    fn delete(&mut self, id: MissionId, protected: MissionStatus) -> RepoResult<bool> {
        let id = id.0;
        let deleted = diesel::delete(
            mission::table
                .filter(mission::id.eq(id))
                .filter(mission::status.ne(protected.as_str())),
        )
        .execute(self.conn)
        .repo()?;
        Ok(deleted > 0)
    }
}
