//! One worker per destination drains that destination's durable queue in order.
//!
//! The queue lives in the store, so a restart simply picks up where the last run
//! stopped. Delivery is in order: the oldest pending entry is retried (with
//! exponential backoff) until it succeeds or fails for good, and later entries
//! wait behind it, because HL7 receivers usually rely on message order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use medrelay_store::{Delivery, Store};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channel::DeliveryDone;
use crate::clock::now_ms;
use crate::config::RetryPolicy;
use crate::destination::Connector;
use crate::metrics::DestinationMetrics;

/// How many queue entries one store read fetches.
const BATCH: usize = 64;
/// When nothing wakes the worker it still looks at the queue this often, so an
/// entry requeued by another process (or a missed wake-up) is not stranded.
const IDLE_POLL: Duration = Duration::from_secs(5);

pub struct QueueWorker {
    pub key: String,
    pub channel: String,
    pub destination: String,
    pub store: Store,
    pub connector: Connector,
    pub retry: RetryPolicy,
    pub wake: Arc<Notify>,
    pub done: broadcast::Sender<DeliveryDone>,
    pub metrics: DestinationMetrics,
    /// The channel's run state: a stopped channel's deliveries wait.
    pub control: crate::run_state::RunControl,
}

impl QueueWorker {
    /// Runs until `shutdown`; the attempt in progress finishes first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        info!(destination = %self.key, "queue worker started");
        while !shutdown.is_cancelled() {
            if self.control.get() == crate::run_state::RunState::Stopped {
                tokio::select! {
                    _ = self.control.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let batch = match self.store.pending_deliveries(&self.key, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    warn!(destination = %self.key, error = %e, "reading the queue failed");
                    if sleep_or_cancel(Duration::from_secs(1), &shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            self.update_depth().await;
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            for d in batch {
                // Head of line: wait for its retry time, but wake for shutdown.
                let wait = d.next_attempt_at - now_ms();
                if wait > 0 {
                    let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
                    if sleep_or_cancel(wait, &shutdown).await {
                        break;
                    }
                }
                // Stopped while waiting: the entry stays queued.
                if shutdown.is_cancelled()
                    || self.control.get() == crate::run_state::RunState::Stopped
                {
                    break;
                }
                if !self.attempt(&d).await {
                    // Failed but retryable: re-read the queue so the new retry time
                    // applies and order is kept.
                    break;
                }
            }
        }
        self.connector.close().await;
        info!(destination = %self.key, "queue worker stopped");
    }

    /// One delivery attempt; `true` when the queue may move on to the next entry.
    async fn attempt(&mut self, d: &Delivery) -> bool {
        let started = Instant::now();
        let result = self.connector.send(d).await;
        self.metrics.latency.record(started.elapsed().as_secs_f64());
        let at = now_ms();
        match result {
            Ok(response) => {
                self.metrics.sent.increment(1);
                if let Err(e) = self.store.delivery_sent(d.id, at, response).await {
                    // Sent but not recorded: it will be sent again after a restart.
                    // At-least-once is the promise; say so loudly.
                    warn!(destination = %self.key, delivery = d.id, error = %e, "delivered but could not record it");
                }
                let _ = self.done.send(DeliveryDone {
                    delivery_id: d.id,
                    sent: true,
                    retrying: false,
                });
                true
            }
            Err(err) => {
                let attempts = d.attempts.saturating_add(1);
                let permanent = !err.retryable || self.retry.exhausted(attempts);
                // The other side's Retry-After wins over a shorter backoff, up to
                // the policy's longest pause.
                let pause = match err.retry_after {
                    Some(asked) => self.retry.backoff(attempts).max(asked.min(self.retry.max)),
                    None => self.retry.backoff(attempts),
                };
                let retry_at = (!permanent)
                    .then(|| at + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX / 2));
                if permanent {
                    self.metrics.failed.increment(1);
                    warn!(destination = %self.key, delivery = d.id, attempts, error = %err.message, "delivery failed for good");
                } else {
                    self.metrics.retried.increment(1);
                    warn!(destination = %self.key, delivery = d.id, attempts, error = %err.message, "delivery failed; will retry");
                }
                if let Err(e) = self
                    .store
                    .delivery_failed(d.id, at, &err.message, err.response, retry_at)
                    .await
                {
                    warn!(destination = %self.key, delivery = d.id, error = %e, "could not record a failed attempt");
                    // Without a record the entry would be retried at once; pause.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return false;
                }
                let _ = self.done.send(DeliveryDone {
                    delivery_id: d.id,
                    sent: false,
                    retrying: !permanent,
                });
                permanent
            }
        }
    }

    async fn update_depth(&self) {
        if let Ok(depth) = self.store.queue_depth(&self.key).await {
            self.metrics.depth.set(depth.pending as f64);
            let age = depth
                .oldest_created_at
                .map(|t| ((now_ms() - t).max(0) as f64) / 1000.0)
                .unwrap_or(0.0);
            self.metrics.oldest.set(age);
        }
    }
}

/// `true` if cancelled before the time was up.
async fn sleep_or_cancel(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.cancelled() => true,
    }
}
