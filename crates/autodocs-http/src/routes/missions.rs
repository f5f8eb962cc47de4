//! `/api/missions/`: missions and their lifecycle actions.

use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::MissionId;
use autodocs_domain::mission::{MissionAction, MissionQuery, MissionStatus, MissionType, Priority};
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use serde_json::{Map, Value};

use crate::commands;
use crate::error::ApiResult;
use crate::extract::{Authenticated, JsonObject, as_caller};
use crate::routes::{ListQuery, object_id, owner_filter, page_request};
use crate::state::AppState;
use crate::views::{MISSION_JSON_BYTES, json_ok, mission_detail_json, mission_json, paginated};

/// Parses a comma-separated enum filter; an unknown value is a 400 on `key`.
pub fn choices<T>(
    query: &ListQuery,
    key: &str,
    parse: impl Fn(&str) -> Result<T, InvalidValue>,
    errors: &mut ValidationErrors,
) -> Vec<T> {
    let mut values = Vec::new();
    // A value named again adds nothing to the filter nor to the errors: a
    // query of a thousand repeats is answered like one of a single value.
    let mut seen = std::collections::HashSet::new();
    for raw in query.list(key) {
        if !seen.insert(raw) {
            continue;
        }
        match parse(raw) {
            Ok(value) => values.push(value),
            Err(_) => errors.add(
                key,
                format!("Select a valid choice. {raw} is not one of the available choices."),
            ),
        }
    }
    values
}

/// Lists the caller's missions (staff: everyone's).
#[utoipa::path(get, path = "/api/missions/", tag = "missions", operation_id = "missions_list",
    security(("bearer" = [])), params(crate::schemas::MissionListParams),
    responses(
        (status = 200, description = "A page of the caller's missions (staff: everyone's)", body = crate::schemas::PaginatedMissionList),
        (status = 400, description = "A bad filter, ordering or page size", body = crate::schemas::BadRequest),
        (status = 404, description = "A page past the end (`Invalid page.`)", body = crate::schemas::Detail)))]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: ListQuery,
) -> ApiResult<HttpResponse> {
    let mut errors = ValidationErrors::new();
    let statuses = choices(&query, "status", MissionStatus::parse, &mut errors);
    let kinds = choices(&query, "type", MissionType::parse, &mut errors);
    let priorities = choices(&query, "priority", Priority::parse, &mut errors);
    let ordering = super::ordering(&query, &mut errors);
    let owner = owner_filter(&query, &mut errors);
    let page = page_request(&query, &mut errors)?;
    errors.into_result()?;
    let mission_query = MissionQuery {
        owner,
        statuses,
        kinds,
        priorities,
        search: query.get("search").map(str::to_owned),
        ordering,
        page,
    };
    let page = as_caller(&state, principal, move |services, principal| {
        services.missions().list(principal, mission_query)
    })
    .await?;
    let capacity = MISSION_JSON_BYTES * page.items.len() + 256;
    Ok(json_ok(&paginated(&request, &page, mission_json), capacity))
}

/// Creates a mission, with an optional nested plan.
#[utoipa::path(post, path = "/api/missions/", tag = "missions", operation_id = "missions_create",
    security(("bearer" = [])),
    request_body(content = crate::schemas::MissionCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The new mission (`pending`, progress 0) with its plan", body = crate::schemas::MissionDetail),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest)))]
pub async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let command = commands::create_mission(&body)?;
    let detail = as_caller(&state, principal, move |services, principal| {
        services.missions().create(principal, command)
    })
    .await?;
    Ok(HttpResponse::Created().json(mission_detail_json(&request, &detail)))
}

/// One mission with its plan and documents.
#[utoipa::path(get, path = "/api/missions/{id}/", tag = "missions", operation_id = "missions_retrieve",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id")),
    responses(
        (status = 200, description = "The mission with its plan and documents", body = crate::schemas::MissionDetail),
        (status = 404, description = "No such mission of the caller's", body = crate::schemas::Detail)))]
pub async fn detail(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = MissionId(object_id(&path)?);
    let detail = as_caller(&state, principal, move |services, principal| {
        services.missions().get(principal, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(mission_detail_json(&request, &detail)))
}

async fn update(
    request: HttpRequest,
    state: web::Data<AppState>,
    principal: crate::extract::Caller,
    path: web::Path<String>,
    body: Map<String, Value>,
    full: bool,
) -> ApiResult<HttpResponse> {
    let id = MissionId(object_id(&path)?);
    let changes = commands::update_mission(&body, full)?;
    let detail = as_caller(&state, principal, move |services, principal| {
        services.missions().update(principal, id, changes)
    })
    .await?;
    Ok(HttpResponse::Ok().json(mission_detail_json(&request, &detail)))
}

/// Partially updates a mission.
#[utoipa::path(patch, path = "/api/missions/{id}/", tag = "missions", operation_id = "missions_partial_update",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id")),
    request_body(content = crate::schemas::MissionUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated mission", body = crate::schemas::MissionDetail),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest),
        (status = 404, description = "No such mission of the caller's", body = crate::schemas::Detail)))]
pub async fn patch(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    update(request, state, principal, path, body, false).await
}

/// Replaces a mission's editable fields (`title` and `type` required).
#[utoipa::path(put, path = "/api/missions/{id}/", tag = "missions", operation_id = "missions_update",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id")),
    request_body(content = crate::schemas::MissionReplace, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated mission", body = crate::schemas::MissionDetail),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest),
        (status = 404, description = "No such mission of the caller's", body = crate::schemas::Detail)))]
pub async fn put(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    update(request, state, principal, path, body, true).await
}

/// Deletes a mission (409 while in progress).
#[utoipa::path(delete, path = "/api/missions/{id}/", tag = "missions", operation_id = "missions_destroy",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id")),
    responses(
        (status = 204, description = "Deleted, with its steps"),
        (status = 404, description = "No such mission of the caller's", body = crate::schemas::Detail),
        (status = 409, description = "The mission is in progress (`invalid_transition`)", body = crate::schemas::Detail)))]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = MissionId(object_id(&path)?);
    as_caller(&state, principal, move |services, principal| {
        services.missions().delete(principal, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Applies a lifecycle action; every action answers the updated mission.
async fn act(
    request: HttpRequest,
    state: web::Data<AppState>,
    principal: crate::extract::Caller,
    path: web::Path<String>,
    action: MissionAction,
) -> ApiResult<HttpResponse> {
    let id = MissionId(object_id(&path)?);
    let detail = as_caller(&state, principal, move |services, principal| {
        services.missions().act(principal, id, action)
    })
    .await?;
    Ok(HttpResponse::Ok().json(mission_detail_json(&request, &detail)))
}

/// Declares the endpoint of one lifecycle action: its own path and operation.
macro_rules! action_endpoint {
    ($name:ident, $action:expr, $path:tt, $operation:tt, $doc:tt) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "missions", operation_id = $operation,
            description = $doc, security(("bearer" = [])),
            params(("id" = i64, Path, minimum = 1, description = "The mission's id")),
            responses(
                (status = 200, description = "The updated mission", body = crate::schemas::MissionDetail),
                (status = 404, description = "No such mission of the caller's", body = crate::schemas::Detail),
                (status = 409, description = "Illegal transition from the current status (`invalid_transition`)",
                    body = crate::schemas::Detail)))]
        pub async fn $name(
            request: HttpRequest,
            state: web::Data<AppState>,
            Authenticated(principal): Authenticated,
            path: web::Path<String>,
        ) -> ApiResult<HttpResponse> {
            act(request, state, principal, path, $action).await
        }
    };
}

action_endpoint!(
    start,
    MissionAction::Start,
    "/api/missions/{id}/start/",
    "missions_start",
    "Starts a mission: `pending` or `failed` → `in_progress` (sets `started_at`)."
);
action_endpoint!(
    pause,
    MissionAction::Pause,
    "/api/missions/{id}/pause/",
    "missions_pause",
    "Pauses a mission: `in_progress` → `paused`."
);
action_endpoint!(
    resume,
    MissionAction::Resume,
    "/api/missions/{id}/resume/",
    "missions_resume",
    "Resumes a mission: `paused` → `in_progress`."
);
action_endpoint!(
    complete,
    MissionAction::Complete,
    "/api/missions/{id}/complete/",
    "missions_complete",
    "Completes a mission: `in_progress` or `paused` → `completed`; open steps become `skipped`."
);
action_endpoint!(
    cancel,
    MissionAction::Cancel,
    "/api/missions/{id}/cancel/",
    "missions_cancel",
    "Cancels a mission: `pending`, `in_progress` or `paused` → `cancelled`."
);
