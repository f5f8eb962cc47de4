//! The mission admin: changelist (search, filters, ordering, actions) and
//! the change page.

use std::collections::BTreeMap;

use autodocs_domain::mission::{
    Mission, MissionAction, MissionOrderField, MissionQuery, MissionSortKey, MissionStatus,
    MissionType, Priority,
};
use autodocs_domain::paging::PageRequest;
use autodocs_domain::user::{Principal, UserId};
use autodocs_domain::{MissionError, MissionId, Services};
use autodocs_http::error::ApiError;

use crate::change::{
    ChangeAdmin, ChangeView, Field, FieldErrors, Input, Posted, field_errors, parsed,
};
use crate::changelist::{
    Action, ActionOutcome, Column, Filter, ListPage, ListParams, ModelAdmin, ModelSpec, PER_PAGE,
    Row,
};
use crate::models;

/// The mission admin.
pub struct MissionAdmin;

const COLUMNS: &[Column] = &[
    Column::sortable("Title"),
    Column::plain("Status"),
    Column::plain("Type"),
    Column::sortable("Priority"),
    Column::sortable("Progress"),
    Column::plain("Owner"),
    Column::sortable("Deadline"),
    Column::sortable("Created"),
];

/// The sort key of each sortable column, by index.
fn sort_key(column: usize) -> Option<MissionSortKey> {
    match column {
        0 => Some(MissionSortKey::Title),
        3 => Some(MissionSortKey::Priority),
        4 => Some(MissionSortKey::Progress),
        6 => Some(MissionSortKey::Deadline),
        7 => Some(MissionSortKey::CreatedAt),
        _ => None,
    }
}

const ACTIONS: &[Action] = &[
    Action {
        name: "start",
        label: "Start selected missions",
    },
    Action {
        name: "pause",
        label: "Pause selected missions",
    },
    Action {
        name: "resume",
        label: "Resume selected missions",
    },
    Action {
        name: "cancel",
        label: "Cancel selected missions",
    },
];

/// A timestamp as the admin shows it.
pub fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

/// Usernames of `owners`, in one read (a deleted user reads `#<id>`).
pub fn usernames(
    services: &Services,
    staff: Principal,
    owners: impl IntoIterator<Item = UserId>,
) -> Result<BTreeMap<UserId, String>, ApiError> {
    let owners: Vec<UserId> = owners.into_iter().collect();
    let mut names = services
        .accounts()
        .usernames(staff, owners.iter().copied())?;
    // A user deleted since is named by their id.
    for owner in owners {
        names
            .entry(owner)
            .or_insert_with(|| format!("#{}", owner.0));
    }
    Ok(names)
}

fn row(mission: &Mission, owners: &BTreeMap<UserId, String>) -> Row {
    Row {
        id: mission.id.0,
        cells: vec![
            mission.title.as_str().to_owned(),
            mission.status.as_str().to_owned(),
            mission.kind.as_str().to_owned(),
            mission.priority.as_str().to_owned(),
            format!("{}%", mission.progress),
            owners.get(&mission.owner).cloned().unwrap_or_default(),
            mission.deadline.map(when).unwrap_or_else(|| "-".into()),
            when(mission.created_at),
        ],
    }
}

/// What the mission admin shows and offers.
static MISSION_SPEC: ModelSpec = ModelSpec {
    link: models::MISSIONS,
    singular: "mission",
    columns: COLUMNS,
    actions: ACTIONS,
    search_help: "title or description",
    deletes: true,
};

impl ModelAdmin for MissionAdmin {
    fn spec(&self) -> &'static ModelSpec {
        &MISSION_SPEC
    }

    fn filters(&self) -> Vec<Filter> {
        vec![
            Filter::of(
                "status",
                "By status",
                &MissionStatus::ALL,
                MissionStatus::as_str,
            ),
            Filter::of("type", "By type", &MissionType::ALL, MissionType::as_str),
            Filter::of("priority", "By priority", &Priority::ALL, Priority::as_str),
        ]
    }

    fn list(
        &self,
        services: &Services,
        staff: Principal,
        params: &ListParams,
    ) -> Result<ListPage, ApiError> {
        let page = PageRequest::parse(Some(&params.page.to_string()), Some(&PER_PAGE.to_string()))
            .map_err(|_| ApiError::InvalidPage)?;
        let ordering = params
            .order
            .and_then(|(column, descending)| {
                sort_key(column).map(|field| MissionOrderField { field, descending })
            })
            .into_iter()
            .collect();
        let query = MissionQuery {
            statuses: chosen(params.filter("status"), MissionStatus::parse),
            kinds: chosen(params.filter("type"), MissionType::parse),
            priorities: chosen(params.filter("priority"), Priority::parse),
            search: params.search.clone(),
            ordering,
            page,
            ..MissionQuery::default()
        };
        let found = services.missions().list(staff, query)?;
        let owners = usernames(services, staff, found.items.iter().map(|m| m.owner))?;
        Ok(ListPage {
            rows: found.items.iter().map(|m| row(m, &owners)).collect(),
            count: found.count,
            ..ListPage::default()
        })
    }

    fn act(&self, services: &Services, staff: Principal, action: &str, id: i64) -> ActionOutcome {
        let action = match action {
            "start" => MissionAction::Start,
            "pause" => MissionAction::Pause,
            "resume" => MissionAction::Resume,
            "cancel" => MissionAction::Cancel,
            _ => return Err("not an action of missions".into()),
        };
        match services.missions().act(staff, MissionId(id), action) {
            Ok(_) => Ok(()),
            Err(MissionError::InvalidTransition(refusal)) => Err(refusal.to_string()),
            Err(MissionError::NotFound) => Err("it no longer exists".into()),
            Err(error) => {
                tracing::error!(%error, mission = id, "an admin action failed");
                Err("the server failed; it has been logged".into())
            }
        }
    }

    fn delete(&self, services: &Services, staff: Principal, id: i64) -> ActionOutcome {
        match services.missions().delete(staff, MissionId(id)) {
            Ok(()) => Ok(()),
            Err(MissionError::InvalidTransition(refusal)) => Err(refusal.to_string()),
            Err(MissionError::NotFound) => Err("it no longer exists".into()),
            Err(error) => {
                tracing::error!(%error, mission = id, "an admin deletion failed");
                Err("the server failed; it has been logged".into())
            }
        }
    }
}

/// A filter's value, if it is one of the choices (a stale link's is ignored).
fn chosen<T, E>(value: Option<&str>, parse: impl Fn(&str) -> Result<T, E>) -> Vec<T> {
    value
        .and_then(|value| parse(value).ok())
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------------------
// The change page
// ---------------------------------------------------------------------------

/// How many activities the change page lists.
const PAGE_ACTIVITIES: &str = "10";

/// A deadline as typed: empty for none, `YYYY-MM-DD HH:MM` in UTC, or RFC 3339.
fn parse_deadline(raw: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(at.with_timezone(&chrono::Utc)));
    }
    for format in ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(raw, format) {
            return Ok(Some(at.and_utc()));
        }
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).map(|at| at.and_utc()));
    }
    Err("Enter a valid date/time (YYYY-MM-DD HH:MM, UTC).".to_owned())
}

fn choices<T: Copy>(all: &[T], value: impl Fn(T) -> &'static str) -> Vec<(String, String)> {
    all.iter()
        .map(|item| (value(*item).to_owned(), value(*item).replace('_', " ")))
        .collect()
}

impl ChangeAdmin for MissionAdmin {
    fn load(&self, services: &Services, staff: Principal, id: i64) -> Result<ChangeView, ApiError> {
        use autodocs_domain::activity_log::ActivityQuery;

        let id = MissionId(id);
        let detail = services.missions().get(staff, id)?;
        let owner = usernames(services, staff, [detail.mission.owner])?
            .into_values()
            .next()
            .unwrap_or_default();
        let page =
            PageRequest::parse(None, Some(PAGE_ACTIVITIES)).map_err(|_| ApiError::InvalidPage)?;
        let activities = services
            .activities()
            .list(
                staff,
                ActivityQuery {
                    mission: Some(id),
                    page,
                    ..ActivityQuery::default()
                },
            )?
            .items;
        let mission = &detail.mission;
        Ok(ChangeView {
            name: mission.title.as_str().to_owned(),
            fields: vec![
                Field::new("title", "Title", Input::Text, mission.title.as_str()),
                Field::new(
                    "description",
                    "Description",
                    Input::TextArea,
                    mission.description.as_str(),
                ),
                Field::new(
                    "type",
                    "Type",
                    Input::Select(choices(&MissionType::ALL, MissionType::as_str)),
                    mission.kind.as_str(),
                ),
                Field::new(
                    "priority",
                    "Priority",
                    Input::Select(choices(&Priority::ALL, Priority::as_str)),
                    mission.priority.as_str(),
                ),
                Field::new(
                    "deadline",
                    "Deadline (UTC, YYYY-MM-DD HH:MM)",
                    Input::Text,
                    mission
                        .deadline
                        .map(|deadline| deadline.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                ),
            ],
            readonly: vec![
                ("Owner", owner),
                ("Status", mission.status.as_str().to_owned()),
                ("Progress", format!("{}%", mission.progress)),
                (
                    "Steps",
                    format!(
                        "{} of {} done",
                        mission.steps_completed, mission.steps_total
                    ),
                ),
                ("Created", when(mission.created_at)),
                ("Updated", when(mission.updated_at)),
            ],
            extra: Some(crate::pages::mission_extra(&detail, &activities)),
        })
    }

    fn save(
        &self,
        services: &Services,
        staff: Principal,
        id: i64,
        posted: &Posted,
    ) -> Result<Result<String, FieldErrors>, ApiError> {
        use autodocs_domain::mission::{Description, MissionChanges, Title};

        let id = MissionId(id);
        let mission = services.missions().get(staff, id)?.mission;
        let value = |name: &str| posted.get(name).map(String::as_str).unwrap_or("");
        let mut errors = FieldErrors::new();
        let title = parsed(&mut errors, "title", Title::parse(value("title")));
        let description = parsed(
            &mut errors,
            "description",
            Description::parse(value("description")),
        );
        let kind = parsed(&mut errors, "type", MissionType::parse(value("type")));
        let priority = parsed(&mut errors, "priority", Priority::parse(value("priority")));
        let deadline = match parse_deadline(value("deadline")) {
            Ok(deadline) => Some(deadline),
            Err(message) => {
                errors.insert("deadline".into(), message);
                None
            }
        };
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        // Only what changed: the activity lists the fields that did.
        let changes = MissionChanges {
            title: title.filter(|title| *title != mission.title),
            description: description.filter(|description| *description != mission.description),
            kind: kind.filter(|kind| *kind != mission.kind),
            priority: priority.filter(|priority| *priority != mission.priority),
            deadline: deadline.filter(|deadline| *deadline != mission.deadline),
        };
        match services.missions().update(staff, id, changes) {
            Ok(detail) => Ok(Ok(detail.mission.title.as_str().to_owned())),
            Err(MissionError::Validation(refused)) => Ok(Err(field_errors(&refused))),
            Err(error) => Err(error.into()),
        }
    }
}
