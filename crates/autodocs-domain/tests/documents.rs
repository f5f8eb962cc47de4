//! Documents on the in-memory adapter: upload, verification, edits and
//! deletion, with the activities and events they leave.

mod support;

use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::document::{DocumentChanges, DocumentName, DocumentStatus};
use autodocs_domain::error::DocumentError;
use autodocs_domain::events::EventPayload;
use autodocs_domain::ports::FileStorage;
use autodocs_domain::validation::InvalidValue;
use autodocs_domain::{DocumentId, MissionId};
use autodocs_memory::MemoryServices;
use serde_json::json;
use support::{kinds_of, mission, mission_activities, register, upload};

fn document_activities(
    memory: &MemoryServices,
    owner: autodocs_domain::user::Principal,
    id: DocumentId,
) -> Vec<autodocs_domain::activity_log::Activity> {
    support::activities_where(
        memory,
        owner,
        ActivityQuery {
            document: Some(id),
            ..ActivityQuery::default()
        },
    )
}

fn document_count(
    memory: &MemoryServices,
    owner: autodocs_domain::user::Principal,
    id: MissionId,
) -> u64 {
    memory
        .services
        .missions()
        .get(owner, id)
        .expect("visible")
        .mission
        .document_count
}

#[test]
fn an_upload_is_measured_stored_and_recorded_in_its_mission() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let id = mission(&memory, anna);

    let document = upload(&memory, anna, b"%PDF-1.4\n%%EOF\n", "w2.pdf", Some(id));

    let stored = memory
        .services
        .documents()
        .get(anna, document)
        .expect("stored");
    assert_eq!(stored.owner, anna.user_id);
    assert_eq!(stored.mission, Some(id));
    assert_eq!(stored.status, DocumentStatus::Uploaded);
    assert_eq!(stored.content_type, "application/pdf");
    assert_eq!(stored.size, 15);
    assert_eq!(stored.original_filename.as_str(), "w2.pdf");
    assert_eq!(
        memory.storage.bytes(&stored.storage_key).as_deref(),
        Some(&b"%PDF-1.4\n%%EOF\n"[..])
    );
    assert_eq!(document_count(&memory, anna, id), 1);
    let detail = memory.services.missions().get(anna, id).expect("visible");
    assert_eq!(
        detail.documents.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![document]
    );
    let activities = document_activities(&memory, anna, document);
    assert_eq!(kinds_of(&activities), vec!["document_uploaded"]);
    assert_eq!(activities[0].mission, Some(id));
    assert!(
        memory.events.events().iter().any(|event| matches!(
            &event.payload,
            EventPayload::DocumentUpdated(d) if d.id == document
        )),
        "the document's state is published"
    );
}

#[test]
fn verification_compares_the_stored_file_with_what_was_recorded() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let document = upload(&memory, anna, b"Quarterly report\n", "report.txt", None);

    let verified = memory
        .services
        .documents()
        .verify(anna, document)
        .expect("verified");

    assert_eq!(verified.status, DocumentStatus::Verified);
    assert_eq!(verified.verified_at, Some(memory.services.now()));
    assert_eq!(verified.verification_error, "");

    // The bytes vanish: the next verification rejects it, with the reason.
    assert!(
        memory
            .storage
            .delete(&verified.storage_key)
            .expect("deleted")
    );
    let rejected = memory
        .services
        .documents()
        .verify(anna, document)
        .expect("judged");

    assert_eq!(rejected.status, DocumentStatus::Rejected);
    assert_eq!(rejected.verification_error, "File is missing from storage.");
    let activities = document_activities(&memory, anna, document);
    assert_eq!(
        kinds_of(&activities),
        vec![
            "document_uploaded",
            "document_verified",
            "document_rejected"
        ]
    );
    assert_eq!(
        activities[2].details.get("reason"),
        Some(&json!("File is missing from storage."))
    );
}

#[test]
fn an_update_renames_and_moves_a_document_between_own_missions_only() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let first = mission(&memory, anna);
    let second = mission(&memory, anna);
    let berts = mission(&memory, bert);
    let document = upload(&memory, anna, b"hello\n", "notes.txt", Some(first));

    let updated = memory
        .services
        .documents()
        .update(
            anna,
            document,
            DocumentChanges {
                name: Some(DocumentName::parse("Bank notes").expect("a name")),
                mission: Some(Some(second)),
                ..DocumentChanges::default()
            },
        )
        .expect("updated");

    assert_eq!(updated.name.as_str(), "Bank notes");
    assert_eq!(updated.mission, Some(second));
    assert_eq!(document_count(&memory, anna, first), 0);
    assert_eq!(document_count(&memory, anna, second), 1);
    let update = document_activities(&memory, anna, document)
        .into_iter()
        .find(|activity| activity.kind == "document_updated")
        .expect("recorded");
    assert_eq!(
        update.details.get("fields"),
        Some(&json!(["name", "mission"]))
    );
    assert_eq!(update.mission, Some(second));

    // Another owner's mission does not exist for this document.
    let error = memory
        .services
        .documents()
        .update(
            anna,
            document,
            DocumentChanges {
                mission: Some(Some(berts)),
                ..DocumentChanges::default()
            },
        )
        .expect_err("not anna's mission");
    match &error {
        DocumentError::Validation(errors) => assert_eq!(
            errors.field("mission"),
            Some(&[InvalidValue::DoesNotExist { id: berts.0 }][..])
        ),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let kept = memory
        .services
        .documents()
        .get(anna, document)
        .expect("kept");
    assert_eq!(kept.mission, Some(second));
    assert!(matches!(
        memory.services.documents().get(bert, document),
        Err(DocumentError::NotFound)
    ));
}

#[test]
fn deleting_a_document_removes_its_row_and_bytes_and_keeps_its_name_in_the_activity() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let id = mission(&memory, anna);
    let document = upload(&memory, anna, b"%PDF-1.4\n", "w2.pdf", Some(id));
    let key = memory
        .services
        .documents()
        .get(anna, document)
        .expect("stored")
        .storage_key;

    assert!(matches!(
        memory.services.documents().delete(bert, document),
        Err(DocumentError::NotFound)
    ));
    assert!(
        memory.storage.bytes(&key).is_some(),
        "another user deletes nothing"
    );

    memory
        .services
        .documents()
        .delete(anna, document)
        .expect("deleted");

    assert!(matches!(
        memory.services.documents().get(anna, document),
        Err(DocumentError::NotFound)
    ));
    assert!(memory.storage.bytes(&key).is_none());
    assert_eq!(document_count(&memory, anna, id), 0);
    let activities = mission_activities(&memory, anna, id);
    let deleted = activities
        .iter()
        .find(|activity| activity.kind == "document_deleted")
        .expect("recorded");
    assert_eq!(deleted.details.get("document_id"), Some(&json!(document)));
    assert_eq!(deleted.details.get("name"), Some(&json!("w2.pdf")));
}
