-- The admin pages' staff sessions. Only the SHA-256 of a session's key is
-- kept (the browser holds the key), so a copy of the database opens none.
CREATE TABLE admin_session (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    digest      VARCHAR(64) NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL
);
CREATE INDEX admin_session_user_id_idx ON admin_session (user_id);
CREATE INDEX admin_session_expires_at_idx ON admin_session (expires_at);
