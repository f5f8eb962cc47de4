//! Extractors: the authenticated principal, JSON bodies read the DRF way,
//! and typed access to the fields of a JSON object.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use autodocs_domain::user::Principal;
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// The user behind a valid `Authorization: Bearer` access token.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Caller);

/// The user a valid access token names. Whether that user still exists and
/// is active is checked by [`as_caller`], on the same blocking call as the
/// use case, so a request costs one hop to the blocking pool, not two.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub autodocs_domain::user::UserId);

/// A use case for the caller, to run off the event loop: the account check
/// and the use case in one blocking call.
fn for_caller<T: 'static, E: Into<ApiError>>(
    state: &AppState,
    caller: Caller,
    work: impl FnOnce(&autodocs_domain::Services, Principal) -> Result<T, E> + Send + 'static,
) -> impl FnOnce() -> Result<T, ApiError> + Send + 'static {
    let services = state.services.clone();
    move || {
        let principal = services.accounts().principal(caller.0)?;
        work(&services, principal).map_err(Into::into)
    }
}

/// Runs a short use case (database work only) for the caller on the
/// database lane, after confirming the caller's account in the same call.
pub async fn as_caller<T: Send + 'static, E: Into<ApiError>>(
    state: &AppState,
    caller: Caller,
    work: impl FnOnce(&autodocs_domain::Services, Principal) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    state.lane.run(for_caller(state, caller, work)).await?
}

/// Like [`as_caller`], for use cases that also read or write files (seconds
/// for a large one): they run on actix's blocking pool so they never hold
/// the database lane.
pub async fn as_caller_with_files<T: Send + 'static, E: Into<ApiError>>(
    state: &AppState,
    caller: Caller,
    work: impl FnOnce(&autodocs_domain::Services, Principal) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    crate::lane::blocking(for_caller(state, caller, work)).await?
}

/// The `Retry-After` of a request refused because the password hashing
/// queue is full: a place frees as soon as one hash ends.
const HASH_QUEUE_RETRY_SECONDS: u64 = 1;

/// Runs password hashing `work` on the hashing threads. The request waits
/// for the answer without holding any thread; when the queue is full it is
/// refused at once (503) rather than left waiting.
pub async fn hashing<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&dyn autodocs_domain::ports::PasswordHasher) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let answer = state
        .fairness
        .hashing
        .submit(work)
        .map_err(|_| ApiError::QueueFull(HASH_QUEUE_RETRY_SECONDS))?;
    answer
        .await
        .map_err(|_| ApiError::Internal("password hashing failed".into()))
}

/// Requests of one address that may wait for one of its hashing places.
const HASH_WAITERS_PER_ADDRESS: usize = 16;

/// How long a request waits for one of its address's hashing places.
const HASH_PLACE_PATIENCE: Duration = Duration::from_secs(10);

/// Takes one of the hashing places an anonymous client address may hold
/// (`throttle.hashes_per_address`), so one address cannot fill the queue
/// every login shares; held until the returned slot drops. A burst from one
/// address waits its turn (a few requests, a few seconds: 429 beyond).
pub async fn address_hashing_slot(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Option<crate::throttle::Slot<std::net::IpAddr>>, ApiError> {
    let (Some(cap), Some(client)) = (
        &state.fairness.hashing_per_address,
        state.client.client_ip(request),
    ) else {
        return Ok(None);
    };
    cap.acquire(client, HASH_WAITERS_PER_ADDRESS, HASH_PLACE_PATIENCE)
        .await
        .map(Some)
        .ok_or(ApiError::Throttled(HASH_QUEUE_RETRY_SECONDS))
}

/// The bearer token of a request, if it sent one.
pub fn bearer_token(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| token_invalid("Authorization header is not valid"))?;
    let mut parts = value.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(token.to_owned()))
        }
        // Another scheme is not ours to judge: treated as no credentials, as SimpleJWT does.
        (Some(scheme), _, _) if !scheme.eq_ignore_ascii_case("bearer") => Ok(None),
        _ => Err(token_invalid(
            "Authorization header must contain two space-delimited values",
        )),
    }
}

fn token_invalid(reason: &'static str) -> ApiError {
    ApiError::CredentialsRefused(reason)
}

/// Resolves a token to its principal off the event loop.
pub async fn authenticate(state: &AppState, token: String) -> Result<Principal, ApiError> {
    let services = state.services.clone();
    Ok(state
        .lane
        .run(move || services.accounts().authenticate(&token))
        .await??)
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(request);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            let token = token?.ok_or(ApiError::NotAuthenticated)?;
            // Signature and claims only: an HMAC, cheap enough for the event loop.
            Ok(Authenticated(Caller(
                state.services.accounts().caller(&token)?,
            )))
        })
    }
}

/// A JSON object body, read as DRF's JSONParser does: the content type must
/// be JSON, malformed JSON is a 400 `JSON parse error`, a non-object is a
/// 400 on `non_field_errors`, an empty body is an empty object.
#[derive(Debug, Clone, Default)]
pub struct JsonObject(pub Map<String, Value>);

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 2 * 1024 * 1024;

impl FromRequest for JsonObject {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = request
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
            });
        let (mut payload, stalled) = BodyTimeout::for_request(request, payload.take());
        Box::pin(async move {
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|error| stalled.or(|| ApiError::MalformedJson(error.to_string())))?;
                if body.len() + chunk.len() > MAX_JSON_BODY {
                    return Err(ApiError::TooLarge(format!(
                        "Request body exceeds {MAX_JSON_BODY} bytes."
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            match content_type.as_deref() {
                None | Some("") if body.is_empty() => return Ok(JsonObject::default()),
                Some(kind) if kind == "application/json" || kind.ends_with("+json") => {}
                Some("application/x-www-form-urlencoded" | "multipart/form-data")
                    if body.is_empty() =>
                {
                    return Ok(JsonObject::default());
                }
                other => {
                    return Err(ApiError::UnsupportedMediaType(
                        other.unwrap_or("").to_owned(),
                    ));
                }
            }
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(JsonObject::default());
            }
            let value: Value = serde_json::from_slice(&body)
                .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
            match value {
                Value::Object(map) => Ok(JsonObject(map)),
                other => Err(ValidationErrors::single_general(format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    crate::commands::json_type_name(&other)
                ))
                .into()),
            }
        })
    }
}

/// A request body that fails once no byte has arrived for a while, so a
/// client that stops sending cannot hold a request open for ever. The
/// wait is a timer on the event loop: no thread is held meanwhile.
pub struct BodyTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    stalled: Stalled,
}

/// Whether a [`BodyTimeout`] fired: the body's error then means 408,
/// whatever error type the parser on top of it wrapped it in.
#[derive(Clone, Default)]
pub struct Stalled(Arc<AtomicBool>);

impl Stalled {
    /// [`ApiError::RequestTimeout`] if the body stalled, else `other()`.
    pub fn or(&self, other: impl FnOnce() -> ApiError) -> ApiError {
        if self.0.load(Ordering::Relaxed) {
            ApiError::RequestTimeout
        } else {
            other()
        }
    }
}

impl<S> BodyTimeout<S> {
    /// Wraps a body that may stay silent for at most `idle` at a time.
    pub fn new(inner: S, idle: Duration) -> (Self, Stalled) {
        let stalled = Stalled::default();
        let body = Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            stalled: stalled.clone(),
        };
        (body, stalled)
    }

    /// Wraps a request's body with the server's `body_timeout`.
    pub fn for_request(request: &HttpRequest, inner: S) -> (Self, Stalled) {
        let idle = request
            .app_data::<web::Data<AppState>>()
            .map_or(DEFAULT_BODY_TIMEOUT, |state| state.fairness.body_timeout);
        Self::new(inner, idle)
    }
}

/// The body timeout when no state is configured (tests of extractors).
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

impl<S> Stream for BodyTimeout<S>
where
    S: Stream<Item = Result<web::Bytes, PayloadError>> + Unpin,
{
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.stalled.0.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(item) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(item)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.stalled.0.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body stopped arriving",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Typed reads of a JSON object's fields, collecting DRF-style errors.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'static str,
    /// Errors found so far.
    pub errors: ValidationErrors,
}

impl<'a> Fields<'a> {
    /// Reads fields of `map`.
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            prefix: "",
            errors: ValidationErrors::new(),
        }
    }

    /// Reads fields of a nested object; errors are keyed `prefix.field`.
    pub fn nested(map: &'a Map<String, Value>, prefix: &'static str) -> Self {
        Self {
            map,
            prefix,
            errors: ValidationErrors::new(),
        }
    }

    fn fail(&mut self, field: &str, error: InvalidValue) {
        if self.prefix.is_empty() {
            self.errors.add(field, error);
        } else {
            self.errors.add(format!("{}.{field}", self.prefix), error);
        }
    }

    /// Whether the field is present.
    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// An optional string (numbers are taken as their text, as DRF does).
    pub fn string(&mut self, field: &str) -> Option<String> {
        match self.map.get(field)? {
            Value::String(text) if text.contains('\0') => {
                self.fail(field, InvalidValue::new("Null characters are not allowed."));
                None
            }
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Null => {
                self.fail(field, InvalidValue::null());
                None
            }
            _ => {
                self.fail(field, InvalidValue::new("Not a valid string."));
                None
            }
        }
    }

    /// An optional string where `null` means empty.
    pub fn nullable_string(&mut self, field: &str) -> Option<String> {
        match self.map.get(field)? {
            Value::Null => Some(String::new()),
            _ => self.string(field),
        }
    }

    /// A required string.
    pub fn required_string(&mut self, field: &str) -> Option<String> {
        if !self.has(field) {
            self.fail(field, InvalidValue::required());
            return None;
        }
        self.string(field)
    }

    /// An optional boolean, accepting DRF's spellings.
    pub fn boolean(&mut self, field: &str) -> Option<bool> {
        let value = self.map.get(field)?;
        let parsed = match value {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Value::String(text) => parse_bool(text),
            _ => None,
        };
        if parsed.is_none() {
            self.fail(field, InvalidValue::new("Must be a valid boolean."));
        }
        parsed
    }

    /// An optional JSON object.
    pub fn object(&mut self, field: &str) -> Option<&'a Map<String, Value>> {
        match self.map.get(field)? {
            Value::Object(map) => Some(map),
            other => {
                let kind = crate::commands::json_type_name(other);
                self.fail(
                    field,
                    InvalidValue::new(format!(
                        "Invalid data. Expected a dictionary, but got {kind}."
                    )),
                );
                None
            }
        }
    }

    /// An optional raw JSON value.
    pub fn raw(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    /// Ends reading: the errors, if any.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        self.errors.into_result()
    }
}

/// DRF's boolean spellings (query strings and form values).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}
