-- The run state an operator gave a channel (the dashboard's start, pause and
-- stop), so that a restart keeps a paused or stopped channel as it was left.
-- No row: running. Channel names are unique in an installation.
CREATE TABLE channel_states (
    channel    TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL CHECK (state IN ('running', 'paused', 'stopped')),
    changed_at INTEGER NOT NULL,
    changed_by TEXT    NOT NULL
) WITHOUT ROWID;
