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

use std::io::{Read, Seek, SeekFrom};

use actix_multipart::{Field, Multipart};
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, web};
use autodocs_domain::Services;
use autodocs_domain::document::{DocumentQuery, DocumentStatus, DocumentType};
use autodocs_domain::ports::{StagedUpload, StoredFile, UploadError, UploadSink};
use autodocs_domain::usecases::documents::{DocumentInput, UploadedPart};
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use autodocs_domain::{DocumentId, MissionId};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{
    Authenticated, BodyTimeout, Fields, JsonObject, Stalled, as_caller, as_caller_with_files,
    parse_bool,
};
use crate::links;
use crate::routes::missions::choices;
use crate::routes::{ListQuery, object_id, owner_filter, page_request};
use crate::state::AppState;
use crate::views::{absolute_url, document_json, paginated, timestamp};

/// Most bytes a multipart request may carry besides the file itself
/// (boundaries, part headers, the text fields).
const FORM_OVERHEAD: u64 = 1024 * 1024;

/// Most bytes of one text field (`name`, `type`, `mission`).
const MAX_TEXT_FIELD: usize = 64 * 1024;

/// Bytes of an upload gathered in memory before one write on the blocking
/// pool (fewer hops than one per network chunk).
const WRITE_BATCH: usize = 256 * 1024;

/// Bytes per chunk read from a stored file.
const READ_CHUNK: usize = 256 * 1024;

/// The `Retry-After` of an upload refused because the user has
/// `uploads.max_concurrent_per_user` in progress: a slot frees when any
/// of them ends, which cannot be known in advance.
const UPLOAD_RETRY_SECONDS: u64 = 1;

/// DRF's message for a `file` part that is a plain field.
const NOT_A_FILE: &str = "The submitted data was not a file. Check the encoding type on the form.";

// ---------------------------------------------------------------------------
// Upload
// ---------------------------------------------------------------------------

/// Drops a received upload (deleting its temporary file) off the event loop.
struct PendingFile(Option<UploadedPart>);

impl PendingFile {
    fn take(&mut self) -> Option<UploadedPart> {
        self.0.take()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if let Some(part) = self.0.take() {
            discard(part);
        }
    }
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

/// Why the writer stopped without a staged file.
enum WriteFailure {
    Domain(autodocs_domain::Error),
    Upload(UploadError),
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "The file is larger than the maximum upload size of {limit} bytes."
    ))
}

fn write_failure(failure: WriteFailure) -> ApiError {
    match failure {
        WriteFailure::Domain(error) => ApiError::Domain(error),
        WriteFailure::Upload(UploadError::TooLarge { limit }) => too_large(limit),
        WriteFailure::Upload(UploadError::Storage(error)) => ApiError::Domain(error.into()),
    }
}

fn multipart_error(stalled: &Stalled, error: actix_multipart::MultipartError) -> ApiError {
    stalled.or(|| ApiError::MalformedMultipart(error.to_string()))
}

/// An upload sink between two writes. Held while the next bytes come from
/// the network (no thread is); dropping it (an error, the client gone)
/// deletes its temporary file, off the event loop.
struct OpenSink(Option<Box<dyn UploadSink>>);

impl Drop for OpenSink {
    fn drop(&mut self) {
        if let Some(sink) = self.0.take() {
            discard(sink);
        }
    }
}

impl OpenSink {
    /// Writes `bytes` on the blocking pool; the thread is held for the
    /// disk write only, never while waiting for the client.
    async fn write(&mut self, bytes: web::Bytes) -> ApiResult<()> {
        let Some(mut sink) = self.0.take() else {
            return Err(ApiError::Internal("upload sink already finished".into()));
        };
        let (sink, written) = crate::lane::blocking(move || {
            let written = sink.write(&bytes);
            (sink, written)
        })
        .await?;
        self.0 = Some(sink);
        written.map_err(|error| write_failure(WriteFailure::Upload(error)))
    }

    /// Ends the upload: the file is durable in its temporary place.
    async fn finish(mut self) -> ApiResult<Box<dyn StagedUpload>> {
        let Some(sink) = self.0.take() else {
            return Err(ApiError::Internal("upload sink already finished".into()));
        };
        crate::lane::blocking(move || sink.finish())
            .await?
            .map_err(|error| write_failure(WriteFailure::Upload(error)))
    }
}

/// Streams one file part to storage. Returns the staged upload, durable in
/// a temporary file; every early return drops the sink, which deletes the
/// temporary file.
///
/// The part is read on the event loop (a stalled client costs a timer,
/// not a thread); the bytes go to disk on the blocking pool a batch at a
/// time, so at most [`WRITE_BATCH`] bytes of one upload are in memory.
async fn receive_file(
    services: Services,
    field: &mut Field,
    budget: &mut u64,
    stalled: &Stalled,
) -> ApiResult<Box<dyn StagedUpload>> {
    let limit = services.max_upload_bytes();
    let sink = crate::lane::blocking(move || services.documents().begin_upload())
        .await?
        .map_err(|error| write_failure(WriteFailure::Domain(error)))?;
    let mut sink = OpenSink(Some(sink));
    let mut size: u64 = 0;
    let mut batch = web::BytesMut::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|error| multipart_error(stalled, error))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        *budget = budget.saturating_sub(chunk.len() as u64);
        batch.extend_from_slice(&chunk);
        if batch.len() >= WRITE_BATCH {
            sink.write(batch.split().freeze()).await?;
        }
    }
    if !batch.is_empty() {
        sink.write(batch.freeze()).await?;
    }
    sink.finish().await
}

/// Takes `bytes` from what the request may still send besides the file.
fn spend(budget: &mut u64, bytes: usize, limit: u64) -> ApiResult<()> {
    *budget = budget
        .checked_sub(bytes as u64)
        .ok_or_else(|| too_large(limit))?;
    Ok(())
}

/// Reads a text field of at most [`MAX_TEXT_FIELD`] bytes.
async fn read_text(
    field: &mut Field,
    budget: &mut u64,
    limit: u64,
    stalled: &Stalled,
) -> ApiResult<Result<String, InvalidValue>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|error| multipart_error(stalled, error))?;
        spend(budget, chunk.len(), limit)?;
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::TooLarge(format!(
                "A form field is larger than {MAX_TEXT_FIELD} bytes."
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(bytes).map_err(|_| InvalidValue::new("Not a valid string.")))
}

/// Reads and discards a field, within the request's budget.
async fn skip_field(
    field: &mut Field,
    budget: &mut u64,
    limit: u64,
    stalled: &Stalled,
) -> ApiResult<()> {
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|error| multipart_error(stalled, error))?;
        spend(budget, chunk.len(), limit)?;
    }
    Ok(())
}

/// The file name of a file part (`filename*` preferred), `None` for a plain field.
fn part_filename(field: &Field) -> Option<String> {
    let disposition = field.content_disposition()?;
    if let Some(extended) = disposition.get_filename_ext() {
        return Some(String::from_utf8_lossy(&extended.value).into_owned());
    }
    disposition.get_filename().map(str::to_owned)
}

fn media_type(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Uploads a file (multipart: `file`, `name?`, `type?`, `mission?`).
#[utoipa::path(post, path = "/api/documents/", tag = "documents", operation_id = "documents_create",
    security(("bearer" = [])),
    request_body(content = crate::schemas::DocumentUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The stored document", body = crate::schemas::Document),
        (status = 400, description = "No file, an empty file, a bad field or a malformed form", body = crate::schemas::BadRequest),
        (status = 408, description = "The body stopped arriving (`request_timeout`)", body = crate::schemas::Detail),
        (status = 413, description = "Over the upload size limit (`file_too_large`)", body = crate::schemas::Detail),
        (status = 415, description = "Not multipart, or a file type that is not allowed (`unsupported_file_type`)", body = crate::schemas::Detail),
        (status = 429, description = "Too many uploads in progress for the user", body = crate::schemas::Detail, headers(("Retry-After" = String, description = "Seconds to wait")))))]
pub async fn upload(
    request: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let services = state.services.clone();
    let limit = services.max_upload_bytes();
    let kind = media_type(&request);
    if kind.as_deref() != Some("multipart/form-data") {
        return Err(ApiError::UnsupportedMediaType(kind.unwrap_or_default()));
    }
    let mut budget = limit.saturating_add(FORM_OVERHEAD);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > budget) {
        // Cannot fit: refuse before reading a byte.
        return Err(too_large(limit));
    }
    // Held until the handler ends, however it ends (the client going away
    // drops this future, and the slot with it).
    let _slot = state
        .fairness
        .uploads
        .try_acquire(principal.0)
        .ok_or(ApiError::Throttled(UPLOAD_RETRY_SECONDS))?;
    let (payload, stalled) = BodyTimeout::for_request(&request, payload);
    let mut multipart = Multipart::new(request.headers(), payload);
    let mut input = DocumentInput::default();
    let mut errors = ValidationErrors::new();
    let mut file = PendingFile(None);
    let mut file_field_seen = false;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|error| multipart_error(&stalled, error))?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" if file.0.is_none() && !file_field_seen => match part_filename(&field) {
                // A browser's empty file input: no file (Django skips it).
                Some(filename) if filename.is_empty() => {
                    skip_field(&mut field, &mut budget, limit, &stalled).await?;
                }
                Some(filename) => {
                    let declared_type = field
                        .content_type()
                        .map(|mime| mime.essence_str().to_owned());
                    let staged =
                        receive_file(services.clone(), &mut field, &mut budget, &stalled).await?;
                    file.0 = Some(UploadedPart {
                        filename,
                        declared_type,
                        staged,
                    });
                }
                None => {
                    file_field_seen = true;
                    errors.add("file", NOT_A_FILE);
                    skip_field(&mut field, &mut budget, limit, &stalled).await?;
                }
            },
            "name" | "type" | "mission" => {
                let value = read_text(&mut field, &mut budget, limit, &stalled).await?;
                match (name.as_str(), value) {
                    (_, Err(error)) => errors.add(name.as_str(), error),
                    ("name", Ok(value)) => input.name = Some(value),
                    ("type", Ok(value)) => input.kind = Some(value),
                    (_, Ok(value)) => input.mission = Some(Some(value)),
                }
            }
            _ => skip_field(&mut field, &mut budget, limit, &stalled).await?,
        }
    }
    errors.into_result()?;
    let part = file.take();
    let document = as_caller_with_files(&state, principal, move |services, principal| {
        services.documents().upload(principal, &input, part)
    })
    .await?;
    Ok(HttpResponse::Created().json(document_json(&request, &document)))
}

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

fn document_input(body: &Map<String, Value>) -> Result<DocumentInput, ValidationErrors> {
    let mut fields = Fields::new(body);
    let input = DocumentInput {
        name: fields.string("name"),
        kind: fields.string("type"),
        mission: match fields.raw("mission") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => fields.string("mission").map(Some),
        },
    };
    fields.finish().map(|()| input)
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
    let changes = document_input(&body)?.parse_changes()?;
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

// ---------------------------------------------------------------------------
// Download
// ---------------------------------------------------------------------------

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole file (no range, an unknown unit, bad syntax or several ranges).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// A range that lies outside the file (416).
    Unsatisfiable,
}

/// Parses a single-range `Range` header (RFC 9110 §14.1.2); several ranges
/// and anything malformed fall back to the whole file, as the RFC allows.
pub fn parse_range(raw: &str, size: u64) -> ByteRange {
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return ByteRange::Whole;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |text: &str| {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(suffix) => ByteRange::Part {
                start: size - suffix.min(size),
                end: size - 1,
            },
            None => ByteRange::Whole,
        },
        // `a-`: from a to the end.
        (false, true) => match number(first) {
            Some(start) if start >= size => ByteRange::Unsatisfiable,
            Some(start) => ByteRange::Part {
                start,
                end: size - 1,
            },
            None => ByteRange::Whole,
        },
        // `a-b`.
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start > end => ByteRange::Whole,
            (Some(start), Some(_)) if start >= size => ByteRange::Unsatisfiable,
            (Some(start), Some(end)) => ByteRange::Part {
                start,
                end: end.min(size - 1),
            },
            _ => ByteRange::Whole,
        },
        (true, true) => ByteRange::Whole,
    }
}

/// Whether an `If-None-Match` list matches `etag` (weak comparison, `*` matches).
pub fn none_match(raw: &str, etag: &str) -> bool {
    raw.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// `Content-Disposition: attachment` with an ASCII `filename` fallback and
/// the exact name as RFC 5987 `filename*`.
pub fn attachment_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(filename.len() * 3);
    for byte in filename.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        if keep {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The `Content-Type` to send for a recorded type (text gets its charset).
fn response_content_type(recorded: &str) -> String {
    if recorded.starts_with("text/") && !recorded.contains("charset") {
        format!("{recorded}; charset=utf-8")
    } else {
        recorded.to_owned()
    }
}

/// Streams `length` bytes of `file` from `start`. Each chunk is read on the
/// blocking pool only when the response asks for it, so a client that stops
/// reading holds its socket and an open file, never a thread: a reader
/// thread blocked on a full channel would let a few hundred stalled
/// downloads take the whole blocking pool, and with it every query.
fn file_body(
    file: StoredFile,
    start: u64,
    length: u64,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> + 'static {
    futures_util::stream::try_unfold(
        (file, Some(start), length),
        |(mut file, seek_to, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let size = usize::try_from(remaining.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
            let (file, chunk) = crate::lane::blocking(move || {
                if let Some(offset) = seek_to {
                    file.reader.seek(SeekFrom::Start(offset))?;
                }
                let mut chunk = web::BytesMut::zeroed(size);
                // Shorter than it was: the response is cut, not completed.
                file.reader.read_exact(&mut chunk)?;
                Ok::<_, std::io::Error>((file, chunk.freeze()))
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Some((chunk, (file, None, remaining - size as u64))))
        },
    )
}

/// Downloads the stored bytes (`GET` and `HEAD`; `Range`, `If-None-Match`).
#[utoipa::path(get, path = "/api/documents/{id}/download/", tag = "documents", operation_id = "documents_download",
    security(("bearer" = []), ()), params(("id" = i64, Path, minimum = 1, description = "The document's id"),
        ("Range" = Option<String>, Header, description = "A single byte range, e.g. `bytes=0-1023`"),
        ("If-Range" = Option<String>, Header, description = "The ETag the range applies to"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client has"),
        ("link" = Option<String>, Query, description = "A signed link token from `download-link/`: serves the bytes with no Authorization header")),
    responses(
        (status = 200, description = "The bytes, with the document's content type", content_type = "*/*",
            body = crate::schemas::FileBytes, headers(
                ("ETag" = String, description = "The quoted sha256"),
                ("Content-Disposition" = String, description = "`attachment` with the original file name (RFC 6266 / 5987)"),
                ("Accept-Ranges" = String, description = "`bytes`"),
                ("X-Content-Type-Options" = String, description = "`nosniff`"))),
        (status = 206, description = "The requested range", content_type = "*/*", body = crate::schemas::FileBytes,
            headers(("Content-Range" = String, description = "`bytes start-end/size`"), ("ETag" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched)", headers(("ETag" = String))),
        (status = 403, description = "The signed link is not valid (`link_invalid`) or has expired (`link_expired`)", body = crate::schemas::Detail),
        (status = 404, description = "No such document of the caller's", body = crate::schemas::Detail),
        (status = 416, description = "The range lies outside the file", body = crate::schemas::Detail,
            headers(("Content-Range" = String, description = "`bytes */size`")))))]
pub async fn download(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (document, file) = match link_token(&request) {
        // A signed link decides alone: a browser following it sends no
        // header, and one it does send is not what the link vouches for.
        Some(token) => open_by_link(&state, DocumentId(object_id(&path)?), &token).await?,
        None => {
            let Authenticated(principal) = Authenticated::extract(&request).await?;
            let id = DocumentId(object_id(&path)?);
            as_caller(&state, principal, move |services, principal| {
                services.documents().open(principal, id)
            })
            .await?
        }
    };
    let Some(file) = file else {
        return Err(ApiError::NotFound);
    };
    let etag = format!("\"{}\"", document.sha256);
    let size = file.size;
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|value| value.to_str().ok());

    let common = |status: StatusCode| {
        let mut response = HttpResponseBuilder::new(status);
        response
            .insert_header((header::ETAG, etag.as_str()))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .insert_header((header::CACHE_CONTROL, "private, no-cache"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ));
        response
    };

    if text(header::IF_NONE_MATCH).is_some_and(|raw| none_match(raw, &etag)) {
        discard(file);
        return Ok(common(StatusCode::NOT_MODIFIED).finish());
    }

    // A range applies only while `If-Range` (when sent) still names this content.
    let range_applies = text(header::IF_RANGE).is_none_or(|raw| raw.trim() == etag);
    let range = match text(header::RANGE) {
        Some(raw) if range_applies => parse_range(raw, size),
        _ => ByteRange::Whole,
    };
    let (status, start, length) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            discard(file);
            return Ok(common(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .json(json!({"detail": "Requested range not satisfiable."})));
        }
    };

    let mut response = common(status);
    response
        .insert_header((
            header::CONTENT_TYPE,
            response_content_type(&document.content_type),
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&attachment_disposition(document.original_filename.as_str()))
                .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        ));
    if status == StatusCode::PARTIAL_CONTENT {
        response.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + length - 1),
        ));
    }
    if request.method() == Method::HEAD || length == 0 {
        discard(file);
        // The length is announced; no body is read (actix sends none for HEAD).
        let empty = futures_util::stream::empty::<Result<web::Bytes, std::io::Error>>();
        return Ok(response.body(SizedStream::new(length, Box::pin(empty))));
    }
    Ok(response.body(SizedStream::new(
        length,
        Box::pin(file_body(file, start, length)),
    )))
}

/// The headers of a download without its bytes (`HEAD`).
#[utoipa::path(head, path = "/api/documents/{id}/download/", tag = "documents", operation_id = "documents_download_head",
    security(("bearer" = []), ()), params(("id" = i64, Path, minimum = 1, description = "The document's id"),
        ("Range" = Option<String>, Header, description = "A single byte range, e.g. `bytes=0-1023`"),
        ("If-Range" = Option<String>, Header, description = "The ETag the range applies to"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client has"),
        ("link" = Option<String>, Query, description = "A signed link token from `download-link/`: serves the bytes with no Authorization header")),
    responses(
        (status = 200, description = "The download's headers, without a body", headers(
                ("ETag" = String, description = "The quoted sha256"),
                ("Content-Disposition" = String, description = "`attachment` with the original file name (RFC 6266 / 5987)"),
                ("Accept-Ranges" = String, description = "`bytes`"),
                ("X-Content-Type-Options" = String, description = "`nosniff`"))),
        (status = 206, description = "The range's headers, without a body",
            headers(("Content-Range" = String, description = "`bytes start-end/size`"), ("ETag" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched)", headers(("ETag" = String))),
        (status = 403, description = "The signed link is not valid (`link_invalid`) or has expired (`link_expired`)"),
        (status = 404, description = "No such document of the caller's"),
        (status = 416, description = "The range lies outside the file",
            headers(("Content-Range" = String, description = "`bytes */size`")))))]
pub async fn download_head(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    download(request, state, path).await
}

// ---------------------------------------------------------------------------
// Signed download links
// ---------------------------------------------------------------------------

/// A signed, short-lived URL of a document's bytes that needs no
/// `Authorization` header (for `<a href>` and `<img src>`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadLink {
    /// The document's download URL with its signed `link` parameter;
    /// absolute, under the same base as `download_url`.
    #[schema(format = "uri")]
    pub url: String,
    /// When the link stops working (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// The `link` query parameter of a download request, if it has one (an
/// empty one included: it is a link, and not a valid one).
fn link_token(request: &HttpRequest) -> Option<String> {
    crate::routes::ListQuery::from_query_string(request.query_string())
        .get(links::LINK_PARAMETER)
        .map(str::to_owned)
}

/// Opens a document for a signed link: the link must be genuine, for this
/// document and unexpired (403 otherwise); then its user must still exist,
/// be active and be allowed to read the document, all checked now, not when
/// the link was made (404 otherwise, as for a document that is not theirs).
async fn open_by_link(
    state: &AppState,
    id: DocumentId,
    token: &str,
) -> ApiResult<(autodocs_domain::document::Document, Option<StoredFile>)> {
    let user = state.links.verify(token, id, state.services.now())?;
    let services = state.services.clone();
    Ok(state
        .lane
        .run(move || {
            let principal = services
                .accounts()
                .principal(user)
                .map_err(|error| match error {
                    autodocs_domain::Error::TokenInvalid(_) => autodocs_domain::Error::NotFound,
                    other => other,
                })?;
            services.documents().open(principal, id)
        })
        .await??)
}

/// Makes a signed link to a document's bytes. Nothing is written: the link
/// carries everything needed to check it.
#[utoipa::path(post, path = "/api/documents/{id}/download-link/", operation_id = "documents_download_link",
    tag = "documents", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The document's id")),
    responses(
        (status = 200, description = "A signed URL of the document's bytes, valid `uploads.link_seconds` \
            (default 300): `GET`/`HEAD` on it serve the bytes like `download/` (Range, If-None-Match) with no \
            Authorization header", body = DownloadLink),
        (status = 404, description = "No such document, or someone else's", body = crate::schemas::Detail)))]
pub async fn download_link(
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
    let link = state
        .links
        .issue(document.id, principal.0, state.services.now());
    let url = absolute_url(
        &request,
        &format!(
            "/api/documents/{}/download/?{}={}",
            document.id,
            links::LINK_PARAMETER,
            link.token
        ),
    );
    Ok(HttpResponse::Ok()
        // The body is a credential: no cache keeps it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(DownloadLink {
            url,
            expires_at: timestamp(link.expires_at),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=90-", 100), Part { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-10", 100), Part { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-1000", 100), Part { start: 0, end: 99 });
        assert_eq!(
            parse_range("bytes=95-1000", 100),
            Part { start: 95, end: 99 }
        );
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("bytes=9-1", 100), Whole);
        assert_eq!(parse_range("bytes=a-b", 100), Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), Whole);
        assert_eq!(parse_range("lines=1-2", 100), Whole);
        assert_eq!(parse_range("bytes=-", 100), Whole);
    }

    #[test]
    fn etags() {
        let etag = "\"abc\"";
        assert!(none_match("\"abc\"", etag));
        assert!(none_match("W/\"abc\"", etag));
        assert!(none_match("\"x\", \"abc\"", etag));
        assert!(none_match("*", etag));
        assert!(!none_match("\"abcd\"", etag));
        assert!(!none_match("abc", etag));
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            attachment_disposition("report 2025.pdf"),
            "attachment; filename=\"report 2025.pdf\"; filename*=UTF-8''report%202025.pdf"
        );
        assert_eq!(
            attachment_disposition("Grüße \"x\".txt"),
            "attachment; filename=\"Gr__e _x_.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%22x%22.txt"
        );
    }
}
