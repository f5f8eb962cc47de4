DROP INDEX IF EXISTS jobs_job_step_id_uniq;
CREATE INDEX jobs_job_step_id_idx ON jobs_job (step_id);
