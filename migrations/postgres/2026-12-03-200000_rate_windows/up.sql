-- The throttle and lockout counters, shared by every `serve` process on
-- this database: one fixed window per key (`auth:<address>`,
-- `login:user:<id>`, `login:name:<identity key>`, `password:<id>`; never a
-- secret, at most 200 bytes). Windows are measured by the database's
-- clock; rows of ended windows are deleted by the servers now and then.
CREATE TABLE autodocs_rate_window (
    key          VARCHAR(200) PRIMARY KEY,
    window_ends  TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0)
);
CREATE INDEX autodocs_rate_window_ends_idx ON autodocs_rate_window (window_ends);
