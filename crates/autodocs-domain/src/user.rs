//! Users, their profiles and the values that make them up.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::validation::{InvalidValue, optional_text};

pub use crate::ids::UserId;

/// A username as Django accepts it: 1–150 of letters, digits and `.@+-_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Longest username Django allows.
    pub const MAX_CHARS: usize = 150;

    /// Parses a username (`^[\w.@+-]{1,150}$`, Unicode word characters).
    /// The username is kept in canonical composition (NFC): `A` followed by
    /// a combining diaeresis, as some keyboards send it, is the letter `Ä`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        use unicode_normalization::UnicodeNormalization;
        let composed: String = raw.nfc().collect();
        let raw = composed.as_str();
        if raw.trim().is_empty() {
            return Err(InvalidValue::blank());
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::too_long(Self::MAX_CHARS));
        }
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-');
        if !raw.chars().all(allowed) {
            return Err(InvalidValue::new(
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The username as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, validated as Django's `EmailValidator` does in substance
/// (letters of any script are allowed in the local part too); the domain part
/// is lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Longest address accepted.
    pub const MAX_CHARS: usize = 254;

    /// Parses an email address, kept in canonical composition (NFC) like
    /// [`Username`].
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        use unicode_normalization::UnicodeNormalization;
        let composed: String = raw.trim().nfc().collect();
        let raw = composed.as_str();
        if raw.is_empty() {
            return Err(InvalidValue::blank());
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::too_long(Self::MAX_CHARS));
        }
        let invalid = || InvalidValue::new("Enter a valid email address.");
        let (local, domain) = raw.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                // Letters and digits of any script (RFC 6531 addresses):
                // `Jürgen@…` is one person however its letters are cased.
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
        if !local_ok || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The form in which usernames and emails are compared: two spellings with
/// the same key belong to one account.
///
/// The key is `NFKC(casefold(NFKC(s)))`, the composition Unicode calls
/// compatibility caseless matching (with NFKC in place of NFKD so the key
/// stays readable): `Ärger`, `ärger` and `ÄRGER` share a key, so do
/// `Straße` and `STRASSE` (full case folding turns `ß` into `ss`), and `ﬁle`
/// (the ligature) and `file`. Databases cannot compute this themselves
/// (SQLite's `lower()` only knows ASCII), so the key is computed here and
/// stored beside the value, in its own uniquely indexed column.
///
/// ```
/// use autodocs_domain::user::IdentityKey;
///
/// assert_eq!(IdentityKey::of("Straße"), IdentityKey::of("STRASSE"));
/// assert_eq!(IdentityKey::of("ﬁsh"), IdentityKey::of("FISH"));
/// assert_ne!(IdentityKey::of("anna"), IdentityKey::of("anne"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey(String);

impl IdentityKey {
    /// The key of a username, an email or a login as typed (surrounding
    /// white space is not part of it).
    pub fn of(raw: &str) -> Self {
        Self(normalise_identity(raw.trim()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the key has the shape of an email (contains `@`): such a
    /// login is matched against emails before usernames.
    pub fn looks_like_email(&self) -> bool {
        self.0.contains('@')
    }
}

impl std::fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `NFKC(casefold(NFKC(text)))`: Unicode default full case folding between
/// two compatibility normalisations. Also used for case-insensitive
/// substring searches over the stored keys, so that a search term and a key
/// are folded alike.
pub fn normalise_identity(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let composed: String = text.nfkc().collect();
    // NFKC first: a compatibility character (`ﬁ`, `Ⅸ`, full-width letters)
    // folds differently from what it stands for; NFKC again after: folding
    // can leave a sequence that is no longer in normal form.
    caseless::default_case_fold_str(&composed).nfkc().collect()
}

/// A first or last name: at most 150 characters, may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonName(String);

impl PersonName {
    /// Parses a name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        optional_text(raw, 150).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name such as `Europe/Paris`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Parses a zone name against the IANA database.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        raw.parse::<chrono_tz::Tz>()
            .map(|tz| Self(tz.name().to_owned()))
            .map_err(|_| {
                InvalidValue::new(format!(
                    "\"{}\" is not a valid time zone.",
                    truncate(raw, 64)
                ))
            })
    }

    /// The zone name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TimeZoneName {
    fn default() -> Self {
        Self("UTC".to_owned())
    }
}

/// Largest serialised size of a JSON object held in the database.
pub const MAX_JSON_OBJECT_BYTES: usize = 16 * 1024;

/// Checks a JSON value is an object whose serialised form fits `MAX_JSON_OBJECT_BYTES`.
pub fn bounded_json_object(value: &Value) -> Result<Map<String, Value>, InvalidValue> {
    let Value::Object(map) = value else {
        return Err(InvalidValue::new("Expected a JSON object."));
    };
    let size = serde_json::to_vec(value)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if size > MAX_JSON_OBJECT_BYTES {
        return Err(InvalidValue::new(format!(
            "Ensure this object is at most {MAX_JSON_OBJECT_BYTES} bytes when serialised."
        )));
    }
    Ok(map.clone())
}

fn truncate(raw: &str, max: usize) -> String {
    raw.chars().take(max).collect()
}

/// The profile every user has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    /// Phone number, free text up to 32 characters.
    pub phone: String,
    /// Organization, up to 200 characters.
    pub organization: String,
    /// Free text, up to 5000 characters.
    pub bio: String,
    /// IANA time zone name, `UTC` by default.
    pub timezone: String,
    /// The frontend's preferences, a JSON object of at most 16 KiB.
    pub preferences: Map<String, Value>,
}

impl Default for UserProfile {
    fn default() -> Self {
        Self {
            phone: String::new(),
            organization: String::new(),
            bio: String::new(),
            timezone: TimeZoneName::default().0,
            preferences: Map::new(),
        }
    }
}

/// A partial change to a profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfilePatch {
    /// New phone.
    pub phone: Option<String>,
    /// New organization.
    pub organization: Option<String>,
    /// New bio.
    pub bio: Option<String>,
    /// New time zone.
    pub timezone: Option<TimeZoneName>,
    /// New preferences (replaces the whole object).
    pub preferences: Option<Map<String, Value>>,
}

impl ProfilePatch {
    /// Parses the phone field.
    pub fn parse_phone(raw: &str) -> Result<String, InvalidValue> {
        optional_text(raw, 32)
    }

    /// Parses the organization field.
    pub fn parse_organization(raw: &str) -> Result<String, InvalidValue> {
        optional_text(raw, 200)
    }

    /// Parses the bio field.
    pub fn parse_bio(raw: &str) -> Result<String, InvalidValue> {
        optional_text(raw, 5000)
    }

    /// Applies the patch to a profile.
    pub fn apply_to(&self, profile: &mut UserProfile) {
        if let Some(phone) = &self.phone {
            profile.phone.clone_from(phone);
        }
        if let Some(organization) = &self.organization {
            profile.organization.clone_from(organization);
        }
        if let Some(bio) = &self.bio {
            profile.bio.clone_from(bio);
        }
        if let Some(timezone) = &self.timezone {
            profile.timezone = timezone.as_str().to_owned();
        }
        if let Some(preferences) = &self.preferences {
            profile.preferences.clone_from(preferences);
        }
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A user account with its profile, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// Login name, unique by its [`IdentityKey`].
    pub username: String,
    /// Email address, unique by its [`IdentityKey`].
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Staff see everyone's objects and manage users.
    pub is_staff: bool,
    /// Superusers are staff created from the command line.
    pub is_superuser: bool,
    /// Inactive users cannot log in or use their tokens.
    pub is_active: bool,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
    /// The last successful login.
    pub last_login: Option<DateTime<Utc>>,
    /// The profile.
    pub profile: UserProfile,
}

/// The two flags of an account every authenticated request checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountAccess {
    /// A deactivated account's tokens are refused.
    pub is_active: bool,
    /// Staff see everyone's objects.
    pub is_staff: bool,
}

/// What a request needs to know about the user behind a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The authenticated user.
    pub user_id: UserId,
    /// Whether the user is staff.
    pub is_staff: bool,
}

impl Principal {
    /// Whether this principal may see an object owned by `owner`.
    pub fn can_see(&self, owner: UserId) -> bool {
        self.is_staff || self.user_id == owner
    }

    /// The owner a list is restricted to: `None` for staff (everyone's).
    pub fn visible_owner(&self) -> Option<UserId> {
        (!self.is_staff).then_some(self.user_id)
    }
}

/// A user to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    /// Login name.
    pub username: Username,
    /// Email address.
    pub email: Email,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// The encoded password hash (never the password).
    pub password_hash: String,
    /// Staff flag.
    pub is_staff: bool,
    /// Superuser flag.
    pub is_superuser: bool,
}

/// Changes to a user's own account fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    /// New email.
    pub email: Option<Email>,
    /// New first name.
    pub first_name: Option<PersonName>,
    /// New last name.
    pub last_name: Option<PersonName>,
    /// New active flag (staff only).
    pub is_active: Option<bool>,
    /// New staff flag (staff only).
    pub is_staff: Option<bool>,
    /// Profile changes.
    pub profile: ProfilePatch,
}

impl UserChanges {
    /// Whether any field of the account row (not the profile) changes.
    pub fn touches_account(&self) -> bool {
        self.email.is_some()
            || self.first_name.is_some()
            || self.last_name.is_some()
            || self.is_active.is_some()
            || self.is_staff.is_some()
    }
}

/// The filters of the staff user list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserQuery {
    /// Substring of username or email, compared by [`normalise_identity`]
    /// (so case-insensitively, for every script).
    pub search: Option<String>,
    /// Only active or only inactive users.
    pub is_active: Option<bool>,
    /// Only staff or only non-staff users.
    pub is_staff: Option<bool>,
    /// Sort order; empty means [`UserOrderField::DEFAULT`].
    pub ordering: Vec<UserOrderField>,
    /// Which page.
    pub page: crate::paging::PageRequest,
}

/// A field the staff user list can be sorted by (`?ordering=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserSortKey {
    /// `id`, the order of registration.
    Id,
    /// `username`, by its normalised form (so in any case).
    Username,
    /// `email`, by its normalised form.
    Email,
    /// `date_joined`.
    DateJoined,
    /// `last_login`; users who never logged in come last either way.
    LastLogin,
}

impl UserSortKey {
    /// Every sortable field.
    pub const ALL: [UserSortKey; 5] = [
        UserSortKey::Id,
        UserSortKey::Username,
        UserSortKey::Email,
        UserSortKey::DateJoined,
        UserSortKey::LastLogin,
    ];

    /// The field name as written in `?ordering=`.
    pub const fn as_str(self) -> &'static str {
        match self {
            UserSortKey::Id => "id",
            UserSortKey::Username => "username",
            UserSortKey::Email => "email",
            UserSortKey::DateJoined => "date_joined",
            UserSortKey::LastLogin => "last_login",
        }
    }
}

impl crate::paging::SortKey for UserSortKey {
    const KEYS: &'static [Self] = &UserSortKey::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// One item of the user list's `?ordering=`, e.g. `-date_joined`.
pub type UserOrderField = crate::paging::OrderField<UserSortKey>;

impl UserOrderField {
    /// The default ordering of the user list: `id`, oldest account first.
    pub const DEFAULT: UserOrderField = UserOrderField {
        field: UserSortKey::Id,
        descending: false,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("alice.b+c@d-e_f").is_ok());
        assert!(Username::parse("émilie").is_ok());
        assert_eq!(
            Username::parse("A\u{308}rger").map(|u| u.0),
            Ok("Ärger".to_owned())
        );
        assert!(Username::parse("").is_err());
        assert!(Username::parse("with space").is_err());
        assert!(Username::parse("semi;colon").is_err());
        assert!(Username::parse(&"a".repeat(150)).is_ok());
        assert!(Username::parse(&"a".repeat(151)).is_err());
        assert!(Username::parse("nul\0").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("A.b@Example.COM").map(|e| e.0),
            Ok("A.b@example.com".into())
        );
        for bad in [
            "",
            "plain",
            "a@b",
            "@x.com",
            "a@.com",
            "a..b@x.com",
            "a@x..com",
            "a b@x.com",
            "a@x.c0m-",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identity_keys_fold_case_and_compatibility_forms() {
        let key = |raw: &str| IdentityKey::of(raw).as_str().to_owned();
        assert_eq!(key("Ärger"), "ärger");
        assert_eq!(key("ÄRGER"), key("ärger"));
        // A decomposed Ä (A + combining diaeresis) is the same letter.
        assert_eq!(key("A\u{308}rger"), key("Ärger"));
        assert_eq!(key("Straße"), "strasse");
        assert_eq!(key("STRASSE"), key("straße"));
        assert_eq!(key("\u{FB01}le"), "file");
        assert_eq!(key("ＡＢＣ"), "abc");
        assert_eq!(key("ΣΊΣΥΦΟΣ"), key("σίσυφος"));
        assert_eq!(key(" Bob@Example.COM "), "bob@example.com");
        assert_eq!(key("Jürgen@Bücher.DE"), key("JÜRGEN@bücher.de"));
        assert_ne!(key("ärger"), key("arger"));
        assert!(IdentityKey::of("bob@example.com").looks_like_email());
        assert!(!IdentityKey::of("bob").looks_like_email());
        assert_eq!(normalise_identity("ÄRG"), "ärg");
    }

    #[test]
    fn time_zones() {
        assert!(TimeZoneName::parse("Europe/Paris").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert_eq!(TimeZoneName::default().as_str(), "UTC");
    }

    #[test]
    fn json_objects() {
        assert!(bounded_json_object(&serde_json::json!({"a": 1})).is_ok());
        assert!(bounded_json_object(&serde_json::json!([1])).is_err());
        let big = "x".repeat(MAX_JSON_OBJECT_BYTES);
        assert!(bounded_json_object(&serde_json::json!({ "a": big })).is_err());
    }

    #[test]
    fn principals() {
        let user = Principal {
            user_id: UserId(1),
            is_staff: false,
        };
        assert!(user.can_see(UserId(1)));
        assert!(!user.can_see(UserId(2)));
        assert_eq!(user.visible_owner(), Some(UserId(1)));
        let staff = Principal {
            user_id: UserId(3),
            is_staff: true,
        };
        assert!(staff.can_see(UserId(2)));
        assert_eq!(staff.visible_owner(), None);
    }
}
