//! `/api/missions/{id}/steps/` bodies as [`CreateStep`] and [`UpdateStep`].

use serde_json::{Map, Value};

use autodocs_domain::StepId;
use autodocs_domain::mission::{Description, Title};
use autodocs_domain::plan_step::{StepAction, StepOrder, StepStatus};
use autodocs_domain::usecases::steps::{CreateStep, UpdateStep};
use autodocs_domain::validation::{InvalidValue, ValidationErrors};

use crate::extract::Fields;

/// An integer as DRF's `IntegerField` takes it: a JSON number or a numeric
/// string.
fn integer(errors: &mut ValidationErrors, field: &str, value: &Value) -> Option<i64> {
    let parsed = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse::<i64>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        errors.add(
            field,
            InvalidValue::rule("invalid", "A valid integer is required."),
        );
    }
    parsed
}

/// A step body's fields as sent; `None` means absent.
#[derive(Debug, Default)]
struct StepFields {
    title: Option<String>,
    description: Option<String>,
    /// `Some(None)` is an explicit null (top level).
    parent: Option<Option<i64>>,
    order: Option<i64>,
    action: Option<Value>,
    status: Option<String>,
}

impl StepFields {
    fn read(body: &Map<String, Value>) -> Result<Self, ValidationErrors> {
        let mut fields = Fields::new(body);
        let mut read = Self {
            title: fields.string("title"),
            description: fields.nullable_string("description"),
            action: fields.raw("action").cloned(),
            status: fields.string("status"),
            ..Self::default()
        };
        let mut errors = fields.errors;
        read.parent = match body.get("parent") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(value) => integer(&mut errors, "parent", value).map(Some),
        };
        read.order = match body.get("order") {
            None | Some(Value::Null) => None,
            Some(value) => integer(&mut errors, "order", value),
        };
        errors.into_result().map(|()| read)
    }
}

/// A `POST` body: `title` required; `description`, `parent`, `order` and
/// `action` optional.
pub fn create_step(body: &Map<String, Value>) -> Result<CreateStep, ValidationErrors> {
    let input = StepFields::read(body)?;
    let mut errors = ValidationErrors::new();
    let title = match &input.title {
        Some(raw) => errors.check("title", Title::parse(raw)),
        None => errors.check("title", Err(InvalidValue::required())),
    };
    let description = errors.check(
        "description",
        Description::parse(input.description.as_deref().unwrap_or("")),
    );
    let order = input
        .order
        .map(|raw| errors.check("order", StepOrder::new(raw)));
    let action = match &input.action {
        Some(raw) => errors.check("action", StepAction::parse(raw)),
        None => Some(StepAction::default()),
    };
    match (title, description, order, action) {
        (Some(title), Some(description), order, Some(action)) if errors.is_empty() => {
            Ok(CreateStep {
                title,
                description,
                parent: input.parent.flatten().map(StepId),
                order: order.flatten(),
                action,
            })
        }
        _ => Err(errors),
    }
}

/// A `PATCH` body: every field optional; `parent: null` moves the step to
/// the top level.
pub fn update_step(body: &Map<String, Value>) -> Result<UpdateStep, ValidationErrors> {
    let input = StepFields::read(body)?;
    let mut errors = ValidationErrors::new();
    let command = UpdateStep {
        title: input
            .title
            .as_deref()
            .and_then(|raw| errors.check("title", Title::parse(raw))),
        description: input
            .description
            .as_deref()
            .and_then(|raw| errors.check("description", Description::parse(raw))),
        parent: input.parent.map(|parent| parent.map(StepId)),
        order: input
            .order
            .and_then(|raw| errors.check("order", StepOrder::new(raw))),
        status: input
            .status
            .as_deref()
            .and_then(|raw| errors.check("status", StepStatus::parse(raw))),
    };
    errors.into_result().map(|()| command)
}
