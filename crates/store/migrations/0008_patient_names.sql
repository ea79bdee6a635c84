-- FHIR string search (Patient `family`, `given`, `name`): "starts with",
-- insensitive to case and accents (R4 search §3.1.1.4.8), so `muller` and
-- `MÜLLER` find Müller and `strasse` finds Straße. Each name part of a patient
-- is kept folded (`medrelay_fold`: compatibility decomposition, marks removed,
-- case folded; registered on every connection that writes, see
-- sqlite::register_functions) and a prefix is then a range on the primary
-- key instead of a scan of every patient's JSON.
--
-- Kept by triggers, like the versions of 0004, so no write path can forget it.
-- The key starts with (org, norm) so that `name`, which matches any kind,
-- uses the same range as `family`.
CREATE TABLE patient_names (
    org        TEXT    NOT NULL,
    norm       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('family', 'given', 'prefix', 'suffix')),
    patient_id INTEGER NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    PRIMARY KEY (org, norm, kind, patient_id)
) WITHOUT ROWID;
-- The cascade (patients are not deleted today; the index keeps a future
-- delete from scanning the table).
CREATE INDEX patient_names_patient ON patient_names (patient_id);

CREATE TRIGGER patient_names_insert AFTER INSERT ON patients
BEGIN
    INSERT OR IGNORE INTO patient_names (org, norm, kind, patient_id)
    SELECT NEW.org, medrelay_fold(v), k, NEW.id FROM (
        SELECT json_extract(NEW.json, '$.family') AS v, 'family' AS k
        UNION ALL SELECT json_extract(NEW.json, '$.prefix'), 'prefix'
        UNION ALL SELECT json_extract(NEW.json, '$.suffix'), 'suffix'
        UNION ALL SELECT g.value, 'given' FROM json_each(NEW.json, '$.given') g
    ) WHERE v IS NOT NULL AND medrelay_fold(v) <> '';
END;

CREATE TRIGGER patient_names_update AFTER UPDATE OF json ON patients
WHEN NEW.json IS NOT OLD.json
BEGIN
    DELETE FROM patient_names WHERE patient_id = OLD.id;
    INSERT OR IGNORE INTO patient_names (org, norm, kind, patient_id)
    SELECT NEW.org, medrelay_fold(v), k, NEW.id FROM (
        SELECT json_extract(NEW.json, '$.family') AS v, 'family' AS k
        UNION ALL SELECT json_extract(NEW.json, '$.prefix'), 'prefix'
        UNION ALL SELECT json_extract(NEW.json, '$.suffix'), 'suffix'
        UNION ALL SELECT g.value, 'given' FROM json_each(NEW.json, '$.given') g
    ) WHERE v IS NOT NULL AND medrelay_fold(v) <> '';
END;

-- The patients already stored.
INSERT OR IGNORE INTO patient_names (org, norm, kind, patient_id)
SELECT org, medrelay_fold(v), k, id FROM (
    SELECT org, id, json_extract(json, '$.family') AS v, 'family' AS k FROM patients
    UNION ALL SELECT org, id, json_extract(json, '$.prefix'), 'prefix' FROM patients
    UNION ALL SELECT org, id, json_extract(json, '$.suffix'), 'suffix' FROM patients
    UNION ALL SELECT p.org, p.id, g.value, 'given' FROM patients p, json_each(p.json, '$.given') g
) WHERE v IS NOT NULL AND medrelay_fold(v) <> '';
