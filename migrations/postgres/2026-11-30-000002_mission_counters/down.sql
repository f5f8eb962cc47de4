DROP TRIGGER documents_document_counts ON documents_document;
DROP FUNCTION documents_document_counts();
DROP TRIGGER missions_planstep_counts ON missions_planstep;
DROP FUNCTION missions_planstep_counts();
ALTER TABLE missions_mission
    DROP COLUMN document_count,
    DROP COLUMN steps_completed,
    DROP COLUMN steps_total;
