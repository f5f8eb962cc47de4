-- A job records the plan step it is running in `step_id` (cleared when the
-- job leaves `running`). One job at a time per step: a second run of the
-- same step (a coalesced run, or one that would take over a step whose
-- worker still renews its lease) cannot take it, so no step action ever
-- runs twice at once.
DROP INDEX IF EXISTS jobs_job_step_id_idx;
UPDATE jobs_job SET step_id = NULL;
CREATE UNIQUE INDEX jobs_job_step_id_uniq ON jobs_job (step_id) WHERE step_id IS NOT NULL;
