-- OAuth 2.0 client credentials (RFC 6749 §4.4): the clients that may ask
-- `POST /oauth/token` for an access token, and the tokens issued to them.
-- Neither secret is stored: a client secret only as its argon2id PHC string, an
-- access token only as the SHA-256 hex of the whole token.

-- `id` is the client_id (`mrc_` + 32 hex digits, random). `scopes` are the
-- scopes the client may ask for, space-separated (RFC 6749 §3.3 scope tokens
-- contain no space). A disabled client gets no tokens, and its tokens stop working.
CREATE TABLE oauth_clients (
    id          TEXT    NOT NULL PRIMARY KEY,
    org         TEXT    NOT NULL DEFAULT 'default',
    name        TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    scopes      TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX oauth_clients_org ON oauth_clients (org, created_at);

-- Access tokens. `org` and `scopes` are copied from the grant, so checking a
-- token reads one row (plus its client's `disabled`). Expired rows are deleted
-- by `prune_oauth_tokens`; deleting a client deletes its tokens.
CREATE TABLE oauth_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    org        TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Pruning by expiry, oldest first.
CREATE INDEX oauth_tokens_expiry ON oauth_tokens (expires_at);
-- The cascade when a client is deleted.
CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id);
