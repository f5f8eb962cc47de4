//! Real time: `/ws/events/` and `/ws/missions/{id}/` (API.md, "Real time —
//! WebSocket"): authentication before the upgrade, the frames each committed
//! change produces, per-user and per-mission routing, ping/pong, and delivery
//! across server processes sharing a PostgreSQL database.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::harness::{
    Backend, Registered, Resp, TestApp, forge_jwt, jwt_claims, now_unix, postgres_configured,
};
use crate::missions::{
    ACTIVITIES, MISSION_KEYS, MISSIONS, act, act_ok, activities, activity_url,
    assert_activity_shape, assert_mission_shape, create_mission, find_step, id_of, mission_detail,
    mission_url, new_mission, step_url, transition_error,
};

const EVENTS: &str = "/ws/events/";

/// How long a frame (or a handshake) may take to arrive.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn mission_socket(id: i64) -> String {
    format!("/ws/missions/{id}/")
}

fn ws_url(app: &TestApp, path: &str) -> String {
    let host = app
        .base_url
        .strip_prefix("http://")
        .expect("the server speaks plain HTTP");
    format!("ws://{host}{path}")
}

fn with_token(path: &str, token: &str) -> String {
    format!("{path}?token={}", crate::missions::enc(token))
}

/// Opens a socket (`bearer` goes in the `Authorization` header). `Err` holds
/// the status of a refused handshake.
async fn try_connect(app: &TestApp, path: &str, bearer: Option<&str>) -> Result<Ws, u16> {
    let mut request = ws_url(app, path)
        .into_client_request()
        .expect("a WebSocket request");
    if let Some(token) = bearer {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
        );
    }
    match tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
        Err(_) => panic!("GET {path}: no handshake answer within {FRAME_TIMEOUT:?}"),
        Ok(Ok((ws, response))) => {
            assert_eq!(
                response.status().as_u16(),
                101,
                "GET {path}: upgrade status"
            );
            Ok(ws)
        }
        Ok(Err(tungstenite::Error::Http(response))) => Err(response.status().as_u16()),
        Ok(Err(e)) => panic!("GET {path}: WebSocket handshake failed: {e}"),
    }
}

/// Opens a socket with `?token=`; panics unless upgraded.
async fn connect(app: &TestApp, path: &str, user: &Registered) -> Ws {
    match try_connect(app, &with_token(path, &user.access), None).await {
        Ok(ws) => ws,
        Err(status) => panic!("GET {path} as {}: refused with {status}", user.username),
    }
}

/// The same handshake over plain HTTP, to read a refusal's body.
async fn handshake_http(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut all = vec![
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    all.extend_from_slice(headers);
    app.raw(Method::GET, path, &all, None).await
}

/// The next text frame (pings and pongs skipped): `{"event", "data"}`.
async fn next_frame(ws: &mut Ws, ctx: &str) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        let message = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("{ctx}: no frame within {FRAME_TIMEOUT:?}"),
            Ok(None) => panic!("{ctx}: the socket closed"),
            Ok(Some(Err(e))) => panic!("{ctx}: socket error: {e}"),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("{ctx}: a frame is JSON ({e}): {text}"));
                crate::harness::assert_keys(&frame, &["event", "data"], &format!("{ctx}: frame"));
                return frame;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("{ctx}: expected a text frame, got {other:?}"),
        }
    }
}

/// The frames of one committed change touching one mission: one or more
/// `activity.created`, then one `mission.updated`.
async fn next_change(ws: &mut Ws, ctx: &str) -> (Vec<Value>, Value) {
    let mut activities = Vec::new();
    loop {
        let frame = next_frame(ws, ctx).await;
        match frame["event"].as_str() {
            Some("activity.created") => {
                assert_activity_shape(&frame["data"]);
                activities.push(frame["data"].clone());
            }
            Some("mission.updated") => {
                assert!(
                    !activities.is_empty(),
                    "{ctx}: mission.updated before any activity.created: {frame}"
                );
                assert_mission_shape(&frame["data"]);
                return (activities, frame["data"].clone());
            }
            _ => panic!("{ctx}: unexpected event: {frame}"),
        }
    }
}

/// A change that records exactly one activity of `kind` on `mission`;
/// returns (activity, mission).
async fn expect_change(ws: &mut Ws, kind: &str, mission: i64, ctx: &str) -> (Value, Value) {
    let (acts, m) = next_change(ws, ctx).await;
    let types: Vec<&Value> = acts.iter().map(|a| &a["type"]).collect();
    assert_eq!(
        types,
        [&json!(kind)],
        "{ctx}: the activity.created frames: {acts:?}"
    );
    assert_eq!(
        acts[0]["mission"],
        json!(mission),
        "{ctx}: activity.mission"
    );
    assert_eq!(m["id"], json!(mission), "{ctx}: mission.updated id: {m}");
    (acts[0].clone(), m)
}

/// Skips frames up to and including the `mission.updated` of `mission`.
async fn skip_until_mission(ws: &mut Ws, mission: i64, ctx: &str) {
    loop {
        let frame = next_frame(ws, ctx).await;
        if frame["event"] == "mission.updated" && frame["data"]["id"] == json!(mission) {
            return;
        }
    }
}

/// The Mission list representation of a detail view.
fn list_view(detail: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in MISSION_KEYS {
        if let Some(v) = detail.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

/// The activities of a mission with an id above `after`, as the API lists them.
async fn activities_after(
    app: &TestApp,
    user: &Registered,
    mission: i64,
    after: i64,
) -> Vec<Value> {
    let mut list: Vec<Value> = activities(app, user, &format!("mission={mission}"))
        .await
        .into_iter()
        .filter(|a| id_of(a) > after)
        .collect();
    list.sort_by_key(id_of);
    list
}

/// The `activity.created` frames match the activities the change recorded,
/// as the REST API shows them.
async fn assert_frames_match_log(
    app: &TestApp,
    user: &Registered,
    mission: i64,
    after: i64,
    frames: &[Value],
    ctx: &str,
) {
    let logged = activities_after(app, user, mission, after).await;
    let mut sent = frames.to_vec();
    sent.sort_by_key(id_of);
    assert_eq!(
        sent, logged,
        "{ctx}: one activity.created per recorded activity, equal to GET {ACTIVITIES}"
    );
}

/// `mission.updated` carries what GET of the mission shows afterwards.
async fn assert_mission_matches(app: &TestApp, user: &Registered, m: &Value, ctx: &str) {
    let detail = mission_detail(app, user, id_of(m)).await;
    assert_eq!(m, &list_view(&detail), "{ctx}: mission.updated vs GET");
}

fn max_id(list: &[Value]) -> i64 {
    list.iter().map(id_of).max().unwrap_or(0)
}

backend_tests!(
    frames_follow_create_start_and_step_changes,
    mission_socket_only_gets_its_mission,
    refused_before_upgrade,
    failed_changes_send_nothing,
    users_only_get_their_own_events,
    ping_is_answered_with_pong,
    document_frames_follow_upload_verify_and_patch,
);

async fn frames_follow_create_start_and_step_changes(app: TestApp) {
    let alice = app.register("alice").await;
    let mut ws = connect(&app, EVENTS, &alice).await;

    // Create, with two steps.
    let created = create_mission(
        &app,
        &alice,
        &json!({"title": "Passport", "type": "custom",
                "plan_steps": [{"title": "one"}, {"title": "two"}]}),
    )
    .await;
    let id = id_of(&created);
    let (acts, m) = next_change(&mut ws, "create").await;
    assert!(
        acts.iter().any(|a| a["type"] == "mission_created"),
        "create: a mission_created activity.created: {acts:?}"
    );
    for a in &acts {
        assert_eq!(a["mission"], json!(id), "create: activity.mission: {a}");
        assert_eq!(a["user"], json!(alice.id), "create: activity.user: {a}");
    }
    assert_frames_match_log(&app, &alice, id, 0, &acts, "create").await;
    assert_eq!(m["id"], json!(id));
    assert_eq!(m["title"], "Passport");
    assert_eq!(m["status"], "pending");
    assert_eq!(m["progress"], 0);
    assert_eq!(m["steps_total"], 2);
    assert_eq!(m["steps_completed"], 0);
    assert_eq!(m["owner"], created["owner"]);
    assert_mission_matches(&app, &alice, &m, "create").await;
    let mut seen = max_id(&acts);

    // Start.
    act_ok(&app, &alice, id, "start", "in_progress").await;
    let (a, m) = expect_change(&mut ws, "mission_started", id, "start").await;
    assert_eq!(a["user"], json!(alice.id), "start: activity.user: {a}");
    assert_frames_match_log(&app, &alice, id, seen, std::slice::from_ref(&a), "start").await;
    assert_eq!(m["status"], "in_progress");
    assert!(m["started_at"].is_string(), "start: started_at set: {m}");
    assert_eq!(m["progress"], 0);
    assert_mission_matches(&app, &alice, &m, "start").await;
    seen = id_of(&a);

    // A step completed: progress follows.
    let steps = mission_detail(&app, &alice, id).await["plan_steps"]
        .as_array()
        .expect("plan_steps")
        .clone();
    let one = id_of(&find_step(&steps, "one"));
    let two = id_of(&find_step(&steps, "two"));
    app.patch_json(
        &step_url(id, one),
        &json!({"status": "completed"}),
        Some(&alice.access),
    )
    .await
    .assert_status(200);
    let (a, m) = expect_change(&mut ws, "step_updated", id, "step one completed").await;
    assert_frames_match_log(&app, &alice, id, seen, std::slice::from_ref(&a), "step one").await;
    assert_eq!(m["status"], "in_progress");
    assert_eq!(m["progress"], 50, "step one: progress: {m}");
    assert_eq!(m["steps_completed"], 1, "step one: steps_completed: {m}");
    assert_mission_matches(&app, &alice, &m, "step one").await;
    seen = id_of(&a);

    // The last step: the mission completes by itself in the same change —
    // every activity first, then one mission.updated.
    app.patch_json(
        &step_url(id, two),
        &json!({"status": "completed"}),
        Some(&alice.access),
    )
    .await
    .assert_status(200);
    let (acts, m) = next_change(&mut ws, "step two completed").await;
    let types: BTreeSet<&str> = acts.iter().filter_map(|a| a["type"].as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["step_updated", "mission_completed"]),
        "step two: activities: {acts:?}"
    );
    assert_eq!(acts.len(), 2, "step two: activities: {acts:?}");
    assert_frames_match_log(&app, &alice, id, seen, &acts, "step two").await;
    assert_eq!(m["id"], json!(id));
    assert_eq!(m["status"], "completed");
    assert_eq!(m["progress"], 100);
    assert_eq!(m["steps_completed"], 2);
    assert!(m["completed_at"].is_string(), "completed_at set: {m}");
    assert_mission_matches(&app, &alice, &m, "step two").await;

    // One mission.updated per change: the next frame belongs to the next change.
    let other = new_mission(&app, &alice, "Next").await;
    let (a, _) = next_change(&mut ws, "marker create").await;
    assert_eq!(a[0]["type"], "mission_created", "marker: {a:?}");
    assert_eq!(a[0]["mission"], json!(other), "marker: {a:?}");
}

async fn mission_socket_only_gets_its_mission(app: TestApp) {
    let alice = app.register("alice").await;
    let watched = new_mission(&app, &alice, "Watched").await;
    let other = new_mission(&app, &alice, "Other").await;
    let mut ws = connect(&app, &mission_socket(watched), &alice).await;
    let mut all = connect(&app, EVENTS, &alice).await;

    // Changes on the other mission (and a new mission) are not sent here...
    act_ok(&app, &alice, other, "start", "in_progress").await;
    app.patch_json(
        &mission_url(other),
        &json!({"title": "Other, renamed"}),
        Some(&alice.access),
    )
    .await
    .assert_status(200);
    let third = new_mission(&app, &alice, "Third").await;
    // ...though they happened (the user's socket saw them).
    expect_change(&mut all, "mission_started", other, "events: other start").await;
    expect_change(&mut all, "mission_updated", other, "events: other rename").await;
    expect_change(&mut all, "mission_created", third, "events: third create").await;

    // The watched mission's own changes are.
    act_ok(&app, &alice, watched, "start", "in_progress").await;
    let (_, m) = expect_change(&mut ws, "mission_started", watched, "watched start").await;
    assert_eq!(m["status"], "in_progress");
    act_ok(&app, &alice, other, "pause", "paused").await;
    act_ok(&app, &alice, watched, "pause", "paused").await;
    let (_, m) = expect_change(&mut ws, "mission_paused", watched, "watched pause").await;
    assert_eq!(m["status"], "paused");
}

async fn refused_before_upgrade(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let alices = new_mission(&app, &alice, "Alice's").await;
    let bobs = new_mission(&app, &bob, "Bob's").await;

    let expired = {
        let mut claims = jwt_claims(&alice.access);
        claims["iat"] = json!(now_unix() - 7200);
        claims["exp"] = json!(now_unix() - 3600);
        claims["jti"] = json!(uuid::Uuid::new_v4().simple().to_string());
        forge_jwt(&app.secret_key, &claims)
    };
    // Control: the same forgery with a future exp is accepted, so the
    // expired one is refused for its exp alone.
    let fresh = {
        let mut claims = jwt_claims(&alice.access);
        claims["iat"] = json!(now_unix() - 10);
        claims["exp"] = json!(now_unix() + 600);
        claims["jti"] = json!(uuid::Uuid::new_v4().simple().to_string());
        forge_jwt(&app.secret_key, &claims)
    };
    assert!(
        try_connect(&app, &with_token(EVENTS, &fresh), None)
            .await
            .is_ok(),
        "a valid forged access token is accepted"
    );

    let bad_tokens: [(&str, Option<&str>, &str); 4] = [
        ("no token", None, "not_authenticated"),
        ("garbage", Some("garbage"), "token_not_valid"),
        (
            "refresh token",
            Some(alice.refresh.as_str()),
            "token_not_valid",
        ),
        ("expired", Some(expired.as_str()), "token_not_valid"),
    ];
    for socket in [
        EVENTS.to_owned(),
        mission_socket(alices),
        mission_socket(bobs),
    ] {
        for (what, token, code) in bad_tokens {
            let path = token.map_or(socket.clone(), |t| with_token(&socket, t));
            let status = try_connect(&app, &path, None).await.err();
            assert_eq!(status, Some(401), "{what} on {socket}: refused with 401");
            let r = handshake_http(&app, &path, &[]).await;
            r.assert_unauthorized(code);
            // The same token in the Authorization header.
            if let Some(token) = token {
                let status = try_connect(&app, &socket, Some(token)).await.err();
                assert_eq!(status, Some(401), "{what} (header) on {socket}: 401");
                let header = format!("Bearer {token}");
                let r = handshake_http(&app, &socket, &[("authorization", &header)]).await;
                r.assert_unauthorized(code);
            }
        }
    }

    // Someone else's mission and a missing one: 404 before the upgrade.
    for (what, path) in [
        ("bob's mission", mission_socket(bobs)),
        ("missing mission", mission_socket(bobs + 1000)),
    ] {
        let status = try_connect(&app, &with_token(&path, &alice.access), None)
            .await
            .err();
        assert_eq!(status, Some(404), "{what}: refused with 404");
        let status = try_connect(&app, &path, Some(&alice.access)).await.err();
        assert_eq!(status, Some(404), "{what} (header): refused with 404");
        handshake_http(&app, &with_token(&path, &alice.access), &[])
            .await
            .assert_not_found();
    }

    // The Authorization header works on both sockets.
    let mut events = try_connect(&app, EVENTS, Some(&alice.access))
        .await
        .unwrap_or_else(|s| panic!("events with the header: refused with {s}"));
    let mut own = try_connect(&app, &mission_socket(alices), Some(&alice.access))
        .await
        .unwrap_or_else(|s| panic!("own mission with the header: refused with {s}"));
    act_ok(&app, &alice, alices, "start", "in_progress").await;
    expect_change(&mut events, "mission_started", alices, "header: events").await;
    expect_change(&mut own, "mission_started", alices, "header: mission").await;
}

async fn failed_changes_send_nothing(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let id = new_mission(&app, &alice, "Pending").await;
    let bobs = new_mission(&app, &bob, "Bob's").await;
    let mut ws = connect(&app, EVENTS, &alice).await;
    let mut watched = connect(&app, &mission_socket(id), &alice).await;

    // Refused changes.
    let r = act(&app, &alice, id, "pause").await;
    r.assert_body(409, &transition_error("pause", "pending"));
    let r = act(&app, &alice, id, "resume").await;
    r.assert_body(409, &transition_error("resume", "pending"));
    app.post_json(
        MISSIONS,
        &json!({"title": "", "type": "custom"}),
        Some(&alice.access),
    )
    .await
    .assert_status(400);
    app.patch_json(
        &mission_url(id),
        &json!({"title": "   "}),
        Some(&alice.access),
    )
    .await
    .assert_status(400);
    act(&app, &alice, bobs, "start").await.assert_not_found();

    // The marker: the first frame is its own.
    act_ok(&app, &alice, id, "start", "in_progress").await;
    expect_change(&mut ws, "mission_started", id, "events: after failures").await;
    expect_change(
        &mut watched,
        "mission_started",
        id,
        "mission: after failures",
    )
    .await;
}

async fn users_only_get_their_own_events(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut a_ws = connect(&app, EVENTS, &alice).await;
    let mut b_ws = connect(&app, EVENTS, &bob).await;

    let a1 = new_mission(&app, &alice, "Alice 1").await;
    let b1 = new_mission(&app, &bob, "Bob 1").await;
    act_ok(&app, &bob, b1, "start", "in_progress").await;
    act_ok(&app, &alice, a1, "start", "in_progress").await;
    let b2 = new_mission(&app, &bob, "Bob 2").await;
    act_ok(&app, &alice, a1, "pause", "paused").await;
    act_ok(&app, &bob, b2, "cancel", "cancelled").await;

    let (a, m) = expect_change(&mut a_ws, "mission_created", a1, "alice 1").await;
    assert_eq!(a["user"], json!(alice.id));
    assert_eq!(m["owner"], json!(alice.id));
    expect_change(&mut a_ws, "mission_started", a1, "alice 2").await;
    expect_change(&mut a_ws, "mission_paused", a1, "alice 3").await;

    let (a, m) = expect_change(&mut b_ws, "mission_created", b1, "bob 1").await;
    assert_eq!(a["user"], json!(bob.id));
    assert_eq!(m["owner"], json!(bob.id));
    expect_change(&mut b_ws, "mission_started", b1, "bob 2").await;
    expect_change(&mut b_ws, "mission_created", b2, "bob 3").await;
    expect_change(&mut b_ws, "mission_cancelled", b2, "bob 4").await;

    // Markers: nothing of the other user's is queued behind.
    act_ok(&app, &alice, a1, "resume", "in_progress").await;
    act_ok(&app, &bob, b1, "pause", "paused").await;
    expect_change(&mut a_ws, "mission_resumed", a1, "alice marker").await;
    expect_change(&mut b_ws, "mission_paused", b1, "bob marker").await;
}

async fn ping_is_answered_with_pong(app: TestApp) {
    let alice = app.register("alice").await;
    for path in [
        EVENTS.to_owned(),
        mission_socket(new_mission(&app, &alice, "P").await),
    ] {
        let mut ws = connect(&app, &path, &alice).await;
        ws.send(Message::Ping(b"are you there"[..].into()))
            .await
            .expect("send a ping");
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => panic!("{path}: no pong within {FRAME_TIMEOUT:?}"),
                Ok(None) => panic!("{path}: the socket closed instead of answering"),
                Ok(Some(Err(e))) => panic!("{path}: socket error: {e}"),
                Ok(Some(Ok(Message::Pong(payload)))) => {
                    assert_eq!(
                        &payload[..],
                        b"are you there",
                        "{path}: pong echoes the ping"
                    );
                    break;
                }
                Ok(Some(Ok(Message::Ping(_)))) => continue,
                Ok(Some(Ok(other))) => panic!("{path}: expected a pong, got {other:?}"),
            }
        }
        // Still alive afterwards.
        let id = new_mission(&app, &alice, "After ping").await;
        if path == EVENTS {
            expect_change(&mut ws, "mission_created", id, "after ping").await;
        }
    }
}

// ---------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------

const DOCUMENTS: &str = "/api/documents/";

/// The keys of `Document` (API.md, Documents).
const DOCUMENT_KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "status",
    "verified",
    "verified_at",
    "verification_error",
    "mission",
    "owner",
    "original_filename",
    "content_type",
    "size",
    "sha256",
    "download_url",
    "uploaded_at",
    "updated_at",
];

const BOUNDARY: &str = "----autodocs-realtime-boundary-Qx81ZpL0";

fn document_url(id: i64) -> String {
    format!("{DOCUMENTS}{id}/")
}

fn document_download_path(id: i64) -> String {
    format!("{DOCUMENTS}{id}/download/")
}

/// Uploads a `text/plain` file (into `mission`, if given); panics unless 201.
async fn upload_text(
    app: &TestApp,
    user: &Registered,
    filename: &str,
    body: &[u8],
    mission: Option<i64>,
) -> Value {
    let mut form = Vec::new();
    if let Some(mission) = mission {
        form.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"mission\"\r\n\r\n{mission}\r\n"
            )
            .as_bytes(),
        );
    }
    form.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend_from_slice(body);
    form.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let url = app.url(DOCUMENTS);
    let request = app
        .client()
        .post(&url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .bearer_auth(&user.access)
        .body(form);
    let r = app.send(&Method::POST, &url, request).await;
    r.assert_status(201).assert_json();
    r.body.clone()
}

/// A Document as frames and responses carry it.
#[track_caller]
fn assert_document_frame(app: &TestApp, d: &Value, ctx: &str) {
    crate::harness::assert_keys(d, DOCUMENT_KEYS, &format!("{ctx}: document"));
    let id = id_of(d);
    let url = d["download_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: download_url is a string: {d}"));
    assert!(
        url.starts_with("http://") && url.ends_with(&document_download_path(id)),
        "{ctx}: download_url is absolute and ends with {}: {d}",
        document_download_path(id)
    );
    assert_eq!(
        url,
        format!("{}{}", app.base_url, document_download_path(id)),
        "{ctx}: download_url points at this server: {d}"
    );
    for key in ["uploaded_at", "updated_at"] {
        assert!(
            d[key].as_str().is_some_and(crate::harness::is_rfc3339_utc),
            "{ctx}: {key}: {d}"
        );
    }
}

/// The frames of one change to `document`: exactly one `activity.created`
/// of `kind`, then its `document.updated`, then — only when the document
/// belongs to a mission — that mission's `mission.updated`.
/// Returns (activity, document, mission).
async fn expect_document_change(
    app: &TestApp,
    ws: &mut Ws,
    kind: &str,
    document: i64,
    mission: Option<i64>,
    ctx: &str,
) -> (Value, Value, Option<Value>) {
    let frame = next_frame(ws, ctx).await;
    assert_eq!(
        frame["event"], "activity.created",
        "{ctx}: first frame: {frame}"
    );
    let a = frame["data"].clone();
    assert_activity_shape(&a);
    assert_eq!(a["type"], kind, "{ctx}: activity type: {a}");
    assert_eq!(
        a["document"],
        json!(document),
        "{ctx}: activity.document: {a}"
    );
    assert_eq!(a["mission"], json!(mission), "{ctx}: activity.mission: {a}");

    let frame = next_frame(ws, ctx).await;
    assert_eq!(
        frame["event"], "document.updated",
        "{ctx}: second frame: {frame}"
    );
    let d = frame["data"].clone();
    assert_document_frame(app, &d, ctx);
    assert_eq!(d["id"], json!(document), "{ctx}: document.updated id: {d}");
    assert_eq!(d["mission"], json!(mission), "{ctx}: document.mission: {d}");

    let m = match mission {
        None => None,
        Some(mission) => {
            let frame = next_frame(ws, ctx).await;
            assert_eq!(
                frame["event"], "mission.updated",
                "{ctx}: third frame: {frame}"
            );
            assert_mission_shape(&frame["data"]);
            assert_eq!(
                frame["data"]["id"],
                json!(mission),
                "{ctx}: mission.updated id"
            );
            Some(frame["data"].clone())
        }
    };
    (a, d, m)
}

/// What the REST API shows of the change's subjects equals what the frames carried.
async fn assert_document_change_matches(
    app: &TestApp,
    user: &Registered,
    (a, d, m): &(Value, Value, Option<Value>),
    ctx: &str,
) {
    let r = app.get(&activity_url(id_of(a)), Some(&user.access)).await;
    r.assert_status(200);
    assert_eq!(&r.body, a, "{ctx}: activity.created vs GET");
    let r = app.get(&document_url(id_of(d)), Some(&user.access)).await;
    r.assert_status(200);
    assert_eq!(&r.body, d, "{ctx}: document.updated vs GET");
    if let Some(m) = m {
        assert_mission_matches(app, user, m, ctx).await;
    }
}

async fn document_frames_follow_upload_verify_and_patch(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mission = new_mission(&app, &alice, "Papers").await;
    let mut ws = connect(&app, EVENTS, &alice).await;
    let mut watched = connect(&app, &mission_socket(mission), &alice).await;
    let mut bobs = connect(&app, EVENTS, &bob).await;

    // An upload without a mission: activity, document, nothing else.
    let loose_body = b"loose notes\n";
    let loose = upload_text(&app, &alice, "loose.txt", loose_body, None).await;
    let loose_id = id_of(&loose);
    let change = expect_document_change(
        &app,
        &mut ws,
        "document_uploaded",
        loose_id,
        None,
        "loose upload",
    )
    .await;
    let (a, d, _) = &change;
    assert_eq!(
        a["user"],
        json!(alice.id),
        "loose upload: activity.user: {a}"
    );
    assert_eq!(d, &loose, "loose upload: document.updated vs the 201 body");
    assert_eq!(d["status"], "uploaded", "loose upload: {d}");
    assert_eq!(d["verified"], false, "loose upload: {d}");
    assert_eq!(d["owner"], json!(alice.id), "loose upload: {d}");
    assert_eq!(d["name"], "loose.txt", "loose upload: {d}");
    assert_eq!(d["original_filename"], "loose.txt", "loose upload: {d}");
    assert_eq!(d["size"], json!(loose_body.len()), "loose upload: {d}");
    assert_eq!(
        d["sha256"],
        json!(hex(&crate::harness::sha256(loose_body))),
        "loose upload: {d}"
    );
    assert_document_change_matches(&app, &alice, &change, "loose upload").await;

    // An upload into the mission: the mission follows (document_count 1).
    let attached = upload_text(&app, &alice, "attached.txt", b"attached\n", Some(mission)).await;
    let attached_id = id_of(&attached);
    let change = expect_document_change(
        &app,
        &mut ws,
        "document_uploaded",
        attached_id,
        Some(mission),
        "attached upload",
    )
    .await;
    assert_eq!(
        &change.1, &attached,
        "attached upload: document.updated vs the 201 body"
    );
    let m = change.2.as_ref().expect("a mission.updated");
    assert_eq!(m["document_count"], 1, "attached upload: {m}");
    assert_document_change_matches(&app, &alice, &change, "attached upload").await;
    // The mission socket gets the same frames.
    let on_mission = expect_document_change(
        &app,
        &mut watched,
        "document_uploaded",
        attached_id,
        Some(mission),
        "mission socket: attached upload",
    )
    .await;
    assert_eq!(on_mission, change, "mission socket: attached upload frames");

    // Verify: document_verified, then the document, verified.
    let r = app
        .post_json(
            &format!("{DOCUMENTS}{attached_id}/verify/"),
            &json!({}),
            Some(&alice.access),
        )
        .await;
    r.assert_status(200);
    let change = expect_document_change(
        &app,
        &mut ws,
        "document_verified",
        attached_id,
        Some(mission),
        "verify",
    )
    .await;
    let d = &change.1;
    assert_eq!(d, &r.body, "verify: document.updated vs the 200 body");
    assert_eq!(d["status"], "verified", "verify: {d}");
    assert_eq!(d["verified"], true, "verify: {d}");
    assert!(
        d["verified_at"]
            .as_str()
            .is_some_and(crate::harness::is_rfc3339_utc),
        "verify: verified_at: {d}"
    );
    assert_eq!(d["verification_error"], "", "verify: {d}");
    assert_eq!(change.2.as_ref().expect("mission")["document_count"], 1);
    assert_document_change_matches(&app, &alice, &change, "verify").await;
    let on_mission = expect_document_change(
        &app,
        &mut watched,
        "document_verified",
        attached_id,
        Some(mission),
        "mission socket: verify",
    )
    .await;
    assert_eq!(on_mission, change, "mission socket: verify frames");

    // Verify the loose one: no mission frame.
    let r = app
        .post_json(
            &format!("{DOCUMENTS}{loose_id}/verify/"),
            &json!({}),
            Some(&alice.access),
        )
        .await;
    r.assert_status(200);
    let change = expect_document_change(
        &app,
        &mut ws,
        "document_verified",
        loose_id,
        None,
        "loose verify",
    )
    .await;
    assert_eq!(change.1["status"], "verified", "loose verify: {}", change.1);
    assert_eq!(
        &change.1, &r.body,
        "loose verify: document.updated vs the 200 body"
    );

    // Rename both.
    for (id, on, name) in [
        (loose_id, None, "Loose, renamed"),
        (attached_id, Some(mission), "Attached, renamed"),
    ] {
        let ctx = format!("patch {name}");
        let r = app
            .patch_json(
                &document_url(id),
                &json!({"name": name}),
                Some(&alice.access),
            )
            .await;
        r.assert_status(200);
        let change = expect_document_change(&app, &mut ws, "document_updated", id, on, &ctx).await;
        let d = &change.1;
        assert_eq!(d["name"], name, "{ctx}: {d}");
        assert_eq!(d["status"], "verified", "{ctx}: {d}");
        assert_eq!(d, &r.body, "{ctx}: document.updated vs the 200 body");
        assert_document_change_matches(&app, &alice, &change, &ctx).await;
        if on.is_some() {
            let on_mission =
                expect_document_change(&app, &mut watched, "document_updated", id, on, &ctx).await;
            assert_eq!(on_mission, change, "mission socket: {ctx} frames");
        }
    }

    // Markers: nothing else is queued on alice's sockets, and none of it
    // reached bob's.
    act_ok(&app, &alice, mission, "start", "in_progress").await;
    let bobs_mission = new_mission(&app, &bob, "Bob's").await;
    expect_change(&mut ws, "mission_started", mission, "events: marker").await;
    expect_change(
        &mut watched,
        "mission_started",
        mission,
        "mission socket: marker",
    )
    .await;
    let (a, _) = expect_change(&mut bobs, "mission_created", bobs_mission, "bob: marker").await;
    assert_eq!(a["user"], json!(bob.id), "bob: marker: {a}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Several server processes on one PostgreSQL database
// ---------------------------------------------------------------------------

#[tokio::test]
async fn events_cross_server_processes() {
    if !postgres_configured() {
        println!("skipped: TEST_DATABASE_URL not set (PostgreSQL only)");
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let peer = app.spawn_peer_sharing_media().await;
    assert_ne!(app.base_url, peer.base_url);
    let alice = app.register("alice").await;
    let mut ws = connect(&app, EVENTS, &alice).await;
    let mut on_peer = connect(&peer, EVENTS, &alice).await;
    // Events committed just before a socket opened may still be on their way
    // to the other process (`user_registered` here); a sync change marks
    // where the exact checks start.
    let sync = new_mission(&app, &alice, "Sync").await;
    skip_until_mission(&mut ws, sync, "first: sync").await;
    skip_until_mission(&mut on_peer, sync, "peer: sync").await;

    // Changes made through the second process reach the first's socket.
    let id = new_mission(&peer, &alice, "Via the peer").await;
    let (a, m) = expect_change(&mut ws, "mission_created", id, "peer create").await;
    assert_eq!(a["user"], json!(alice.id));
    assert_eq!(m["status"], "pending");
    assert_eq!(m["title"], "Via the peer");
    act_ok(&peer, &alice, id, "start", "in_progress").await;
    let (_, m) = expect_change(&mut ws, "mission_started", id, "peer start").await;
    assert_eq!(m["status"], "in_progress");

    // A payload larger than PostgreSQL's 8000-byte NOTIFY limit.
    let description = "d".repeat(10_000);
    let big = id_of(
        &create_mission(
            &peer,
            &alice,
            &json!({"title": "Big", "type": "custom", "description": description}),
        )
        .await,
    );
    let (_, m) = expect_change(&mut ws, "mission_created", big, "big create").await;
    assert_eq!(
        m["description"].as_str().map(str::len),
        Some(10_000),
        "big create: the whole description"
    );
    assert_eq!(m["description"], json!(description));

    // And the other way round; each process delivers every event once.
    act_ok(&app, &alice, id, "pause", "paused").await;
    expect_change(&mut on_peer, "mission_created", id, "peer socket: create").await;
    expect_change(&mut on_peer, "mission_started", id, "peer socket: start").await;
    expect_change(&mut on_peer, "mission_created", big, "peer socket: big").await;
    expect_change(&mut on_peer, "mission_paused", id, "peer socket: pause").await;
    expect_change(&mut ws, "mission_paused", id, "own pause").await;
    act_ok(&peer, &alice, id, "resume", "in_progress").await;
    expect_change(&mut ws, "mission_resumed", id, "marker on the first").await;
    expect_change(&mut on_peer, "mission_resumed", id, "marker on the peer").await;

    drop(peer);
}

// ---------------------------------------------------------------------------
// Sockets end with their credentials; per-user cap; Origin (issue 11)
// ---------------------------------------------------------------------------

/// How long after a revocation its sockets may take to close (generous:
/// the server closes them as soon as the change commits).
const REVOKE_BOUND: Duration = Duration::from_secs(2);

/// Opens a socket with extra handshake headers. `Err` holds the status of a
/// refused handshake.
async fn try_connect_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = ws_url(app, path)
        .into_client_request()
        .expect("a WebSocket request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
        Err(_) => panic!("GET {path}: no handshake answer within {FRAME_TIMEOUT:?}"),
        Ok(Ok((ws, response))) => {
            assert_eq!(response.status().as_u16(), 101, "GET {path}: upgrade");
            Ok(ws)
        }
        Ok(Err(tungstenite::Error::Http(response))) => Err(response.status().as_u16()),
        Ok(Err(e)) => panic!("GET {path}: WebSocket handshake failed: {e}"),
    }
}

/// Waits for the server's close frame (frames sent before it are skipped);
/// returns its code and reason.
async fn expect_close(ws: &mut Ws, within: Duration, ctx: &str) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("{ctx}: no close frame within {within:?}"),
            Ok(None) => panic!("{ctx}: the connection ended without a close frame"),
            Ok(Some(Err(e))) => panic!("{ctx}: socket error before a close frame: {e}"),
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Ok(Some(Ok(Message::Close(None)))) => panic!("{ctx}: a close frame without a code"),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The close frame is a policy violation (1008) with a reason.
async fn expect_policy_close(ws: &mut Ws, within: Duration, ctx: &str) {
    let (code, reason) = expect_close(ws, within, ctx).await;
    assert_eq!(code, 1008, "{ctx}: close code (reason {reason:?})");
    assert!(!reason.is_empty(), "{ctx}: the close frame gives a reason");
}

/// The socket is open and gets `user`'s next change.
async fn assert_still_open(app: &TestApp, ws: &mut Ws, user: &Registered, ctx: &str) {
    let id = new_mission(app, user, "Marker").await;
    expect_change(ws, "mission_created", id, ctx).await;
}

fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

backend_custom_tests!(socket_closes_when_its_token_expires);

async fn socket_closes_when_its_token_expires(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__AUTH__ACCESS_TOKEN_LIFETIME_SECONDS", "3")],
    )
    .await;
    let alice = app.register("alice").await;
    let exp = crate::harness::claim_i64(&jwt_claims(&alice.access), "exp");
    let mission = new_mission(&app, &alice, "Expiring").await;
    let mut by_query = connect(&app, EVENTS, &alice).await;
    let mut by_header = try_connect(&app, &mission_socket(mission), Some(&alice.access))
        .await
        .unwrap_or_else(|s| panic!("mission socket with the header: refused with {s}"));
    assert!(
        unix_now_f64() < exp as f64 - 0.5,
        "the sockets opened well before exp (the test is too slow to judge)"
    );
    // Open and working until then.
    assert_still_open(&app, &mut by_query, &alice, "before exp").await;

    for (ws, what) in [
        (&mut by_query, "?token="),
        (&mut by_header, "Authorization"),
    ] {
        let left = (exp as f64 + 2.5 - unix_now_f64()).max(0.0);
        expect_policy_close(ws, Duration::from_secs_f64(left), what).await;
        let at = unix_now_f64();
        assert!(
            at >= exp as f64 - 0.05,
            "{what}: closed {:.3} s before exp",
            exp as f64 - at
        );
        println!("{what}: closed {:.3} s after exp", at - exp as f64);
    }
    // And a new socket with it is refused.
    assert_eq!(
        try_connect(&app, &with_token(EVENTS, &alice.access), None)
            .await
            .err(),
        Some(401)
    );
}

backend_tests!(
    deactivation_and_deletion_close_the_users_sockets,
    password_change_closes_the_users_sockets,
    sockets_per_user_are_capped_at_20,
);

async fn deactivation_and_deletion_close_the_users_sockets(app: TestApp) {
    let staff = app.create_superuser("boss").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let alices = new_mission(&app, &alice, "Alice's").await;
    let mut a_events = connect(&app, EVENTS, &alice).await;
    let mut a_mission = connect(&app, &mission_socket(alices), &alice).await;
    let mut b_events = connect(&app, EVENTS, &bob).await;
    let mut c_events = connect(&app, EVENTS, &carol).await;

    // A change that does not deactivate leaves the sockets alone.
    app.staff_patch_user(
        &staff,
        alice.id,
        &json!({"first_name": "Al", "is_active": true}),
    )
    .await;
    assert_still_open(&app, &mut a_events, &alice, "after a harmless staff edit").await;

    let started = std::time::Instant::now();
    app.staff_patch_user(&staff, alice.id, &json!({"is_active": false}))
        .await;
    expect_policy_close(&mut a_events, REVOKE_BOUND, "deactivated: events").await;
    expect_policy_close(&mut a_mission, REVOKE_BOUND, "deactivated: mission").await;
    println!(
        "deactivation: sockets closed {:?} after the PATCH was sent",
        started.elapsed()
    );
    assert_eq!(
        try_connect(&app, &with_token(EVENTS, &alice.access), None)
            .await
            .err(),
        Some(401),
        "a deactivated user cannot reconnect"
    );

    let r = app
        .delete(&format!("/api/users/{}/", carol.id), Some(&staff.access))
        .await;
    r.assert_status(204);
    expect_policy_close(&mut c_events, REVOKE_BOUND, "deleted: events").await;

    // Other users keep theirs.
    assert_still_open(&app, &mut b_events, &bob, "bob after the others").await;
}

async fn password_change_closes_the_users_sockets(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut a_events = connect(&app, EVENTS, &alice).await;
    let mut a_header = try_connect(&app, EVENTS, Some(&alice.access))
        .await
        .unwrap_or_else(|s| panic!("events with the header: refused with {s}"));
    let mut b_events = connect(&app, EVENTS, &bob).await;

    // A refused change leaves the sockets alone.
    app.post_json(
        "/api/users/me/password/",
        &json!({"old_password": "not her password", "new_password": "Another-long-pass-42"}),
        Some(&alice.access),
    )
    .await
    .assert_status(400);
    let marker = new_mission(&app, &alice, "Marker").await;
    expect_change(
        &mut a_events,
        "mission_created",
        marker,
        "after a refused change",
    )
    .await;
    expect_change(
        &mut a_header,
        "mission_created",
        marker,
        "header, after a refused change",
    )
    .await;

    app.post_json(
        "/api/users/me/password/",
        &json!({"old_password": alice.password, "new_password": "Another-long-pass-42"}),
        Some(&alice.access),
    )
    .await
    .assert_status(204);
    expect_policy_close(&mut a_events, REVOKE_BOUND, "password changed: ?token=").await;
    expect_policy_close(&mut a_header, REVOKE_BOUND, "password changed: header").await;
    assert_still_open(&app, &mut b_events, &bob, "bob after alice's change").await;

    // With a token from the new password, she is back.
    let (access, _) = app.login_tokens("alice", "Another-long-pass-42").await;
    let mut again = try_connect(&app, &with_token(EVENTS, &access), None)
        .await
        .unwrap_or_else(|s| panic!("reconnect after the change: refused with {s}"));
    let id = new_mission(&app, &alice, "After").await;
    expect_change(&mut again, "mission_created", id, "reconnected").await;
}

/// 429 with the throttled body and a `Retry-After` that agrees with it.
fn assert_cap_refusal(r: &Resp, ctx: &str) {
    r.assert_status(429).assert_json();
    let detail = r.body["detail"].as_str().unwrap_or_default();
    let seconds = detail
        .strip_prefix("Request was throttled. Expected available in ")
        .and_then(|rest| rest.strip_suffix(" seconds."))
        .unwrap_or_else(|| panic!("{ctx}: the throttled body: {}", r.body));
    assert_eq!(
        r.header("retry-after").as_deref(),
        Some(seconds),
        "{ctx}: Retry-After agrees with the body"
    );
    assert!(
        seconds.parse::<u64>().is_ok_and(|n| n > 0),
        "{ctx}: {seconds}"
    );
}

async fn sockets_per_user_are_capped_at_20(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mission = new_mission(&app, &alice, "Watched").await;
    // Events and mission sockets count alike.
    let mut open = Vec::new();
    for i in 0..20 {
        let path = if i % 2 == 0 {
            EVENTS.to_owned()
        } else {
            mission_socket(mission)
        };
        match try_connect(&app, &with_token(&path, &alice.access), None).await {
            Ok(ws) => open.push(ws),
            Err(status) => panic!("socket {} of 20: refused with {status}", i + 1),
        }
    }
    // The 21st is refused before the upgrade, on either path.
    for path in [EVENTS.to_owned(), mission_socket(mission)] {
        let path = with_token(&path, &alice.access);
        assert_eq!(
            try_connect(&app, &path, None).await.err(),
            Some(429),
            "21st: {path}"
        );
        assert_cap_refusal(&handshake_http(&app, &path, &[]).await, "21st");
    }
    // Someone else is not affected.
    let mut bobs = connect(&app, EVENTS, &bob).await;
    // The 20 still work.
    let id = new_mission(&app, &alice, "To all").await;
    for (i, ws) in open.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        expect_change(ws, "mission_created", id, &format!("socket {}", i + 1)).await;
    }

    // Closing one frees its slot (once the server saw the close).
    let mut closing = open.pop().expect("a socket");
    closing.close(None).await.expect("send a close frame");
    while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_TIMEOUT, closing.next()).await {}
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let replacement = loop {
        match try_connect(&app, &with_token(EVENTS, &alice.access), None).await {
            Ok(ws) => break ws,
            Err(429) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("after closing one: refused with {status}"),
        }
    };
    open.push(replacement);
    assert_eq!(
        try_connect(&app, &with_token(EVENTS, &alice.access), None)
            .await
            .err(),
        Some(429),
        "full again"
    );
    assert_still_open(&app, &mut bobs, &bob, "bob").await;
}

backend_custom_tests!(
    socket_cap_follows_its_setting,
    origin_is_checked_before_the_upgrade
);

async fn socket_cap_follows_its_setting(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__REALTIME__MAX_SOCKETS_PER_USER", "2")],
    )
    .await;
    let alice = app.register("alice").await;
    let path = with_token(EVENTS, &alice.access);
    let _one = try_connect(&app, &path, None).await.expect("first");
    let _two = try_connect(&app, &path, None).await.expect("second");
    assert_eq!(
        try_connect(&app, &path, None).await.err(),
        Some(429),
        "third"
    );
    assert_cap_refusal(&handshake_http(&app, &path, &[]).await, "third");
}

async fn origin_is_checked_before_the_upgrade(backend: Backend) {
    let forbidden = json!({"detail": "You do not have permission to perform this action."});
    let app = TestApp::spawn(backend).await;
    let alice = app.register("alice").await;
    let mission = new_mission(&app, &alice, "M").await;
    for socket in [EVENTS.to_owned(), mission_socket(mission)] {
        let path = with_token(&socket, &alice.access);
        // The frontend's origin (the default CORS origin) and no Origin at all.
        let mut allowed = try_connect_with(&app, &path, &[("origin", "http://localhost:3000")])
            .await
            .unwrap_or_else(|s| panic!("{socket}: allowed origin refused with {s}"));
        let mut bare = try_connect_with(&app, &path, &[])
            .await
            .unwrap_or_else(|s| panic!("{socket}: no Origin refused with {s}"));
        if socket == EVENTS {
            assert_still_open(&app, &mut allowed, &alice, "allowed origin").await;
        }
        drop(bare.close(None).await);
        drop(allowed.close(None).await);
        // Any other origin, even a near miss.
        for origin in [
            "http://evil.example",
            "null",
            "http://localhost:3001",
            "https://localhost:3000",
            "http://localhost:3000.evil.example",
        ] {
            assert_eq!(
                try_connect_with(&app, &path, &[("origin", origin)])
                    .await
                    .err(),
                Some(403),
                "{socket}: Origin {origin}"
            );
            handshake_http(&app, &path, &[("origin", origin)])
                .await
                .assert_body(403, &forbidden);
        }
        // Refused before the token is even looked at.
        handshake_http(&app, &socket, &[("origin", "http://evil.example")])
            .await
            .assert_body(403, &forbidden);
    }
    drop(app);

    // A configured origin replaces the default.
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__CORS__ALLOWED_ORIGINS", "https://app.example")],
    )
    .await;
    let alice = app.register("alice").await;
    let path = with_token(EVENTS, &alice.access);
    try_connect_with(&app, &path, &[("origin", "https://app.example")])
        .await
        .unwrap_or_else(|s| panic!("configured origin refused with {s}"));
    assert_eq!(
        try_connect_with(&app, &path, &[("origin", "http://localhost:3000")])
            .await
            .err(),
        Some(403),
        "the default origin is no longer allowed"
    );
}

#[tokio::test]
async fn revocation_crosses_server_processes() {
    if !postgres_configured() {
        println!("skipped: TEST_DATABASE_URL not set (PostgreSQL only)");
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let peer = app.spawn_peer_sharing_media().await;
    let staff = app.create_superuser("boss").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let mut a_ws = connect(&app, EVENTS, &alice).await;
    let mut b_ws = connect(&app, EVENTS, &bob).await;
    let mut c_ws = connect(&app, EVENTS, &carol).await;
    // Carol also has one on the peer: revocations reach the process that
    // made them too.
    let mut c_peer = connect(&peer, EVENTS, &carol).await;

    // Deactivated through the other process.
    let started = std::time::Instant::now();
    peer.staff_patch_user(&staff, alice.id, &json!({"is_active": false}))
        .await;
    expect_policy_close(&mut a_ws, REVOKE_BOUND, "deactivated via the peer").await;
    println!(
        "cross-process deactivation: closed {:?} after the PATCH was sent",
        started.elapsed()
    );

    // A password changed through the other process.
    let started = std::time::Instant::now();
    peer.post_json(
        "/api/users/me/password/",
        &json!({"old_password": carol.password, "new_password": "Another-long-pass-42"}),
        Some(&carol.access),
    )
    .await
    .assert_status(204);
    expect_policy_close(&mut c_ws, REVOKE_BOUND, "password changed via the peer").await;
    expect_policy_close(&mut c_peer, REVOKE_BOUND, "password changed, on the peer").await;
    println!(
        "cross-process password change: closed {:?} after the POST was sent",
        started.elapsed()
    );

    // Bob's socket is untouched.
    let id = new_mission(&peer, &bob, "Bob's").await;
    skip_until_mission(&mut b_ws, id, "bob after the others").await;
    drop(peer);
}

backend_custom_tests!(a_peer_that_never_answers_pings_is_dropped);

async fn a_peer_that_never_answers_pings_is_dropped(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__REALTIME__PING_INTERVAL_SECONDS", "1"),
            ("AUTODOCS__REALTIME__PEER_TIMEOUT_SECONDS", "2"),
        ],
    )
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    // Bob's client never reads, so it never answers a ping.
    let mut silent = connect(&app, EVENTS, &bob).await;
    // Alice's reads all along (the client answers pings as it reads).
    let mut lively = connect(&app, EVENTS, &alice).await;
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(until, lively.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(other) => panic!("lively: unexpected {other:?}"),
        }
    }
    assert!(
        pings >= 3,
        "lively: pinged every second ({pings} pings in 5 s)"
    );
    assert_still_open(&app, &mut lively, &alice, "lively after the peer timeout").await;

    // The silent one was dropped meanwhile: what is buffered ends, quickly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, silent.next()).await {
            Err(_) => panic!("silent: still open 5 s after it stopped answering (timeout 2 s)"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(other))) => panic!("silent: unexpected {other:?}"),
        }
    }
}
