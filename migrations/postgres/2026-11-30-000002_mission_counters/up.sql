-- The counts shown beside every mission (steps_total, steps_completed,
-- document_count) are kept on the mission row by triggers, in the same
-- transaction as the change of the step or document, instead of being
-- counted again for each mission of each page read.
ALTER TABLE missions_mission
    ADD COLUMN steps_total INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN steps_completed INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN document_count INTEGER NOT NULL DEFAULT 0;

UPDATE missions_mission SET
    steps_total = (SELECT count(*) FROM missions_planstep AS s
                   WHERE s.mission_id = missions_mission.id),
    steps_completed = (SELECT count(*) FROM missions_planstep AS s
                       WHERE s.mission_id = missions_mission.id AND s.status = 'completed'),
    document_count = (SELECT count(*) FROM documents_document AS d
                      WHERE d.mission_id = missions_mission.id);

CREATE FUNCTION missions_planstep_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status
            AND OLD.mission_id IS NOT DISTINCT FROM NEW.mission_id THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE missions_mission
        SET steps_total = steps_total - 1,
            steps_completed = steps_completed - (OLD.status = 'completed')::integer
        WHERE id = OLD.mission_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE missions_mission
        SET steps_total = steps_total + 1,
            steps_completed = steps_completed + (NEW.status = 'completed')::integer
        WHERE id = NEW.mission_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER missions_planstep_counts
AFTER INSERT OR DELETE OR UPDATE OF status, mission_id ON missions_planstep
FOR EACH ROW EXECUTE FUNCTION missions_planstep_counts();

CREATE FUNCTION documents_document_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.mission_id IS NOT DISTINCT FROM NEW.mission_id THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.mission_id IS NOT NULL THEN
        UPDATE missions_mission SET document_count = document_count - 1 WHERE id = OLD.mission_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.mission_id IS NOT NULL THEN
        UPDATE missions_mission SET document_count = document_count + 1 WHERE id = NEW.mission_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER documents_document_counts
AFTER INSERT OR DELETE OR UPDATE OF mission_id ON documents_document
FOR EACH ROW EXECUTE FUNCTION documents_document_counts();
