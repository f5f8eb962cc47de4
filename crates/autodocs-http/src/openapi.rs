//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "AutoDocs API", version = "1.0.0", description = "Missions, plan steps, documents and activities."),
    paths(
        routes::auth::register,
        routes::auth::login,
        routes::auth::token,
        routes::auth::refresh,
        routes::auth::verify,
        routes::auth::logout,
        routes::users::me,
        routes::users::update_me,
        routes::users::change_password,
        routes::users::list,
        routes::users::detail,
        routes::users::update,
        routes::users::delete,
        routes::missions::list,
        routes::missions::create,
        routes::missions::detail,
        routes::missions::patch,
        routes::missions::put,
        routes::missions::delete,
        routes::missions::act,
        routes::steps::list,
        routes::steps::create,
        routes::steps::detail,
        routes::steps::update,
        routes::steps::delete,
        routes::activities::list,
        routes::activities::create,
        routes::activities::detail,
        routes::documents::upload,
        routes::documents::list,
        routes::documents::detail,
        routes::documents::update,
        routes::documents::delete,
        routes::documents::download,
        routes::documents::verify,
        routes::ops::health,
        routes::apidocs::page,
        routes::apidocs::asyncapi,
    ),
    components(schemas(crate::views::UserView, crate::views::ProfileView, routes::auth::SessionView)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
