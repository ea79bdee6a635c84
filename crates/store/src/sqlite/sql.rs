//! The statements. Every function takes a plain connection: the writer calls the
//! mutating ones inside its batch transaction, the read pool calls the rest.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use crate::error::StoreError;
use crate::types::{
    Delivery, DeliveryState, Direction, InboundOutcome, InboundRecord, MessageQuery, MessageStatus,
    Millis, NewDelivery, QueueDepth, StoredMessage,
};

const MESSAGE_COLS: &str = "id, org, channel, received_at, peer, control_id, message_type, \
     sending_application, sending_facility, status, error, ack, raw, direction";

/// An empty `payload` means "the message's own bytes" (see `NewDelivery`): the
/// bytes are then read from the message instead of being stored twice.
pub(crate) const DELIVERY_COLS: &str = "id, message_id, org, destination, state, attempts, next_attempt_at, \
     created_at, updated_at, last_error, response, \
     CASE WHEN length(payload) = 0 THEN (SELECT raw FROM messages m WHERE m.id = deliveries.message_id) \
     ELSE payload END";

/// Must stay textually identical to the partial index's WHERE so SQLite uses it.
const PENDING: &str = "state IN ('queued', 'retrying')";

pub(crate) fn parse_col<T: std::str::FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: row.get(0)?,
        org: row.get(1)?,
        channel: row.get(2)?,
        received_at: row.get(3)?,
        peer: row.get(4)?,
        control_id: row.get(5)?,
        message_type: row.get(6)?,
        sending_application: row.get(7)?,
        sending_facility: row.get(8)?,
        status: parse_col::<MessageStatus>(row, 9)?,
        error: row.get(10)?,
        ack: row.get(11)?,
        raw: row.get(12)?,
        direction: parse_col::<Direction>(row, 13)?,
    })
}

pub(crate) fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: row.get(0)?,
        message_id: row.get(1)?,
        org: row.get(2)?,
        destination: row.get(3)?,
        state: parse_col::<DeliveryState>(row, 4)?,
        attempts: row.get(5)?,
        next_attempt_at: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        last_error: row.get(9)?,
        response: row.get(10)?,
        payload: row.get(11)?,
    })
}

pub(crate) fn one_row_changed(changed: usize) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------- writes

/// `prepared` is [`prepare_actions`](super::worklist::prepare_actions) of
/// `rec.worklist`, computed before the op was queued.
pub(crate) fn record_inbound(
    conn: &Connection,
    rec: &InboundRecord,
    prepared: &[super::worklist::PreparedAction],
) -> Result<InboundOutcome, StoreError> {
    if let (Some(window), Some(control_id)) = (rec.dedup_window, rec.control_id.as_deref()) {
        // `IS` so that a missing MSH-3/MSH-4 matches another missing one. The
        // ORDER BY follows the index (earliest first), so no sorter is built.
        let mut stmt = conn.prepare_cached(
            "SELECT id, ack FROM messages INDEXED BY messages_dedup \
             WHERE org = ?1 AND channel = ?2 AND sending_application IS ?3 \
               AND sending_facility IS ?4 AND control_id = ?5 AND received_at >= ?6 \
               AND ack IS NOT NULL \
             ORDER BY received_at, id LIMIT 1",
        )?;
        let original = stmt
            .query_row(
                params![
                    rec.org,
                    rec.channel,
                    rec.sending_application,
                    rec.sending_facility,
                    control_id,
                    rec.received_at.saturating_sub(window),
                ],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<Vec<u8>>>(1)?)),
            )
            .optional()?;
        if let Some((original_id, original_ack)) = original {
            return Ok(InboundOutcome::Duplicate {
                original_id,
                original_ack,
            });
        }
    }

    // Plain INSERT + last_insert_rowid: RETURNING would make SQLite buffer the
    // result in an ephemeral table on every insert, which showed up in profiles.
    conn.prepare_cached(
        "INSERT INTO messages (org, channel, direction, received_at, peer, control_id, \
         message_type, sending_application, sending_facility, status, error, ack, raw) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        rec.org,
        rec.channel,
        rec.direction.as_str(),
        rec.received_at,
        rec.peer,
        rec.control_id,
        rec.message_type,
        rec.sending_application,
        rec.sending_facility,
        rec.status.as_str(),
        rec.error,
        rec.ack,
        rec.raw,
    ])?;
    let message_id = conn.last_insert_rowid();
    let delivery_ids =
        insert_deliveries(conn, message_id, &rec.org, rec.received_at, &rec.deliveries)?;
    let worklist = if rec.worklist.is_empty() {
        Vec::new()
    } else {
        super::worklist::apply_actions(
            conn,
            &rec.org,
            message_id,
            rec.received_at,
            &rec.worklist,
            prepared,
        )?
    };
    Ok(InboundOutcome::Stored {
        message_id,
        delivery_ids,
        worklist,
    })
}

/// Queue entries of one message, ids in the order given.
pub(crate) fn insert_deliveries(
    conn: &Connection,
    message_id: i64,
    org: &str,
    created_at: Millis,
    deliveries: &[NewDelivery],
) -> Result<Vec<i64>, StoreError> {
    let mut delivery_ids = Vec::with_capacity(deliveries.len());
    if !deliveries.is_empty() {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO deliveries (message_id, org, destination, state, attempts, \
             next_attempt_at, created_at, updated_at, payload) \
             VALUES (?1, ?2, ?3, 'queued', 0, ?4, ?5, ?5, ?6)",
        )?;
        for d in deliveries {
            stmt.execute(params![
                message_id,
                org,
                d.destination,
                d.not_before,
                created_at,
                d.payload
            ])?;
            delivery_ids.push(conn.last_insert_rowid());
        }
    }
    Ok(delivery_ids)
}

pub(crate) fn set_ack(
    conn: &Connection,
    message_id: i64,
    status: MessageStatus,
    ack: Option<&[u8]>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached("UPDATE messages SET status = ?2, ack = ?3, error = ?4 WHERE id = ?1")?
        .execute(params![message_id, status.as_str(), ack, error])?;
    one_row_changed(changed)
}

pub(crate) fn set_status(
    conn: &Connection,
    message_id: i64,
    status: MessageStatus,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached("UPDATE messages SET status = ?2, error = ?3 WHERE id = ?1")?
        .execute(params![message_id, status.as_str(), error])?;
    one_row_changed(changed)
}

pub(crate) fn delivery_sent(
    conn: &Connection,
    id: i64,
    at: Millis,
    response: Option<&[u8]>,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, updated_at = ?2, \
             response = ?3 WHERE id = ?1",
        )?
        .execute(params![id, at, response])?;
    one_row_changed(changed)
}

pub(crate) fn delivery_failed(
    conn: &Connection,
    id: i64,
    at: Millis,
    error: &str,
    response: Option<&[u8]>,
    retry_at: Option<Millis>,
) -> Result<(), StoreError> {
    let changed = match retry_at {
        Some(retry_at) => conn
            .prepare_cached(
                "UPDATE deliveries SET state = 'retrying', attempts = attempts + 1, \
                 next_attempt_at = ?5, updated_at = ?2, last_error = ?3, response = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![id, at, error, response, retry_at])?,
        None => conn
            .prepare_cached(
                "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, \
                 updated_at = ?2, last_error = ?3, response = ?4 WHERE id = ?1",
            )?
            .execute(params![id, at, error, response])?,
    };
    one_row_changed(changed)
}

pub(crate) fn requeue_delivery(conn: &Connection, id: i64, at: Millis) -> Result<(), StoreError> {
    // attempts restarts at 0 so that the caller's backoff starts over for a resend;
    // last_error is kept as history until the next attempt overwrites it.
    let changed = conn
        .prepare_cached(
            "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = ?2, \
             updated_at = ?2 WHERE id = ?1",
        )?
        .execute(params![id, at])?;
    one_row_changed(changed)
}

/// Where a prune pass stopped: (received_at, id) of the last message looked at.
pub(crate) type PruneCursor = (Millis, i64);

pub(crate) struct PruneStep {
    pub(crate) deleted: u64,
    pub(crate) examined: usize,
    pub(crate) cursor: PruneCursor,
}

/// Examines at most `limit` messages older than `before`, starting after `cursor`,
/// and deletes the ones with no pending delivery. The cursor keeps kept messages
/// (a destination that is down for days) from being rescanned on every step.
pub(crate) fn prune_step(
    conn: &Connection,
    before: Millis,
    limit: usize,
    cursor: PruneCursor,
) -> Result<PruneStep, StoreError> {
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let candidates: Vec<(i64, Millis, bool)> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT m.id, m.received_at, \
               EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.{PENDING}) \
             FROM messages m INDEXED BY messages_received \
             WHERE m.received_at < ?1 AND m.received_at >= ?2 \
               AND (m.received_at > ?2 OR m.id > ?3) \
             ORDER BY m.received_at, m.id LIMIT ?4"
        ))?;
        stmt.query_map(params![before, cursor.0, cursor.1, limit_sql], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut deleted = 0;
    let mut next = cursor;
    let mut delete = conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
    for &(id, received_at, pending) in &candidates {
        next = (received_at, id);
        if !pending {
            // Finished deliveries go with it through ON DELETE CASCADE.
            deleted += delete.execute([id])? as u64;
        }
    }
    Ok(PruneStep {
        deleted,
        examined: candidates.len(),
        cursor: next,
    })
}

// ---------------------------------------------------------------- reads

pub(crate) fn pending_deliveries(
    conn: &Connection,
    destination: &str,
    limit: usize,
) -> Result<Vec<Delivery>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLS} FROM deliveries \
         WHERE destination = ?1 AND {PENDING} ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![destination, limit], delivery_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn deliveries_for_message(
    conn: &Connection,
    message_id: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLS} FROM deliveries WHERE message_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([message_id], delivery_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn get_delivery(conn: &Connection, id: i64) -> Result<Option<Delivery>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLS} FROM deliveries WHERE id = ?1"
    ))?;
    Ok(stmt.query_row([id], delivery_from_row).optional()?)
}

pub(crate) fn queue_depth(conn: &Connection, destination: &str) -> Result<QueueDepth, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE destination = ?1 AND {PENDING}"
    ))?;
    let (pending, oldest_created_at) = stmt.query_row([destination], |row| {
        Ok((row.get::<_, i64>(0)?, row.get(1)?))
    })?;
    Ok(QueueDepth {
        pending: u64::try_from(pending).unwrap_or(0),
        oldest_created_at,
    })
}

pub(crate) fn get_message(
    conn: &Connection,
    org: &str,
    id: i64,
) -> Result<Option<StoredMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE id = ?1 AND org = ?2"
    ))?;
    Ok(stmt
        .query_row(params![id, org], message_from_row)
        .optional()?)
}

/// Two steps: pick the ids through whatever index fits the filters, then load
/// those rows. Whichever plan SQLite picks, only the page's rows are ever read in
/// full, so a sort never drags megabytes of `raw` through the sorter.
pub(crate) fn find_messages(
    conn: &Connection,
    q: &MessageQuery,
) -> Result<Vec<StoredMessage>, StoreError> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    let status = q.status.map(MessageStatus::as_str);
    let mut sql = String::from("SELECT id FROM messages WHERE ");
    let mut args: Vec<&dyn ToSql> = vec![&q.org];
    if q.channel.is_none() && q.control_id.is_none() && q.direction != Some(Direction::Out) {
        // Without a selective filter, walking the table newest-first and stopping at
        // `limit` beats reading every row of the org through the org index and sorting.
        sql.push_str("+org = ?");
    } else {
        sql.push_str("org = ?");
    }
    // A literal, not a parameter: only then can SQLite pick the partial index
    // `messages_outbound` (WHERE direction = 'out').
    match q.direction {
        Some(Direction::Out) => sql.push_str(" AND direction = 'out'"),
        Some(Direction::In) => sql.push_str(" AND direction = 'in'"),
        None => {}
    }
    let filters: [(&str, Option<&dyn ToSql>); 7] = [
        (
            " AND channel = ?",
            q.channel.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            " AND control_id = ?",
            q.control_id.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            " AND message_type = ?",
            q.message_type.as_ref().map(|v| v as &dyn ToSql),
        ),
        (" AND status = ?", status.as_ref().map(|v| v as &dyn ToSql)),
        (
            " AND received_at >= ?",
            q.since.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            " AND received_at < ?",
            q.until.as_ref().map(|v| v as &dyn ToSql),
        ),
        (" AND id < ?", q.before_id.as_ref().map(|v| v as &dyn ToSql)),
    ];
    for (clause, value) in filters {
        if let Some(value) = value {
            sql.push_str(clause);
            args.push(value);
        }
    }
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(&limit);

    // One read transaction so that the ids and the rows come from the same snapshot.
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = (|| {
        let ids: Vec<i64> = conn
            .prepare_cached(&sql)?
            .query_map(args.as_slice(), |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut load = conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE id = ?1"
        ))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = load.query_row([id], message_from_row).optional()? {
                out.push(m);
            }
        }
        Ok::<_, StoreError>(out)
    })();
    conn.prepare_cached("COMMIT")?.execute([])?;
    result
}

/// Per channel, among the newest `recent` messages of `org`: how many, how
/// many errored or rejected, the newest time, whether the newest failed, and
/// the newest error. Reads no message bodies.
pub(crate) fn channel_activity(
    conn: &Connection,
    org: &str,
    recent: usize,
) -> Result<Vec<crate::types::ChannelActivity>, StoreError> {
    let limit = i64::try_from(recent).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT channel, received_at, status IN ('errored', 'rejected'), error \
         FROM messages WHERE org = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let mut out: Vec<crate::types::ChannelActivity> = Vec::new();
    let mut rows = stmt.query(params![org, limit])?;
    while let Some(row) = rows.next()? {
        let channel: String = row.get(0)?;
        let at: Millis = row.get(1)?;
        let failed: bool = row.get(2)?;
        let error: Option<String> = row.get(3)?;
        let entry = match out.iter().position(|a| a.channel == channel) {
            Some(i) => &mut out[i],
            None => {
                // Newest first: the first row seen is the channel's newest.
                out.push(crate::types::ChannelActivity {
                    channel,
                    received: 0,
                    errored: 0,
                    last_at: at,
                    newest_failed: failed,
                    last_error: None,
                });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        entry.received += 1;
        if failed {
            entry.errored += 1;
            if entry.last_error.is_none() {
                entry.last_error = Some((at, error.unwrap_or_default()));
            }
        }
    }
    Ok(out)
}

/// Messages of `org` since `since`, counted per `bucket_ms` window and
/// direction: (window start, direction, errored or rejected, all).
pub(crate) fn message_traffic(
    conn: &Connection,
    org: &str,
    since: Millis,
    bucket_ms: Millis,
) -> Result<Vec<crate::types::TrafficBucket>, StoreError> {
    let bucket = bucket_ms.max(1);
    let mut stmt = conn.prepare_cached(
        "SELECT (received_at / ?3) * ?3 AS b, direction, \
                SUM(status IN ('errored', 'rejected')), COUNT(*) \
         FROM messages WHERE org = ?1 AND received_at >= ?2 \
         GROUP BY b, direction ORDER BY b",
    )?;
    let rows = stmt
        .query_map(params![org, since, bucket], |row| {
            let direction: String = row.get(1)?;
            Ok(crate::types::TrafficBucket {
                start: row.get(0)?,
                outbound: direction == "out",
                errored: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                total: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn count_messages(
    conn: &Connection,
    org: &str,
    channel: Option<&str>,
) -> Result<u64, StoreError> {
    let count = match channel {
        Some(channel) => conn
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE org = ?1 AND channel = ?2")?
            .query_row(params![org, channel], |row| row.get::<_, i64>(0))?,
        None => conn
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE org = ?1")?
            .query_row([org], |row| row.get::<_, i64>(0))?,
    };
    Ok(u64::try_from(count).unwrap_or(0))
}
