-- The counts beside each mission (steps_total, steps_completed) read this
-- index alone, without visiting the step rows.
CREATE INDEX missions_planstep_mission_status_idx ON missions_planstep (mission_id, status);
