//! Plan steps on the in-memory adapter: status changes moving the mission's
//! progress and status, moves re-computing depths, the tree rules and the
//! step limit.

mod support;

use autodocs_domain::error::StepError;
use autodocs_domain::jobs::JobStatus;
use autodocs_domain::mission::{MissionAction, MissionStatus, Progress};
use autodocs_domain::plan_step::{StepOrder, StepStatus};
use autodocs_domain::usecases::steps::{CreateStep, MaxSteps, UpdateStep};
use autodocs_domain::{MissionId, StepId};
use autodocs_memory::MemoryServices;
use support::{
    act, field_errors, general_errors, kinds_of, mission, mission_activities, mission_with,
    planned, register, step_id, steps, title,
};

fn complete(
    memory: &MemoryServices,
    owner: autodocs_domain::user::Principal,
    mission: MissionId,
    step: StepId,
) {
    memory
        .services
        .steps()
        .update(
            owner,
            mission,
            step,
            UpdateStep::status(StepStatus::Completed),
        )
        .expect("completed");
}

fn depths(
    memory: &MemoryServices,
    owner: autodocs_domain::user::Principal,
    mission: MissionId,
) -> Vec<(String, u8)> {
    steps(memory, owner, mission)
        .into_iter()
        .map(|step| (step.title.as_str().to_owned(), step.depth))
        .collect()
}

#[test]
fn completing_the_last_open_leaf_completes_the_mission_in_the_same_transaction() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission_with(&memory, anna, "Two", vec![planned("One"), planned("Two")])
        .mission
        .id;
    act(&memory, anna, id, MissionAction::Start);
    complete(&memory, anna, id, step_id(&memory, anna, id, "One"));
    let last = step_id(&memory, anna, id, "Two");
    memory
        .services
        .steps()
        .update(anna, id, last, UpdateStep::status(StepStatus::InProgress))
        .expect("started");
    let events_before = memory.events.events().len();

    let node = memory
        .services
        .steps()
        .update(anna, id, last, UpdateStep::status(StepStatus::Completed))
        .expect("completed");

    assert_eq!(node.id, last);
    assert_eq!(node.item.status, StepStatus::Completed);
    assert_eq!(node.item.completed_at, Some(memory.services.now()));
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(detail.mission.status, MissionStatus::Completed);
    assert_eq!(detail.mission.progress, Progress::COMPLETE);
    let activities = mission_activities(&memory, anna, id);
    let kinds = kinds_of(&activities);
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["step_updated", "mission_completed"]
    );
    // Both were published together, after the one commit.
    let published = support::published_activity_kinds(&memory);
    assert_eq!(
        published[published.len() - 2..],
        ["step_updated", "mission_completed"]
    );
    assert!(memory.events.events().len() > events_before);
    // Only manual steps: nothing for the engine to do.
    let queued = memory
        .services
        .engine()
        .list_jobs(Some(JobStatus::Queued), 100)
        .expect("jobs");
    assert!(queued.is_empty(), "{queued:?}");
}

#[test]
fn completing_one_of_three_leaves_sets_progress_to_33() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    // A parent with three leaves: the parent itself does not count.
    let id = mission_with(
        &memory,
        anna,
        "Three",
        vec![planned("Parent").with_children(vec![
            planned("First"),
            planned("Second"),
            planned("Third"),
        ])],
    )
    .mission
    .id;
    act(&memory, anna, id, MissionAction::Start);

    complete(&memory, anna, id, step_id(&memory, anna, id, "First"));

    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(Ok(detail.mission.progress), Progress::parse(33));
    assert_eq!(detail.mission.status, MissionStatus::InProgress);
    assert_eq!(detail.mission.steps_completed, 1);
    let kinds = kinds_of(&mission_activities(&memory, anna, id)).join(",");
    assert_eq!(kinds, "mission_created,mission_started,step_updated");
    // Only manual steps are left: nothing is queued (a queued run would
    // find nothing, again and again).
    let drained = memory.drain_jobs("test", 10).expect("drained");
    assert_eq!(drained.runs, 0);

    complete(&memory, anna, id, step_id(&memory, anna, id, "Second"));
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(Ok(detail.mission.progress), Progress::parse(66));
}

#[test]
fn a_parent_from_another_mission_is_refused() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission_with(&memory, anna, "Mine", vec![planned("Root")])
        .mission
        .id;
    let other = mission_with(&memory, anna, "Other", vec![planned("Elsewhere")])
        .mission
        .id;
    let foreign = step_id(&memory, anna, other, "Elsewhere");

    let error = memory
        .services
        .steps()
        .create(
            anna,
            id,
            CreateStep::new(title("Borrowed parent")).under(foreign),
        )
        .expect_err("foreign parent");

    assert_eq!(
        field_errors(&error, "parent"),
        vec!["Parent step must belong to the same mission."]
    );
    assert_eq!(steps(&memory, anna, id).len(), 1);
    assert_eq!(steps(&memory, anna, other).len(), 1);
    assert_eq!(
        kinds_of(&mission_activities(&memory, anna, id)),
        vec!["mission_created"]
    );
}

#[test]
fn a_step_is_created_under_its_parent_at_the_order_asked() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission_with(
        &memory,
        anna,
        "Mine",
        vec![planned("Root").with_children(vec![planned("Child")])],
    )
    .mission
    .id;
    let root = step_id(&memory, anna, id, "Root");

    let node = memory
        .services
        .steps()
        .create(
            anna,
            id,
            CreateStep::new(title("Late"))
                .under(root)
                .at(StepOrder::new(7).expect("an order")),
        )
        .expect("created");

    assert_eq!(node.item.parent, Some(root));
    assert_eq!(node.item.depth, 2);
    assert_eq!(node.item.order, 7);
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(detail.mission.steps_total, 3);
    let kinds = kinds_of(&mission_activities(&memory, anna, id)).join(",");
    assert_eq!(kinds, "mission_created,step_created");
}

#[test]
fn moving_a_step_under_its_own_child_is_refused() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission_with(
        &memory,
        anna,
        "Tree",
        vec![planned("Parent").with_children(vec![planned("Child")])],
    )
    .mission
    .id;
    let parent = step_id(&memory, anna, id, "Parent");
    let child = step_id(&memory, anna, id, "Child");
    let input = UpdateStep {
        parent: Some(Some(child)),
        ..UpdateStep::default()
    };

    let error = memory
        .services
        .steps()
        .update(anna, id, parent, input)
        .expect_err("cycle");

    assert_eq!(
        field_errors(&error, "parent"),
        vec!["A step cannot be its own ancestor."]
    );
    let stored = steps(&memory, anna, id);
    assert_eq!(stored[0].parent, None);
    assert_eq!(stored[1].parent, Some(parent));
    assert_eq!(
        kinds_of(&mission_activities(&memory, anna, id)),
        vec!["mission_created"]
    );
}

#[test]
fn moving_a_subtree_shifts_the_depth_of_its_descendants() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    // 1 (root) and 3 (root) → 4 (child of 3) → 5 (depth 3); move 3 under 1.
    let id = mission_with(
        &memory,
        anna,
        "Tree",
        vec![
            planned("1"),
            planned("3").with_children(vec![planned("4").with_children(vec![planned("5")])]),
        ],
    )
    .mission
    .id;
    let one = step_id(&memory, anna, id, "1");
    let three = step_id(&memory, anna, id, "3");
    assert_eq!(
        depths(&memory, anna, id),
        vec![
            ("1".to_owned(), 1),
            ("3".to_owned(), 1),
            ("4".to_owned(), 2),
            ("5".to_owned(), 3)
        ]
    );

    memory
        .services
        .steps()
        .update(
            anna,
            id,
            three,
            UpdateStep {
                parent: Some(Some(one)),
                ..UpdateStep::default()
            },
        )
        .expect("moved");

    assert_eq!(
        depths(&memory, anna, id),
        vec![
            ("1".to_owned(), 1),
            ("3".to_owned(), 2),
            ("4".to_owned(), 3),
            ("5".to_owned(), 4)
        ]
    );
    assert_eq!(step_id(&memory, anna, id, "3"), three);
    let moved = steps(&memory, anna, id)
        .into_iter()
        .find(|step| step.id == three)
        .expect("stored");
    assert_eq!(moved.parent, Some(one));

    // And back to the top: the depths shrink again.
    memory
        .services
        .steps()
        .update(
            anna,
            id,
            three,
            UpdateStep {
                parent: Some(None),
                ..UpdateStep::default()
            },
        )
        .expect("moved back");
    let depths = depths(&memory, anna, id);
    assert!(
        depths.contains(&("5".to_owned(), 3)) && depths.contains(&("3".to_owned(), 1)),
        "{depths:?}"
    );
}

#[test]
fn step_limits_hold_at_the_limit_and_refuse_past_it() {
    assert_eq!(MaxSteps::new(0), None);
    assert_eq!(MaxSteps::default().get(), 1000);

    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let plan = |count: usize| {
        (0..count)
            .map(|n| planned(&format!("Step {n}")))
            .collect::<Vec<_>>()
    };
    // A plan of 1001 steps is refused; one of 999 is taken.
    let error = memory
        .services
        .missions()
        .create(
            anna,
            autodocs_domain::usecases::missions::CreateMission::new(
                title("Too big"),
                autodocs_domain::mission::MissionType::Custom,
            )
            .with_plan(plan(1001)),
        )
        .expect_err("over the limit");
    assert_eq!(
        field_errors(&error, "plan_steps"),
        vec!["A mission can have at most 1000 plan steps."]
    );
    let id = mission_with(&memory, anna, "Big", plan(999)).mission.id;

    // The thousandth step fits, the next one does not.
    memory
        .services
        .steps()
        .create(anna, id, CreateStep::new(title("The last one")))
        .expect("at the limit");
    let error = memory
        .services
        .steps()
        .create(anna, id, CreateStep::new(title("One too many")))
        .expect_err("over the limit");

    assert_eq!(
        general_errors(&error),
        vec!["A mission can have at most 1000 plan steps."]
    );
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(detail.mission.steps_total, 1000);
}

#[test]
fn a_mission_at_its_step_limit_takes_no_more_steps() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let plan = (0..1000).map(|n| planned(&format!("Step {n}"))).collect();
    let id = mission_with(&memory, anna, "Full", plan).mission.id;
    let first = step_id(&memory, anna, id, "Step 0");

    // Not even under an existing step.
    let error = memory
        .services
        .steps()
        .create(anna, id, CreateStep::new(title("Nested")).under(first))
        .expect_err("over the limit");

    assert_eq!(
        general_errors(&error),
        vec!["A mission can have at most 1000 plan steps."]
    );
    assert_eq!(steps(&memory, anna, id).len(), 1000);
    assert_eq!(
        kinds_of(&mission_activities(&memory, anna, id)),
        vec!["mission_created"]
    );
}

#[test]
fn another_owners_steps_are_not_found() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let id = mission(&memory, anna);

    let error = memory
        .services
        .steps()
        .create(bert, id, CreateStep::new(title("Sneaky")))
        .expect_err("not visible");

    assert!(matches!(error, StepError::NotFound), "{error:?}");
    assert!(steps(&memory, anna, id).is_empty());
}
