//! Request bodies parsed into the domain's commands.
//!
//! Each function reads one JSON body (or form) the way DRF's serializers
//! read it (types coerced where DRF coerces, absent versus `null` kept
//! apart, every field's refusal collected before answering) and builds the
//! command a use case takes from the domain's value types. The use cases
//! never see raw input; their own rules (ownership, the tree, the state
//! machines, limits) are checked when the command runs.

mod activities;
mod documents;
mod missions;
mod steps;
mod users;

pub use activities::create_activity;
pub use documents::{DocumentForm, update_document, upload_document};
pub use missions::{create_mission, update_mission};
pub use steps::{create_step, update_step};
pub use users::update_account;

use autodocs_domain::validation::InvalidValue;

/// The Python name of a JSON value's type, as the original service's
/// messages name it (`Expected a dictionary, but got list.`).
pub fn json_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// DRF's refusal of a value that is not a string where one is expected.
fn not_a_string() -> InvalidValue {
    InvalidValue::rule("invalid", "Not a valid string.")
}
