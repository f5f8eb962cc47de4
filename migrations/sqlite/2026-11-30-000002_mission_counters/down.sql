DROP TRIGGER documents_document_counts_update;
DROP TRIGGER documents_document_counts_delete;
DROP TRIGGER documents_document_counts_insert;
DROP TRIGGER missions_planstep_counts_update;
DROP TRIGGER missions_planstep_counts_delete;
DROP TRIGGER missions_planstep_counts_insert;
ALTER TABLE missions_mission DROP COLUMN document_count;
ALTER TABLE missions_mission DROP COLUMN steps_completed;
ALTER TABLE missions_mission DROP COLUMN steps_total;
