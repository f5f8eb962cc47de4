-- Reverse of up.sql (PostgreSQL). Indexes and identity sequences go with their tables.
DROP TABLE IF EXISTS jobs_job;
DROP TABLE IF EXISTS activities_activity;
DROP TABLE IF EXISTS documents_document;
DROP TABLE IF EXISTS missions_planstep;
DROP TABLE IF EXISTS missions_mission;
DROP TABLE IF EXISTS auth_refreshtoken;
DROP TABLE IF EXISTS users_userprofile;
DROP TABLE IF EXISTS auth_user;
