//! `/api/missions/` bodies as [`CreateMission`] and [`MissionChanges`].

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use autodocs_domain::mission::{
    Description, MissionChanges, MissionType, NewMission, Priority, Title,
};
use autodocs_domain::plan_step::{StepAction, check_depth};
use autodocs_domain::usecases::missions::{CreateMission, PlannedStep};
use autodocs_domain::validation::{InvalidValue, ValidationErrors, parse_timestamp};

use super::{json_type_name, not_a_string};
use crate::extract::Fields;

/// A mission body's fields as sent; `None` means absent.
#[derive(Debug, Default)]
struct MissionFields {
    title: Option<String>,
    description: Option<String>,
    kind: Option<String>,
    priority: Option<String>,
    /// `Some(None)` is an explicit null.
    deadline: Option<Option<String>>,
    plan_steps: Option<Value>,
}

impl MissionFields {
    fn read(body: &Map<String, Value>) -> Result<Self, ValidationErrors> {
        let mut fields = Fields::new(body);
        let read = Self {
            title: fields.string("title"),
            description: fields.nullable_string("description"),
            kind: fields.string("type"),
            priority: fields.string("priority"),
            deadline: match fields.raw("deadline") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(_) => fields.string("deadline").map(Some),
            },
            plan_steps: fields.raw("plan_steps").cloned(),
        };
        fields.finish().map(|()| read)
    }
}

/// A `POST /api/missions/` body: `title` and `type` required, an optional
/// nested `plan_steps`.
pub fn create_mission(body: &Map<String, Value>) -> Result<CreateMission, ValidationErrors> {
    MissionFields::read(body)?.parse_new()
}

/// A `PATCH` body (every field optional) or, with `full`, a `PUT` body
/// (`title` and `type` required).
pub fn update_mission(
    body: &Map<String, Value>,
    full: bool,
) -> Result<MissionChanges, ValidationErrors> {
    MissionFields::read(body)?.parse_changes(full)
}

fn parse_deadline(raw: &Option<String>) -> Result<Option<DateTime<Utc>>, InvalidValue> {
    raw.as_deref().map(parse_timestamp).transpose()
}

/// Parses a nested plan (`[{title, description?, action?, children?}]`);
/// errors are keyed `plan_steps` with the path of the faulty item.
fn parse_plan(value: &Value, errors: &mut ValidationErrors) -> Vec<PlannedStep> {
    fn walk(
        value: &Value,
        depth: usize,
        path: &str,
        errors: &mut ValidationErrors,
    ) -> Vec<PlannedStep> {
        let Value::Array(items) = value else {
            errors.add(
                "plan_steps",
                format!(
                    "{path}Expected a list of items but got type \"{}\".",
                    json_type_name(value)
                ),
            );
            return Vec::new();
        };
        // Checked on the way down: a hostile body nested a thousand deep
        // must not recurse a thousand deep.
        if let Err(error) = check_depth(depth, 1) {
            errors.add("plan_steps", error);
            return Vec::new();
        }
        let mut steps = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let here = format!("{path}[{index}] ");
            let Value::Object(fields) = item else {
                errors.add(
                    "plan_steps",
                    format!(
                        "{here}Invalid data. Expected a dictionary, but got {}.",
                        json_type_name(item)
                    ),
                );
                continue;
            };
            let title = match fields.get("title") {
                Some(Value::String(raw)) => Title::parse(raw),
                Some(Value::Null) => Err(InvalidValue::null()),
                Some(_) => Err(not_a_string()),
                None => Err(InvalidValue::required()),
            };
            let description = match fields.get("description") {
                Some(Value::String(raw)) => Description::parse(raw),
                None | Some(Value::Null) => Ok(Description::default()),
                Some(_) => Err(not_a_string()),
            };
            let action = match fields.get("action") {
                Some(raw) => StepAction::parse(raw),
                None => Ok(StepAction::default()),
            };
            let children = match fields.get("children") {
                None | Some(Value::Null) => Vec::new(),
                Some(children) => walk(children, depth + 1, &format!("{here}children"), errors),
            };
            match (title, description, action) {
                (Ok(title), Ok(description), Ok(action)) => {
                    steps.push(PlannedStep {
                        title,
                        description,
                        action,
                        children,
                    });
                }
                (title, description, action) => {
                    for (field, error) in [
                        ("title", title.err()),
                        ("description", description.err()),
                        ("action", action.err()),
                    ] {
                        if let Some(error) = error {
                            errors.add("plan_steps", format!("{here}{field}: {error}"));
                        }
                    }
                }
            }
        }
        steps
    }
    walk(value, 1, "", errors)
}

impl MissionFields {
    /// Parses a creation: `title` and `type` are required.
    fn parse_new(&self) -> Result<CreateMission, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let title = match &self.title {
            Some(raw) => errors.check("title", Title::parse(raw)),
            None => errors.check("title", Err(InvalidValue::required())),
        };
        let kind = match &self.kind {
            Some(raw) => errors.check("type", MissionType::parse(raw)),
            None => errors.check("type", Err(InvalidValue::required())),
        };
        let description = errors.check(
            "description",
            Description::parse(self.description.as_deref().unwrap_or("")),
        );
        let priority = match &self.priority {
            Some(raw) => errors.check("priority", Priority::parse(raw)),
            None => Some(Priority::default()),
        };
        let deadline = match &self.deadline {
            Some(raw) => errors.check("deadline", parse_deadline(raw)),
            None => Some(None),
        };
        let plan = match &self.plan_steps {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => parse_plan(value, &mut errors),
        };
        match (title, kind, description, priority, deadline) {
            (Some(title), Some(kind), Some(description), Some(priority), Some(deadline))
                if errors.is_empty() =>
            {
                Ok(CreateMission {
                    mission: NewMission {
                        title,
                        description,
                        kind,
                        priority,
                        deadline,
                    },
                    plan,
                })
            }
            _ => Err(errors),
        }
    }

    /// Parses an update; with `full` (PUT) `title` and `type` are required.
    fn parse_changes(&self, full: bool) -> Result<MissionChanges, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if full {
            for (field, value) in [("title", &self.title), ("type", &self.kind)] {
                if value.is_none() {
                    errors.add(field, InvalidValue::required());
                }
            }
        }
        let changes = MissionChanges {
            title: self
                .title
                .as_deref()
                .and_then(|raw| errors.check("title", Title::parse(raw))),
            description: self
                .description
                .as_deref()
                .and_then(|raw| errors.check("description", Description::parse(raw))),
            kind: self
                .kind
                .as_deref()
                .and_then(|raw| errors.check("type", MissionType::parse(raw))),
            priority: self
                .priority
                .as_deref()
                .and_then(|raw| errors.check("priority", Priority::parse(raw))),
            deadline: self
                .deadline
                .as_ref()
                .and_then(|raw| errors.check("deadline", parse_deadline(raw))),
        };
        errors.into_result().map(|()| changes)
    }
}
