//! The handlers: login, logout and the index.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::AccountError;
use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::document::DocumentQuery;
use autodocs_domain::jobs::JobQuery;
use autodocs_domain::mission::MissionQuery;
use autodocs_domain::paging::PageRequest;
use autodocs_domain::plan_step::StepQuery;
use autodocs_domain::user::UserQuery;
use autodocs_domain::{Error, Services};
use autodocs_http::AppState;
use autodocs_http::error::ApiError;
use autodocs_http::routes::auth::{check_login, throttle};
use serde::Deserialize;

use crate::error::{AdminError, safe_next};
use crate::models::{self, ModelLink};
use crate::pages::{self, IndexEntry, RecentAction};
use crate::session::{
    self, SESSION_LIFETIME_HOURS, SessionKey, Staff, login_csrf, login_csrf_matches, secure_cookies,
};

/// Django's refusal of a login, the same whatever was wrong, so it tells
/// no one which usernames exist or which accounts are staff.
pub const LOGIN_REFUSED: &str = "Please enter the correct username and password for a staff account. Note that both fields may be case-sensitive.";

/// How many recent actions the index lists.
const RECENT_ACTIONS: u32 = 10;

type AdminResult = Result<HttpResponse, AdminError>;

pub(crate) fn html(markup: maud::Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// `?next=` of the login page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The login form (a signed-in staff member goes straight on).
pub async fn login_form(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> AdminResult {
    let secure = secure_cookies(&request, &state);
    let (csrf, cookie) = login_csrf(&request, secure);
    let next = safe_next(query.next.as_deref());
    let mut response = html(pages::login(&csrf, next, "", None));
    if let Some(cookie) = cookie {
        response
            .add_cookie(&cookie)
            .map_err(|error| AdminError::Internal(error.to_string()))?;
    }
    Ok(response)
}

/// The login form's fields, as Django names them.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    next: Option<String>,
    csrfmiddlewaretoken: Option<String>,
}

/// Signs a staff member in: a new session, its key in the cookie, and
/// back to where they were going.
pub async fn login(
    request: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> AdminResult {
    let form = form.into_inner();
    if !login_csrf_matches(&request, form.csrfmiddlewaretoken.as_deref()) {
        return Err(AdminError::CsrfFailed);
    }
    throttle(&request, &state).await?;
    let secure = secure_cookies(&request, &state);
    let next = safe_next(form.next.as_deref()).to_owned();
    let username = form.username.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let refuse = |message: &str| {
        let (csrf, _) = login_csrf(&request, secure);
        let mut response = html(pages::login(&csrf, &next, &username, Some(message)));
        *response.status_mut() = actix_web::http::StatusCode::OK;
        response
    };
    if username.trim().is_empty() || password.is_empty() {
        return Ok(refuse(LOGIN_REFUSED));
    }
    let verified = match check_login(&request, &state, username.clone(), password).await {
        Ok(verified) => verified,
        Err(ApiError::Domain(Error::AuthenticationFailed)) => return Ok(refuse(LOGIN_REFUSED)),
        Err(error) => return Err(error.into()),
    };
    let key = SessionKey::generate();
    let digest = key.digest();
    let services = state.services.clone();
    let opened = state
        .lane
        .run(move || {
            services.accounts().open_admin_session(
                verified,
                &digest,
                chrono::Duration::hours(SESSION_LIFETIME_HOURS),
            )
        })
        .await
        .map_err(AdminError::from)?;
    match opened {
        Ok(_) => {}
        Err(AccountError::PermissionDenied | AccountError::AuthenticationFailed) => {
            return Ok(refuse(LOGIN_REFUSED));
        }
        Err(error) => return Err(ApiError::from(error).into()),
    }
    tracing::info!(username = %username, "staff signed in to the admin");
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, next))
        .cookie(key.cookie(secure))
        .finish())
}

/// The logout form's only field.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrfmiddlewaretoken: Option<String>,
}

/// Ends the session (a POST with the session's CSRF token, as in Django 5).
pub async fn logout(
    request: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<CsrfForm>,
) -> AdminResult {
    staff.check_csrf(form.csrfmiddlewaretoken.as_deref())?;
    let digest = staff.key.digest();
    let services = state.services.clone();
    state
        .lane
        .run(move || services.accounts().close_admin_session(&digest))
        .await?
        .map_err(ApiError::from)?;
    let mut response = html(pages::logged_out());
    response
        .add_cookie(&session::expired_session_cookie(secure_cookies(
            &request, &state,
        )))
        .map_err(|error| AdminError::Internal(error.to_string()))?;
    Ok(response)
}

/// The index: every model with its count, and the staff member's recent actions.
pub async fn index(state: web::Data<AppState>, staff: Staff) -> AdminResult {
    let principal = staff.principal;
    let services = state.services.clone();
    let (entries, recent) = state
        .lane
        .run(move || index_data(&services, principal))
        .await??;
    Ok(html(pages::index(
        &staff.username,
        &staff.csrf_token(),
        &entries,
        &recent,
    )))
}

type IndexData = (Vec<IndexEntry>, Vec<RecentAction>);

fn index_data(
    services: &Services,
    principal: autodocs_domain::user::Principal,
) -> Result<IndexData, ApiError> {
    let one = PageRequest::parse(None, Some("1")).map_err(|_| ApiError::InvalidPage)?;
    let count = |model: ModelLink| -> Result<Option<u64>, ApiError> {
        Ok(match model {
            models::USERS => Some(
                services
                    .accounts()
                    .list_users(
                        principal,
                        &UserQuery {
                            page: one,
                            ..UserQuery::default()
                        },
                    )?
                    .count,
            ),
            models::MISSIONS => Some(
                services
                    .missions()
                    .list(
                        principal,
                        MissionQuery {
                            page: one,
                            ..MissionQuery::default()
                        },
                    )?
                    .count,
            ),
            models::DOCUMENTS => Some(
                services
                    .documents()
                    .list(
                        principal,
                        DocumentQuery {
                            page: one,
                            ..DocumentQuery::default()
                        },
                    )?
                    .count,
            ),
            models::STEPS => Some(
                services
                    .steps()
                    .search(
                        principal,
                        StepQuery {
                            page: one,
                            ..StepQuery::default()
                        },
                    )?
                    .count,
            ),
            models::JOBS => Some(
                services
                    .engine()
                    .search_jobs(&JobQuery {
                        page: one,
                        ..JobQuery::default()
                    })?
                    .count,
            ),
            models::ACTIVITIES => Some(
                services
                    .activities()
                    .list(
                        principal,
                        ActivityQuery {
                            page: one,
                            ..ActivityQuery::default()
                        },
                    )?
                    .count,
            ),
            _ => None,
        })
    };
    let mut entries = Vec::with_capacity(models::ALL.len());
    for model in models::ALL {
        entries.push(IndexEntry {
            model,
            count: count(model)?,
        });
    }
    let recent_page = PageRequest::parse(None, Some(&RECENT_ACTIONS.to_string()))
        .map_err(|_| ApiError::InvalidPage)?;
    let recent = services
        .activities()
        .list(
            principal,
            ActivityQuery {
                user: Some(principal.user_id),
                page: recent_page,
                ..ActivityQuery::default()
            },
        )?
        .items
        .into_iter()
        .map(|activity| RecentAction {
            when: activity.timestamp.format("%Y-%m-%d %H:%M").to_string(),
            kind: activity.kind,
            message: activity.message,
        })
        .collect();
    Ok((entries, recent))
}

/// Any other admin address: staff read "not found"; anyone else is sent
/// to the login first, so the admin's addresses tell strangers nothing.
pub async fn not_found(_staff: Staff) -> AdminResult {
    Err(AdminError::NotFound)
}
