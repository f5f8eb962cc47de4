//! `autodocs dumpdata` / `autodocs loaddata`: a deployment moved between
//! SQLite and PostgreSQL keeps every row with its id and timestamps, and
//! its sequences; its users sign in afterwards and see what they saw. A
//! load is all or nothing, and never into a database that holds data.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{
    Backend, Registered, TestApp, TestDb, adjust_env, base_env, describe, files_in, media,
    postgres_configured, random_secret, run_cli,
};

backend_custom_tests!(
    loaddata_refuses_a_database_that_holds_data,
    loaddata_of_a_malformed_file_loads_nothing,
    loaddata_computes_identity_keys_a_file_lacks,
);

#[tokio::test]
async fn sqlite_to_sqlite() {
    round_trip(Backend::Sqlite, Backend::Sqlite).await;
}

#[tokio::test]
async fn sqlite_to_postgres() {
    if !postgres_configured() {
        println!("skipped: TEST_DATABASE_URL not set");
        return;
    }
    round_trip(Backend::Sqlite, Backend::Postgres).await;
}

#[tokio::test]
async fn postgres_to_sqlite() {
    if !postgres_configured() {
        println!("skipped: TEST_DATABASE_URL not set");
        return;
    }
    round_trip(Backend::Postgres, Backend::Sqlite).await;
}

/// The models in the order dumpdata writes them (then the sequences).
const MODELS: &[&str] = &[
    "auth.user",
    "users.userprofile",
    "missions.mission",
    "missions.planstep",
    "documents.document",
    "activities.activity",
    "jobs.job",
];

const SEQUENCE: &str = "autodocs.sequence";

const DOCUMENT_BYTES: &[u8] = b"Account 1234: statement for November.\n";

// ---------------------------------------------------------------------------
// The source deployment
// ---------------------------------------------------------------------------

/// What the source deployment holds, as its users saw it before the dump.
struct Source {
    app: TestApp,
    anna: Registered,
    boss: Registered,
    /// The first mission (steps, a document, a custom activity).
    taxes: i64,
    /// The highest mission id, deleted before the dump.
    deleted_mission: i64,
    document: i64,
    /// anna's `GET /api/missions/` results.
    missions: Value,
    /// anna's `GET /api/missions/{taxes}/`.
    taxes_detail: Value,
    /// anna's `GET /api/activities/` results.
    activities: Value,
    /// `GET /api/users/me/` of anna.
    anna_user: Value,
}

fn id_of(value: &Value) -> i64 {
    value["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("an integer id: {value}"))
}

async fn create_mission(app: &TestApp, user: &Registered, body: &Value) -> Value {
    let r = app
        .post_json("/api/missions/", body, Some(&user.access))
        .await;
    r.assert_status(201);
    r.body
}

/// Every step of a tree, depth first.
fn flatten(steps: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for step in steps.as_array().into_iter().flatten() {
        all.push(step.clone());
        all.extend(flatten(&step["children"]));
    }
    all
}

/// Users (one staff, made by `createsuperuser`), a profile, missions with a
/// step tree (one step moved under a later one, so its parent has a higher
/// id), a started mission with a completed step, a deleted mission (the
/// highest id: the sequence must not hand it out again), an uploaded
/// document attached to a mission, a custom activity with details.
async fn populate(app: TestApp) -> Source {
    let boss = app.create_superuser("boss").await;
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;

    app.patch_json(
        "/api/users/me/",
        &json!({
            "first_name": "Anna",
            "last_name": "Berg",
            "profile": {
                "phone": "+49 30 1234567",
                "organization": "Berg & Söhne",
                "bio": "Taxes.\nEvery year.",
                "timezone": "Europe/Berlin",
                "preferences": {"theme": "dark", "pinned": [1, 2], "ratio": 0.75},
            },
        }),
        Some(&anna.access),
    )
    .await
    .assert_status(200);

    let taxes = create_mission(
        &app,
        &anna,
        &json!({
            "title": "Retrieve Tax Documents",
            "description": "For the 2026 return.",
            "type": "document_retrieval",
            "priority": "urgent",
            "deadline": "2030-04-15T12:00:00.250000Z",
            "plan_steps": [
                {"title": "Collect", "children": [
                    {"title": "Collect W-2"},
                    {"title": "Collect 1099", "description": "from the bank"},
                ]},
                {"title": "Review"},
            ],
        }),
    )
    .await;
    let taxes = id_of(&taxes);
    let detail = app
        .get(&format!("/api/missions/{taxes}/"), Some(&anna.access))
        .await;
    detail.assert_status(200);
    let steps = flatten(&detail.body["plan_steps"]);
    let step = |title: &str| {
        id_of(
            steps
                .iter()
                .find(|step| step["title"] == title)
                .unwrap_or_else(|| panic!("step {title}: {steps:?}")),
        )
    };
    // A step moved under one created after it: its parent has a higher id.
    let later = app
        .post_json(
            &format!("/api/missions/{taxes}/steps/"),
            &json!({"title": "Sign and submit", "action": {"kind": "manual"}}),
            Some(&anna.access),
        )
        .await;
    later.assert_status(201);
    let review = step("Review");
    app.patch_json(
        &format!("/api/missions/{taxes}/steps/{review}/"),
        &json!({"parent": id_of(&later.body)}),
        Some(&anna.access),
    )
    .await
    .assert_status(200);
    app.post_json(
        &format!("/api/missions/{taxes}/start/"),
        &json!({}),
        Some(&anna.access),
    )
    .await
    .assert_status(200);
    app.patch_json(
        &format!("/api/missions/{taxes}/steps/{}/", step("Collect W-2")),
        &json!({"status": "completed"}),
        Some(&anna.access),
    )
    .await
    .assert_status(200);

    create_mission(
        &app,
        &anna,
        &json!({"title": "Verify IDs", "type": "document_verification", "priority": "low"}),
    )
    .await;
    create_mission(&app, &bob, &json!({"title": "Bob's", "type": "custom"})).await;
    let doomed =
        id_of(&create_mission(&app, &anna, &json!({"title": "Doomed", "type": "custom"})).await);
    app.delete(&format!("/api/missions/{doomed}/"), Some(&anna.access))
        .await
        .assert_status(204);

    let document =
        crate::documents::upload(&app, &anna, "statement.txt", "text/plain", DOCUMENT_BYTES).await;
    let document = id_of(&document);
    app.patch_json(
        &format!("/api/documents/{document}/"),
        &json!({"mission": taxes, "type": "bank_statement"}),
        Some(&anna.access),
    )
    .await
    .assert_status(200);
    app.post_json(
        "/api/activities/",
        &json!({
            "type": "note_added",
            "message": "Called the bank: \"statement on its way\"",
            "details": {"ticket": 42, "tags": ["bank", "ß"]},
            "mission": taxes,
        }),
        Some(&anna.access),
    )
    .await
    .assert_status(201);

    let missions = app
        .get("/api/missions/?page_size=100", Some(&anna.access))
        .await;
    missions.assert_status(200);
    let taxes_detail = app
        .get(&format!("/api/missions/{taxes}/"), Some(&anna.access))
        .await;
    taxes_detail.assert_status(200);
    assert_eq!(taxes_detail.body["document_count"], 1);
    assert_eq!(taxes_detail.body["steps_completed"], 1);
    let activities = app
        .get("/api/activities/?page_size=100", Some(&anna.access))
        .await;
    activities.assert_status(200);
    let me = app.get("/api/users/me/", Some(&anna.access)).await;
    me.assert_status(200);
    Source {
        app,
        anna,
        boss,
        taxes,
        deleted_mission: doomed,
        document,
        missions: missions.body["results"].clone(),
        taxes_detail: taxes_detail.body,
        activities: activities.body["results"].clone(),
        anna_user: me.body,
    }
}

/// `autodocs dumpdata` with these settings; its stdout.
async fn dump(env: &[(String, String)]) -> String {
    let out = run_cli(&["dumpdata"], env).await;
    assert!(out.status.success(), "dumpdata\n{}", describe(&out));
    String::from_utf8(out.stdout).expect("the dump is UTF-8")
}

/// The objects of a dump, checking its shape on the way: an array, one
/// object a line, models in dependency order, primary keys rising within
/// a model, then one sequence record a model.
fn objects(dump: &str) -> Vec<Value> {
    let parsed: Value = serde_json::from_str(dump).expect("the dump is JSON");
    let objects = parsed.as_array().expect("the dump is an array").clone();
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.first(), Some(&"["), "{dump}");
    assert_eq!(lines.last(), Some(&"]"), "{dump}");
    assert_eq!(lines.len(), objects.len() + 2, "one object a line:\n{dump}");
    let mut last: Option<(usize, i64)> = None;
    let rows = objects.iter().take_while(|o| o["model"] != SEQUENCE);
    for object in rows {
        let model = object["model"].as_str().expect("model");
        let rank = MODELS
            .iter()
            .position(|m| *m == model)
            .unwrap_or_else(|| panic!("an expected model: {object}"));
        let pk = object["pk"].as_i64().expect("integer pk");
        if let Some(previous) = last {
            assert!(previous < (rank, pk), "dependency then pk order: {object}");
        }
        last = Some((rank, pk));
        assert!(object["fields"].is_object(), "{object}");
    }
    let sequences: Vec<&Value> = objects.iter().filter(|o| o["model"] == SEQUENCE).collect();
    let named: Vec<&str> = sequences
        .iter()
        .map(|o| o["pk"].as_str().expect("a sequence names its model"))
        .collect();
    assert_eq!(named, MODELS, "one sequence a model, at the end");
    assert_eq!(
        objects.iter().rev().take(MODELS.len()).count(),
        sequences.len()
    );
    objects
}

fn of_model<'a>(objects: &'a [Value], model: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["model"] == model).collect()
}

fn sequence_of(objects: &[Value], model: &str) -> i64 {
    objects
        .iter()
        .find(|o| o["model"] == SEQUENCE && o["pk"] == model)
        .and_then(|o| o["fields"]["last_value"].as_i64())
        .unwrap_or_else(|| panic!("the sequence of {model}"))
}

/// What the dump of the source must hold, whatever the backend.
fn assert_dump_content(source: &Source, objects: &[Value]) {
    let users = of_model(objects, "auth.user");
    assert_eq!(users.len(), 3, "boss, anna, bob");
    for user in &users {
        let password = user["fields"]["password"].as_str().expect("password");
        assert!(
            password.starts_with("pbkdf2_sha256$"),
            "the password hash itself: {user}"
        );
        let joined = user["fields"]["date_joined"].as_str().expect("date_joined");
        assert!(
            joined.len() == "2026-11-25T10:00:00.123456Z".len()
                && crate::harness::is_rfc3339_utc(joined),
            "RFC 3339 UTC with microseconds: {joined}"
        );
    }
    let boss = users
        .iter()
        .find(|u| u["pk"] == source.boss.id)
        .expect("the superuser");
    assert_eq!(boss["fields"]["is_staff"], true);
    assert_eq!(boss["fields"]["is_superuser"], true);
    let profile = of_model(objects, "users.userprofile")
        .into_iter()
        .find(|p| p["fields"]["user"] == source.anna.id)
        .expect("anna's profile");
    assert_eq!(
        profile["fields"]["preferences"],
        json!({"theme": "dark", "pinned": [1, 2], "ratio": 0.75}),
        "JSON columns are nested JSON"
    );
    let missions = of_model(objects, "missions.mission");
    assert_eq!(missions.len(), 3, "the deleted mission is gone");
    let taxes = missions
        .iter()
        .find(|m| m["pk"] == source.taxes)
        .expect("the taxes mission");
    assert_eq!(taxes["fields"]["owner"], source.anna.id);
    assert_eq!(taxes["fields"]["deadline"], "2030-04-15T12:00:00.250000Z");
    assert_eq!(of_model(objects, "missions.planstep").len(), 5);
    let document = of_model(objects, "documents.document");
    assert_eq!(document.len(), 1);
    assert_eq!(document[0]["pk"], source.document);
    assert_eq!(document[0]["fields"]["mission"], source.taxes);
    assert!(!of_model(objects, "activities.activity").is_empty());
    assert_eq!(
        sequence_of(objects, "missions.mission"),
        source.deleted_mission,
        "the sequence remembers the deleted mission's id"
    );
    for ephemeral in ["auth.refreshtoken", "admin.session", "autodocs.instance"] {
        assert!(
            of_model(objects, ephemeral).is_empty(),
            "{ephemeral} is not dumped"
        );
    }
}

// ---------------------------------------------------------------------------
// The move
// ---------------------------------------------------------------------------

/// dumpdata on `from`, migrate + loaddata on a new `to` database, then the
/// target dumps the very same file, and a server on it serves the same
/// data to the same users with the same passwords.
async fn round_trip(from: Backend, to: Backend) {
    let source = populate(TestApp::spawn(from).await).await;
    let dumped = dump(&source.app.env).await;
    let source_objects = objects(&dumped);
    assert_dump_content(&source, &source_objects);

    // `--output` writes the same thing to a file.
    let file = source.app.db.dir.path().join("out.json");
    let out = source
        .app
        .cli(&["dumpdata", "--output", &file.display().to_string()], &[])
        .await;
    assert!(
        out.status.success(),
        "dumpdata --output\n{}",
        describe(&out)
    );
    let written = std::fs::read_to_string(&file).expect("the output file");
    assert_eq!(
        without_jobs(&written),
        without_jobs(&dumped),
        "the server's jobs may move on between two dumps; nothing else does"
    );

    let target = TestDb::new(to);
    let env = base_env(&target, &random_secret());
    let out = run_cli(&["migrate"], &env).await;
    assert!(out.status.success(), "migrate\n{}", describe(&out));
    // The documents' files move beside the data.
    copy_media(&media(&source.app), &target.dir.path().join("media"));
    let path = target.dir.path().join("data.json");
    std::fs::write(&path, &dumped).expect("write the dump");
    let out = run_cli(&["loaddata", &path.display().to_string()], &env).await;
    assert!(out.status.success(), "loaddata\n{}", describe(&out));
    let installed = format!(
        "Installed {} object(s)",
        source_objects.len() - MODELS.len()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&installed),
        "{installed}\n{}",
        describe(&out)
    );

    // Every row equal: the target dumps the same file, byte for byte.
    let again = dump(&env).await;
    assert_same_dump(&dumped, &again);

    // A server on the target: the same users, passwords, missions, ids.
    let app = TestApp::spawn_on(target, &[]).await;
    let login = app
        .login(&source.anna.username, &source.anna.password)
        .await;
    login.assert_status(200);
    let access = login.body["access"].as_str().expect("access").to_owned();
    let me = app.get("/api/users/me/", Some(&access)).await;
    me.assert_status(200);
    for key in [
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "date_joined",
        "profile",
    ] {
        assert_eq!(me.body[key], source.anna_user[key], "{key} of anna");
    }
    let missions = app.get("/api/missions/?page_size=100", Some(&access)).await;
    missions.assert_status(200);
    assert_eq!(
        missions.body["results"], source.missions,
        "anna's missions, ids, counts and timestamps"
    );
    let detail = app
        .get(&format!("/api/missions/{}/", source.taxes), Some(&access))
        .await;
    detail.assert_status(200);
    assert_eq!(detail.body["plan_steps"], source.taxes_detail["plan_steps"]);
    let without_urls = |documents: &Value| -> Vec<Value> {
        documents
            .as_array()
            .expect("documents")
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d["download_url"] = Value::Null;
                d
            })
            .collect()
    };
    assert_eq!(
        without_urls(&detail.body["documents"]),
        without_urls(&source.taxes_detail["documents"])
    );
    let download = app
        .get(
            &format!("/api/documents/{}/download/", source.document),
            Some(&access),
        )
        .await;
    download.assert_status(200);
    assert_eq!(download.text.as_bytes(), DOCUMENT_BYTES);

    let activities = app
        .get("/api/activities/?page_size=100", Some(&access))
        .await;
    activities.assert_status(200);
    let highest = source
        .activities
        .as_array()
        .expect("activities")
        .iter()
        .map(id_of)
        .max()
        .expect("some activities");
    let (new, old): (Vec<Value>, Vec<Value>) = activities.body["results"]
        .as_array()
        .expect("activities")
        .iter()
        .cloned()
        .partition(|a| id_of(a) > highest);
    assert_eq!(
        Value::from(old),
        source.activities,
        "the activity log moved"
    );
    assert!(
        new.iter().any(|a| a["type"] == "user_logged_in"),
        "the login is logged with a new id: {new:?}"
    );

    let boss = app
        .login(&source.boss.username, &source.boss.password)
        .await;
    boss.assert_status(200);
    assert_eq!(boss.body["user"]["is_staff"], true);
    app.login(&source.anna.username, "not-her-password")
        .await
        .assert_status(401);

    // New rows get fresh ids: after the deleted mission's, not the last kept.
    let created = app
        .post_json(
            "/api/missions/",
            &json!({"title": "After the move", "type": "custom"}),
            Some(&access),
        )
        .await;
    created.assert_status(201);
    assert_eq!(id_of(&created.body), source.deleted_mission + 1);
    let newcomer = app.register("newcomer").await;
    assert_eq!(newcomer.id, sequence_of(&source_objects, "auth.user") + 1);
}

/// Copies the stored files (`documents/`) of one media root into another.
fn copy_media(from: &Path, to: &Path) {
    let (from, to) = (from.join("documents"), to.join("documents"));
    std::fs::create_dir_all(&to).expect("create the media folder");
    for name in files_in(&from) {
        std::fs::copy(from.join(&name), to.join(&name)).expect("copy a stored file");
    }
}

/// A dump without its jobs, which a running server's workers change.
fn without_jobs(dump: &str) -> String {
    dump.lines()
        .filter(|line| {
            !line.contains(r#""model":"jobs.job""#) && !line.contains(r#""pk":"jobs.job""#)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Equal dumps, or the first line that differs.
fn assert_same_dump(expected: &str, actual: &str) {
    for (number, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        assert_eq!(a, e, "line {} of the dumps differs", number + 1);
    }
    assert_eq!(actual, expected, "the dumps differ in length");
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

/// Row counts of the dumped tables, to see that nothing changed.
fn counts(db: &TestDb) -> Vec<String> {
    [
        "auth_user",
        "users_userprofile",
        "missions_mission",
        "missions_planstep",
        "documents_document",
        "activities_activity",
    ]
    .iter()
    .map(|table| {
        db.query_value(&format!(
            "SELECT CAST(count(*) AS TEXT) AS value FROM {table}"
        ))
        .unwrap_or_default()
    })
    .collect()
}

async fn loaddata_refuses_a_database_that_holds_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anna = app.register("anna").await;
    create_mission(&app, &anna, &json!({"title": "Mine", "type": "custom"})).await;
    let before = dump(&app.env).await;
    let counted = counts(&app.db);
    let path = app.db.dir.path().join("data.json");
    std::fs::write(&path, &before).expect("write the dump");

    let out = app
        .cli(&["loaddata", &path.display().to_string()], &[])
        .await;
    assert!(!out.status.success(), "refused\n{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already holds data") && stderr.contains("auth_user"),
        "says why\n{}",
        describe(&out)
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line\n{}",
        describe(&out)
    );
    assert_eq!(counts(&app.db), counted, "nothing changed");
    assert_same_dump(&without_jobs(&before), &without_jobs(&dump(&app.env).await));

    // A database holding only a user that the file does not have is
    // refused just the same: loaddata never merges.
    let other = TestApp::spawn(backend).await;
    other.register("zoe").await;
    let out = other
        .cli(&["loaddata", &path.display().to_string()], &[])
        .await;
    assert!(!out.status.success(), "refused\n{}", describe(&out));
    assert_eq!(counts(&other.db)[0], "1");
}

/// Writes `objects` as dumpdata does (one a line) into `dir/name`.
fn write_objects(dir: &Path, name: &str, objects: &[Value]) -> PathBuf {
    let lines: Vec<String> = objects.iter().map(Value::to_string).collect();
    let path = dir.join(name);
    std::fs::write(&path, format!("[\n{}\n]\n", lines.join(",\n"))).expect("write a file");
    path
}

async fn loaddata_of_a_malformed_file_loads_nothing(backend: Backend) {
    let source = TestApp::spawn(backend).await;
    let anna = source.register("anna").await;
    source.register("bob").await;
    create_mission(
        &source,
        &anna,
        &json!({"title": "Steps", "type": "custom", "plan_steps": [{"title": "a"}, {"title": "b"}]}),
    )
    .await;
    let dumped = dump(&source.env).await;
    let good = objects(&dumped);
    let mission = good
        .iter()
        .position(|o| o["model"] == "missions.mission")
        .expect("a mission");
    let step = good
        .iter()
        .position(|o| o["model"] == "missions.planstep")
        .expect("a step");

    let target = TestDb::new(backend);
    let env = base_env(&target, &random_secret());
    let dir = target.dir.path();
    // Not migrated yet, where nothing migrates by itself: refused, and not
    // migrated behind the operator's back.
    let mut never_migrates = env.clone();
    adjust_env(
        &mut never_migrates,
        &[("AUTODOCS__DATABASE__AUTO_MIGRATE", "false")],
        &[],
    );
    let early = dir.join("early.json");
    std::fs::write(&early, &dumped).expect("write the dump");
    let out = run_cli(&["loaddata", &early.display().to_string()], &never_migrates).await;
    assert!(!out.status.success(), "refused\n{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run `autodocs migrate` first"),
        "{}",
        describe(&out)
    );
    let out = run_cli(&["migrate"], &env).await;
    assert!(out.status.success(), "migrate\n{}", describe(&out));

    let mut cases: Vec<(&str, PathBuf, Vec<String>)> = Vec::new();
    // Cut off in the middle of an object: the rows before it were
    // inserted, and must be gone.
    let cut = dumped.len() * 2 / 3;
    let truncated = dir.join("truncated.json");
    std::fs::write(&truncated, &dumped[..cut]).expect("write");
    cases.push((
        "truncated",
        truncated,
        vec!["not valid dumpdata JSON".into()],
    ));

    let mut unknown = good.clone();
    unknown.insert(
        unknown.len() - MODELS.len(),
        json!({"model": "auth.group", "pk": 1, "fields": {"name": "x"}}),
    );
    let line = unknown.len() - MODELS.len() + 1;
    cases.push((
        "unknown model",
        write_objects(dir, "unknown.json", &unknown),
        vec![
            "unknown model \"auth.group\"".into(),
            format!("(line {line})"),
        ],
    ));

    let mut bad_time = good.clone();
    bad_time[mission]["fields"]["created_at"] = json!("yesterday");
    cases.push((
        "bad timestamp",
        write_objects(dir, "time.json", &bad_time),
        vec![
            "missions.mission".into(),
            "invalid timestamp \"yesterday\"".into(),
            format!("(line {})", mission + 2),
        ],
    ));

    let mut dangling = good.clone();
    dangling[step]["fields"]["mission"] = json!(999);
    cases.push((
        "dangling foreign key",
        write_objects(dir, "dangling.json", &dangling),
        vec![
            format!("missions.planstep pk {}", good[step]["pk"]),
            "refused by the database".into(),
        ],
    ));

    let mut extra_field = good.clone();
    extra_field[0]["fields"]["groups"] = json!([]);
    cases.push((
        "unknown field",
        write_objects(dir, "field.json", &extra_field),
        vec!["unknown field `groups`".into(), "(line 2)".into()],
    ));

    let not_array = dir.join("object.json");
    std::fs::write(&not_array, good[0].to_string()).expect("write");
    cases.push((
        "not an array",
        not_array,
        vec!["not valid dumpdata JSON".into()],
    ));

    for (case, path, expected) in &cases {
        let out = run_cli(&["loaddata", &path.display().to_string()], &env).await;
        assert!(!out.status.success(), "{case}: refused\n{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("nothing was loaded"),
            "{case}\n{}",
            describe(&out)
        );
        for words in expected {
            assert!(
                stderr.contains(words.as_str()),
                "{case}: {words:?}\n{}",
                describe(&out)
            );
        }
        assert_eq!(counts(&target), vec!["0"; 6], "{case}: nothing was loaded");
    }

    // Still empty, so the good file loads, whole.
    let path = dir.join("good.json");
    std::fs::write(&path, &dumped).expect("write");
    let out = run_cli(&["loaddata", &path.display().to_string()], &env).await;
    assert!(out.status.success(), "loaddata\n{}", describe(&out));
    assert_eq!(counts(&target), counts(&source.db));
    assert_same_dump(&dumped, &dump(&env).await);
}

/// A file whose users carry no identity keys (written by hand, or by
/// another tool) still loads, and its users sign in: the keys are computed
/// as `migrate` computes them.
async fn loaddata_computes_identity_keys_a_file_lacks(backend: Backend) {
    let source = TestApp::spawn(backend).await;
    let anna = source.register("Anna.Berg").await;
    let mut stripped = objects(&dump(&source.env).await);
    for object in stripped.iter_mut().filter(|o| o["model"] == "auth.user") {
        let fields = object["fields"].as_object_mut().expect("fields");
        assert!(fields.remove("username_key").is_some(), "dumped: {object}");
        assert!(fields.remove("email_key").is_some());
    }
    // A new development database: loaddata migrates it first, as `serve`
    // would.
    let target = TestDb::new(backend);
    let env = base_env(&target, &random_secret());
    let path = write_objects(target.dir.path(), "keyless.json", &stripped);
    let out = run_cli(&["loaddata", &path.display().to_string()], &env).await;
    assert!(out.status.success(), "loaddata\n{}", describe(&out));
    assert_eq!(
        target
            .query_value("SELECT username_key AS value FROM auth_user")
            .as_deref(),
        Some("anna.berg")
    );
    let app = TestApp::spawn_on(target, &[]).await;
    app.login("ANNA.BERG", &anna.password)
        .await
        .assert_status(200);
    app.login(&anna.email, &anna.password)
        .await
        .assert_status(200);
}
