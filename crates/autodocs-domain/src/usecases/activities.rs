//! The activity log as clients see it: read their own, append their own types.

use crate::activity::{ActivityDetails, ActivityMessage, ActivityType, CustomActivityType};
use crate::activity_log::{Activity, ActivityQuery, NewActivity};
use crate::error::ActivityError;
use crate::ids::{ActivityId, DocumentId, MissionId};
use crate::paging::Page;
use crate::ports;
use crate::user::Principal;
use crate::validation::{InvalidValue, ValidationErrors};

/// The command to append a client-written activity.
///
/// ```
/// use autodocs_domain::activity::{ActivityMessage, CustomActivityType};
/// use autodocs_domain::usecases::activities::CreateActivity;
///
/// let note = CreateActivity::new(
///     CustomActivityType::parse("note_added")?,
///     ActivityMessage::parse("Called the bank")?,
/// );
/// assert!(note.details.as_map().is_empty());
/// // The system's own types cannot be written by a client.
/// assert!(CustomActivityType::parse("mission_completed").is_err());
/// # Ok::<(), autodocs_domain::validation::InvalidValue>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateActivity {
    /// Type: a custom one, never a system type.
    pub kind: CustomActivityType,
    /// Message.
    pub message: ActivityMessage,
    /// Details object.
    pub details: ActivityDetails,
    /// The mission it concerns (must be the caller's).
    pub mission: Option<MissionId>,
    /// The document it concerns (must be the caller's).
    pub document: Option<DocumentId>,
}

impl CreateActivity {
    /// An entry of `kind` saying `message`, with no details, about nothing.
    pub fn new(kind: CustomActivityType, message: ActivityMessage) -> Self {
        Self {
            kind,
            message,
            details: ActivityDetails::empty(),
            mission: None,
            document: None,
        }
    }

    /// This entry with `details`.
    pub fn with_details(self, details: ActivityDetails) -> Self {
        Self { details, ..self }
    }

    /// This entry about `mission`.
    pub fn about_mission(self, mission: MissionId) -> Self {
        Self {
            mission: Some(mission),
            ..self
        }
    }

    /// This entry about `document`.
    pub fn about_document(self, document: DocumentId) -> Self {
        Self {
            document: Some(document),
            ..self
        }
    }
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
    /// use autodocs_domain::activity::{ActivityDetails, ActivityMessage, CustomActivityType};
    /// use autodocs_domain::MissionId;
    /// use autodocs_domain::usecases::activities::CreateActivity;
    /// use serde_json::json;
    ///
    /// let note = CreateActivity::new(
    ///     CustomActivityType::parse("note_added")?,
    ///     ActivityMessage::parse("Called the bank")?,
    /// )
    /// .with_details(ActivityDetails::parse(json!({"minutes": 5}))?);
    /// let recorded = services.activities().create(anna, note.clone())?;
    /// assert_eq!(recorded.kind, "note_added");
    /// // Only about the caller's own missions.
    /// assert!(services.activities().create(anna, note.about_mission(MissionId(999))).is_err());
    /// // Newest first: the note, then the registration.
    /// let log = services.activities().list(anna, ActivityQuery::default())?;
    /// assert_eq!(log.items[0].id, recorded.id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ActivityService
);

impl ActivityService {
    /// A page of the activities the principal can see, newest first.
    pub fn list(
        &self,
        principal: Principal,
        mut query: ActivityQuery,
    ) -> Result<Page<Activity>, ActivityError> {
        if !principal.is_staff {
            query.user = Some(principal.user_id);
        }
        let found = ports::read(&*self.context.uow, |repos| repos.activities().list(&query))?;
        Ok(found.found()?)
    }

    /// One activity.
    pub fn get(&self, principal: Principal, id: ActivityId) -> Result<Activity, ActivityError> {
        ports::read(&*self.context.uow, |repos| {
            repos
                .activities()
                .find(id, principal.visible_owner())?
                .ok_or(ActivityError::NotFound)
        })
    }

    /// Appends a client activity of a custom type.
    pub fn create(
        &self,
        principal: Principal,
        command: CreateActivity,
    ) -> Result<Activity, ActivityError> {
        let CreateActivity {
            kind,
            message,
            details,
            mission,
            document,
        } = command;
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let mut errors = ValidationErrors::new();
            if let Some(mission) = mission
                && repos
                    .missions()
                    .find(mission, Some(principal.user_id))?
                    .is_none()
            {
                errors.add("mission", InvalidValue::DoesNotExist { id: mission.0 });
            }
            if let Some(document) = document
                && repos
                    .documents()
                    .find(document, Some(principal.user_id))?
                    .is_none()
            {
                errors.add("document", InvalidValue::DoesNotExist { id: document.0 });
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
