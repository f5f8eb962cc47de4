-- The throttle and lockout counters shared by every `serve` process on a
-- PostgreSQL database. A SQLite file is served by one process, which keeps
-- its counters in memory: the table stays empty here. It exists so that
-- both backends list the same migrations.
CREATE TABLE autodocs_rate_window (
    key          VARCHAR(200) PRIMARY KEY,
    window_ends  TIMESTAMP NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0)
);
CREATE INDEX autodocs_rate_window_ends_idx ON autodocs_rate_window (window_ends);
