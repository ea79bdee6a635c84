//! The statements for the web dashboard's users, sessions and audit log
//! (migration 0006). Like `direct.rs`, the mutating functions run inside the
//! writer's batch transaction and make every check before their first write,
//! so a refusal (`NotFound`, `Conflict`, `Invalid`) never fails the
//! neighbours in the batch.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::worklist::parse_id;
use crate::error::StoreError;
use crate::types::Millis;
use crate::users::{AuditEntry, CHANNEL_STATES, ChannelState, Session, USER_ROLES, User};

const USER_COLS: &str =
    "u.id, u.org, u.name, u.role, u.created_at, u.failed_logins, u.locked_until, u.last_login_at";
const AUDIT_COLS: &str = "id, org, at, actor, action, subject, detail";

/// Expired sessions deleted per writer operation when pruning.
pub(crate) const PRUNE_BATCH: usize = 1000;

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// `at` is the index of the first user column.
fn user_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get::<_, i64>(at)?.to_string(),
        org: row.get(at + 1)?,
        name: row.get(at + 2)?,
        role: row.get(at + 3)?,
        created_at: row.get(at + 4)?,
        failed_logins: row.get(at + 5)?,
        locked_until: row.get(at + 6)?,
        last_login_at: row.get(at + 7)?,
    })
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.get(0)?,
        org: row.get(1)?,
        at: row.get(2)?,
        actor: row.get(3)?,
        action: row.get(4)?,
        subject: row.get(5)?,
        detail: row.get(6)?,
    })
}

fn user_by_id(conn: &Connection, id: i64) -> Result<Option<User>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?1"))?
        .query_row([id], |row| user_from_row(row, 0))
        .optional()?)
}

// ------------------------------------------------------------------ users

pub(crate) fn create_user(
    conn: &Connection,
    org: &str,
    name: &str,
    role: &str,
    password_hash: &str,
    at: Millis,
) -> Result<User, StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::Invalid("the user name is empty".into()));
    }
    if !USER_ROLES.contains(&role) {
        return Err(StoreError::Invalid(format!(
            "role {role:?} is not one of admin, operator, viewer"
        )));
    }
    let taken = conn
        .prepare_cached("SELECT 1 FROM users WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some();
    if taken {
        return Err(StoreError::Conflict(format!(
            "user name {name:?} already in use"
        )));
    }
    conn.prepare_cached(
        "INSERT INTO users (org, name, role, password_hash, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![org, name, role, password_hash, at])?;
    Ok(User {
        id: conn.last_insert_rowid().to_string(),
        org: org.to_owned(),
        name: name.to_owned(),
        role: role.to_owned(),
        created_at: at,
        failed_logins: 0,
        locked_until: None,
        last_login_at: None,
    })
}

/// The user with their password hash, of any organisation (the name is the
/// login).
pub(crate) fn user_by_name(
    conn: &Connection,
    name: &str,
) -> Result<Option<(User, String)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.name = ?1"
        ))?
        .query_row([name], |row| Ok((user_from_row(row, 0)?, row.get(8)?)))
        .optional()?)
}

pub(crate) fn list_users(conn: &Connection, org: &str) -> Result<Vec<User>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users u WHERE u.org = ?1 ORDER BY u.name"
    ))?;
    let rows = stmt
        .query_map([org], |row| user_from_row(row, 0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Read, decide, write in one writer op: the writer is the only one changing
/// the row, so two concurrent failures both count.
pub(crate) fn record_login_failure(
    conn: &Connection,
    user_id: &str,
    at: Millis,
    lock_after: u32,
    lock_for_ms: Millis,
) -> Result<User, StoreError> {
    let id = parse_id(user_id).ok_or(StoreError::NotFound)?;
    let mut user = user_by_id(conn, id)?.ok_or(StoreError::NotFound)?;
    let failed = user.failed_logins.saturating_add(1);
    // lock_after 0 never matches a count that has just grown to at least 1,
    // so it means "never lock".
    if lock_after > 0 && failed >= lock_after {
        user.failed_logins = 0;
        user.locked_until = Some(at.saturating_add(lock_for_ms));
    } else {
        user.failed_logins = failed;
    }
    conn.prepare_cached("UPDATE users SET failed_logins = ?2, locked_until = ?3 WHERE id = ?1")?
        .execute(params![id, user.failed_logins, user.locked_until])?;
    Ok(user)
}

pub(crate) fn record_login_success(
    conn: &Connection,
    user_id: &str,
    at: Millis,
) -> Result<(), StoreError> {
    let id = parse_id(user_id).ok_or(StoreError::NotFound)?;
    let changed = conn
        .prepare_cached(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ?2 \
             WHERE id = ?1",
        )?
        .execute(params![id, at])?;
    super::sql::one_row_changed(changed)
}

// --------------------------------------------------------------- sessions

pub(crate) fn create_session(
    conn: &Connection,
    token_hash: &str,
    user_id: &str,
    csrf: &str,
    created_at: Millis,
    expires_at: Millis,
) -> Result<(), StoreError> {
    let id = parse_id(user_id).ok_or(StoreError::NotFound)?;
    // Checked here rather than left to the foreign key and primary key, so the
    // refusal comes with its own error and before any write.
    if user_by_id(conn, id)?.is_none() {
        return Err(StoreError::NotFound);
    }
    let taken = conn
        .prepare_cached("SELECT 1 FROM sessions WHERE token_hash = ?1")?
        .query_row([token_hash], |_| Ok(()))
        .optional()?
        .is_some();
    if taken {
        return Err(StoreError::Conflict(
            "session token hash already in use".into(),
        ));
    }
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![token_hash, id, csrf, created_at, expires_at])?;
    Ok(())
}

/// A session is valid while `now < expires_at`, the same instant
/// `prune_sessions_step` treats as expired.
pub(crate) fn session_by_hash(
    conn: &Connection,
    token_hash: &str,
    now: Millis,
) -> Result<Option<Session>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT s.token_hash, s.csrf, s.created_at, s.expires_at, s.org, {USER_COLS} \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ?1 AND s.expires_at > ?2"
        ))?
        .query_row(params![token_hash, now], |row| {
            Ok(Session {
                token_hash: row.get(0)?,
                csrf: row.get(1)?,
                created_at: row.get(2)?,
                expires_at: row.get(3)?,
                org: row.get(4)?,
                user: user_from_row(row, 5)?,
            })
        })
        .optional()?)
}

/// The organisation a session looks at (for users of the whole installation).
pub(crate) fn set_session_org(
    conn: &Connection,
    token_hash: &str,
    org: &str,
) -> Result<(), StoreError> {
    let n = conn
        .prepare_cached("UPDATE sessions SET org = ?2 WHERE token_hash = ?1")?
        .execute(params![token_hash, org])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Every organisation that has users, device groups or devices, sorted
/// (the installation's `*` left out).
pub(crate) fn list_orgs(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT org FROM users WHERE org <> '*' \
         UNION SELECT org FROM device_groups UNION SELECT org FROM devices ORDER BY 1",
    )?;
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Logging out twice, or after the session expired and was pruned, is not an
/// error: the session is gone either way.
pub(crate) fn delete_session(conn: &Connection, token_hash: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
        .execute([token_hash])?;
    Ok(())
}

/// Deletes up to `batch` sessions expired at `now` (`expires_at <= now`),
/// oldest first; returns how many.
pub(crate) fn prune_sessions_step(
    conn: &Connection,
    now: Millis,
    batch: usize,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM sessions WHERE token_hash IN \
             (SELECT token_hash FROM sessions WHERE expires_at <= ?1 \
              ORDER BY expires_at LIMIT ?2)",
        )?
        .execute(params![now, sql_limit(batch)])?)
}

// -------------------------------------------------------------- audit log

/// `entry.id` is not written: SQLite assigns the next one, which keeps ids in
/// append order.
pub(crate) fn audit(conn: &Connection, entry: &AuditEntry) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_log (org, at, actor, action, subject, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        entry.org,
        entry.at,
        entry.actor,
        entry.action,
        entry.subject,
        entry.detail
    ])?;
    Ok(())
}

pub(crate) fn list_audit(
    conn: &Connection,
    org: &str,
    limit: usize,
    before_id: Option<i64>,
) -> Result<Vec<AuditEntry>, StoreError> {
    // Without a cursor, start above every id so one statement (and one plan on
    // `audit_log_org`) serves both cases.
    let before = before_id.unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLS} FROM audit_log WHERE org = ?1 AND id < ?2 \
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![org, before, sql_limit(limit)], audit_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

// ------------------------------------------------------------------ channel states

pub(crate) fn set_channel_state(
    conn: &Connection,
    channel: &str,
    state: &str,
    by: &str,
    at: Millis,
) -> Result<(), StoreError> {
    if !CHANNEL_STATES.contains(&state) {
        return Err(StoreError::Invalid(format!(
            "channel state {state:?} is not one of running, paused, stopped"
        )));
    }
    conn.prepare_cached(
        "INSERT INTO channel_states (channel, state, changed_at, changed_by) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel) DO UPDATE SET \
         state = excluded.state, changed_at = excluded.changed_at, changed_by = excluded.changed_by",
    )?
    .execute(params![channel, state, at, by])?;
    Ok(())
}

pub(crate) fn channel_states(conn: &Connection) -> Result<Vec<ChannelState>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel, state, changed_at, changed_by FROM channel_states ORDER BY channel",
    )?;
    let rows = stmt
        .query_map([], |row| {
            Ok(ChannelState {
                channel: row.get(0)?,
                state: row.get(1)?,
                changed_at: row.get(2)?,
                changed_by: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
