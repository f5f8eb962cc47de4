//! The storage sweep (issue 12, item 2): the media root is tied to its
//! database by a marker; the sweep refuses when the marker names another
//! database (or none) or the database has no documents; unreferenced files
//! are moved to quarantine, never deleted at once; `autodocs sweep
//! [--dry-run]` reports what it did or why it refused.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::harness::{
    Backend, Registered, TestApp, TestDb, base_env, describe, files_in, media, random_secret,
    run_cli, server_cpu_share,
};

backend_custom_tests!(
    a_server_on_an_empty_database_never_sweeps_a_copied_media_root,
    migrate_never_rebinds_a_media_root_of_another_database,
    unreferenced_files_go_to_quarantine_not_away,
);

const MARKER: &str = ".autodocs-instance";
const DAY: Duration = Duration::from_secs(24 * 3600);

fn backdate(path: &Path, age: Duration) {
    std::fs::File::open(path)
        .and_then(|file| file.set_modified(SystemTime::now() - age))
        .unwrap_or_else(|e| panic!("backdate {}: {e}", path.display()));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from)
        .expect("read the media root")
        .flatten()
    {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

fn identity(db: &TestDb) -> String {
    db.query_value("SELECT instance_id AS value FROM autodocs_instance")
        .expect("an identity row")
}

fn marker(root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join(MARKER))
        .ok()
        .map(|text| text.trim().to_owned())
}

async fn upload(app: &TestApp, user: &Registered, name: &str, body: &[u8]) -> Value {
    const BOUNDARY: &str = "----autodocs-sweep-test-boundary";
    let mut form = Vec::new();
    form.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend_from_slice(body);
    form.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let url = app.url("/api/documents/");
    let request = app
        .client()
        .post(&url)
        .bearer_auth(&user.access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form);
    let r = app.send(&reqwest::Method::POST, &url, request).await;
    r.assert_status(201);
    r.body.clone()
}

async fn download(app: &TestApp, user: &Registered, id: &Value) -> Vec<u8> {
    let url = app.url(&format!("/api/documents/{id}/download/"));
    let response = app
        .client()
        .get(&url)
        .bearer_auth(&user.access)
        .send()
        .await
        .expect("download");
    let (status, _, bytes) =
        crate::conformance::read_checked(&reqwest::Method::GET, &url, response).await;
    assert_eq!(status.as_u16(), 200);
    bytes
}

/// Waits until a maintenance `sweep_files` job has finished on `app`.
async fn maintenance_sweep_ran(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = app.cli(&["jobs", "list", "--status", "done"], &[]).await;
        if String::from_utf8_lossy(&out.stdout).contains("sweep_files") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no maintenance sweep finished within a minute\n{}\n{}",
            describe(&out),
            app.server_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The incident: server A's media root, copied (files old) next to a fresh
/// empty database; server B starts there with auto-migrate. Neither the
/// start-up sweep, `autodocs sweep`, nor the maintenance sweep touches a
/// file, and B says why.
async fn a_server_on_an_empty_database_never_sweeps_a_copied_media_root(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let anna = a.register("anna").await;
    for n in 0..3 {
        upload(&a, &anna, &format!("note{n}.txt"), b"keep me\n").await;
    }
    let a_identity = identity(&a.db);
    assert_eq!(
        marker(&media(&a)).as_deref(),
        Some(a_identity.as_str()),
        "serve's auto-migrate marks a new media root"
    );

    let copy = tempfile::tempdir().expect("a directory for the copy");
    let root = copy.path().join("media");
    copy_dir(&media(&a), &root);
    let stored = files_in(&root.join("documents"));
    assert_eq!(stored.len(), 3);
    for name in &stored {
        backdate(&root.join("documents").join(name), 30 * DAY);
    }
    drop(a);

    let root_setting = root.display().to_string();
    let b =
        TestApp::spawn_with_env(backend, &[("AUTODOCS__STORAGE__MEDIA_ROOT", &root_setting)]).await;
    let out = b.cli(&["sweep"], &[]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refusal exits 1\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("refused:") && stdout.contains(&a_identity),
        "it prints why: {}",
        describe(&out)
    );
    maintenance_sweep_ran(&b).await;

    assert_eq!(
        files_in(&root.join("documents")),
        stored,
        "every file is still there"
    );
    assert!(
        !root.join(".quarantine").exists(),
        "nothing was quarantined"
    );
    assert_eq!(
        marker(&root).as_deref(),
        Some(a_identity.as_str()),
        "the marker is never rebound"
    );
    let log = b.server_log();
    assert!(
        log.contains("refusing to sweep") && log.contains(&a_identity),
        "B's log says it refuses and why:\n{log}"
    );
    assert!(
        log.contains("marked for another database"),
        "B's migrate warns:\n{log}"
    );

    // A refusal is a finished maintenance job, not a failure to retry: no
    // sweep is dead, and the server settles.
    let out = b.cli(&["jobs", "list", "--status", "dead"], &[]).await;
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("sweep_files"),
        "a refused sweep is not a dead job\n{}",
        describe(&out)
    );
    let share = server_cpu_share(&b, Duration::from_secs(3)).await;
    assert!(
        share < 0.05,
        "after refusing, the server used {:.1}% of a core over 3 s",
        share * 100.0
    );
}

/// `migrate` on a second database over a marked media root warns and
/// leaves the marker alone; over an unmarked media root holding files it
/// does not reference, it does not mark it, and the sweep refuses.
async fn migrate_never_rebinds_a_media_root_of_another_database(backend: Backend) {
    let first = TestDb::new(backend);
    let env = base_env(&first, &random_secret());
    let out = run_cli(&["migrate"], &env).await;
    assert!(out.status.success(), "{}", describe(&out));
    let root = first.dir.path().join("media");
    let first_identity = identity(&first);
    assert_eq!(marker(&root).as_deref(), Some(first_identity.as_str()));

    let second = TestDb::new(backend);
    let mut other = base_env(&second, &random_secret());
    crate::harness::adjust_env(
        &mut other,
        &[("AUTODOCS__STORAGE__MEDIA_ROOT", &root.display().to_string())],
        &[],
    );
    let out = run_cli(&["migrate"], &other).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("marked for another database"),
        "{}",
        describe(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("marked"),
        "the warning goes to the log, not stdout\n{}",
        describe(&out)
    );
    assert_eq!(marker(&root).as_deref(), Some(first_identity.as_str()));
    assert_ne!(identity(&second), first_identity);

    // An old media root without marker, holding a file: not claimed.
    std::fs::remove_file(root.join(MARKER)).expect("remove the marker");
    let stranger = root.join("documents/5d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a");
    std::fs::create_dir_all(root.join("documents")).expect("documents");
    std::fs::write(&stranger, b"someone's").expect("write");
    backdate(&stranger, 30 * DAY);
    let out = run_cli(&["migrate"], &other).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not marking it"),
        "{}",
        describe(&out)
    );
    assert_eq!(marker(&root), None);
    let out = run_cli(&["sweep"], &other).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no marker"),
        "{}",
        describe(&out)
    );
    assert!(stranger.exists());
}

/// On the right database: an old unreferenced file is listed by a dry run,
/// then moved to quarantine (not deleted), at most the cap per sweep;
/// quarantined files go after the quarantine period; dead `.part` uploads
/// go at once; referenced documents are never touched.
async fn unreferenced_files_go_to_quarantine_not_away(backend: Backend) {
    // No background sweep racing the ones this test runs.
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let anna = app.register("anna").await;
    let document = upload(&app, &anna, "keep.txt", b"keep me\n").await;
    let root = media(&app);
    let documents = root.join("documents");
    let kept = files_in(&documents);
    assert_eq!(kept.len(), 1);
    // Old enough for any sweep, yet referenced.
    backdate(&documents.join(&kept[0]), 30 * DAY);

    let orphan = "5d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a";
    std::fs::write(documents.join(orphan), b"orphan").expect("write");
    backdate(&documents.join(orphan), DAY);
    let young = "6e4d3c2b-1a0f-4e9d-8c7b-6a5f4e3d2c1b";
    std::fs::write(documents.join(young), b"young").expect("write");
    let dead_upload = root.join(".tmp/0b4f0c1e-2f6a-4c55-9b1e-3f2d6f7a8b9c.part");
    std::fs::write(&dead_upload, b"half").expect("write");
    backdate(&dead_upload, Duration::from_secs(3600));

    let out = app.cli(&["sweep", "--dry-run"], &[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("would move to quarantine: documents/{orphan}")),
        "{}",
        describe(&out)
    );
    assert!(
        !stdout.contains(young) && !stdout.contains(&kept[0]),
        "{stdout}"
    );
    assert!(documents.join(orphan).exists(), "a dry run moves nothing");
    assert!(dead_upload.exists(), "a dry run deletes nothing");

    let out = app.cli(&["sweep"], &[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("moved to quarantine: documents/{orphan}")),
        "{}",
        describe(&out)
    );
    let quarantined = root.join(".quarantine/documents").join(orphan);
    assert_eq!(
        std::fs::read(&quarantined).expect("kept in quarantine"),
        b"orphan"
    );
    assert!(!documents.join(orphan).exists());
    assert!(documents.join(young).exists(), "young files are spared");
    assert!(!dead_upload.exists(), "a dead upload is deleted");
    assert_eq!(download(&app, &anna, &document["id"]).await, b"keep me\n");

    // The cap: two more orphans, one per sweep.
    for (name, body) in [
        ("7f5e4d3c-2b1a-4f0e-9d8c-7b6a5f4e3d2c", b"one"),
        ("8a6f5e4d-3c2b-4a1f-8e9d-8c7b6a5f4e3d", b"two"),
    ] {
        std::fs::write(documents.join(name), body).expect("write");
        backdate(&documents.join(name), DAY);
    }
    let out = app
        .cli(&["sweep"], &[("AUTODOCS__STORAGE__SWEEP_MAX_FILES", "1")])
        .await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("moved to quarantine").count(), 1, "{stdout}");
    assert!(stdout.contains("left for the next sweep: 1"), "{stdout}");
    assert_eq!(files_in(&root.join(".quarantine/documents")).len(), 2);

    // After the quarantine period, quarantined files are deleted.
    backdate(&quarantined, 8 * DAY);
    let out = app.cli(&["sweep"], &[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("deleted from quarantine: documents/{orphan}")),
        "{}",
        describe(&out)
    );
    assert!(!quarantined.exists());
    assert_eq!(files_in(&root.join(".quarantine/documents")).len(), 2);

    // The referenced document survived every sweep.
    assert!(documents.join(&kept[0]).exists());
    assert_eq!(download(&app, &anna, &document["id"]).await, b"keep me\n");
}
