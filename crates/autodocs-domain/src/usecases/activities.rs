//! The activity log as clients see it: read their own, append their own types.

use serde_json::Value;

use crate::activity::{ActivityDetails, ActivityMessage, ActivityType, CustomActivityType};
use crate::activity_log::{Activity, ActivityQuery, NewActivity};
use crate::error::{Error, Result};
use crate::ids::{ActivityId, DocumentId, MissionId};
use crate::paging::Page;
use crate::ports;
use crate::user::Principal;
use crate::validation::{InvalidValue, ValidationErrors};

/// The raw fields of a client-written activity.
#[derive(Debug, Clone, Default)]
pub struct ActivityInput {
    /// Type: a custom one, never a system type.
    pub kind: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Details object.
    pub details: Option<Value>,
    /// Mission it concerns (must be the caller's).
    pub mission: Option<i64>,
    /// Document it concerns (must be the caller's).
    pub document: Option<i64>,
}

super::service!(
    /// The activity log: read one's own, append custom entries.
    ///
    /// ```
    /// # let memory = autodocs_memory::services();
    /// # let services = &memory.services;
    /// # let session = services.accounts().register(
    /// #     autodocs_domain::usecases::auth::Registration::parse(
    /// #         &autodocs_domain::usecases::auth::RegisterInput {
    /// #             username: "anna".into(),
    /// #             email: "anna@example.com".into(),
    /// #             password: "violet-Harbor-1987".into(),
    /// #             first_name: "Anna".into(),
    /// #             last_name: "Berg".into(),
    /// #         },
    /// #     )?,
    /// # )?;
    /// # let anna = autodocs_domain::user::Principal { user_id: session.user.id, is_staff: false };
    /// use autodocs_domain::activity_log::ActivityQuery;
    /// use autodocs_domain::usecases::activities::ActivityInput;
    /// use serde_json::json;
    ///
    /// let note = ActivityInput {
    ///     kind: Some("note_added".into()),
    ///     message: Some("Called the bank".into()),
    ///     details: Some(json!({"minutes": 5})),
    ///     ..ActivityInput::default()
    /// };
    /// let recorded = services.activities().create(anna, &note)?;
    /// assert_eq!(recorded.kind, "note_added");
    /// // System types are the system's own.
    /// let forged = ActivityInput { kind: Some("mission_completed".into()), ..note };
    /// assert!(services.activities().create(anna, &forged).is_err());
    /// // Newest first: the note, then the registration.
    /// let log = services.activities().list(anna, ActivityQuery::default())?;
    /// assert_eq!(log.items[0].id, recorded.id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ActivityService
);

impl ActivityService {
    /// A page of the activities the principal can see, newest first.
    pub fn list(&self, principal: Principal, mut query: ActivityQuery) -> Result<Page<Activity>> {
        if !principal.is_staff {
            query.user = Some(principal.user_id);
        }
        ports::read(&*self.context.uow, |repos| {
            Ok(repos.activities().list(&query)?.found()?)
        })
    }

    /// One activity.
    pub fn get(&self, principal: Principal, id: ActivityId) -> Result<Activity> {
        ports::read(&*self.context.uow, |repos| {
            repos
                .activities()
                .find(id, principal.visible_owner())?
                .ok_or(Error::NotFound)
        })
    }

    /// Appends a client activity of a custom type.
    pub fn create(&self, principal: Principal, input: &ActivityInput) -> Result<Activity> {
        let mut errors = ValidationErrors::new();
        let kind = match &input.kind {
            Some(raw) => errors.check("type", CustomActivityType::parse(raw)),
            None => errors.check("type", Err(InvalidValue::required())),
        };
        let message = match &input.message {
            Some(raw) => errors.check("message", ActivityMessage::parse(raw)),
            None => errors.check("message", Err(InvalidValue::required())),
        };
        let details = match &input.details {
            None | Some(Value::Null) => Some(ActivityDetails::empty()),
            Some(raw) => errors.check("details", ActivityDetails::parse(raw.clone())),
        };
        errors.into_result()?;
        let (Some(kind), Some(message), Some(details)) = (kind, message, details) else {
            return Err(Error::field("type", InvalidValue::required()));
        };
        let mission = input.mission.map(MissionId);
        let document = input.document.map(DocumentId);
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mut errors = ValidationErrors::new();
            if let Some(mission) = mission
                && repos
                    .missions()
                    .find(mission, Some(principal.user_id))?
                    .is_none()
            {
                errors.add(
                    "mission",
                    format!("Invalid pk \"{mission}\" - object does not exist."),
                );
            }
            if let Some(document) = document
                && repos
                    .documents()
                    .find(document, Some(principal.user_id))?
                    .is_none()
            {
                errors.add(
                    "document",
                    format!("Invalid pk \"{document}\" - object does not exist."),
                );
            }
            errors.into_result()?;
            let activity = NewActivity {
                kind: ActivityType::Custom(kind).as_str().to_owned(),
                message: message.as_str().to_owned(),
                details: details.as_map().clone(),
                user: Some(principal.user_id),
                mission,
                document,
            };
            Ok(repos.activities().record(&activity, now)?)
        })
    }
}
