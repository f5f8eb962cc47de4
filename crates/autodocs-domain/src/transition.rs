//! The refusal every state machine of the domain answers with.

/// A state change that the current status of an entity does not allow.
///
/// Answered as HTTP 409 with `{"detail": <Display>, "code": "invalid_transition"}`.
/// Shared by missions, plan steps and documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Cannot {action} a {entity} that is {from}.")]
pub struct InvalidTransition {
    /// What kind of entity refused: `"mission"`, `"step"` or `"document"`.
    pub entity: &'static str,
    /// The verb that was refused, e.g. `"pause"`.
    pub action: &'static str,
    /// The wire name of the status the entity was in, e.g. `"pending"`.
    pub from: String,
}

impl InvalidTransition {
    /// The machine-readable code sent beside the message.
    pub const CODE: &'static str = "invalid_transition";

    /// A refusal to `action` an `entity` that is in status `from` (a wire name).
    pub fn new(entity: &'static str, action: &'static str, from: impl Into<String>) -> Self {
        Self {
            entity,
            action,
            from: from.into(),
        }
    }
}
