-- The web dashboard: its users (password login), their sessions and the audit
-- log of what they did. Passwords and session tokens are never stored, only
-- their hashes (made by the caller).

-- Login names are unique across the installation: the login form has no
-- organisation field, the name determines it. `failed_logins` counts wrong
-- passwords since the last lock or good login; `locked_until` refuses logins
-- until then.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    org           TEXT    NOT NULL,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    last_login_at INTEGER
);
-- An organisation's user list, by name.
CREATE INDEX users_org ON users (org, name);

-- Sessions are looked up by the hash of the cookie's token on every request;
-- `csrf` is the token the dashboard's forms must echo.
CREATE TABLE sessions (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Pruning by expiry.
CREATE INDEX sessions_expiry ON sessions (expires_at);
-- The cascade when a user is deleted (else a scan of every session).
CREATE INDEX sessions_user ON sessions (user_id);

-- Append-only. `actor` and `subject` are text, not references: the log
-- outlives the users and objects it names.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    org     TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    detail  TEXT
);
-- An organisation's log, newest first, paged by id.
CREATE INDEX audit_log_org ON audit_log (org, id);
