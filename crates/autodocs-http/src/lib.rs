//! The thin HTTP layer: actix-web routes that extract input, call a use
//! case off the event loop, and render the contract's JSON.
#![warn(missing_docs)]

pub mod asyncapi;
pub mod auth;
pub mod client;
pub mod error;
pub mod extract;
pub mod hub;
pub mod lane;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod throttle;
pub mod views;

use std::net::TcpListener;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::{Method, header};
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, Route, web};

use crate::error::ApiError;
pub use crate::state::{AppState, HealthCheck};

/// How long a client may take to send a request's head.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an idle keep-alive connection is kept.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Origins allowed by CORS, credentials included.
    pub cors_allowed_origins: Vec<String>,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// The security headers every response carries.
    pub security_headers: middleware::SecurityHeaders,
}

async fn method_not_allowed(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(request.method().to_string()))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A resource whose other methods answer 405 in JSON.
fn resource(path: &str, routes: Vec<Route>) -> actix_web::Resource {
    routes
        .into_iter()
        .fold(web::resource(path), |resource, route| resource.route(route))
        .default_service(web::to(method_not_allowed))
}

/// Registers every route of the API.
pub fn configure(config: &mut web::ServiceConfig) {
    use routes::{activities, auth, documents, missions, ops, steps, users, ws};
    config
        .service(resource(
            "/api/auth/register/",
            vec![web::post().to(auth::register)],
        ))
        .service(resource(
            "/api/auth/login/",
            vec![web::post().to(auth::login)],
        ))
        .service(resource(
            "/api/auth/token/",
            vec![web::post().to(auth::token)],
        ))
        .service(resource(
            "/api/auth/token/refresh/",
            vec![web::post().to(auth::refresh)],
        ))
        .service(resource(
            "/api/auth/token/verify/",
            vec![web::post().to(auth::verify)],
        ))
        .service(resource(
            "/api/auth/logout/",
            vec![web::post().to(auth::logout)],
        ))
        .service(resource(
            "/api/users/me/",
            vec![
                web::get().to(users::me),
                web::patch().to(users::update_me),
                web::put().to(users::update_me),
            ],
        ))
        .service(resource(
            "/api/users/me/password/",
            vec![web::post().to(users::change_password)],
        ))
        .service(resource("/api/users/", vec![web::get().to(users::list)]))
        .service(resource(
            "/api/users/{id}/",
            vec![
                web::get().to(users::detail),
                web::patch().to(users::update),
                web::put().to(users::update),
                web::delete().to(users::delete),
            ],
        ))
        .service(resource(
            "/api/missions/",
            vec![
                web::get().to(missions::list),
                web::post().to(missions::create),
            ],
        ))
        .service(resource(
            "/api/missions/{id}/",
            vec![
                web::get().to(missions::detail),
                web::patch().to(missions::patch),
                web::put().to(missions::put),
                web::delete().to(missions::delete),
            ],
        ))
        .service(resource(
            "/api/missions/{id}/steps/",
            vec![web::get().to(steps::list), web::post().to(steps::create)],
        ))
        .service(resource(
            "/api/missions/{id}/steps/{step_id}/",
            vec![
                web::get().to(steps::detail),
                web::patch().to(steps::update),
                web::delete().to(steps::delete),
            ],
        ))
        .service(resource(
            "/api/missions/{id}/{action}/",
            vec![web::post().to(missions::act)],
        ))
        .service(resource(
            "/api/activities/",
            vec![
                web::get().to(activities::list),
                web::post().to(activities::create),
            ],
        ))
        .service(resource(
            "/api/activities/{id}/",
            vec![web::get().to(activities::detail)],
        ))
        .service(resource("/ws/events/", vec![web::get().to(ws::events)]))
        .service(resource(
            "/ws/missions/{id}/",
            vec![web::get().to(ws::mission)],
        ))
        .service(resource(
            "/api/documents/",
            vec![
                web::get().to(documents::list),
                web::post().to(documents::upload),
            ],
        ))
        .service(resource(
            "/api/documents/{id}/",
            vec![
                web::get().to(documents::detail),
                web::patch().to(documents::update),
                web::delete().to(documents::delete),
            ],
        ))
        .service(resource(
            "/api/documents/{id}/download/",
            vec![
                web::get().to(documents::download),
                web::head().to(documents::download),
            ],
        ))
        .service(resource(
            "/api/documents/{id}/verify/",
            vec![web::post().to(documents::verify)],
        ))
        .service(resource("/api/health/", vec![web::get().to(ops::health)]))
        .service(resource("/api/schema/", vec![web::get().to(ops::schema)]))
        // The API reference page (issue 13, item 5); its assets live outside /api/.
        .service(resource(
            "/api/docs/",
            vec![web::get().to(routes::apidocs::page)],
        ))
        .service(resource(
            "/api/asyncapi/",
            vec![web::get().to(routes::apidocs::asyncapi)],
        ))
        .service(resource(
            "/static/apidocs/{file}/",
            vec![
                web::get().to(routes::apidocs::asset),
                web::head().to(routes::apidocs::asset),
            ],
        ))
        .default_service(web::to(not_found));
}

fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::HEAD,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::RANGE,
            header::IF_NONE_MATCH,
        ])
        .allowed_header(middleware::REQUEST_ID)
        .expose_headers([
            header::CONTENT_DISPOSITION,
            header::ETAG,
            header::CONTENT_RANGE,
        ])
        .expose_headers([middleware::REQUEST_ID])
        .supports_credentials()
        .max_age(3600)
}

/// Starts serving on `listener`; the future runs until the server stops.
pub fn serve(
    listener: TcpListener,
    state: AppState,
    settings: HttpSettings,
) -> std::io::Result<Server> {
    let data = web::Data::new(state);
    let origins = settings.cors_allowed_origins.clone();
    let security = settings.security_headers;
    routes::apidocs::prepare();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(extract::MAX_JSON_BODY))
            .configure(configure)
            .wrap(NormalizePath::new(TrailingSlash::Always))
            .wrap(cors(&origins))
            .wrap(from_fn(middleware::request_id))
            // Outermost: every response, the 500s request_id rewrites included.
            .wrap(from_fn(move |request, next| {
                middleware::security_headers(security, request, next)
            }))
    })
    // A client that is slow to send its request head is cut after this
    // (408, actix's own answer); one idle between requests after the
    // keep-alive. A stalled *body* is cut by the handlers' body timeout
    // (`server.body_timeout_seconds`), which knows to delete what it kept.
    .client_request_timeout(HEAD_TIMEOUT)
    .keep_alive(KEEP_ALIVE)
    .listen(listener)?;
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.shutdown_timeout(10).disable_signals().run())
}
