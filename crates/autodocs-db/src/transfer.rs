//! `autodocs dumpdata` / `autodocs loaddata`: a deployment's data as JSON,
//! so it can move between SQLite and PostgreSQL (or to a new server).
//!
//! The file is Django's `dumpdata` format, a JSON array of
//! `{"model": "<app>.<model>", "pk": <id>, "fields": {...}}` objects named
//! after the tables (`auth_user` is `auth.user`), one object a line, in
//! table dependency order then by primary key, so `loaddata` inserts them
//! in file order. Foreign keys are fields named without `_id` (`owner`,
//! `mission`), as Django writes them; timestamps are RFC 3339 in UTC with
//! microseconds; the JSON columns (`preferences`, `action`, `details`,
//! `payload`) are nested JSON. The file ends with one `autodocs.sequence`
//! object a table: the last id handed out, so ids of deleted rows are not
//! given out again after the move (SQLite's AUTOINCREMENT promise).
//!
//! What is dumped: users (with their password hashes), profiles, missions,
//! plan steps, documents' metadata (the files stay in the media root),
//! activities and background jobs (a queued run of a mission, a timer or a
//! dead job an operator has yet to look at is work the deployment owes).
//! Derived columns are not: a mission's `priority_rank` follows from its
//! priority, and its step and document counts are kept by the triggers
//! while the steps and documents are inserted. Left out on purpose:
//! refresh tokens and admin sessions (everyone signs in again; a copy of
//! the data opens no session), the throttle and lockout counters (short
//! windows) and the database's identity row (each database keeps its own,
//! see the storage sweep).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use autodocs_domain::mission::Priority;
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::connection::{AnyConnection, Backend, Database, DatabaseError};
use crate::identity::IdentityConflict;
use crate::schema::{
    activities_activity, auth_user, documents_document, jobs_job, missions_mission,
    missions_planstep, users_userprofile,
};

/// Rows read from the database at a time while dumping: memory stays
/// bounded whatever the size of a table.
const PAGE: i64 = 500;

/// The model of the records that carry a table's sequence.
const SEQUENCE_MODEL: &str = "autodocs.sequence";

/// One dumped table: its model label and its SQL name.
struct Table {
    label: &'static str,
    name: &'static str,
}

/// Every dumped table, parents before children.
const TABLES: [Table; 7] = [
    Table {
        label: "auth.user",
        name: "auth_user",
    },
    Table {
        label: "users.userprofile",
        name: "users_userprofile",
    },
    Table {
        label: "missions.mission",
        name: "missions_mission",
    },
    Table {
        label: "missions.planstep",
        name: "missions_planstep",
    },
    Table {
        label: "documents.document",
        name: "documents_document",
    },
    Table {
        label: "activities.activity",
        name: "activities_activity",
    },
    Table {
        label: "jobs.job",
        name: "jobs_job",
    },
];

/// Why a dump or a load failed. A failed load changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// No connection to the database.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// A statement failed; says what was being done.
    #[error("{context}: {reason}")]
    Query {
        /// What was being done (`reading missions.mission`).
        context: String,
        /// The database's words.
        reason: String,
    },
    /// The dump could not be written out.
    #[error("cannot write the dump: {0}")]
    Write(#[source] std::io::Error),
    /// A stored value cannot be represented (JSON column holding no JSON).
    #[error("{0}")]
    Corrupt(String),
    /// The file is not JSON, not in the format, or an object was refused;
    /// says which object and where.
    #[error("{0}")]
    Invalid(String),
    /// The target database already holds rows in these tables.
    #[error(
        "the database already holds data (in {}); loaddata loads only into an empty, \
         migrated database and never overwrites",
        .0.join(", ")
    )]
    NotEmpty(Vec<&'static str>),
}

/// What a dump wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Objects written per model, in file order (sequences not counted).
    pub models: Vec<(&'static str, u64)>,
}

impl DumpSummary {
    /// Every row object written.
    pub fn objects(&self) -> u64 {
        self.models.iter().map(|(_, count)| count).sum()
    }
}

/// What a load inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Row objects inserted (sequence records not counted).
    pub objects: u64,
    /// Users whose identity keys were missing from the file and could not
    /// be filled in (see [`Database::backfill_identity_keys`]).
    pub identity_conflicts: Vec<IdentityConflict>,
}

/// The database's words for a failed statement, on one line, with
/// PostgreSQL's detail (which key, which value) when it gives one.
fn reason(error: &DieselError) -> String {
    let text = match error {
        DieselError::DatabaseError(_, info) => match info.details() {
            Some(details) => format!("{} ({details})", info.message()),
            None => info.message().to_owned(),
        },
        other => other.to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn query_error(context: impl Into<String>) -> impl FnOnce(DieselError) -> TransferError {
    let context = context.into();
    move |error| TransferError::Query {
        reason: reason(&error),
        context,
    }
}

/// Timestamps as RFC 3339 in UTC with microseconds (what both databases
/// keep), e.g. `2026-11-25T10:00:00.123456Z`.
mod stamp {
    use super::*;
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &NaiveDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&value.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<NaiveDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(D::Error::custom)
    }

    /// Any RFC 3339 offset is accepted and converted to UTC; digits past
    /// the microsecond are dropped, as PostgreSQL would.
    pub(super) fn parse(text: &str) -> Result<NaiveDateTime, String> {
        DateTime::parse_from_rfc3339(text)
            .map(|instant| instant.with_timezone(&Utc).naive_utc().trunc_subsecs(6))
            .map_err(|error| {
                format!(
                    "invalid timestamp {text:?} ({error}); expected RFC 3339 such as \
                     2026-11-25T10:00:00.123456Z"
                )
            })
    }

    pub(super) mod optional {
        use super::*;

        pub(in super::super) fn serialize<S: Serializer>(
            value: &Option<NaiveDateTime>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<NaiveDateTime>, D::Error> {
            match Option::<String>::deserialize(deserializer)? {
                Some(text) => super::parse(&text).map(Some).map_err(D::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// A JSON document stored as text, dumped as nested JSON. What the server
/// stores is `serde_json`'s compact text with sorted keys, so reading it
/// back writes the very same text.
mod json_text {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|error| S::Error::custom(format!("the stored JSON is invalid: {error}")))?;
        value.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<String, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        serde_json::to_string(&value).map_err(D::Error::custom)
    }
}

/// `auth.user`. The identity keys are dumped as they are (a key another
/// account holds stays empty); a file without them gets them computed
/// after the load, as `migrate` does.
#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = auth_user, treat_none_as_default_value = false)]
#[serde(deny_unknown_fields)]
struct User {
    #[serde(skip)]
    id: i64,
    password: String,
    #[serde(with = "stamp::optional")]
    last_login: Option<NaiveDateTime>,
    is_superuser: bool,
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    is_staff: bool,
    is_active: bool,
    #[serde(with = "stamp")]
    date_joined: NaiveDateTime,
    #[serde(default)]
    username_key: Option<String>,
    #[serde(default)]
    email_key: Option<String>,
}

/// `users.userprofile`.
#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = users_userprofile, treat_none_as_default_value = false)]
#[serde(deny_unknown_fields)]
struct Profile {
    #[serde(skip)]
    id: i64,
    #[serde(rename = "user")]
    user_id: i64,
    phone: String,
    organization: String,
    bio: String,
    timezone: String,
    #[serde(with = "json_text")]
    preferences: String,
    #[serde(with = "stamp")]
    created_at: NaiveDateTime,
    #[serde(with = "stamp")]
    updated_at: NaiveDateTime,
}

/// `missions.mission`, without what is derived: `priority_rank` (from the
/// priority) and the counts (kept by triggers as steps and documents load).
#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = missions_mission, treat_none_as_default_value = false)]
#[serde(deny_unknown_fields)]
struct Mission {
    #[serde(skip)]
    id: i64,
    title: String,
    description: String,
    #[serde(rename = "type")]
    type_: String,
    status: String,
    priority: String,
    #[serde(skip)]
    priority_rank: i16,
    progress: i16,
    #[serde(rename = "owner")]
    owner_id: i64,
    #[serde(with = "stamp::optional")]
    deadline: Option<NaiveDateTime>,
    #[serde(with = "stamp::optional")]
    started_at: Option<NaiveDateTime>,
    #[serde(with = "stamp::optional")]
    completed_at: Option<NaiveDateTime>,
    #[serde(with = "stamp::optional")]
    overdue_notified_at: Option<NaiveDateTime>,
    #[serde(with = "stamp")]
    created_at: NaiveDateTime,
    #[serde(with = "stamp")]
    updated_at: NaiveDateTime,
}

/// `missions.planstep`.
#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = missions_planstep, treat_none_as_default_value = false)]
#[serde(deny_unknown_fields)]
struct PlanStep {
    #[serde(skip)]
    id: i64,
    #[serde(rename = "mission")]
    mission_id: i64,
    #[serde(rename = "parent")]
    parent_id: Option<i64>,
    title: String,
    description: String,
    #[serde(rename = "order")]
    position: i32,
    depth: i16,
    status: String,
    #[serde(with = "json_text")]
    action: String,
    last_error: Option<String>,
    #[serde(with = "stamp::optional")]
    started_at: Option<NaiveDateTime>,
    #[serde(with = "stamp::optional")]
    completed_at: Option<NaiveDateTime>,
    #[serde(with = "stamp")]
    created_at: NaiveDateTime,
    #[serde(with = "stamp")]
    updated_at: NaiveDateTime,
}

/// `documents.document`: the metadata; the bytes stay in the media root
/// under `storage_key`.
#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = documents_document, treat_none_as_default_value = false)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(skip)]
    id: i64,
    name: String,
    #[serde(rename = "type")]
    type_: String,
    status: String,
    verified: bool,
    #[serde(with = "stamp::optional")]
    verified_at: Option<NaiveDateTime>,
    verification_error: String,
    #[serde(rename = "mission")]
    mission_id: Option<i64>,
    #[serde(rename = "owner")]
    owner_id: i64,
    original_filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    storage_key: String,
    #[serde(with = "stamp")]
    uploaded_at: NaiveDateTime,
    #[serde(with = "stamp")]
    updated_at: NaiveDateTime,
}

/// `activities.activity`.
#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = activities_activity, treat_none_as_default_value = false)]
#[serde(deny_unknown_fields)]
struct Activity {
    #[serde(skip)]
    id: i64,
    #[serde(rename = "type")]
    type_: String,
    message: String,
    #[serde(with = "json_text")]
    details: String,
    #[serde(rename = "user")]
    user_id: Option<i64>,
    #[serde(rename = "mission")]
    mission_id: Option<i64>,
    #[serde(rename = "document")]
    document_id: Option<i64>,
    #[serde(with = "stamp")]
    timestamp: NaiveDateTime,
}

/// `jobs.job`.
#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = jobs_job, treat_none_as_default_value = false)]
#[serde(deny_unknown_fields)]
struct Job {
    #[serde(skip)]
    id: i64,
    queue: String,
    kind: String,
    #[serde(with = "json_text")]
    payload: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    #[serde(with = "stamp")]
    run_at: NaiveDateTime,
    locked_by: Option<String>,
    #[serde(with = "stamp::optional")]
    locked_until: Option<NaiveDateTime>,
    last_error: Option<String>,
    unique_key: Option<String>,
    #[serde(rename = "mission")]
    mission_id: Option<i64>,
    #[serde(rename = "step")]
    step_id: Option<i64>,
    #[serde(with = "stamp")]
    created_at: NaiveDateTime,
    #[serde(with = "stamp")]
    updated_at: NaiveDateTime,
}

/// The fields of an `autodocs.sequence` record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceFields {
    /// The last id the table handed out (0: none yet).
    last_value: i64,
}

/// One object of the file, as written.
#[derive(Serialize)]
struct Record<'a, P: Serialize, F: Serialize> {
    model: &'a str,
    pk: P,
    fields: &'a F,
}

/// One object of the file, as read: the fields are typed once the model
/// is known.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    model: String,
    pk: serde_json::Value,
    fields: serde_json::Map<String, serde_json::Value>,
}

/// Writes the objects: `[`, one object a line, `]`.
struct Output<'w> {
    out: &'w mut dyn Write,
    written: u64,
}

impl Output<'_> {
    fn record<P: Serialize, F: Serialize>(
        &mut self,
        model: &str,
        pk: P,
        fields: &F,
        describe: impl Fn() -> String,
    ) -> Result<(), TransferError> {
        let separator: &[u8] = if self.written == 0 { b"\n" } else { b",\n" };
        self.out
            .write_all(separator)
            .map_err(TransferError::Write)?;
        serde_json::to_writer(&mut *self.out, &Record { model, pk, fields }).map_err(|error| {
            if error.is_io() {
                TransferError::Write(std::io::Error::other(error.to_string()))
            } else {
                TransferError::Corrupt(format!("{}: {error}", describe()))
            }
        })?;
        self.written += 1;
        Ok(())
    }
}

/// Writes every row of one table, a page at a time by primary key; returns
/// how many and the highest id.
macro_rules! dump_table {
    ($conn:expr, $output:expr, $table:ident, $row:ty, $label:expr) => {{
        let mut last = 0_i64;
        let mut count = 0_u64;
        loop {
            let rows: Vec<$row> = $table::table
                .filter($table::id.gt(last))
                .order($table::id.asc())
                .limit(PAGE)
                .select(<$row>::as_select())
                .load($conn)
                .map_err(query_error(format!("reading {}", $label)))?;
            let Some(tail) = rows.last() else { break };
            last = tail.id;
            for row in &rows {
                $output.record($label, row.id, row, || format!("{} pk {}", $label, row.id))?;
            }
            count += rows.len() as u64;
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        (count, last)
    }};
}

/// The last id a table's sequence handed out (0 when none was).
fn read_sequence(conn: &mut AnyConnection, table: &str) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let row: Row = match conn {
        AnyConnection::Sqlite(sqlite) => diesel::sql_query(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0) AS value",
        )
        .bind::<diesel::sql_types::Text, _>(table)
        .get_result(sqlite)?,
        AnyConnection::Postgresql(pg) => diesel::sql_query(
            "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0) \
             AS value",
        )
        .bind::<diesel::sql_types::Text, _>(table)
        .get_result(pg)?,
    };
    Ok(row.value)
}

/// Makes a table's sequence continue after `last` (never moving it back).
fn advance_sequence(conn: &mut AnyConnection, table: &str, last: i64) -> QueryResult<()> {
    use diesel::sql_types::{BigInt, Text};
    if last < 1 {
        return Ok(());
    }
    match conn {
        // Rows inserted with their ids already moved the sequence to the
        // highest of them; a higher recorded value (the highest rows were
        // deleted) is written by hand, as SQLite allows.
        AnyConnection::Sqlite(sqlite) => {
            diesel::sql_query("UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1 AND seq < ?2")
                .bind::<Text, _>(table)
                .bind::<BigInt, _>(last)
                .execute(sqlite)?;
            diesel::sql_query(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2 \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)",
            )
            .bind::<Text, _>(table)
            .bind::<BigInt, _>(last)
            .execute(sqlite)?;
        }
        // Inserting explicit ids never moves an identity's sequence.
        AnyConnection::Postgresql(pg) => {
            diesel::sql_query(
                "SELECT setval(pg_get_serial_sequence($1, 'id')::regclass, \
                 GREATEST($2, COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0)), true)",
            )
            .bind::<Text, _>(table)
            .bind::<BigInt, _>(last)
            .execute(pg)?;
        }
    }
    Ok(())
}

/// Runs `work` in a transaction opened with `begin`: committed when it
/// succeeds, rolled back otherwise.
fn in_transaction<T>(
    conn: &mut AnyConnection,
    begin: &str,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, TransferError>,
) -> Result<T, TransferError> {
    conn.batch_execute(begin)
        .map_err(query_error("starting a transaction"))?;
    match work(conn) {
        Ok(value) => {
            if let Err(error) = conn.batch_execute("COMMIT") {
                let _ = conn.batch_execute("ROLLBACK");
                return Err(query_error("committing")(error));
            }
            Ok(value)
        }
        Err(error) => {
            let _ = conn.batch_execute("ROLLBACK");
            Err(error)
        }
    }
}

impl Database {
    /// Writes every row a deployment needs (users with their password
    /// hashes, profiles, missions, plan steps, documents' metadata,
    /// activities, jobs; then each table's sequence) to `out` as Django's
    /// dumpdata JSON, from one consistent snapshot,
    /// reading each table a page at a time: memory stays flat whatever the
    /// size of the database. Writes nothing to the database. Flush `out`
    /// afterwards.
    pub fn dump(&self, out: &mut dyn Write) -> Result<DumpSummary, TransferError> {
        let mut conn = self.connection()?;
        // One snapshot for every table, so the rows agree with each other
        // even while a server writes.
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        in_transaction(&mut conn, begin, |conn| {
            let mut output = Output { out, written: 0 };
            output.out.write_all(b"[").map_err(TransferError::Write)?;
            let mut summary = DumpSummary::default();
            let mut highest = Vec::with_capacity(TABLES.len());
            for table in &TABLES {
                let label = table.label;
                let (count, last) = match table.name {
                    "auth_user" => dump_table!(conn, output, auth_user, User, label),
                    "users_userprofile" => {
                        dump_table!(conn, output, users_userprofile, Profile, label)
                    }
                    "missions_mission" => {
                        dump_table!(conn, output, missions_mission, Mission, label)
                    }
                    "missions_planstep" => {
                        dump_table!(conn, output, missions_planstep, PlanStep, label)
                    }
                    "documents_document" => {
                        dump_table!(conn, output, documents_document, Document, label)
                    }
                    "activities_activity" => {
                        dump_table!(conn, output, activities_activity, Activity, label)
                    }
                    _ => dump_table!(conn, output, jobs_job, Job, label),
                };
                summary.models.push((label, count));
                highest.push(last);
            }
            for (table, last) in TABLES.iter().zip(highest) {
                let sequence = read_sequence(conn, table.name).map_err(query_error(format!(
                    "reading the sequence of {}",
                    table.label
                )))?;
                let fields = SequenceFields {
                    last_value: sequence.max(last),
                };
                output.record(SEQUENCE_MODEL, table.label, &fields, || {
                    format!("the sequence of {}", table.label)
                })?;
            }
            let tail: &[u8] = if output.written == 0 {
                b"]\n"
            } else {
                b"\n]\n"
            };
            output.out.write_all(tail).map_err(TransferError::Write)?;
            Ok(summary)
        })
    }

    /// Loads a file written by [`Database::dump`] into this database, which
    /// must be migrated and hold no row in any dumped table (it refuses
    /// otherwise, changing nothing). Every row keeps its id and timestamps;
    /// the sequences continue after the highest id, or after the value the
    /// file records if higher. All in one transaction: on any error
    /// (malformed JSON, an unknown model or field, a refused row) nothing is
    /// loaded, and the error names the object and the line. The file is
    /// read as a stream, one object at a time.
    pub fn load(&self, input: impl Read) -> Result<LoadSummary, TransferError> {
        let mut conn = self.connection()?;
        // SQLite: take the write lock now, not on the first insert.
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let (objects, keyless) = in_transaction(&mut conn, begin, |conn| {
            refuse_unless_empty(conn)?;
            let mut loader = Loader {
                conn,
                objects: 0,
                sequences: BTreeMap::new(),
                forward_parents: Vec::new(),
                failure: None,
            };
            let lines = std::rc::Rc::new(std::cell::Cell::new(0));
            let input = CountLines {
                inner: input,
                lines: std::rc::Rc::clone(&lines),
            };
            let mut deserializer = serde_json::Deserializer::from_reader(input);
            let parsed = Objects(&mut loader, &lines)
                .deserialize(&mut deserializer)
                .and_then(|()| deserializer.end());
            if let Err(error) = parsed {
                return Err(match loader.failure.take() {
                    Some(failure) => TransferError::Invalid(failure),
                    None => TransferError::Invalid(format!(
                        "the file is not valid dumpdata JSON (after object {}): {error}",
                        loader.objects
                    )),
                });
            }
            loader.finish()
        })?;
        drop(conn);
        // Keys the file did not carry (a file from elsewhere) are computed
        // as `migrate` computes them, outside the load's transaction: a
        // conflict is reported, not fatal.
        let identity_conflicts = if keyless {
            self.backfill_identity_keys()?
        } else {
            Vec::new()
        };
        Ok(LoadSummary {
            objects,
            identity_conflicts,
        })
    }
}

/// Refuses to load into a database holding any row of a dumped table.
fn refuse_unless_empty(conn: &mut AnyConnection) -> Result<(), TransferError> {
    macro_rules! holds_rows {
        ($table:ident) => {
            $table::table
                .select($table::id)
                .first::<i64>(conn)
                .optional()
                .map_err(query_error(concat!("reading ", stringify!($table))))?
                .is_some()
        };
    }
    let occupied: Vec<&'static str> = [
        ("auth_user", holds_rows!(auth_user)),
        ("users_userprofile", holds_rows!(users_userprofile)),
        ("missions_mission", holds_rows!(missions_mission)),
        ("missions_planstep", holds_rows!(missions_planstep)),
        ("documents_document", holds_rows!(documents_document)),
        ("activities_activity", holds_rows!(activities_activity)),
        ("jobs_job", holds_rows!(jobs_job)),
    ]
    .into_iter()
    .filter_map(|(name, occupied)| occupied.then_some(name))
    .collect();
    if occupied.is_empty() {
        Ok(())
    } else {
        Err(TransferError::NotEmpty(occupied))
    }
}

/// Counts the line breaks serde_json has read, to say on which line an
/// object was refused (serde_json reads a byte at a time, so this is its
/// position, not a buffer's).
struct CountLines<R> {
    inner: R,
    lines: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        let breaks = buf[..read].iter().filter(|byte| **byte == b'\n').count();
        self.lines.set(self.lines.get() + breaks as u64);
        Ok(read)
    }
}

/// Inserts the objects of a file as they are read.
struct Loader<'c> {
    conn: &'c mut AnyConnection,
    /// Row objects inserted so far.
    objects: u64,
    /// The `autodocs.sequence` records, by table.
    sequences: BTreeMap<&'static str, i64>,
    /// Steps whose parent has a higher id (a step moved under a later
    /// one): inserted without it, the parent set once every step is in.
    forward_parents: Vec<(i64, i64)>,
    /// Why the object being read was refused (serde's error then only
    /// carries the position).
    failure: Option<String>,
}

impl Loader<'_> {
    /// One object: typed by its model and inserted.
    fn object(&mut self, record: RawRecord) -> Result<(), String> {
        let index = self.objects + 1;
        let RawRecord { model, pk, fields } = record;
        let context = format!("object {index} ({model} pk {pk})");
        if model == SEQUENCE_MODEL {
            return self
                .sequence(&pk, fields)
                .map_err(|why| format!("{context}: {why}"));
        }
        let id = match pk.as_i64() {
            Some(id) if id > 0 => id,
            _ => return Err(format!("{context}: pk must be a positive integer")),
        };
        self.insert(&model, id, fields)
            .map_err(|why| format!("{context}: {why}"))?;
        self.objects += 1;
        Ok(())
    }

    fn insert(
        &mut self,
        model: &str,
        id: i64,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        fn typed<T: serde::de::DeserializeOwned>(
            fields: serde_json::Map<String, serde_json::Value>,
        ) -> Result<T, String> {
            serde_json::from_value(serde_json::Value::Object(fields))
                .map_err(|error| error.to_string())
        }
        let conn = &mut *self.conn;
        let inserted = match model {
            "auth.user" => {
                let row = User {
                    id,
                    ..typed::<User>(fields)?
                };
                diesel::insert_into(auth_user::table)
                    .values(&row)
                    .execute(conn)
            }
            "users.userprofile" => {
                let row = Profile {
                    id,
                    ..typed::<Profile>(fields)?
                };
                diesel::insert_into(users_userprofile::table)
                    .values(&row)
                    .execute(conn)
            }
            "missions.mission" => {
                let row = typed::<Mission>(fields)?;
                let priority_rank = Priority::parse(&row.priority)
                    .map_err(|_| format!("unknown priority {:?}", row.priority))?
                    .rank();
                let row = Mission {
                    id,
                    priority_rank,
                    ..row
                };
                diesel::insert_into(missions_mission::table)
                    .values(&row)
                    .execute(conn)
            }
            "missions.planstep" => {
                let mut row = PlanStep {
                    id,
                    ..typed::<PlanStep>(fields)?
                };
                // Rows come in id order: a parent with a higher id is not
                // in yet, and foreign keys are checked at once.
                if let Some(parent) = row.parent_id.filter(|parent| *parent > id) {
                    row.parent_id = None;
                    self.forward_parents.push((id, parent));
                }
                diesel::insert_into(missions_planstep::table)
                    .values(&row)
                    .execute(conn)
            }
            "documents.document" => {
                let row = Document {
                    id,
                    ..typed::<Document>(fields)?
                };
                diesel::insert_into(documents_document::table)
                    .values(&row)
                    .execute(conn)
            }
            "activities.activity" => {
                let row = Activity {
                    id,
                    ..typed::<Activity>(fields)?
                };
                diesel::insert_into(activities_activity::table)
                    .values(&row)
                    .execute(conn)
            }
            "jobs.job" => {
                let row = Job {
                    id,
                    ..typed::<Job>(fields)?
                };
                diesel::insert_into(jobs_job::table)
                    .values(&row)
                    .execute(conn)
            }
            other => {
                let known: Vec<&str> = TABLES.iter().map(|table| table.label).collect();
                return Err(format!(
                    "unknown model {other:?} (known: {}, {SEQUENCE_MODEL})",
                    known.join(", ")
                ));
            }
        };
        inserted
            .map(drop)
            .map_err(|error| format!("refused by the database: {}", reason(&error)))
    }

    fn sequence(
        &mut self,
        pk: &serde_json::Value,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        let table = TABLES
            .iter()
            .find(|table| pk.as_str() == Some(table.label))
            .ok_or_else(|| "pk must name a dumped model, such as \"auth.user\"".to_owned())?;
        let fields: SequenceFields = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|error| error.to_string())?;
        if fields.last_value < 0 {
            return Err("last_value must not be negative".to_owned());
        }
        self.sequences.insert(table.name, fields.last_value);
        Ok(())
    }

    /// After the last object: the deferred parents, then the sequences.
    /// Returns the objects inserted and whether some user lacks a key.
    fn finish(self) -> Result<(u64, bool), TransferError> {
        let conn = self.conn;
        for (step, parent) in self.forward_parents {
            diesel::update(missions_planstep::table.find(step))
                .set(missions_planstep::parent_id.eq(parent))
                .execute(conn)
                .map_err(query_error(format!(
                    "setting the parent of missions.planstep pk {step} to {parent}"
                )))?;
        }
        macro_rules! highest_id {
            ($table:ident) => {
                $table::table
                    .select(diesel::dsl::max($table::id))
                    .first::<Option<i64>>(conn)
                    .map_err(query_error(concat!("reading ", stringify!($table))))?
                    .unwrap_or(0)
            };
        }
        let highest = [
            highest_id!(auth_user),
            highest_id!(users_userprofile),
            highest_id!(missions_mission),
            highest_id!(missions_planstep),
            highest_id!(documents_document),
            highest_id!(activities_activity),
            highest_id!(jobs_job),
        ];
        for (table, highest) in TABLES.iter().zip(highest) {
            let recorded = self.sequences.get(table.name).copied().unwrap_or(0);
            advance_sequence(conn, table.name, recorded.max(highest)).map_err(query_error(
                format!("setting the sequence of {}", table.label),
            ))?;
        }
        let keyless = auth_user::table
            .filter(
                auth_user::username_key
                    .is_null()
                    .or(auth_user::email_key.is_null().and(auth_user::email.ne(""))),
            )
            .select(auth_user::id)
            .first::<i64>(conn)
            .optional()
            .map_err(query_error("reading auth_user"))?
            .is_some();
        Ok((self.objects, keyless))
    }
}

/// The file's array, inserted element by element as serde reads it.
/// With the line breaks read so far: an object is refused right after
/// its closing brace, on its last line (serde_json's own position would
/// be past what follows it).
struct Objects<'l, 'c>(&'l mut Loader<'c>, &'l std::cell::Cell<u64>);

impl<'de> DeserializeSeed<'de> for Objects<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Objects<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON array of objects written by `autodocs dumpdata`")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<RawRecord>()? {
            if let Err(failure) = self.0.object(record) {
                // The message is kept aside; this error only stops serde.
                self.0.failure = Some(format!("{failure} (line {})", self.1.get() + 1));
                return Err(serde::de::Error::custom("refused"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let instant = stamp::parse("2026-11-25T10:00:00.123456789+01:00").expect("parses");
        assert_eq!(
            instant.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            "2026-11-25 09:00:00.123456"
        );
        let written = serde_json::to_string(&Record {
            model: "m",
            pk: 1,
            fields: &SequenceFields { last_value: 3 },
        })
        .expect("serialises");
        assert_eq!(written, r#"{"model":"m","pk":1,"fields":{"last_value":3}}"#);
        struct Stamp(NaiveDateTime);
        impl Serialize for Stamp {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                stamp::serialize(&self.0, s)
            }
        }
        let whole = stamp::parse("0999-01-02T03:04:05Z").expect("parses");
        assert_eq!(
            serde_json::to_string(&Stamp(whole)).expect("serialises"),
            r#""0999-01-02T03:04:05.000000Z""#
        );
        assert!(stamp::parse("2026-11-25 10:00:00").is_err());
    }

    #[test]
    fn json_columns_round_trip_the_text_the_server_stores() {
        #[derive(Serialize, Deserialize)]
        struct Holder {
            #[serde(with = "json_text")]
            value: String,
        }
        for stored in [
            "{}",
            r#"{"kind":"manual"}"#,
            r#"{"a":[1,2.5,null],"b":{"c":"d\n"}}"#,
        ] {
            let holder = Holder {
                value: stored.to_owned(),
            };
            let written = serde_json::to_string(&holder).expect("serialises");
            let read: Holder = serde_json::from_str(&written).expect("deserialises");
            assert_eq!(read.value, stored);
        }
        let corrupt = Holder {
            value: "{not json".to_owned(),
        };
        assert!(serde_json::to_string(&corrupt).is_err());
    }
}
