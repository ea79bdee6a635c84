-- The FHIR R4 API: resource versions (meta.versionId, vread, _history), the
-- index identifier search needs, and imaging studies.
--
-- Versions are kept by triggers rather than by the statements that write, so
-- that no write path (HL7 orders, the admin API, measurements, group renames,
-- FHIR updates) can forget them. recursive_triggers is off by default; the
-- WHEN clauses below also stop a trigger from re-firing on its own UPDATE if
-- someone turns it on.

-- 1. Versions. ADD COLUMN puts them after `json`, which is small for these
-- two tables (unlike the message blobs that 0002 rebuilt `messages` for).
ALTER TABLE patients ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE appointments ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

-- Superseded patient versions only: the current one is the `patients` row.
-- `updated_at` is when that version became current.
CREATE TABLE patient_history (
    patient_id INTEGER NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    org        TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    json       TEXT    NOT NULL,
    PRIMARY KEY (patient_id, version)
) WITHOUT ROWID;

-- Only a real change of the JSON makes a version: a repeated identical order
-- never even writes (upsert_patient compares first), and a write of the same
-- text changes nothing a reader could see.
CREATE TRIGGER patients_version AFTER UPDATE OF json ON patients
WHEN NEW.json IS NOT OLD.json
BEGIN
    INSERT INTO patient_history (patient_id, version, org, updated_at, json)
    VALUES (OLD.id, OLD.version, OLD.org, OLD.updated_at, OLD.json);
    UPDATE patients SET version = OLD.version + 1 WHERE id = OLD.id;
END;

-- Appointments keep no history (FHIR vread of an old ServiceRequest version is
-- not offered), only the counter. Every column may change what the resource
-- shows (status, group, times, deletion), so every UPDATE counts.
CREATE TRIGGER appointments_version AFTER UPDATE ON appointments
WHEN NEW.version = OLD.version
BEGIN
    UPDATE appointments SET version = OLD.version + 1 WHERE id = OLD.id;
END;

-- 2. `Patient?identifier=value` (no system): the primary key
-- (org, system, value) cannot serve it. Covering (patient_id is all the search
-- reads): without it the planner prefers scanning the organisation's part of
-- the primary key, which holds patient_id.
CREATE INDEX patient_identifiers_value ON patient_identifiers (org, value, patient_id);

-- 3. ImagingStudy resources, stored as given. `modalities` holds the modality
-- codes space-delimited with a leading and a trailing space (' CT MR '), so a
-- code is found with instr(modalities, ' CT ').
CREATE TABLE imaging_studies (
    id         INTEGER PRIMARY KEY,
    org        TEXT    NOT NULL,
    patient_id INTEGER REFERENCES patients (id),
    started    TEXT,
    modalities TEXT    NOT NULL DEFAULT '',
    version    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    json       TEXT    NOT NULL
);
CREATE INDEX imaging_studies_patient ON imaging_studies (org, patient_id);
