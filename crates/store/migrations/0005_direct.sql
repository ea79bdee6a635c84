-- Direct secure messaging: the HISP relays clinical documents between edges.
-- The store keeps who may send, where each address is delivered, every message
-- with a status per recipient, and the status notifications owed to senders.
-- The lifecycle rules (which status may follow which) belong to the callers;
-- the store only applies a change from the statuses the caller allows.

-- Sending edges authenticate with HTTP Basic: `name` is the user, the secret
-- is kept only as its hash (made by the caller).
CREATE TABLE direct_edges (
    name        TEXT    NOT NULL PRIMARY KEY,
    org         TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX direct_edges_org ON direct_edges (org, name);

-- Addresses are stored lowercased, so a look-up lowercases and compares
-- exactly (an index seek, no COLLATE NOCASE that only folds ASCII).
-- `edge` may send from the address; deleting the edge leaves the address
-- undeliverable-from but keeps its routing. `endpoint_*` is where messages TO
-- the address go, `notify_*` where notifications about messages FROM it go;
-- a NULL url means none.
CREATE TABLE direct_addresses (
    address           TEXT    NOT NULL PRIMARY KEY,
    org               TEXT    NOT NULL,
    edge              TEXT    REFERENCES direct_edges (name) ON DELETE SET NULL,
    endpoint_url      TEXT,
    endpoint_user     TEXT,
    endpoint_password TEXT,
    notify_url        TEXT,
    notify_user       TEXT,
    notify_password   TEXT,
    created_at        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX direct_addresses_org ON direct_addresses (org, address);
-- The SET NULL when an edge is deleted.
CREATE INDEX direct_addresses_edge ON direct_addresses (edge) WHERE edge IS NOT NULL;

-- One row per submitted message. (sender, message_id) makes a resubmission
-- idempotent: the unique index finds the original. `edge` is plain text, not a
-- reference: the history outlives the edge. The body is the last column so
-- that reading the metadata never walks its overflow pages.
CREATE TABLE direct_messages (
    id             INTEGER PRIMARY KEY,
    org            TEXT    NOT NULL,
    edge           TEXT    NOT NULL,
    sender         TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    request_hash   TEXT    NOT NULL,
    transaction_id TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    deadline_at    INTEGER NOT NULL,
    asm            INTEGER NOT NULL CHECK (asm IN (0, 1)),
    xdm            INTEGER NOT NULL CHECK (xdm IN (0, 1)),
    body           BLOB    NOT NULL,
    UNIQUE (sender, message_id)
);

-- The status of a message per recipient. `position` is the recipient's place
-- in the submitted list: the primary key orders by address, callers want the
-- sender's order. `attempts`, `last_error` count failed delivery attempts.
CREATE TABLE direct_recipients (
    message         INTEGER NOT NULL REFERENCES direct_messages (id) ON DELETE CASCADE,
    recipient       TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    local           INTEGER NOT NULL CHECK (local IN (0, 1)),
    status          TEXT    NOT NULL,
    failure_reason  TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT,
    PRIMARY KEY (message, recipient)
) WITHOUT ROWID;
-- The worker's due work, in the order it is taken; finished recipients leave
-- the index, so it stays as small as the backlog.
CREATE INDEX direct_recipients_due ON direct_recipients (next_attempt_at, message, position)
    WHERE status IN ('PROCESSED', 'SMTPINIT');

-- Status notifications owed to senders (HTTP POSTs of a JSON payload).
-- Credentials are copied from the address when queued, so a later change of
-- the address does not redirect what is already owed.
CREATE TABLE direct_notifications (
    id              INTEGER PRIMARY KEY,
    message         INTEGER NOT NULL REFERENCES direct_messages (id) ON DELETE CASCADE,
    recipient       TEXT,
    url             TEXT    NOT NULL,
    user            TEXT,
    password        TEXT,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT
);
-- The notifier's due work; sent and failed rows leave it.
CREATE INDEX direct_notifications_due ON direct_notifications (next_attempt_at, id)
    WHERE state = 'pending';
-- A message's notifications, and the cascade when a message is deleted.
CREATE INDEX direct_notifications_message ON direct_notifications (message, id);
