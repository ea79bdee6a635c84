-- The device worklist: messages gain a direction, and the domain tables
-- (patients, appointments, device groups, devices, API tokens, measurements)
-- arrive. Every row carries `org`; composite domain data is JSON text (serde of
-- medrelay_worklist's model types) beside indexed columns for what is queried.
--
-- Runs with foreign_keys OFF (the store turns them on after migrating), as the
-- SQLite documentation prescribes for rebuilding a table; the migration ends
-- with PRAGMA foreign_key_check (rusqlite_migration's foreign_key_check()).

-- 1. messages.direction ('in' | 'out'). The table is rebuilt instead of using
-- ALTER TABLE ADD COLUMN because an added column lands after `raw`, and
-- reading it from a row holding a multi-megabyte ORU would walk the blob's
-- whole overflow chain. Rebuilding keeps the blobs last. Ids are kept, so the
-- deliveries' message_id still point at their messages.
CREATE TABLE messages_v2 (
    id                  INTEGER PRIMARY KEY,
    org                 TEXT    NOT NULL DEFAULT 'default',
    channel             TEXT    NOT NULL,
    direction           TEXT    NOT NULL DEFAULT 'in' CHECK (direction IN ('in', 'out')),
    received_at         INTEGER NOT NULL,
    peer                TEXT,
    control_id          TEXT,
    message_type        TEXT,
    sending_application TEXT,
    sending_facility    TEXT,
    status              TEXT    NOT NULL
        CHECK (status IN ('received', 'accepted', 'rejected', 'errored', 'filtered', 'processed')),
    error               TEXT,
    ack                 BLOB,
    raw                 BLOB    NOT NULL
);

INSERT INTO messages_v2 (id, org, channel, direction, received_at, peer, control_id,
    message_type, sending_application, sending_facility, status, error, ack, raw)
SELECT id, org, channel, 'in', received_at, peer, control_id,
    message_type, sending_application, sending_facility, status, error, ack, raw
FROM messages;

DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;

-- The same indexes as 0001 (they went with the old table) ...
CREATE INDEX messages_org_channel_time ON messages (org, channel, received_at);
CREATE INDEX messages_dedup ON messages
    (org, control_id, channel, sending_application, sending_facility, received_at);
CREATE INDEX messages_received ON messages (received_at);
-- ... plus the outbound ones only: browsing "what did we send" without scanning
-- the (much larger) inbound traffic, at no cost on the inbound insert path.
CREATE INDEX messages_outbound ON messages (org, id) WHERE direction = 'out';

-- 2. Patients. `json` is the model's Patient without its id (the row id, as
-- decimal text, is the patient's stable id).
CREATE TABLE patients (
    id         INTEGER PRIMARY KEY,
    org        TEXT    NOT NULL DEFAULT 'default',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    json       TEXT    NOT NULL
);
CREATE INDEX patients_org ON patients (org, id);

-- How an inbound patient is matched to a stored one: any identifier
-- (system + value; a missing system is stored as ''). One owner per identifier.
CREATE TABLE patient_identifiers (
    org        TEXT    NOT NULL,
    system     TEXT    NOT NULL DEFAULT '',
    value      TEXT    NOT NULL,
    patient_id INTEGER NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    PRIMARY KEY (org, system, value)
) WITHOUT ROWID;
CREATE INDEX patient_identifiers_patient ON patient_identifiers (patient_id);

-- 3. Device groups and devices.
CREATE TABLE device_groups (
    org        TEXT    NOT NULL DEFAULT 'default',
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org, name)
) WITHOUT ROWID;

CREATE TABLE devices (
    id           INTEGER PRIMARY KEY,
    org          TEXT    NOT NULL DEFAULT 'default',
    name         TEXT    NOT NULL,
    grp          TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER,
    FOREIGN KEY (org, grp) REFERENCES device_groups (org, name) ON UPDATE CASCADE
);
CREATE INDEX devices_group ON devices (org, grp);

-- 4. Admin API tokens.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    org          TEXT    NOT NULL DEFAULT 'default',
    role         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_tokens_org ON api_tokens (org, id);

-- 5. Appointments (worklist items). `json` holds {"order": …, "visit": …}; the
-- columns are authoritative for everything else. Soft-deleted rows keep
-- `deleted_at` and are invisible to every read.
CREATE TABLE appointments (
    id                INTEGER PRIMARY KEY,
    org               TEXT    NOT NULL DEFAULT 'default',
    integration       TEXT    NOT NULL,
    placer_order      TEXT,
    filler_order      TEXT,
    grp               TEXT    NOT NULL,
    status            TEXT    NOT NULL
        CHECK (status IN ('scheduled', 'cancelled', 'completed')),
    scheduled_at      TEXT,
    patient_id        INTEGER NOT NULL REFERENCES patients (id),
    source_message_id INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    cancelled_at      INTEGER,
    cancel_reason     TEXT,
    deleted_at        INTEGER,
    json              TEXT    NOT NULL
);
-- Finding an order again (update, cancel, duplicate create).
CREATE INDEX appointments_placer ON appointments (org, integration, placer_order)
    WHERE placer_order IS NOT NULL;
CREATE INDEX appointments_filler ON appointments (org, integration, filler_order)
    WHERE filler_order IS NOT NULL;
-- A device's worklist: the equality prefix (org, grp, status = 'scheduled',
-- deleted_at IS NULL) holds only open rows, already in display order; the same
-- index counts a group's open appointments without reading rows, serves
-- group-and-status lists, and finds every row of a group for a rename (its
-- (org, grp) prefix). One index instead of a partial worklist index plus an
-- (org, grp, scheduled_at, id) one: every index costs each order's insert.
CREATE INDEX appointments_worklist ON appointments
    (org, grp, status, deleted_at, scheduled_at, id);
-- Admin lists (by time, by patient).
CREATE INDEX appointments_org_time ON appointments (org, scheduled_at, id);
CREATE INDEX appointments_patient ON appointments (org, patient_id);

-- 6. Measurements. The PDF is the last column, so lists never read it.
-- message_id is the outbound ORU; retention may delete it (SET NULL).
CREATE TABLE measurements (
    id             INTEGER PRIMARY KEY,
    org            TEXT    NOT NULL DEFAULT 'default',
    appointment_id INTEGER NOT NULL REFERENCES appointments (id),
    device_id      TEXT,
    kind           TEXT    NOT NULL,
    performed_at   TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    message_id     INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    json           TEXT    NOT NULL,
    report_pdf     BLOB
);
CREATE INDEX measurements_org ON measurements (org, id);
CREATE INDEX measurements_appointment ON measurements (org, appointment_id, id);
CREATE INDEX measurements_message ON measurements (message_id);
