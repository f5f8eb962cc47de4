//! Validation failures as codes with their data: which value was refused,
//! and why. The domain never words them for a client; an inbound adapter
//! (the HTTP crate) renders each code in the words its clients expect.

use std::collections::BTreeMap;

/// Why one value was refused.
///
/// ```
/// use autodocs_domain::validation::{InvalidValue, bounded_text};
///
/// assert_eq!(bounded_text("   ", 10), Err(InvalidValue::Blank));
/// assert_eq!(bounded_text("eleven chars", 10), Err(InvalidValue::TooLong { max: 10 }));
/// assert_eq!(InvalidValue::TooLong { max: 10 }.code(), "max_length");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    /// A required value is absent.
    #[error("required")]
    Required,
    /// An explicit null where none is allowed.
    #[error("null")]
    Null,
    /// An empty (or whitespace-only) text.
    #[error("blank")]
    Blank,
    /// A text longer than `max` characters.
    #[error("longer than {max} characters")]
    TooLong {
        /// The most characters allowed.
        max: usize,
    },
    /// A value outside its list of choices.
    #[error("{value:?} is not one of the choices")]
    InvalidChoice {
        /// The value given.
        value: String,
    },
    /// A number above its bound.
    #[error("greater than {max}")]
    AtMost {
        /// The largest value allowed.
        max: i64,
    },
    /// A number below its bound.
    #[error("less than {min}")]
    AtLeast {
        /// The smallest value allowed.
        min: i64,
    },
    /// A reference to a row that does not exist (or is not the caller's).
    #[error("no object with id {id}")]
    DoesNotExist {
        /// The id given.
        id: i64,
    },
    /// A rule of this domain (a unique name, a valid URL, a strong
    /// password, ...): a stable code and the rule's own description.
    #[error("{message}")]
    Rule {
        /// A stable, machine-readable code (`invalid`, `unique`, ...).
        code: &'static str,
        /// What the rule asks for, in words.
        message: String,
    },
}

impl InvalidValue {
    /// A refusal by a rule of the domain, described by `message`
    /// (code `invalid`).
    pub fn new(message: impl Into<String>) -> Self {
        Self::rule("invalid", message)
    }

    /// A refusal by the rule `code`, described by `message`.
    pub fn rule(code: &'static str, message: impl Into<String>) -> Self {
        Self::Rule {
            code,
            message: message.into(),
        }
    }

    /// An absent required value.
    pub fn required() -> Self {
        Self::Required
    }

    /// An explicit `null` where none is allowed.
    pub fn null() -> Self {
        Self::Null
    }

    /// An empty (or whitespace-only) text.
    pub fn blank() -> Self {
        Self::Blank
    }

    /// A text over `max` characters.
    pub fn too_long(max: usize) -> Self {
        Self::TooLong { max }
    }

    /// A value outside a choice list.
    pub fn invalid_choice(value: &str) -> Self {
        Self::InvalidChoice {
            value: value.to_owned(),
        }
    }

    /// A number above `max`.
    pub fn at_most(max: i64) -> Self {
        Self::AtMost { max }
    }

    /// A number below `min`.
    pub fn at_least(min: i64) -> Self {
        Self::AtLeast { min }
    }

    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Null => "null",
            Self::Blank => "blank",
            Self::TooLong { .. } => "max_length",
            Self::InvalidChoice { .. } => "invalid_choice",
            Self::AtMost { .. } => "max_value",
            Self::AtLeast { .. } => "min_value",
            Self::DoesNotExist { .. } => "does_not_exist",
            Self::Rule { code, .. } => code,
        }
    }
}

impl From<String> for InvalidValue {
    /// A refusal described by `message` (code `invalid`).
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for InvalidValue {
    /// A refusal described by `message` (code `invalid`).
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Every refusal of one request: per field, and for the request as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: BTreeMap<String, Vec<InvalidValue>>,
    general: Vec<InvalidValue>,
}

impl ValidationErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Errors made of one refusal of one field.
    pub fn single(field: impl Into<String>, error: impl Into<InvalidValue>) -> Self {
        let mut errors = Self::new();
        errors.add(field, error);
        errors
    }

    /// Errors made of one refusal of the request as a whole.
    pub fn single_general(error: impl Into<InvalidValue>) -> Self {
        let mut errors = Self::new();
        errors.add_general(error);
        errors
    }

    /// Adds a refusal of a field (`a.b` names field `b` inside object `a`).
    pub fn add(&mut self, field: impl Into<String>, error: impl Into<InvalidValue>) {
        self.fields
            .entry(field.into())
            .or_default()
            .push(error.into());
    }

    /// Adds a refusal that concerns the request as a whole.
    pub fn add_general(&mut self, error: impl Into<InvalidValue>) {
        self.general.push(error.into());
    }

    /// Records the error of a parse, if any, and returns its value.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, InvalidValue>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error);
                None
            }
        }
    }

    /// Adds every refusal of another set.
    pub fn merge(&mut self, other: ValidationErrors) {
        for (field, errors) in other.fields {
            self.fields.entry(field).or_default().extend(errors);
        }
        self.general.extend(other.general);
    }

    /// Whether nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    /// `Ok(())` when empty, else the errors.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The refused fields with their refusals, by field name.
    pub fn fields(&self) -> &BTreeMap<String, Vec<InvalidValue>> {
        &self.fields
    }

    /// The refusals of one field.
    pub fn field(&self, name: &str) -> Option<&[InvalidValue]> {
        self.fields.get(name).map(Vec::as_slice)
    }

    /// The refusals of the request as a whole.
    pub fn general(&self) -> &[InvalidValue] {
        &self.general
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let general = self.general.iter().map(|error| (None, error));
        let fields = self.fields.iter().flat_map(|(field, errors)| {
            errors
                .iter()
                .map(move |error| (Some(field.as_str()), error))
        });
        for (index, (field, error)) in general.chain(fields).enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            match field {
                Some(field) => write!(f, "{field}: {error}")?,
                None => write!(f, "{error}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Trims a string and checks it is non-blank and at most `max` characters.
pub fn bounded_text(raw: &str, max: usize) -> Result<String, InvalidValue> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InvalidValue::blank());
    }
    optional_text(trimmed, max)
}

/// Trims a string and checks it is at most `max` characters; empty is allowed.
pub fn optional_text(raw: &str, max: usize) -> Result<String, InvalidValue> {
    let trimmed = raw.trim();
    if trimmed.contains('\0') {
        return Err(InvalidValue::rule(
            "null_characters",
            "Null characters are not allowed.",
        ));
    }
    if trimmed.chars().count() > max {
        return Err(InvalidValue::too_long(max));
    }
    Ok(trimmed.to_owned())
}

/// The message for a datetime that cannot be parsed.
pub const DATETIME_FORMAT_MESSAGE: &str = "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].";

/// The message for a timestamp outside the years every database holds.
pub const DATETIME_RANGE_MESSAGE: &str = "Ensure this datetime is between years 1 and 9999.";

/// The years a timestamp may have, in UTC: what both databases hold, and
/// what SQLite (timestamps as `YYYY-MM-DD HH:MM:SS[.f]` text) orders
/// correctly, which takes exactly four year digits and no sign.
pub const TIMESTAMP_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Parses an RFC 3339 timestamp (a date alone means its midnight UTC) into
/// UTC, truncated to the microseconds the databases keep. Years outside
/// [`TIMESTAMP_YEARS`] once in UTC are refused, so every timestamp a client
/// sends can be stored, compared and ordered on both databases.
pub fn parse_timestamp(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, InvalidValue> {
    use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SubsecRound, Utc};
    let raw = raw.trim();
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map(|instant| instant.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").map(|naive| naive.and_utc())
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M").map(|naive| naive.and_utc())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|date| date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| InvalidValue::new(DATETIME_FORMAT_MESSAGE))?;
    if !TIMESTAMP_YEARS.contains(&parsed.year()) {
        return Err(InvalidValue::new(DATETIME_RANGE_MESSAGE));
    }
    Ok(parsed.trunc_subsecs(6))
}

#[cfg(test)]
mod timestamp_tests {
    use super::*;

    #[test]
    fn timestamps() {
        let parsed = parse_timestamp("2026-11-25T10:00:00.123456789+01:00").map(|t| t.to_rfc3339());
        assert_eq!(parsed, Ok("2026-11-25T09:00:00.123456+00:00".to_owned()));
        assert!(parse_timestamp("2026-11-25").is_ok());
        assert!(parse_timestamp("2026-11-25T10:00").is_ok());
        for bad in ["", "yesterday", "2026-13-01", "2026-11-25T25:00:00Z", "1e9"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_hold_years_1_to_9999_in_utc() {
        for bad in [
            "-5000-01-01T00:00:00Z",
            "-5000-01-01",
            "-5000-01-01T00:00:00",
            "0000-01-01T00:00:00Z",
            "0000-12-31",
            "+10000-01-01T00:00:00Z",
            "+10000-01-01T00:00:00",
            "10000-01-01T00:00:00Z",
            "10000-01-01",
            "+10000-01-01",
            // In range as written, out of range in UTC.
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
        let first = parse_timestamp("0001-01-01T00:00:00Z").map(|t| t.to_rfc3339());
        assert_eq!(first, Ok("0001-01-01T00:00:00+00:00".to_owned()));
        let last = parse_timestamp("9999-12-31T23:59:59.999999Z").map(|t| t.to_rfc3339());
        assert_eq!(last, Ok("9999-12-31T23:59:59.999999+00:00".to_owned()));
        // Digits past the microsecond are cut, never rounded up past 9999.
        let cut = parse_timestamp("9999-12-31T23:59:59.9999999Z").map(|t| t.to_rfc3339());
        assert_eq!(cut, Ok("9999-12-31T23:59:59.999999+00:00".to_owned()));
    }
}
