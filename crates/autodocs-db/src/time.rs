//! Timestamps are stored as UTC `TIMESTAMP` (without time zone) on both
//! backends, the one timestamp type `MultiConnection` carries.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::sql_types::Timestamp;

use crate::connection::{MultiBackend, MultiRawValue};

pub(crate) fn to_db(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.naive_utc()
}

pub(crate) fn from_db(stored: impl Into<NaiveDateTime>) -> DateTime<Utc> {
    stored.into().and_utc()
}

/// A timestamp read from a row. On SQLite it is text; diesel parses it by
/// trying chrono format strings in turn, which cost 7% of a list request,
/// so the form diesel writes (`YYYY-MM-DD HH:MM:SS[.ffffff]`) is read by
/// hand and anything else still goes through chrono.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub(crate) struct StoredTime(NaiveDateTime);

impl From<StoredTime> for NaiveDateTime {
    fn from(stored: StoredTime) -> Self {
        stored.0
    }
}

impl FromSql<Timestamp, MultiBackend> for StoredTime {
    fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
        match value {
            MultiRawValue::Sqlite(mut value) => {
                let text = value.read_text();
                match parse_sqlite_text(text) {
                    Some(stored) => Ok(Self(stored)),
                    None => NaiveDateTime::parse_from_str(text, "%F %T%.f")
                        .map(Self)
                        .map_err(|_| format!("invalid stored timestamp {text:?}").into()),
                }
            }
            MultiRawValue::Postgresql(value) => {
                <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to 9 fraction digits.
fn parse_sqlite_text(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b' '
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0u32, |value, digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + u32::from(digit - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let nanos = match &bytes[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let digits = number(20..bytes.len())?;
            digits * 10u32.pow(9 - u32::try_from(fraction.len()).ok()?)
        }
        _ => return None,
    };
    let time =
        NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_diesel_writes_as_chrono_would() {
        for text in [
            "2026-11-29 08:05:03.000042",
            "2026-11-29 08:05:03",
            "2024-02-29 23:59:59.999999",
            "1999-01-01 00:00:00.5",
            "2026-11-29 08:05:03.123456789",
        ] {
            let expected =
                NaiveDateTime::parse_from_str(text, "%F %T%.f").expect("chrono parses it");
            assert_eq!(parse_sqlite_text(text), Some(expected), "{text}");
        }
    }

    /// SQLite compares timestamps as text, in the form diesel writes them
    /// (`%F %T%.f`: no fraction, or 3, 6 or 9 digits, whichever is
    /// shortest). Within the years clients may send (1–9999, four digits,
    /// no sign) that text orders as the instants do, and one instant always
    /// has one text, so no fixed-width form of our own is needed.
    #[test]
    fn the_text_diesel_writes_orders_as_the_instants_do() {
        let instants: Vec<NaiveDateTime> = [
            "0001-01-01 00:00:00",
            "0001-01-01 00:00:00.000001",
            "0999-12-31 23:59:59.999999",
            "1000-01-01 00:00:00",
            "2026-11-29 08:05:03",
            "2026-11-29 08:05:03.05",
            "2026-11-29 08:05:03.1",
            "2026-11-29 08:05:03.123",
            "2026-11-29 08:05:03.1234",
            "2026-11-29 08:05:03.5",
            "2026-11-29 08:05:03.999999",
            "2026-11-29 08:05:04",
            "9999-12-31 23:59:59",
            "9999-12-31 23:59:59.999999",
        ]
        .iter()
        .map(|text| NaiveDateTime::parse_from_str(text, "%F %T%.f").expect("valid"))
        .collect();
        let written: Vec<String> = instants
            .iter()
            .map(|instant| instant.format("%F %T%.f").to_string())
            .collect();
        for (pair, texts) in instants.windows(2).zip(written.windows(2)) {
            assert!(pair[0] < pair[1], "{pair:?}");
            assert!(texts[0] < texts[1], "{texts:?} orders as text");
        }
        for (instant, text) in instants.iter().zip(&written) {
            assert_eq!(parse_sqlite_text(text), Some(*instant), "{text}");
        }
    }

    #[test]
    fn leaves_other_forms_to_chrono() {
        for text in [
            "2026-11-29T08:05:03",
            "2026-02-30 08:05:03",
            "2026-11-29 25:05:03",
            "2026-11-29 08:05:03.",
            "2026-11-29 08:05:03.1234567890",
            "2026-11-29 08:05:03+01:00",
            "2026-1x-29 08:05:03",
            "",
        ] {
            assert_eq!(parse_sqlite_text(text), None, "{text}");
        }
    }
}
