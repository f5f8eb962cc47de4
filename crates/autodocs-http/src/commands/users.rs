//! `/api/users/` bodies as [`UserChanges`].

use serde_json::{Map, Value};

use autodocs_domain::user::{
    Email, PersonName, ProfilePatch, TimeZoneName, UserChanges, bounded_json_object,
};
use autodocs_domain::validation::ValidationErrors;

use crate::extract::Fields;

/// An account body's fields as sent; `None` leaves a field unchanged.
#[derive(Debug, Default)]
struct AccountFields {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    is_active: Option<bool>,
    is_staff: Option<bool>,
    profile: ProfileFields,
}

/// The nested `profile` object's fields.
#[derive(Debug, Default)]
struct ProfileFields {
    phone: Option<String>,
    organization: Option<String>,
    bio: Option<String>,
    timezone: Option<String>,
    preferences: Option<Value>,
}

/// An account update (`PATCH`, and `PUT` as partial as it, as in the
/// original API); profile errors are keyed `profile.<field>`. The flags
/// `is_active` and `is_staff` are read only with `staff_fields` (a staff
/// user editing someone); otherwise they are ignored, as read-only fields.
pub fn update_account(
    body: &Map<String, Value>,
    staff_fields: bool,
) -> Result<UserChanges, ValidationErrors> {
    let mut fields = Fields::new(body);
    let mut input = AccountFields {
        email: fields.string("email"),
        first_name: fields.nullable_string("first_name"),
        last_name: fields.nullable_string("last_name"),
        ..AccountFields::default()
    };
    if staff_fields {
        input.is_active = fields.boolean("is_active");
        input.is_staff = fields.boolean("is_staff");
    }
    let profile = fields.object("profile");
    let mut errors = fields.errors;
    if let Some(profile) = profile {
        let mut fields = Fields::nested(profile, "profile");
        input.profile = ProfileFields {
            phone: fields.nullable_string("phone"),
            organization: fields.nullable_string("organization"),
            bio: fields.nullable_string("bio"),
            timezone: fields.string("timezone"),
            preferences: fields.raw("preferences").cloned(),
        };
        errors.merge(fields.errors);
    }
    errors.into_result()?;
    input.parse()
}

impl AccountFields {
    fn parse(&self) -> Result<UserChanges, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let mut changes = UserChanges {
            email: self
                .email
                .as_deref()
                .and_then(|raw| errors.check("email", Email::parse(raw))),
            first_name: self
                .first_name
                .as_deref()
                .and_then(|raw| errors.check("first_name", PersonName::parse(raw))),
            last_name: self
                .last_name
                .as_deref()
                .and_then(|raw| errors.check("last_name", PersonName::parse(raw))),
            is_active: self.is_active,
            is_staff: self.is_staff,
            profile: ProfilePatch::default(),
        };
        let profile = &self.profile;
        changes.profile = ProfilePatch {
            phone: profile
                .phone
                .as_deref()
                .and_then(|raw| errors.check("profile.phone", ProfilePatch::parse_phone(raw))),
            organization: profile.organization.as_deref().and_then(|raw| {
                errors.check(
                    "profile.organization",
                    ProfilePatch::parse_organization(raw),
                )
            }),
            bio: profile
                .bio
                .as_deref()
                .and_then(|raw| errors.check("profile.bio", ProfilePatch::parse_bio(raw))),
            timezone: profile
                .timezone
                .as_deref()
                .and_then(|raw| errors.check("profile.timezone", TimeZoneName::parse(raw))),
            preferences: profile
                .preferences
                .as_ref()
                .and_then(|raw| errors.check("profile.preferences", bounded_json_object(raw))),
        };
        errors.into_result().map(|()| changes)
    }
}
