//! Change notification for local folders.

use std::path::Path;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Starts watching `dir`; see [`crate::Folder::watch`].
pub(crate) fn watch(dir: &Path) -> Option<mpsc::Receiver<()>> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(dir = %dir.display(), "watch() outside a tokio runtime; polling only");
        return None;
    };
    // Capacity 1 and try_send: a burst of events becomes one pending wake-up, and a
    // slow consumer never makes the notification thread block.
    let (tx, rx) = mpsc::channel(1);
    let event_tx = tx.clone();
    let handler = move |event: notify::Result<Event>| {
        let wake = match &event {
            Ok(event) => is_change(&event.kind),
            // Errors include queue overflows: something changed, list again.
            Err(_) => true,
        };
        if wake {
            let _ = event_tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot start file watcher; polling only");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder; polling only");
        return None;
    }
    // The watcher lives in this task until the receiver is dropped.
    runtime.spawn(async move {
        tx.closed().await;
        drop(watcher);
    });
    Some(rx)
}

/// Whether an event may mean a new, changed or removed file. Opening and reading
/// files (inotify reports those too) does not, and must not wake the caller: its
/// own reads would wake it again and again.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    #[test]
    fn reads_do_not_wake() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
        assert!(is_change(&EventKind::Any));
    }
}
