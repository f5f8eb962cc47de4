//! `GET`/`HEAD /api/documents/{id}/download/` and signed download links:
//! a stored file streamed back, with `Range`, `ETag` and `If-None-Match`.

use std::io::{Read, Seek, SeekFrom};

use actix_web::body::SizedStream;
use actix_web::http::header::{
    self, ContentDisposition, DispositionParam, DispositionType, ETag, EntityTag, HeaderValue,
    IfNoneMatch, IfRange, Range,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder, web};
use autodocs_domain::AccountError;
use autodocs_domain::DocumentId;
use autodocs_domain::ports::StoredFile;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::discard;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authenticated, as_caller};
use crate::links;
use crate::routes::object_id;
use crate::state::AppState;
use crate::views::{absolute_url, timestamp};

/// Bytes per chunk read from a stored file.
const READ_CHUNK: usize = 256 * 1024;

// ---------------------------------------------------------------------------
// Download
// ---------------------------------------------------------------------------

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
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

/// What the request's `Range` asks of a file of `size` bytes: one byte range
/// is served (RFC 9110 §14.1.2); several ranges and anything malformed fall
/// back to the whole file, as the RFC allows.
fn requested_range(request: &HttpRequest, size: u64) -> ByteRange {
    let Some(Range::Bytes(specs)) = request.get_header::<Range>() else {
        return ByteRange::Whole;
    };
    // actix's parser drops the items of a range list it cannot read (so
    // `bytes=0-1,junk` comes out as the one range `0-1`) and reads `+1` as 1;
    // the contract serves the whole file for those, so the raw set must be
    // a single range written in digits and a dash.
    let one_range = request
        .headers()
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|raw| raw.split_once('='))
        .is_some_and(|(_, set)| {
            set.trim()
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'-')
        });
    match specs.as_slice() {
        [spec] if one_range => match spec.to_satisfiable_range(size) {
            Some((start, end)) => ByteRange::Part { start, end },
            None => ByteRange::Unsatisfiable,
        },
        _ => ByteRange::Whole,
    }
}

/// Whether the request's `If-None-Match` names `etag` (weak comparison, as
/// RFC 9110 §13.1.2 asks; `*` names anything).
pub fn none_match(request: &HttpRequest, etag: &EntityTag) -> bool {
    match request.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(etag)),
        None => false,
    }
}

/// Whether a `Range` applies: always without `If-Range`, and with it only
/// while it names this content by its strong tag (RFC 9110 §13.1.5: a date,
/// a weak tag or an unreadable value never does).
fn range_applies(request: &HttpRequest, etag: &EntityTag) -> bool {
    if !request.headers().contains_key(header::IF_RANGE) {
        return true;
    }
    matches!(request.get_header::<IfRange>(), Some(IfRange::EntityTag(tag)) if tag.strong_eq(etag))
}

/// `Content-Disposition: attachment` with an ASCII `filename` fallback and
/// the exact name as RFC 5987 `filename*`.
fn attachment_disposition(filename: &str) -> String {
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
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(fallback)],
    };
    // Not `DispositionParam::FilenameExt`: actix's `ExtendedValue` escapes
    // `-` and leaves `=` and `@` bare, while RFC 5987 keeps exactly its
    // `attr-char`s and escapes every other byte, as below.
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
    format!("{disposition}; filename*=UTF-8''{encoded}")
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
    let Ok(etag) = format!("\"{}\"", document.sha256).parse::<EntityTag>() else {
        discard(file);
        return Err(ApiError::Internal(format!(
            "document {} has a sha256 that is not hex",
            document.id
        )));
    };
    let size = file.size;

    let common = |status: StatusCode| {
        let mut response = HttpResponseBuilder::new(status);
        response
            .insert_header(ETag(etag.clone()))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .insert_header((header::CACHE_CONTROL, "private, no-cache"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ));
        response
    };

    if none_match(&request, &etag) {
        discard(file);
        return Ok(common(StatusCode::NOT_MODIFIED).finish());
    }

    let range = if range_applies(&request, &etag) {
        requested_range(&request, size)
    } else {
        ByteRange::Whole
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
    state
        .lane
        .run(move || {
            let principal = services
                .accounts()
                .principal(user)
                .map_err(|error| match error {
                    AccountError::TokenInvalid(_) => ApiError::NotFound,
                    other => other.into(),
                })?;
            Ok::<_, ApiError>(services.documents().open(principal, id)?)
        })
        .await?
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
    use actix_web::test::TestRequest;

    use super::*;

    fn with(headers: &[(header::HeaderName, &str)]) -> HttpRequest {
        headers
            .iter()
            .fold(TestRequest::default(), |request, (name, value)| {
                request.append_header((name.clone(), *value))
            })
            .to_http_request()
    }

    fn range(raw: &str, size: u64) -> ByteRange {
        requested_range(&with(&[(header::RANGE, raw)]), size)
    }

    #[test]
    fn ranges() {
        use ByteRange::*;
        let part = |start, end| Part { start, end };
        for (raw, size, expected) in [
            ("bytes=0-9", 100, part(0, 9)),
            ("bytes=90-", 100, part(90, 99)),
            ("bytes=-10", 100, part(90, 99)),
            ("bytes=-1000", 100, part(0, 99)),
            ("bytes=95-1000", 100, part(95, 99)),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=0-1,5-6", 100, Whole),
            ("bytes=0-1,junk", 100, Whole),
            ("bytes=0-1,", 100, Whole),
            ("bytes=9-1", 100, Whole),
            ("bytes=a-b", 100, Whole),
            ("bytes=+1-2", 100, Whole),
            ("lines=1-2", 100, Whole),
            ("bytes=-", 100, Whole),
        ] {
            assert_eq!(range(raw, size), expected, "{raw}");
        }
        assert_eq!(requested_range(&with(&[]), 100), Whole);
    }

    #[test]
    fn etags() {
        let etag = EntityTag::new_strong("abc".to_owned());
        let matches = |raw: &str| none_match(&with(&[(header::IF_NONE_MATCH, raw)]), &etag);
        assert!(matches("\"abc\""));
        assert!(matches("W/\"abc\""));
        assert!(matches("\"x\", \"abc\""));
        assert!(matches("*"));
        assert!(!matches("\"abcd\""));
        assert!(!matches("abc"));
        assert!(!none_match(&with(&[]), &etag));
    }

    #[test]
    fn if_range() {
        let etag = EntityTag::new_strong("abc".to_owned());
        let applies = |raw: &str| range_applies(&with(&[(header::IF_RANGE, raw)]), &etag);
        assert!(range_applies(&with(&[]), &etag));
        assert!(applies("\"abc\""));
        assert!(!applies("W/\"abc\""));
        assert!(!applies("\"other\""));
        assert!(!applies("Sat, 29 Oct 1994 19:43:31 GMT"));
        assert!(!applies("abc"));
    }

    #[test]
    fn dispositions() {
        for (name, expected) in [
            (
                "report 2025.pdf",
                "attachment; filename=\"report 2025.pdf\"; filename*=UTF-8''report%202025.pdf",
            ),
            (
                "Grüße \"x\".txt",
                "attachment; filename=\"Gr__e _x_.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%22x%22.txt",
            ),
            // `-` is an RFC 5987 attr-char; `=` and `@` are not.
            (
                "a-b=c@d.txt",
                "attachment; filename=\"a-b=c@d.txt\"; filename*=UTF-8''a-b%3Dc%40d.txt",
            ),
        ] {
            assert_eq!(attachment_disposition(name), expected, "{name}");
        }
    }
}
