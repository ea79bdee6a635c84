-- FHIR string search (Patient `family`, `given`, and `name`, which matches
-- either): "starts with", insensitive to case and accents (R4 search
-- §3.1.1.4.8), so `muller` and `MÜLLER` find Müller and `strasse` finds
-- Straße. Each patient's family and given names are kept folded
-- (`crate::fold`: compatibility decomposition, marks removed, case folded) in
-- one narrow row keyed by the patient id:
--   family  the folded family name ('' without one)
--   given   the folded given names, each closed by a unit separator and the
--           first opened by one: x'1F' || 'pedro' || x'1F' || 'maria' || x'1F'
--           ('' without any); separators in names are folded to spaces.
-- A search scans these rows with instr(), never the patients' JSON. Keyed by
-- the patient id, a new patient's row is appended where the previous one
-- went: an index on the names would put each name on a random page of a
-- large B-tree, one more page written per name and per new patient on the
-- order path. Written by the statements that write a patient's JSON
-- (src/sqlite/names.rs).
CREATE TABLE patient_names (
    patient_id INTEGER PRIMARY KEY,
    org        TEXT    NOT NULL,
    family     TEXT    NOT NULL,
    given      TEXT    NOT NULL
);

-- The patients already stored (`medrelay_fold` is `names::fold_part`,
-- registered on the connection that migrates).
INSERT INTO patient_names (patient_id, org, family, given)
SELECT p.id, p.org,
       coalesce(medrelay_fold(json_extract(p.json, '$.family')), ''),
       coalesce((SELECT char(31) || group_concat(f, char(31)) || char(31)
                 FROM (SELECT medrelay_fold(g.value) AS f
                       FROM json_each(p.json, '$.given') g ORDER BY g.key)
                 WHERE f <> ''), '')
FROM patients p;
