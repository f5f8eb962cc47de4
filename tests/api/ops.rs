//! Operations: health, request ids, error shapes of the router, trailing
//! slashes, CORS, the OpenAPI document, and the operator CLI.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::{
    Backend, TestApp, TestDb, adjust_env, autodocs_command, base_env, describe, random_secret,
    run_cli, run_cli_in,
};

const HEALTH: &str = "/api/health/";
const FRONTEND: &str = "http://localhost:3000";

backend_tests!(
    health_reports_ok,
    every_response_has_a_request_id,
    request_id_is_echoed,
    unknown_route_is_json_404,
    wrong_method_is_json_405,
    trailing_slash_is_optional,
    cors_preflight_allows_frontend_origin,
    cors_ignores_unknown_origin,
    schema_is_openapi_3,
);

backend_custom_tests!(
    check_accepts_valid_settings,
    migrate_is_idempotent,
    concurrent_requests_log_under_their_own_id,
    showmigrations_lists_applied_and_pending,
    json_logs_are_one_object_a_line,
);

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

async fn health_reports_ok(app: TestApp) {
    let r = app.get(HEALTH, None).await;
    r.assert_body(200, &json!({"status": "ok", "database": "ok"}));
    let r = app.get("/api/health", None).await;
    r.assert_body(200, &json!({"status": "ok", "database": "ok"}));
}

async fn every_response_has_a_request_id(app: TestApp) {
    let user = app.register("rid").await;
    let responses = vec![
        app.get(HEALTH, None).await,
        app.get("/api/nope/", None).await,
        app.get("/api/users/me/", None).await,
        app.get("/api/users/me/", Some(&user.access)).await,
        app.get("/api/users/", Some(&user.access)).await,
        app.raw(Method::PUT, "/api/auth/login/", &[], None).await,
        app.post_json("/api/auth/login/", &json!({}), None).await,
        app.post_json(
            "/api/auth/register/",
            &json!({"username": "rid2", "email": "rid2@example.com", "password": crate::harness::strong_password()}),
            None,
        )
        .await,
        app.post_json("/api/auth/logout/", &json!({"refresh": user.refresh}), None).await,
    ];
    let mut ids = HashSet::new();
    for r in &responses {
        let id = r.header("x-request-id");
        assert!(
            id.as_deref().is_some_and(|id| !id.trim().is_empty()),
            "X-Request-Id on every response\n{}",
            r.describe()
        );
        ids.insert(id.unwrap_or_default());
    }
    assert_eq!(
        ids.len(),
        responses.len(),
        "each request gets its own id: {ids:?}"
    );
}

async fn request_id_is_echoed(app: TestApp) {
    for path in [HEALTH, "/api/nope/", "/api/users/me/"] {
        let id = format!("frontend-{}", uuid::Uuid::new_v4());
        let r = app
            .raw(Method::GET, path, &[("x-request-id", id.as_str())], None)
            .await;
        assert_eq!(
            r.header("x-request-id").as_deref(),
            Some(id.as_str()),
            "echoed X-Request-Id\n{}",
            r.describe()
        );
    }
    let id = format!("post-{}", uuid::Uuid::new_v4().simple());
    let r = app
        .raw(
            Method::POST,
            "/api/auth/login/",
            &[
                ("x-request-id", id.as_str()),
                ("content-type", "application/json"),
            ],
            Some(br#"{"username": "x", "password": "y"}"#.to_vec()),
        )
        .await;
    r.assert_status(401);
    assert_eq!(r.header("x-request-id").as_deref(), Some(id.as_str()));
}

async fn unknown_route_is_json_404(app: TestApp) {
    let user = app.register("lost").await;
    app.get("/api/nope/", None).await.assert_not_found();
    app.get("/api/nope", None).await.assert_not_found();
    app.get("/api/nope/", Some(&user.access))
        .await
        .assert_not_found();
    app.post_json("/api/nope/", &json!({}), None)
        .await
        .assert_not_found();
    app.get("/api/users/me/extra/", Some(&user.access))
        .await
        .assert_not_found();
    app.get("/nope", None).await.assert_not_found();
}

async fn wrong_method_is_json_405(app: TestApp) {
    let user = app.register("meth").await;
    let cases = [
        (Method::PUT, "/api/auth/login/", None),
        (Method::GET, "/api/auth/login/", None),
        (Method::GET, "/api/auth/register/", None),
        (Method::DELETE, "/api/health/", None),
        (Method::DELETE, "/api/users/me/", Some(user.access.as_str())),
        (
            Method::GET,
            "/api/users/me/password/",
            Some(user.access.as_str()),
        ),
    ];
    for (method, path, token) in cases {
        let r = app.request(method.clone(), path, token, None).await;
        r.assert_body(
            405,
            &json!({"detail": format!("Method \"{}\" not allowed.", method.as_str())}),
        );
    }
}

async fn trailing_slash_is_optional(app: TestApp) {
    let user = app.register("slash").await;
    let with_slash = app.get("/api/users/me/", Some(&user.access)).await;
    with_slash.assert_status(200);
    let without = app.get("/api/users/me", Some(&user.access)).await;
    without.assert_status(200).assert_json();
    assert_eq!(without.body, with_slash.body);

    let r = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "slash", "password": user.password}),
            None,
        )
        .await;
    r.assert_status(200);
    let r = app
        .patch_json(
            "/api/users/me",
            &json!({"first_name": "Slash"}),
            Some(&user.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["first_name"], "Slash");
    let r = app
        .post_json(
            "/api/auth/token/refresh",
            &json!({"refresh": user.refresh}),
            None,
        )
        .await;
    r.assert_status(200);
    app.get("/api/users/me", None)
        .await
        .assert_unauthorized("not_authenticated");
}

async fn cors_preflight_allows_frontend_origin(app: TestApp) {
    for (path, method) in [("/api/auth/login/", "POST"), ("/api/users/me/", "PATCH")] {
        let r = app
            .raw(
                Method::OPTIONS,
                path,
                &[
                    ("origin", FRONTEND),
                    ("access-control-request-method", method),
                    (
                        "access-control-request-headers",
                        "authorization, content-type",
                    ),
                ],
                None,
            )
            .await;
        assert!(
            r.status.is_success(),
            "preflight succeeds\n{}",
            r.describe()
        );
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some(FRONTEND),
            "{}",
            r.describe()
        );
        assert_eq!(
            r.header("access-control-allow-credentials").as_deref(),
            Some("true"),
            "{}",
            r.describe()
        );
        let methods = r.header("access-control-allow-methods").unwrap_or_default();
        assert!(
            methods.to_ascii_uppercase().contains(method),
            "allows {method}: {methods:?}"
        );
        let headers = r
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "allows the requested headers: {headers:?}"
        );
    }
    // The actual request carries the CORS headers too.
    let r = app
        .raw(Method::GET, HEALTH, &[("origin", FRONTEND)], None)
        .await;
    r.assert_status(200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(FRONTEND)
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

async fn cors_ignores_unknown_origin(app: TestApp) {
    let evil = "http://evil.example";
    let r = app
        .raw(
            Method::OPTIONS,
            "/api/auth/login/",
            &[("origin", evil), ("access-control-request-method", "POST")],
            None,
        )
        .await;
    r.assert_not_5xx();
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "{}",
        r.describe()
    );
    assert_ne!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true"),
        "{}",
        r.describe()
    );
    let r = app
        .raw(Method::GET, HEALTH, &[("origin", evil)], None)
        .await;
    r.assert_not_5xx();
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "{}",
        r.describe()
    );
}

async fn schema_is_openapi_3(app: TestApp) {
    let r = app
        .raw(
            Method::GET,
            "/api/schema/",
            &[("accept", "application/json")],
            None,
        )
        .await;
    r.assert_status(200);
    assert!(r.is_json, "the schema is JSON\n{}", r.describe());
    let version = r.body["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi version {version:?}");
    let paths = r.body["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("paths is an object\n{}", r.describe()));
    for path in [
        "/api/auth/register/",
        "/api/auth/login/",
        "/api/auth/token/",
        "/api/auth/token/refresh/",
        "/api/auth/token/verify/",
        "/api/auth/logout/",
        "/api/users/",
        "/api/users/me/",
        "/api/users/me/password/",
        "/api/health/",
    ] {
        assert!(
            paths.contains_key(path),
            "schema documents {path}; has {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        paths.keys().any(|p| p.starts_with("/api/users/{")),
        "schema documents /api/users/{{id}}/"
    );
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

async fn check_accepts_valid_settings(backend: Backend) {
    let db = TestDb::new(backend);
    let env = base_env(&db, &random_secret());
    let out = run_cli(&["check"], &env).await;
    assert!(
        out.status.success(),
        "`autodocs check` with valid settings\n{}",
        describe(&out)
    );
}

async fn migrate_is_idempotent(backend: Backend) {
    let db = TestDb::new(backend);
    let env = base_env(&db, &random_secret());
    for run in 1..=2 {
        let out = run_cli(&["migrate"], &env).await;
        assert!(
            out.status.success(),
            "`autodocs migrate` run {run}\n{}",
            describe(&out)
        );
    }
    for table in ["auth_user", "users_userprofile", "auth_refreshtoken"] {
        let count = db.query_value(&format!(
            "SELECT CAST(count(*) AS TEXT) AS value FROM {table}"
        ));
        assert_eq!(count.as_deref(), Some("0"), "{table} exists and is empty");
    }
}

#[tokio::test]
async fn production_refuses_the_development_secret() {
    let db = TestDb::new(Backend::Sqlite);
    let mut env = base_env(&db, "unused");
    adjust_env(
        &mut env,
        &[("AUTODOCS_ENV", "production")],
        &["AUTODOCS__AUTH__SECRET_KEY"],
    );

    let out = run_cli(&["check"], &env).await;
    assert!(!out.status.success(), "check must fail\n{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("secret"),
        "stderr mentions the secret key\n{}",
        describe(&out)
    );

    // `serve` refuses to start (it must exit, not listen).
    let mut cmd = autodocs_command(&env);
    cmd.arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().expect("spawn autodocs serve");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("`autodocs serve` with the development secret in production must exit, not run")
        .expect("wait for autodocs serve");
    assert!(!out.status.success(), "serve must fail\n{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("listening"),
        "serve must not listen\n{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("secret"),
        "stderr mentions the secret key\n{}",
        describe(&out)
    );

    // Control: the same production settings with a real secret are accepted
    // (once migrated: production never migrates by itself).
    adjust_env(
        &mut env,
        &[("AUTODOCS__AUTH__SECRET_KEY", &random_secret())],
        &[],
    );
    let out = run_cli(&["migrate"], &env).await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = run_cli(&["check"], &env).await;
    assert!(
        out.status.success(),
        "production with a real secret key passes `check`\n{}",
        describe(&out)
    );
}

/// `autodocs showmigrations`: Django's `[X]`/`[ ]` list, oldest first.
async fn showmigrations_lists_applied_and_pending(backend: Backend) {
    let db = TestDb::new(backend);
    let env = base_env(&db, &random_secret());
    let listed = |out: &std::process::Output| -> Vec<String> {
        assert!(out.status.success(), "{}", describe(out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.starts_with(" ["))
            .map(str::to_owned)
            .collect()
    };
    let before = listed(&run_cli(&["showmigrations"], &env).await);
    assert!(before.len() >= 2, "{before:#?}");
    assert!(
        before.iter().all(|line| line.starts_with(" [ ] ")),
        "{before:#?}"
    );
    let out = run_cli(&["migrate"], &env).await;
    assert!(out.status.success(), "{}", describe(&out));
    let after = listed(&run_cli(&["showmigrations"], &env).await);
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|line| line.starts_with(" [X] ")),
        "{after:#?}"
    );
    let names = |lines: &[String]| -> Vec<String> {
        lines.iter().map(|line| line[5..].to_owned()).collect()
    };
    assert_eq!(names(&before), names(&after));
    let mut sorted = names(&after);
    sorted.sort();
    assert_eq!(names(&after), sorted, "oldest first");
}

/// With `log.format = "json"`, every line the server writes, on stdout and
/// stderr, the start-up line included, is one JSON object with a timestamp,
/// a level and a message; a request's lines carry its request id.
async fn json_logs_are_one_object_a_line(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__LOG__FORMAT", "json"), ("RUST_LOG", "info")],
    )
    .await;
    let user = app.register("anna").await;
    let r = app.get("/api/users/me/", Some(&user.access)).await;
    r.assert_status(200);
    let request_id = r.header("x-request-id").expect("a request id");
    app.get("/api/nope/", None).await.assert_status(404);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !app.server_log().contains(&request_id) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = app.server_log();
    let mut lines = 0;
    let mut with_the_id = 0;
    for line in log.lines() {
        let line = line.strip_prefix("[stdout] ").unwrap_or(line);
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON object ({error}): {line}\n{log}"));
        for field in ["timestamp", "level", "message"] {
            assert!(object.get(field).is_some(), "no {field}: {line}");
        }
        lines += 1;
        if line.contains(&request_id) {
            with_the_id += 1;
        }
    }
    assert!(
        log.contains("autodocs listening on"),
        "the start-up line: {log}"
    );
    assert!(lines >= 3, "{log}");
    assert!(with_the_id >= 1, "the request's line carries its id: {log}");
}

/// A folder of its own to run the binary from: no `config/` beside it.
fn foreign_directory() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("autodocs-foreign-")
        .tempdir()
        .expect("a temporary directory")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The production profile is built into the binary: from a directory with
/// no `config/`, production listens on 0.0.0.0:8000, needs its own key and
/// never migrates by itself (`check` fails while migrations are pending).
#[tokio::test]
async fn production_works_from_any_working_directory() {
    let dir = foreign_directory();
    let db = TestDb::new(Backend::Sqlite);
    let mut env = base_env(&db, &random_secret());
    adjust_env(
        &mut env,
        &[("AUTODOCS_ENV", "production")],
        &["AUTODOCS__SERVER__BIND"],
    );
    let out = run_cli_in(&["check"], &env, dir.path()).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr_of(&out).contains("run `autodocs migrate` first"),
        "pending migrations are named\n{}",
        describe(&out)
    );
    let out = run_cli_in(&["migrate"], &env, dir.path()).await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = run_cli_in(&["check"], &env, dir.path()).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("environment production"), "{stdout}");
    assert!(stdout.contains("would listen on 0.0.0.0:8000"), "{stdout}");
    assert!(
        std::fs::read_dir(dir.path())
            .expect("the folder")
            .next()
            .is_none(),
        "production wrote nothing in the working directory (no generated key, no database)"
    );
}

/// A misspelt key would otherwise be ignored in silence.
#[tokio::test]
async fn unknown_settings_are_refused_with_the_nearest_name() {
    let db = TestDb::new(Backend::Sqlite);
    let mut env = base_env(&db, &random_secret());
    adjust_env(&mut env, &[("AUTODOCS__SERVER__BND", "0.0.0.0:9")], &[]);
    let out = run_cli(&["check"], &env).await;
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("unknown setting server.bnd")
            && stderr.contains("did you mean server.bind?"),
        "{}",
        describe(&out)
    );
}

/// `DATABASE_URL` must name its engine: `notaurl` is refused (not made a
/// SQLite file), and an engine AutoDocs does not speak is named.
#[tokio::test]
async fn database_urls_that_name_no_engine_are_refused() {
    let dir = foreign_directory();
    let db = TestDb::new(Backend::Sqlite);
    for (url, says) in [
        ("notaurl", "is not a database URL"),
        (
            "mysql://localhost/autodocs",
            "uses mysql://, which AutoDocs does not support",
        ),
    ] {
        let mut env = base_env(&db, &random_secret());
        adjust_env(&mut env, &[("DATABASE_URL", url)], &[]);
        let out = run_cli_in(&["migrate"], &env, dir.path()).await;
        assert!(!out.status.success(), "{url}: {}", describe(&out));
        assert!(stderr_of(&out).contains(says), "{url}: {}", describe(&out));
    }
    assert!(
        !dir.path().join("notaurl").exists(),
        "no SQLite file was made of the word"
    );
}

/// Each way of not reaching the database says what it is, on one line,
/// from the first attempt (not a generic "invalid URL" after retries).
#[tokio::test]
async fn database_failures_name_their_cause() {
    let dir = foreign_directory();
    let db = TestDb::new(Backend::Sqlite);
    let missing_folder = format!("sqlite://{}/missing/autodocs.sqlite3", dir.path().display());
    let mut cases = vec![
        (missing_folder.as_str(), "folder"),
        // Nothing listens on port 1: refused at once.
        (
            "postgres://postgres@127.0.0.1:1/autodocs",
            "Connection refused",
        ),
    ];
    if crate::harness::postgres_configured() {
        cases.push((
            "postgres://postgres@127.0.0.1:5432/no_such_database_here",
            "does not exist",
        ));
    }
    for (url, says) in cases {
        let mut env = base_env(&db, &random_secret());
        adjust_env(&mut env, &[("DATABASE_URL", url)], &[]);
        let out = run_cli_in(&["check"], &env, dir.path()).await;
        assert!(!out.status.success(), "{url}: {}", describe(&out));
        let stderr = stderr_of(&out);
        assert!(stderr.contains(says), "{url}: {}", describe(&out));
        assert!(
            !stderr.contains("multiconnection"),
            "{url}: {}",
            describe(&out)
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    assert!(!dir.path().join("missing").exists(), "no folder was made");
}

/// `check` fails where `serve` could not keep files: a media root under a
/// file. A usable one is left as it was found.
#[tokio::test]
async fn check_refuses_an_unusable_media_root() {
    let dir = foreign_directory();
    let db = TestDb::new(Backend::Sqlite);
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").expect("a file");
    let media = blocker.join("media").display().to_string();
    let mut env = base_env(&db, &random_secret());
    adjust_env(&mut env, &[("AUTODOCS__STORAGE__MEDIA_ROOT", &media)], &[]);
    let out = run_cli_in(&["check"], &env, dir.path()).await;
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("the media root") && stderr.contains("is not a folder"),
        "{}",
        describe(&out)
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    let fresh = dir.path().join("new").join("media");
    let fresh_text = fresh.display().to_string();
    adjust_env(
        &mut env,
        &[("AUTODOCS__STORAGE__MEDIA_ROOT", &fresh_text)],
        &[],
    );
    let out = run_cli_in(&["check"], &env, dir.path()).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!dir.path().join("new").exists(), "check made no folder");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the folder")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("a-file")],
        "no probe left behind"
    );
}

/// An environment with no built-in profile needs its own file.
#[tokio::test]
async fn an_environment_without_a_profile_is_refused() {
    let dir = foreign_directory();
    let db = TestDb::new(Backend::Sqlite);
    let mut env = base_env(&db, &random_secret());
    adjust_env(&mut env, &[("AUTODOCS_ENV", "staging")], &[]);
    let out = run_cli_in(&["check"], &env, dir.path()).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr_of(&out).contains("AUTODOCS_ENV=staging names no profile"),
        "{}",
        describe(&out)
    );
    std::fs::write(dir.path().join("staging.toml"), "[jobs]\nworkers = 1\n").expect("a profile");
    let config_dir = dir.path().display().to_string();
    adjust_env(&mut env, &[("AUTODOCS_CONFIG_DIR", &config_dir)], &[]);
    let out = run_cli_in(&["check"], &env, dir.path()).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("environment staging"));
}

#[tokio::test]
async fn invalid_settings_fail_check() {
    let db = TestDb::new(Backend::Sqlite);
    let mut env = base_env(&db, &random_secret());
    adjust_env(&mut env, &[("AUTODOCS__UPLOADS__MAX_BYTES", "lots")], &[]);
    let out = run_cli(&["check"], &env).await;
    assert!(
        !out.status.success(),
        "check must reject a non-numeric uploads.max_bytes\n{}",
        describe(&out)
    );
    assert!(
        !out.stderr.is_empty(),
        "and say why on stderr\n{}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------
// Access log
// ---------------------------------------------------------------------------

/// Many requests in flight at once on few worker threads: each gets exactly
/// one access line, and that line carries its own request id (a span entered
/// across `.await` would lend one request's id to another's lines).
async fn concurrent_requests_log_under_their_own_id(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("RUST_LOG", "info")]).await;
    let user = app.register("tracer").await;
    let auth = format!("Bearer {}", user.access);
    const REQUESTS: usize = 48;
    let requests = (0..REQUESTS).map(|n| {
        let (app, auth) = (&app, auth.clone());
        async move {
            let id = format!("trace-{n:03}-id");
            let path = format!("/api/missions/?search=marker{n:03}");
            let r = app
                .raw(
                    Method::GET,
                    &path,
                    &[
                        ("x-request-id", id.as_str()),
                        ("authorization", auth.as_str()),
                    ],
                    None,
                )
                .await;
            r.assert_status(200);
            assert_eq!(r.header("x-request-id").as_deref(), Some(id.as_str()));
        }
    });
    futures_util::future::join_all(requests).await;

    // The access line is written once the response is on its way.
    let access_lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|line| line.contains("autodocs::access") && line.contains("trace-"))
            .map(str::to_owned)
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while access_lines(&app.server_log()).len() < REQUESTS && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = access_lines(&app.server_log());
    assert_eq!(
        lines.len(),
        REQUESTS,
        "one access line per request: {lines:#?}"
    );
    let mut seen = HashSet::new();
    for line in &lines {
        let n = line
            .split("request_id=trace-")
            .nth(1)
            .and_then(|rest| rest.get(..3))
            .unwrap_or_else(|| panic!("an access line without its request id: {line}"));
        assert!(
            line.contains(&format!("search=marker{n}")),
            "the line of request {n} shows another request's path: {line}"
        );
        assert!(
            line.contains("status=200") && line.contains("GET"),
            "{line}"
        );
        assert!(line.contains("latency_ms="), "{line}");
        assert!(
            seen.insert(n.to_owned()),
            "two lines for request {n}: {lines:#?}"
        );
    }
}
