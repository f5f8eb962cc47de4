//! Operations: health and the OpenAPI document.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiResult;
use crate::state::AppState;

/// Whether the server and its database answer.
#[utoipa::path(get, path = "/api/health/", tag = "ops", operation_id = "health_retrieve",
    responses(
        (status = 200, description = "The server and its database answer", body = crate::schemas::Health),
        (status = 503, description = "The database is down", body = crate::schemas::Health,
            headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub async fn health(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let health = state.health.clone();
    let database_ok = crate::lane::blocking(move || health.database_ok()).await?;
    Ok(if database_ok {
        HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((
                actix_web::http::header::RETRY_AFTER,
                crate::error::RETRY_AFTER_UNAVAILABLE,
            ))
            .json(json!({"status": "error", "database": "unavailable"}))
    })
}

/// The OpenAPI 3 document of the API.
#[utoipa::path(get, path = "/api/schema/", tag = "ops", operation_id = "schema_retrieve",
    responses((status = 200, description = "This OpenAPI document", body = crate::schemas::OpenApiDocument)))]
pub async fn schema() -> HttpResponse {
    // The document depends on the code alone: built and serialised once per
    // process, so a client fetching it in a loop costs a copy, not a build.
    static DOCUMENT: std::sync::OnceLock<actix_web::web::Bytes> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_vec(&crate::openapi::document())
            .map(Into::into)
            .unwrap_or_default()
    });
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body.clone())
}
