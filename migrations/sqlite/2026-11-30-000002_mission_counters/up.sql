-- The counts shown beside every mission (steps_total, steps_completed,
-- document_count) are kept on the mission row by triggers, in the same
-- transaction as the change of the step or document, instead of being
-- counted again for each mission of each page read.
ALTER TABLE missions_mission ADD COLUMN steps_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE missions_mission ADD COLUMN steps_completed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE missions_mission ADD COLUMN document_count INTEGER NOT NULL DEFAULT 0;

UPDATE missions_mission SET
    steps_total = (SELECT count(*) FROM missions_planstep AS s
                   WHERE s.mission_id = missions_mission.id),
    steps_completed = (SELECT count(*) FROM missions_planstep AS s
                       WHERE s.mission_id = missions_mission.id AND s.status = 'completed'),
    document_count = (SELECT count(*) FROM documents_document AS d
                      WHERE d.mission_id = missions_mission.id);

CREATE TRIGGER missions_planstep_counts_insert AFTER INSERT ON missions_planstep
BEGIN
    UPDATE missions_mission
    SET steps_total = steps_total + 1,
        steps_completed = steps_completed + (NEW.status = 'completed')
    WHERE id = NEW.mission_id;
END;

CREATE TRIGGER missions_planstep_counts_delete AFTER DELETE ON missions_planstep
BEGIN
    UPDATE missions_mission
    SET steps_total = steps_total - 1,
        steps_completed = steps_completed - (OLD.status = 'completed')
    WHERE id = OLD.mission_id;
END;

CREATE TRIGGER missions_planstep_counts_update AFTER UPDATE OF status, mission_id ON missions_planstep
WHEN OLD.status IS NOT NEW.status OR OLD.mission_id IS NOT NEW.mission_id
BEGIN
    UPDATE missions_mission
    SET steps_total = steps_total - 1,
        steps_completed = steps_completed - (OLD.status = 'completed')
    WHERE id = OLD.mission_id;
    UPDATE missions_mission
    SET steps_total = steps_total + 1,
        steps_completed = steps_completed + (NEW.status = 'completed')
    WHERE id = NEW.mission_id;
END;

CREATE TRIGGER documents_document_counts_insert AFTER INSERT ON documents_document
WHEN NEW.mission_id IS NOT NULL
BEGIN
    UPDATE missions_mission SET document_count = document_count + 1 WHERE id = NEW.mission_id;
END;

CREATE TRIGGER documents_document_counts_delete AFTER DELETE ON documents_document
WHEN OLD.mission_id IS NOT NULL
BEGIN
    UPDATE missions_mission SET document_count = document_count - 1 WHERE id = OLD.mission_id;
END;

CREATE TRIGGER documents_document_counts_update AFTER UPDATE OF mission_id ON documents_document
WHEN OLD.mission_id IS NOT NEW.mission_id
BEGIN
    UPDATE missions_mission SET document_count = document_count - 1 WHERE id = OLD.mission_id;
    UPDATE missions_mission SET document_count = document_count + 1 WHERE id = NEW.mission_id;
END;
