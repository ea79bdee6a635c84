-- Column order matters: SQLite stores a row's columns in order and spills the
-- tail into overflow pages, so the big blobs (raw, payload) come last. Reading
-- metadata columns then never touches a multi-megabyte PDF's overflow chain.

CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    org                 TEXT    NOT NULL DEFAULT 'default',
    channel             TEXT    NOT NULL,
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

-- Channel views and count_messages(org, channel).
CREATE INDEX messages_org_channel_time ON messages (org, channel, received_at);
-- Duplicate detection (equality on the whole key, range on received_at) and,
-- through its (org, control_id) prefix, look-up by MSH-10. One index instead of
-- two: control ids arrive in no useful order, so this is the costliest index to
-- maintain on the insert path and worth having only once.
CREATE INDEX messages_dedup ON messages
    (org, control_id, channel, sending_application, sending_facility, received_at);
-- Retention walks messages by age across all organisations.
CREATE INDEX messages_received ON messages (received_at);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    org             TEXT    NOT NULL DEFAULT 'default',
    destination     TEXT    NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('queued', 'retrying', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT,
    response        BLOB,
    payload         BLOB    NOT NULL
);

-- The queue itself: only pending rows, in delivery order. Keyed (destination, id)
-- rather than (destination, state, id) so that "state IN (queued, retrying)
-- ORDER BY id" is a single ordered range scan instead of a merge of two ranges;
-- created_at makes queue_depth a covering scan.
CREATE INDEX deliveries_pending ON deliveries (destination, id, created_at)
    WHERE state IN ('queued', 'retrying');
-- deliveries_for_message and the ON DELETE CASCADE from retention.
CREATE INDEX deliveries_message ON deliveries (message_id);
