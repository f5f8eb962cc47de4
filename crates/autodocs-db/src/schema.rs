//! Diesel schema shared by the SQLite and PostgreSQL backends.
//!
//! Written by hand (not `diesel print-schema`) so that one module serves both
//! migrations in `migrations/sqlite` and `migrations/postgres` through
//! `#[derive(MultiConnection)]`. Only portable SQL types appear here:
//!
//! - ids and foreign keys: `BigInt` (`i64`). PostgreSQL stores `BIGINT`;
//!   SQLite stores `INTEGER`, which is 64-bit and read fine as `BigInt`.
//! - `Timestamp` (`chrono::NaiveDateTime`) always holds UTC. PostgreSQL keeps
//!   microseconds; truncate to microseconds before writing so both backends
//!   round-trip the same value.
//! - JSON (`preferences`, `action`, `details`, `payload`) is `Text` holding a
//!   serialised JSON document, never `Jsonb`.
//! - Enumerations are `Varchar` holding the snake_case API value; the database
//!   checks the allowed set.
//!
//! Column names that are Rust keywords or awkward are renamed with
//! `#[sql_name]`: `type` → `type_`, and `missions_planstep."order"` →
//! `position`.

diesel::table! {
    auth_user (id) {
        id -> BigInt,
        password -> Varchar,
        last_login -> Nullable<Timestamp>,
        is_superuser -> Bool,
        username -> Varchar,
        first_name -> Varchar,
        last_name -> Varchar,
        email -> Varchar,
        is_staff -> Bool,
        is_active -> Bool,
        date_joined -> Timestamp,
        /// `IdentityKey` of `username`: unique; NULL only until backfilled.
        username_key -> Nullable<Text>,
        /// `IdentityKey` of `email`: unique; NULL for an empty email.
        email_key -> Nullable<Text>,
    }
}

diesel::table! {
    users_userprofile (id) {
        id -> BigInt,
        user_id -> BigInt,
        phone -> Varchar,
        organization -> Varchar,
        bio -> Text,
        timezone -> Varchar,
        /// JSON object, stored as text.
        preferences -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    auth_refreshtoken (id) {
        id -> BigInt,
        user_id -> BigInt,
        jti -> Varchar,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        replaced_by -> Nullable<Varchar>,
    }
}

diesel::table! {
    /// The admin pages' staff sessions, by the SHA-256 of their key.
    admin_session (id) {
        id -> BigInt,
        digest -> Varchar,
        user_id -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    missions_mission (id) {
        id -> BigInt,
        title -> Varchar,
        description -> Text,
        /// `document_retrieval` · `document_verification` · `form_submission`
        /// · `data_extraction` · `custom`
        #[sql_name = "type"]
        type_ -> Varchar,
        /// `pending` · `in_progress` · `paused` · `completed` · `failed` · `cancelled`
        status -> Varchar,
        /// `low` · `medium` · `high` · `urgent`
        priority -> Varchar,
        /// 0 low, 1 medium, 2 high, 3 urgent (a CHECK ties it to `priority`);
        /// order by this, not by `priority`.
        priority_rank -> SmallInt,
        /// 0..=100
        progress -> SmallInt,
        owner_id -> BigInt,
        deadline -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        overdue_notified_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        /// Every step of the mission, at any depth (kept by triggers).
        steps_total -> Integer,
        /// Its steps in status `completed` (kept by triggers).
        steps_completed -> Integer,
        /// The documents attached to it (kept by triggers).
        document_count -> Integer,
    }
}

diesel::table! {
    missions_planstep (id) {
        id -> BigInt,
        mission_id -> BigInt,
        parent_id -> Nullable<BigInt>,
        title -> Varchar,
        description -> Text,
        /// Position among siblings; the SQL column is `"order"`.
        #[sql_name = "order"]
        position -> Integer,
        /// 1..=5
        depth -> SmallInt,
        /// `pending` · `in_progress` · `completed` · `failed` · `skipped`
        status -> Varchar,
        /// JSON object, stored as text; default `{"kind":"manual"}`.
        action -> Text,
        last_error -> Nullable<Text>,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    documents_document (id) {
        id -> BigInt,
        name -> Varchar,
        /// `tax_return` · `bank_statement` · `identity` · `invoice` · `receipt`
        /// · `contract` · `certificate` · `other`
        #[sql_name = "type"]
        type_ -> Varchar,
        /// `uploaded` · `verified` · `rejected`
        status -> Varchar,
        verified -> Bool,
        verified_at -> Nullable<Timestamp>,
        verification_error -> Text,
        mission_id -> Nullable<BigInt>,
        owner_id -> BigInt,
        original_filename -> Varchar,
        content_type -> Varchar,
        size -> BigInt,
        sha256 -> Varchar,
        storage_key -> Varchar,
        uploaded_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    activities_activity (id) {
        id -> BigInt,
        #[sql_name = "type"]
        type_ -> Varchar,
        message -> Varchar,
        /// JSON object, stored as text.
        details -> Text,
        user_id -> Nullable<BigInt>,
        mission_id -> Nullable<BigInt>,
        document_id -> Nullable<BigInt>,
        timestamp -> Timestamp,
    }
}

diesel::table! {
    jobs_job (id) {
        id -> BigInt,
        queue -> Varchar,
        kind -> Varchar,
        /// JSON, stored as text.
        payload -> Text,
        /// `queued` · `running` · `done` · `dead`
        status -> Varchar,
        attempts -> Integer,
        max_attempts -> Integer,
        run_at -> Timestamp,
        locked_by -> Nullable<Varchar>,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        /// Unique when not null (dedup of periodic jobs).
        unique_key -> Nullable<Varchar>,
        mission_id -> Nullable<BigInt>,
        step_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(users_userprofile -> auth_user (user_id));
diesel::joinable!(auth_refreshtoken -> auth_user (user_id));
diesel::joinable!(admin_session -> auth_user (user_id));
diesel::joinable!(missions_mission -> auth_user (owner_id));
diesel::joinable!(missions_planstep -> missions_mission (mission_id));
diesel::joinable!(documents_document -> auth_user (owner_id));
diesel::joinable!(documents_document -> missions_mission (mission_id));
diesel::joinable!(activities_activity -> auth_user (user_id));
diesel::joinable!(activities_activity -> missions_mission (mission_id));
diesel::joinable!(activities_activity -> documents_document (document_id));
diesel::joinable!(jobs_job -> missions_mission (mission_id));
diesel::joinable!(jobs_job -> missions_planstep (step_id));

diesel::allow_tables_to_appear_in_same_query!(
    auth_user,
    users_userprofile,
    auth_refreshtoken,
    admin_session,
    missions_mission,
    missions_planstep,
    documents_document,
    activities_activity,
    jobs_job,
);

diesel::table! {
    /// One row: the database's random identity, made by its migration.
    autodocs_instance (id) {
        id -> Integer,
        instance_id -> Text,
        created_at -> Timestamp,
    }
}
