//! Database outages (issue 11, item 4): while the database is gone every
//! endpoint answers 503 with the contract's body and `Retry-After`, quickly,
//! never a 500; once it is back the server serves again within seconds,
//! without a restart, and its events and jobs work again.
//!
//! The PostgreSQL test runs a cluster of its own (`initdb`/`pg_ctl` from the
//! Debian packages) on a free port in a temporary directory, stops it under
//! load and starts it again. It needs `TEST_DATABASE_URL` (the PostgreSQL
//! suites are enabled) and the binaries; otherwise it says why and skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Backend, Registered, Resp, TestApp, TestDb, postgres_configured};
use crate::missions::{MISSIONS, mission_url, new_mission};

/// Where Debian's PostgreSQL 15 server binaries live.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The body of every 503 (API.md, Errors).
fn unavailable_body() -> Value {
    json!({"detail": "Service temporarily unavailable.", "code": "service_unavailable"})
}

/// A generous bound on any answer while the database is down: the pool
/// gives up within a couple of seconds, never the client's patience.
const MAX_ANSWER: Duration = Duration::from_secs(6);

/// How long the server may take to serve again once the database is back.
const MAX_RECOVERY: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// A PostgreSQL cluster of the test's own
// ---------------------------------------------------------------------------

/// A throwaway PostgreSQL cluster, stopped and removed when dropped (also
/// when the test panics).
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    /// The server refuses to run as root: commands run as `postgres` then.
    as_postgres: bool,
}

impl Cluster {
    /// Why the cluster cannot run here, if it cannot.
    fn unavailable_reason() -> Option<String> {
        if !postgres_configured() {
            return Some("TEST_DATABASE_URL not set".to_owned());
        }
        for tool in ["initdb", "pg_ctl"] {
            if !Path::new(PG_BIN).join(tool).exists() {
                return Some(format!(
                    "{PG_BIN}/{tool} not found (Debian's postgresql-15)"
                ));
            }
        }
        if running_as_root()
            && !Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|out| out.status.success())
        {
            return Some(
                "running as root and there is no `postgres` user to run the server".into(),
            );
        }
        None
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a PostgreSQL binary (as `postgres` when we are root).
    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let program = format!("{PG_BIN}/{tool}");
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", &program]);
            command
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"))
    }

    fn init() -> Cluster {
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("autodocs-outage-")
            .tempdir()
            .expect("create a temporary directory");
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let cluster = Cluster {
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data();
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("UTF-8 path"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            crate::harness::describe(&out)
        );
        cluster.start();
        cluster
    }

    fn start(&self) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("UTF-8 path"),
                "-l",
                log.to_str().expect("UTF-8 path"),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n--- server log ---\n{}",
            crate::harness::describe(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `mode`: `immediate` (a crash: connections cut) or `fast`.
    fn stop(&self, mode: &str) -> std::process::Output {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("UTF-8 path"),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "stop",
            ],
        )
    }
}

/// PostgreSQL refuses to run as root.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.stop("immediate");
        }
    }
}

// ---------------------------------------------------------------------------
// Load: a few clients reading, writing, logging in and registering in a loop
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Login,
    Register,
}

#[derive(Debug)]
struct Sample {
    kind: Kind,
    at: Instant,
    status: u16,
    elapsed: Duration,
    body: Value,
    retry_after: Option<String>,
}

struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, user: &Registered) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        let mut tasks = Vec::new();
        for (index, kind) in [
            Kind::Read,
            Kind::Write,
            Kind::Login,
            Kind::Register,
            Kind::Read,
        ]
        .into_iter()
        .enumerate()
        {
            let (stop, samples, client) = (stop.clone(), samples.clone(), client.clone());
            let base = app.base_url.clone();
            let user = user.clone();
            tasks.push(tokio::spawn(async move {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let request = match kind {
                        Kind::Read => client
                            .get(format!("{base}{MISSIONS}?page_size=5"))
                            .bearer_auth(&user.access),
                        Kind::Write => client
                            .post(format!("{base}{MISSIONS}"))
                            .bearer_auth(&user.access)
                            .json(&json!({"title": format!("load {index}-{round}"), "type": "custom"})),
                        Kind::Login => client.post(format!("{base}/api/auth/login/")).json(
                            &json!({"username": user.username, "password": user.password}),
                        ),
                        Kind::Register => client.post(format!("{base}/api/auth/register/")).json(
                            &json!({
                                "username": format!("load{index}x{round}"),
                                "email": format!("load{index}x{round}@example.com"),
                                "password": user.password,
                            }),
                        ),
                    };
                    let request = request.build().expect("a well-formed request");
                    let (method, url) = (request.method().clone(), request.url().to_string());
                    let started = Instant::now();
                    let response = client.execute(request).await;
                    let elapsed = started.elapsed();
                    let (status, retry_after, body) = match response {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let retry_after = response
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let (code, headers) = (response.status(), response.headers().clone());
                            let bytes = response.bytes().await.unwrap_or_default();
                            // What clients see during an outage is in the schema too.
                            crate::conformance::check_response(
                                &method, &url, code, &headers, &bytes,
                            )
                            .await;
                            (status, retry_after, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                        }
                        // A transport failure is recorded as status 0 and fails the test.
                        Err(error) => (0, None, json!(error.to_string())),
                    };
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Sample {
                            kind,
                            at: started,
                            status,
                            elapsed,
                            body,
                            retry_after,
                        });
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }));
        }
        Load {
            stop,
            samples,
            tasks,
        }
    }

    /// The first moment after `since` from which read, write and login
    /// each succeeded at least once.
    fn recovered_at(&self, since: Instant) -> Option<Instant> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let mut latest = since;
        for kind in [Kind::Read, Kind::Write, Kind::Login] {
            let first = samples
                .iter()
                .filter(|s| s.kind == kind && s.at >= since && (200..300).contains(&s.status))
                .map(|s| s.at + s.elapsed)
                .min()?;
            latest = latest.max(first);
        }
        Some(latest)
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load task");
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A 503 of the contract: its JSON body and a `Retry-After`.
fn assert_unavailable(r: &Resp, context: &str) {
    assert_eq!(r.code(), 503, "{context}: {}", r.describe());
    assert_eq!(r.body, unavailable_body(), "{context}: {}", r.describe());
    let retry = r.header("retry-after");
    assert!(
        retry
            .as_deref()
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)),
        "{context}: Retry-After in seconds, got {retry:?}"
    );
}

/// Waits until the health check answers 200 (the database is reachable again).
async fn await_health(app: &TestApp, deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = app.get("/api/health/", None).await;
        if r.code() == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < deadline,
            "health still {} after {deadline:?}",
            r.describe()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a mission creation on `writer` until `socket` (on another
/// process) gets its `mission.updated` frame: the listener reconnected.
async fn await_cross_process_event(
    writer: &TestApp,
    reader: &TestApp,
    user: &Registered,
    deadline: Duration,
) -> Duration {
    let host = reader.base_url.trim_start_matches("http://");
    let url = format!("ws://{host}/ws/events/?token={}", user.access);
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("a handshake answer")
    .expect("the socket opens");
    let started = Instant::now();
    let mut attempt = 0;
    while started.elapsed() < deadline {
        attempt += 1;
        let title = format!("after the outage {attempt}");
        let r = writer
            .post_json(
                MISSIONS,
                &json!({"title": title, "type": "custom"}),
                Some(&user.access),
            )
            .await;
        if r.code() != 201 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, socket.next()).await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                if frame["event"] == "mission.updated" && frame["data"]["title"] == title {
                    return started.elapsed();
                }
            }
        }
    }
    panic!("no event crossed between the processes within {deadline:?} after the outage");
}

#[tokio::test]
async fn postgres_outage_is_503_then_recovers() {
    if let Some(reason) = Cluster::unavailable_reason() {
        println!("skipped: {reason}");
        return;
    }
    let test_started = Instant::now();
    let cluster = Cluster::init();
    let app = TestApp::spawn_on(
        TestDb::external(Backend::Postgres, &cluster.url()),
        &[("AUTODOCS__JOBS__POLL_INTERVAL_MS", "100")],
    )
    .await;
    let peer = app.spawn_peer_sharing_media().await;
    let alice = app.register("alice").await;
    app.get("/api/health/", None).await.assert_status(200);

    let load = Load::start(&app, &alice);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut recoveries = Vec::new();
    for mode in ["immediate", "fast"] {
        let out = cluster.stop(mode);
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode}: {}",
            crate::harness::describe(&out)
        );
        let stopped = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // While it is down: health, a write, a login, a read.
        let health = app.get("/api/health/", None).await;
        assert_eq!(
            health.code(),
            503,
            "health while down: {}",
            health.describe()
        );
        crate::harness::assert_keys(&health.body, &["status", "database"], "health while down");
        assert!(
            health.header("retry-after").is_some(),
            "health 503 has Retry-After"
        );
        let write = app
            .post_json(
                MISSIONS,
                &json!({"title": "down", "type": "custom"}),
                Some(&alice.access),
            )
            .await;
        assert_unavailable(&write, &format!("a write while down ({mode})"));
        assert_unavailable(
            &app.login(&alice.username, &alice.password).await,
            &format!("a login while down ({mode})"),
        );
        assert_unavailable(
            &app.get(MISSIONS, Some(&alice.access)).await,
            &format!("a read while down ({mode})"),
        );
        assert_unavailable(
            &app.refresh(&alice.refresh).await,
            &format!("a token refresh while down ({mode})"),
        );
        assert_unavailable(
            &peer.get(&mission_url(1), Some(&alice.access)).await,
            &format!("a read on the peer while down ({mode})"),
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let down_for = stopped.elapsed();

        cluster.start();
        let up = Instant::now();
        let health_after = await_health(&app, MAX_RECOVERY).await;
        let served_after = loop {
            if let Some(at) = load.recovered_at(up) {
                break at.duration_since(up);
            }
            assert!(
                up.elapsed() < MAX_RECOVERY,
                "reads, writes and logins did not all succeed within {MAX_RECOVERY:?} of the database's return ({mode})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!(
            "outage ({mode}, {down_for:.1?}): health 200 {health_after:.2?} and reads, writes, logins served {served_after:.2?} after the database was back"
        );
        recoveries.push(served_after);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let samples = load.finish().await;

    // Every answer under load: a success or the contract's 503, quickly.
    assert!(
        samples.len() > 50,
        "the load ran: {} requests",
        samples.len()
    );
    let mut unavailable = 0;
    for sample in &samples {
        assert!(
            sample.elapsed < MAX_ANSWER,
            "{:?} took {:?} (status {})",
            sample.kind,
            sample.elapsed,
            sample.status
        );
        match sample.status {
            200 | 201 => {}
            503 => {
                unavailable += 1;
                assert_eq!(sample.body, unavailable_body(), "{sample:?}");
                assert!(
                    sample
                        .retry_after
                        .as_deref()
                        .is_some_and(|v| v.parse::<u64>().is_ok()),
                    "a 503 without Retry-After: {sample:?}"
                );
            }
            _ => panic!("unexpected answer under an outage: {sample:?}"),
        }
    }
    assert!(unavailable > 0, "the outages were seen by the load");
    let slowest = samples.iter().map(|s| s.elapsed).max().unwrap_or_default();
    println!(
        "{} requests under load, {unavailable} answered 503, slowest answer {slowest:.2?}",
        samples.len()
    );

    // Events cross between processes again (the peer's listener reconnected).
    let crossed = await_cross_process_event(&app, &peer, &alice, MAX_RECOVERY).await;
    println!("an event crossed to the peer {crossed:.2?} after the load stopped");

    // Jobs run again: a started mission with a timer step completes by itself.
    let created = app
        .post_json(
            MISSIONS,
            &json!({"title": "jobs after the outage", "type": "custom",
                    "plan_steps": [{"title": "tick", "action": {"kind": "wait", "seconds": 1}}]}),
            Some(&alice.access),
        )
        .await;
    created.assert_status(201);
    let id = created.body["id"].as_i64().expect("an id");
    app.post_json(
        &format!("{}start/", mission_url(id)),
        &json!({}),
        Some(&alice.access),
    )
    .await
    .assert_status(200);
    let started = Instant::now();
    loop {
        let r = app.get(&mission_url(id), Some(&alice.access)).await;
        r.assert_status(200);
        if r.body["status"] == "completed" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the workers did not run the mission after the outage: {}",
            r.describe()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !app.server_log().contains("panicked"),
        "the server panicked:\n{}",
        app.server_log()
    );
    drop(peer);
    drop(app);
    drop(cluster);
    println!("outage test took {:.1?}", test_started.elapsed());
}

// ---------------------------------------------------------------------------
// SQLite: the file deleted or replaced under a running server
// ---------------------------------------------------------------------------

fn sqlite_files(app: &TestApp) -> Vec<PathBuf> {
    let main = app.db.sqlite_path().expect("a SQLite database");
    let wal = PathBuf::from(format!("{}-wal", main.display()));
    let shm = PathBuf::from(format!("{}-shm", main.display()));
    vec![main, wal, shm]
}

/// The server notices and refuses; nothing is written into a new file.
async fn assert_refuses(app: &TestApp, alice: &Registered, context: &str) {
    // The file is checked at most every 100 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = app.get("/api/health/", None).await;
    assert_eq!(
        health.code(),
        503,
        "{context}: health {}",
        health.describe()
    );
    crate::harness::assert_keys(&health.body, &["status", "database"], context);
    assert_unavailable(
        &app.post_json(
            MISSIONS,
            &json!({"title": "lost?", "type": "custom"}),
            Some(&alice.access),
        )
        .await,
        &format!("{context}: a write"),
    );
    assert_unavailable(
        &app.get(MISSIONS, Some(&alice.access)).await,
        &format!("{context}: a read"),
    );
    assert_unavailable(
        &app.login(&alice.username, &alice.password).await,
        &format!("{context}: a login"),
    );
}

#[tokio::test]
async fn sqlite_file_deleted_under_the_server_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.register("alice").await;
    new_mission(&app, &alice, "before").await;
    app.get("/api/health/", None).await.assert_status(200);
    let files = sqlite_files(&app);
    for file in &files {
        let _ = std::fs::remove_file(file);
    }
    assert_refuses(&app, &alice, "deleted").await;
    for file in &files {
        assert!(!file.exists(), "{} was recreated", file.display());
    }
}

#[tokio::test]
async fn sqlite_file_replaced_under_the_server_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.register("alice").await;
    new_mission(&app, &alice, "before").await;
    let files = sqlite_files(&app);
    // Another database file moved into place (a restore gone wrong).
    let other = app.db.dir.path().join("other.sqlite3");
    std::fs::copy(&files[0], &other).expect("copy the database file");
    std::fs::rename(&other, &files[0]).expect("replace the database file");
    assert_refuses(&app, &alice, "replaced").await;
    let count = app.db.query_value(
        "SELECT CAST(count(*) AS TEXT) AS value FROM missions_mission WHERE title = 'lost?'",
    );
    assert_eq!(
        count.as_deref(),
        Some("0"),
        "nothing was written into the new file"
    );
}
