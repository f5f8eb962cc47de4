//! The primary keys of the records, as distinct types so that one kind of id
//! cannot be passed where another is expected. Each serializes as a plain
//! number (`#[serde(transparent)]`) and displays as one.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for serde_json::Value {
            /// The id as a plain JSON number.
            fn from(id: $name) -> Self {
                serde_json::Value::from(id.0)
            }
        }
    };
}

id_type!(
    /// The primary key of a user.
    UserId
);
id_type!(
    /// The primary key of a mission.
    MissionId
);
id_type!(
    /// The primary key of a plan step.
    StepId
);
id_type!(
    /// The primary key of a document.
    DocumentId
);
id_type!(
    /// The primary key of an activity.
    ActivityId
);
id_type!(
    /// The primary key of a background job.
    JobId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_numbers_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&MissionId(7)).expect("serialises"),
            "7"
        );
        assert_eq!(
            serde_json::from_str::<StepId>("12").expect("parses"),
            StepId(12)
        );
        assert_eq!(DocumentId(3).to_string(), "3");
    }
}
