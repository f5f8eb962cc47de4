//! `POST /api/documents/`: a multipart upload, streamed to storage.

use actix_multipart::{Field, Multipart};
use actix_web::http::header::{self};
use actix_web::{HttpRequest, HttpResponse, web};
use autodocs_domain::Services;
use autodocs_domain::ports::{StagedUpload, UploadError, UploadSink};
use autodocs_domain::usecases::documents::UploadedPart;
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use futures_util::StreamExt;

use super::discard;
use crate::commands::{self, DocumentForm};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authenticated, BodyTimeout, Stalled, as_caller_with_files};
use crate::state::AppState;
use crate::views::document_json;

/// Most bytes a multipart request may carry besides the file itself
/// (boundaries, part headers, the text fields).
const FORM_OVERHEAD: u64 = 1024 * 1024;

/// Most bytes of one text field (`name`, `type`, `mission`).
const MAX_TEXT_FIELD: usize = 64 * 1024;

/// Bytes of an upload gathered in memory before one write on the blocking
/// pool (fewer hops than one per network chunk).
const WRITE_BATCH: usize = 256 * 1024;

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

/// Why the writer stopped without a staged file.
enum WriteFailure {
    Domain(autodocs_domain::DocumentError),
    Upload(UploadError),
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "The file is larger than the maximum upload size of {limit} bytes."
    ))
}

fn write_failure(failure: WriteFailure) -> ApiError {
    match failure {
        WriteFailure::Domain(error) => error.into(),
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
        let length = bytes.len();
        let (sink, written) = crate::lane::blocking(move || {
            let written = sink.write(&bytes);
            (sink, written)
        })
        .await?;
        if written.is_ok() {
            crate::metrics::metrics().add_upload_bytes(length);
        }
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
    let mut form = DocumentForm::default();
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
                    ("name", Ok(value)) => form.name = Some(value),
                    ("type", Ok(value)) => form.kind = Some(value),
                    (_, Ok(value)) => form.mission = Some(Some(value)),
                }
            }
            _ => skip_field(&mut field, &mut budget, limit, &stalled).await?,
        }
    }
    errors.into_result()?;
    let part = file.take();
    // Parsed off the event loop: a refused upload's staged file is
    // discarded (deleted) where it is dropped.
    let document = as_caller_with_files(&state, principal, move |services, principal| {
        let command = commands::upload_document(&form, part)?;
        services.documents().upload(principal, command)
    })
    .await?;
    Ok(HttpResponse::Created().json(document_json(&request, &document)))
}
