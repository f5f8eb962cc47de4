//! `/api/users/`: the caller's own account, and staff user management.

use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::Error;
use autodocs_domain::usecases::users::{AccountInput, ProfileInput};
use autodocs_domain::user::{UserId, UserQuery};
use autodocs_domain::validation::ValidationErrors;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Authenticated, Fields, JsonObject, as_caller, hashing, parse_bool};
use crate::routes::{ListQuery, page_request};
use crate::state::AppState;
use crate::views::{UserView, paginated};

fn account_input(
    body: &Map<String, Value>,
    staff_fields: bool,
) -> Result<AccountInput, ValidationErrors> {
    let mut fields = Fields::new(body);
    let mut input = AccountInput {
        email: fields.string("email"),
        first_name: fields.nullable_string("first_name"),
        last_name: fields.nullable_string("last_name"),
        ..AccountInput::default()
    };
    if staff_fields {
        input.is_active = fields.boolean("is_active");
        input.is_staff = fields.boolean("is_staff");
    }
    let profile = fields.object("profile");
    let mut errors = fields.errors;
    if let Some(profile) = profile {
        let mut fields = Fields::nested(profile, "profile");
        input.profile = ProfileInput {
            phone: fields.nullable_string("phone"),
            organization: fields.nullable_string("organization"),
            bio: fields.nullable_string("bio"),
            timezone: fields.string("timezone"),
            preferences: fields.raw("preferences").cloned(),
        };
        errors.merge(fields.errors);
    }
    errors.into_result().map(|()| input)
}

/// The caller's own User.
#[utoipa::path(get, path = "/api/users/me/", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, description = "Not authenticated")))]
pub async fn me(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
) -> ApiResult<HttpResponse> {
    let user = as_caller(&state, principal, move |services, principal| {
        services.me(principal)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Updates the caller's own account and nested profile (PUT and PATCH are both partial).
#[utoipa::path(patch, path = "/api/users/me/", tag = "users", security(("bearer" = [])),
    request_body(content = Object, description = "first_name, last_name, email, profile{phone, organization, bio, timezone, preferences}"),
    responses((status = 200, body = UserView), (status = 400, description = "Validation errors")))]
pub async fn update_me(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let input = account_input(&body, false)?;
    let user = as_caller(&state, principal, move |services, principal| {
        services.update_me(principal, &input)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Changes the caller's password.
#[utoipa::path(post, path = "/api/users/me/password/", tag = "users", security(("bearer" = [])),
    request_body(content = Object, description = "old_password, new_password"),
    responses((status = 204, description = "Changed"), (status = 400, description = "Validation errors")))]
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
        .attempt(principal.0)
        .map_err(ApiError::Throttled)?;
    let change = as_caller(&state, principal, move |services, principal| {
        services.begin_password_change(principal, &new_password)
    })
    .await?;
    let checked = match hashing(&state, move |hasher| change.check(hasher, &old_password)).await? {
        Ok(checked) => {
            attempt.succeeded();
            checked
        }
        Err(Error::Validation(errors)) if errors.field("old_password").is_some() => {
            return Err(Error::Validation(errors).into());
        }
        Err(error) => {
            attempt.succeeded();
            return Err(error.into());
        }
    };
    let services = state.services.clone();
    state
        .lane
        .run(move || services.finish_password_change(checked))
        .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// Staff: lists users.
#[utoipa::path(get, path = "/api/users/", tag = "users", security(("bearer" = [])),
    params(("search" = Option<String>, Query, description = "username or email contains"),
           ("is_active" = Option<bool>, Query, description = "active flag"),
           ("page" = Option<u32>, Query), ("page_size" = Option<u32>, Query)),
    responses((status = 200, description = "Paginated users"), (status = 403, description = "Not staff")))]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: ListQuery,
) -> ApiResult<HttpResponse> {
    let mut errors = ValidationErrors::new();
    let is_active = query
        .get("is_active")
        .and_then(|raw| match parse_bool(raw) {
            Some(flag) => Some(flag),
            None => {
                errors.add("is_active", "Must be a valid boolean.");
                None
            }
        });
    let page = page_request(&query, &mut errors)?;
    errors.into_result()?;
    let user_query = UserQuery {
        search: query.get("search").map(str::to_owned),
        is_active,
        page,
    };
    let page = as_caller(&state, principal, move |services, principal| {
        services.list_users(principal, &user_query)
    })
    .await?;
    if page.is_past_end() {
        return Err(ApiError::InvalidPage);
    }
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
#[utoipa::path(get, path = "/api/users/{id}/", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = UserView), (status = 404, description = "Not found")))]
pub async fn detail(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = user_id(&path)?;
    let user = as_caller(&state, principal, move |services, principal| {
        services.get_user(principal, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Staff: updates a user, `is_active` and `is_staff` included.
#[utoipa::path(patch, path = "/api/users/{id}/", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body(content = Object, description = "User fields, is_active, is_staff"),
    responses((status = 200, body = UserView), (status = 404, description = "Not found")))]
pub async fn update(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let id = user_id(&path)?;
    let input = account_input(&body, true)?;
    let user = as_caller(&state, principal, move |services, principal| {
        services.update_user(principal, id, &input)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Staff: deletes a user.
#[utoipa::path(delete, path = "/api/users/{id}/", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "Not found")))]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = user_id(&path)?;
    as_caller(&state, principal, move |services, principal| {
        services.delete_user(principal, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
