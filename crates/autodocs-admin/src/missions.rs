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

use crate::changelist::{
    Action, ActionOutcome, Column, Filter, ListPage, ListParams, ModelAdmin, PER_PAGE, Row,
};
use crate::models::{self, ModelLink};

/// The mission admin.
pub struct MissionAdmin;

const COLUMNS: &[Column] = &[
    Column {
        label: "Title",
        sortable: true,
    },
    Column {
        label: "Status",
        sortable: false,
    },
    Column {
        label: "Type",
        sortable: false,
    },
    Column {
        label: "Priority",
        sortable: true,
    },
    Column {
        label: "Progress",
        sortable: true,
    },
    Column {
        label: "Owner",
        sortable: false,
    },
    Column {
        label: "Deadline",
        sortable: true,
    },
    Column {
        label: "Created",
        sortable: true,
    },
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

/// Usernames of `owners`, each read once.
pub fn usernames(
    services: &Services,
    staff: Principal,
    owners: impl IntoIterator<Item = UserId>,
) -> Result<BTreeMap<UserId, String>, ApiError> {
    let mut names = BTreeMap::new();
    for owner in owners {
        if let std::collections::btree_map::Entry::Vacant(entry) = names.entry(owner) {
            let name = match services.accounts().get_user(staff, owner) {
                Ok(user) => user.username,
                Err(autodocs_domain::AccountError::NotFound) => format!("#{}", owner.0),
                Err(error) => return Err(error.into()),
            };
            entry.insert(name);
        }
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

impl ModelAdmin for MissionAdmin {
    fn link(&self) -> ModelLink {
        models::MISSIONS
    }

    fn singular(&self) -> &'static str {
        "mission"
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn filters(&self) -> Vec<Filter> {
        vec![
            Filter {
                field: "status",
                label: "By status",
                choices: MissionStatus::ALL
                    .iter()
                    .map(|status| (status.as_str(), status.as_str().replace('_', " ")))
                    .collect(),
            },
            Filter {
                field: "type",
                label: "By type",
                choices: MissionType::ALL
                    .iter()
                    .map(|kind| (kind.as_str(), kind.as_str().replace('_', " ")))
                    .collect(),
            },
            Filter {
                field: "priority",
                label: "By priority",
                choices: Priority::ALL
                    .iter()
                    .map(|priority| (priority.as_str(), priority.as_str().to_owned()))
                    .collect(),
            },
        ]
    }

    fn actions(&self) -> &'static [Action] {
        ACTIONS
    }

    fn search_help(&self) -> &'static str {
        "title or description"
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
            statuses: parsed(params.filter("status"), MissionStatus::parse),
            kinds: parsed(params.filter("type"), MissionType::parse),
            priorities: parsed(params.filter("priority"), Priority::parse),
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
}

/// A filter's value, if it is one of the choices (a stale link's is ignored).
fn parsed<T, E>(value: Option<&str>, parse: impl Fn(&str) -> Result<T, E>) -> Vec<T> {
    value
        .and_then(|value| parse(value).ok())
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------------------
// The change page
// ---------------------------------------------------------------------------

/// The fields of the mission form, as posted.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct MissionForm {
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Type.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Priority.
    #[serde(default)]
    pub priority: String,
    /// Deadline, `YYYY-MM-DD HH:MM` (UTC) or RFC 3339; empty for none.
    #[serde(default)]
    pub deadline: String,
    /// The session's CSRF token.
    pub csrfmiddlewaretoken: Option<String>,
}

impl MissionForm {
    /// The form as it shows `mission`.
    pub fn of(mission: &Mission) -> Self {
        Self {
            title: mission.title.as_str().to_owned(),
            description: mission.description.as_str().to_owned(),
            kind: mission.kind.as_str().to_owned(),
            priority: mission.priority.as_str().to_owned(),
            deadline: mission
                .deadline
                .map(|deadline| deadline.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
            csrfmiddlewaretoken: None,
        }
    }

    /// The changes the form makes to `mission`, or the refusal of each
    /// field that is not valid.
    pub fn changes(
        &self,
        mission: &Mission,
    ) -> Result<autodocs_domain::mission::MissionChanges, BTreeMap<&'static str, String>> {
        use autodocs_domain::mission::{Description, MissionChanges, Title};
        use autodocs_http::error::drf_message;

        let mut errors = BTreeMap::new();
        let mut changes = MissionChanges::default();
        match Title::parse(&self.title) {
            Ok(title) if title != mission.title => changes.title = Some(title),
            Ok(_) => {}
            Err(error) => {
                errors.insert("title", drf_message(&error));
            }
        }
        match Description::parse(&self.description) {
            Ok(description) if description != mission.description => {
                changes.description = Some(description);
            }
            Ok(_) => {}
            Err(error) => {
                errors.insert("description", drf_message(&error));
            }
        }
        match MissionType::parse(&self.kind) {
            Ok(kind) if kind != mission.kind => changes.kind = Some(kind),
            Ok(_) => {}
            Err(error) => {
                errors.insert("type", drf_message(&error));
            }
        }
        match Priority::parse(&self.priority) {
            Ok(priority) if priority != mission.priority => changes.priority = Some(priority),
            Ok(_) => {}
            Err(error) => {
                errors.insert("priority", drf_message(&error));
            }
        }
        match parse_deadline(&self.deadline) {
            Ok(deadline) if deadline != mission.deadline => changes.deadline = Some(deadline),
            Ok(_) => {}
            Err(message) => {
                errors.insert("deadline", message);
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }
}

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

/// What the change page shows besides the form.
pub struct MissionPage {
    /// The mission, its plan and its documents.
    pub detail: autodocs_domain::usecases::missions::MissionDetail,
    /// Its owner's username.
    pub owner: String,
    /// Its last activities, newest first.
    pub activities: Vec<autodocs_domain::activity_log::Activity>,
    /// The signed-in staff member's username.
    pub username: String,
}

/// How many activities the change page lists.
const PAGE_ACTIVITIES: &str = "10";

fn load_page(
    services: &Services,
    staff: Principal,
    id: MissionId,
) -> Result<MissionPage, ApiError> {
    use autodocs_domain::activity_log::ActivityQuery;

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
    let username = services.accounts().me(staff)?.username;
    Ok(MissionPage {
        detail,
        owner,
        activities,
        username,
    })
}

async fn load(
    state: &actix_web::web::Data<autodocs_http::AppState>,
    staff: Principal,
    id: MissionId,
) -> Result<MissionPage, crate::error::AdminError> {
    let services = state.services.clone();
    Ok(state
        .lane
        .run(move || load_page(&services, staff, id))
        .await??)
}

fn render(
    staff: &crate::session::Staff,
    page: &MissionPage,
    form: &MissionForm,
    errors: &BTreeMap<&'static str, String>,
) -> actix_web::HttpResponse {
    crate::routes::html(crate::pages::mission_change(
        (&page.username, &staff.csrf_token()),
        page,
        form,
        errors,
    ))
}

/// `GET /admin/missions/mission/<id>/change/`.
pub async fn change_page(
    state: actix_web::web::Data<autodocs_http::AppState>,
    staff: crate::session::Staff,
    path: actix_web::web::Path<i64>,
) -> Result<actix_web::HttpResponse, crate::error::AdminError> {
    let page = load(&state, staff.principal, MissionId(path.into_inner())).await?;
    let form = MissionForm::of(&page.detail.mission);
    Ok(render(&staff, &page, &form, &BTreeMap::new()))
}

/// `POST /admin/missions/mission/<id>/change/`: the edit goes through the
/// mission use case (its validation, its activity naming the staff
/// member); refused fields are shown next to their inputs.
pub async fn change(
    request: actix_web::HttpRequest,
    state: actix_web::web::Data<autodocs_http::AppState>,
    staff: crate::session::Staff,
    path: actix_web::web::Path<i64>,
    form: actix_web::web::Form<MissionForm>,
) -> Result<actix_web::HttpResponse, crate::error::AdminError> {
    let form = form.into_inner();
    staff.check_csrf(form.csrfmiddlewaretoken.as_deref())?;
    let id = MissionId(path.into_inner());
    let page = load(&state, staff.principal, id).await?;
    let changes = match form.changes(&page.detail.mission) {
        Ok(changes) => changes,
        Err(errors) => return Ok(render(&staff, &page, &form, &errors)),
    };
    let services = state.services.clone();
    let principal = staff.principal;
    let updated = state
        .lane
        .run(move || services.missions().update(principal, id, changes))
        .await?;
    let mission = match updated {
        Ok(detail) => detail.mission,
        Err(MissionError::Validation(refused)) => {
            let errors = refused
                .fields()
                .iter()
                .filter_map(|(field, messages)| {
                    let field = ["title", "description", "type", "priority", "deadline"]
                        .into_iter()
                        .find(|known| *known == field.as_str())?;
                    let message = messages.first().map(autodocs_http::error::drf_message)?;
                    Some((field, message))
                })
                .collect();
            return Ok(render(&staff, &page, &form, &errors));
        }
        Err(error) => return Err(ApiError::from(error).into()),
    };
    let message = format!(
        "The mission “{}” was changed successfully.",
        mission.title.as_str()
    );
    let response = actix_web::HttpResponse::Found()
        .insert_header((
            actix_web::http::header::LOCATION,
            models::MISSIONS.changelist(),
        ))
        .finish();
    crate::views::with_messages(
        response,
        &[message],
        crate::session::secure_cookies(&request, &state),
    )
}
