use autodocs_domain::activity_log::{Activity, ActivityQuery, NewActivity};
use autodocs_domain::paging::PageResult;
use autodocs_domain::ports::{ActivityRepository, RepoResult};
use autodocs_domain::user::UserId;
use autodocs_domain::{ActivityId, DocumentId, MissionId};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::paging::paginate;
use super::{contains_pattern, json_object, json_text, lower};
use crate::error::OrRepoError;
use crate::schema::activities_activity as activity;
use crate::time::{from_db, to_db};
use crate::uow::DieselRepos;

#[derive(Queryable, Selectable)]
#[diesel(table_name = activity)]
struct ActivityRow {
    id: i64,
    type_: String,
    message: String,
    details: String,
    user_id: Option<i64>,
    mission_id: Option<i64>,
    document_id: Option<i64>,
    timestamp: NaiveDateTime,
}

impl From<ActivityRow> for Activity {
    fn from(row: ActivityRow) -> Self {
        Activity {
            id: ActivityId(row.id),
            kind: row.type_,
            message: row.message,
            details: json_object(&row.details),
            user: row.user_id.map(UserId),
            mission: row.mission_id.map(MissionId),
            document: row.document_id.map(DocumentId),
            timestamp: from_db(row.timestamp),
        }
    }
}

impl ActivityRepository for DieselRepos<'_> {
    fn record(&mut self, new: &NewActivity, now: DateTime<Utc>) -> RepoResult<Activity> {
        diesel::insert_into(activity::table)
            .values((
                activity::type_.eq(&new.kind),
                activity::message.eq(&new.message),
                activity::details.eq(json_text(&new.details)),
                activity::user_id.eq(new.user.map(|user| user.0)),
                activity::mission_id.eq(new.mission.map(|mission| mission.0)),
                activity::document_id.eq(new.document.map(|document| document.0)),
                activity::timestamp.eq(to_db(now)),
            ))
            .returning(activity::id)
            .get_result(self.conn)
            .map(|id| Activity {
                id: ActivityId(id),
                kind: new.kind.clone(),
                message: new.message.clone(),
                details: new.details.clone(),
                user: new.user,
                mission: new.mission,
                document: new.document,
                timestamp: now,
            })
            .repo()
    }

    fn find(&mut self, id: ActivityId, owner: Option<UserId>) -> RepoResult<Option<Activity>> {
        let id = id.0;
        let mut query = activity::table.filter(activity::id.eq(id)).into_boxed();
        if let Some(owner) = owner {
            query = query.filter(activity::user_id.eq(owner.0));
        }
        query
            .select(ActivityRow::as_select())
            .first(self.conn)
            .optional()
            .map(|row| row.map(Activity::from))
            .repo()
    }

    fn list(&mut self, query: &ActivityQuery) -> RepoResult<PageResult<Activity>> {
        let filtered = || {
            let mut select = activity::table.into_boxed();
            if let Some(user) = query.user {
                select = select.filter(activity::user_id.eq(user.0));
            }
            if !query.kinds.is_empty() {
                select = select.filter(activity::type_.eq_any(query.kinds.clone()));
            }
            if let Some(mission) = query.mission {
                select = select.filter(activity::mission_id.eq(mission.0));
            }
            if let Some(document) = query.document {
                select = select.filter(activity::document_id.eq(document.0));
            }
            if let Some(since) = query.since {
                select = select.filter(activity::timestamp.ge(to_db(since)));
            }
            if let Some(until) = query.until {
                select = select.filter(activity::timestamp.le(to_db(until)));
            }
            if let Some(search) = query.search.as_deref().filter(|search| !search.is_empty()) {
                select = select.filter(
                    lower(activity::message)
                        .like(contains_pattern(search))
                        .escape('\\'),
                );
            }
            select
        };
        paginate(
            self.conn,
            &query.page,
            filtered().count(),
            filtered()
                .select(ActivityRow::as_select())
                .order((activity::timestamp.desc(), activity::id.desc())),
            |row: ActivityRow| Ok(Activity::from(row)),
        )
    }
}
