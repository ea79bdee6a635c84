//! A channel's run state, set by an operator (the dashboard's start, pause
//! and stop). Paused: the source answers every message with AE ("send it
//! again later") and stores nothing, so the sender keeps it; queued
//! deliveries go on. Stopped: the same, and the channel's destination queues
//! hold their deliveries too. Nothing is lost either way: what was accepted
//! stays queued, what was refused stays with the sender. The state set
//! through `Channel::set_run_state` is remembered by the store, so a restart
//! leaves a paused or stopped channel as it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    Stopped,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "running" | "start" => RunState::Running,
            "paused" | "pause" => RunState::Paused,
            "stopped" | "stop" => RunState::Stopped,
            _ => return None,
        })
    }
}

/// Shared by a channel's source side and its queue workers.
#[derive(Clone, Default)]
pub struct RunControl(Arc<(AtomicU8, Notify)>);

impl RunControl {
    pub fn get(&self) -> RunState {
        match self.0.0.load(Ordering::Acquire) {
            1 => RunState::Paused,
            2 => RunState::Stopped,
            _ => RunState::Running,
        }
    }

    pub fn set(&self, state: RunState) {
        let v = match state {
            RunState::Running => 0,
            RunState::Paused => 1,
            RunState::Stopped => 2,
        };
        self.0.0.store(v, Ordering::Release);
        self.0.1.notify_waiters();
    }

    /// Resolves at the next [`set`](Self::set).
    pub async fn changed(&self) {
        self.0.1.notified().await;
    }
}
