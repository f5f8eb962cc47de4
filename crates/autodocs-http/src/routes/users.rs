//! `/api/users/`: the caller's own account, and staff user management.

use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::AccountError;
use autodocs_domain::usecases::users::require_staff;
use autodocs_domain::user::{UserId, UserQuery};
use autodocs_domain::validation::ValidationErrors;

use crate::commands;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authenticated, Fields, JsonObject, as_caller, hashing, parse_bool};
use crate::routes::{ListQuery, page_request};
use crate::state::AppState;
use crate::views::{UserView, paginated};

/// The caller's own User.
#[utoipa::path(get, path = "/api/users/me/", tag = "users", operation_id = "users_me_retrieve",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = crate::schemas::User)))]
pub async fn me(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
) -> ApiResult<HttpResponse> {
    let user = as_caller(&state, principal, move |services, principal| {
        services.accounts().me(principal)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Updates the caller's own account and nested profile (PUT and PATCH are both partial).
#[utoipa::path(patch, path = "/api/users/me/", tag = "users", operation_id = "users_me_partial_update",
    security(("bearer" = [])),
    request_body(content = crate::schemas::UserMeUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated account", body = crate::schemas::User),
        (status = 400, description = "Validation errors (nested under `profile` for profile fields)", body = crate::schemas::BadRequest)))]
pub async fn update_me(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let changes = commands::update_account(&body, false)?;
    let user = as_caller(&state, principal, move |services, principal| {
        services.accounts().update_me(principal, changes)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Replaces the caller's account fields (PUT; as partial as PATCH, as in the original API).
#[utoipa::path(put, path = "/api/users/me/", tag = "users", operation_id = "users_me_update",
    security(("bearer" = [])),
    request_body(content = crate::schemas::UserMeUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated account", body = crate::schemas::User),
        (status = 400, description = "Validation errors (nested under `profile` for profile fields)", body = crate::schemas::BadRequest)))]
pub async fn replace_me(
    state: web::Data<AppState>,
    principal: Authenticated,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    update_me(state, principal, body).await
}

/// Changes the caller's password.
#[utoipa::path(post, path = "/api/users/me/password/", tag = "users", operation_id = "users_me_password_create",
    security(("bearer" = [])),
    request_body(content = crate::schemas::PasswordChange, content_type = "application/json"),
    responses(
        (status = 204, description = "Changed; every refresh token of the user is revoked"),
        (status = 400, description = "Wrong old password, or a weak new one", body = crate::schemas::BadRequest),
        (status = 429, description = "Too many wrong old passwords", body = crate::schemas::Detail,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 503, description = "The password hashing queue is full", body = crate::schemas::Detail,
            headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub async fn change_password(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let mut fields = Fields::new(&body);
    let old_password = fields.required_string("old_password");
    let new_password = fields.required_string("new_password");
    fields.finish()?;
    let (Some(old_password), Some(new_password)) = (old_password, new_password) else {
        return Err(ApiError::Internal("required fields vanished".into()));
    };
    // Counted from the start, so concurrent guesses cannot pass the limit
    // before any of them failed; given back unless the old password was wrong.
    let attempt = state
        .fairness
        .password_failures
        .attempt(&state.lane, &principal.0.to_string())
        .await?;
    let change = as_caller(&state, principal, move |services, principal| {
        services
            .accounts()
            .begin_password_change(principal, &new_password)
    })
    .await?;
    let checked = match hashing(&state, move |hasher| change.check(hasher, &old_password)).await? {
        Ok(checked) => {
            attempt.succeeded(&state.lane).await;
            checked
        }
        Err(AccountError::Validation(errors)) if errors.field("old_password").is_some() => {
            return Err(AccountError::Validation(errors).into());
        }
        Err(error) => {
            attempt.succeeded(&state.lane).await;
            return Err(error.into());
        }
    };
    let services = state.services.clone();
    state
        .lane
        .run(move || services.accounts().finish_password_change(checked))
        .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// Staff: lists users.
#[utoipa::path(get, path = "/api/users/", tag = "users", operation_id = "users_list",
    security(("bearer" = [])), params(crate::schemas::UserListParams),
    responses(
        (status = 200, description = "A page of users", body = crate::schemas::PaginatedUserList),
        (status = 400, description = "A bad filter or page size", body = crate::schemas::BadRequest),
        (status = 403, description = "The caller is not staff", body = crate::schemas::Detail),
        (status = 404, description = "A page past the end (`Invalid page.`)", body = crate::schemas::Detail)))]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: ListQuery,
) -> ApiResult<HttpResponse> {
    let mut errors = ValidationErrors::new();
    let mut flag = |name: &str| {
        query.get(name).and_then(|raw| {
            let flag = parse_bool(raw);
            if flag.is_none() {
                errors.add(name, "Must be a valid boolean.");
            }
            flag
        })
    };
    let is_active = flag("is_active");
    let is_staff = flag("is_staff");
    let ordering = super::ordering(&query, &mut errors);
    let page = page_request(&query, &mut errors)?;
    errors.into_result()?;
    let user_query = UserQuery {
        search: query.get("search").map(str::to_owned),
        is_active,
        is_staff,
        ordering,
        page,
    };
    let page = as_caller(&state, principal, move |services, principal| {
        services.accounts().list_users(principal, &user_query)
    })
    .await?;
    Ok(HttpResponse::Ok().json(paginated(&request, &page, |user| {
        UserView::from(user.clone())
    })))
}

fn user_id(raw: &str) -> ApiResult<UserId> {
    raw.parse::<i64>()
        .map(UserId)
        .map_err(|_| ApiError::NotFound)
}

/// Staff: one user.
#[utoipa::path(get, path = "/api/users/{id}/", tag = "users", operation_id = "users_retrieve",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = crate::schemas::User),
        (status = 403, description = "The caller is not staff", body = crate::schemas::Detail),
        (status = 404, description = "No such user", body = crate::schemas::Detail)))]
pub async fn detail(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = user_id(&path)?;
    let user = as_caller(&state, principal, move |services, principal| {
        services.accounts().get_user(principal, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Staff: updates a user, `is_active` and `is_staff` included.
#[utoipa::path(patch, path = "/api/users/{id}/", tag = "users", operation_id = "users_partial_update",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    request_body(content = crate::schemas::UserAdminUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated user", body = crate::schemas::User),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest),
        (status = 403, description = "The caller is not staff", body = crate::schemas::Detail),
        (status = 404, description = "No such user", body = crate::schemas::Detail)))]
pub async fn update(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let id = user_id(&path)?;
    let user = as_caller(&state, principal, move |services, principal| {
        // Staff only, before the body is even read (as DRF's permission
        // classes run before its serializer).
        require_staff(principal)?;
        let changes = commands::update_account(&body, true)?;
        services.accounts().update_user(principal, id, changes)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Staff: replaces a user's account fields (PUT; as partial as PATCH).
#[utoipa::path(put, path = "/api/users/{id}/", tag = "users", operation_id = "users_update",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    request_body(content = crate::schemas::UserAdminUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated user", body = crate::schemas::User),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest),
        (status = 403, description = "The caller is not staff", body = crate::schemas::Detail),
        (status = 404, description = "No such user", body = crate::schemas::Detail)))]
pub async fn replace(
    state: web::Data<AppState>,
    principal: Authenticated,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    update(state, principal, path, body).await
}

/// Staff: deletes a user.
#[utoipa::path(delete, path = "/api/users/{id}/", tag = "users", operation_id = "users_destroy",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller is not staff", body = crate::schemas::Detail),
        (status = 404, description = "No such user", body = crate::schemas::Detail)))]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = user_id(&path)?;
    as_caller(&state, principal, move |services, principal| {
        services.accounts().delete_user(principal, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
