//! `/api/documents/` forms and bodies as [`UploadDocument`] and
//! [`DocumentChanges`].

use serde_json::{Map, Value};

use autodocs_domain::MissionId;
use autodocs_domain::document::{DocumentChanges, DocumentName, DocumentType};
use autodocs_domain::usecases::documents::{UploadDocument, UploadedPart};
use autodocs_domain::validation::{InvalidValue, ValidationErrors};

use crate::extract::Fields;

/// DRF's `FileField` refusal when the `file` part is absent.
const NO_FILE: &str = "No file was submitted.";

/// DRF's `FileField` refusal of an empty file.
const EMPTY_FILE: &str = "The submitted file is empty.";

/// The text fields of an upload form, or of an update body; `None` means
/// absent.
#[derive(Debug, Clone, Default)]
pub struct DocumentForm {
    /// Display name.
    pub name: Option<String>,
    /// Type.
    pub kind: Option<String>,
    /// Mission id as text; `Some(None)` (or an empty string) is an explicit null.
    pub mission: Option<Option<String>>,
}

/// A mission reference as DRF's `PrimaryKeyRelatedField` reads it: empty
/// or absent is none, otherwise a positive id.
fn mission_reference(raw: Option<&str>) -> Result<Option<MissionId>, InvalidValue> {
    let Some(raw) = raw.map(str::trim).filter(|raw| !raw.is_empty()) else {
        return Ok(None);
    };
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(Some(MissionId(id))),
        _ => Err(InvalidValue::rule(
            "incorrect_type",
            format!("Incorrect type. Expected pk value, received {raw:?}."),
        )),
    }
}

/// An upload: the form's text fields and its `file` part. Form fields left
/// empty count as absent (browsers send every input); a missing or empty
/// file is refused together with the fields' errors.
pub fn upload_document(
    form: &DocumentForm,
    file: Option<UploadedPart>,
) -> Result<UploadDocument, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let name = match form.name.as_deref().filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => errors.check("name", DocumentName::parse(raw)).map(Some),
        None => Some(None),
    };
    let kind = match form.kind.as_deref().filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => errors.check("type", DocumentType::parse(raw)),
        None => Some(DocumentType::default()),
    };
    let mission = errors.check(
        "mission",
        mission_reference(form.mission.as_ref().and_then(Option::as_deref)),
    );
    let file = match file {
        None => {
            errors.add("file", InvalidValue::rule("required", NO_FILE));
            None
        }
        Some(part) if part.staged.file().size == 0 => {
            errors.add("file", InvalidValue::rule("empty", EMPTY_FILE));
            None
        }
        Some(part) => Some(part),
    };
    match (name, kind, mission, file) {
        (Some(name), Some(kind), Some(mission), Some(file)) if errors.is_empty() => {
            Ok(UploadDocument {
                name,
                kind,
                mission,
                file,
            })
        }
        _ => Err(errors),
    }
}

/// A `PATCH` body: every field optional, `mission` nullable.
pub fn update_document(body: &Map<String, Value>) -> Result<DocumentChanges, ValidationErrors> {
    let mut fields = Fields::new(body);
    let form = DocumentForm {
        name: fields.string("name"),
        kind: fields.string("type"),
        mission: match fields.raw("mission") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => fields.string("mission").map(Some),
        },
    };
    fields.finish()?;
    let mut errors = ValidationErrors::new();
    let changes = DocumentChanges {
        name: form
            .name
            .as_deref()
            .and_then(|raw| errors.check("name", DocumentName::parse(raw))),
        kind: form
            .kind
            .as_deref()
            .and_then(|raw| errors.check("type", DocumentType::parse(raw))),
        mission: form
            .mission
            .as_ref()
            .and_then(|raw| errors.check("mission", mission_reference(raw.as_deref()))),
    };
    errors.into_result().map(|()| changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn mission_references() {
        assert_eq!(mission_reference(None), Ok(None));
        assert_eq!(mission_reference(Some("  ")), Ok(None));
        assert_eq!(mission_reference(Some(" 12 ")), Ok(Some(MissionId(12))));
        assert!(mission_reference(Some("0")).is_err());
        assert!(mission_reference(Some("abc")).is_err());
    }

    #[test]
    fn changes_parse_field_by_field() {
        let errors = update_document(&body(
            json!({"name": " New name ", "type": "passport", "mission": null}),
        ))
        .expect_err("type is invalid");
        assert_eq!(
            errors.field("type"),
            Some(&[InvalidValue::invalid_choice("passport")][..])
        );
        let changes = update_document(&body(
            json!({"name": " New name ", "type": "invoice", "mission": null}),
        ))
        .expect("valid");
        assert_eq!(
            changes.name.as_ref().map(DocumentName::as_str),
            Some("New name")
        );
        assert_eq!(changes.kind, Some(DocumentType::Invoice));
        assert_eq!(changes.mission, Some(None));
        assert_eq!(changes.changed_fields(), ["name", "type", "mission"]);
        assert!(update_document(&Map::new()).expect("valid").is_empty());
    }

    #[test]
    fn an_upload_without_a_file_reports_it_with_the_other_fields() {
        let form = DocumentForm {
            kind: Some("passport".into()),
            ..DocumentForm::default()
        };
        let errors = upload_document(&form, None).expect_err("no file");
        assert_eq!(
            errors.field("file"),
            Some(&[InvalidValue::rule("required", NO_FILE)][..])
        );
        assert!(errors.field("type").is_some());
    }
}
