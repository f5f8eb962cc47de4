//! The staff admin: Django admin's job, in the browser, on the domain's
//! use cases.
//!
//! Server-rendered pages at Django admin's addresses (`/admin/login/`,
//! `/admin/logout/`, `/admin/`), working without JavaScript. Staff sign in
//! with the API's credentials check (same throttles, same hashing queue);
//! the session lives in the database (see
//! [`autodocs_domain::admin_session`]) and ends on logout, on expiry, or as
//! soon as its account is deactivated or loses staff status. Every form
//! carries a CSRF token; a POST without a valid one is 403 and changes
//! nothing.

pub mod change;
pub mod changelist;
pub mod error;
pub mod missions;
pub mod models;
pub mod others;
pub mod pages;
pub mod routes;
pub mod session;
pub mod views;

use actix_web::web;

/// Registers the admin's pages under `/admin/`.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/admin")
            .route("/", web::get().to(routes::index))
            .route("/login/", web::get().to(routes::login_form))
            .route("/login/", web::post().to(routes::login))
            .route("/logout/", web::post().to(routes::logout))
            .route(
                "/documents/document/{id}/download/",
                web::get().to(others::download),
            )
            .route(
                "/{app}/{model}/{id}/change/",
                web::get().to(change::change_page),
            )
            .route(
                "/{app}/{model}/{id}/change/",
                web::post().to(change::change),
            )
            .route("/{app}/{model}/", web::get().to(views::changelist))
            .route("/{app}/{model}/", web::post().to(views::changelist_action))
            .default_service(web::to(routes::not_found)),
    );
}
