//! Destination connectors: they take one queued payload and say whether the
//! other side has it. The queue worker ([`crate::queue`]) decides about retries.

mod folder;
pub mod http;
mod mllp;

pub use folder::FolderDestination;
pub use mllp::MllpDestination;

use medrelay_store::{Delivery, Store};
use medrelay_worklist::json_map::{AsyncResult, AsyncState};

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
    /// With the confirmation an asynchronous EHR (Best Practice) gives later.
    Http(Box<http::HttpDestination>, Option<AsyncResult>),
}

impl Connector {
    pub fn new(cfg: &DestinationConfig, channel: &str, store: &Store) -> Result<Self, EngineError> {
        if let Some(h) = cfg.http_config() {
            return Ok(Connector::Http(
                Box::new(http::HttpDestination::new(h).map_err(EngineError::Config)?),
                cfg.confirm.clone(),
            ));
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
            Connector::Http(h, None) => h.send_delivery(d).await.map(Some).map_err(from_http),
            Connector::Http(h, Some(confirm)) => send_confirmed(h, confirm, d).await,
        }
    }

    pub async fn close(&mut self) {
        if let Connector::Mllp(m) = self {
            m.close().await;
        }
    }
}

fn from_http(e: http::HttpError) -> DeliveryError {
    DeliveryError {
        message: e.message,
        retryable: e.retryable,
        response: e.response,
        retry_after: e.retry_after,
    }
}

/// What a delivery waiting for its confirmation keeps as its response: the
/// status URL, so the next attempt asks there instead of posting again.
const PENDING: &str = "awaiting confirmation at ";

/// An asynchronous result: POSTed once, answered 202 with a status URL, then
/// confirmed (or rejected) there. Until then the delivery is "retrying", and
/// each retry looks at the status URL rather than sending the result again.
async fn send_confirmed(
    h: &http::HttpDestination,
    confirm: &AsyncResult,
    d: &Delivery,
) -> Result<Option<Vec<u8>>, DeliveryError> {
    let pending = d
        .response
        .as_deref()
        .and_then(|r| std::str::from_utf8(r).ok())
        .and_then(|r| r.strip_prefix(PENDING))
        .map(str::to_string);
    let status_url = match pending {
        Some(url) => url,
        None => {
            let answer = h.send_delivery(d).await.map_err(from_http)?;
            // "HTTP 202\n{…}": the JSON after the status line.
            let body = answer
                .iter()
                .position(|b| *b == b'\n')
                .map_or(&answer[..], |i| &answer[i + 1..]);
            let url = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|doc| confirm.status_url(&doc));
            match url {
                Some(url) => url,
                // Answered synchronously: taken.
                None => return Ok(Some(answer)),
            }
        }
    };
    let status = h
        .fetch(reqwest::Method::GET, &status_url, None, 1 << 20)
        .await
        .map_err(|e| DeliveryError {
            // Still pending: keep the status URL for the next look.
            response: Some(format!("{PENDING}{status_url}").into_bytes()),
            ..from_http(e)
        })?;
    let doc = serde_json::from_slice::<serde_json::Value>(&status).unwrap_or_default();
    match confirm.state(&doc) {
        AsyncState::Done => Ok(Some(status)),
        AsyncState::Failed(state) => Err(DeliveryError {
            message: format!("the EHR rejected the result: status {state:?} at {status_url}"),
            retryable: false,
            response: Some(status),
            retry_after: None,
        }),
        AsyncState::Pending(state) => Err(DeliveryError {
            message: format!(
                "accepted; awaiting confirmation (status {}) at {status_url}",
                state.as_deref().unwrap_or("unknown")
            ),
            retryable: true,
            response: Some(format!("{PENDING}{status_url}").into_bytes()),
            retry_after: None,
        }),
    }
}
