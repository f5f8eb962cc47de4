DROP INDEX activities_activity_document_id_idx;
CREATE INDEX activities_activity_document_id_idx ON activities_activity (document_id);
DROP INDEX missions_mission_deadline_idx;
CREATE INDEX missions_mission_deadline_idx ON missions_mission (deadline);
CREATE INDEX activities_activity_type_idx ON activities_activity (type);
CREATE INDEX missions_mission_priority_rank_idx ON missions_mission (priority_rank);
CREATE INDEX missions_mission_type_idx ON missions_mission (type);
CREATE INDEX missions_mission_status_idx ON missions_mission (status);
DROP INDEX missions_planstep_mission_status_idx;
