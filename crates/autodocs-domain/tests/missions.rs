//! Missions on the in-memory adapter: creation with a nested plan, the
//! state machine's side effects, deletion, and who sees what.

mod support;

use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::error::MissionError;
use autodocs_domain::jobs::{JobKind, JobStatus};
use autodocs_domain::mission::{
    InvalidTransition, MissionAction, MissionChanges, MissionQuery, MissionStatus, Progress,
};
use autodocs_domain::plan_step::{StepAction, StepStatus};
use serde_json::json;
use support::{
    act, action, kinds_of, mission, mission_activities, mission_with, planned, register, staff,
    steps, title,
};

fn transition_error(error: MissionError) -> InvalidTransition {
    match error {
        MissionError::InvalidTransition(transition) => transition,
        other => panic!("expected an invalid transition, got {other:?}"),
    }
}

#[test]
fn create_mission_records_it_and_creates_the_plan_depth_first() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");

    let detail = mission_with(
        &memory,
        anna,
        "Retrieve Tax Documents",
        vec![
            planned("A").with_children(vec![
                planned("A1"),
                planned("A2").with_children(vec![planned("A2a")]),
            ]),
            planned("B").with_action(action(json!({"kind": "wait", "seconds": 30}))),
        ],
    );

    let id = detail.mission.id;
    assert_eq!(detail.mission.owner, anna.user_id);
    assert_eq!(detail.mission.status, MissionStatus::Pending);
    assert_eq!(detail.mission.title.as_str(), "Retrieve Tax Documents");
    // Stored depth first: ids grow in that order, each under its parent.
    let stored = steps(&memory, anna, id);
    let by_title = |text: &str| {
        stored
            .iter()
            .find(|step| step.title.as_str() == text)
            .expect("stored")
    };
    let shape: Vec<(&str, Option<&str>, i32, u8)> = stored
        .iter()
        .map(|step| {
            assert_eq!(step.mission, id);
            let parent = step.parent.map(|parent| {
                stored
                    .iter()
                    .find(|other| other.id == parent)
                    .expect("the parent is in the mission")
                    .title
                    .as_str()
            });
            (step.title.as_str(), parent, step.order, step.depth)
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("A", None, 0, 1),
            ("A1", Some("A"), 0, 2),
            ("A2", Some("A"), 1, 2),
            ("A2a", Some("A2"), 0, 3),
            ("B", None, 1, 1),
        ]
    );
    let ids: Vec<i64> = stored.iter().map(|step| step.id.0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "created depth first");
    assert_eq!(by_title("B").action, StepAction::Wait { seconds: 30 });
    assert_eq!(by_title("A1").action, StepAction::Manual);
    let roots: Vec<&str> = detail
        .plan
        .roots()
        .iter()
        .map(|node| node.item.title.as_str())
        .collect();
    assert_eq!(roots, vec!["A", "B"]);
    let activities = mission_activities(&memory, anna, id);
    assert_eq!(kinds_of(&activities), vec!["mission_created"]);
    assert_eq!(activities[0].user, Some(anna.user_id));
}

#[test]
fn starting_a_manual_mission_queues_no_run_but_an_automated_one_does() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let manual = mission_with(&memory, anna, "Manual", vec![planned("Call")])
        .mission
        .id;
    let automated = mission_with(
        &memory,
        anna,
        "Automated",
        vec![planned("Wait").with_action(action(json!({"kind": "wait", "seconds": 5})))],
    )
    .mission
    .id;

    act(&memory, anna, manual, MissionAction::Start);
    act(&memory, anna, automated, MissionAction::Start);

    let queued: Vec<_> = memory
        .services
        .engine()
        .list_jobs(Some(JobStatus::Queued), 100)
        .expect("jobs")
        .into_iter()
        .filter(|job| job.kind == JobKind::AdvanceMission { mission: automated }.name())
        .map(|job| job.mission)
        .collect();
    assert_eq!(queued, vec![Some(automated)]);
}

#[test]
fn completing_a_mission_skips_open_steps_and_records_it() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission_with(
        &memory,
        anna,
        "Retrieve Tax Documents",
        vec![planned("Done"), planned("Open"), planned("Also open")],
    )
    .mission
    .id;
    act(&memory, anna, id, MissionAction::Start);
    let done = support::step_id(&memory, anna, id, "Done");
    memory
        .services
        .steps()
        .update(
            anna,
            id,
            done,
            autodocs_domain::usecases::steps::UpdateStep::status(StepStatus::Completed),
        )
        .expect("completed");
    let before = memory.services.now();

    let detail = memory
        .services
        .missions()
        .act(anna, id, MissionAction::Complete)
        .expect("completed");

    assert_eq!(detail.mission.status, MissionStatus::Completed);
    assert_eq!(detail.mission.progress, Progress::COMPLETE);
    assert_eq!(detail.mission.completed_at, Some(before));
    let statuses: Vec<(String, StepStatus)> = steps(&memory, anna, id)
        .into_iter()
        .map(|step| (step.title.as_str().to_owned(), step.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("Done".to_owned(), StepStatus::Completed),
            ("Open".to_owned(), StepStatus::Skipped),
            ("Also open".to_owned(), StepStatus::Skipped),
        ]
    );
    let activities = mission_activities(&memory, anna, id);
    assert_eq!(
        kinds_of(&activities).last(),
        Some(&"mission_completed"),
        "{activities:?}"
    );
    assert_eq!(
        kinds_of(&activities)
            .iter()
            .filter(|kind| **kind == "mission_completed")
            .count(),
        1
    );
}

#[test]
fn restarting_a_failed_mission_resets_failed_steps_and_enqueues_its_run() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let url = "https://example.com/w2.pdf";
    let id = mission_with(
        &memory,
        anna,
        "Retrieve Tax Documents",
        vec![planned("Fetch").with_action(action(json!({"kind": "fetch_url", "url": url})))],
    )
    .mission
    .id;
    act(&memory, anna, id, MissionAction::Start);
    // Nothing is served at the URL yet: the run fails the step and the mission.
    memory.drain_jobs("test", 100).expect("drained");
    let failed = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(failed.mission.status, MissionStatus::Failed);
    let step = &steps(&memory, anna, id)[0];
    assert_eq!(step.status, StepStatus::Failed);
    assert!(step.last_error.is_some());

    memory
        .fetcher
        .register(url, b"%PDF-1.4\n".to_vec(), "w2.pdf");
    let restarted = memory
        .services
        .missions()
        .act(anna, id, MissionAction::Start)
        .expect("restarted");

    assert_eq!(restarted.mission.status, MissionStatus::InProgress);
    let step = &steps(&memory, anna, id)[0];
    assert_eq!(step.status, StepStatus::Pending);
    assert_eq!(step.last_error, None);
    let queued = memory
        .services
        .engine()
        .list_jobs(Some(JobStatus::Queued), 100)
        .expect("jobs");
    assert!(
        queued.iter().any(|job| job.mission == Some(id)),
        "{queued:?}"
    );
    assert_eq!(
        kinds_of(&mission_activities(&memory, anna, id))
            .iter()
            .filter(|kind| **kind == "mission_started")
            .count(),
        2
    );
    // The queued run now succeeds.
    let drained = memory.drain_jobs("test", 100).expect("drained");
    assert!(drained.idle);
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(detail.mission.status, MissionStatus::Completed);
    assert_eq!(detail.documents.len(), 1);
}

#[test]
fn deleting_an_in_progress_mission_is_refused() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission(&memory, anna);
    act(&memory, anna, id, MissionAction::Start);

    let error = memory
        .services
        .missions()
        .delete(anna, id)
        .expect_err("in progress");

    assert_eq!(
        transition_error(error),
        InvalidTransition::new("mission", "delete", "in_progress")
    );
    let still = memory.services.missions().get(anna, id).expect("kept");
    assert_eq!(still.mission.status, MissionStatus::InProgress);
    assert!(
        !kinds_of(&mission_activities(&memory, anna, id)).contains(&"mission_deleted"),
        "nothing recorded"
    );
}

#[test]
fn deleting_a_mission_keeps_its_id_and_title_in_the_activity() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission(&memory, anna);
    act(&memory, anna, id, MissionAction::Start);
    act(&memory, anna, id, MissionAction::Pause);

    memory
        .services
        .missions()
        .delete(anna, id)
        .expect("deleted");

    assert!(matches!(
        memory.services.missions().get(anna, id),
        Err(MissionError::NotFound)
    ));
    let deleted: Vec<_> = support::activities_where(
        &memory,
        anna,
        ActivityQuery {
            kinds: vec!["mission_deleted".into()],
            ..ActivityQuery::default()
        },
    );
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].details.get("mission_id"), Some(&json!(id)));
    assert_eq!(
        deleted[0].details.get("title"),
        Some(&json!("Retrieve Tax Documents"))
    );
    assert_eq!(deleted[0].user, Some(anna.user_id));
}

#[test]
fn another_owners_mission_is_not_found() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let id = mission(&memory, anna);
    let services = &memory.services;
    let changes = MissionChanges {
        title: Some(title("Mine now")),
        ..MissionChanges::default()
    };

    let results = [
        ("get", services.missions().get(bert, id).map(drop)),
        (
            "update",
            services.missions().update(bert, id, changes).map(drop),
        ),
        (
            "act",
            services
                .missions()
                .act(bert, id, MissionAction::Start)
                .map(drop),
        ),
        ("delete", services.missions().delete(bert, id)),
    ];

    for (name, result) in results {
        assert!(
            matches!(result, Err(MissionError::NotFound)),
            "{name}: {result:?}"
        );
    }
    let untouched = services.missions().get(anna, id).expect("still there");
    assert_eq!(untouched.mission.title.as_str(), "Retrieve Tax Documents");
    assert_eq!(untouched.mission.status, MissionStatus::Pending);
    assert_eq!(
        kinds_of(&mission_activities(&memory, anna, id)),
        vec!["mission_created"]
    );
    // Staff see it.
    let root = staff(&memory, "root");
    assert_eq!(
        services
            .missions()
            .get(root, id)
            .expect("staff see all")
            .mission
            .id,
        id
    );
}

#[test]
fn mission_lists_are_restricted_to_the_owner_unless_staff() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let root = staff(&memory, "root");
    let annas = mission(&memory, anna);
    let berts = mission(&memory, bert);
    let services = &memory.services;
    let ids = |page: autodocs_domain::paging::Page<autodocs_domain::mission::Mission>| {
        let mut ids: Vec<_> = page.items.into_iter().map(|mission| mission.id).collect();
        ids.sort();
        ids
    };

    // A client cannot widen its list by asking for everyone's, nor for
    // another owner's.
    let everyone = MissionQuery::default();
    assert_eq!(
        ids(services
            .missions()
            .list(anna, everyone.clone())
            .expect("listed")),
        vec![annas]
    );
    let berts_query = MissionQuery {
        owner: Some(bert.user_id),
        ..MissionQuery::default()
    };
    assert_eq!(
        ids(services.missions().list(anna, berts_query).expect("listed")),
        vec![annas]
    );
    assert_eq!(
        ids(services.missions().list(root, everyone).expect("listed")),
        vec![annas, berts]
    );

    let others = ActivityQuery {
        user: Some(bert.user_id),
        ..ActivityQuery::default()
    };
    let seen = services.activities().list(anna, others).expect("listed");
    assert!(!seen.items.is_empty());
    assert!(
        seen.items
            .iter()
            .all(|activity| activity.user == Some(anna.user_id)),
        "{seen:?}"
    );
    let all = services
        .activities()
        .list(root, ActivityQuery::default())
        .expect("listed");
    assert!(
        all.items
            .iter()
            .any(|activity| activity.user == Some(bert.user_id))
    );
}

#[test]
fn a_refused_action_reports_the_status_the_mission_is_in() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission(&memory, anna);
    act(&memory, anna, id, MissionAction::Start);
    act(&memory, anna, id, MissionAction::Cancel);

    let error = memory
        .services
        .missions()
        .act(anna, id, MissionAction::Start)
        .expect_err("cancelled");

    assert_eq!(
        transition_error(error),
        InvalidTransition::new("mission", "start", "cancelled")
    );
}
