//! The changelists of users, documents, activities and jobs, declared as
//! data over their use cases, like [`crate::missions::MissionAdmin`].

use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::document::{
    DocumentChanges, DocumentName, DocumentOrderField, DocumentQuery, DocumentSortKey,
    DocumentStatus, DocumentType,
};
use autodocs_domain::jobs::{JobQuery, JobStatus};
use autodocs_domain::paging::PageRequest;
use autodocs_domain::plan_step::{PlanStep, StepNode, StepQuery, StepStatus};
use autodocs_domain::user::{
    Email, PersonName, Principal, UserChanges, UserId, UserOrderField, UserQuery, UserSortKey,
};
use autodocs_domain::{
    AccountError, DocumentError, DocumentId, EngineError, JobId, MissionId, Services, StepError,
    StepId,
};
use autodocs_http::error::ApiError;

use crate::change::{
    ChangeAdmin, ChangeView, Field, FieldErrors, Input, Posted, field_errors, parsed,
};
use crate::changelist::{
    Action, ActionOutcome, Column, Filter, ListPage, ListParams, ModelAdmin, ModelSpec, PER_PAGE,
    Row,
};
use crate::missions::{usernames, when};
use crate::models;

fn page_of(params: &ListParams) -> Result<PageRequest, ApiError> {
    PageRequest::parse(Some(&params.page.to_string()), Some(&PER_PAGE.to_string()))
        .map_err(|_| ApiError::InvalidPage)
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// `?field__exact=1` / `0`, as Django writes booleans.
fn boolean(params: &ListParams, field: &str) -> Option<bool> {
    match params.filter(field) {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    }
}

fn boolean_filter(field: &'static str, label: &'static str) -> Filter {
    Filter {
        field,
        label,
        choices: vec![("1".into(), "Yes".into()), ("0".into(), "No".into())],
    }
}

/// A refusal of a use case, as a row of an action's report.
fn refusal(error: impl Into<autodocs_domain::Error>) -> String {
    match error.into() {
        autodocs_domain::Error::NotFound => "it no longer exists".to_owned(),
        autodocs_domain::Error::InvalidTransition(refusal) => refusal.to_string(),
        autodocs_domain::Error::Validation(errors) => errors.to_string(),
        error => {
            tracing::error!(%error, "an admin action failed");
            "the server failed; it has been logged".to_owned()
        }
    }
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// The user admin.
pub struct UserAdmin;

const USER_COLUMNS: &[Column] = &[
    Column::sortable("Username"),
    Column::sortable("Email address"),
    Column::plain("First name"),
    Column::plain("Last name"),
    Column::plain("Staff status"),
    Column::plain("Active"),
    Column::sortable("Date joined"),
    Column::sortable("Last login"),
];

const USER_ACTIONS: &[Action] = &[
    Action {
        name: "activate",
        label: "Activate selected users",
    },
    Action {
        name: "deactivate",
        label: "Deactivate selected users",
    },
];

/// What the user admin shows and offers.
static USER_SPEC: ModelSpec = ModelSpec {
    link: models::USERS,
    singular: "user",
    columns: USER_COLUMNS,
    actions: USER_ACTIONS,
    search_help: "username or email",
    deletes: true,
};

impl ModelAdmin for UserAdmin {
    fn spec(&self) -> &'static ModelSpec {
        &USER_SPEC
    }
    fn filters(&self) -> Vec<Filter> {
        vec![
            boolean_filter("is_staff", "By staff status"),
            boolean_filter("is_active", "By active"),
        ]
    }

    fn list(
        &self,
        services: &Services,
        staff: Principal,
        params: &ListParams,
    ) -> Result<ListPage, ApiError> {
        let field = |column| match column {
            0 => Some(UserSortKey::Username),
            1 => Some(UserSortKey::Email),
            6 => Some(UserSortKey::DateJoined),
            7 => Some(UserSortKey::LastLogin),
            _ => None,
        };
        let query = UserQuery {
            search: params.search.clone(),
            is_active: boolean(params, "is_active"),
            is_staff: boolean(params, "is_staff"),
            ordering: params
                .order
                .and_then(|(column, descending)| {
                    field(column).map(|field| UserOrderField { field, descending })
                })
                .into_iter()
                .collect(),
            page: page_of(params)?,
        };
        let found = services.accounts().list_users(staff, &query)?;
        Ok(ListPage {
            count: found.count,
            rows: found
                .items
                .into_iter()
                .map(|user| Row {
                    id: user.id.0,
                    cells: vec![
                        user.username,
                        user.email,
                        user.first_name,
                        user.last_name,
                        yes_no(user.is_staff),
                        yes_no(user.is_active),
                        when(user.date_joined),
                        user.last_login.map(when).unwrap_or_else(|| "never".into()),
                    ],
                })
                .collect(),
            ..ListPage::default()
        })
    }

    fn act(&self, services: &Services, staff: Principal, action: &str, id: i64) -> ActionOutcome {
        let is_active = match action {
            "activate" => true,
            "deactivate" if UserId(id) == staff.user_id => {
                return Err("you cannot deactivate your own account".into());
            }
            "deactivate" => false,
            _ => return Err("not an action of users".into()),
        };
        let changes = UserChanges {
            is_active: Some(is_active),
            ..UserChanges::default()
        };
        match services.accounts().update_user(staff, UserId(id), changes) {
            Ok(_) => Ok(()),
            Err(AccountError::NotFound) => Err("it no longer exists".into()),
            Err(error) => Err(refusal(error)),
        }
    }

    fn delete(&self, services: &Services, staff: Principal, id: i64) -> ActionOutcome {
        if UserId(id) == staff.user_id {
            return Err("you cannot delete your own account".into());
        }
        services
            .accounts()
            .delete_user(staff, UserId(id))
            .map_err(refusal)
    }
}

// ---------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------

/// The document admin.
pub struct DocumentAdmin;

const DOCUMENT_COLUMNS: &[Column] = &[
    Column::sortable("Name"),
    Column::plain("Owner"),
    Column::plain("Mission"),
    Column::plain("Type"),
    Column::plain("Status"),
    Column::sortable("Size"),
    Column::sortable("Uploaded"),
];

const DOCUMENT_ACTIONS: &[Action] = &[
    Action {
        name: "verify",
        label: "Verify selected documents",
    },
    Action {
        name: "download",
        label: "Download selected document",
    },
];

/// What the document admin shows and offers.
static DOCUMENT_SPEC: ModelSpec = ModelSpec {
    link: models::DOCUMENTS,
    singular: "document",
    columns: DOCUMENT_COLUMNS,
    actions: DOCUMENT_ACTIONS,
    search_help: "name",
    deletes: true,
};

impl ModelAdmin for DocumentAdmin {
    fn spec(&self) -> &'static ModelSpec {
        &DOCUMENT_SPEC
    }
    fn filters(&self) -> Vec<Filter> {
        vec![
            Filter::of(
                "status",
                "By status",
                &DocumentStatus::ALL,
                DocumentStatus::as_str,
            ),
            Filter::of("type", "By type", &DocumentType::ALL, DocumentType::as_str),
        ]
    }

    fn list(
        &self,
        services: &Services,
        staff: Principal,
        params: &ListParams,
    ) -> Result<ListPage, ApiError> {
        let field = |column| match column {
            0 => Some(DocumentSortKey::Name),
            5 => Some(DocumentSortKey::Size),
            6 => Some(DocumentSortKey::UploadedAt),
            _ => None,
        };
        let query = DocumentQuery {
            statuses: params
                .filter("status")
                .and_then(|raw| DocumentStatus::parse(raw).ok())
                .into_iter()
                .collect(),
            kinds: params
                .filter("type")
                .and_then(|raw| DocumentType::parse(raw).ok())
                .into_iter()
                .collect(),
            missions: params
                .filter("mission")
                .and_then(|raw| raw.parse().ok())
                .map(MissionId)
                .into_iter()
                .collect(),
            search: params.search.clone(),
            ordering: params
                .order
                .and_then(|(column, descending)| {
                    field(column).map(|field| DocumentOrderField { field, descending })
                })
                .into_iter()
                .collect(),
            page: page_of(params)?,
            ..DocumentQuery::default()
        };
        let found = services.documents().list(staff, query)?;
        let owners = usernames(services, staff, found.items.iter().map(|d| d.owner))?;
        Ok(ListPage {
            count: found.count,
            rows: found
                .items
                .iter()
                .map(|document| Row {
                    id: document.id.0,
                    cells: vec![
                        document.name.as_str().to_owned(),
                        owners.get(&document.owner).cloned().unwrap_or_default(),
                        document
                            .mission
                            .map(|mission| format!("#{}", mission.0))
                            .unwrap_or_else(|| "-".into()),
                        document.kind.as_str().to_owned(),
                        document.status.as_str().to_owned(),
                        format!("{} bytes", document.size),
                        when(document.uploaded_at),
                    ],
                })
                .collect(),
            ..ListPage::default()
        })
    }

    fn navigate(&self, action: &str, selected: &[i64]) -> Option<Result<String, String>> {
        (action == "download").then(|| match selected {
            [id] => Ok(format!("{}{id}/download/", models::DOCUMENTS.changelist())),
            _ => Err("Select one document to download. No items have been changed.".into()),
        })
    }

    fn act(&self, services: &Services, staff: Principal, action: &str, id: i64) -> ActionOutcome {
        if action != "verify" {
            return Err("not an action of documents".into());
        }
        match services.documents().verify(staff, DocumentId(id)) {
            Ok(_) => Ok(()),
            Err(DocumentError::NotFound) => Err("it no longer exists".into()),
            Err(error) => Err(refusal(error)),
        }
    }

    fn delete(&self, services: &Services, staff: Principal, id: i64) -> ActionOutcome {
        services
            .documents()
            .delete(staff, DocumentId(id))
            .map_err(refusal)
    }
}

// ---------------------------------------------------------------------------
// Plan steps
// ---------------------------------------------------------------------------

/// The plan step admin: the steps of every mission, newest mission first
/// (each mission's steps by depth, then order); filtered to one mission
/// (`?mission__exact=`), they are shown as its tree.
pub struct PlanStepAdmin;

const STEP_COLUMNS: &[Column] = &[
    Column::plain("Title"),
    Column::plain("Mission"),
    Column::plain("Status"),
    Column::plain("Action"),
    Column::plain("Order"),
    Column::plain("Depth"),
];

/// How many missions the "By mission" filter offers.
const STEP_MISSION_CHOICES: &str = "20";

/// What the plan step admin shows and offers.
static STEP_SPEC: ModelSpec = ModelSpec {
    link: models::STEPS,
    singular: "plan step",
    columns: STEP_COLUMNS,
    actions: &[],
    search_help: "title",
    deletes: false,
};

/// A step's row; `indent` marks its depth in the title, for a tree.
fn step_row(step: &PlanStep, indent: bool) -> Row {
    let depth = if indent {
        usize::from(step.depth.saturating_sub(1))
    } else {
        0
    };
    Row {
        id: step.id.0,
        cells: vec![
            format!("{}{}", "— ".repeat(depth), step.title.as_str()),
            format!("#{}", step.mission.0),
            step.status.as_str().to_owned(),
            step.action.kind().to_owned(),
            step.order.to_string(),
            step.depth.to_string(),
        ],
    }
}

impl PlanStepAdmin {
    /// "By mission": the latest missions.
    fn mission_filter(services: &Services, staff: Principal) -> Result<Filter, ApiError> {
        let page = PageRequest::parse(None, Some(STEP_MISSION_CHOICES))
            .map_err(|_| ApiError::InvalidPage)?;
        let missions = services.missions().list(
            staff,
            autodocs_domain::mission::MissionQuery {
                page,
                ..Default::default()
            },
        )?;
        Ok(Filter {
            field: "mission",
            label: "By mission",
            choices: missions
                .items
                .iter()
                .map(|m| {
                    (
                        m.id.0.to_string(),
                        format!("#{} {}", m.id.0, m.title.as_str()),
                    )
                })
                .collect(),
        })
    }

    /// One mission's steps as its tree (depth first), those matching the
    /// search and status kept.
    fn tree_rows(
        services: &Services,
        staff: Principal,
        mission: MissionId,
        search: Option<&str>,
        status: Option<StepStatus>,
    ) -> Result<Vec<Row>, ApiError> {
        let tree = services.steps().list(staff, mission)?;
        let search = search.map(str::to_lowercase);
        let mut rows = Vec::new();
        let mut pending: Vec<&StepNode<PlanStep>> = tree.roots().iter().rev().collect();
        while let Some(node) = pending.pop() {
            let step = &node.item;
            let titled = search
                .as_deref()
                .is_none_or(|search| step.title.as_str().to_lowercase().contains(search));
            if titled && status.is_none_or(|status| step.status == status) {
                rows.push(step_row(step, true));
            }
            pending.extend(node.children.iter().rev());
        }
        Ok(rows)
    }
}

impl ModelAdmin for PlanStepAdmin {
    fn spec(&self) -> &'static ModelSpec {
        &STEP_SPEC
    }
    fn filters(&self) -> Vec<Filter> {
        vec![Filter::of(
            "status",
            "By status",
            &StepStatus::ALL,
            StepStatus::as_str,
        )]
    }

    fn list(
        &self,
        services: &Services,
        staff: Principal,
        params: &ListParams,
    ) -> Result<ListPage, ApiError> {
        let status = params
            .filter("status")
            .and_then(|raw| StepStatus::parse(raw).ok());
        let mission = params
            .filter("mission")
            .and_then(|raw| raw.parse().ok())
            .map(MissionId);
        let filters = vec![Self::mission_filter(services, staff)?];
        if let Some(mission) = mission {
            let rows = Self::tree_rows(services, staff, mission, params.search.as_deref(), status)?;
            // Pages of the tree, cut as the database cuts the others.
            let count = rows.len() as u64;
            let request = page_of(params)?;
            let page = request.resolve(count).ok_or(ApiError::InvalidPage)?;
            let offset = usize::try_from(request.offset_of(page)).unwrap_or(usize::MAX);
            return Ok(ListPage {
                count,
                rows: rows
                    .into_iter()
                    .skip(offset)
                    .take(PER_PAGE as usize)
                    .collect(),
                filters,
            });
        }
        let found = services.steps().search(
            staff,
            StepQuery {
                statuses: status.into_iter().collect(),
                search: params.search.clone(),
                page: page_of(params)?,
                ..StepQuery::default()
            },
        )?;
        Ok(ListPage {
            count: found.count,
            rows: found
                .items
                .iter()
                .map(|step| step_row(step, false))
                .collect(),
            filters,
        })
    }
}

// ---------------------------------------------------------------------------
// Activities
// ---------------------------------------------------------------------------

/// The activity admin: the log is append-only, so it is read-only here.
pub struct ActivityAdmin;

const ACTIVITY_COLUMNS: &[Column] = &[
    Column::plain("Time"),
    Column::plain("Type"),
    Column::plain("Message"),
    Column::plain("User"),
    Column::plain("Mission"),
];

/// What the activity admin shows and offers.
static ACTIVITY_SPEC: ModelSpec = ModelSpec {
    link: models::ACTIVITIES,
    singular: "activity",
    columns: ACTIVITY_COLUMNS,
    actions: &[],
    search_help: "message",
    deletes: false,
};

impl ModelAdmin for ActivityAdmin {
    fn spec(&self) -> &'static ModelSpec {
        &ACTIVITY_SPEC
    }

    fn list(
        &self,
        services: &Services,
        staff: Principal,
        params: &ListParams,
    ) -> Result<ListPage, ApiError> {
        let query = ActivityQuery {
            search: params.search.clone(),
            mission: params
                .filter("mission")
                .and_then(|raw| raw.parse().ok())
                .map(MissionId),
            user: params
                .filter("user")
                .and_then(|raw| raw.parse().ok())
                .map(UserId),
            page: page_of(params)?,
            ..ActivityQuery::default()
        };
        let found = services.activities().list(staff, query)?;
        let users = usernames(services, staff, found.items.iter().filter_map(|a| a.user))?;
        Ok(ListPage {
            count: found.count,
            rows: found
                .items
                .into_iter()
                .map(|activity| Row {
                    id: activity.id.0,
                    cells: vec![
                        when(activity.timestamp),
                        activity.kind,
                        activity.message,
                        activity
                            .user
                            .and_then(|user| users.get(&user).cloned())
                            .unwrap_or_else(|| "-".into()),
                        activity
                            .mission
                            .map(|mission| format!("#{}", mission.0))
                            .unwrap_or_else(|| "-".into()),
                    ],
                })
                .collect(),
            ..ListPage::default()
        })
    }
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

/// The job admin: the background queue, newest first.
pub struct JobAdmin;

const JOB_COLUMNS: &[Column] = &[
    Column::plain("Kind"),
    Column::plain("Status"),
    Column::plain("Attempts"),
    Column::plain("Run at"),
    Column::plain("Mission"),
    Column::plain("Last error"),
];

const JOB_ACTIONS: &[Action] = &[Action {
    name: "retry",
    label: "Retry selected dead jobs",
}];

/// What the job admin shows and offers.
static JOB_SPEC: ModelSpec = ModelSpec {
    link: models::JOBS,
    singular: "job",
    columns: JOB_COLUMNS,
    actions: JOB_ACTIONS,
    search_help: "kind",
    deletes: true,
};

impl ModelAdmin for JobAdmin {
    fn spec(&self) -> &'static ModelSpec {
        &JOB_SPEC
    }
    fn filters(&self) -> Vec<Filter> {
        vec![Filter::of(
            "status",
            "By status",
            &JobStatus::ALL,
            JobStatus::as_str,
        )]
    }

    fn list(
        &self,
        services: &Services,
        _: Principal,
        params: &ListParams,
    ) -> Result<ListPage, ApiError> {
        let query = JobQuery {
            status: params
                .filter("status")
                .and_then(|raw| JobStatus::parse(raw).ok()),
            search: params.search.clone(),
            page: page_of(params)?,
        };
        let found = services.engine().search_jobs(&query)?;
        Ok(ListPage {
            count: found.count,
            rows: found
                .items
                .into_iter()
                .map(|job| Row {
                    id: job.id.0,
                    cells: vec![
                        job.kind,
                        job.status.as_str().to_owned(),
                        format!("{} of {}", job.attempts, job.max_attempts),
                        when(job.run_at),
                        job.mission
                            .map(|mission| format!("#{}", mission.0))
                            .unwrap_or_else(|| "-".into()),
                        job.last_error.unwrap_or_default(),
                    ],
                })
                .collect(),
            ..ListPage::default()
        })
    }

    fn act(&self, services: &Services, _: Principal, action: &str, id: i64) -> ActionOutcome {
        if action != "retry" {
            return Err("not an action of jobs".into());
        }
        match services.engine().retry_job(JobId(id)) {
            Ok(()) => Ok(()),
            Err(EngineError::JobNotFound) => Err("it is not a dead or failed job".into()),
            Err(error) => Err(refusal(error)),
        }
    }

    /// Only finished jobs go: a queued or running one may still do its
    /// work, and deleting it would lose that work.
    fn delete(&self, services: &Services, _: Principal, id: i64) -> ActionOutcome {
        match services.engine().delete_finished_job(JobId(id)) {
            Ok(()) => Ok(()),
            Err(EngineError::JobNotFound) => {
                Err("only a done or dead job can be deleted; it is queued, running or gone".into())
            }
            Err(error) => Err(refusal(error)),
        }
    }
}

// ---------------------------------------------------------------------------
// Change pages
// ---------------------------------------------------------------------------

impl ChangeAdmin for UserAdmin {
    fn load(&self, services: &Services, staff: Principal, id: i64) -> Result<ChangeView, ApiError> {
        let user = services.accounts().get_user(staff, UserId(id))?;
        Ok(ChangeView {
            name: user.username.clone(),
            fields: vec![
                Field::new("email", "Email address", Input::Text, user.email.clone()),
                Field::new(
                    "first_name",
                    "First name",
                    Input::Text,
                    user.first_name.clone(),
                ),
                Field::new(
                    "last_name",
                    "Last name",
                    Input::Text,
                    user.last_name.clone(),
                ),
                Field::checkbox("is_active", "Active", user.is_active),
                Field::checkbox("is_staff", "Staff status", user.is_staff),
            ],
            readonly: vec![
                ("Username", user.username),
                ("Superuser status", yes_no(user.is_superuser)),
                ("Date joined", when(user.date_joined)),
                (
                    "Last login",
                    user.last_login.map(when).unwrap_or_else(|| "never".into()),
                ),
            ],
            extra: None,
        })
    }

    fn save(
        &self,
        services: &Services,
        staff: Principal,
        id: i64,
        posted: &Posted,
    ) -> Result<Result<String, FieldErrors>, ApiError> {
        let user = services.accounts().get_user(staff, UserId(id))?;
        let value = |name: &str| posted.get(name).map(String::as_str).unwrap_or("");
        let mut errors = FieldErrors::new();
        let email = parsed(&mut errors, "email", Email::parse(value("email")));
        let first_name = parsed(
            &mut errors,
            "first_name",
            PersonName::parse(value("first_name")),
        );
        let last_name = parsed(
            &mut errors,
            "last_name",
            PersonName::parse(value("last_name")),
        );
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let ticked = |name: &str| posted.contains_key(name);
        let changes = UserChanges {
            email: email.filter(|email| email.as_str() != user.email),
            first_name: first_name.filter(|name| name.as_str() != user.first_name),
            last_name: last_name.filter(|name| name.as_str() != user.last_name),
            is_active: Some(ticked("is_active")).filter(|active| *active != user.is_active),
            is_staff: Some(ticked("is_staff")).filter(|staff| *staff != user.is_staff),
            ..UserChanges::default()
        };
        match services.accounts().update_user(staff, UserId(id), changes) {
            Ok(user) => Ok(Ok(user.username)),
            Err(AccountError::Validation(refused)) => Ok(Err(field_errors(&refused))),
            Err(error) => Err(error.into()),
        }
    }
}

impl ChangeAdmin for DocumentAdmin {
    fn load(&self, services: &Services, staff: Principal, id: i64) -> Result<ChangeView, ApiError> {
        let document = services.documents().get(staff, DocumentId(id))?;
        let owner = usernames(services, staff, [document.owner])?
            .into_values()
            .next()
            .unwrap_or_default();
        let kinds = DocumentType::ALL
            .iter()
            .map(|kind| (kind.as_str().to_owned(), kind.as_str().replace('_', " ")))
            .collect();
        Ok(ChangeView {
            name: document.name.as_str().to_owned(),
            fields: vec![
                Field::new("name", "Name", Input::Text, document.name.as_str()),
                Field::new("type", "Type", Input::Select(kinds), document.kind.as_str()),
                Field::new(
                    "mission",
                    "Mission (id; empty for none)",
                    Input::Text,
                    document
                        .mission
                        .map(|mission| mission.0.to_string())
                        .unwrap_or_default(),
                ),
            ],
            readonly: vec![
                ("Owner", owner),
                ("Status", document.status.as_str().to_owned()),
                (
                    "Original file name",
                    document.original_filename.as_str().to_owned(),
                ),
                ("Content type", document.content_type.clone()),
                ("Size", format!("{} bytes", document.size)),
                ("SHA-256", document.sha256.clone()),
                ("Uploaded", when(document.uploaded_at)),
                ("Updated", when(document.updated_at)),
            ],
            extra: Some(crate::pages::download_link(document.id.0)),
        })
    }

    fn save(
        &self,
        services: &Services,
        staff: Principal,
        id: i64,
        posted: &Posted,
    ) -> Result<Result<String, FieldErrors>, ApiError> {
        let document = services.documents().get(staff, DocumentId(id))?;
        let value = |name: &str| posted.get(name).map(String::as_str).unwrap_or("");
        let mut errors = FieldErrors::new();
        let name = parsed(&mut errors, "name", DocumentName::parse(value("name")));
        let kind = parsed(&mut errors, "type", DocumentType::parse(value("type")));
        let mission = match value("mission").trim() {
            "" => Some(None),
            raw => match raw.parse::<i64>() {
                Ok(mission) => Some(Some(MissionId(mission))),
                Err(_) => {
                    errors.insert("mission".into(), "Enter a whole number.".into());
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let changes = DocumentChanges {
            name: name.filter(|name| *name != document.name),
            kind: kind.filter(|kind| *kind != document.kind),
            mission: mission.filter(|mission| *mission != document.mission),
        };
        match services.documents().update(staff, DocumentId(id), changes) {
            Ok(document) => Ok(Ok(document.name.as_str().to_owned())),
            Err(DocumentError::Validation(refused)) => Ok(Err(field_errors(&refused))),
            Err(error) => Err(error.into()),
        }
    }
}

/// `GET /admin/documents/document/<id>/download/`: the file, through a
/// signed download link of the staff member (the API streams it, with
/// ranges and its headers), after checking they may see the document.
pub async fn download(
    state: actix_web::web::Data<autodocs_http::AppState>,
    staff: crate::session::Staff,
    path: actix_web::web::Path<i64>,
) -> Result<actix_web::HttpResponse, crate::error::AdminError> {
    let id = DocumentId(path.into_inner());
    let principal = staff.principal;
    let services = state.services.clone();
    let document = state
        .lane
        .run(move || services.documents().get(principal, id))
        .await?
        .map_err(ApiError::from)?;
    let link = state
        .links
        .issue(document.id, principal.user_id, state.services.now());
    let target = format!(
        "/api/documents/{}/download/?{}={}",
        document.id.0,
        autodocs_http::links::LINK_PARAMETER,
        link.token
    );
    Ok(actix_web::HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, target))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .finish())
}

impl ChangeAdmin for PlanStepAdmin {
    fn load(&self, services: &Services, staff: Principal, id: i64) -> Result<ChangeView, ApiError> {
        let step_id = StepId(id);
        let mission = services.steps().mission_of(staff, step_id)?;
        let step = services.steps().get(staff, mission, step_id)?.item;
        let statuses = StepStatus::ALL
            .iter()
            .map(|status| {
                (
                    status.as_str().to_owned(),
                    status.as_str().replace('_', " "),
                )
            })
            .collect();
        Ok(ChangeView {
            name: step.title.as_str().to_owned(),
            fields: vec![
                Field::new("title", "Title", Input::Text, step.title.as_str()),
                Field::new(
                    "status",
                    "Status",
                    Input::Select(statuses),
                    step.status.as_str(),
                ),
                Field::new("order", "Order", Input::Text, step.order.to_string()),
            ],
            readonly: vec![
                ("Mission", format!("#{}", mission.0)),
                ("Action", step.action.kind().to_owned()),
                ("Depth", step.depth.to_string()),
                (
                    "Started",
                    step.started_at.map(when).unwrap_or_else(|| "-".into()),
                ),
                (
                    "Completed",
                    step.completed_at.map(when).unwrap_or_else(|| "-".into()),
                ),
            ],
            extra: None,
        })
    }

    fn save(
        &self,
        services: &Services,
        staff: Principal,
        id: i64,
        posted: &Posted,
    ) -> Result<Result<String, FieldErrors>, ApiError> {
        use autodocs_domain::mission::Title;
        use autodocs_domain::plan_step::StepOrder;
        use autodocs_domain::usecases::steps::UpdateStep;

        let step_id = StepId(id);
        let mission = services.steps().mission_of(staff, step_id)?;
        let step = services.steps().get(staff, mission, step_id)?.item;
        let value = |name: &str| posted.get(name).map(String::as_str).unwrap_or("");
        let mut errors = FieldErrors::new();
        let title = parsed(&mut errors, "title", Title::parse(value("title")));
        let status = parsed(&mut errors, "status", StepStatus::parse(value("status")));
        let order = match value("order").trim().parse::<i64>() {
            Ok(order) => parsed(&mut errors, "order", StepOrder::new(order)),
            Err(_) => {
                errors.insert("order".into(), "A valid integer is required.".into());
                None
            }
        };
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let command = UpdateStep {
            title: title.filter(|title| *title != step.title),
            status: status.filter(|status| *status != step.status),
            order: order.filter(|order| order.get() != step.order),
            ..UpdateStep::default()
        };
        match services.steps().update(staff, mission, step_id, command) {
            Ok(node) => Ok(Ok(node.item.title.as_str().to_owned())),
            Err(StepError::Validation(refused)) => Ok(Err(field_errors(&refused))),
            Err(StepError::InvalidTransition(refusal)) => Ok(Err(FieldErrors::from([(
                "status".to_owned(),
                refusal.to_string(),
            )]))),
            Err(error) => Err(error.into()),
        }
    }
}
