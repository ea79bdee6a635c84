//! The statements for OAuth 2.0 clients and access tokens (migration 0003).
//! Like `worklist.rs`, the mutating functions run inside the writer's batch
//! transaction and make every check before their first write, so a refusal
//! (`NotFound`, `Conflict`, `Invalid`) never fails the neighbours in the batch.
//! Secrets arrive already hashed (see `crate::oauth`).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::sql::one_row_changed;
use crate::error::StoreError;
use crate::oauth::{OAuthClient, OAuthToken};
use crate::types::Millis;

const CLIENT_COLS: &str = "id, org, name, scopes, created_at, disabled";

/// Expired tokens deleted per writer operation when pruning.
pub(crate) const PRUNE_BATCH: usize = 1000;

fn split_scopes(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn client_from_row(row: &Row<'_>) -> rusqlite::Result<OAuthClient> {
    Ok(OAuthClient {
        id: row.get(0)?,
        org: row.get(1)?,
        name: row.get(2)?,
        scopes: split_scopes(&row.get::<_, String>(3)?),
        created_at: row.get(4)?,
        disabled: row.get::<_, i64>(5)? != 0,
    })
}

pub(crate) fn create_client(
    conn: &Connection,
    client: &OAuthClient,
    secret_hash: &str,
) -> Result<(), StoreError> {
    let taken = conn
        .prepare_cached("SELECT 1 FROM oauth_clients WHERE id = ?1")?
        .query_row([&client.id], |_| Ok(()))
        .optional()?
        .is_some();
    if taken {
        return Err(StoreError::Conflict("client id already in use".into()));
    }
    conn.prepare_cached(
        "INSERT INTO oauth_clients (id, org, name, secret_hash, scopes, created_at, disabled) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        client.id,
        client.org,
        client.name,
        secret_hash,
        client.scope(),
        client.created_at,
        i64::from(client.disabled),
    ])?;
    Ok(())
}

pub(crate) fn client(conn: &Connection, id: &str) -> Result<Option<OAuthClient>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE id = ?1"
        ))?
        .query_row([id], client_from_row)
        .optional()?)
}

/// The client with its stored secret hash, for verification.
pub(crate) fn client_with_secret(
    conn: &Connection,
    id: &str,
) -> Result<Option<(OAuthClient, String)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLS}, secret_hash FROM oauth_clients WHERE id = ?1"
        ))?
        .query_row([id], |row| Ok((client_from_row(row)?, row.get(6)?)))
        .optional()?)
}

pub(crate) fn list_clients(conn: &Connection, org: &str) -> Result<Vec<OAuthClient>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CLIENT_COLS} FROM oauth_clients WHERE org = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt
        .query_map([org], client_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Deletes the client and (cascade) its tokens.
pub(crate) fn delete_client(conn: &Connection, org: &str, id: &str) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached("DELETE FROM oauth_clients WHERE id = ?1 AND org = ?2")?
        .execute(params![id, org])?;
    one_row_changed(changed)
}

pub(crate) fn set_client_disabled(
    conn: &Connection,
    org: &str,
    id: &str,
    disabled: bool,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached("UPDATE oauth_clients SET disabled = ?3 WHERE id = ?1 AND org = ?2")?
        .execute(params![id, org, i64::from(disabled)])?;
    one_row_changed(changed)
}

/// Stores a token for an enabled client of `token.org`, whose scopes must be
/// among the client's.
pub(crate) fn insert_token(
    conn: &Connection,
    token_hash: &str,
    token: &OAuthToken,
) -> Result<(), StoreError> {
    let client = client(conn, &token.client_id)?
        .filter(|c| c.org == token.org && !c.disabled)
        .ok_or(StoreError::NotFound)?;
    if let Some(s) = token.scopes.iter().find(|s| !client.scopes.contains(s)) {
        return Err(StoreError::Invalid(format!(
            "scope {s:?} is not granted to client {}",
            client.id
        )));
    }
    conn.prepare_cached(
        "INSERT INTO oauth_tokens (token_hash, client_id, org, scopes, expires_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        token_hash,
        token.client_id,
        token.org,
        token.scope(),
        token.expires_at,
        token.created_at,
    ])
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict("token hash already in use".into())
        }
        other => other.into(),
    })?;
    Ok(())
}

/// The token with this hash, expired or not, unless its client is disabled.
pub(crate) fn token_by_hash(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<OAuthToken>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT t.client_id, t.org, t.scopes, t.created_at, t.expires_at \
             FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id \
             WHERE t.token_hash = ?1 AND c.disabled = 0",
        )?
        .query_row([token_hash], |row| {
            Ok(OAuthToken {
                client_id: row.get(0)?,
                org: row.get(1)?,
                scopes: split_scopes(&row.get::<_, String>(2)?),
                created_at: row.get(3)?,
                expires_at: row.get(4)?,
            })
        })
        .optional()?)
}

/// Deletes up to `batch` tokens expired at `now` (`expires_at <= now`), oldest
/// first; returns how many.
pub(crate) fn prune_tokens_step(
    conn: &Connection,
    now: Millis,
    batch: usize,
) -> Result<usize, StoreError> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached(
            "DELETE FROM oauth_tokens WHERE token_hash IN \
             (SELECT token_hash FROM oauth_tokens WHERE expires_at <= ?1 \
              ORDER BY expires_at LIMIT ?2)",
        )?
        .execute(params![now, batch])?)
}
