//! Django admin's change page, declared per model as data (its editable
//! fields, its read-only facts) and rendered by one generic view; saving
//! goes through the model's use case, whose refusals are shown next to
//! their fields.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::Services;
use autodocs_domain::user::Principal;
use autodocs_domain::validation::ValidationErrors;
use autodocs_http::AppState;
use autodocs_http::error::{ApiError, drf_message};
use maud::Markup;

use crate::error::AdminError;
use crate::session::{CSRF_FIELD, Staff, secure_cookies};

/// How an editable field is typed in.
#[derive(Debug, Clone)]
pub enum Input {
    /// One line of text.
    Text,
    /// Several lines.
    TextArea,
    /// One of `(value, label)`.
    Select(Vec<(String, String)>),
    /// Ticked or not (posted as `on` when ticked).
    Checkbox,
}

/// An editable field: its input's name (the model's field name), its
/// label, how it is typed in and its value.
#[derive(Debug, Clone)]
pub struct Field {
    /// The input's name.
    pub name: &'static str,
    /// The label.
    pub label: &'static str,
    /// The input.
    pub input: Input,
    /// The value shown (for a checkbox: `on` when ticked).
    pub value: String,
}

impl Field {
    /// A field of `input` showing `value`.
    pub fn new(
        name: &'static str,
        label: &'static str,
        input: Input,
        value: impl Into<String>,
    ) -> Self {
        Self {
            name,
            label,
            input,
            value: value.into(),
        }
    }

    /// A checkbox ticked when `value`.
    pub fn checkbox(name: &'static str, label: &'static str, value: bool) -> Self {
        Self::new(name, label, Input::Checkbox, if value { "on" } else { "" })
    }
}

/// What a change page shows of one object.
pub struct ChangeView {
    /// The object's name (the page title, the breadcrumbs, the message).
    pub name: String,
    /// The editable fields, with the object's values.
    pub fields: Vec<Field>,
    /// The read-only facts.
    pub readonly: Vec<(&'static str, String)>,
    /// Anything more the page shows (a mission's plan and activities).
    pub extra: Option<Markup>,
}

/// The refusals of a save, by field (`""`: the whole form).
pub type FieldErrors = BTreeMap<String, String>;

/// A posted form: its values by input name.
pub type Posted = BTreeMap<String, String>;

/// The refusals of a use case's validation, worded for the page.
pub fn field_errors(errors: &ValidationErrors) -> FieldErrors {
    let mut worded: FieldErrors = errors
        .fields()
        .iter()
        .filter_map(|(field, refusals)| Some((field.clone(), drf_message(refusals.first()?))))
        .collect();
    if let Some(general) = errors.general().first() {
        worded.insert(String::new(), drf_message(general));
    }
    worded
}

/// Records a field's parse: the value, or its refusal in `errors`.
pub fn parsed<T>(
    errors: &mut FieldErrors,
    field: &str,
    parse: Result<T, autodocs_domain::validation::InvalidValue>,
) -> Option<T> {
    match parse {
        Ok(value) => Some(value),
        Err(refusal) => {
            errors.insert(field.to_owned(), drf_message(&refusal));
            None
        }
    }
}

/// A model's change page, beside its changelist.
pub trait ChangeAdmin: crate::changelist::ModelAdmin {
    /// The page of object `id` (a not-found error when it is not there).
    fn load(&self, services: &Services, staff: Principal, id: i64) -> Result<ChangeView, ApiError>;
    /// Saves the posted form through the model's use case: `Ok(Ok(name))`,
    /// or the refusals to show.
    fn save(
        &self,
        services: &Services,
        staff: Principal,
        id: i64,
        posted: &Posted,
    ) -> Result<Result<String, FieldErrors>, ApiError>;
}

/// The change admin of `/admin/<app>/<model>/<id>/change/`.
pub fn change_admin(app: &str, model: &str) -> Option<&'static dyn ChangeAdmin> {
    let admins: [&'static dyn ChangeAdmin; 4] = [
        &crate::missions::MissionAdmin,
        &crate::others::UserAdmin,
        &crate::others::DocumentAdmin,
        &crate::others::PlanStepAdmin,
    ];
    admins
        .into_iter()
        .find(|admin| admin.spec().link.app == app && admin.spec().link.model == model)
}

async fn load(
    state: &AppState,
    admin: &'static dyn ChangeAdmin,
    staff: Principal,
    id: i64,
) -> Result<ChangeView, AdminError> {
    let services = state.services.clone();
    Ok(state
        .lane
        .run(move || admin.load(&services, staff, id))
        .await??)
}

fn render(
    staff: &Staff,
    admin: &dyn ChangeAdmin,
    view: &ChangeView,
    errors: &FieldErrors,
) -> HttpResponse {
    crate::routes::html(crate::pages::change(
        (&staff.username, &staff.csrf_token()),
        admin.spec().link,
        admin.spec().singular,
        view,
        errors,
    ))
}

/// `GET /admin/<app>/<model>/<id>/change/`.
pub async fn change_page(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<(String, String, i64)>,
) -> Result<HttpResponse, AdminError> {
    let (app, model, id) = path.into_inner();
    let admin = change_admin(&app, &model).ok_or(AdminError::NotFound)?;
    let view = load(&state, admin, staff.principal, id).await?;
    Ok(render(&staff, admin, &view, &FieldErrors::new()))
}

/// `POST /admin/<app>/<model>/<id>/change/`.
pub async fn change(
    request: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<(String, String, i64)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AdminError> {
    let (app, model, id) = path.into_inner();
    let admin = change_admin(&app, &model).ok_or(AdminError::NotFound)?;
    let posted: Posted = form.into_inner().into_iter().collect();
    staff.check_csrf(posted.get(CSRF_FIELD).map(String::as_str))?;
    let principal = staff.principal;
    let services = state.services.clone();
    let values = posted.clone();
    let saved = state
        .lane
        .run(move || admin.save(&services, principal, id, &values))
        .await??;
    match saved {
        Ok(name) => {
            let message = format!(
                "The {} “{name}” was changed successfully.",
                admin.spec().singular
            );
            let response = HttpResponse::Found()
                .insert_header((header::LOCATION, admin.spec().link.changelist()))
                .finish();
            crate::views::with_messages(response, &[message], secure_cookies(&request, &state))
        }
        Err(errors) => {
            let mut view = load(&state, admin, principal, id).await?;
            // Shown as posted, so nothing typed is lost.
            for field in &mut view.fields {
                field.value = posted.get(field.name).cloned().unwrap_or_default();
            }
            Ok(render(&staff, admin, &view, &errors))
        }
    }
}
