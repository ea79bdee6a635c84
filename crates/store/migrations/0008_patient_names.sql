-- FHIR string search (Patient `family`, `given`, and `name`, which matches
-- either): "starts with", insensitive to case and accents (R4 search
-- §3.1.1.4.8), so `muller` and `MÜLLER` find Müller and `strasse` finds
-- Straße. Each family and given name of a patient is kept folded
-- (`crate::fold`: compatibility decomposition, marks removed, case folded),
-- and a prefix is then a range on the primary key instead of a scan of every
-- patient's JSON. The backfill below calls the same function as
-- `medrelay_fold`, registered on the connection that migrates.
--
-- Written by the statements that write a patient's JSON
-- (src/sqlite/names.rs says why not by triggers). The key starts with
-- (org, norm) so that `name`, which matches either kind, uses the same range
-- as `family`.
CREATE TABLE patient_names (
    org        TEXT    NOT NULL,
    norm       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('family', 'given')),
    patient_id INTEGER NOT NULL,
    PRIMARY KEY (org, norm, kind, patient_id)
) WITHOUT ROWID;
-- No second index (by patient) and no foreign key (its parent look-up per
-- row measured ~2 µs of writer time per new patient): a new patient's names
-- cost one B-tree on the order path. A changed patient's old rows are found through the key, from
-- the old JSON's names; patients are never deleted.

-- The patients already stored.
INSERT OR IGNORE INTO patient_names (org, norm, kind, patient_id)
SELECT org, medrelay_fold(v), k, id FROM (
    SELECT org, id, json_extract(json, '$.family') AS v, 'family' AS k FROM patients
    UNION ALL SELECT p.org, p.id, g.value, 'given' FROM patients p, json_each(p.json, '$.given') g
) WHERE medrelay_fold(v) <> '';
