-- AutoDocs initial schema (SQLite).
--
-- Mirrors migrations/postgres/2026-11-29-000001_initial/up.sql; both are read
-- through the one diesel schema in crates/autodocs-db/src/schema.rs.
--
-- Conventions:
--   * ids: INTEGER PRIMARY KEY AUTOINCREMENT (read as diesel BigInt / i64).
--   * timestamps: UTC NaiveDateTime stored as TEXT in diesel's format
--     'YYYY-MM-DD HH:MM:SS[.ffffff]'; defaults use the same shape.
--   * booleans: 0/1 with a CHECK.
--   * JSON: TEXT holding a JSON document.
--   * VARCHAR(n) lengths are not enforced by SQLite; the application validates.
-- Enable foreign keys per connection (PRAGMA foreign_keys = ON): SQLite does
-- not enforce them otherwise.

CREATE TABLE auth_user (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    password      VARCHAR(128) NOT NULL,
    last_login    TIMESTAMP NULL,
    is_superuser  BOOLEAN NOT NULL DEFAULT 0 CHECK (is_superuser IN (0, 1)),
    username      VARCHAR(150) NOT NULL,
    first_name    VARCHAR(150) NOT NULL DEFAULT '',
    last_name     VARCHAR(150) NOT NULL DEFAULT '',
    email         VARCHAR(254) NOT NULL,
    is_staff      BOOLEAN NOT NULL DEFAULT 0 CHECK (is_staff IN (0, 1)),
    is_active     BOOLEAN NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    date_joined   TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE UNIQUE INDEX auth_user_username_lower_uniq ON auth_user (lower(username));
CREATE UNIQUE INDEX auth_user_email_lower_uniq ON auth_user (lower(email)) WHERE email <> '';

CREATE TABLE users_userprofile (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL UNIQUE REFERENCES auth_user (id) ON DELETE CASCADE,
    phone         VARCHAR(32) NOT NULL DEFAULT '',
    organization  VARCHAR(200) NOT NULL DEFAULT '',
    bio           TEXT NOT NULL DEFAULT '',
    timezone      VARCHAR(64) NOT NULL DEFAULT 'UTC',
    preferences   TEXT NOT NULL DEFAULT '{}',
    created_at    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE auth_refreshtoken (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    jti           VARCHAR(64) NOT NULL UNIQUE,
    created_at    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    expires_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP NULL,
    replaced_by   VARCHAR(64) NULL
);
CREATE INDEX auth_refreshtoken_user_id_idx ON auth_refreshtoken (user_id);
CREATE INDEX auth_refreshtoken_expires_at_idx ON auth_refreshtoken (expires_at);

CREATE TABLE missions_mission (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    title                VARCHAR(200) NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    type                 VARCHAR(32) NOT NULL
        CHECK (type IN ('document_retrieval', 'document_verification',
                        'form_submission', 'data_extraction', 'custom')),
    status               VARCHAR(16) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'paused',
                          'completed', 'failed', 'cancelled')),
    priority             VARCHAR(8) NOT NULL DEFAULT 'medium'
        CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    priority_rank        SMALLINT NOT NULL DEFAULT 1,
    progress             SMALLINT NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    owner_id             INTEGER NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    deadline             TIMESTAMP NULL,
    started_at           TIMESTAMP NULL,
    completed_at         TIMESTAMP NULL,
    overdue_notified_at  TIMESTAMP NULL,
    created_at           TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at           TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    CONSTRAINT missions_mission_priority_rank_check CHECK (
        (priority = 'low'    AND priority_rank = 0) OR
        (priority = 'medium' AND priority_rank = 1) OR
        (priority = 'high'   AND priority_rank = 2) OR
        (priority = 'urgent' AND priority_rank = 3)
    )
);
CREATE INDEX missions_mission_owner_created_idx ON missions_mission (owner_id, created_at);
CREATE INDEX missions_mission_status_idx ON missions_mission (status);
CREATE INDEX missions_mission_type_idx ON missions_mission (type);
CREATE INDEX missions_mission_priority_rank_idx ON missions_mission (priority_rank);
CREATE INDEX missions_mission_deadline_idx ON missions_mission (deadline);

CREATE TABLE missions_planstep (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    mission_id    INTEGER NOT NULL REFERENCES missions_mission (id) ON DELETE CASCADE,
    parent_id     INTEGER NULL REFERENCES missions_planstep (id) ON DELETE CASCADE,
    title         VARCHAR(200) NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    "order"       INTEGER NOT NULL DEFAULT 0,
    depth         SMALLINT NOT NULL DEFAULT 1 CHECK (depth BETWEEN 1 AND 5),
    status        VARCHAR(16) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'skipped')),
    action        TEXT NOT NULL DEFAULT '{"kind":"manual"}',
    last_error    TEXT NULL,
    started_at    TIMESTAMP NULL,
    completed_at  TIMESTAMP NULL,
    created_at    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX missions_planstep_tree_idx ON missions_planstep (mission_id, parent_id, "order");
CREATE INDEX missions_planstep_parent_id_idx ON missions_planstep (parent_id);

CREATE TABLE documents_document (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                VARCHAR(255) NOT NULL,
    type                VARCHAR(32) NOT NULL DEFAULT 'other'
        CHECK (type IN ('tax_return', 'bank_statement', 'identity', 'invoice',
                        'receipt', 'contract', 'certificate', 'other')),
    status              VARCHAR(16) NOT NULL DEFAULT 'uploaded'
        CHECK (status IN ('uploaded', 'verified', 'rejected')),
    verified            BOOLEAN NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    verified_at         TIMESTAMP NULL,
    verification_error  TEXT NOT NULL DEFAULT '',
    mission_id          INTEGER NULL REFERENCES missions_mission (id) ON DELETE SET NULL,
    owner_id            INTEGER NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    original_filename   VARCHAR(255) NOT NULL,
    content_type        VARCHAR(100) NOT NULL,
    size                BIGINT NOT NULL CHECK (size >= 0),
    sha256              VARCHAR(64) NOT NULL,
    storage_key         VARCHAR(100) NOT NULL UNIQUE,
    uploaded_at         TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at          TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX documents_document_owner_uploaded_idx ON documents_document (owner_id, uploaded_at);
CREATE INDEX documents_document_mission_id_idx ON documents_document (mission_id);
CREATE INDEX documents_document_type_idx ON documents_document (type);
CREATE INDEX documents_document_status_idx ON documents_document (status);

CREATE TABLE activities_activity (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    type         VARCHAR(50) NOT NULL,
    message      VARCHAR(1000) NOT NULL,
    details      TEXT NOT NULL DEFAULT '{}',
    user_id      INTEGER NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    mission_id   INTEGER NULL REFERENCES missions_mission (id) ON DELETE SET NULL,
    document_id  INTEGER NULL REFERENCES documents_document (id) ON DELETE SET NULL,
    timestamp    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX activities_activity_user_timestamp_idx ON activities_activity (user_id, timestamp);
CREATE INDEX activities_activity_mission_id_idx ON activities_activity (mission_id);
CREATE INDEX activities_activity_document_id_idx ON activities_activity (document_id);
CREATE INDEX activities_activity_type_idx ON activities_activity (type);
CREATE INDEX activities_activity_timestamp_idx ON activities_activity (timestamp);

CREATE TABLE jobs_job (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         VARCHAR(32) NOT NULL DEFAULT 'default',
    kind          VARCHAR(64) NOT NULL,
    payload       TEXT NOT NULL DEFAULT '{}',
    status        VARCHAR(16) NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_at        TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    locked_by     VARCHAR(64) NULL,
    locked_until  TIMESTAMP NULL,
    last_error    TEXT NULL,
    unique_key    VARCHAR(128) NULL,
    mission_id    INTEGER NULL REFERENCES missions_mission (id) ON DELETE CASCADE,
    step_id       INTEGER NULL REFERENCES missions_planstep (id) ON DELETE CASCADE,
    created_at    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at    TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX jobs_job_status_run_at_idx ON jobs_job (status, run_at);
CREATE INDEX jobs_job_locked_until_idx ON jobs_job (locked_until);
CREATE UNIQUE INDEX jobs_job_unique_key_uniq ON jobs_job (unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_job_mission_id_idx ON jobs_job (mission_id);
CREATE INDEX jobs_job_step_id_idx ON jobs_job (step_id);
