//! The generic views every model's admin shares: the changelist and its
//! actions, with the messages an action leaves for the next page.

use std::collections::BTreeMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_http::AppState;

use crate::changelist::{DELETE_SELECTED, ListParams, ModelAdmin};
use crate::error::AdminError;
use crate::missions::MissionAdmin;
use crate::others::{ActivityAdmin, DocumentAdmin, JobAdmin, PlanStepAdmin, UserAdmin};
use crate::pages::{self, ChangelistView, query_escape, query_unescape};
use crate::session::{Staff, secure_cookies};

/// The cookie that carries an action's report to the page it redirects to.
const MESSAGES_COOKIE: &str = "messages";

/// The admin of each model that has one.
static MISSIONS: MissionAdmin = MissionAdmin;
static USERS: UserAdmin = UserAdmin;
static DOCUMENTS: DocumentAdmin = DocumentAdmin;
static STEPS: PlanStepAdmin = PlanStepAdmin;
static ACTIVITIES: ActivityAdmin = ActivityAdmin;
static JOBS: JobAdmin = JobAdmin;

/// The admin of `/admin/<app>/<model>/`.
pub fn model_admin(app: &str, model: &str) -> Option<&'static dyn ModelAdmin> {
    let admins: [&'static dyn ModelAdmin; 6] =
        [&USERS, &MISSIONS, &STEPS, &DOCUMENTS, &ACTIVITIES, &JOBS];
    admins
        .into_iter()
        .find(|admin| admin.spec().link.app == app && admin.spec().link.model == model)
}

fn messages_of(request: &HttpRequest) -> Vec<String> {
    request
        .cookie(MESSAGES_COOKIE)
        .map(|cookie| {
            query_unescape(cookie.value())
                .split('\n')
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Hands `messages` to the next page the browser opens.
pub fn with_messages(
    mut response: HttpResponse,
    messages: &[String],
    secure: bool,
) -> Result<HttpResponse, AdminError> {
    let cookie = Cookie::build(MESSAGES_COOKIE, query_escape(&messages.join("\n")))
        .path("/admin/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    response
        .add_cookie(&cookie)
        .map_err(|error| AdminError::Internal(error.to_string()))?;
    Ok(response)
}

/// Drops the messages once a page showed them.
fn shown_messages(response: &mut HttpResponse, secure: bool) -> Result<(), AdminError> {
    let mut cookie = Cookie::build(MESSAGES_COOKIE, "")
        .path("/admin/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    cookie.make_removal();
    response
        .add_cookie(&cookie)
        .map_err(|error| AdminError::Internal(error.to_string()))
}

/// `GET /admin/<app>/<model>/`.
pub async fn changelist(
    request: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<(String, String)>,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, AdminError> {
    let (app, model) = path.into_inner();
    let admin = model_admin(&app, &model).ok_or(AdminError::NotFound)?;
    let params = ListParams::parse(&query, admin.spec().columns);
    let principal = staff.principal;
    let services = state.services.clone();
    let list_params = params.clone();
    let page = state
        .lane
        .run(move || admin.list(&services, principal, &list_params))
        .await??;
    let messages = messages_of(&request);
    let filters = admin.filters();
    let csrf = staff.csrf_token();
    let markup = pages::changelist(&ChangelistView {
        user: (&staff.username, &csrf),
        model: admin.spec().link,
        singular: admin.spec().singular,
        columns: admin.spec().columns,
        filters: &filters,
        actions: admin.spec().actions,
        deletes: admin.spec().deletes,
        search_help: admin.spec().search_help,
        params: &params,
        page: &page,
        messages: &messages,
        linked: crate::change::change_admin(&app, &model).is_some(),
    });
    let mut response = crate::routes::html(markup);
    if !messages.is_empty() {
        shown_messages(&mut response, secure_cookies(&request, &state))?;
    }
    Ok(response)
}

/// `POST /admin/<app>/<model>/`: runs the chosen action on the selected
/// rows, one by one, and goes back to the same changelist with a report.
pub async fn changelist_action(
    request: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AdminError> {
    let (app, model) = path.into_inner();
    let admin = model_admin(&app, &model).ok_or(AdminError::NotFound)?;
    let form = form.into_inner();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    staff.check_csrf(field(crate::session::CSRF_FIELD))?;
    let action = field("action").unwrap_or("").to_owned();
    let selected: Vec<i64> = form
        .iter()
        .filter(|(key, _)| key == "_selected_action")
        .filter_map(|(_, value)| value.parse().ok())
        .collect();
    let deleting = action == DELETE_SELECTED && admin.spec().deletes;
    if deleting && !selected.is_empty() && field("post") != Some("yes") {
        // Django asks first, on a page of its own, before deleting.
        return Ok(crate::routes::html(pages::delete_confirmation(
            (&staff.username, &staff.csrf_token()),
            admin.spec().link,
            admin.spec().singular,
            &selected,
        )));
    }
    if let Some(target) = admin.navigate(&action, &selected) {
        let back = match target {
            Ok(target) => target,
            Err(message) => {
                let response = HttpResponse::Found()
                    .insert_header((header::LOCATION, changelist_url(admin, &request)))
                    .finish();
                return with_messages(response, &[message], secure_cookies(&request, &state));
            }
        };
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, back))
            .finish());
    }
    let messages = if action.is_empty() {
        vec!["No action selected.".to_owned()]
    } else if !deleting
        && !admin
            .spec()
            .actions
            .iter()
            .any(|known| known.name == action)
    {
        vec![format!(
            "Unknown action “{action}”. No items have been changed."
        )]
    } else if selected.is_empty() {
        vec![
            "Items must be selected in order to perform actions on them. No items have been changed."
                .to_owned(),
        ]
    } else {
        let principal = staff.principal;
        let services = state.services.clone();
        // On the blocking pool, not the database lane: an action may read
        // files (verifying documents) for a while.
        let outcomes = autodocs_http::lane::blocking(move || {
            selected
                .into_iter()
                .map(|id| {
                    let outcome = if deleting {
                        admin.delete(&services, principal, id)
                    } else {
                        admin.act(&services, principal, &action, id)
                    };
                    (id, outcome)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(autodocs_http::error::ApiError::from)?;
        report(
            admin,
            &outcomes,
            if deleting { "deleted" } else { "updated" },
        )
    };
    let response = HttpResponse::Found()
        .insert_header((header::LOCATION, changelist_url(admin, &request)))
        .finish();
    with_messages(response, &messages, secure_cookies(&request, &state))
}

/// The changelist the request came from, its query string kept.
fn changelist_url(admin: &dyn ModelAdmin, request: &HttpRequest) -> String {
    match request.uri().query() {
        Some(query) if !query.is_empty() => format!("{}?{query}", admin.spec().link.changelist()),
        _ => admin.spec().link.changelist(),
    }
}

fn report(
    admin: &dyn ModelAdmin,
    outcomes: &[(i64, crate::changelist::ActionOutcome)],
    verb: &str,
) -> Vec<String> {
    let done = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.is_ok())
        .count();
    let mut messages = Vec::new();
    if done > 0 {
        let plural = admin.spec().link.plural.to_lowercase();
        messages.push(format!(
            "Successfully {verb} {done} {}.",
            plural_of(done, admin.spec().singular, &plural)
        ));
    }
    for (id, outcome) in outcomes {
        if let Err(reason) = outcome {
            messages.push(format!(
                "{} {id} was not changed: {reason}",
                capitalised(admin.spec().singular)
            ));
        }
    }
    messages
}

fn plural_of(count: usize, singular: &str, plural: &str) -> String {
    if count == 1 {
        singular.to_owned()
    } else {
        plural.to_owned()
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
