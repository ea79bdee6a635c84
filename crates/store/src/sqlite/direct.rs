//! The statements for Direct secure messaging (migration 0005). Like
//! `oauth.rs`, the mutating functions run inside the writer's batch
//! transaction and make every check before their first write, so a refusal
//! (`NotFound`, `Conflict`, `Invalid`) never fails the neighbours in the batch.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::sql::one_row_changed;
use crate::direct::{
    DirectAddress, DirectEdge, DirectMessage, DirectNotification, DirectRecipient, DirectSubmit,
    Endpoint, NewDirectMessage, NewNotification, normalize_address,
};
use crate::error::StoreError;
use crate::types::Millis;

/// Must stay textually identical to the partial index's WHERE so SQLite uses it.
const DUE: &str = "status IN ('PROCESSED', 'SMTPINIT')";
/// Likewise for `direct_notifications_due`.
const PENDING: &str = "state = 'pending'";

const EDGE_COLS: &str = "name, org, created_at";
const ADDRESS_COLS: &str = "address, org, edge, endpoint_url, endpoint_user, endpoint_password, \
     notify_url, notify_user, notify_password, created_at";
const MESSAGE_COLS: &str = "m.id, m.org, m.edge, m.sender, m.message_id, m.transaction_id, \
     m.created_at, m.deadline_at, m.asm, m.xdm, m.body";
/// Follows [`MESSAGE_COLS`] in joins, hence the offset in `recipient_from_row`.
const RECIPIENT_COLS: &str = "r.message, r.recipient, r.local, r.status, r.failure_reason, \
     r.attempts, r.next_attempt_at, r.updated_at, r.last_error";
const NOTIFICATION_COLS: &str = "id, message, recipient, url, user, password, payload, state, \
     attempts, next_attempt_at, created_at, last_error";

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn edge_from_row(row: &Row<'_>) -> rusqlite::Result<DirectEdge> {
    Ok(DirectEdge {
        name: row.get(0)?,
        org: row.get(1)?,
        created_at: row.get(2)?,
    })
}

fn endpoint(
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
) -> Option<Endpoint> {
    url.map(|url| Endpoint {
        url,
        user,
        password,
    })
}

fn address_from_row(row: &Row<'_>) -> rusqlite::Result<DirectAddress> {
    Ok(DirectAddress {
        address: row.get(0)?,
        org: row.get(1)?,
        edge: row.get(2)?,
        endpoint: endpoint(row.get(3)?, row.get(4)?, row.get(5)?),
        notify: endpoint(row.get(6)?, row.get(7)?, row.get(8)?),
        created_at: row.get(9)?,
    })
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<DirectMessage> {
    Ok(DirectMessage {
        id: row.get(0)?,
        org: row.get(1)?,
        edge: row.get(2)?,
        sender: row.get(3)?,
        message_id: row.get(4)?,
        transaction_id: row.get(5)?,
        created_at: row.get(6)?,
        deadline_at: row.get(7)?,
        asm: row.get(8)?,
        xdm: row.get(9)?,
        body: row.get(10)?,
    })
}

/// `at` is the index of the first recipient column.
fn recipient_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<DirectRecipient> {
    Ok(DirectRecipient {
        message: row.get(at)?,
        recipient: row.get(at + 1)?,
        local: row.get(at + 2)?,
        status: row.get(at + 3)?,
        failure_reason: row.get(at + 4)?,
        attempts: row.get(at + 5)?,
        next_attempt_at: row.get(at + 6)?,
        updated_at: row.get(at + 7)?,
        last_error: row.get(at + 8)?,
    })
}

fn notification_from_row(row: &Row<'_>) -> rusqlite::Result<DirectNotification> {
    Ok(DirectNotification {
        id: row.get(0)?,
        message: row.get(1)?,
        recipient: row.get(2)?,
        url: row.get(3)?,
        user: row.get(4)?,
        password: row.get(5)?,
        payload: row.get(6)?,
        state: row.get(7)?,
        attempts: row.get(8)?,
        next_attempt_at: row.get(9)?,
        created_at: row.get(10)?,
        last_error: row.get(11)?,
    })
}

// ------------------------------------------------------------------ edges

pub(crate) fn create_edge(
    conn: &Connection,
    name: &str,
    org: &str,
    secret_hash: &str,
    at: Millis,
) -> Result<DirectEdge, StoreError> {
    if name.is_empty() {
        return Err(StoreError::Invalid("the edge name is empty".into()));
    }
    if edge(conn, name)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "edge name {name:?} already in use"
        )));
    }
    conn.prepare_cached(
        "INSERT INTO direct_edges (name, org, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![name, org, secret_hash, at])?;
    Ok(DirectEdge {
        name: name.to_owned(),
        org: org.to_owned(),
        created_at: at,
    })
}

/// The edge with its secret hash, of any organisation (the name determines it).
pub(crate) fn edge(
    conn: &Connection,
    name: &str,
) -> Result<Option<(DirectEdge, String)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {EDGE_COLS}, secret_hash FROM direct_edges WHERE name = ?1"
        ))?
        .query_row([name], |row| Ok((edge_from_row(row)?, row.get(3)?)))
        .optional()?)
}

pub(crate) fn list_edges(conn: &Connection, org: &str) -> Result<Vec<DirectEdge>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EDGE_COLS} FROM direct_edges WHERE org = ?1 ORDER BY name"
    ))?;
    let rows = stmt
        .query_map([org], edge_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Its addresses keep their routing with `edge` NULL (foreign key SET NULL).
pub(crate) fn delete_edge(conn: &Connection, org: &str, name: &str) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached("DELETE FROM direct_edges WHERE name = ?1 AND org = ?2")?
        .execute(params![name, org])?;
    one_row_changed(changed)
}

// -------------------------------------------------------------- addresses

/// Inserts or replaces; a replaced address keeps its `created_at`.
pub(crate) fn put_address(
    conn: &Connection,
    a: &DirectAddress,
) -> Result<DirectAddress, StoreError> {
    let address = normalize_address(&a.address);
    if address.is_empty() {
        return Err(StoreError::Invalid("the address is empty".into()));
    }
    if let Some(name) = &a.edge {
        let same_org = edge(conn, name)?.is_some_and(|(e, _)| e.org == a.org);
        if !same_org {
            return Err(StoreError::NotFound);
        }
    }
    if let Some(existing) = address_row(conn, &address)?
        && existing.org != a.org
    {
        return Err(StoreError::Conflict(format!(
            "address {address:?} belongs to another organisation"
        )));
    }
    let (eu, euser, epass) = split(a.endpoint.as_ref());
    let (nu, nuser, npass) = split(a.notify.as_ref());
    conn.prepare_cached(
        "INSERT INTO direct_addresses (address, org, edge, endpoint_url, endpoint_user, \
         endpoint_password, notify_url, notify_user, notify_password, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (address) DO UPDATE SET edge = excluded.edge, \
         endpoint_url = excluded.endpoint_url, endpoint_user = excluded.endpoint_user, \
         endpoint_password = excluded.endpoint_password, notify_url = excluded.notify_url, \
         notify_user = excluded.notify_user, notify_password = excluded.notify_password",
    )?
    .execute(params![
        address,
        a.org,
        a.edge,
        eu,
        euser,
        epass,
        nu,
        nuser,
        npass,
        a.created_at
    ])?;
    address_row(conn, &address)?
        .ok_or_else(|| StoreError::Sqlite("the address just written is missing".into()))
}

type Parts<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn split(e: Option<&Endpoint>) -> Parts<'_> {
    match e {
        Some(e) => (
            Some(e.url.as_str()),
            e.user.as_deref(),
            e.password.as_deref(),
        ),
        None => (None, None, None),
    }
}

fn address_row(conn: &Connection, address: &str) -> Result<Option<DirectAddress>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ADDRESS_COLS} FROM direct_addresses WHERE address = ?1"
        ))?
        .query_row([address], address_from_row)
        .optional()?)
}

pub(crate) fn address(
    conn: &Connection,
    address: &str,
) -> Result<Option<DirectAddress>, StoreError> {
    address_row(conn, &normalize_address(address))
}

pub(crate) fn list_addresses(
    conn: &Connection,
    org: &str,
) -> Result<Vec<DirectAddress>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ADDRESS_COLS} FROM direct_addresses WHERE org = ?1 ORDER BY address"
    ))?;
    let rows = stmt
        .query_map([org], address_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn delete_address(
    conn: &Connection,
    org: &str,
    address: &str,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached("DELETE FROM direct_addresses WHERE address = ?1 AND org = ?2")?
        .execute(params![normalize_address(address), org])?;
    one_row_changed(changed)
}

// --------------------------------------------------------------- messages

pub(crate) fn submit_message(
    conn: &Connection,
    m: &NewDirectMessage,
) -> Result<DirectSubmit, StoreError> {
    let existing = conn
        .prepare_cached(
            "SELECT id, transaction_id, request_hash FROM direct_messages \
             WHERE sender = ?1 AND message_id = ?2",
        )?
        .query_row(params![m.sender, m.message_id], |row| {
            Ok(DirectSubmit::Existing {
                id: row.get(0)?,
                transaction_id: row.get(1)?,
                request_hash: row.get(2)?,
            })
        })
        .optional()?;
    if let Some(existing) = existing {
        return Ok(existing);
    }
    // A repeated recipient would break the primary key after the message row
    // is written, which would roll back the whole batch: refuse it up front.
    let mut seen = HashSet::with_capacity(m.recipients.len());
    if let Some((r, _, _)) = m.recipients.iter().find(|(r, _, _)| !seen.insert(r)) {
        return Err(StoreError::Invalid(format!(
            "recipient {r:?} is listed twice"
        )));
    }
    conn.prepare_cached(
        "INSERT INTO direct_messages (org, edge, sender, message_id, request_hash, \
         transaction_id, created_at, deadline_at, asm, xdm, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        m.org,
        m.edge,
        m.sender,
        m.message_id,
        m.request_hash,
        m.transaction_id,
        m.created_at,
        m.deadline_at,
        m.asm,
        m.xdm,
        m.body
    ])?;
    let id = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO direct_recipients (message, recipient, position, local, status, \
         next_attempt_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?;
    for (position, (recipient, local, status)) in m.recipients.iter().enumerate() {
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        insert.execute(params![
            id,
            recipient,
            position,
            local,
            status,
            m.created_at
        ])?;
    }
    for n in &m.notifications {
        insert_notification(conn, id, n, m.created_at)?;
    }
    Ok(DirectSubmit::Created { id })
}

fn insert_notification(
    conn: &Connection,
    message: i64,
    n: &NewNotification,
    at: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO direct_notifications (message, recipient, url, user, password, payload, \
         state, next_attempt_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?7)",
    )?
    .execute(params![
        message,
        n.recipient,
        n.url,
        n.user,
        n.password,
        n.payload,
        at
    ])?;
    Ok(())
}

fn recipients(conn: &Connection, message: i64) -> Result<Vec<DirectRecipient>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECIPIENT_COLS} FROM direct_recipients r WHERE r.message = ?1 ORDER BY r.position"
    ))?;
    let rows = stmt
        .query_map([message], |row| recipient_from_row(row, 0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The message row is never updated, so reading it and then its recipients
/// needs no shared snapshot.
fn with_recipients(
    conn: &Connection,
    message: Option<DirectMessage>,
) -> Result<Option<(DirectMessage, Vec<DirectRecipient>)>, StoreError> {
    match message {
        Some(m) => {
            let r = recipients(conn, m.id)?;
            Ok(Some((m, r)))
        }
        None => Ok(None),
    }
}

pub(crate) fn message(
    conn: &Connection,
    sender: &str,
    message_id: &str,
) -> Result<Option<(DirectMessage, Vec<DirectRecipient>)>, StoreError> {
    let m = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM direct_messages m WHERE m.sender = ?1 AND m.message_id = ?2"
        ))?
        .query_row([sender, message_id], message_from_row)
        .optional()?;
    with_recipients(conn, m)
}

pub(crate) fn message_by_id(
    conn: &Connection,
    id: i64,
) -> Result<Option<(DirectMessage, Vec<DirectRecipient>)>, StoreError> {
    let m = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM direct_messages m WHERE m.id = ?1"
        ))?
        .query_row([id], message_from_row)
        .optional()?;
    with_recipients(conn, m)
}

pub(crate) fn due_recipients(
    conn: &Connection,
    now: Millis,
    limit: usize,
) -> Result<Vec<(DirectMessage, DirectRecipient)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLS}, {RECIPIENT_COLS} \
         FROM direct_recipients r JOIN direct_messages m ON m.id = r.message \
         WHERE r.{DUE} AND r.next_attempt_at <= ?1 \
         ORDER BY r.next_attempt_at, r.message, r.position LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now, sql_limit(limit)], |row| {
            Ok((message_from_row(row)?, recipient_from_row(row, 11)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn next_due(conn: &Connection) -> Result<Option<Millis>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT next_attempt_at FROM direct_recipients WHERE {DUE} \
             ORDER BY next_attempt_at LIMIT 1"
        ))?
        .query_row([], |row| row.get(0))
        .optional()?)
}

/// The arguments of [`set_status`] beyond the recipient.
pub(crate) struct StatusChange {
    pub(crate) from: Vec<String>,
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) next_attempt_at: Option<Millis>,
    pub(crate) notification: Option<NewNotification>,
    pub(crate) at: Millis,
}

pub(crate) fn set_status(
    conn: &Connection,
    message: i64,
    recipient: &str,
    change: &StatusChange,
) -> Result<bool, StoreError> {
    let current: String = conn
        .prepare_cached(
            "SELECT status FROM direct_recipients WHERE message = ?1 AND recipient = ?2",
        )?
        .query_row(params![message, recipient], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    if !change.from.contains(&current) {
        return Ok(false);
    }
    conn.prepare_cached(
        "UPDATE direct_recipients SET status = ?3, failure_reason = ?4, updated_at = ?5, \
         next_attempt_at = COALESCE(?6, next_attempt_at) WHERE message = ?1 AND recipient = ?2",
    )?
    .execute(params![
        message,
        recipient,
        change.status,
        change.reason,
        change.at,
        change.next_attempt_at
    ])?;
    if let Some(n) = &change.notification {
        insert_notification(conn, message, n, change.at)?;
    }
    Ok(true)
}

pub(crate) fn retry_later(
    conn: &Connection,
    message: i64,
    recipient: &str,
    next_attempt_at: Millis,
    last_error: &str,
    at: Millis,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE direct_recipients SET attempts = attempts + 1, last_error = ?3, \
             next_attempt_at = ?4, updated_at = ?5 WHERE message = ?1 AND recipient = ?2",
        )?
        .execute(params![message, recipient, last_error, next_attempt_at, at])?;
    one_row_changed(changed)
}

// ---------------------------------------------------------- notifications

pub(crate) fn due_notifications(
    conn: &Connection,
    now: Millis,
    limit: usize,
) -> Result<Vec<DirectNotification>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTIFICATION_COLS} FROM direct_notifications \
         WHERE {PENDING} AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now, sql_limit(limit)], notification_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn next_notification_due(conn: &Connection) -> Result<Option<Millis>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT next_attempt_at FROM direct_notifications WHERE {PENDING} \
             ORDER BY next_attempt_at LIMIT 1"
        ))?
        .query_row([], |row| row.get(0))
        .optional()?)
}

pub(crate) fn notifications(
    conn: &Connection,
    message: i64,
) -> Result<Vec<DirectNotification>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTIFICATION_COLS} FROM direct_notifications WHERE message = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([message], notification_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How a pending notification's attempt ended.
pub(crate) enum NotificationOutcome {
    Sent,
    Retry { next_attempt_at: Millis },
    Failed,
}

/// Only a pending notification changes: a late second answer for one already
/// sent or failed must not overwrite its final state, so that is `Ok` without
/// a write. `NotFound` for an unknown id.
pub(crate) fn finish_notification(
    conn: &Connection,
    id: i64,
    outcome: &NotificationOutcome,
    error: Option<&str>,
    at: Millis,
) -> Result<(), StoreError> {
    let state: String = conn
        .prepare_cached("SELECT state FROM direct_notifications WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    if state != "pending" {
        return Ok(());
    }
    let mut stmt = match outcome {
        NotificationOutcome::Sent => conn.prepare_cached(
            "UPDATE direct_notifications SET state = 'sent', updated_at = ?2 WHERE id = ?1",
        )?,
        NotificationOutcome::Retry { .. } => conn.prepare_cached(
            "UPDATE direct_notifications SET attempts = attempts + 1, last_error = ?3, \
             next_attempt_at = ?4, updated_at = ?2 WHERE id = ?1",
        )?,
        // The last attempt failed too, so it counts like the others.
        NotificationOutcome::Failed => conn.prepare_cached(
            "UPDATE direct_notifications SET state = 'failed', attempts = attempts + 1, \
             last_error = ?3, updated_at = ?2 WHERE id = ?1",
        )?,
    };
    match outcome {
        NotificationOutcome::Sent => stmt.execute(params![id, at])?,
        NotificationOutcome::Retry { next_attempt_at } => {
            stmt.execute(params![id, at, error, next_attempt_at])?
        }
        NotificationOutcome::Failed => stmt.execute(params![id, at, error])?,
    };
    Ok(())
}
