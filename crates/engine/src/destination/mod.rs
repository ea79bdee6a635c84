//! Destination connectors: they take one queued payload and say whether the
//! other side has it. The queue worker ([`crate::queue`]) decides about retries.

mod folder;
pub mod http;
mod mllp;

pub use folder::FolderDestination;
pub use mllp::MllpDestination;

use medrelay_store::{Delivery, Store};

use crate::EngineError;
use crate::config::DestinationConfig;

/// Why a delivery attempt did not succeed.
#[derive(Debug)]
pub struct DeliveryError {
    pub message: String,
    /// Worth trying again (network trouble, timeout) as opposed to a definite "no".
    pub retryable: bool,
    /// What the other side answered, if anything (a NACK, say).
    pub response: Option<Vec<u8>>,
    /// The other side asked for this pause before the next attempt (HTTP
    /// `Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl DeliveryError {
    pub fn retry(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            retryable: true,
            response: None,
            retry_after: None,
        }
    }
}

pub enum Connector {
    Mllp(Box<MllpDestination>),
    Folder(FolderDestination),
    Http(Box<http::HttpDestination>),
}

impl Connector {
    pub fn new(cfg: &DestinationConfig, channel: &str, store: &Store) -> Result<Self, EngineError> {
        if let Some(h) = cfg.http_config() {
            return Ok(Connector::Http(Box::new(
                http::HttpDestination::new(h).map_err(EngineError::Config)?,
            )));
        }
        match (&cfg.mllp, &cfg.file) {
            (Some(_), None) => Ok(Connector::Mllp(Box::new(MllpDestination::new(cfg)?))),
            (None, Some(dir)) => {
                if cfg.pattern.contains('/') || cfg.pattern.contains('\\') {
                    return Err(EngineError::Config(format!(
                        "file pattern {:?} must be a file name, not a path",
                        cfg.pattern
                    )));
                }
                let spec = medrelay_folder::FolderSpec::parse(&dir.to_string_lossy())
                    .map_err(|e| EngineError::Config(format!("file: {e}")))?;
                let folder = medrelay_folder::Folder::new(spec, cfg.remote.options());
                Ok(Connector::Folder(FolderDestination::new(
                    folder,
                    cfg.pattern.clone(),
                    store.clone(),
                    channel.to_string(),
                )))
            }
            _ => Err(EngineError::Config(
                "a destination needs exactly one of `mllp`, `file` or `http`".into(),
            )),
        }
    }

    /// One attempt. `Ok` carries the other side's answer, if it gives one.
    pub async fn send(&mut self, d: &Delivery) -> Result<Option<Vec<u8>>, DeliveryError> {
        match self {
            Connector::Mllp(m) => m.send(d).await,
            Connector::Folder(f) => f.send(d).await,
            Connector::Http(h) => h
                .send_delivery(d)
                .await
                .map(Some)
                .map_err(|e| DeliveryError {
                    message: e.message,
                    retryable: e.retryable,
                    response: e.response,
                    retry_after: e.retry_after,
                }),
        }
    }

    pub async fn close(&mut self) {
        if let Connector::Mllp(m) = self {
            m.close().await;
        }
    }
}
