//! The thin HTTP layer: actix-web routes that extract input, call a use
//! case off the event loop, and render the contract's JSON.
#![warn(missing_docs)]

pub mod asyncapi;
pub mod auth;
pub mod client;
pub mod commands;
pub mod error;
pub mod extract;
pub mod hub;
pub mod lane;
pub mod links;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod schemas;
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

/// Builds a route for one method, remembering the method so the table can be read.
macro_rules! on {
    ($method:ident, $handler:expr) => {
        (Method::$method, web::method(Method::$method).to($handler))
    };
}

/// The route table: every path with its routed methods, in matching order.
///
/// [`configure`] registers exactly this table and [`routes`] lists it, so the
/// OpenAPI parity test (in `openapi.rs`) sees every route the server serves:
/// a route added here without its `#[utoipa::path]` fails that test.
fn table() -> Vec<(&'static str, Vec<(Method, Route)>)> {
    use routes::{activities, apidocs, auth, documents, missions, ops, steps, users, ws};
    vec![
        ("/api/auth/register/", vec![on!(POST, auth::register)]),
        ("/api/auth/login/", vec![on!(POST, auth::login)]),
        ("/api/auth/token/", vec![on!(POST, auth::token)]),
        ("/api/auth/token/refresh/", vec![on!(POST, auth::refresh)]),
        ("/api/auth/token/verify/", vec![on!(POST, auth::verify)]),
        ("/api/auth/logout/", vec![on!(POST, auth::logout)]),
        (
            "/api/users/me/",
            vec![
                on!(GET, users::me),
                on!(PATCH, users::update_me),
                on!(PUT, users::replace_me),
            ],
        ),
        (
            "/api/users/me/password/",
            vec![on!(POST, users::change_password)],
        ),
        ("/api/users/", vec![on!(GET, users::list)]),
        (
            "/api/users/{id}/",
            vec![
                on!(GET, users::detail),
                on!(PATCH, users::update),
                on!(PUT, users::replace),
                on!(DELETE, users::delete),
            ],
        ),
        (
            "/api/missions/",
            vec![on!(GET, missions::list), on!(POST, missions::create)],
        ),
        (
            "/api/missions/{id}/",
            vec![
                on!(GET, missions::detail),
                on!(PATCH, missions::patch),
                on!(PUT, missions::put),
                on!(DELETE, missions::delete),
            ],
        ),
        (
            "/api/missions/{id}/steps/",
            vec![on!(GET, steps::list), on!(POST, steps::create)],
        ),
        (
            "/api/missions/{id}/steps/{step_id}/",
            vec![
                on!(GET, steps::detail),
                on!(PATCH, steps::update),
                on!(DELETE, steps::delete),
            ],
        ),
        (
            "/api/missions/{id}/start/",
            vec![on!(POST, missions::start)],
        ),
        (
            "/api/missions/{id}/pause/",
            vec![on!(POST, missions::pause)],
        ),
        (
            "/api/missions/{id}/resume/",
            vec![on!(POST, missions::resume)],
        ),
        (
            "/api/missions/{id}/complete/",
            vec![on!(POST, missions::complete)],
        ),
        (
            "/api/missions/{id}/cancel/",
            vec![on!(POST, missions::cancel)],
        ),
        (
            "/api/activities/",
            vec![on!(GET, activities::list), on!(POST, activities::create)],
        ),
        ("/api/activities/{id}/", vec![on!(GET, activities::detail)]),
        ("/ws/events/", vec![on!(GET, ws::events)]),
        ("/ws/missions/{id}/", vec![on!(GET, ws::mission)]),
        (
            "/api/documents/",
            vec![on!(GET, documents::list), on!(POST, documents::upload)],
        ),
        (
            "/api/documents/{id}/",
            vec![
                on!(GET, documents::detail),
                on!(PATCH, documents::update),
                on!(DELETE, documents::delete),
            ],
        ),
        (
            "/api/documents/{id}/download/",
            vec![
                on!(GET, documents::download),
                on!(HEAD, documents::download_head),
            ],
        ),
        (
            "/api/documents/{id}/download-link/",
            vec![on!(POST, documents::download_link)],
        ),
        (
            "/api/documents/{id}/verify/",
            vec![on!(POST, documents::verify)],
        ),
        ("/api/health/", vec![on!(GET, ops::health)]),
        ("/api/schema/", vec![on!(GET, ops::schema)]),
        // The API reference page; its assets live outside /api/.
        ("/api/docs/", vec![on!(GET, apidocs::page)]),
        ("/api/asyncapi/", vec![on!(GET, apidocs::asyncapi)]),
        (
            "/static/apidocs/{file}/",
            vec![on!(GET, apidocs::asset), on!(HEAD, apidocs::asset)],
        ),
    ]
}

/// Every routed method and path of the route table (`/ws/` included).
pub fn routes() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .flat_map(|(path, routes)| routes.into_iter().map(move |(method, _)| (method, path)))
        .collect()
}

/// Registers every route of the API: the route table, nothing else, so
/// that [`routes`] is the whole truth.
pub fn configure(config: &mut web::ServiceConfig) {
    // Prometheus's text, not part of the API (nor of its document).
    config.service(web::resource("/metrics/").route(web::get().to(metrics::scrape)));
    for (path, routes) in table() {
        config.service(resource(
            path,
            routes.into_iter().map(|(_, route)| route).collect(),
        ));
    }
    config.default_service(web::to(not_found));
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
/// `mount` registers the routes of other inbound adapters on the same
/// state (the staff admin's `/admin/`), before the API's own.
pub fn serve(
    listener: TcpListener,
    state: AppState,
    settings: HttpSettings,
    mount: fn(&mut web::ServiceConfig),
) -> std::io::Result<Server> {
    let data = web::Data::new(state);
    let origins = settings.cors_allowed_origins.clone();
    let security = settings.security_headers;
    routes::apidocs::prepare();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(extract::MAX_JSON_BODY))
            .configure(mount)
            .configure(configure)
            .wrap(NormalizePath::new(TrailingSlash::Always))
            .wrap(cors(&origins))
            .wrap(from_fn(middleware::request_id))
            // Every response, the 500s request_id rewrites included.
            .wrap(from_fn(move |request, next| {
                middleware::security_headers(security, request, next)
            }))
            // Outermost: the request span around everything, the access
            // line once the answer is known.
            .wrap(middleware::request_tracing())
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
