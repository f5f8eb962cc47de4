//! `POST /api/activities/` bodies as [`CreateActivity`].

use serde_json::{Map, Value};

use autodocs_domain::activity::{ActivityDetails, ActivityMessage, CustomActivityType};
use autodocs_domain::usecases::activities::CreateActivity;
use autodocs_domain::validation::{InvalidValue, ValidationErrors};
use autodocs_domain::{DocumentId, MissionId};

use crate::extract::Fields;

/// A reference as DRF's `PrimaryKeyRelatedField` reads it: a number or a
/// numeric string; `null` or absent is none.
fn reference(body: &Map<String, Value>, key: &str, errors: &mut ValidationErrors) -> Option<i64> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) if number.as_i64().is_some() => number.as_i64(),
        Some(Value::String(text)) if text.trim().parse::<i64>().is_ok() => {
            text.trim().parse::<i64>().ok()
        }
        Some(_) => {
            errors.add(
                key,
                InvalidValue::rule("incorrect_type", "Incorrect type. Expected pk value."),
            );
            None
        }
    }
}

/// A client activity: `type` (a custom one) and `message` required,
/// `details` an object, `mission` and `document` references.
pub fn create_activity(body: &Map<String, Value>) -> Result<CreateActivity, ValidationErrors> {
    let mut fields = Fields::new(body);
    let kind = fields.string("type");
    let message = fields.string("message");
    let details = fields.raw("details").cloned();
    let mut errors = fields.errors;
    let mission = reference(body, "mission", &mut errors);
    let document = reference(body, "document", &mut errors);
    let kind = match kind {
        Some(raw) => errors.check("type", CustomActivityType::parse(&raw)),
        None => errors.check("type", Err(InvalidValue::required())),
    };
    let message = match message {
        Some(raw) => errors.check("message", ActivityMessage::parse(&raw)),
        None => errors.check("message", Err(InvalidValue::required())),
    };
    let details = match details {
        None | Some(Value::Null) => Some(ActivityDetails::empty()),
        Some(raw) => errors.check("details", ActivityDetails::parse(raw)),
    };
    match (kind, message, details) {
        (Some(kind), Some(message), Some(details)) if errors.is_empty() => Ok(CreateActivity {
            kind,
            message,
            details,
            mission: mission.map(MissionId),
            document: document.map(DocumentId),
        }),
        _ => Err(errors),
    }
}
