//! `/ws/events/` and `/ws/missions/{id}/`: live events over WebSocket.
//!
//! Before the upgrade: the `Origin` (403 unless an allowed CORS origin or
//! absent), the token (401), the mission (404) and the per-user socket cap
//! (429: the new socket is refused, the user's open ones are left alone).
//! Afterwards a socket is closed with 1008 (policy violation) when its
//! access token expires or its user's credentials are revoked.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message};
use autodocs_domain::MissionId;
use autodocs_domain::user::Principal;
use chrono::{DateTime, Utc};

use crate::error::{ApiError, ApiResult};
use crate::extract::bearer_token;
use crate::hub::{Kick, Refused, Subscription};
use crate::routes::{ListQuery, object_id};
use crate::state::AppState;

/// A frame the connection cannot take within this long means the peer
/// stopped reading: the socket is dropped rather than waited on.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// `Retry-After` of a socket refused by the per-user cap: a slot frees as
/// soon as one of the user's sockets closes, so soon is a fair guess.
const CAP_RETRY_AFTER_SECONDS: u64 = 5;

/// Who a socket is for, and until when its credentials hold.
struct Grant {
    principal: Principal,
    expires_at: DateTime<Utc>,
    /// When the account check started (see [`crate::hub::EventHub::subscribe`]).
    checked_since: Instant,
}

/// Refuses a browser page of a foreign site: sockets carry no CORS, so
/// the origin is checked here, before anything else.
fn check_origin(request: &HttpRequest, state: &AppState) -> ApiResult<()> {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(|value| value.as_bytes());
    if state.hub.policy().allows_origin(origin) {
        Ok(())
    } else {
        Err(ApiError::Domain(autodocs_domain::Error::PermissionDenied))
    }
}

/// The token of a socket: `?token=` or the `Authorization` header.
fn socket_token(request: &HttpRequest) -> ApiResult<String> {
    let query = ListQuery::from_query_string(request.query_string());
    let token = match query.get("token").filter(|token| !token.is_empty()) {
        Some(token) => Some(token.to_owned()),
        None => bearer_token(request)?,
    };
    token.ok_or(ApiError::NotAuthenticated)
}

/// Every event of the caller.
pub async fn events(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    check_origin(&request, &state)?;
    let token = socket_token(&request)?;
    let services = state.services.clone();
    let checked_since = Instant::now();
    let (principal, expires_at) = state
        .lane
        .run(move || services.accounts().authenticate_until(&token))
        .await??;
    let grant = Grant {
        principal,
        expires_at,
        checked_since,
    };
    upgrade(&request, body, &state, grant, None)
}

/// The events of one of the caller's missions.
pub async fn mission(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    check_origin(&request, &state)?;
    let token = socket_token(&request)?;
    let id = object_id(&path).ok().map(MissionId);
    let services = state.services.clone();
    let checked_since = Instant::now();
    // The account and the mission in one trip to the database lane; a bad
    // token is 401 before a bad id is 404.
    let (principal, expires_at, id) = state
        .lane
        .run(move || {
            let (principal, expires_at) = services.accounts().authenticate_until(&token)?;
            if let Some(id) = id {
                services.missions().get(principal, id)?;
            }
            Ok::<_, autodocs_domain::Error>((principal, expires_at, id))
        })
        .await??;
    let id = id.ok_or(ApiError::NotFound)?;
    let grant = Grant {
        principal,
        expires_at,
        checked_since,
    };
    upgrade(&request, body, &state, grant, Some(id))
}

fn upgrade(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    grant: Grant,
    mission: Option<MissionId>,
) -> ApiResult<HttpResponse> {
    let subscription = state
        .hub
        .subscribe(grant.principal.user_id, mission, grant.checked_since)
        .map_err(|refused| match refused {
            Refused::TooManySockets => ApiError::Throttled(CAP_RETRY_AFTER_SECONDS),
            Refused::Revoked => ApiError::CredentialsRefused("User credentials were revoked"),
        })?;
    let (response, session, messages) = actix_ws::handle(request, body)
        .map_err(|error| ApiError::BadRequest(format!("WebSocket handshake failed: {error}")))?;
    let liveness = Liveness {
        ping_interval: state.hub.policy().ping_interval,
        peer_timeout: state.hub.policy().peer_timeout,
    };
    actix_web::rt::spawn(run(
        session,
        messages,
        subscription,
        grant.expires_at,
        liveness,
    ));
    Ok(response)
}

fn policy_violation(description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::Policy,
        description: Some(description.to_owned()),
    })
}

fn going_away(description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::Away,
        description: Some(description.to_owned()),
    })
}

/// A send to the peer, cut off if it does not go through in time; `false`
/// when the socket is gone or stuck.
async fn sent(send: impl Future<Output = Result<(), actix_ws::Closed>>) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, send).await, Ok(Ok(())))
}

/// The instant (on the monotonic clock) a wall-clock time falls at.
fn instant_of(at: DateTime<Utc>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match (at - Utc::now()).to_std() {
        Ok(ahead) => now + ahead,
        // Already past.
        Err(_) => now,
    }
}

/// How a socket tells a live peer from a dead one.
#[derive(Debug, Clone, Copy)]
struct Liveness {
    ping_interval: Duration,
    peer_timeout: Duration,
}

/// One socket: forwards its frames, answers pings, pings when idle, and
/// closes on a dead peer, a slow reader, revoked or expired credentials,
/// or shutdown.
async fn run(
    mut session: actix_ws::Session,
    mut messages: actix_ws::MessageStream,
    mut subscription: Subscription,
    expires_at: DateTime<Utc>,
    liveness: Liveness,
) {
    let mut heartbeat = actix_web::rt::time::interval(liveness.ping_interval);
    let expiry = tokio::time::sleep_until(instant_of(expires_at));
    tokio::pin!(expiry);
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            // Ending the socket comes before any frame still queued for it.
            biased;
            kick = &mut subscription.kicked => break match kick {
                Ok(Kick::Revoked) => policy_violation("Credentials revoked."),
                Ok(Kick::TooSlow) => going_away("Closing: too slow to keep up."),
                Ok(Kick::ShuttingDown) | Err(_) => going_away("Server shutting down."),
            },
            () = &mut expiry => break policy_violation("Token expired."),
            frame = subscription.frames.recv() => match frame {
                Some(frame) => {
                    if !sent(session.text(frame.to_string())).await {
                        break None;
                    }
                }
                None => break going_away("Closing: too slow or server shutting down."),
            },
            message = messages.recv() => match message {
                Some(Ok(Message::Ping(bytes))) => {
                    last_heard = Instant::now();
                    if !sent(session.pong(&bytes)).await {
                        break None;
                    }
                }
                Some(Ok(Message::Close(reason))) => break reason,
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(_)) | None => break None,
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > liveness.peer_timeout || !sent(session.ping(b"")).await {
                    break None;
                }
            }
        }
    };
    drop(subscription);
    let _ = tokio::time::timeout(SEND_TIMEOUT, session.close(reason)).await;
}
