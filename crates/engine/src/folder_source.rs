//! Inbound folders: files an EHR drops (GDT requests, HL7 order files) picked up
//! exactly once.
//!
//! A file is taken only when it is complete: names starting with `.` or ending in
//! `.tmp` / `.part` are someone's write in progress, and any other file must show
//! the same size and modification time on two looks at least `settle` apart (a
//! writer that does not use write-then-rename is still appending). Then it is read,
//! handed to the integration (which stores it, raw bytes included, and commits the
//! worklist change), and only after that commit moved to `archive` (or deleted). A
//! rejected file goes to `error` with a `<name>.error.txt` beside it.
//!
//! A crash between the commit and the move leaves the file in place; the next run
//! reads it again and the store recognises it (same content, same channel) as a
//! duplicate, so it is archived without a second worklist change. Local folders
//! wake the loop through filesystem notification; every folder is also scanned
//! every `poll`, because notification misses events on network shares.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use medrelay_folder::{Entry, Folder};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::FolderInbound;

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Stored and applied (or recognised as already processed): archive it.
    Accepted,
    /// Will never be accepted: move it to the error folder with this reason.
    Rejected(String),
    /// Could not be processed now (the store is unavailable): leave it, retry.
    Retry(String),
}

/// Processes one file's bytes; `peer` names where it came from.
pub trait FileHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        name: &'a str,
        bytes: Vec<u8>,
        peer: String,
    ) -> Pin<Box<dyn Future<Output = FileOutcome> + Send + 'a>>;
}

pub struct FolderSource {
    pub channel: String,
    pub folder: Folder,
    pub cfg: FolderInbound,
    pub handler: Arc<dyn FileHandler>,
}

/// Files handed to the store together (one commit for many files).
const BATCH: usize = 64;

/// Size and modification time at the first look that saw them unchanged.
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

impl FolderSource {
    /// Runs until `shutdown`; a file being processed is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        info!(channel = %self.channel, folder = %self.folder.spec().display(), "watching folder");
        let mut wake = self.folder.watch();
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut failing = false;
        while !shutdown.is_cancelled() {
            let next = match self.scan(&mut seen, &shutdown).await {
                Ok(pending) => {
                    if failing {
                        info!(channel = %self.channel, "folder reachable again");
                        failing = false;
                    }
                    // A file still settling is looked at again when it may be done.
                    if pending {
                        self.cfg.settle.min(self.cfg.poll)
                    } else {
                        self.cfg.poll
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(channel = %self.channel, folder = %self.folder.spec().display(), error = %e, "cannot read the folder; retrying");
                        failing = true;
                    }
                    self.cfg.poll
                }
            };
            let notified = async {
                match wake.as_mut() {
                    Some(rx) => {
                        if rx.recv().await.is_none() {
                            // The watcher is gone: polling still works.
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = notified => {
                    // Let a burst of events (a copy in progress) settle into one scan.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Some(rx) = wake.as_mut() {
                        while rx.try_recv().is_ok() {}
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        info!(channel = %self.channel, "folder source stopped");
    }

    /// One look at the folder: processes every complete file. `Ok(true)` when a
    /// file is still settling.
    async fn scan(
        &self,
        seen: &mut HashMap<String, Seen>,
        shutdown: &CancellationToken,
    ) -> Result<bool, medrelay_folder::FolderError> {
        let entries = self.folder.list().await?;
        let now = Instant::now();
        seen.retain(|name, _| entries.iter().any(|e| &e.name == name));
        let mut pending = false;
        let mut ready_files = Vec::new();
        for entry in entries {
            if !self.wanted(&entry) {
                continue;
            }
            let ready = match seen.get(&entry.name) {
                Some(s) if s.size == entry.size && s.modified == entry.modified => {
                    now.duration_since(s.since) >= self.cfg.settle
                }
                _ => {
                    seen.insert(
                        entry.name.clone(),
                        Seen {
                            size: entry.size,
                            modified: entry.modified,
                            since: now,
                        },
                    );
                    // A zero settle time trusts the writer's rename.
                    self.cfg.settle.is_zero()
                }
            };
            if !ready {
                pending = true;
                continue;
            }
            seen.remove(&entry.name);
            ready_files.push(entry);
        }
        for batch in ready_files.chunks(BATCH) {
            if shutdown.is_cancelled() {
                break;
            }
            self.process_batch(batch).await;
        }
        Ok(pending)
    }

    /// Files are read and handed over in name order, and their store commits
    /// are issued in that order too, so several files share one commit (one
    /// fsync) without changing the order their worklist changes apply in.
    async fn process_batch(&self, batch: &[Entry]) {
        let mut work = Vec::with_capacity(batch.len());
        for entry in batch {
            let name = &entry.name;
            if entry.size > self.cfg.max_file_bytes {
                let reason = format!(
                    "file is {} bytes; the limit is {} (inbound.max_file_bytes)",
                    entry.size, self.cfg.max_file_bytes
                );
                self.reject(name, &reason).await;
                continue;
            }
            match self.folder.read(name).await {
                Ok(bytes) => work.push((name.as_str(), bytes)),
                Err(e) => {
                    warn!(channel = %self.channel, file = %name, error = %e, "cannot read file; will retry")
                }
            }
        }
        let display = self.folder.spec().display();
        let outcomes = futures_util::future::join_all(work.into_iter().map(|(name, bytes)| {
            let peer = format!("{display}/{name}");
            async move { (name, self.handler.handle(name, bytes, peer).await) }
        }))
        .await;
        let mut accepted = Vec::new();
        for (name, outcome) in outcomes {
            match outcome {
                FileOutcome::Accepted => accepted.push(name.to_string()),
                FileOutcome::Rejected(reason) => self.reject(name, &reason).await,
                FileOutcome::Retry(reason) => {
                    warn!(channel = %self.channel, file = %name, error = %reason, "file not processed; will retry");
                }
            }
        }
        self.done(&accepted).await;
    }

    fn wanted(&self, e: &Entry) -> bool {
        let lower = e.name.to_ascii_lowercase();
        if e.name.starts_with('.') || lower.ends_with(".tmp") || lower.ends_with(".part") {
            return false;
        }
        if lower.ends_with(".error.txt") {
            return false;
        }
        match &self.cfg.extensions {
            Some(exts) if !exts.is_empty() => exts.iter().any(|x| {
                let x = x.trim_start_matches('.').to_ascii_lowercase();
                lower
                    .rsplit_once('.')
                    .is_some_and(|(_, ext)| ext == x || (x == "gdt" && is_numbered(ext)))
            }),
            _ => true,
        }
    }

    /// Archives (or deletes) files whose content is committed.
    async fn done(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let results = if self.cfg.delete_after {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                out.push(self.folder.remove(name).await.map(|_| String::new()));
            }
            out
        } else {
            self.folder.move_many(names, &self.cfg.archive).await
        };
        for (name, result) in names.iter().zip(results) {
            match result {
                Ok(_) => debug!(channel = %self.channel, file = %name, "file processed"),
                // Processed and committed: a later scan finds it again and the
                // store recognises the duplicate, so nothing is applied twice.
                Err(e) => {
                    warn!(channel = %self.channel, file = %name, error = %e, "processed, but could not archive it")
                }
            }
        }
        info!(channel = %self.channel, files = names.len(), "files processed");
    }

    async fn reject(&self, name: &str, reason: &str) {
        warn!(channel = %self.channel, file = %name, error = %reason, "file rejected");
        match self.folder.move_to(name, &self.cfg.error, name).await {
            Ok(moved) => {
                let text = format!("{moved}: {reason}\n");
                if let Err(e) = self
                    .folder
                    .write_into(
                        &self.cfg.error,
                        &format!("{moved}.error.txt"),
                        text.as_bytes(),
                    )
                    .await
                {
                    warn!(channel = %self.channel, file = %name, error = %e, "could not write the error note");
                }
            }
            Err(e) => {
                warn!(channel = %self.channel, file = %name, error = %e, "could not move a rejected file to the error folder")
            }
        }
    }
}

/// GDT files are often numbered instead of named `.gdt`: `MEDRPRAX.001`.
fn is_numbered(ext: &str) -> bool {
    ext.len() == 3 && ext.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_extensions() {
        assert!(is_numbered("001"));
        assert!(!is_numbered("gdt"));
        assert!(!is_numbered("0001"));
    }
}
