//! Background work: the durable job queue and the mission engine, seen from
//! outside. Missions with automated steps (`wait`, `verify_documents`,
//! `fetch_url`) run by themselves; pause/resume, manual steps, SSRF refusals,
//! enqueue-in-the-same-transaction, lease expiry after a killed worker, and
//! two worker processes sharing one PostgreSQL queue.
//!
//! Every wait is a poll with a deadline; nothing asserts on the server's speed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Backend, Registered, Resp, TestApp, sha256};

backend_tests!(
    automated_steps_complete_the_mission,
    pause_lets_the_running_step_finish_and_holds_the_next,
    manual_step_waits_for_the_user,
);

backend_custom_tests!(
    a_long_fetch_keeps_its_lease_and_runs_once,
    one_users_slow_fetches_do_not_delay_another_users_mission,
    a_fetch_slower_than_the_minimum_rate_is_aborted,
    fetch_url_downloads_into_the_mission,
    fetch_url_refuses_private_addresses_by_default,
    fetch_url_failures_name_no_host_address_or_cause,
    enqueue_commits_with_the_change_or_not_at_all,
    a_killed_workers_job_runs_again_after_its_lease,
);

/// How long a mission may take to get where a test expects it.
const DEADLINE: Duration = Duration::from_secs(30);

const MISSIONS: &str = "/api/missions/";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

pub(crate) fn id_of(v: &Value) -> i64 {
    v["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("`id` is an integer: {v}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn wait(seconds: u32) -> Value {
    json!({"kind": "wait", "seconds": seconds})
}

/// A `custom` mission with one root step per action, in this order; returns
/// (mission id, step ids).
pub(crate) async fn mission_with_steps(
    app: &TestApp,
    user: &Registered,
    title: &str,
    actions: &[Value],
) -> (i64, Vec<i64>) {
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": title, "type": "custom"}),
            Some(&user.access),
        )
        .await;
    r.assert_status(201);
    let mission = id_of(&r.body);
    let mut steps = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let r = app
            .post_json(
                &format!("/api/missions/{mission}/steps/"),
                &json!({"title": format!("step {}", i + 1), "action": action}),
                Some(&user.access),
            )
            .await;
        r.assert_status(201);
        assert_eq!(&r.body["action"], action, "action stored\n{}", r.describe());
        assert_eq!(r.body["status"], "pending", "{}", r.describe());
        steps.push(id_of(&r.body));
    }
    (mission, steps)
}

pub(crate) async fn act(app: &TestApp, user: &Registered, mission: i64, action: &str) -> Resp {
    app.request(
        Method::POST,
        &format!("/api/missions/{mission}/{action}/"),
        Some(&user.access),
        None,
    )
    .await
}

/// An action that must answer 200 with `status`; returns the mission.
pub(crate) async fn act_ok(
    app: &TestApp,
    user: &Registered,
    mission: i64,
    action: &str,
    status: &str,
) -> Value {
    let r = act(app, user, mission, action).await;
    r.assert_status(200);
    assert_eq!(r.body["status"], status, "{action}\n{}", r.describe());
    r.body.clone()
}

pub(crate) async fn detail(app: &TestApp, user: &Registered, mission: i64) -> Value {
    let r = app
        .get(&format!("/api/missions/{mission}/"), Some(&user.access))
        .await;
    r.assert_status(200);
    r.body.clone()
}

/// The step `id` anywhere in a mission detail's `plan_steps` tree.
fn step_of(detail: &Value, id: i64) -> Value {
    fn find(steps: &Value, id: i64) -> Option<Value> {
        for step in steps.as_array()? {
            if step["id"] == id {
                return Some(step.clone());
            }
            if let Some(found) = find(&step["children"], id) {
                return Some(found);
            }
        }
        None
    }
    find(&detail["plan_steps"], id)
        .unwrap_or_else(|| panic!("step {id} in the mission detail: {detail}"))
}

pub(crate) fn step_status(detail: &Value, id: i64) -> String {
    step_of(detail, id)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The activities of a mission, oldest first (by id).
pub(crate) async fn mission_activities(
    app: &TestApp,
    user: &Registered,
    mission: i64,
) -> Vec<Value> {
    activities(app, user, &format!("mission={mission}")).await
}

/// The activities matching a query (first 100), oldest first (by id).
async fn activities(app: &TestApp, user: &Registered, query: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/activities/?page_size=100&{query}"),
            Some(&user.access),
        )
        .await;
    r.assert_status(200);
    let mut list = r.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("a page of activities\n{}", r.describe()))
        .clone();
    list.sort_by_key(id_of);
    list
}

/// The `details.status` values of the `step_updated` activities of one step,
/// oldest first.
fn step_events(activities: &[Value], step: i64) -> Vec<String> {
    activities
        .iter()
        .filter(|a| a["type"] == "step_updated" && a["details"]["step_id"] == step)
        .map(|a| a["details"]["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The first activity of `kind` (with `step` when given) and that status.
fn position(activities: &[Value], kind: &str, step: Option<(i64, &str)>) -> usize {
    activities
        .iter()
        .position(|a| {
            a["type"] == kind
                && step.is_none_or(|(id, status)| {
                    a["details"]["step_id"] == id && a["details"]["status"] == status
                })
        })
        .unwrap_or_else(|| {
            panic!(
                "no {kind} activity {step:?} among:\n{}",
                summary(activities)
            )
        })
}

pub(crate) fn summary(activities: &[Value]) -> String {
    activities
        .iter()
        .map(|a| format!("  {} {} {}", a["id"], a["type"], a["details"]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn count_type(activities: &[Value], kind: &str) -> usize {
    activities.iter().filter(|a| a["type"] == kind).count()
}

/// Polls the mission until its status is `want`; panics at once if it reaches
/// another final status, or at the deadline.
pub(crate) async fn await_status(
    app: &TestApp,
    user: &Registered,
    mission: i64,
    want: &str,
    deadline: Duration,
) -> Value {
    let until = Instant::now() + deadline;
    loop {
        let d = detail(app, user, mission).await;
        let status = d["status"].as_str().unwrap_or_default().to_owned();
        if status == want {
            return d;
        }
        let terminal = ["completed", "failed", "cancelled"].contains(&status.as_str());
        if terminal || Instant::now() > until {
            let why = if terminal {
                format!("reached {status:?}")
            } else {
                format!("still {status:?} after {deadline:?}")
            };
            panic!(
                "mission {mission}: expected status {want:?}, {why}\ndetail: {d}\nactivities:\n{}",
                summary(&mission_activities(app, user, mission).await)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until step `step` has status `want`.
async fn await_step(
    app: &TestApp,
    user: &Registered,
    mission: i64,
    step: i64,
    want: &str,
    why: &str,
) -> Value {
    let until = Instant::now() + DEADLINE;
    loop {
        let d = detail(app, user, mission).await;
        if step_status(&d, step) == want {
            return d;
        }
        if Instant::now() > until {
            panic!(
                "mission {mission}: step {step} not {want:?} after {DEADLINE:?} ({why})\ndetail: {d}\nactivities:\n{}",
                summary(&mission_activities(app, user, mission).await)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads a file (multipart) into a mission; returns the Document.
async fn upload_text(
    app: &TestApp,
    user: &Registered,
    mission: i64,
    name: &str,
    body: &[u8],
) -> Value {
    let url = app.url("/api/documents/");
    let part = reqwest::multipart::Part::bytes(body.to_vec())
        .file_name(name.to_owned())
        .mime_str("text/plain")
        .expect("a MIME type");
    let form = reqwest::multipart::Form::new()
        .text("mission", mission.to_string())
        .part("file", part);
    let req = app
        .client()
        .post(&url)
        .bearer_auth(&user.access)
        .multipart(form);
    let r = app.send(&Method::POST, &url, req).await;
    r.assert_status(201);
    assert_eq!(r.body["mission"], mission, "{}", r.describe());
    r.body.clone()
}

// ---- The job table ----------------------------------------------------------

pub(crate) fn count(app: &TestApp, filter: &str) -> i64 {
    let sql = format!("SELECT CAST(count(*) AS TEXT) AS value FROM jobs_job {filter}");
    app.db
        .query_value(&sql)
        .unwrap_or_else(|| panic!("{sql}: no row"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn all_jobs(app: &TestApp) -> i64 {
    count(app, "")
}

pub(crate) fn mission_jobs(app: &TestApp, mission: i64) -> i64 {
    count(
        app,
        &format!("WHERE kind = 'advance_mission' AND mission_id = {mission}"),
    )
}

/// `status|locked_by` of the newest job of a mission.
fn job_state(app: &TestApp, mission: i64) -> String {
    app.db
        .query_value(&format!(
            "SELECT status || '|' || COALESCE(locked_by, '') AS value FROM jobs_job \
             WHERE mission_id = {mission} ORDER BY id DESC LIMIT 1"
        ))
        .unwrap_or_default()
}

pub(crate) fn job_table(app: &TestApp) -> String {
    let row = "CAST(id AS TEXT) || ' ' || kind || ' ' || status || ' mission=' || \
               COALESCE(CAST(mission_id AS TEXT), '-') || ' attempts=' || CAST(attempts AS TEXT) || \
               ' locked_by=' || COALESCE(locked_by, '-') || ' error=' || COALESCE(last_error, '-')";
    let sql = match app.backend {
        Backend::Sqlite => format!(
            "SELECT group_concat(line, char(10)) AS value FROM (SELECT {row} AS line FROM jobs_job ORDER BY id)"
        ),
        Backend::Postgres => {
            format!(
                "SELECT COALESCE(string_agg({row}, chr(10) ORDER BY id), '') AS value FROM jobs_job"
            )
        }
    };
    match app.backend {
        // `query_value` keeps the first line only.
        Backend::Sqlite => {
            crate::harness::sqlite3(&app.db.sqlite_path().expect("sqlite path"), &sql)
        }
        Backend::Postgres => app.db.query_value(&sql).unwrap_or_default(),
    }
}

// ---- A small HTTP server on 127.0.0.1 ----------------------------------------

pub(crate) const REPORT: &[u8] = b"Quarterly report\nRevenue: 1200 EUR\nAll figures checked.\n";

#[derive(Clone, Copy)]
pub(crate) enum Reply {
    /// The whole report.
    Full,
    /// Headers and a few bytes, then nothing until the server is dropped.
    Stall,
    /// The whole report, one byte every `ms` milliseconds (a slow server).
    Trickle(u64),
}

/// Serves `REPORT` as an attachment named `report.txt`; `plan(n)` decides
/// how the n-th connection (from 0) is answered.
pub(crate) struct FileServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    pub(crate) fn start(plan: fn(usize) -> Reply) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test HTTP server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let reply = plan(n);
                            n += 1;
                            let requests = Arc::clone(&requests);
                            let stop = Arc::clone(&stop);
                            std::thread::spawn(move || serve(stream, reply, &requests, &stop));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        FileServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The request lines received so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, reply: Reply, requests: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(line);
    let headers = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Disposition: attachment; filename=\"report.txt\"\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        REPORT.len()
    );
    let _ = stream.write_all(headers.as_bytes());
    match reply {
        Reply::Full => {
            let _ = stream.write_all(REPORT);
            let _ = stream.flush();
        }
        Reply::Stall => {
            let _ = stream.write_all(&REPORT[..5]);
            let _ = stream.flush();
            let until = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Reply::Trickle(ms) => {
            for byte in REPORT.chunks(1) {
                if stop.load(Ordering::Relaxed) || stream.write_all(byte).is_err() {
                    return;
                }
                let _ = stream.flush();
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// `[wait 1 s, verify_documents]` with one uploaded text document runs to
/// completion by itself, steps in order, the document verified.
async fn automated_steps_complete_the_mission(app: TestApp) {
    let anna = app.register("anna").await;
    let (mission, steps) = mission_with_steps(
        &app,
        &anna,
        "Automated",
        &[wait(1), json!({"kind": "verify_documents"})],
    )
    .await;
    let (wait_step, verify_step) = (steps[0], steps[1]);
    let document = upload_text(
        &app,
        &anna,
        mission,
        "notes.txt",
        "Notes – résumé ✓\n".as_bytes(),
    )
    .await;
    let doc = id_of(&document);
    assert_eq!(
        document["verified"], false,
        "not verified before the mission runs: {document}"
    );
    assert_eq!(document["status"], "uploaded", "{document}");

    act_ok(&app, &anna, mission, "start", "in_progress").await;
    let d = await_status(&app, &anna, mission, "completed", DEADLINE).await;
    assert_eq!(d["progress"], 100, "{d}");
    assert_eq!(d["steps_completed"], 2, "{d}");
    assert!(d["completed_at"].is_string(), "completed_at set: {d}");
    for step in [wait_step, verify_step] {
        let s = step_of(&d, step);
        assert_eq!(s["status"], "completed", "{s}");
        assert!(s["started_at"].is_string(), "started_at set: {s}");
        assert!(s["completed_at"].is_string(), "completed_at set: {s}");
    }
    let documents = d["documents"].as_array().expect("documents in the detail");
    assert_eq!(documents.len(), 1, "{d}");
    assert_eq!(documents[0]["id"], doc);
    assert_eq!(documents[0]["verified"], true, "verified by the step: {d}");
    assert_eq!(documents[0]["status"], "verified", "{d}");
    assert!(documents[0]["verified_at"].is_string(), "{d}");
    let r = app
        .get(&format!("/api/documents/{doc}/"), Some(&anna.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["verified"], true, "{}", r.describe());

    let acts = mission_activities(&app, &anna, mission).await;
    assert_eq!(
        step_events(&acts, wait_step),
        ["in_progress", "completed"],
        "\n{}",
        summary(&acts)
    );
    assert_eq!(
        step_events(&acts, verify_step),
        ["in_progress", "completed"],
        "\n{}",
        summary(&acts)
    );
    assert_eq!(
        count_type(&acts, "mission_completed"),
        1,
        "\n{}",
        summary(&acts)
    );
    // In tree order: the wait, then the verification, then completion.
    let order = [
        position(&acts, "step_updated", Some((wait_step, "in_progress"))),
        position(&acts, "step_updated", Some((wait_step, "completed"))),
        position(&acts, "step_updated", Some((verify_step, "in_progress"))),
        position(&acts, "step_updated", Some((verify_step, "completed"))),
        position(&acts, "mission_completed", None),
    ];
    assert!(order.is_sorted(), "steps ran in order\n{}", summary(&acts));
    let verified = activities(
        &app,
        &anna,
        &format!("type=document_verified&document={doc}"),
    )
    .await;
    assert_eq!(
        verified.len(),
        1,
        "one document_verified\n{}",
        summary(&verified)
    );
    for a in acts.iter().filter(|a| a["type"] == "step_updated") {
        assert_eq!(a["user"], anna.id, "recorded for the owner: {a}");
    }
}

/// Pausing while step 1 runs: it finishes (result kept), step 2 does not
/// start while paused; resume continues to completion.
async fn pause_lets_the_running_step_finish_and_holds_the_next(app: TestApp) {
    let anna = app.register("anna").await;
    let (mission, steps) = mission_with_steps(&app, &anna, "Pausable", &[wait(2), wait(1)]).await;
    let (first, second) = (steps[0], steps[1]);
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    await_step(
        &app,
        &anna,
        mission,
        first,
        "in_progress",
        "the first step starts",
    )
    .await;
    act_ok(&app, &anna, mission, "pause", "paused").await;

    // The running step finishes and keeps its result.
    let d = await_step(
        &app,
        &anna,
        mission,
        first,
        "completed",
        "a step already running when the mission is paused finishes",
    )
    .await;
    assert_eq!(d["status"], "paused", "{d}");
    assert_eq!(d["progress"], 50, "{d}");

    // The next one stays pending while paused (checked several times).
    for _ in 0..6 {
        let d = detail(&app, &anna, mission).await;
        assert_eq!(d["status"], "paused", "{d}");
        assert_eq!(
            step_status(&d, second),
            "pending",
            "no new step while paused: {d}"
        );
        assert_eq!(step_status(&d, first), "completed", "result kept: {d}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let acts = mission_activities(&app, &anna, mission).await;
    assert!(
        step_events(&acts, second).is_empty(),
        "\n{}",
        summary(&acts)
    );

    act_ok(&app, &anna, mission, "resume", "in_progress").await;
    let d = await_status(&app, &anna, mission, "completed", DEADLINE).await;
    assert_eq!(d["progress"], 100, "{d}");
    assert_eq!(step_status(&d, first), "completed");
    assert_eq!(step_status(&d, second), "completed");
    let acts = mission_activities(&app, &anna, mission).await;
    assert_eq!(
        step_events(&acts, first),
        ["in_progress", "completed"],
        "\n{}",
        summary(&acts)
    );
    assert_eq!(
        step_events(&acts, second),
        ["in_progress", "completed"],
        "\n{}",
        summary(&acts)
    );
    assert!(
        position(&acts, "mission_resumed", None)
            < position(&acts, "step_updated", Some((second, "in_progress"))),
        "step 2 started after the resume\n{}",
        summary(&acts)
    );
}

/// `[manual, wait 1]`: the manual step waits for the user's PATCH, then the
/// wait runs and the mission completes.
async fn manual_step_waits_for_the_user(app: TestApp) {
    let anna = app.register("anna").await;
    let (mission, steps) = mission_with_steps(
        &app,
        &anna,
        "Manual first",
        &[json!({"kind": "manual"}), wait(1)],
    )
    .await;
    let (manual, timer) = (steps[0], steps[1]);
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    for _ in 0..6 {
        let d = detail(&app, &anna, mission).await;
        assert_eq!(d["status"], "in_progress", "{d}");
        assert_eq!(
            step_status(&d, manual),
            "pending",
            "a manual step waits for the user: {d}"
        );
        assert_eq!(
            step_status(&d, timer),
            "pending",
            "nothing runs past a manual step: {d}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    let r = app
        .patch_json(
            &format!("/api/missions/{mission}/steps/{manual}/"),
            &json!({"status": "completed"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    let d = await_status(&app, &anna, mission, "completed", DEADLINE).await;
    assert_eq!(d["progress"], 100, "{d}");
    assert_eq!(step_status(&d, timer), "completed", "{d}");
    let acts = mission_activities(&app, &anna, mission).await;
    assert_eq!(
        step_events(&acts, timer),
        ["in_progress", "completed"],
        "\n{}",
        summary(&acts)
    );
    assert_eq!(
        count_type(&acts, "mission_completed"),
        1,
        "\n{}",
        summary(&acts)
    );
}

/// With private networks allowed, `fetch_url` downloads into a new document
/// of the mission, named from `Content-Disposition`.
async fn fetch_url_downloads_into_the_mission(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__JOBS__ALLOW_PRIVATE_NETWORKS", "true")],
    )
    .await;
    let files = FileServer::start(|_| Reply::Full);
    let anna = app.register("anna").await;
    let url = files.url("/exports/latest?format=txt");
    let (mission, steps) = mission_with_steps(
        &app,
        &anna,
        "Fetch",
        &[json!({"kind": "fetch_url", "url": url})],
    )
    .await;
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    let d = await_status(&app, &anna, mission, "completed", DEADLINE).await;
    assert_eq!(d["progress"], 100, "{d}");
    assert_eq!(step_status(&d, steps[0]), "completed", "{d}");
    assert_eq!(
        files.requests(),
        ["GET /exports/latest?format=txt HTTP/1.1"]
    );

    let documents = d["documents"].as_array().expect("documents");
    assert_eq!(documents.len(), 1, "one fetched document: {d}");
    let document = &documents[0];
    assert_eq!(document["original_filename"], "report.txt", "{document}");
    assert_eq!(document["size"], REPORT.len(), "{document}");
    assert_eq!(document["sha256"], hex(&sha256(REPORT)), "{document}");
    assert_eq!(document["mission"], mission, "{document}");
    assert_eq!(
        document["owner"], anna.id,
        "owned by the mission's owner: {document}"
    );
    assert!(
        document["content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/plain")),
        "sniffed as text: {document}"
    );
    let r = app
        .get(
            &format!("/api/documents/{}/download/", id_of(document)),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(
        r.text.as_bytes(),
        REPORT,
        "the stored bytes are the served ones"
    );
}

/// By default a loopback URL is refused for good: the step and the mission
/// fail with the reason, nothing is contacted; `start` retries (and fails
/// again the same way).
async fn fetch_url_refuses_private_addresses_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let files = FileServer::start(|_| Reply::Full);
    let anna = app.register("anna").await;
    let (mission, steps) = mission_with_steps(
        &app,
        &anna,
        "SSRF",
        &[
            json!({"kind": "fetch_url", "url": files.url("/report")}),
            wait(1),
        ],
    )
    .await;
    let (fetch, after) = (steps[0], steps[1]);
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    let d = await_status(&app, &anna, mission, "failed", DEADLINE).await;
    assert_eq!(step_status(&d, fetch), "failed", "{d}");
    assert_eq!(
        step_status(&d, after),
        "pending",
        "nothing runs after a failed step: {d}"
    );
    assert_eq!(d["documents"], json!([]), "{d}");
    let acts = mission_activities(&app, &anna, mission).await;
    let failed: Vec<&Value> = acts
        .iter()
        .filter(|a| a["type"] == "mission_failed")
        .collect();
    assert_eq!(failed.len(), 1, "\n{}", summary(&acts));
    // The user reads the class of the failure, never the address; the
    // log keeps it, with the job.
    assert_eq!(
        failed[0]["details"]["error"], "the address is not allowed",
        "mission_failed details.error gives the reason, not the address: {}",
        failed[0]
    );
    assert_no_leak(&acts, &["127.0.0.1", &files.addr.port().to_string()]);
    let log = app.server_log();
    assert!(
        log.lines().any(|line| line.contains("fetch_url failed")
            && line.contains("advance_mission")
            && line.contains("127.0.0.1 is a private or local address")),
        "the log keeps the detail with the job:\n{log}"
    );
    // Refused for good: no retry of the step.
    assert_eq!(
        step_events(&acts, fetch),
        ["in_progress", "failed"],
        "\n{}",
        summary(&acts)
    );
    assert!(
        files.requests().is_empty(),
        "the address was never contacted: {:?}",
        files.requests()
    );

    // `start` on the failed mission retries from the failed step.
    let m = act_ok(&app, &anna, mission, "start", "in_progress").await;
    assert_eq!(m["id"], mission);
    let until = Instant::now() + DEADLINE;
    let acts = loop {
        let acts = mission_activities(&app, &anna, mission).await;
        if count_type(&acts, "mission_failed") >= 2 {
            break acts;
        }
        assert!(
            Instant::now() < until,
            "the retried mission did not fail again\n{}",
            summary(&acts)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = await_status(&app, &anna, mission, "failed", DEADLINE).await;
    assert_eq!(step_status(&d, fetch), "failed", "{d}");
    assert_eq!(
        step_events(&acts, fetch),
        ["in_progress", "failed", "in_progress", "failed"],
        "the failed step was reset and run again\n{}",
        summary(&acts)
    );
    let last = acts
        .iter()
        .rfind(|a| a["type"] == "mission_failed")
        .expect("mission_failed");
    assert_eq!(
        last["details"]["error"], "the address is not allowed",
        "same reason: {last}"
    );
    assert!(files.requests().is_empty(), "{:?}", files.requests());

    // A host name resolving to loopback is refused the same way.
    let (other, _) = mission_with_steps(
        &app,
        &anna,
        "SSRF by name",
        &[json!({"kind": "fetch_url", "url": format!("http://localhost:{}/report", files.addr.port())})],
    )
    .await;
    act_ok(&app, &anna, other, "start", "in_progress").await;
    await_status(&app, &anna, other, "failed", DEADLINE).await;
    let acts = mission_activities(&app, &anna, other).await;
    let failed = &acts[position(&acts, "mission_failed", None)];
    assert_eq!(
        failed["details"]["error"], "the address is not allowed",
        "{failed}"
    );
    assert_no_leak(
        &acts,
        &["localhost", "127.0.0.1", &files.addr.port().to_string()],
    );
    assert!(
        app.server_log()
            .contains("localhost resolves to a private or local address"),
        "{}",
        app.server_log()
    );
    assert!(files.requests().is_empty(), "{:?}", files.requests());
}

/// Every text a user can read in these activities (messages and details,
/// but not ids or timestamps, where digits of a port could occur by chance)
/// is free of `words`.
fn assert_no_leak(activities: &[Value], words: &[&str]) {
    fn texts(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => out.push(text.to_lowercase()),
            Value::Array(items) => items.iter().for_each(|item| texts(item, out)),
            Value::Object(map) => map.values().for_each(|item| texts(item, out)),
            _ => {}
        }
    }
    for activity in activities {
        let mut found = vec![
            activity["message"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase(),
        ];
        texts(&activity["details"], &mut found);
        for text in &found {
            for word in words {
                assert!(
                    !text.contains(&word.to_lowercase()),
                    "{word:?} leaked into an activity: {activity}"
                );
            }
        }
    }
}

/// A server that does not answer (a closed port, a name that does not
/// resolve) fails the step with "the server did not answer" once its
/// retries are spent; neither the address, the port nor the system's
/// error text reaches the user. The log has them.
async fn fetch_url_failures_name_no_host_address_or_cause(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__JOBS__ALLOW_PRIVATE_NETWORKS", "true")],
    )
    .await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
        // Dropped: nothing listens there any more.
    };
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let (refused, _) = mission_with_steps(
        &app,
        &anna,
        "Closed port",
        &[json!({"kind": "fetch_url", "url": format!("http://127.0.0.1:{closed}/report.pdf")})],
    )
    .await;
    let (unknown, _) = mission_with_steps(
        &app,
        &ben,
        "Unknown host",
        &[json!({"kind": "fetch_url", "url": "https://nonexistent.invalid/report.pdf"})],
    )
    .await;
    act_ok(&app, &anna, refused, "start", "in_progress").await;
    act_ok(&app, &ben, unknown, "start", "in_progress").await;
    // Both are retried with backoff (about 30 s for five attempts).
    let retries = Duration::from_secs(150);
    for (user, mission, words) in [
        (
            &anna,
            refused,
            vec![
                "127.0.0.1".to_owned(),
                format!(":{closed}"),
                "refused".to_owned(),
                "connect".to_owned(),
            ],
        ),
        (
            &ben,
            unknown,
            vec![
                "nonexistent".to_owned(),
                "invalid".to_owned(),
                "dns".to_owned(),
                "lookup".to_owned(),
                "resolve".to_owned(),
            ],
        ),
    ] {
        let d = await_status(&app, user, mission, "failed", retries).await;
        assert_eq!(d["documents"], json!([]), "{d}");
        let acts = mission_activities(&app, user, mission).await;
        let failed = &acts[position(&acts, "mission_failed", None)];
        assert_eq!(
            failed["details"]["error"], "the server did not answer",
            "{failed}"
        );
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_no_leak(&acts, &words);
    }
    let log = app.server_log();
    assert!(
        log.lines().any(|line| line.contains("fetch_url failed")
            && line.contains("advance_mission")
            && line.contains(&format!("127.0.0.1:{closed}"))),
        "the log keeps the address with the job:\n{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("fetch_url failed") && line.contains("nonexistent.invalid")),
        "the log keeps the host name:\n{log}"
    );
}

/// `start`/`resume` enqueue their job in the same transaction: a success
/// adds exactly one `advance_mission` row, a refused action adds none.
async fn enqueue_commits_with_the_change_or_not_at_all(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let anna = app.register("anna").await;
    let (a, _) = mission_with_steps(&app, &anna, "A", &[wait(1)]).await;
    let (b, _) = mission_with_steps(&app, &anna, "B", &[wait(1)]).await;
    let (c, c_steps) = mission_with_steps(&app, &anna, "C", &[wait(1), wait(1)]).await;
    assert_eq!(
        mission_jobs(&app, a),
        0,
        "creating a mission enqueues nothing"
    );

    // A successful start: +1 row for that mission, committed with the 200.
    let before = all_jobs(&app);
    act_ok(&app, &anna, a, "start", "in_progress").await;
    assert_eq!(
        all_jobs(&app),
        before + 1,
        "start enqueued one job\n{}",
        job_table(&app)
    );
    assert_eq!(mission_jobs(&app, a), 1, "\n{}", job_table(&app));
    assert_eq!(job_state(&app, a), "queued|", "\n{}", job_table(&app));

    // Refused transitions leave the queue as it was.
    act_ok(&app, &anna, a, "complete", "completed").await;
    let settled = all_jobs(&app);
    for action in ["start", "resume", "pause"] {
        act(&app, &anna, a, action).await.assert_status(409);
        assert_eq!(
            all_jobs(&app),
            settled,
            "{action} on a completed mission\n{}",
            job_table(&app)
        );
    }
    act_ok(&app, &anna, b, "cancel", "cancelled").await;
    let settled = all_jobs(&app);
    for action in ["start", "resume"] {
        act(&app, &anna, b, action).await.assert_status(409);
        assert_eq!(
            all_jobs(&app),
            settled,
            "{action} on a cancelled mission\n{}",
            job_table(&app)
        );
    }
    act(&app, &anna, c, "resume").await.assert_status(409);
    assert_eq!(
        all_jobs(&app),
        settled,
        "resume on a pending mission\n{}",
        job_table(&app)
    );
    assert_eq!(mission_jobs(&app, b), 0);
    assert_eq!(mission_jobs(&app, c), 0);

    // Start of C enqueues its run (it has automated steps).
    act_ok(&app, &anna, c, "start", "in_progress").await;
    assert_eq!(all_jobs(&app), settled + 1, "\n{}", job_table(&app));
    assert_eq!(mission_jobs(&app, c), 1);
    // A refused step change under a running mission enqueues nothing.
    let r = app
        .patch_json(
            &format!("/api/missions/{c}/steps/{}/", c_steps[0]),
            &json!({"title": "renamed", "parent": c_steps[0]}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400);
    assert_eq!(
        all_jobs(&app),
        settled + 1,
        "a refused step change\n{}",
        job_table(&app)
    );
    act_ok(&app, &anna, c, "pause", "paused").await;
    let paused = all_jobs(&app);
    act(&app, &anna, c, "pause").await.assert_status(409);
    assert_eq!(all_jobs(&app), paused, "\n{}", job_table(&app));
    act_ok(&app, &anna, c, "resume", "in_progress").await;
    // The run queued by start has not been taken yet: it will see the
    // resume too, so resume adds none (one queued run per mission).
    assert_eq!(
        all_jobs(&app),
        paused,
        "resume coalesced with the queued run\n{}",
        job_table(&app)
    );
    assert_eq!(
        count(
            &app,
            &format!("WHERE mission_id = {c} AND kind = 'advance_mission' AND status = 'queued'")
        ),
        1,
        "\n{}",
        job_table(&app)
    );
    // No workers ran: nothing moved.
    let d = detail(&app, &anna, c).await;
    assert_eq!(step_status(&d, c_steps[0]), "pending", "{d}");
}

/// A worker SIGKILLed mid-job leaves the job `running` with a lease; once
/// the lease lapses another worker process takes it over and the mission
/// completes.
///
/// The job is held mid-run by a `fetch_url` step whose server stalls on the
/// first request (a `wait` step's job is `running` only for milliseconds: the
/// timer is a requeue with a later `run_at`, so killing "while running"
/// could not be arranged reliably with it).
async fn a_killed_workers_job_runs_again_after_its_lease(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let files = FileServer::start(|n| if n == 0 { Reply::Stall } else { Reply::Full });
    let anna = app.register("anna").await;
    let (mission, steps) = mission_with_steps(
        &app,
        &anna,
        "Lease",
        &[
            json!({"kind": "fetch_url", "url": files.url("/report")}),
            wait(1),
        ],
    )
    .await;
    let (fetch, timer) = (steps[0], steps[1]);
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    let worker_env = [
        ("AUTODOCS__JOBS__LEASE_SECONDS", "2"),
        ("AUTODOCS__JOBS__POLL_INTERVAL_MS", "50"),
        ("AUTODOCS__JOBS__WORKERS", "1"),
        ("AUTODOCS__JOBS__ALLOW_PRIVATE_NETWORKS", "true"),
    ];
    let mut first = app.spawn_worker(&worker_env).await;

    // The first worker holds the job: it is downloading from the stalled server.
    let until = Instant::now() + DEADLINE;
    loop {
        let state = job_state(&app, mission);
        if files.requests().len() == 1
            && state.starts_with("running|")
            && state.len() > "running|".len()
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "the first worker never took the job (state {state:?}, requests {:?})\n{}\n--- worker ---\n{}",
            files.requests(),
            job_table(&app),
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = detail(&app, &anna, mission).await;
    assert_eq!(step_status(&d, fetch), "in_progress", "{d}");

    first.kill();
    let state = job_state(&app, mission);
    assert!(
        state.starts_with("running|"),
        "a killed worker's job keeps its lease: {state}"
    );
    let _second = app.spawn_worker(&worker_env).await;
    let d = await_status(&app, &anna, mission, "completed", DEADLINE).await;
    assert_eq!(step_status(&d, fetch), "completed", "{d}");
    assert_eq!(step_status(&d, timer), "completed", "{d}");
    assert_eq!(
        files.requests().len(),
        2,
        "fetched again by the second worker"
    );
    let documents = d["documents"].as_array().expect("documents");
    assert_eq!(
        documents.len(),
        1,
        "one document, from the completed download: {d}"
    );
    assert_eq!(documents[0]["sha256"], hex(&sha256(REPORT)), "{d}");
    let acts = mission_activities(&app, &anna, mission).await;
    assert_eq!(
        step_events(&acts, fetch),
        ["in_progress", "completed"],
        "the taken-over step continued, not restarted\n{}",
        summary(&acts)
    );
    assert_eq!(
        step_events(&acts, timer),
        ["in_progress", "completed"],
        "\n{}",
        summary(&acts)
    );
    assert_eq!(
        count_type(&acts, "mission_completed"),
        1,
        "\n{}",
        summary(&acts)
    );
}

/// Two worker processes (4 threads each) on one PostgreSQL queue: 20
/// missions complete and no step is started twice.
#[tokio::test]
async fn two_worker_processes_never_run_a_job_twice_at_once() {
    if !crate::harness::postgres_configured() {
        println!("skipped: PostgreSQL only (TEST_DATABASE_URL not set)");
        return;
    }
    let app = TestApp::spawn_with_env(
        Backend::Postgres,
        &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")],
    )
    .await;
    let anna = app.register("anna").await;
    let mut missions = Vec::new();
    for i in 0..20 {
        let (mission, steps) =
            mission_with_steps(&app, &anna, &format!("Batch {i}"), &[wait(1)]).await;
        missions.push((mission, steps[0]));
    }
    for (mission, _) in &missions {
        act_ok(&app, &anna, *mission, "start", "in_progress").await;
    }
    assert_eq!(
        count(&app, "WHERE kind = 'advance_mission'"),
        20,
        "\n{}",
        job_table(&app)
    );
    let worker_env = [
        ("AUTODOCS__JOBS__WORKERS", "4"),
        ("AUTODOCS__JOBS__POLL_INTERVAL_MS", "50"),
    ];
    let _one = app.spawn_worker(&worker_env).await;
    let _two = app.spawn_worker(&worker_env).await;

    for (mission, step) in &missions {
        let d = await_status(&app, &anna, *mission, "completed", Duration::from_secs(60)).await;
        assert_eq!(step_status(&d, *step), "completed", "{d}");
    }
    for (mission, step) in &missions {
        let acts = mission_activities(&app, &anna, *mission).await;
        assert_eq!(
            step_events(&acts, *step),
            ["in_progress", "completed"],
            "mission {mission}: the step started exactly once\n{}",
            summary(&acts)
        );
        assert_eq!(
            count_type(&acts, "mission_completed"),
            1,
            "\n{}",
            summary(&acts)
        );
    }
    // Every job ends done, none dead.
    let until = Instant::now() + DEADLINE;
    while count(&app, "WHERE kind = 'advance_mission' AND status <> 'done'") > 0 {
        assert!(
            Instant::now() < until,
            "jobs left unfinished\n{}",
            job_table(&app)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&app, "WHERE kind = 'advance_mission'"),
        20,
        "\n{}",
        job_table(&app)
    );
}

/// A download that takes about three leases (lease 2 s, ~6 s of trickle)
/// with two worker processes: the worker renews its lease while it works,
/// so the other never takes the job over; the server is asked once and the
/// mission gets one document.
async fn a_long_fetch_keeps_its_lease_and_runs_once(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let files = FileServer::start(|_| Reply::Trickle(110));
    let anna = app.register("anna").await;
    let (mission, steps) = mission_with_steps(
        &app,
        &anna,
        "Long fetch",
        &[json!({"kind": "fetch_url", "url": files.url("/report")})],
    )
    .await;
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    let worker_env = [
        ("AUTODOCS__JOBS__LEASE_SECONDS", "2"),
        ("AUTODOCS__JOBS__POLL_INTERVAL_MS", "50"),
        ("AUTODOCS__JOBS__WORKERS", "2"),
        ("AUTODOCS__JOBS__ALLOW_PRIVATE_NETWORKS", "true"),
        ("AUTODOCS__JOBS__FETCH_MIN_BYTES_PER_SECOND", "0"),
    ];
    let _one = app.spawn_worker(&worker_env).await;
    let _two = app.spawn_worker(&worker_env).await;
    let d = await_status(&app, &anna, mission, "completed", DEADLINE).await;
    assert_eq!(step_status(&d, steps[0]), "completed", "{d}");
    assert_eq!(
        files.requests().len(),
        1,
        "fetched once: the lease was renewed while it ran\n{}",
        job_table(&app)
    );
    let documents = d["documents"].as_array().expect("documents");
    assert_eq!(documents.len(), 1, "one document: {d}");
    assert_eq!(documents[0]["sha256"], hex(&sha256(REPORT)), "{d}");
    assert_eq!(
        count(&app, "WHERE kind = 'advance_mission' AND attempts > 1"),
        0,
        "no run was taken over\n{}",
        job_table(&app)
    );
}

/// Anna's three missions each download from a slow server (~11 s each);
/// with the default two workers, Bob's mission (a 1 s timer, then a
/// verification) still completes promptly, while Anna's are still running.
async fn one_users_slow_fetches_do_not_delay_another_users_mission(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__JOBS__ALLOW_PRIVATE_NETWORKS", "true"),
            ("AUTODOCS__JOBS__FETCH_MIN_BYTES_PER_SECOND", "0"),
            ("AUTODOCS__JOBS__WORKERS", "2"),
        ],
    )
    .await;
    let files = FileServer::start(|_| Reply::Trickle(200));
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;
    let mut slow = Vec::new();
    for i in 0..3 {
        let (mission, _) = mission_with_steps(
            &app,
            &anna,
            &format!("Slow {i}"),
            &[json!({"kind": "fetch_url", "url": files.url(&format!("/report-{i}"))})],
        )
        .await;
        act_ok(&app, &anna, mission, "start", "in_progress").await;
        slow.push(mission);
    }
    // Anna's downloads are under way before Bob starts.
    let until = Instant::now() + DEADLINE;
    while files.requests().is_empty() {
        assert!(
            Instant::now() < until,
            "no download started\n{}",
            job_table(&app)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (quick, _) = mission_with_steps(
        &app,
        &bob,
        "Quick",
        &[wait(1), json!({"kind": "verify_documents"})],
    )
    .await;
    let started = Instant::now();
    act_ok(&app, &bob, quick, "start", "in_progress").await;
    await_status(&app, &bob, quick, "completed", Duration::from_secs(6)).await;
    let took = started.elapsed();
    let anna_running = {
        let mut running = 0;
        for mission in &slow {
            if detail(&app, &anna, *mission).await["status"] == "in_progress" {
                running += 1;
            }
        }
        running
    };
    assert!(
        anna_running >= 2,
        "Anna's slow downloads were still running while Bob's mission ran ({took:?})\n{}",
        job_table(&app)
    );
    assert!(
        files.requests().len() <= 2,
        "Anna never held more than one worker while Bob waited: {:?}",
        files.requests()
    );
}

/// With the default minimum rate (1024 bytes/s) and a 1 s grace, a server
/// sending ~10 bytes/s is cut off: the run fails with a message naming the
/// rate (and is retried later), instead of holding the worker for the
/// whole download.
async fn a_fetch_slower_than_the_minimum_rate_is_aborted(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__JOBS__ALLOW_PRIVATE_NETWORKS", "true"),
            ("AUTODOCS__JOBS__FETCH_MIN_RATE_GRACE_SECONDS", "1"),
        ],
    )
    .await;
    let files = FileServer::start(|_| Reply::Trickle(100));
    let anna = app.register("anna").await;
    let (mission, steps) = mission_with_steps(
        &app,
        &anna,
        "Too slow",
        &[json!({"kind": "fetch_url", "url": files.url("/report")})],
    )
    .await;
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    let started = Instant::now();
    let until = started + DEADLINE;
    while count(&app, "WHERE last_error LIKE '%slower than 1024 bytes/s%'") == 0 {
        assert!(
            Instant::now() < until,
            "the slow download was not aborted\n{}\n{}",
            job_table(&app),
            app.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The whole report would take ~5.6 s at this pace.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "aborted after the grace, not at the end: {:?}",
        started.elapsed()
    );
    let d = detail(&app, &anna, mission).await;
    assert_eq!(
        step_status(&d, steps[0]),
        "in_progress",
        "retried later: {d}"
    );
    assert!(d["documents"].as_array().is_some_and(Vec::is_empty), "{d}");
    assert!(
        app.server_log().contains("job failed"),
        "failures are logged at WARN\n{}",
        app.server_log()
    );
}
