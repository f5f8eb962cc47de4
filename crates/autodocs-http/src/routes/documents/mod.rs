//! `/api/documents/`: upload, list, detail, edit, delete, download, verify.
//!
//! Uploads are streamed: the `file` part is read on the event loop and
//! written a batch at a time on the blocking pool to a temporary file
//! (counting, hashing and sniffing as it goes), so no file is ever held in
//! memory, no file I/O runs on the event loop, and no thread waits on a
//! slow client. Passing the size limit stops reading at once (413); a body
//! that stops arriving is cut (408). Whatever ends an upload early (an
//! error, the limit, the timeout, the client going away) drops the
//! temporary file.
//!
//! Downloads are streamed the other way: a blocking task reads the stored
//! file in chunks into a bounded channel that the response body drains.

//!
//! `upload.rs` receives files, `download.rs` serves them (ranges, ETags,
//! signed links); this module holds the JSON endpoints.

mod download;
mod upload;

pub use download::*;
pub use upload::*;

use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::document::{DocumentQuery, DocumentStatus, DocumentType};
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use autodocs_domain::{DocumentId, MissionId};

use crate::error::ApiResult;
use crate::extract::{Authenticated, JsonObject, as_caller, as_caller_with_files, parse_bool};
use crate::routes::missions::choices;
use crate::routes::{ListQuery, object_id, owner_filter, page_request};
use crate::state::AppState;
use crate::views::{document_json, paginated};

// ---------------------------------------------------------------------------
// List, detail, edit, delete, verify
// ---------------------------------------------------------------------------

/// Lists the caller's documents (staff: everyone's, `?owner=` narrows).
#[utoipa::path(get, path = "/api/documents/", tag = "documents", operation_id = "documents_list",
    security(("bearer" = [])), params(crate::schemas::DocumentListParams),
    responses(
        (status = 200, description = "A page of the caller's documents (staff: everyone's)", body = crate::schemas::PaginatedDocumentList),
        (status = 400, description = "A bad filter, ordering or page size", body = crate::schemas::BadRequest),
        (status = 404, description = "A page past the end (`Invalid page.`)", body = crate::schemas::Detail)))]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: ListQuery,
) -> ApiResult<HttpResponse> {
    let mut errors = ValidationErrors::new();
    let missions = choices(
        &query,
        "mission",
        |raw| {
            raw.parse::<i64>()
                .map(MissionId)
                .map_err(|_| InvalidValue::new("Enter a number."))
        },
        &mut errors,
    );
    let kinds = choices(&query, "type", DocumentType::parse, &mut errors);
    let statuses = choices(&query, "status", DocumentStatus::parse, &mut errors);
    let verified = match query.get("verified").filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => errors.check(
            "verified",
            parse_bool(raw).ok_or_else(|| InvalidValue::new("Must be a valid boolean.")),
        ),
        None => None,
    };
    let ordering = super::ordering(&query, &mut errors);
    let owner = owner_filter(&query, &mut errors);
    let page = page_request(&query, &mut errors)?;
    errors.into_result()?;
    let document_query = DocumentQuery {
        owner,
        missions,
        kinds,
        statuses,
        verified,
        search: query.get("search").map(str::to_owned),
        ordering,
        page,
    };
    let page = as_caller(&state, principal, move |services, principal| {
        services.documents().list(principal, document_query)
    })
    .await?;
    Ok(
        HttpResponse::Ok().json(paginated(&request, &page, |document| {
            document_json(&request, document)
        })),
    )
}

/// One of the caller's documents (staff: anyone's).
#[utoipa::path(get, path = "/api/documents/{id}/", tag = "documents", operation_id = "documents_retrieve",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The document's id")),
    responses((status = 200, description = "The document", body = crate::schemas::Document), (status = 404, description = "No such document of the caller's", body = crate::schemas::Detail)))]
pub async fn detail(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = DocumentId(object_id(&path)?);
    let document = as_caller(&state, principal, move |services, principal| {
        services.documents().get(principal, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(document_json(&request, &document)))
}

/// Edits a document's `name`, `type` or `mission`.
#[utoipa::path(patch, path = "/api/documents/{id}/", tag = "documents", operation_id = "documents_partial_update",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The document's id")),
    request_body(content = crate::schemas::DocumentUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated document", body = crate::schemas::Document),
        (status = 400, description = "Validation errors", body = crate::schemas::BadRequest), (status = 404, description = "No such document of the caller's", body = crate::schemas::Detail)))]
pub async fn update(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<HttpResponse> {
    let id = DocumentId(object_id(&path)?);
    let changes = crate::commands::update_document(&body)?;
    let document = as_caller(&state, principal, move |services, principal| {
        services.documents().update(principal, id, changes)
    })
    .await?;
    Ok(HttpResponse::Ok().json(document_json(&request, &document)))
}

/// Deletes a document and its stored file.
#[utoipa::path(delete, path = "/api/documents/{id}/", tag = "documents", operation_id = "documents_destroy",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The document's id")),
    responses((status = 204, description = "Deleted, with its stored file"), (status = 404, description = "No such document of the caller's", body = crate::schemas::Detail)))]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = DocumentId(object_id(&path)?);
    as_caller(&state, principal, move |services, principal| {
        services.documents().delete(principal, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Re-reads the stored file and verifies it against what was recorded.
#[utoipa::path(post, path = "/api/documents/{id}/verify/", tag = "documents", operation_id = "documents_verify",
    security(("bearer" = [])), params(("id" = i64, Path, minimum = 1, description = "The document's id")),
    responses(
        (status = 200, description = "The document, `verified` or `rejected` (`verification_error` says why)", body = crate::schemas::Document),
        (status = 404, description = "No such document of the caller's", body = crate::schemas::Detail)))]
pub async fn verify(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = DocumentId(object_id(&path)?);
    let document = as_caller_with_files(&state, principal, move |services, principal| {
        services.documents().verify(principal, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(document_json(&request, &document)))
}

/// Drops `value` on the blocking pool when there is one (its drop does file I/O).
fn discard<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(value));
        }
        Err(_) => drop(value),
    }
}
