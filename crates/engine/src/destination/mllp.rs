//! ORU^R01 and friends to an MLLP peer, judged by the ACK it returns.

use hl7v2::Message;
use hl7v2::ack::{AckCode, parse_ack};
use medrelay_store::Delivery;
use mllp::{Sender, SenderConfig};

use super::DeliveryError;
use crate::EngineError;
use crate::config::DestinationConfig;

pub struct MllpDestination {
    sender: Sender,
    retry_on_ae: bool,
    retry_on_ar: bool,
}

impl MllpDestination {
    pub fn new(cfg: &DestinationConfig) -> Result<Self, EngineError> {
        let addr = cfg
            .mllp
            .clone()
            .ok_or_else(|| EngineError::Config("mllp destination without address".into()))?;
        let tls = match &cfg.tls {
            Some(t) => Some(crate::tls::client(t, &addr)?),
            None => None,
        };
        let sender = Sender::new(SenderConfig {
            addr,
            tls,
            connect_timeout: cfg.connect_timeout,
            ack_timeout: cfg.ack_timeout,
            max_frame: 16 * 1024 * 1024,
        });
        Ok(MllpDestination {
            sender,
            retry_on_ae: cfg.retry_on_ae,
            retry_on_ar: cfg.retry_on_ar,
        })
    }

    pub async fn send(&mut self, d: &Delivery) -> Result<Option<Vec<u8>>, DeliveryError> {
        let reply = self
            .sender
            .send(&d.payload)
            .await
            .map_err(|e| DeliveryError::retry(e.to_string()))?;
        let response = reply.to_vec();
        let msg = match Message::parse(&reply) {
            Ok(m) => m,
            Err(e) => {
                return Err(DeliveryError {
                    message: format!("the peer's reply is not an HL7 ACK: {e}"),
                    retryable: true,
                    response: Some(response),
                    retry_after: None,
                });
            }
        };
        let ack = parse_ack(&msg).map_err(|e| DeliveryError {
            message: format!("the peer's reply is not an HL7 ACK: {e}"),
            retryable: true,
            response: Some(response.clone()),
            retry_after: None,
        })?;
        match ack.code {
            AckCode::AA | AckCode::CA => Ok(Some(response)),
            code => {
                let text = ack.text.map(|t| t.to_string()).unwrap_or_default();
                Err(DeliveryError {
                    message: format!("the peer answered {code:?}: {text}"),
                    retryable: if matches!(code, AckCode::AR | AckCode::CR) {
                        self.retry_on_ar
                    } else {
                        self.retry_on_ae
                    },
                    response: Some(response),
                    retry_after: None,
                })
            }
        }
    }

    pub async fn close(&mut self) {
        self.sender.close().await;
    }
}
