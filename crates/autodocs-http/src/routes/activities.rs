//! `/api/activities/`: the audit log, append-only.

use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::activity::ActivityType;
use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::user::UserId;
use autodocs_domain::validation::{ValidationErrors, parse_timestamp};
use autodocs_domain::{ActivityId, DocumentId, MissionId};

use crate::commands;
use crate::error::ApiResult;
use crate::extract::{Authenticated, JsonObject, as_caller};
use crate::routes::missions::choices;
use crate::routes::{ListQuery, id_filter, object_id, page_request};
use crate::state::AppState;
use crate::views::{activity_json, paginated};

/// Lists the caller's activities (staff: everyone's), newest first.
#[utoipa::path(get, path = "/api/activities/", tag = "activities", operation_id = "activities_list",
    security(("bearer" = [])), params(crate::schemas::ActivityListParams),
    responses(
        (status = 200, description = "A page of the caller's activities (staff: everyone's), newest first", body = crate::schemas::PaginatedActivityList),
        (status = 400, description = "A bad filter or page size", body = crate::schemas::BadRequest),
        (status = 404, description = "A page past the end (`Invalid page.`)", body = crate::schemas::Detail)))]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: ListQuery,
) -> ApiResult<HttpResponse> {
    let mut errors = ValidationErrors::new();
    let kinds = choices(
        &query,
        "type",
        |raw| ActivityType::parse_filter(raw).map(|kind| kind.as_str().to_owned()),
        &mut errors,
    );
    let mission = id_filter(&query, "mission", &mut errors).map(MissionId);
    let document = id_filter(&query, "document", &mut errors).map(DocumentId);
    let user = id_filter(&query, "user", &mut errors).map(UserId);
    let since = query
        .get("since")
        .filter(|raw| !raw.is_empty())
        .and_then(|raw| errors.check("since", parse_timestamp(raw)));
    let until = query
        .get("until")
        .filter(|raw| !raw.is_empty())
        .and_then(|raw| errors.check("until", parse_timestamp(raw)));
    let page = page_request(&query, &mut errors)?;
    errors.into_result()?;
    let activity_query = ActivityQuery {
        user,
        kinds,
        mission,
        document,
        since,
        until,
        search: query.get("search").map(str::to_owned),
        page,
    };
    let page = as_caller(&state, principal, move |services, principal| {
        services.activities().list(principal, activity_query)
    })
    .await?;
    Ok(HttpResponse::Ok().json(paginated(&request, &page, activity_json)))
}

/// Appends an activity of a custom type.
#[utoipa::path(post, path = "/api/activities/", tag = "activities", operation_id = "activities_create",
    security(("bearer" = [])),
    request_body(content = crate::schemas::ActivityCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The new activity", body = crate::schemas::Activity),
        (status = 400, description = "Validation errors (a system type, a bad reference, ...)", body = crate::schemas::BadRequest)))]
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let command = commands::create_activity(&body)?;
    let activity = as_caller(&state, principal, move |services, principal| {
        services.activities().create(principal, command)
    })
    .await?;
    Ok(HttpResponse::Created().json(activity_json(&activity)))
}

/// One activity.
#[utoipa::path(get, path = "/api/activities/{id}/", tag = "activities", operation_id = "activities_retrieve",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The activity's id")),
    responses(
        (status = 200, description = "The activity", body = crate::schemas::Activity),
        (status = 404, description = "No such activity of the caller's", body = crate::schemas::Detail)))]
pub async fn detail(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = ActivityId(object_id(&path)?);
    let activity = as_caller(&state, principal, move |services, principal| {
        services.activities().get(principal, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(activity_json(&activity)))
}
