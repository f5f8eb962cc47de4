//! Timestamps are stored as UTC `TIMESTAMP` (without time zone) on both
//! backends, the one timestamp type `MultiConnection` carries.

use chrono::{DateTime, NaiveDateTime, Utc};

pub(crate) fn to_db(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.naive_utc()
}

pub(crate) fn from_db(stored: NaiveDateTime) -> DateTime<Utc> {
    stored.and_utc()
}
