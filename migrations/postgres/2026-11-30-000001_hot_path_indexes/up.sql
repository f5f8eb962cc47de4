-- Indexes for the requests that are made all the time, and none that every
-- insert pays for without a query that needs them.

-- The counts beside each mission (steps_total, steps_completed) read this
-- index alone, without visiting the step rows.
CREATE INDEX missions_planstep_mission_status_idx ON missions_planstep (mission_id, status);

-- Status, type and priority hold a handful of values each, and every list
-- filters by owner first (indexed): these indexes cost each insert and each
-- change of status a page write and served no query.
DROP INDEX missions_mission_status_idx;
DROP INDEX missions_mission_type_idx;
DROP INDEX missions_mission_priority_rank_idx;
DROP INDEX activities_activity_type_idx;

-- Only rows with a value are ever looked up by these columns.
DROP INDEX missions_mission_deadline_idx;
CREATE INDEX missions_mission_deadline_idx ON missions_mission (deadline) WHERE deadline IS NOT NULL;
DROP INDEX activities_activity_document_id_idx;
CREATE INDEX activities_activity_document_id_idx ON activities_activity (document_id) WHERE document_id IS NOT NULL;
