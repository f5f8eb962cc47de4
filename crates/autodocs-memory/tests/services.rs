//! The in-memory ports wired into the domain's use cases: what other
//! services' tests get from `autodocs_memory::services()`.

use autodocs_domain::AccountError;
use autodocs_domain::events::EventPayload;
use autodocs_domain::mission::{MissionAction, MissionStatus, MissionType, Title};
use autodocs_domain::plan_step::StepAction;
use autodocs_domain::usecases::auth::{RegisterInput, Registration};
use autodocs_domain::usecases::documents::{UploadDocument, UploadedPart};
use autodocs_domain::usecases::missions::{CreateMission, PlannedStep};
use autodocs_domain::usecases::sweep::MediaRootBinding;
use autodocs_domain::user::Principal;
use autodocs_memory::MemoryServices;
use chrono::Duration;
use serde_json::json;

const PASSWORD: &str = "violet-Harbor-1987";

fn register(memory: &MemoryServices, username: &str) -> Principal {
    let input = RegisterInput {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: PASSWORD.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    };
    let registration = Registration::parse(&input).expect("a valid registration");
    let session = memory
        .services
        .accounts()
        .register(registration)
        .expect("registered");
    Principal {
        user_id: session.user.id,
        is_staff: false,
    }
}

fn upload(
    memory: &MemoryServices,
    principal: Principal,
    bytes: &[u8],
    name: &str,
) -> autodocs_domain::DocumentId {
    let mut sink = memory.services.documents().begin_upload().expect("a sink");
    sink.write(bytes).expect("written");
    let staged = sink.finish().expect("received");
    let part = UploadedPart {
        filename: name.into(),
        declared_type: None,
        staged,
    };
    memory
        .services
        .documents()
        .upload(principal, UploadDocument::new(part))
        .expect("uploaded")
        .id
}

#[test]
fn login_refresh_rotation_and_reuse_detection() {
    let memory = autodocs_memory::services();
    let services = &memory.services;
    let anna = register(&memory, "anna");
    assert!(matches!(
        services.accounts().login("anna", "wrong password"),
        Err(AccountError::AuthenticationFailed)
    ));
    let session = services
        .accounts()
        .login("ANNA@example.com", PASSWORD)
        .expect("logged in");
    assert_eq!(session.user.id, anna.user_id);
    let principal = services
        .accounts()
        .authenticate(&session.tokens.access)
        .expect("a valid access token");
    assert_eq!(principal.user_id, anna.user_id);
    let rotated = services
        .accounts()
        .refresh(&session.tokens.refresh)
        .expect("rotated");
    // The old refresh token again: taken as theft, every token dies.
    assert!(
        services
            .accounts()
            .refresh(&session.tokens.refresh)
            .is_err()
    );
    assert!(services.accounts().refresh(&rotated.refresh).is_err());
    // Access tokens expire with the clock.
    memory.clock.advance(Duration::hours(1));
    assert!(services.accounts().authenticate(&rotated.access).is_err());
}

#[test]
fn uploads_are_measured_verified_and_swept() {
    let memory = autodocs_memory::services();
    let services = &memory.services;
    let anna = register(&memory, "anna");
    let text = upload(&memory, anna, b"Quarterly report\n", "report.txt");
    let document = services.documents().get(anna, text).expect("the document");
    assert_eq!(document.content_type, "text/plain");
    assert_eq!(document.size, 17);
    assert_eq!(document.sha256.len(), 64);
    let pdf = upload(&memory, anna, b"%PDF-1.4\n%%EOF\n", "w2.pdf");
    assert_eq!(
        services
            .documents()
            .get(anna, pdf)
            .expect("pdf")
            .content_type,
        "application/pdf"
    );
    let verified = services.documents().verify(anna, text).expect("verified");
    assert!(verified.verified());
    // The bytes vanish from storage: the next verification rejects it.
    let key = services
        .documents()
        .get(anna, pdf)
        .expect("pdf")
        .storage_key;
    assert!(memory.storage.bytes(&key).is_some());
    use autodocs_domain::ports::FileStorage;
    assert!(memory.storage.delete(&key).expect("deleted"));
    let rejected = services.documents().verify(anna, pdf).expect("judged");
    assert_eq!(rejected.verification_error, "File is missing from storage.");
    let updates = memory
        .events
        .events()
        .into_iter()
        .filter(|event| matches!(event.payload, EventPayload::DocumentUpdated(_)))
        .count();
    assert!(updates >= 3, "{updates} document.updated events");

    // The sweep: bound to this database, it quarantines an orphan file
    // once it is old enough, and purges it after the quarantine.
    assert!(matches!(
        services.sweep().bind_media_root().expect("bound"),
        MediaRootBinding::Bound(_)
    ));
    let orphan = memory.storage.put(b"orphan".to_vec()).expect("stored");
    let report = services.sweep().run(false).expect("swept");
    assert!(report.refused.is_none(), "{report:?}");
    assert!(report.quarantined.is_empty(), "too young: {report:?}");
    memory.clock.advance(Duration::hours(1));
    let report = services.sweep().run(false).expect("swept");
    assert_eq!(report.quarantined, vec![orphan.clone()]);
    memory.clock.advance(Duration::days(8));
    let report = services.sweep().run(false).expect("swept");
    assert_eq!(report.purged, vec![orphan]);
    assert_eq!(
        memory.storage.len(),
        1,
        "only the text document's bytes remain"
    );
}

#[test]
fn a_plan_runs_to_completion_and_a_dead_download_fails_the_mission() {
    let memory = autodocs_memory::services();
    let services = &memory.services;
    let anna = register(&memory, "anna");
    memory.fetcher.register(
        "https://example.com/w2.pdf",
        b"%PDF-1.4\n".to_vec(),
        "w2.pdf",
    );
    let create = |url: &str| {
        let step = |title: &str, action: serde_json::Value| {
            PlannedStep::new(Title::parse(title).expect("a title"))
                .with_action(StepAction::parse(&action).expect("an action"))
        };
        let draft = CreateMission::new(
            Title::parse("Taxes").expect("a title"),
            MissionType::DocumentRetrieval,
        )
        .with_plan(vec![
            step("Wait", json!({"kind": "wait", "seconds": 60})),
            step("Fetch", json!({"kind": "fetch_url", "url": url})),
            step("Verify", json!({"kind": "verify_documents"})),
        ]);
        let id = services
            .missions()
            .create(anna, draft)
            .expect("created")
            .mission
            .id;
        services
            .missions()
            .act(anna, id, MissionAction::Start)
            .expect("started");
        id
    };
    let good = create("https://example.com/w2.pdf");
    let bad = create("https://example.com/missing.pdf");
    let drained = memory.drain_jobs("test", 1_000).expect("drained");
    assert!(drained.idle, "{drained:?}");
    let good = services.missions().get(anna, good).expect("good");
    assert_eq!(good.mission.status, MissionStatus::Completed);
    assert_eq!(good.documents.len(), 1);
    assert!(good.documents[0].verified());
    let bad = services.missions().get(anna, bad).expect("bad");
    assert_eq!(bad.mission.status, MissionStatus::Failed, "{bad:?}");
    let jobs = services.engine().list_jobs(None, 100).expect("jobs");
    assert!(
        jobs.iter()
            .all(|job| job.status != autodocs_domain::jobs::JobStatus::Queued)
    );
}
