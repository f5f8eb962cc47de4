//! `/api/auth/`: registration, login and tokens.

use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::usecases::auth::{
    RegisterInput, Registration, Session, VerifiedLogin, require_credentials,
};
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::{Fields, JsonObject, address_hashing_slot, hashing};
use crate::state::AppState;
use crate::views::UserView;

/// Counts an anonymous auth request against its client address's rate
/// (forwarded addresses count only from trusted proxies), in the counters
/// every process shares.
pub async fn throttle(request: &HttpRequest, state: &AppState) -> ApiResult<()> {
    match state.client.client_ip(request) {
        Some(client) => state.throttle.check(&state.lane, client).await,
        None => Ok(()),
    }
}

/// Body of register and login answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionView {
    user: UserView,
    access: String,
    refresh: String,
}

impl From<Session> for SessionView {
    fn from(session: Session) -> Self {
        Self {
            user: session.user.into(),
            access: session.tokens.access,
            refresh: session.tokens.refresh,
        }
    }
}

/// Registers a user and logs them in.
#[utoipa::path(post, path = "/api/auth/register/", tag = "auth", operation_id = "auth_register",
    request_body(content = crate::schemas::Register, content_type = "application/json"),
    responses(
        (status = 201, description = "The new user, logged in", body = crate::schemas::AuthSession),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest),
        (status = 429, description = "Throttled (per address, or per account after failed logins)", body = crate::schemas::Detail, headers(("Retry-After" = String, description = "Seconds to wait"))), (status = 503, description = "The password hashing queue is full", body = crate::schemas::Detail, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub async fn register(
    request: HttpRequest,
    state: web::Data<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    throttle(&request, &state).await?;
    let mut fields = Fields::new(&body);
    let input = RegisterInput {
        username: fields.required_string("username").unwrap_or_default(),
        email: fields.required_string("email").unwrap_or_default(),
        password: fields.required_string("password").unwrap_or_default(),
        first_name: fields.string("first_name").unwrap_or_default(),
        last_name: fields.string("last_name").unwrap_or_default(),
    };
    let mut errors = fields.errors;
    let registration = match Registration::parse(&input) {
        Ok(registration) if errors.is_empty() => registration,
        Ok(_) => return Err(errors.into()),
        Err(parse_errors) => {
            // A missing field reports "required" only, not also "blank".
            for (field, messages) in parse_errors.fields() {
                if errors.field(field).is_none() {
                    messages
                        .iter()
                        .for_each(|message| errors.add(field.clone(), message.clone()));
                }
            }
            return Err(errors.into());
        }
    };
    let _slot = address_hashing_slot(&request, &state).await?;
    let hashed = hashing(&state, move |hasher| registration.hash(hasher)).await?;
    let services = state.services.clone();
    let session = state
        .lane
        .run(move || services.accounts().register_hashed(hashed))
        .await??;
    Ok(HttpResponse::Created().json(SessionView::from(session)))
}

/// Checks credentials: the account is read on the database lane, the
/// password checked on the hashing threads (the request holds no thread
/// meanwhile), the login recorded on the lane. Failures count against the
/// account (or, for a name no account has, against that name, so a
/// lockout does not tell which names exist).
async fn login_session(
    request: &HttpRequest,
    state: &AppState,
    body: &serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Session> {
    let mut fields = Fields::new(body);
    let login = fields.string("username").or_else(|| fields.string("email"));
    let password = fields.string("password");
    fields.finish()?;
    let (login, password) = require_credentials(login.as_deref(), password.as_deref())?;
    let verified = check_login(request, state, login, password).await?;
    let services = state.services.clone();
    Ok(state
        .lane
        .run(move || services.accounts().complete_login(verified))
        .await??)
}

/// Checks a login and its password: the account is read on the database
/// lane, the password checked on the hashing threads (the request holds no
/// thread meanwhile). Failures count against the account (or, for a name
/// no account has, against that name, so a lockout does not tell which
/// names exist); the client address holds at most its share of the
/// hashing queue. Shared by every inbound adapter that signs people in.
pub async fn check_login(
    request: &HttpRequest,
    state: &AppState,
    login: String,
    password: String,
) -> ApiResult<VerifiedLogin> {
    let services = state.services.clone();
    let name = login.clone();
    let candidate = state
        .lane
        .run(move || services.accounts().login_candidate(&name))
        .await??;
    let account = match candidate.account() {
        Some(user) => format!("user:{}", user.0),
        // Unknown names are counted by the key accounts are matched by,
        // so `ÄRGER` and `ärger` share one budget.
        None => format!(
            "name:{}",
            autodocs_domain::user::IdentityKey::of(&login).as_str()
        ),
    };
    let attempt = state
        .fairness
        .login_failures
        .attempt(&state.lane, &account)
        .await?;
    let slot = address_hashing_slot(request, state).await?;
    let verified = hashing(state, move |hasher| candidate.check(hasher, &password)).await??;
    drop(slot);
    attempt.succeeded(&state.lane).await;
    Ok(verified)
}

/// Logs in with a username (or an email) and a password.
#[utoipa::path(post, path = "/api/auth/login/", tag = "auth", operation_id = "auth_login",
    request_body(content = crate::schemas::Login, content_type = "application/json"),
    responses(
        (status = 200, description = "The user and a token pair", body = crate::schemas::AuthSession),
        (status = 400, description = "A missing field", body = crate::schemas::BadRequest),
        (status = 401, description = "Bad credentials or an inactive user (`authentication_failed`)", body = crate::schemas::Detail, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`"))), (status = 429, description = "Throttled (per address, or per account after failed logins)", body = crate::schemas::Detail, headers(("Retry-After" = String, description = "Seconds to wait"))), (status = 503, description = "The password hashing queue is full", body = crate::schemas::Detail, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub async fn login(
    request: HttpRequest,
    state: web::Data<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    throttle(&request, &state).await?;
    let session = login_session(&request, &state, &body).await?;
    Ok(HttpResponse::Ok().json(SessionView::from(session)))
}

/// SimpleJWT's token pair endpoint: a login that answers with tokens only.
#[utoipa::path(post, path = "/api/auth/token/", tag = "auth", operation_id = "auth_token",
    request_body(content = crate::schemas::TokenObtain, content_type = "application/json"),
    responses(
        (status = 200, description = "A token pair", body = crate::schemas::TokenPair),
        (status = 400, description = "A missing field", body = crate::schemas::BadRequest),
        (status = 401, description = "Bad credentials or an inactive user (`authentication_failed`)", body = crate::schemas::Detail, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`"))), (status = 429, description = "Throttled (per address, or per account after failed logins)", body = crate::schemas::Detail, headers(("Retry-After" = String, description = "Seconds to wait"))), (status = 503, description = "The password hashing queue is full", body = crate::schemas::Detail, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub async fn token(
    request: HttpRequest,
    state: web::Data<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    throttle(&request, &state).await?;
    let session = login_session(&request, &state, &body).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"access": session.tokens.access, "refresh": session.tokens.refresh})))
}

fn required_token(
    body: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> ApiResult<String> {
    let mut fields = Fields::new(body);
    let token = fields.required_string(field);
    fields.finish()?;
    match token {
        Some(token) if !token.trim().is_empty() => Ok(token),
        _ => Err(autodocs_domain::validation::ValidationErrors::single(
            field,
            "This field may not be blank.",
        )
        .into()),
    }
}

/// Rotates a refresh token.
#[utoipa::path(post, path = "/api/auth/token/refresh/", tag = "auth", operation_id = "auth_token_refresh",
    request_body(content = crate::schemas::TokenRefresh, content_type = "application/json"),
    responses(
        (status = 200, description = "A new pair; the old refresh token is dead", body = crate::schemas::TokenPair),
        (status = 400, description = "A missing field", body = crate::schemas::BadRequest),
        (status = 401, description = "Invalid, expired or already rotated (`token_not_valid`)", body = crate::schemas::Detail, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`")))))]
pub async fn refresh(
    state: web::Data<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let token = required_token(&body, "refresh")?;
    let services = state.services.clone();
    let tokens = crate::lane::blocking(move || services.accounts().refresh(&token)).await??;
    Ok(HttpResponse::Ok().json(json!({"access": tokens.access, "refresh": tokens.refresh})))
}

/// Checks a token.
#[utoipa::path(post, path = "/api/auth/token/verify/", tag = "auth", operation_id = "auth_token_verify",
    request_body(content = crate::schemas::TokenVerify, content_type = "application/json"),
    responses(
        (status = 200, description = "The token is valid", body = crate::schemas::Empty),
        (status = 400, description = "A missing field", body = crate::schemas::BadRequest),
        (status = 401, description = "Invalid or expired (`token_not_valid`)", body = crate::schemas::Detail, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`")))))]
pub async fn verify(
    state: web::Data<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let token = required_token(&body, "token")?;
    let services = state.services.clone();
    crate::lane::blocking(move || services.accounts().verify_token(&token)).await??;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// Kills a refresh token.
#[utoipa::path(post, path = "/api/auth/logout/", tag = "auth", operation_id = "auth_logout",
    request_body(content = crate::schemas::Logout, content_type = "application/json"),
    responses(
        (status = 205, description = "Logged out; the refresh token is dead"),
        (status = 400, description = "A missing field", body = crate::schemas::BadRequest),
        (status = 401, description = "Invalid or expired (`token_not_valid`)", body = crate::schemas::Detail, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`")))))]
pub async fn logout(
    state: web::Data<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let token = required_token(&body, "refresh")?;
    let services = state.services.clone();
    crate::lane::blocking(move || services.accounts().logout(&token)).await??;
    Ok(HttpResponse::ResetContent().finish())
}
