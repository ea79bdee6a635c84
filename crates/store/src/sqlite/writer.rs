//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time and every commit with `synchronous=FULL`
//! costs an fsync. Funnelling all writes through one thread that commits whatever
//! has queued up while the previous fsync ran lets many connections share one
//! fsync, so throughput grows with load instead of collapsing to one fsync per
//! message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::StoreMetrics;
use crate::error::StoreError;

/// One write operation queued for the writer.
pub(crate) trait WriteOp: Send {
    /// Runs inside the batch transaction. `Err` carries the op's error text; see
    /// [`apply_checked`] for what happens to the transaction then.
    fn apply(&mut self, conn: &Connection) -> Result<(), String>;
    /// Delivers the op's result once the batch outcome is known: `Ok` when the
    /// transaction committed, otherwise the error that every op in it shares.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

/// Adapts a closure plus a reply channel into a [`WriteOp`].
pub(crate) struct Job<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job<T, F> {
    pub(crate) fn new(work: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Job {
            work: Some(work),
            result: None,
            reply,
        }
    }
}

impl<T, F> WriteOp for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> Result<(), String> {
        let result = match self.work.take() {
            Some(work) => work(conn),
            None => Err(StoreError::Sqlite("write op applied twice".into())),
        };
        let outcome = match &result {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        self.result = Some(result);
        outcome
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let result = match committed {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::Sqlite("write op never ran".into()))),
            Err(e) => Err(e),
        };
        // The caller may have given up waiting (dropped future); nothing to do then.
        let _ = self.reply.send(result);
    }
}

pub(crate) enum Msg {
    Op(Box<dyn WriteOp>),
    /// Commit everything queued before this, checkpoint, stop.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

#[derive(Default)]
pub(crate) struct Metrics {
    batches: AtomicU64,
    ops: AtomicU64,
    max_batch: AtomicU64,
    failed_batches: AtomicU64,
}

impl Metrics {
    pub(crate) fn snapshot(&self) -> StoreMetrics {
        StoreMetrics {
            batches: self.batches.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            max_batch: self.max_batch.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        }
    }

    fn committed(&self, ops: usize) {
        let ops = ops as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(ops, Ordering::Relaxed);
        self.max_batch.fetch_max(ops, Ordering::Relaxed);
    }

    fn failed(&self) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// How the writer batches and makes commits durable.
pub(crate) struct WriterConfig {
    pub(crate) max_batch: usize,
    pub(crate) commit_delay: Duration,
}

/// After the queue is drained, keep collecting while ops keep arriving at least
/// this often: the callers answered by the previous commit are typically a few
/// microseconds away from sending their next message, and catching them here
/// saves them a whole fsync of waiting.
const ARRIVAL_GAP: Duration = Duration::from_micros(100);

pub(crate) fn spawn(
    conn: Connection,
    rx: Receiver<Msg>,
    config: WriterConfig,
    metrics: Arc<Metrics>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("medrelay-store-writer".into())
        .spawn(move || run(conn, rx, config, &metrics))
}

fn run(conn: Connection, rx: Receiver<Msg>, config: WriterConfig, metrics: &Metrics) {
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<Box<dyn WriteOp>> = Vec::with_capacity(max_batch);
    let mut last_batch = 0;
    loop {
        let mut close = None;
        // Block only for the first op; everything that queued meanwhile rides along.
        match rx.recv() {
            Ok(Msg::Op(op)) => batch.push(op),
            Ok(Msg::Close(reply)) => close = Some(reply),
            // Every Store handle is gone: nothing more can arrive.
            Err(_) => break,
        }
        while close.is_none() && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Op(op)) => batch.push(op),
                Ok(Msg::Close(reply)) => close = Some(reply),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        // Linger only under concurrent load (the last commit carried several ops),
        // so a lone caller never pays for it. This is PostgreSQL's commit_delay.
        if last_batch > 1 && !config.commit_delay.is_zero() {
            let deadline = Instant::now() + config.commit_delay;
            while close.is_none() && batch.len() < max_batch {
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .min(ARRIVAL_GAP);
                if wait.is_zero() {
                    break;
                }
                match rx.recv_timeout(wait) {
                    Ok(Msg::Op(op)) => batch.push(op),
                    Ok(Msg::Close(reply)) => close = Some(reply),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        last_batch = batch.len();
        if !batch.is_empty() {
            commit_batch(&conn, &mut batch, metrics);
        }
        if let Some(reply) = close {
            let result = checkpoint(&conn);
            drop(conn);
            tracing::debug!("store writer closed");
            let _ = reply.send(result);
            return;
        }
    }
    tracing::debug!("store writer stopped: all handles dropped");
}

fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    // TRUNCATE leaves a zero-length WAL, so a closed store is one self-contained file.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = exec(conn, "ROLLBACK")
    {
        tracing::error!(error = %e, "store: rollback failed");
    }
}

fn fail_all(ops: &mut Vec<Box<dyn WriteOp>>, error: &StoreError) {
    for op in ops.drain(..) {
        op.finish(Err(StoreError::Sqlite(error.to_string())));
    }
}

/// Runs one batch in one transaction. An op that fails cleanly (see
/// [`apply_checked`]) gets its own error and the others go on. Should a write
/// fail part-way or SQLite abandon the transaction (disk full, I/O error),
/// every op applied so far is failed and the rest of the batch continues in a
/// fresh transaction: an op is only ever answered `Ok` after the transaction
/// holding it committed.
fn commit_batch(conn: &Connection, batch: &mut Vec<Box<dyn WriteOp>>, metrics: &Metrics) {
    let mut applied: Vec<Box<dyn WriteOp>> = Vec::with_capacity(batch.len());
    let mut open = false;
    for mut op in batch.drain(..) {
        if !open {
            if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
                metrics.failed();
                op.finish(Err(e));
                continue;
            }
            open = true;
        }
        match apply_checked(conn, op.as_mut()) {
            Ok(()) => applied.push(op),
            Err(e) => {
                tracing::error!(error = %e, "store: batch transaction lost");
                rollback(conn);
                open = false;
                metrics.failed();
                fail_all(&mut applied, &e);
                op.finish(Err(e));
            }
        }
    }
    if !open {
        return;
    }
    // synchronous=FULL: COMMIT returns only once the WAL is fsynced, so the
    // replies below are safe to turn into ACKs.
    let committed = exec(conn, "COMMIT");
    match committed {
        Ok(()) => {
            metrics.committed(applied.len());
            for op in applied {
                op.finish(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, ops = applied.len(), "store: commit failed");
            rollback(conn);
            metrics.failed();
            fail_all(&mut applied, &e);
        }
    }
}

/// `Err` only when the enclosing transaction can no longer be trusted.
///
/// No savepoint per op: copying every page an op touches into a sub-journal
/// cost about a tenth of the writer's time. Instead, an op that fails before it
/// changed a row (a `NotFound`, a failed first statement, which SQLite rolls
/// back by itself) leaves the transaction clean and the batch goes on; an op
/// that fails after changing rows could leave half its work behind, so the
/// whole transaction is abandoned and every op in it is answered with the error.
fn apply_checked(conn: &Connection, op: &mut dyn WriteOp) -> Result<(), StoreError> {
    let before = conn.total_changes();
    match op.apply(conn) {
        Ok(()) => Ok(()),
        Err(op_error) => {
            if conn.is_autocommit() {
                return Err(StoreError::Sqlite(format!(
                    "transaction rolled back by the database after: {op_error}"
                )));
            }
            if conn.total_changes() == before {
                Ok(())
            } else {
                Err(StoreError::Sqlite(format!(
                    "a write failed part-way, so its batch was rolled back: {op_error}"
                )))
            }
        }
    }
}
