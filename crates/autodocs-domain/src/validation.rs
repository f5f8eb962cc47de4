//! Field-level validation errors, shaped like Django REST Framework's.

use std::collections::BTreeMap;

/// Why one value was refused, in words a client can show next to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl InvalidValue {
    /// A refusal with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// DRF's message for a required field that was absent.
    pub fn required() -> Self {
        Self::new("This field is required.")
    }

    /// DRF's message for an explicit `null` where none is allowed.
    pub fn null() -> Self {
        Self::new("This field may not be null.")
    }

    /// DRF's message for an empty (or whitespace-only) string.
    pub fn blank() -> Self {
        Self::new("This field may not be blank.")
    }

    /// DRF's message for a string over `max` characters.
    pub fn too_long(max: usize) -> Self {
        Self::new(format!(
            "Ensure this field has no more than {max} characters."
        ))
    }

    /// DRF's message for a value outside a choice list.
    pub fn invalid_choice(value: &str) -> Self {
        Self::new(format!("\"{value}\" is not a valid choice."))
    }

    /// DRF's message for an integer outside a range.
    pub fn at_most(max: i64) -> Self {
        Self::new(format!("Ensure this value is less than or equal to {max}."))
    }

    /// DRF's message for an integer below a bound.
    pub fn at_least(min: i64) -> Self {
        Self::new(format!(
            "Ensure this value is greater than or equal to {min}."
        ))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The key DRF uses for errors that belong to no single field.
pub const NON_FIELD_ERRORS: &str = "non_field_errors";

/// Every refused field of one request, each with its messages.
///
/// Serialised by the HTTP layer as `{"field": ["message", ...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: BTreeMap<String, Vec<String>>,
}

impl ValidationErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Errors made of one message on one field.
    pub fn single(field: impl Into<String>, error: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, error);
        errors
    }

    /// Adds a message to a field.
    pub fn add(&mut self, field: impl Into<String>, error: impl Into<String>) {
        self.fields
            .entry(field.into())
            .or_default()
            .push(error.into());
    }

    /// Adds an error that concerns the request as a whole.
    pub fn add_non_field(&mut self, error: impl Into<String>) {
        self.add(NON_FIELD_ERRORS, error);
    }

    /// Records the error of a parse, if any, and returns its value.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, InvalidValue>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.0);
                None
            }
        }
    }

    /// Adds every message of another set, field by field.
    pub fn merge(&mut self, other: ValidationErrors) {
        for (field, messages) in other.fields {
            self.fields.entry(field).or_default().extend(messages);
        }
    }

    /// Whether nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `Ok(())` when empty, else the errors.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The refused fields with their messages, by field name.
    pub fn fields(&self) -> &BTreeMap<String, Vec<String>> {
        &self.fields
    }

    /// The messages of one field.
    pub fn field(&self, name: &str) -> Option<&[String]> {
        self.fields.get(name).map(Vec::as_slice)
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (field, messages) in &self.fields {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{field}: {}", messages.join(" "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// The name DRF gives a JSON value's type in its messages
/// (`Expected a dictionary, but got list.`).
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
        return Err(InvalidValue::new("Null characters are not allowed."));
    }
    if trimmed.chars().count() > max {
        return Err(InvalidValue::too_long(max));
    }
    Ok(trimmed.to_owned())
}

/// DRF's message for a datetime it cannot parse.
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
