//! `/api/missions/{id}/steps/`: the plan step tree of a mission.

use actix_web::{HttpResponse, web};
use autodocs_domain::{MissionId, StepId};

use crate::commands;
use crate::error::ApiResult;
use crate::extract::{Authenticated, JsonObject, as_caller};
use crate::routes::object_id;
use crate::state::AppState;
use crate::views::step_tree_json;

/// The mission's steps as a tree.
#[utoipa::path(get, path = "/api/missions/{id}/steps/", tag = "steps", operation_id = "steps_list",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id")),
    responses(
        (status = 200, description = "The root steps in order, each with its `children`", body = Vec<crate::schemas::PlanStep>),
        (status = 404, description = "No such mission of the caller's", body = crate::schemas::Detail)))]
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let mission = MissionId(object_id(&path)?);
    let tree = as_caller(&state, principal, move |services, principal| {
        services.steps().list(principal, mission)
    })
    .await?;
    let steps: Vec<_> = tree.roots().iter().map(step_tree_json).collect();
    Ok(HttpResponse::Ok().json(steps))
}

/// Adds a step.
#[utoipa::path(post, path = "/api/missions/{id}/steps/", tag = "steps", operation_id = "steps_create",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id")),
    request_body(content = crate::schemas::PlanStepCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The new step", body = crate::schemas::PlanStep),
        (status = 400, description = "Validation errors (bad parent, too deep, too many steps)", body = crate::schemas::BadRequest),
        (status = 404, description = "No such mission of the caller's", body = crate::schemas::Detail)))]
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let mission = MissionId(object_id(&path)?);
    let command = commands::create_step(&body)?;
    let step = as_caller(&state, principal, move |services, principal| {
        services.steps().create(principal, mission, command)
    })
    .await?;
    Ok(HttpResponse::Created().json(step_tree_json(&step)))
}

fn ids(path: &(String, String)) -> ApiResult<(MissionId, StepId)> {
    Ok((MissionId(object_id(&path.0)?), StepId(object_id(&path.1)?)))
}

/// One step with its children.
#[utoipa::path(get, path = "/api/missions/{id}/steps/{step_id}/", tag = "steps", operation_id = "steps_retrieve",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id"), ("step_id" = i64, Path, minimum = 1, description = "The step's id")),
    responses(
        (status = 200, description = "The step with its subtree", body = crate::schemas::PlanStep),
        (status = 404, description = "No such step", body = crate::schemas::Detail)))]
pub async fn detail(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (mission, step) = ids(&path)?;
    let step = as_caller(&state, principal, move |services, principal| {
        services.steps().get(principal, mission, step)
    })
    .await?;
    Ok(HttpResponse::Ok().json(step_tree_json(&step)))
}

/// Edits a step: `title, description, order, parent, status`.
#[utoipa::path(patch, path = "/api/missions/{id}/steps/{step_id}/", tag = "steps", operation_id = "steps_partial_update",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id"), ("step_id" = i64, Path, minimum = 1, description = "The step's id")),
    request_body(content = crate::schemas::PlanStepUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated step with its subtree", body = crate::schemas::PlanStep),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest),
        (status = 404, description = "No such step", body = crate::schemas::Detail),
        (status = 409, description = "Illegal status transition (`invalid_transition`)", body = crate::schemas::Detail)))]
pub async fn update(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let (mission, step) = ids(&path)?;
    let command = commands::update_step(&body)?;
    let step = as_caller(&state, principal, move |services, principal| {
        services.steps().update(principal, mission, step, command)
    })
    .await?;
    Ok(HttpResponse::Ok().json(step_tree_json(&step)))
}

/// Deletes a step and its subtree.
#[utoipa::path(delete, path = "/api/missions/{id}/steps/{step_id}/", tag = "steps", operation_id = "steps_destroy",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The mission's id"), ("step_id" = i64, Path, minimum = 1, description = "The step's id")),
    responses(
        (status = 204, description = "Deleted, with its subtree"),
        (status = 404, description = "No such step", body = crate::schemas::Detail)))]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (mission, step) = ids(&path)?;
    as_caller(&state, principal, move |services, principal| {
        services.steps().delete(principal, mission, step)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
