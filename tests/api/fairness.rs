//! No client can starve the others (issue 11): request bodies that stall are
//! cut (408, nothing kept), uploads per user are capped (429), password
//! hashing has its own bounded queue (503 when full) and never slows other
//! users' requests, and failed logins and password changes are limited per
//! account whatever the client address.
//!
//! Timings are asserted only as generous bounds (under a second); the
//! figures measured are printed (`--nocapture`) for the record.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Backend, Registered, Resp, TestApp, files_in, media, postgres_configured};
use crate::missions::new_mission;

backend_custom_tests!(
    a_stalled_upload_is_cut_and_leaves_nothing,
    a_stalled_json_body_is_cut,
    stalled_uploads_do_not_starve_anyone,
    uploads_per_user_are_capped_and_released,
    a_full_hashing_queue_answers_503,
    password_changes_do_not_slow_other_users,
    failed_logins_lock_the_account_from_any_address,
    failed_password_changes_are_limited_per_user,
    a_login_storm_from_one_address_does_not_delay_another,
);

const DOCUMENTS: &str = "/api/documents/";
const BOUNDARY: &str = "----autodocs-fairness-boundary-9dk3LqZ";
const THROTTLED_PREFIX: &str = "Request was throttled. Expected available in ";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn temporary_files(app: &TestApp) -> Vec<String> {
    files_in(&media(app).join(".tmp"))
}

fn stored_files(app: &TestApp) -> Vec<String> {
    files_in(&media(app).join("documents"))
}

fn document_rows(app: &TestApp) -> i64 {
    app.db
        .query_value("SELECT CAST(count(*) AS TEXT) AS value FROM documents_document")
        .and_then(|v| v.trim().parse().ok())
        .expect("a count")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn address(app: &TestApp) -> String {
    app.base_url.trim_start_matches("http://").to_owned()
}

fn file_prelude(filename: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
}

fn complete_form(filename: &str, text: &str) -> Vec<u8> {
    format!("{}{text}\r\n--{BOUNDARY}--\r\n", file_prelude(filename)).into_bytes()
}

/// Opens a connection and sends an upload's head and the start of its
/// file, then nothing more: a stalled upload.
async fn stalled_upload(app: &TestApp, user: &Registered) -> TcpStream {
    let address = address(app);
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST {DOCUMENTS} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 1000000\r\n\r\n{}\
         the first line of a statement that never ends\n",
        user.access,
        file_prelude("stalled.txt"),
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    stream.flush().await.expect("flush");
    stream
}

/// Reads what the server answers on a raw connection: status and JSON body.
async fn raw_answer(stream: &mut TcpStream, within: Duration) -> (u16, String, Value) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => panic!(
                "no complete answer within {within:?}; got {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
        if let Some(answer) = parse_answer(&received) {
            return answer;
        }
    }
    parse_answer(&received).unwrap_or_else(|| {
        panic!(
            "connection closed without an answer: {:?}",
            String::from_utf8_lossy(&received)
        )
    })
}

/// A complete HTTP/1.1 answer with a Content-Length body, if `raw` holds one.
fn parse_answer(raw: &[u8]) -> Option<(u16, String, Value)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    if body.len() < length {
        return None;
    }
    let json = serde_json::from_str(&body[..length]).unwrap_or(Value::Null);
    Some((status, head.to_owned(), json))
}

async fn upload_text(app: &TestApp, user: &Registered, filename: &str, text: &str) -> Resp {
    let url = app.url(DOCUMENTS);
    let request = app
        .client()
        .post(&url)
        .bearer_auth(&user.access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(complete_form(filename, text));
    app.send(&Method::POST, &url, request).await
}

#[track_caller]
fn assert_throttled(r: &Resp) {
    r.assert_status(429);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(THROTTLED_PREFIX) && detail.ends_with(" seconds."),
        "{}",
        r.describe()
    );
    let retry: u64 = r
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After: {}", r.describe()));
    assert!(retry >= 1, "{}", r.describe());
    assert!(detail.contains(&format!(" {retry} ")), "{}", r.describe());
}

/// How long one request takes, with its answer.
async fn timed<F: std::future::Future<Output = Resp>>(request: F) -> (Duration, Resp) {
    let started = Instant::now();
    let answer = request.await;
    (started.elapsed(), answer)
}

/// A client whose connections leave from `local` (another loopback address:
/// the server tells clients apart by address and trusts no forwarded header).
fn client_from(local: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(local))
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

async fn login_with(
    client: &reqwest::Client,
    app: &TestApp,
    username: &str,
    password: &str,
) -> Resp {
    let url = app.url("/api/auth/login/");
    let request = client
        .post(&url)
        .json(&json!({"username": username, "password": password}));
    app.send(&Method::POST, &url, request).await
}

fn slowest(latencies: &[Duration]) -> Duration {
    latencies.iter().copied().max().unwrap_or_default()
}

fn median(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Stalled bodies
// ---------------------------------------------------------------------------

async fn a_stalled_upload_is_cut_and_leaves_nothing(backend: Backend) {
    let app =
        TestApp::spawn_with_env(backend, &[("AUTODOCS__SERVER__BODY_TIMEOUT_SECONDS", "2")]).await;
    let anna = app.register("anna").await;

    // Past the limit: the body stops; after 2 s of silence, 408 and nothing kept.
    let started = Instant::now();
    let mut stream = stalled_upload(&app, &anna).await;
    eventually("the upload is being received", || {
        !temporary_files(&app).is_empty()
    })
    .await;
    let (status, head, body) = raw_answer(&mut stream, Duration::from_secs(30)).await;
    let waited = started.elapsed();
    println!("stalled upload answered {status} after {waited:?}");
    assert_eq!(status, 408, "{head}\n{body}");
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert!(body["detail"].is_string(), "{body}");
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    eventually("the temporary file is removed", || {
        temporary_files(&app).is_empty()
    })
    .await;
    assert!(stored_files(&app).is_empty());
    assert_eq!(document_rows(&app), 0);

    // At the limit: pauses shorter than the timeout are fine.
    let address = address(&app);
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let form = complete_form("slow.txt", "a slow but steady statement");
    let head = format!(
        "POST {DOCUMENTS} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        anna.access,
        form.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    for piece in form.chunks(form.len() / 3 + 1) {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stream.write_all(piece).await.expect("a piece");
        stream.flush().await.expect("flush");
    }
    let (status, head, body) = raw_answer(&mut stream, Duration::from_secs(30)).await;
    assert_eq!(status, 201, "{head}\n{body}");
    assert_eq!(document_rows(&app), 1);
    assert_eq!(stored_files(&app).len(), 1);
    assert!(temporary_files(&app).is_empty());
}

async fn a_stalled_json_body_is_cut(backend: Backend) {
    let app =
        TestApp::spawn_with_env(backend, &[("AUTODOCS__SERVER__BODY_TIMEOUT_SECONDS", "2")]).await;
    let anna = app.register("anna").await;
    let address = address(&app);
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /api/missions/ HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"title\": \"never fin",
        anna.access
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.flush().await.expect("flush");
    let started = Instant::now();
    let (status, head, body) = raw_answer(&mut stream, Duration::from_secs(30)).await;
    println!(
        "stalled JSON body answered {status} after {:?}",
        started.elapsed()
    );
    assert_eq!(status, 408, "{head}\n{body}");
    assert_eq!(body["code"], "request_timeout", "{body}");
    let missions = app.get("/api/missions/", Some(&anna.access)).await;
    missions.assert_status(200);
    assert_eq!(missions.body["count"], 0, "nothing was created");

    // Login bodies too (the anonymous endpoints).
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /api/auth/login/ HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"username\": \"an"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let (status, _, body) = raw_answer(&mut stream, Duration::from_secs(30)).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["code"], "request_timeout", "{body}");
}

async fn stalled_uploads_do_not_starve_anyone(backend: Backend) {
    // Every stalled upload is let in (a high per-user cap), so each one is
    // really waiting inside the upload handler.
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__UPLOADS__MAX_CONCURRENT_PER_USER", "1000")],
    )
    .await;
    let mallory = app.register("mallory").await;
    let anna = app.register("anna").await;
    new_mission(&app, &anna, "anna's mission").await;

    let mut stalled = Vec::with_capacity(600);
    for _ in 0..600 {
        stalled.push(stalled_upload(&app, &mallory).await);
    }
    eventually("the 600 uploads are being received", || {
        temporary_files(&app).len() >= 600
    })
    .await;

    let mut health = Vec::new();
    let mut lists = Vec::new();
    for _ in 0..10 {
        let (took, r) = timed(app.get("/api/health/", None)).await;
        r.assert_status(200);
        health.push(took);
        let (took, r) = timed(app.get("/api/missions/", Some(&anna.access))).await;
        r.assert_status(200);
        assert_eq!(r.body["count"], 1);
        lists.push(took);
    }
    // Uploads use the blocking pool for their disk writes: still free.
    let (upload_took, r) = timed(upload_text(&app, &anna, "fine.txt", "all good")).await;
    r.assert_status(201);
    println!(
        "600 stalled uploads: health median {:?} max {:?}; another user's list median {:?} max {:?}; \
         another user's upload {upload_took:?}",
        median(&health),
        slowest(&health),
        median(&lists),
        slowest(&lists)
    );
    assert!(slowest(&health) < Duration::from_secs(1), "{health:?}");
    assert!(slowest(&lists) < Duration::from_secs(1), "{lists:?}");
    assert!(upload_took < Duration::from_secs(5), "{upload_took:?}");
    drop(stalled);
    eventually("the stalled uploads leave nothing", || {
        temporary_files(&app).is_empty()
    })
    .await;
    assert_eq!(document_rows(&app), 1);
}

async fn uploads_per_user_are_capped_and_released(backend: Backend) {
    let app =
        TestApp::spawn_with_env(backend, &[("AUTODOCS__SERVER__BODY_TIMEOUT_SECONDS", "4")]).await;
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;

    // At the limit: 4 uploads in progress at once are let in.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled_upload(&app, &anna).await);
    }
    eventually("4 uploads are being received", || {
        temporary_files(&app).len() == 4
    })
    .await;
    // Past it: the 5th is refused before its body is read.
    let fifth = upload_text(&app, &anna, "fifth.txt", "one too many").await;
    assert_throttled(&fifth);
    // Another user is not concerned.
    upload_text(&app, &bob, "bob.txt", "bob's file")
        .await
        .assert_status(201);

    // A client going away frees its slot at once.
    drop(held.pop());
    let mut freed = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let r = upload_text(&app, &anna, "after.txt", "a slot was freed").await;
        if r.code() == 201 {
            freed = Some(r);
            break;
        }
        assert_throttled(&r);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed.is_some(), "the slot of a closed upload is given back");

    // The 3 left time out (408), and give their slots back too: 4 fit again.
    for stream in &mut held {
        let (status, _, body) = raw_answer(stream, Duration::from_secs(30)).await;
        assert_eq!(status, 408, "{body}");
    }
    drop(held);
    let mut again = Vec::new();
    for _ in 0..4 {
        again.push(stalled_upload(&app, &anna).await);
    }
    eventually("4 uploads are being received again", || {
        temporary_files(&app).len() == 4
    })
    .await;
    assert_throttled(&upload_text(&app, &anna, "sixth.txt", "too many again").await);
    drop(again);
    eventually("nothing left behind", || temporary_files(&app).is_empty()).await;
    assert_eq!(
        document_rows(&app),
        2,
        "bob's and the one after the freed slot"
    );
}

// ---------------------------------------------------------------------------
// Password hashing
// ---------------------------------------------------------------------------

async fn a_full_hashing_queue_answers_503(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__AUTH__HASH_QUEUE", "2"),
            ("AUTODOCS__AUTH__PASSWORD_ITERATIONS", "1500000"),
        ],
    )
    .await;
    let anna = app.register("anna").await;

    // At the limit: as many logins as the queue holds all go through.
    let at_limit =
        futures_util::future::join_all((0..2).map(|_| app.login(&anna.username, &anna.password)))
            .await;
    for r in &at_limit {
        r.assert_status(200);
    }

    // Past it: the others are refused at once, 503 with Retry-After.
    let storm = futures_util::future::join_all(
        (0..12).map(|_| timed(app.login(&anna.username, &anna.password))),
    )
    .await;
    let mut refused = 0;
    for (took, r) in &storm {
        match r.code() {
            200 => {}
            503 => {
                refused += 1;
                assert_eq!(
                    r.body,
                    json!({"detail": "Service temporarily unavailable.", "code": "service_unavailable"}),
                    "{}",
                    r.describe()
                );
                let retry: u64 = r
                    .header("retry-after")
                    .and_then(|value| value.parse().ok())
                    .unwrap_or_else(|| panic!("Retry-After: {}", r.describe()));
                assert!(retry >= 1);
                assert!(
                    *took < Duration::from_secs(1),
                    "refused at once, not after {took:?}"
                );
            }
            _ => panic!("unexpected answer: {}", r.describe()),
        }
    }
    println!("hash queue of 2, 12 concurrent logins: {refused} refused with 503");
    assert!(refused > 0, "a full queue refuses");
    assert!(refused < 12, "the queue still serves");
    app.login(&anna.username, &anna.password)
        .await
        .assert_status(200);
}

async fn password_changes_do_not_slow_other_users(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__AUTH__PASSWORD_ITERATIONS", "300000")],
    )
    .await;
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;
    for index in 0..5 {
        new_mission(&app, &bob, &format!("bob's mission {index}")).await;
    }
    let mut quiet = Vec::new();
    for _ in 0..20 {
        let (took, r) = timed(app.get("/api/missions/", Some(&bob.access))).await;
        r.assert_status(200);
        quiet.push(took);
    }

    let new_password = format!("{}-changed", anna.password);
    let change = json!({"old_password": anna.password, "new_password": new_password});
    let changes = futures_util::future::join_all(
        (0..30).map(|_| app.post_json("/api/users/me/password/", &change, Some(&anna.access))),
    );
    let lists = async {
        // Give the changes a head start so the lists meet a full queue.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut busy = Vec::new();
        for _ in 0..20 {
            let (took, r) = timed(app.get("/api/missions/", Some(&bob.access))).await;
            r.assert_status(200);
            assert_eq!(r.body["count"], 5);
            busy.push(took);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        busy
    };
    let started = Instant::now();
    let (changes, busy) = tokio::join!(changes, lists);
    let storm = started.elapsed();
    let changed = changes.iter().filter(|r| r.code() == 204).count();
    for r in &changes {
        assert!(
            matches!(r.code(), 204 | 400 | 503),
            "unexpected answer: {}",
            r.describe()
        );
        if r.code() == 400 {
            assert!(r.body.get("old_password").is_some(), "{}", r.describe());
        }
    }
    println!(
        "30 concurrent password changes ({changed} applied) over {storm:?}: another user's list \
         quiet median {:?} max {:?}; during median {:?} max {:?}",
        median(&quiet),
        slowest(&quiet),
        median(&busy),
        slowest(&busy)
    );
    assert_eq!(
        changed, 1,
        "one change wins; the others checked a stale password"
    );
    assert!(slowest(&busy) < Duration::from_secs(1), "{busy:?}");
    app.login(&anna.username, &new_password)
        .await
        .assert_status(200);
}

// ---------------------------------------------------------------------------
// Per-account limits
// ---------------------------------------------------------------------------

async fn failed_logins_lock_the_account_from_any_address(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__THROTTLE__ENABLED", "true"),
            ("AUTODOCS__THROTTLE__LOGIN_FAILURES_PER_ACCOUNT", "10"),
        ],
    )
    .await;
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;
    let here = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, 3));

    // A success does not count: 9 failures, a login, then the 10th failure.
    for _ in 0..9 {
        login_with(&here, &app, &anna.username, "wrong password")
            .await
            .assert_unauthorized("authentication_failed");
    }
    login_with(&elsewhere, &app, &anna.username, &anna.password)
        .await
        .assert_status(200);
    login_with(&here, &app, &anna.username, "wrong password")
        .await
        .assert_unauthorized("authentication_failed");

    // Past the limit: locked, whatever the address, the password, or how
    // the account is named.
    assert_throttled(&login_with(&elsewhere, &app, &anna.username, &anna.password).await);
    assert_throttled(&login_with(&here, &app, &anna.email, &anna.password).await);
    assert_throttled(&login_with(&here, &app, &anna.username, "wrong password").await);
    // Another account is not concerned.
    login_with(&here, &app, &bob.username, &bob.password)
        .await
        .assert_status(200);

    // A name no account has is locked the same way (no telling which exist).
    for _ in 0..10 {
        login_with(&here, &app, "nobody-here", "wrong password")
            .await
            .assert_unauthorized("authentication_failed");
    }
    assert_throttled(&login_with(&elsewhere, &app, "nobody-here", "wrong password").await);
}

async fn failed_password_changes_are_limited_per_user(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__THROTTLE__ENABLED", "true"),
            (
                "AUTODOCS__THROTTLE__PASSWORD_CHANGE_FAILURES_PER_USER",
                "10",
            ),
        ],
    )
    .await;
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;
    let change = |user: &Registered, old: &str| {
        let body = json!({"old_password": old, "new_password": format!("{}-new", user.password)});
        let token = user.access.clone();
        let app = &app;
        async move {
            app.post_json("/api/users/me/password/", &body, Some(&token))
                .await
        }
    };
    // A new password the policy refuses, with the right old one: not a failure.
    app.post_json(
        "/api/users/me/password/",
        &json!({"old_password": anna.password, "new_password": "123"}),
        Some(&anna.access),
    )
    .await
    .assert_status(400);
    // At the limit: 10 wrong old passwords are each told so.
    for _ in 0..10 {
        change(&anna, "not my password").await.assert_field_message(
            "old_password",
            "Your old password was entered incorrectly. Please enter it again.",
        );
    }
    // Past it: refused, even with the right old password.
    assert_throttled(&change(&anna, "not my password").await);
    assert_throttled(&change(&anna, &anna.password).await);
    // Another user is not concerned.
    change(&bob, &bob.password).await.assert_status(204);
}

async fn a_login_storm_from_one_address_does_not_delay_another(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__THROTTLE__ENABLED", "true"),
            ("AUTODOCS__AUTH__PASSWORD_ITERATIONS", "100000"),
        ],
    )
    .await;
    let anna = app.register("anna").await;
    let attacker = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let user = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let (quiet, r) = timed(login_with(&user, &app, &anna.username, &anna.password)).await;
    r.assert_status(200);

    let storm =
        futures_util::future::join_all(
            (0..150).map(|index| {
                let attacker = &attacker;
                let app = &app;
                async move {
                    login_with(attacker, app, &format!("guess-{index}"), "wrong password").await
                }
            }),
        );
    let good = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut latencies = Vec::new();
        for _ in 0..3 {
            let (took, r) = timed(login_with(&user, &app, &anna.username, &anna.password)).await;
            r.assert_status(200);
            latencies.push(took);
        }
        latencies
    };
    let (storm, good) = tokio::join!(storm, good);
    let mut refused = 0;
    for r in &storm {
        match r.code() {
            401 => {}
            429 => {
                refused += 1;
                assert_throttled(r);
            }
            _ => panic!("unexpected answer: {}", r.describe()),
        }
    }
    println!(
        "150 bad logins from one address ({refused} throttled): a good login from another address took {:?} (max), {:?} when quiet",
        slowest(&good),
        quiet
    );
    assert!(slowest(&good) < Duration::from_secs(1), "{good:?}");
}

// ---------------------------------------------------------------------------
// Limits shared by every process (PostgreSQL)
// ---------------------------------------------------------------------------

/// Two `serve` processes on one PostgreSQL database, throttling with `set`.
async fn two_processes(set: &[(&str, &str)]) -> Option<(TestApp, TestApp)> {
    if !postgres_configured() {
        println!("skipped: TEST_DATABASE_URL not set (PostgreSQL only)");
        return None;
    }
    let mut settings = vec![("AUTODOCS__THROTTLE__ENABLED", "true")];
    settings.extend_from_slice(set);
    let app = TestApp::spawn_with_env(Backend::Postgres, &settings).await;
    let peer = app.spawn_peer().await;
    assert_ne!(app.base_url, peer.base_url);
    Some((app, peer))
}

/// The per-address rate counts the requests of both processes together:
/// split between them, the request past the limit is refused on either.
#[tokio::test]
async fn a_throttle_limit_holds_across_two_processes() {
    let Some((app, peer)) = two_processes(&[("AUTODOCS__THROTTLE__AUTH_PER_MINUTE", "4")]).await
    else {
        return;
    };
    let client = client_from(Ipv4Addr::new(127, 0, 0, 1));
    // Names no account has, each its own: only the address's rate counts.
    let servers = [&app, &peer, &app, &peer];
    for (n, server) in servers.into_iter().enumerate() {
        login_with(&client, server, &format!("nobody{n}"), "wrong password")
            .await
            .assert_unauthorized("authentication_failed");
    }
    assert_throttled(&login_with(&client, &app, "nobody-a", "wrong password").await);
    assert_throttled(&login_with(&client, &peer, "nobody-b", "wrong password").await);
    // Register and token count against the same rate, on either process.
    let url = peer.url("/api/auth/token/");
    let request = client
        .post(&url)
        .json(&json!({"username": "nobody-c", "password": "wrong password"}));
    assert_throttled(&peer.send(&Method::POST, &url, request).await);
    // Another address has its own budget.
    let other = client_from(Ipv4Addr::new(127, 0, 0, 2));
    login_with(&other, &peer, "nobody-d", "wrong password")
        .await
        .assert_unauthorized("authentication_failed");
    drop(peer);
}

/// Failed logins on one process lock the account on the other; a success
/// on either gives its attempt back.
#[tokio::test]
async fn a_login_lockout_holds_across_two_processes() {
    let Some((app, peer)) = two_processes(&[
        ("AUTODOCS__THROTTLE__AUTH_PER_MINUTE", "1000"),
        ("AUTODOCS__THROTTLE__LOGIN_FAILURES_PER_ACCOUNT", "4"),
    ])
    .await
    else {
        return;
    };
    let anna = app.register("anna").await;
    let here = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, 3));
    for server in [&app, &peer, &app] {
        login_with(&here, server, &anna.username, "wrong password")
            .await
            .assert_unauthorized("authentication_failed");
    }
    // Three failures counted; a success on the peer is not a fourth.
    login_with(&elsewhere, &peer, &anna.username, &anna.password)
        .await
        .assert_status(200);
    login_with(&here, &peer, &anna.username, "wrong password")
        .await
        .assert_unauthorized("authentication_failed");
    // Four failures between the two: locked on both, whatever the password.
    assert_throttled(&login_with(&elsewhere, &app, &anna.username, &anna.password).await);
    assert_throttled(&login_with(&elsewhere, &peer, &anna.email, &anna.password).await);
    drop(peer);
}

/// Wrong old passwords sent to one process count on the other.
#[tokio::test]
async fn a_password_change_lockout_holds_across_two_processes() {
    let Some((app, peer)) =
        two_processes(&[("AUTODOCS__THROTTLE__PASSWORD_CHANGE_FAILURES_PER_USER", "2")]).await
    else {
        return;
    };
    let anna = app.register("anna").await;
    let body = |old: &str| json!({"old_password": old, "new_password": "violet-Harbor-2024x"});
    for server in [&app, &peer] {
        server
            .post_json(
                "/api/users/me/password/",
                &body("not my password"),
                Some(&anna.access),
            )
            .await
            .assert_status(400);
    }
    assert_throttled(
        &app.post_json(
            "/api/users/me/password/",
            &body(&anna.password),
            Some(&anna.access),
        )
        .await,
    );
    drop(peer);
}
