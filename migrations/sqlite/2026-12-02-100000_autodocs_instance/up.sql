-- The database's identity: one row, a random id made here, at migrate
-- time, so every database (even two migrated from the same files) gets its
-- own. The media root's marker names it; the storage sweep runs only when
-- the two agree.
CREATE TABLE autodocs_instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO autodocs_instance (id, instance_id) VALUES (1, lower(hex(randomblob(16))));
