//! The activity log on the in-memory adapter: custom activities and what
//! the caller may attach them to.

mod support;

use autodocs_domain::activity::{ActivityDetails, ActivityMessage, CustomActivityType};
use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::error::ActivityError;
use autodocs_domain::events::EventPayload;
use autodocs_domain::usecases::activities::CreateActivity;
use autodocs_domain::validation::InvalidValue;
use serde_json::json;
use support::{kinds, mission, mission_activities, register};

fn note() -> CreateActivity {
    CreateActivity::new(
        CustomActivityType::parse("note_added").expect("a custom type"),
        ActivityMessage::parse("Called the bank").expect("a message"),
    )
}

#[test]
fn an_activity_on_a_mission_not_owned_is_refused() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let annas = mission(&memory, anna);
    let before = memory.events.events().len();

    let error = memory
        .services
        .activities()
        .create(bert, note().about_mission(annas))
        .expect_err("not owned");

    match &error {
        ActivityError::Validation(errors) => assert_eq!(
            errors.field("mission"),
            Some(&[InvalidValue::DoesNotExist { id: annas.0 }][..])
        ),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(!kinds(&memory, bert).contains(&"note_added".to_owned()));
    assert!(
        !kinds(&memory, anna).contains(&"note_added".to_owned()),
        "nothing recorded on the mission"
    );
    assert_eq!(memory.events.events().len(), before, "nothing published");
}

#[test]
fn a_custom_activity_is_recorded_for_the_caller() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission(&memory, anna);
    memory.events.take();
    let input = note()
        .with_details(ActivityDetails::parse(json!({"minutes": 5})).expect("details"))
        .about_mission(id);

    let activity = memory
        .services
        .activities()
        .create(anna, input)
        .expect("recorded");

    assert_eq!(activity.kind, "note_added");
    let stored = mission_activities(&memory, anna, id);
    let last = stored.last().expect("recorded");
    assert_eq!(last.id, activity.id);
    assert_eq!(last.user, Some(anna.user_id));
    assert_eq!(last.mission, Some(id));
    assert_eq!(last.message, "Called the bank");
    assert_eq!(last.details.get("minutes"), Some(&json!(5)));
    assert_eq!(
        memory
            .services
            .activities()
            .get(anna, activity.id)
            .expect("readable")
            .kind,
        "note_added"
    );
    // Published after the commit: the activity, then the mission's state.
    let events = memory.events.events();
    assert!(matches!(
        &events[0].payload,
        EventPayload::ActivityCreated(published) if published.id == activity.id
    ));
    assert!(events.iter().any(|event| matches!(
        &event.payload,
        EventPayload::MissionUpdated(mission) if mission.id == id
    )));
    // Filtered by type.
    let notes = support::activities_where(
        &memory,
        anna,
        ActivityQuery {
            kinds: vec!["note_added".into()],
            ..ActivityQuery::default()
        },
    );
    assert_eq!(notes.len(), 1);
}
