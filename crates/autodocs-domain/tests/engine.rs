//! The job engine running plans on the in-memory adapter: `wait` steps
//! let time pass (the clock jumps to the next due job), `fetch_url` steps
//! download into the mission, `verify_documents` checks what it holds.

mod support;

use autodocs_domain::document::DocumentStatus;
use autodocs_domain::events::EventPayload;
use autodocs_domain::jobs::JobStatus;
use autodocs_domain::mission::{MissionAction, MissionStatus, Progress};
use autodocs_domain::plan_step::StepStatus;
use chrono::Duration;
use serde_json::json;
use support::{act, action, kinds_of, mission_activities, mission_with, planned, register, steps};

#[test]
fn a_plan_waits_fetches_and_verifies_then_completes_the_mission() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let url = "https://example.com/w2.pdf";
    memory
        .fetcher
        .register(url, b"%PDF-1.4\n%%EOF\n".to_vec(), "w2.pdf");
    let id = mission_with(
        &memory,
        anna,
        "Taxes",
        vec![
            planned("Wait").with_action(action(json!({"kind": "wait", "seconds": 60}))),
            planned("Fetch").with_action(action(json!({"kind": "fetch_url", "url": url}))),
            planned("Verify").with_action(action(json!({"kind": "verify_documents"}))),
        ],
    )
    .mission
    .id;
    let started = memory.services.now();
    act(&memory, anna, id, MissionAction::Start);

    let drained = memory.drain_jobs("worker", 100).expect("drained");

    assert!(drained.idle, "{drained:?}");
    assert!(drained.runs >= 3, "{drained:?}");
    assert!(
        memory.services.now() >= started + Duration::seconds(60),
        "the wait let a minute pass"
    );
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(detail.mission.status, MissionStatus::Completed);
    assert_eq!(detail.mission.progress, Progress::COMPLETE);
    let statuses: Vec<StepStatus> = steps(&memory, anna, id)
        .into_iter()
        .map(|step| step.status)
        .collect();
    assert_eq!(statuses, vec![StepStatus::Completed; 3]);
    let wait = &steps(&memory, anna, id)[0];
    let (wait_started, wait_done) = (
        wait.started_at.expect("started"),
        wait.completed_at.expect("completed"),
    );
    assert!(wait_done - wait_started >= Duration::seconds(60));
    assert_eq!(detail.documents.len(), 1);
    let document = &detail.documents[0];
    assert_eq!(document.original_filename.as_str(), "w2.pdf");
    assert_eq!(document.content_type, "application/pdf");
    assert_eq!(document.status, DocumentStatus::Verified);
    assert_eq!(
        memory.storage.bytes(&document.storage_key).as_deref(),
        Some(&b"%PDF-1.4\n%%EOF\n"[..])
    );
    let activities = mission_activities(&memory, anna, id);
    let kinds = kinds_of(&activities);
    for expected in [
        "mission_started",
        "document_uploaded",
        "document_verified",
        "mission_completed",
    ] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&"mission_completed"));
    assert!(memory.events.events().iter().any(|event| matches!(
        &event.payload,
        EventPayload::MissionUpdated(mission)
            if mission.id == id && mission.status == MissionStatus::Completed
    )));
    let jobs = memory.services.engine().list_jobs(None, 100).expect("jobs");
    assert!(
        jobs.iter()
            .filter(|job| job.mission == Some(id))
            .all(|job| job.status == JobStatus::Done),
        "{jobs:?}"
    );
}

#[test]
fn a_dead_download_fails_its_step_and_the_mission() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission_with(
        &memory,
        anna,
        "Taxes",
        vec![
            planned("Fetch").with_action(action(
                json!({"kind": "fetch_url", "url": "https://example.com/missing.pdf"}),
            )),
            planned("Verify").with_action(action(json!({"kind": "verify_documents"}))),
        ],
    )
    .mission
    .id;
    act(&memory, anna, id, MissionAction::Start);

    let drained = memory.drain_jobs("worker", 100).expect("drained");

    assert!(drained.idle, "{drained:?}");
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(detail.mission.status, MissionStatus::Failed);
    assert!(detail.documents.is_empty());
    let stored = steps(&memory, anna, id);
    assert_eq!(stored[0].status, StepStatus::Failed);
    assert!(stored[0].last_error.is_some());
    assert_eq!(stored[1].status, StepStatus::Pending, "never reached");
    let activities = mission_activities(&memory, anna, id);
    assert_eq!(kinds_of(&activities).last(), Some(&"mission_failed"));
}
