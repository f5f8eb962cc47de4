//! `/ws/events/` and `/ws/missions/{id}/`: live events over WebSocket.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message};
use autodocs_domain::user::Principal;

use crate::error::{ApiError, ApiResult};
use crate::extract::{authenticate, bearer_token};
use crate::hub::Subscription;
use crate::routes::{ListQuery, object_id};
use crate::state::AppState;

/// How often the server pings an idle socket.
const HEARTBEAT: Duration = Duration::from_secs(20);
/// A peer silent for this long (no pong, no message) is dropped as dead.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// The principal of a socket: `?token=` or the `Authorization` header,
/// checked before the upgrade.
async fn socket_principal(request: &HttpRequest, state: &AppState) -> ApiResult<Principal> {
    let query = ListQuery::from_query_string(request.query_string());
    let token = match query.get("token").filter(|token| !token.is_empty()) {
        Some(token) => Some(token.to_owned()),
        None => bearer_token(request)?,
    };
    let token = token.ok_or(ApiError::NotAuthenticated)?;
    authenticate(state, token).await
}

/// Every event of the caller.
pub async fn events(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let principal = socket_principal(&request, &state).await?;
    upgrade(&request, body, &state, principal, None)
}

/// The events of one of the caller's missions.
pub async fn mission(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let principal = socket_principal(&request, &state).await?;
    let id = object_id(&path)?;
    let services = state.services.clone();
    web::block(move || services.get_mission(principal, id)).await??;
    upgrade(&request, body, &state, principal, Some(id))
}

fn upgrade(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    principal: Principal,
    mission: Option<i64>,
) -> ApiResult<HttpResponse> {
    let (response, session, messages) = actix_ws::handle(request, body)
        .map_err(|error| ApiError::BadRequest(format!("WebSocket handshake failed: {error}")))?;
    let subscription = state.hub.subscribe(principal.user_id, mission);
    actix_web::rt::spawn(run(session, messages, subscription));
    Ok(response)
}

/// One socket: forwards its frames, answers pings, pings when idle, and
/// closes on a dead peer, a slow reader or shutdown.
async fn run(
    mut session: actix_ws::Session,
    mut messages: actix_ws::MessageStream,
    mut subscription: Subscription,
) {
    let mut heartbeat = actix_web::rt::time::interval(HEARTBEAT);
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            frame = subscription.frames.recv() => match frame {
                Some(frame) => {
                    if session.text(frame.to_string()).await.is_err() {
                        break None;
                    }
                }
                // The hub dropped us: too slow to keep up, or shutting down.
                None => break Some(CloseReason { code: CloseCode::Away, description: Some("Closing: too slow or server shutting down.".into()) }),
            },
            message = messages.recv() => match message {
                Some(Ok(Message::Ping(bytes))) => {
                    last_heard = Instant::now();
                    if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Close(reason))) => break reason,
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(_)) | None => break None,
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > PEER_TIMEOUT || session.ping(b"").await.is_err() {
                    break None;
                }
            }
        }
    };
    drop(subscription);
    let _ = session.close(reason).await;
}
