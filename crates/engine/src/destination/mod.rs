//! Destination connectors: they take one queued payload and say whether the
//! other side has it. The queue worker ([`crate::queue`]) decides about retries.

mod file;
mod mllp;

pub use file::FileDestination;
pub use mllp::MllpDestination;

use medrelay_store::Delivery;

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
}

impl DeliveryError {
    pub fn retry(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            retryable: true,
            response: None,
        }
    }
}

pub enum Connector {
    Mllp(Box<MllpDestination>),
    File(FileDestination),
}

impl Connector {
    pub fn new(cfg: &DestinationConfig, channel: &str) -> Result<Self, EngineError> {
        match (&cfg.mllp, &cfg.file) {
            (Some(_), None) => Ok(Connector::Mllp(Box::new(MllpDestination::new(cfg)?))),
            (None, Some(dir)) => Ok(Connector::File(FileDestination::new(
                dir.clone(),
                cfg.pattern.clone(),
                channel.to_string(),
            )?)),
            _ => Err(EngineError::Config(
                "a destination needs exactly one of `mllp` or `file`".into(),
            )),
        }
    }

    /// One attempt. `Ok` carries the other side's answer, if it gives one.
    pub async fn send(&mut self, d: &Delivery) -> Result<Option<Vec<u8>>, DeliveryError> {
        match self {
            Connector::Mllp(m) => m.send(d).await,
            Connector::File(f) => f.send(d).await,
        }
    }

    pub async fn close(&mut self) {
        if let Connector::Mllp(m) = self {
            m.close().await;
        }
    }
}
