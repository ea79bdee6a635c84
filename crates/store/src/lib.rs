//! The durable store of medrelay: every inbound message and every outbound
//! delivery.
//!
//! The engine's hot path is: parse a message, build its ACK, call
//! [`Store::record_inbound`] (raw bytes + ACK + destination queue entries in one
//! transaction), and only when that returns send the ACK. "Nothing acknowledged
//! is ever lost" therefore rests on this crate: an `Ok` from any write method
//! means the change is committed and fsynced.
//!
//! # Embedded SQLite
//!
//! [`Store::open_sqlite`] opens a SQLite database in WAL mode with
//! `synchronous=FULL`. All writes go to one writer thread which commits
//! *batches*: it blocks for the first queued operation, takes every other
//! operation already waiting (up to [`SqliteOptions::max_batch`]), runs them in
//! one transaction — an operation that fails without having changed a row does
//! not fail its neighbours — and commits once. Sixteen connections waiting
//! for their ACKs thus share one fsync instead of queueing for sixteen.
//! Reads use a small pool of read-only connections on blocking threads; with WAL
//! they never wait for the writer.
//!
//! # Backends
//!
//! [`Store`] is a cheap handle (`Clone` is an `Arc` bump) whose methods are async
//! and use only this crate's types, so a PostgreSQL backend can be added behind
//! it without touching callers. [`Store::open`] already recognises
//! `postgres://` URLs and answers [`StoreError::Unsupported`].
//!
//! # Organisations
//!
//! Every row carries `org`. Reads that are given an organisation filter by it;
//! ids are global, so [`Store::get_message`] with the wrong `org` finds nothing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), medrelay_store::StoreError> {
//! use medrelay_store::{InboundOutcome, InboundRecord, MessageStatus, NewDelivery, Store};
//!
//! let store = Store::open("sqlite://medrelay-data/medrelay.db")?;
//! let outcome = store
//!     .record_inbound(InboundRecord {
//!         channel: "adt-in".into(),
//!         received_at: 1_700_000_000_000,
//!         control_id: Some("MSG00001".into()),
//!         status: MessageStatus::Accepted,
//!         raw: b"MSH|^~\\&|...".to_vec(),
//!         ack: Some(b"MSH|^~\\&|...MSA|AA|MSG00001".to_vec()),
//!         dedup_window: Some(24 * 3600 * 1000),
//!         deliveries: vec![NewDelivery {
//!             destination: "adt-in/pacs".into(),
//!             payload: b"MSH|...".to_vec(),
//!             not_before: 1_700_000_000_000,
//!         }],
//!         ..InboundRecord::default()
//!     })
//!     .await?;
//! match outcome {
//!     InboundOutcome::Stored { .. } => { /* send the ACK we built */ }
//!     InboundOutcome::Duplicate { original_ack, .. } => { /* resend original_ack */ }
//! }
//! store.close().await?;
//! # Ok(()) }
//! ```

mod error;
mod sqlite;
mod types;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use error::{StoreError, UnknownName};
pub use sqlite::SqliteOptions;
pub use types::{
    DEFAULT_ORG, Delivery, DeliveryState, InboundOutcome, InboundRecord, MessageQuery,
    MessageStatus, Millis, NewDelivery, QueueDepth, StoreMetrics, StoredMessage,
};

use sqlite::SqliteBackend;

/// The backends behind [`Store`]. A `Postgres(PostgresBackend)` variant slots in
/// here; every `Store` method then gains one match arm.
enum Backend {
    Sqlite(SqliteBackend),
}

/// Calls the same-named method on whichever backend is in use.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &*$self.backend {
            Backend::Sqlite(b) => b.$method($($arg),*).await,
        }
    };
}

/// Handle to the store. Clones share one backend (one writer thread, one read
/// pool); closing through any clone closes it for all.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.backend {
            Backend::Sqlite(_) => "sqlite",
        };
        f.debug_struct("Store").field("backend", &kind).finish()
    }
}

impl Store {
    /// Opens (creating it and its parent directories if needed) the SQLite
    /// database file at `path`, brings the schema up to date and starts the
    /// writer thread. Blocks briefly for the migration, so call it at start-up.
    pub fn open_sqlite(path: &Path, opts: SqliteOptions) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Arc::new(Backend::Sqlite(SqliteBackend::open(path, opts)?)),
        })
    }

    /// Opens a store from configuration text: `sqlite://PATH`, `sqlite:PATH` or a
    /// plain path for SQLite with default options. `postgres://…` is recognised
    /// but not yet supported.
    pub fn open(url_or_path: &str) -> Result<Store, StoreError> {
        let lower = url_or_path.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Err(StoreError::Unsupported(
                "PostgreSQL is not supported by this build yet; use sqlite://PATH".into(),
            ));
        }
        let path = if lower.starts_with("sqlite://") {
            &url_or_path["sqlite://".len()..]
        } else if lower.starts_with("sqlite:") {
            &url_or_path["sqlite:".len()..]
        } else if let Some((scheme, _)) = url_or_path.split_once("://") {
            return Err(StoreError::Unsupported(format!(
                "database URL scheme {scheme:?}; use sqlite://PATH or a file path"
            )));
        } else {
            url_or_path
        };
        if path.is_empty() {
            return Err(StoreError::Unsupported(format!(
                "database location {url_or_path:?} names no file"
            )));
        }
        Store::open_sqlite(Path::new(path), SqliteOptions::default())
    }

    /// Commits the message, its ACK and its queue entries in one transaction, or
    /// recognises a retransmission (see [`InboundRecord::dedup_window`]). When this
    /// returns `Stored`, the message is durable and its ACK may be sent.
    pub async fn record_inbound(&self, rec: InboundRecord) -> Result<InboundOutcome, StoreError> {
        dispatch!(self.record_inbound(rec))
    }

    /// Stores the reply and final status of a message whose ACK is sent only after
    /// its destinations ("ACK after destinations"). `NotFound` for an unknown id.
    pub async fn set_ack(
        &self,
        message_id: i64,
        status: MessageStatus,
        ack: Option<Vec<u8>>,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        dispatch!(self.set_ack(message_id, status, ack, error))
    }

    /// Changes a message's status (and error text). `NotFound` for an unknown id.
    pub async fn set_status(
        &self,
        message_id: i64,
        status: MessageStatus,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        dispatch!(self.set_status(message_id, status, error))
    }

    /// Pending (queued or retrying) deliveries for one destination, oldest first (by
    /// id), at most `limit`. Includes ones whose `next_attempt_at` is in the future:
    /// the caller waits for the head, which keeps delivery ordered.
    pub async fn pending_deliveries(
        &self,
        destination: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self.pending_deliveries(destination, limit))
    }

    /// Marks a delivery sent at `at` (attempts + 1), keeping the destination's reply.
    pub async fn delivery_sent(
        &self,
        id: i64,
        at: Millis,
        response: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        dispatch!(self.delivery_sent(id, at, response))
    }

    /// Records a failed attempt (attempts + 1). `retry_at = Some(t)`: state
    /// `retrying`, next attempt at `t`. `None`: state `failed`, permanently, until
    /// an operator requeues it.
    pub async fn delivery_failed(
        &self,
        id: i64,
        at: Millis,
        error: &str,
        response: Option<Vec<u8>>,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        dispatch!(self.delivery_failed(id, at, error, response, retry_at))
    }

    /// Puts a delivery back in its queue (the dashboard's "resend"): state `queued`,
    /// due at `at`, attempts reset to 0. It keeps its id, so it takes its original
    /// place in the destination's order.
    pub async fn requeue_delivery(&self, id: i64, at: Millis) -> Result<(), StoreError> {
        dispatch!(self.requeue_delivery(id, at))
    }

    /// Every delivery of one message, in creation order.
    pub async fn deliveries_for_message(
        &self,
        message_id: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self.deliveries_for_message(message_id))
    }

    /// One delivery by id.
    pub async fn get_delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        dispatch!(self.get_delivery(id))
    }

    /// How many deliveries a destination still owes, and since when.
    pub async fn queue_depth(&self, destination: &str) -> Result<QueueDepth, StoreError> {
        dispatch!(self.queue_depth(destination))
    }

    /// One message, only if it belongs to `org`.
    pub async fn get_message(
        &self,
        org: &str,
        id: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        dispatch!(self.get_message(org, id))
    }

    /// Messages of `q.org` matching the filters, newest (highest id) first.
    pub async fn find_messages(&self, q: MessageQuery) -> Result<Vec<StoredMessage>, StoreError> {
        dispatch!(self.find_messages(q))
    }

    /// Number of messages of `org`, optionally in one channel.
    pub async fn count_messages(
        &self,
        org: &str,
        channel: Option<&str>,
    ) -> Result<u64, StoreError> {
        dispatch!(self.count_messages(org, channel))
    }

    /// Retention: deletes messages received before `before`, with their finished
    /// deliveries, `batch` messages per step; each step is one writer operation so
    /// normal traffic commits in between. Messages that still have a queued or
    /// retrying delivery are kept. Returns the number of messages deleted.
    pub async fn prune(&self, before: Millis, batch: usize) -> Result<u64, StoreError> {
        dispatch!(self.prune(before, batch))
    }

    /// Waits until every operation sent so far is committed, checkpoints the WAL
    /// (TRUNCATE) and stops the writer. Afterwards every call, including `close`,
    /// returns [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        dispatch!(self.close())
    }

    /// Group-commit counters since open.
    pub fn metrics_snapshot(&self) -> StoreMetrics {
        match &*self.backend {
            Backend::Sqlite(b) => b.metrics(),
        }
    }
}
