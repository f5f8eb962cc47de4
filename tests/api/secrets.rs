//! The JWT signing key (issue 12, item 1): no key in the repository works;
//! unset outside production, a random key is generated once and kept in
//! `auth.secret_key_file` (0600) so processes and restarts agree; production
//! refuses to start without a key of at least 32 bytes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

/// The key `config/default.toml` used to ship: it must sign nothing valid.
const OLD_REPOSITORY_KEY: &str = "django-insecure-dev-only-change-me-autodocs-development-key";

/// The default `auth.secret_key_file`, under the working directory.
const KEY_FILE: &str = ".autodocs/secret_key";

/// The test settings without a secret key, reading the repository's config
/// directory although the process runs elsewhere.
fn keyless_env(db: &TestDb) -> Vec<(String, String)> {
    let mut env = base_env(db, "unused");
    let config = workspace_root().join("config");
    adjust_env(
        &mut env,
        &[("AUTODOCS_CONFIG_DIR", &config.display().to_string())],
        &["AUTODOCS__AUTH__SECRET_KEY"],
    );
    env
}

fn work_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("autodocs-api-secret-")
        .tempdir()
        .expect("create a working directory")
}

/// A server on `db` (which the caller keeps, so restarts find their data),
/// run from `dir`.
async fn serve_in(db: &TestDb, env: &[(String, String)], dir: &Path) -> TestApp {
    TestApp::start_in(
        db.backend,
        TestDb::external(db.backend, &db.url),
        env.to_vec(),
        String::new(),
        dir,
    )
    .await
}

fn read_key(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(KEY_FILE))
        .expect("the key file exists")
        .trim()
        .to_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

async fn me(app: &TestApp, token: &str) -> u16 {
    app.get("/api/users/me/", Some(token)).await.code()
}

/// Without `auth.secret_key`, three processes started at once in one
/// directory agree on one generated key (kept 0600), a restart keeps it,
/// the old repository key forges nothing, and the key is never printed.
async fn generated_key_is_kept_and_shared(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = work_dir();
    let mut env = keyless_env(&db);
    let out = run_cli_in(&["migrate"], &env, dir.path()).await;
    assert!(out.status.success(), "migrate\n{}", describe(&out));
    assert!(
        !dir.path().join(".autodocs").exists(),
        "migrate needs no key and creates none"
    );
    // Migrated once above: the three servers below must only race for the key.
    adjust_env(
        &mut env,
        &[("AUTODOCS__DATABASE__AUTO_MIGRATE", "false")],
        &[],
    );

    let (a, b, c) = tokio::join!(
        serve_in(&db, &env, dir.path()),
        serve_in(&db, &env, dir.path()),
        serve_in(&db, &env, dir.path()),
    );
    let key_path = dir.path().join(KEY_FILE);
    let key = read_key(dir.path());
    assert!(key.len() >= 32, "a generated key has at least 32 bytes");
    assert_ne!(key, OLD_REPOSITORY_KEY);
    #[cfg(unix)]
    assert_eq!(mode(&key_path), 0o600, "the key file is private");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(".autodocs"))
        .expect("list .autodocs")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "only the key file is left: {leftovers:?}"
    );

    let anna = a.register("anna").await;
    for (name, app) in [("first", &a), ("second", &b), ("third", &c)] {
        assert_eq!(
            me(app, &anna.access).await,
            200,
            "the {name} process accepts a token the first one issued"
        );
    }
    // Control: a token forged with the kept key is accepted, so the 401
    // below is about the key, not the forgery.
    let claims = jwt_claims(&anna.access);
    assert_eq!(me(&b, &forge_jwt(&key, &claims)).await, 200);
    let forged = forge_jwt(OLD_REPOSITORY_KEY, &claims);
    let r = b.get("/api/users/me/", Some(&forged)).await;
    r.assert_status(401).assert_json();

    let logs = [a.server_log(), b.server_log(), c.server_log()];
    for log in &logs {
        assert!(
            !log.contains(&key),
            "the key is never written to stdout or the log\n{log}"
        );
    }
    assert!(
        logs.iter().any(|log| log.contains(KEY_FILE)),
        "the log says where the generated key is kept\n{}",
        logs.join("\n---\n")
    );
    drop((a, b, c));

    // Restarted: the same key, so yesterday's tokens still verify.
    let restarted = serve_in(&db, &env, dir.path()).await;
    assert_eq!(me(&restarted, &anna.access).await, 200, "after a restart");
    assert_eq!(read_key(dir.path()), key, "the kept key is not replaced");
    assert!(!restarted.server_log().contains(&key));
    let forged = forge_jwt(OLD_REPOSITORY_KEY, &jwt_claims(&anna.access));
    restarted
        .get("/api/users/me/", Some(&forged))
        .await
        .assert_status(401);

    // A worker and the CLI in the same directory use that key too: none
    // of them replaces it.
    let out = run_cli_in(&["jobs", "list"], &env, dir.path()).await;
    assert!(out.status.success(), "jobs list\n{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&key));
    assert_eq!(read_key(dir.path()), key);
}

/// A key file `serve` would refuse (readable by others, empty, too short)
/// fails `check` and `serve` alike, with a message naming the file.
async fn unusable_key_files_are_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = work_dir();
    let env = keyless_env(&db);
    let key_path = dir.path().join(KEY_FILE);
    std::fs::create_dir_all(key_path.parent().expect("parent")).expect("mkdir");

    let mut cases: Vec<(&str, String, u32)> = vec![
        ("empty", String::new(), 0o600),
        ("31 bytes", "k".repeat(31), 0o600),
    ];
    if cfg!(unix) {
        cases.push(("world-readable", "k".repeat(64), 0o644));
    }
    for (what, content, file_mode) in cases {
        std::fs::write(&key_path, &content).expect("write the key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(file_mode))
                .expect("chmod");
        }
        let _ = file_mode;
        for command in ["check", "serve"] {
            let out = run_server_or_cli(command, &env, dir.path()).await;
            assert!(
                !out.status.success(),
                "{command} refuses a key file that is {what}\n{}",
                describe(&out)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("secret key file"),
                "{command}: the message names the key file ({what})\n{}",
                describe(&out)
            );
        }
        assert_eq!(
            std::fs::read_to_string(&key_path).expect("still there"),
            content,
            "a refused key file is left as it was ({what})"
        );
    }

    // `check` with no key file yet passes and creates nothing.
    std::fs::remove_file(&key_path).expect("remove the key file");
    let out = run_cli_in(&["check"], &env, dir.path()).await;
    assert!(out.status.success(), "check\n{}", describe(&out));
    assert!(!key_path.exists(), "check never writes a key");
}

/// Runs `autodocs serve` (which must exit: it is expected to refuse) or a
/// CLI command from `dir`.
async fn run_server_or_cli(
    command: &str,
    env: &[(String, String)],
    dir: &Path,
) -> std::process::Output {
    if command != "serve" {
        return run_cli_in(&[command], env, dir).await;
    }
    let mut cmd = autodocs_command(env);
    cmd.current_dir(dir)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().expect("spawn autodocs serve");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("`autodocs serve` must exit, not run")
        .expect("wait for autodocs serve")
}

/// Production never generates nor reads a kept key: no key or a 31-byte
/// key refuses `check` and `serve`; a 32-byte key starts.
async fn production_needs_a_configured_key(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = work_dir();
    let mut env = keyless_env(&db);
    adjust_env(&mut env, &[("AUTODOCS_ENV", "production")], &[]);

    // A kept key file is ignored in production.
    let key_path = dir.path().join(KEY_FILE);
    std::fs::create_dir_all(key_path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&key_path, "k".repeat(64)).expect("write the key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    let short = "s".repeat(31);
    for (what, key) in [("no key", None), ("a 31-byte key", Some(short.as_str()))] {
        let mut env = env.clone();
        if let Some(key) = key {
            adjust_env(&mut env, &[("AUTODOCS__AUTH__SECRET_KEY", key)], &[]);
        }
        for command in ["check", "serve", "migrate"] {
            let out = run_server_or_cli(command, &env, dir.path()).await;
            assert!(
                !out.status.success(),
                "production {command} with {what} must fail\n{}",
                describe(&out)
            );
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("listening"),
                "production {command} with {what} must not listen\n{}",
                describe(&out)
            );
            let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
            assert!(
                stderr.contains("secret key") && stderr.contains("32"),
                "production {command} with {what} says the key needs 32 bytes\n{}",
                describe(&out)
            );
        }
    }

    // Without a key file, production still creates none.
    std::fs::remove_dir_all(dir.path().join(".autodocs")).expect("remove .autodocs");
    let out = run_server_or_cli("serve", &env, dir.path()).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        !dir.path().join(".autodocs").exists(),
        "production never generates a key"
    );

    let key = "p".repeat(32);
    adjust_env(&mut env, &[("AUTODOCS__AUTH__SECRET_KEY", &key)], &[]);
    // Migrated first: production's `check` fails while migrations are pending.
    for command in ["migrate", "check"] {
        let out = run_cli_in(&[command], &env, dir.path()).await;
        assert!(
            out.status.success(),
            "production {command} with a 32-byte key\n{}",
            describe(&out)
        );
    }
    let app = serve_in(&db, &env, dir.path()).await;
    let anna = app.register("anna").await;
    assert_eq!(me(&app, &anna.access).await, 200);
    let forged = forge_jwt(OLD_REPOSITORY_KEY, &jwt_claims(&anna.access));
    app.get("/api/users/me/", Some(&forged))
        .await
        .assert_status(401);
    assert!(!dir.path().join(".autodocs").exists());
}

backend_custom_tests!(
    generated_key_is_kept_and_shared,
    unusable_key_files_are_refused,
    production_needs_a_configured_key,
);

/// No file of the repository holds the key that used to be the default.
#[test]
fn the_repository_holds_no_key() {
    let root = workspace_root();
    let mut found = Vec::new();
    for dir in ["config", "crates", "docs", "bench", "migrations"] {
        scan(&root.join(dir), &mut found);
    }
    for file in ["README.md", "Makefile", "Cargo.toml"] {
        scan(&root.join(file), &mut found);
    }
    assert!(found.is_empty(), "the old key is still in {found:?}");
}

fn scan(path: &Path, found: &mut Vec<String>) {
    if path.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                if entry.file_name() != "target" {
                    scan(&entry.path(), found);
                }
            }
        }
    } else if let Ok(text) = std::fs::read_to_string(path)
        && text.contains("django-insecure")
    {
        found.push(path.display().to_string());
    }
}
