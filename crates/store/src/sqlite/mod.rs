//! The embedded SQLite backend: one writer thread doing group commit, a small
//! pool of read-only connections for everything else.

mod direct;
mod fhir;
mod names;
mod oauth;
mod sql;
mod users;
mod worklist;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{Semaphore, oneshot};

use crate::direct::{
    DirectAddress, DirectEdge, DirectMessage, DirectNotification, DirectRecipient, DirectSubmit,
    NewDirectMessage, NewNotification,
};
use crate::domain::{
    ApiToken, AppointmentQuery, GroupInfo, MeasurementIds, OutboundMessage, StoredMeasurement,
};
use crate::error::StoreError;
use crate::fhir::{
    AppointmentSearch, MeasurementSearch, NewStudy, PatientSearch, StoredStudy, StudySearch,
    Versioned,
};
use crate::oauth::{OAuthClient, OAuthToken};
use crate::types::{
    Delivery, InboundOutcome, InboundRecord, MessageQuery, MessageStatus, Millis, QueueDepth,
    StoreMetrics, StoredMessage,
};
use crate::users::{AuditEntry, ChannelState, Session, User};
use medrelay_worklist::{Appointment, Device, DeviceGroup, Measurement, OrderKey, Patient};
use writer::{Job, Metrics, Msg};

/// The schema, oldest first. Never edit a released migration: add a new file.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/0001_init.sql")),
        // Rebuilds `messages`: must run with foreign keys off (see open_writer).
        M::up(include_str!("../../migrations/0002_worklist.sql")).foreign_key_check(),
        M::up(include_str!("../../migrations/0003_oauth.sql")),
        M::up(include_str!("../../migrations/0004_fhir.sql")),
        M::up(include_str!("../../migrations/0005_direct.sql")),
        M::up(include_str!("../../migrations/0006_dashboard.sql")),
        M::up(include_str!("../../migrations/0007_session_org.sql")),
        // Needs `medrelay_fold` (register_functions).
        M::up(include_str!("../../migrations/0008_patient_names.sql")),
        M::up(include_str!("../../migrations/0009_channel_states.sql")),
    ])
}

/// Tuning for the SQLite backend. `Default` is right for almost everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Most write operations committed in one transaction.
    pub max_batch: usize,
    /// Read-only connections kept for queries (opened lazily, at most this many).
    pub readers: usize,
    /// Page cache of the writer connection, in KiB.
    pub writer_cache_kib: u32,
    /// Page cache of each reader connection, in KiB.
    pub reader_cache_kib: u32,
    /// How long a connection waits for a lock held by another process (e.g. a
    /// backup tool) before failing.
    pub busy_timeout: Duration,
    /// Under concurrent load, how long the writer may keep collecting ops that are
    /// still arriving before it commits (PostgreSQL's `commit_delay`). Zero
    /// commits as soon as the queue is empty.
    pub commit_delay: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 1024,
            readers: 4,
            // Not larger: when a B-tree split reorders its pages, SQLite parks a
            // page at the lock-byte page number (1 GiB / page size), and the
            // commit then walks the writer's whole page cache to drop pages
            // beyond the end of the file (pcache1TruncateUnsafe) until the
            // database is larger than 1 GiB. With 32 MiB that walk was ~7% of
            // the writer's time on the order path; at 8 MiB it is ~2%, and the
            // extra misses are served by the OS page cache.
            writer_cache_kib: 8 * 1024,
            reader_cache_kib: 8 * 1024,
            busy_timeout: Duration::from_secs(5),
            // Measured on the reference VM (2 cores, ~1 ms fsync): lingering cost
            // more CPU time than it saved in fsyncs, so it is off by default.
            commit_delay: Duration::ZERO,
        }
    }
}

pub(crate) struct SqliteBackend {
    writer: Sender<Msg>,
    /// Dropping or sending on it stops the checkpointer thread.
    checkpointer: Mutex<Option<Sender<()>>>,
    readers: Arc<ReadPool>,
    metrics: Arc<Metrics>,
    closed: AtomicBool,
}

struct ReadPool {
    path: PathBuf,
    opts: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
    /// Bounds concurrent reads (and so the number of open connections); waiting
    /// here is async, so a burst of reads never ties up blocking threads.
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

impl ReadPool {
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self
            .idle
            .lock()
            .expect("read pool mutex poisoned: a reader panicked while returning a connection")
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path, &self.opts),
        }
    }

    fn put(&self, conn: Connection) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.idle
            .lock()
            .expect("read pool mutex poisoned: a reader panicked while returning a connection")
            .push(conn);
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        self.idle
            .lock()
            .expect("read pool mutex poisoned: a reader panicked while returning a connection")
            .clear();
    }
}

fn apply_common_pragmas(
    conn: &Connection,
    cache_kib: u32,
    busy: Duration,
) -> Result<(), StoreError> {
    conn.busy_timeout(busy)?;
    // Negative cache_size means KiB rather than pages.
    conn.pragma_update(None, "cache_size", -i64::from(cache_kib))?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

fn open_writer(path: &Path, opts: &SqliteOptions) -> Result<Connection, StoreError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    apply_common_pragmas(&conn, opts.writer_cache_kib, opts.busy_timeout)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unsupported(format!(
            "{} cannot use write-ahead logging (journal_mode is {mode})",
            path.display()
        )));
    }
    // FULL: the WAL is fsynced inside every COMMIT, which is what lets the
    // engine send its ACK as soon as record_inbound returns.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Migrations run with foreign keys off, as SQLite prescribes for rebuilding a
    // table (0002 rebuilds `messages`: with them on, dropping the old table would
    // cascade-delete every delivery). Each migration checks them before it commits.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    register_functions(&conn)?;
    migrations().to_latest(&mut conn)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A checkpoint copies WAL pages into the database and fsyncs it; on the
    // writer thread that stalls every waiting ACK. The checkpointer thread does
    // that work beside the writer, but only a checkpoint between the writer's own
    // transactions can finish and let the WAL start over, so the writer still
    // checkpoints every ~16 MB of WAL: by then most pages are already copied and
    // its checkpoint is short.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    // Keep the WAL file from staying huge after a burst of large payloads.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// SQL functions the migrations call (`medrelay_fold`: 0008 fills the name
/// index of the patients already stored).
fn register_functions(conn: &Connection) -> Result<(), StoreError> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "medrelay_fold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                ValueRef::Null => None,
                ValueRef::Text(t) => Some(names::fold_part(&String::from_utf8_lossy(t))),
                ValueRef::Integer(i) => Some(i.to_string()),
                ValueRef::Real(r) => Some(r.to_string()),
                ValueRef::Blob(_) => None,
            })
        },
    )?;
    Ok(())
}

fn open_reader(path: &Path, opts: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    apply_common_pragmas(&conn, opts.reader_cache_kib, opts.busy_timeout)?;
    // find_messages builds its SQL from the filters given; room for every variant.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// How often the checkpointer copies committed WAL pages into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// A thread with its own connection that runs PASSIVE checkpoints: they never
/// wait for the writer or readers and the writer never waits for them, so the
/// WAL stays small without a checkpoint ever landing on the ACK path. It stops
/// when its sender is dropped.
fn spawn_checkpointer(path: &Path, opts: &SqliteOptions) -> Result<Sender<()>, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(opts.busy_timeout)?;
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("medrelay-store-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "store: background checkpoint failed");
                }
            }
        })?;
    Ok(tx)
}

impl SqliteBackend {
    pub(crate) fn open(path: &Path, opts: SqliteOptions) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let conn = open_writer(path, &opts)?;
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::channel();
        let config = writer::WriterConfig {
            max_batch: opts.max_batch,
            commit_delay: opts.commit_delay,
        };
        writer::spawn(conn, rx, config, metrics.clone())?;
        let checkpointer = spawn_checkpointer(path, &opts)?;
        let readers = opts.readers.max(1);
        Ok(SqliteBackend {
            writer: tx,
            checkpointer: Mutex::new(Some(checkpointer)),
            readers: Arc::new(ReadPool {
                path: path.to_path_buf(),
                opts,
                idle: Mutex::new(Vec::with_capacity(readers)),
                permits: Arc::new(Semaphore::new(readers)),
                closed: AtomicBool::new(false),
            }),
            metrics,
            closed: AtomicBool::new(false),
        })
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Queues `work` for the writer and waits for its transaction to commit.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Msg::Op(Box::new(Job::new(work, tx))))
            .map_err(|_| StoreError::Closed)?;
        // A dropped reply means the writer stopped before committing the op.
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        let permit = self
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.take()?;
            let result = work(&conn);
            pool.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("read task failed: {e}")))?
    }

    pub(crate) fn metrics(&self) -> StoreMetrics {
        self.metrics.snapshot()
    }

    pub(crate) async fn close(&self) -> Result<(), StoreError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Err(StoreError::Closed);
        }
        // Readers and the checkpointer go first so the final checkpoint can
        // truncate the WAL (an open snapshot would pin it).
        self.readers.close();
        if let Ok(mut c) = self.checkpointer.lock() {
            c.take();
        }
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Msg::Close(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) async fn record_inbound(
        &self,
        rec: InboundRecord,
    ) -> Result<InboundOutcome, StoreError> {
        // The worklist's JSON work happens here, on the caller's thread: the
        // single writer thread is the bottleneck of the order path.
        let prepared = worklist::prepare_actions(&rec.worklist)?;
        // Moved, not copied: the payload bytes travel to the writer by ownership.
        self.write(move |conn| sql::record_inbound(conn, &rec, &prepared))
            .await
    }

    pub(crate) async fn set_ack(
        &self,
        message_id: i64,
        status: MessageStatus,
        ack: Option<Vec<u8>>,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            sql::set_ack(conn, message_id, status, ack.as_deref(), error.as_deref())
        })
        .await
    }

    pub(crate) async fn set_status(
        &self,
        message_id: i64,
        status: MessageStatus,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| sql::set_status(conn, message_id, status, error.as_deref()))
            .await
    }

    pub(crate) async fn pending_deliveries(
        &self,
        destination: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let destination = destination.to_owned();
        self.read(move |conn| sql::pending_deliveries(conn, &destination, limit))
            .await
    }

    pub(crate) async fn delivery_sent(
        &self,
        id: i64,
        at: Millis,
        response: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| sql::delivery_sent(conn, id, at, response.as_deref()))
            .await
    }

    pub(crate) async fn delivery_failed(
        &self,
        id: i64,
        at: Millis,
        error: &str,
        response: Option<Vec<u8>>,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(move |conn| {
            sql::delivery_failed(conn, id, at, &error, response.as_deref(), retry_at)
        })
        .await
    }

    pub(crate) async fn requeue_delivery(&self, id: i64, at: Millis) -> Result<(), StoreError> {
        self.write(move |conn| sql::requeue_delivery(conn, id, at))
            .await
    }

    pub(crate) async fn deliveries_for_message(
        &self,
        message_id: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |conn| sql::deliveries_for_message(conn, message_id))
            .await
    }

    pub(crate) async fn get_delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        self.read(move |conn| sql::get_delivery(conn, id)).await
    }

    pub(crate) async fn queue_depth(&self, destination: &str) -> Result<QueueDepth, StoreError> {
        let destination = destination.to_owned();
        self.read(move |conn| sql::queue_depth(conn, &destination))
            .await
    }

    pub(crate) async fn get_message(
        &self,
        org: &str,
        id: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let org = org.to_owned();
        self.read(move |conn| sql::get_message(conn, &org, id))
            .await
    }

    pub(crate) async fn find_messages(
        &self,
        q: MessageQuery,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(move |conn| sql::find_messages(conn, &q)).await
    }

    pub(crate) async fn channel_activity(
        &self,
        org: &str,
        recent: usize,
    ) -> Result<Vec<crate::types::ChannelActivity>, StoreError> {
        let org = org.to_owned();
        self.read(move |conn| sql::channel_activity(conn, &org, recent))
            .await
    }

    pub(crate) async fn message_traffic(
        &self,
        org: &str,
        since: Millis,
        bucket_ms: Millis,
    ) -> Result<Vec<crate::types::TrafficBucket>, StoreError> {
        let org = org.to_owned();
        self.read(move |conn| sql::message_traffic(conn, &org, since, bucket_ms))
            .await
    }

    pub(crate) async fn count_messages(
        &self,
        org: &str,
        channel: Option<&str>,
    ) -> Result<u64, StoreError> {
        let org = org.to_owned();
        let channel = channel.map(str::to_owned);
        self.read(move |conn| sql::count_messages(conn, &org, channel.as_deref()))
            .await
    }

    pub(crate) async fn prune(&self, before: Millis, batch: usize) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let mut cursor = (Millis::MIN, i64::MIN);
        let mut deleted = 0;
        // One writer op per step: other traffic queued meanwhile commits in between,
        // so retention never holds the write lock for more than `batch` rows.
        loop {
            let step = self
                .write(move |conn| sql::prune_step(conn, before, batch, cursor))
                .await?;
            deleted += step.deleted;
            cursor = step.cursor;
            if step.examined < batch {
                return Ok(deleted);
            }
        }
    }
}

/// Owned copies of `&str` arguments for the closures sent to the writer/readers.
fn own(s: &str) -> String {
    s.to_owned()
}

/// The device worklist (see `worklist.rs`).
impl SqliteBackend {
    pub(crate) async fn find_appointment(
        &self,
        org: &str,
        key: &OrderKey,
    ) -> Result<Option<Appointment>, StoreError> {
        let (org, key) = (own(org), key.clone());
        self.read(move |c| worklist::find_appointment(c, &org, &key))
            .await
    }

    pub(crate) async fn get_appointment(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<(Appointment, Patient)>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| worklist::get_appointment(c, &org, &id))
            .await
    }

    pub(crate) async fn worklist(
        &self,
        org: &str,
        group: &str,
        limit: usize,
    ) -> Result<Vec<(Appointment, Patient)>, StoreError> {
        let (org, group) = (own(org), own(group));
        self.read(move |c| worklist::worklist(c, &org, &group, limit))
            .await
    }

    pub(crate) async fn list_appointments(
        &self,
        q: AppointmentQuery,
    ) -> Result<Vec<(Appointment, Patient)>, StoreError> {
        self.read(move |c| worklist::list_appointments(c, &q)).await
    }

    pub(crate) async fn delete_appointment(
        &self,
        org: &str,
        id: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let (org, id) = (own(org), own(id));
        self.write(move |c| worklist::delete_appointment(c, &org, &id, at))
            .await
    }

    pub(crate) async fn get_patient(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Patient>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| worklist::get_patient(c, &org, &id))
            .await
    }

    pub(crate) async fn list_patients(
        &self,
        org: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Patient>, StoreError> {
        let org = own(org);
        self.read(move |c| worklist::list_patients(c, &org, limit, offset))
            .await
    }

    pub(crate) async fn create_group(
        &self,
        org: &str,
        name: &str,
        at: Millis,
    ) -> Result<DeviceGroup, StoreError> {
        let (org, name) = (own(org), own(name));
        self.write(move |c| worklist::create_group(c, &org, &name, at))
            .await
    }

    pub(crate) async fn list_groups(&self, org: &str) -> Result<Vec<GroupInfo>, StoreError> {
        let org = own(org);
        self.read(move |c| worklist::list_groups(c, &org)).await
    }

    pub(crate) async fn rename_group(
        &self,
        org: &str,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        let (org, from, to) = (own(org), own(from), own(to));
        self.write(move |c| worklist::rename_group(c, &org, &from, &to))
            .await
    }

    pub(crate) async fn delete_group(&self, org: &str, name: &str) -> Result<(), StoreError> {
        let (org, name) = (own(org), own(name));
        self.write(move |c| worklist::delete_group(c, &org, &name))
            .await
    }

    pub(crate) async fn create_device(
        &self,
        org: &str,
        name: &str,
        group: &str,
        token_hash: &str,
        at: Millis,
    ) -> Result<Device, StoreError> {
        let (org, name, group, hash) = (own(org), own(name), own(group), own(token_hash));
        self.write(move |c| worklist::create_device(c, &org, &name, &group, &hash, at))
            .await
    }

    pub(crate) async fn list_devices(&self, org: &str) -> Result<Vec<Device>, StoreError> {
        let org = own(org);
        self.read(move |c| worklist::list_devices(c, &org)).await
    }

    pub(crate) async fn get_device(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Device>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| worklist::get_device(c, &org, &id)).await
    }

    pub(crate) async fn rename_device(
        &self,
        org: &str,
        id: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let (org, id, name) = (own(org), own(id), own(name));
        self.write(move |c| worklist::rename_device(c, &org, &id, &name))
            .await
    }

    pub(crate) async fn move_device(
        &self,
        org: &str,
        id: &str,
        group: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let (org, id, group) = (own(org), own(id), own(group));
        self.write(move |c| worklist::move_device(c, &org, &id, &group, at))
            .await
    }

    pub(crate) async fn delete_device(&self, org: &str, id: &str) -> Result<(), StoreError> {
        let (org, id) = (own(org), own(id));
        self.write(move |c| worklist::delete_device(c, &org, &id))
            .await
    }

    pub(crate) async fn rotate_device_token(
        &self,
        org: &str,
        id: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        let (org, id, hash) = (own(org), own(id), own(new_hash));
        self.write(move |c| worklist::rotate_device_token(c, &org, &id, &hash))
            .await
    }

    pub(crate) async fn device_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<Device>, StoreError> {
        let hash = own(token_hash);
        self.read(move |c| worklist::device_by_token_hash(c, &hash))
            .await
    }

    pub(crate) async fn touch_device(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        self.touch(worklist::Seen::Device, id, at).await
    }

    /// Read first: most touches are inside the interval and then never reach
    /// the writer (no queueing behind ACKs, no commit). The UPDATE re-checks.
    async fn touch(&self, kind: worklist::Seen, id: &str, at: Millis) -> Result<bool, StoreError> {
        let id = worklist::parse_id(id).ok_or(StoreError::NotFound)?;
        let last = self.read(move |c| worklist::last_seen(c, kind, id)).await?;
        if !worklist::touch_due(last, at) {
            return Ok(false);
        }
        self.write(move |c| worklist::touch(c, kind, id, at)).await
    }

    pub(crate) async fn create_api_token(
        &self,
        org: &str,
        role: &str,
        name: &str,
        token_hash: &str,
        at: Millis,
    ) -> Result<ApiToken, StoreError> {
        let (org, role, name, hash) = (own(org), own(role), own(name), own(token_hash));
        self.write(move |c| worklist::create_api_token(c, &org, &role, &name, &hash, at))
            .await
    }

    pub(crate) async fn api_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiToken>, StoreError> {
        let hash = own(token_hash);
        self.read(move |c| worklist::api_token_by_hash(c, &hash))
            .await
    }

    pub(crate) async fn list_api_tokens(&self, org: &str) -> Result<Vec<ApiToken>, StoreError> {
        let org = own(org);
        self.read(move |c| worklist::list_api_tokens(c, &org)).await
    }

    pub(crate) async fn delete_api_token(&self, org: &str, id: &str) -> Result<(), StoreError> {
        let (org, id) = (own(org), own(id));
        self.write(move |c| worklist::delete_api_token(c, &org, &id))
            .await
    }

    pub(crate) async fn touch_api_token(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        self.touch(worklist::Seen::ApiToken, id, at).await
    }

    pub(crate) async fn record_measurement(
        &self,
        m: Measurement,
        at: Millis,
        outbound: Option<OutboundMessage>,
    ) -> Result<MeasurementIds, StoreError> {
        self.write(move |c| worklist::record_measurement(c, &m, at, outbound.as_ref()))
            .await
    }

    pub(crate) async fn get_measurement(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<StoredMeasurement>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| worklist::get_measurement(c, &org, &id))
            .await
    }

    pub(crate) async fn list_measurements(
        &self,
        org: &str,
        appointment_id: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<StoredMeasurement>, StoreError> {
        let (org, aid) = (own(org), appointment_id.map(own));
        self.read(move |c| worklist::list_measurements(c, &org, aid.as_deref(), limit, offset))
            .await
    }

    pub(crate) async fn measurement_pdf(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| worklist::measurement_pdf(c, &org, &id))
            .await
    }

    pub(crate) async fn pdf_for_message(
        &self,
        message_id: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| worklist::pdf_for_message(c, message_id))
            .await
    }

    pub(crate) async fn resend_measurement(
        &self,
        org: &str,
        id: &str,
        at: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.write(move |c| worklist::resend_measurement(c, &org, &id, at))
            .await
    }
}

/// OAuth 2.0 clients and access tokens (see `oauth.rs`). Hashing happens in
/// `crate::oauth`, before these are called.
impl SqliteBackend {
    pub(crate) async fn create_oauth_client(
        &self,
        client: OAuthClient,
        secret_hash: String,
    ) -> Result<(), StoreError> {
        self.write(move |c| oauth::create_client(c, &client, &secret_hash))
            .await
    }

    pub(crate) async fn oauth_client(&self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        let id = own(id);
        self.read(move |c| oauth::client(c, &id)).await
    }

    pub(crate) async fn oauth_client_with_secret(
        &self,
        id: &str,
    ) -> Result<Option<(OAuthClient, String)>, StoreError> {
        let id = own(id);
        self.read(move |c| oauth::client_with_secret(c, &id)).await
    }

    pub(crate) async fn list_oauth_clients(
        &self,
        org: &str,
    ) -> Result<Vec<OAuthClient>, StoreError> {
        let org = own(org);
        self.read(move |c| oauth::list_clients(c, &org)).await
    }

    pub(crate) async fn delete_oauth_client(&self, org: &str, id: &str) -> Result<(), StoreError> {
        let (org, id) = (own(org), own(id));
        self.write(move |c| oauth::delete_client(c, &org, &id))
            .await
    }

    pub(crate) async fn set_oauth_client_disabled(
        &self,
        org: &str,
        id: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        let (org, id) = (own(org), own(id));
        self.write(move |c| oauth::set_client_disabled(c, &org, &id, disabled))
            .await
    }

    pub(crate) async fn insert_oauth_token(
        &self,
        token_hash: String,
        token: OAuthToken,
    ) -> Result<(), StoreError> {
        self.write(move |c| oauth::insert_token(c, &token_hash, &token))
            .await
    }

    pub(crate) async fn oauth_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<OAuthToken>, StoreError> {
        let hash = own(token_hash);
        self.read(move |c| oauth::token_by_hash(c, &hash)).await
    }

    /// One writer op per batch, like `prune`, so token traffic commits in between.
    pub(crate) async fn prune_oauth_tokens(&self, now: Millis) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let n = self
                .write(move |c| oauth::prune_tokens_step(c, now, oauth::PRUNE_BATCH))
                .await?;
            deleted += n as u64;
            if n < oauth::PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }
}

/// The FHIR R4 API (see `fhir.rs`).
impl SqliteBackend {
    pub(crate) async fn get_patient_versioned(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Versioned<Patient>>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| fhir::get_patient_versioned(c, &org, &id))
            .await
    }

    pub(crate) async fn patient_version(
        &self,
        org: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<Versioned<Patient>>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| fhir::patient_version(c, &org, &id, version))
            .await
    }

    pub(crate) async fn patient_history(
        &self,
        org: &str,
        id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Versioned<Patient>>, u64), StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| fhir::patient_history(c, &org, &id, limit, offset))
            .await
    }

    pub(crate) async fn search_patients(
        &self,
        q: PatientSearch,
    ) -> Result<(Vec<Versioned<Patient>>, u64), StoreError> {
        self.read(move |c| fhir::search_patients(c, &q)).await
    }

    pub(crate) async fn create_patient(
        &self,
        org: &str,
        patient: Patient,
        at: Millis,
    ) -> Result<Versioned<Patient>, StoreError> {
        // The JSON work happens here, off the writer thread.
        let row = fhir::PatientRow::new(&patient)?;
        let org = own(org);
        self.write(move |c| fhir::create_patient(c, &org, &row, at))
            .await
    }

    pub(crate) async fn update_patient(
        &self,
        org: &str,
        id: &str,
        patient: Patient,
        if_match: Option<i64>,
        at: Millis,
    ) -> Result<Versioned<Patient>, StoreError> {
        let row = fhir::PatientRow::new(&patient)?;
        let (org, id) = (own(org), own(id));
        self.write(move |c| fhir::update_patient(c, &org, &id, &row, if_match, at))
            .await
    }

    pub(crate) async fn get_appointment_versioned(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<(Versioned<Appointment>, Patient)>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| fhir::get_appointment_versioned(c, &org, &id))
            .await
    }

    pub(crate) async fn search_appointments(
        &self,
        q: AppointmentSearch,
    ) -> Result<(Vec<(Versioned<Appointment>, Patient)>, u64), StoreError> {
        self.read(move |c| fhir::search_appointments(c, &q)).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn update_appointment_fhir(
        &self,
        org: &str,
        id: &str,
        patient_id: &str,
        appointment: Appointment,
        if_match: Option<i64>,
        at: Millis,
    ) -> Result<Versioned<Appointment>, StoreError> {
        let (org, id, pid) = (own(org), own(id), own(patient_id));
        self.write(move |c| {
            fhir::update_appointment_fhir(c, &org, &id, &pid, &appointment, if_match, at)
        })
        .await
    }

    pub(crate) async fn search_measurements(
        &self,
        q: MeasurementSearch,
    ) -> Result<(Vec<(StoredMeasurement, String)>, u64), StoreError> {
        self.read(move |c| fhir::search_measurements(c, &q)).await
    }

    pub(crate) async fn create_study(
        &self,
        s: NewStudy,
        at: Millis,
    ) -> Result<Versioned<StoredStudy>, StoreError> {
        self.write(move |c| fhir::create_study(c, &s, at)).await
    }

    pub(crate) async fn get_study(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Versioned<StoredStudy>>, StoreError> {
        let (org, id) = (own(org), own(id));
        self.read(move |c| fhir::get_study(c, &org, &id)).await
    }

    pub(crate) async fn search_studies(
        &self,
        q: StudySearch,
    ) -> Result<(Vec<Versioned<StoredStudy>>, u64), StoreError> {
        self.read(move |c| fhir::search_studies(c, &q)).await
    }
}

/// Direct secure messaging (see `direct.rs`). The lifecycle rules are the
/// callers'; these only store and apply what they are told.
impl SqliteBackend {
    pub(crate) async fn create_direct_edge(
        &self,
        name: &str,
        org: &str,
        secret_hash: &str,
        at: Millis,
    ) -> Result<DirectEdge, StoreError> {
        let (name, org, hash) = (own(name), own(org), own(secret_hash));
        self.write(move |c| direct::create_edge(c, &name, &org, &hash, at))
            .await
    }

    pub(crate) async fn direct_edge(
        &self,
        name: &str,
    ) -> Result<Option<(DirectEdge, String)>, StoreError> {
        let name = own(name);
        self.read(move |c| direct::edge(c, &name)).await
    }

    pub(crate) async fn list_direct_edges(&self, org: &str) -> Result<Vec<DirectEdge>, StoreError> {
        let org = own(org);
        self.read(move |c| direct::list_edges(c, &org)).await
    }

    pub(crate) async fn delete_direct_edge(&self, org: &str, name: &str) -> Result<(), StoreError> {
        let (org, name) = (own(org), own(name));
        self.write(move |c| direct::delete_edge(c, &org, &name))
            .await
    }

    pub(crate) async fn put_direct_address(
        &self,
        a: DirectAddress,
    ) -> Result<DirectAddress, StoreError> {
        self.write(move |c| direct::put_address(c, &a)).await
    }

    pub(crate) async fn direct_address(
        &self,
        address: &str,
    ) -> Result<Option<DirectAddress>, StoreError> {
        let address = own(address);
        self.read(move |c| direct::address(c, &address)).await
    }

    pub(crate) async fn list_direct_addresses(
        &self,
        org: &str,
    ) -> Result<Vec<DirectAddress>, StoreError> {
        let org = own(org);
        self.read(move |c| direct::list_addresses(c, &org)).await
    }

    pub(crate) async fn delete_direct_address(
        &self,
        org: &str,
        address: &str,
    ) -> Result<(), StoreError> {
        let (org, address) = (own(org), own(address));
        self.write(move |c| direct::delete_address(c, &org, &address))
            .await
    }

    pub(crate) async fn submit_direct_message(
        &self,
        m: NewDirectMessage,
    ) -> Result<DirectSubmit, StoreError> {
        self.write(move |c| direct::submit_message(c, &m)).await
    }

    pub(crate) async fn direct_message(
        &self,
        sender: &str,
        message_id: &str,
    ) -> Result<Option<(DirectMessage, Vec<DirectRecipient>)>, StoreError> {
        let (sender, message_id) = (own(sender), own(message_id));
        self.read(move |c| direct::message(c, &sender, &message_id))
            .await
    }

    pub(crate) async fn direct_message_by_id(
        &self,
        id: i64,
    ) -> Result<Option<(DirectMessage, Vec<DirectRecipient>)>, StoreError> {
        self.read(move |c| direct::message_by_id(c, id)).await
    }

    pub(crate) async fn due_direct_recipients(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<(DirectMessage, DirectRecipient)>, StoreError> {
        self.read(move |c| direct::due_recipients(c, now, limit))
            .await
    }

    pub(crate) async fn next_direct_due(&self) -> Result<Option<Millis>, StoreError> {
        self.read(direct::next_due).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn set_direct_status(
        &self,
        message: i64,
        recipient: &str,
        from: &[&str],
        status: &str,
        reason: Option<&str>,
        next_attempt_at: Option<Millis>,
        notification: Option<NewNotification>,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let recipient = own(recipient);
        let change = direct::StatusChange {
            from: from.iter().map(|s| own(s)).collect(),
            status: own(status),
            reason: reason.map(own),
            next_attempt_at,
            notification,
            at,
        };
        self.write(move |c| direct::set_status(c, message, &recipient, &change))
            .await
    }

    pub(crate) async fn direct_retry_later(
        &self,
        message: i64,
        recipient: &str,
        next_attempt_at: Millis,
        last_error: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let (recipient, error) = (own(recipient), own(last_error));
        self.write(move |c| {
            direct::retry_later(c, message, &recipient, next_attempt_at, &error, at)
        })
        .await
    }

    pub(crate) async fn due_direct_notifications(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<DirectNotification>, StoreError> {
        self.read(move |c| direct::due_notifications(c, now, limit))
            .await
    }

    pub(crate) async fn next_direct_notification_due(&self) -> Result<Option<Millis>, StoreError> {
        self.read(direct::next_notification_due).await
    }

    pub(crate) async fn direct_notification_sent(
        &self,
        id: i64,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            direct::finish_notification(c, id, &direct::NotificationOutcome::Sent, None, at)
        })
        .await
    }

    pub(crate) async fn direct_notification_retry(
        &self,
        id: i64,
        next_attempt_at: Millis,
        error: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let error = own(error);
        let outcome = direct::NotificationOutcome::Retry { next_attempt_at };
        self.write(move |c| direct::finish_notification(c, id, &outcome, Some(&error), at))
            .await
    }

    pub(crate) async fn direct_notification_failed(
        &self,
        id: i64,
        error: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let error = own(error);
        self.write(move |c| {
            direct::finish_notification(
                c,
                id,
                &direct::NotificationOutcome::Failed,
                Some(&error),
                at,
            )
        })
        .await
    }

    pub(crate) async fn direct_notifications(
        &self,
        message: i64,
    ) -> Result<Vec<DirectNotification>, StoreError> {
        self.read(move |c| direct::notifications(c, message)).await
    }
}

#[cfg(test)]
impl SqliteBackend {
    /// Parks the writer inside an op until the returned sender is dropped, so a test
    /// can queue several ops and know they will share the next transaction.
    pub(crate) async fn pause_writer(&self) -> std::sync::mpsc::Sender<()> {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let (reply_tx, _reply_rx) = oneshot::channel::<Result<(), StoreError>>();
        let park = move |_conn: &Connection| {
            let _ = started_tx.send(());
            // Returns when the test drops its sender.
            let _ = release_rx.recv();
            Ok(())
        };
        let sent = self
            .writer
            .send(Msg::Op(Box::new(Job::new(park, reply_tx))));
        assert!(sent.is_ok(), "writer is running");
        let _ = started_rx.await;
        release_tx
    }
}

/// The web dashboard's users, sessions and audit log (see `users.rs`). The
/// login policy is the caller's; these only count and apply.
impl SqliteBackend {
    pub(crate) async fn create_user(
        &self,
        org: &str,
        name: &str,
        role: &str,
        password_hash: &str,
        at: Millis,
    ) -> Result<User, StoreError> {
        let (org, name, role, hash) = (own(org), own(name), own(role), own(password_hash));
        self.write(move |c| users::create_user(c, &org, &name, &role, &hash, at))
            .await
    }

    pub(crate) async fn user_by_name(
        &self,
        name: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        let name = own(name);
        self.read(move |c| users::user_by_name(c, &name)).await
    }

    pub(crate) async fn list_users(&self, org: &str) -> Result<Vec<User>, StoreError> {
        let org = own(org);
        self.read(move |c| users::list_users(c, &org)).await
    }

    pub(crate) async fn record_login_failure(
        &self,
        user_id: &str,
        at: Millis,
        lock_after: u32,
        lock_for_ms: Millis,
    ) -> Result<User, StoreError> {
        let id = own(user_id);
        self.write(move |c| users::record_login_failure(c, &id, at, lock_after, lock_for_ms))
            .await
    }

    pub(crate) async fn record_login_success(
        &self,
        user_id: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let id = own(user_id);
        self.write(move |c| users::record_login_success(c, &id, at))
            .await
    }

    pub(crate) async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf: &str,
        created_at: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        let (hash, id, csrf) = (own(token_hash), own(user_id), own(csrf));
        self.write(move |c| users::create_session(c, &hash, &id, &csrf, created_at, expires_at))
            .await
    }

    pub(crate) async fn session_by_hash(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<Session>, StoreError> {
        let hash = own(token_hash);
        self.read(move |c| users::session_by_hash(c, &hash, now))
            .await
    }

    pub(crate) async fn set_session_org(
        &self,
        token_hash: &str,
        org: &str,
    ) -> Result<(), StoreError> {
        let (hash, org) = (own(token_hash), own(org));
        self.write(move |c| users::set_session_org(c, &hash, &org))
            .await
    }

    pub(crate) async fn list_orgs(&self) -> Result<Vec<String>, StoreError> {
        self.read(users::list_orgs).await
    }

    pub(crate) async fn set_channel_state(
        &self,
        channel: &str,
        state: &str,
        by: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let (channel, state, by) = (own(channel), own(state), own(by));
        self.write(move |c| users::set_channel_state(c, &channel, &state, &by, at))
            .await
    }

    pub(crate) async fn channel_states(&self) -> Result<Vec<ChannelState>, StoreError> {
        self.read(users::channel_states).await
    }

    pub(crate) async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let hash = own(token_hash);
        self.write(move |c| users::delete_session(c, &hash)).await
    }

    /// One writer op per batch, like `prune_oauth_tokens`, so logins commit in
    /// between.
    pub(crate) async fn prune_sessions(&self, now: Millis) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let n = self
                .write(move |c| users::prune_sessions_step(c, now, users::PRUNE_BATCH))
                .await?;
            deleted += n as u64;
            if n < users::PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }

    pub(crate) async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(move |c| users::audit(c, &entry)).await
    }

    pub(crate) async fn list_audit(
        &self,
        org: &str,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let org = own(org);
        self.read(move |c| users::list_audit(c, &org, limit, before_id))
            .await
    }
}
