//! Periodic pruning of old messages, in small batches so the store never holds
//! its write lock for long.

use std::time::Duration;

use medrelay_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::now_ms;

/// Rows deleted per transaction: small enough that inbound traffic interleaves.
const BATCH: usize = 500;

/// Deletes messages older than `keep` (and their finished deliveries) every
/// `every`, until cancelled. Messages with deliveries still queued are kept.
pub async fn run(store: Store, keep: Duration, every: Duration, shutdown: CancellationToken) {
    loop {
        let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX / 2);
        match store.prune(cutoff, BATCH).await {
            Ok(0) => {}
            Ok(n) => info!(deleted = n, "retention: pruned old messages"),
            Err(e) => warn!(error = %e, "retention: pruning failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
