//! The medrelay engine: channels made of a source, optional filter and
//! transformer steps, and destinations, each fed from its own durable queue.
//!
//! Where a message goes next, in module order:
//! [`source`] (MLLP frames in) → [`channel`] (parse, validate, filter, transform,
//! store, ACK) → [`queue`] (one worker per destination, retries with backoff) →
//! [`destination`] (MLLP peer or folder).

pub mod channel;
pub mod clock;
pub mod config;
pub mod destination;
pub mod metrics;
pub mod queue;
pub mod retention;
pub mod source;
pub mod tls;
pub mod transform;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use medrelay_store::Store;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info};

pub use channel::Channel;
pub use config::{ChannelConfig, DestinationConfig, SourceConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("transformer: {0}")]
    Transform(String),
    #[error("channel {channel}: cannot listen on {addr}: {source}")]
    Bind {
        channel: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The queue key of a destination: `channel/destination`.
pub fn queue_key(channel: &str, destination: &str) -> String {
    format!("{channel}/{destination}")
}

/// A destination's name: configured, or its connector type and position.
pub fn destination_name(cfg: &DestinationConfig, index: usize) -> String {
    cfg.name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", cfg.kind(), index + 1))
}

/// A running engine.
pub struct Engine {
    shutdown: CancellationToken,
    listeners: JoinSet<()>,
    workers: JoinSet<()>,
    addrs: HashMap<String, SocketAddr>,
    grace: Duration,
}

impl Engine {
    /// Binds every channel's source and starts every destination's queue worker.
    /// Queues left over from a previous run resume at once.
    pub async fn start(
        store: Store,
        channels: &[ChannelConfig],
        grace: Duration,
    ) -> Result<Engine, EngineError> {
        let errors = config::check_channels(channels);
        if !errors.is_empty() {
            return Err(EngineError::Config(errors.join("\n")));
        }
        metrics::describe();
        let shutdown = CancellationToken::new();
        let control_ids = Arc::new(clock::ControlIds::new());
        let mut listeners = JoinSet::new();
        let mut workers = JoinSet::new();
        let mut addrs = HashMap::new();

        for cfg in channels {
            let (done, _) = broadcast::channel(4096);
            let mut keys = Vec::new();
            let mut wakes = Vec::new();
            let mut pending_workers = Vec::new();
            for (i, dest) in cfg.destinations.iter().enumerate() {
                let name = destination_name(dest, i);
                let key = queue_key(&cfg.name, &name);
                let wake = Arc::new(Notify::new());
                pending_workers.push(queue::QueueWorker {
                    key: key.clone(),
                    channel: cfg.name.clone(),
                    destination: name.clone(),
                    store: store.clone(),
                    connector: destination::Connector::new(dest, &cfg.name)?,
                    retry: dest.retry.clone(),
                    wake: wake.clone(),
                    done: done.clone(),
                    metrics: metrics::DestinationMetrics::new(&cfg.name, &name),
                });
                keys.push(key);
                wakes.push(wake);
            }
            let channel = Arc::new(Channel::new(
                cfg,
                store.clone(),
                control_ids.clone(),
                keys,
                wakes,
                done,
            )?);

            let src = &cfg.source;
            let allow = mllp::AllowList::parse(&src.allow)
                .map_err(|e| EngineError::Config(format!("channel {}: {e}", cfg.name)))?;
            let tls = src.tls.as_ref().map(tls::server).transpose()?;
            let listener = mllp::Listener::bind(mllp::ListenerConfig {
                addr: src.mllp,
                tls,
                allow,
                idle_timeout: src.idle_timeout,
                max_connections: src.max_connections,
                max_frame: src.max_frame,
                ..mllp::ListenerConfig::new(src.mllp)
            })
            .await
            .map_err(|source| EngineError::Bind {
                channel: cfg.name.clone(),
                addr: src.mllp,
                source,
            })?;
            let local = listener.local_addr();
            info!(channel = %cfg.name, addr = %local, tls = src.tls.is_some(), "MLLP source listening");
            addrs.insert(cfg.name.clone(), local);
            let handler = Arc::new(source::MllpSource { channel });
            let token = shutdown.clone();
            let name = cfg.name.clone();
            // error level: the span carries context and must exist whatever the filter.
            let span = tracing::error_span!("channel", name = %cfg.name);
            listeners.spawn(
                async move {
                    if let Err(e) = listener.run(handler, token, grace).await {
                        error!(channel = %name, error = %e, "MLLP source stopped with an error");
                    }
                }
                .instrument(span),
            );
            for w in pending_workers {
                workers.spawn(w.run(shutdown.clone()));
            }
        }
        Ok(Engine {
            shutdown,
            listeners,
            workers,
            addrs,
            grace,
        })
    }

    /// The address a channel's source listens on (useful with port 0).
    pub fn source_addr(&self, channel: &str) -> Option<SocketAddr> {
        self.addrs.get(channel).copied()
    }

    /// A token that is cancelled when the engine stops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight messages finish and get their ACK, lets
    /// each queue worker finish its current attempt, then returns. The caller
    /// closes the store afterwards.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.listeners.join_next().await.is_some() {}
        let workers = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout(self.grace, workers).await.is_err() {
            self.workers.abort_all();
        }
    }
}
