//! `/api/missions/`: missions and their lifecycle actions.

use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::mission::{
    MissionAction, MissionOrderField, MissionQuery, MissionStatus, MissionType, Priority,
};
use autodocs_domain::usecases::missions::MissionInput;
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Authenticated, Fields, JsonObject, as_caller};
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
    for raw in query.list(key) {
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

fn mission_input(body: &Map<String, Value>) -> Result<MissionInput, ValidationErrors> {
    let mut fields = Fields::new(body);
    let input = MissionInput {
        title: fields.string("title"),
        description: fields.nullable_string("description"),
        kind: fields.string("type"),
        priority: fields.string("priority"),
        deadline: match fields.raw("deadline") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => fields.string("deadline").map(Some),
        },
        plan_steps: fields.raw("plan_steps").cloned(),
    };
    fields.finish().map(|()| input)
}

/// Lists the caller's missions (staff: everyone's).
#[utoipa::path(get, path = "/api/missions/", tag = "missions", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "comma-separated statuses"),
           ("type" = Option<String>, Query), ("priority" = Option<String>, Query),
           ("owner" = Option<i64>, Query, description = "staff only"),
           ("search" = Option<String>, Query), ("ordering" = Option<String>, Query),
           ("page" = Option<u32>, Query), ("page_size" = Option<u32>, Query)),
    responses((status = 200, description = "Paginated missions")))]
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
    let ordering = match query.get("ordering").filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => errors
            .check("ordering", MissionOrderField::parse_list(raw))
            .unwrap_or_default(),
        None => Vec::new(),
    };
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
        services.list_missions(principal, mission_query)
    })
    .await?;
    if page.is_past_end() {
        return Err(ApiError::InvalidPage);
    }
    let capacity = MISSION_JSON_BYTES * page.items.len() + 256;
    Ok(json_ok(&paginated(&request, &page, mission_json), capacity))
}

/// Creates a mission, with an optional nested plan.
#[utoipa::path(post, path = "/api/missions/", tag = "missions", security(("bearer" = [])),
    request_body(content = Object, description = "title, type, priority?, description?, deadline?, plan_steps?"),
    responses((status = 201, description = "The Mission with plan_steps"), (status = 400, description = "Validation errors")))]
pub async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let draft = mission_input(&body)?.parse_new()?;
    let detail = as_caller(&state, principal, move |services, principal| {
        services.create_mission(principal, draft)
    })
    .await?;
    Ok(HttpResponse::Created().json(mission_detail_json(&request, &detail)))
}

/// One mission with its plan and documents.
#[utoipa::path(get, path = "/api/missions/{id}/", tag = "missions", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, description = "Mission detail"), (status = 404, description = "Not found")))]
pub async fn detail(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = object_id(&path)?;
    let detail = as_caller(&state, principal, move |services, principal| {
        services.get_mission(principal, id)
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
    let id = object_id(&path)?;
    let changes = mission_input(&body)?.parse_changes(full)?;
    let detail = as_caller(&state, principal, move |services, principal| {
        services.update_mission(principal, id, changes)
    })
    .await?;
    Ok(HttpResponse::Ok().json(mission_detail_json(&request, &detail)))
}

/// Partially updates a mission.
#[utoipa::path(patch, path = "/api/missions/{id}/", tag = "missions", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body(content = Object, description = "title, description, type, priority, deadline"),
    responses((status = 200, description = "Mission detail")))]
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
#[utoipa::path(put, path = "/api/missions/{id}/", tag = "missions", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body(content = Object, description = "title, type, description?, priority?, deadline?"),
    responses((status = 200, description = "Mission detail")))]
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
#[utoipa::path(delete, path = "/api/missions/{id}/", tag = "missions", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204, description = "Deleted"), (status = 409, description = "In progress")))]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = object_id(&path)?;
    as_caller(&state, principal, move |services, principal| {
        services.delete_mission(principal, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Applies a lifecycle action: `start`, `pause`, `resume`, `complete` or `cancel`.
#[utoipa::path(post, path = "/api/missions/{id}/{action}/", tag = "missions", security(("bearer" = [])),
    params(("id" = i64, Path), ("action" = String, Path, description = "start | pause | resume | complete | cancel")),
    responses((status = 200, description = "The updated Mission"), (status = 409, description = "invalid_transition")))]
pub async fn act(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let id = object_id(&id)?;
    let action = match action.as_str() {
        "start" => MissionAction::Start,
        "pause" => MissionAction::Pause,
        "resume" => MissionAction::Resume,
        "complete" => MissionAction::Complete,
        "cancel" => MissionAction::Cancel,
        _ => return Err(ApiError::NotFound),
    };
    let detail = as_caller(&state, principal, move |services, principal| {
        services.act_on_mission(principal, id, action)
    })
    .await?;
    Ok(HttpResponse::Ok().json(mission_detail_json(&request, &detail)))
}
