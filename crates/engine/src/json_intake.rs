//! JSON appointments pushed by an EHR (Join, ZipLaneRx): each request body is
//! stored raw, like every other inbound message, mapped through the
//! integration's JSON mapping, and committed with its worklist changes in one
//! transaction before the caller hears "201".

use std::sync::Arc;

use medrelay_store::{InboundOutcome, InboundRecord, MessageStatus, Store};
use medrelay_worklist::WorklistAction;
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::worklist_stage::WorklistStage;

/// Why a pushed body was not accepted, for the HTTP layer to word.
#[derive(Debug)]
pub enum IntakeError {
    /// Not JSON at all (400).
    BadJson(String),
    /// JSON, but not appointments this mapping can read (422).
    Invalid(String),
    /// The store failed: nothing was accepted, the sender should retry (503).
    Unavailable(String),
}

/// What a pushed body did.
#[derive(Debug, Clone)]
pub struct IntakeOutcome {
    pub message_id: i64,
    /// The appointments created or updated, and cancelled, in the body's order.
    pub appointments: Vec<Value>,
    /// The same body again within the dedup window: nothing applied twice.
    pub duplicate: bool,
}

/// How long an identical body is recognised as a retransmission.
const DEDUP: i64 = 24 * 3600 * 1000;

pub struct JsonIntake {
    pub(crate) channel: String,
    pub(crate) org: String,
    pub(crate) stage: Arc<WorklistStage>,
    pub(crate) store: Store,
}

impl JsonIntake {
    /// The integration this intake feeds.
    pub fn integration(&self) -> &str {
        &self.channel
    }

    /// The organisation its appointments belong to.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// Stores `body` and applies the appointments in it. `peer` says who sent it
    /// (client id and address).
    pub async fn submit(&self, body: Vec<u8>, peer: String) -> Result<IntakeOutcome, IntakeError> {
        let received_at = now_ms();
        let hash = crate::intake::content_hash(&body);
        let mut rec = InboundRecord {
            org: self.org.clone(),
            channel: self.channel.clone(),
            received_at,
            peer: Some(peer),
            control_id: Some(format!("sha256:{hash}")),
            message_type: Some("JSON appointments".into()),
            dedup_window: Some(DEDUP),
            ..InboundRecord::default()
        };
        let mapped: Result<Vec<WorklistAction>, IntakeError> =
            match serde_json::from_slice::<Value>(&body) {
                Err(e) => Err(IntakeError::BadJson(format!("the body is not JSON: {e}"))),
                Ok(doc) => self
                    .stage
                    .map_json(&doc)
                    .map(|items| items.into_iter().map(|i| i.action).collect())
                    .map_err(|e| IntakeError::Invalid(e.to_string())),
            };
        rec.raw = body;
        let actions = match mapped {
            Ok(a) => a,
            Err(e) => {
                let text = match &e {
                    IntakeError::BadJson(t)
                    | IntakeError::Invalid(t)
                    | IntakeError::Unavailable(t) => t.clone(),
                };
                // Kept as evidence; never deduplicated, so a corrected body counts.
                rec.status = MessageStatus::Rejected;
                rec.error = Some(text);
                rec.dedup_window = None;
                return match self.store.record_inbound(rec).await {
                    Ok(_) => Err(e),
                    Err(se) => Err(IntakeError::Unavailable(se.to_string())),
                };
            }
        };
        rec.status = MessageStatus::Accepted;
        rec.ack = Some(b"accepted".to_vec());
        rec.worklist = actions.clone();
        match self.store.record_inbound(rec).await {
            Ok(InboundOutcome::Stored {
                message_id,
                worklist,
                ..
            }) => Ok(IntakeOutcome {
                message_id,
                appointments: actions
                    .iter()
                    .zip(worklist)
                    .map(|(a, effect)| summary(a, &effect))
                    .collect(),
                duplicate: false,
            }),
            Ok(InboundOutcome::Duplicate { original_id, .. }) => Ok(IntakeOutcome {
                message_id: original_id,
                appointments: Vec::new(),
                duplicate: true,
            }),
            Err(e) => Err(IntakeError::Unavailable(e.to_string())),
        }
    }
}

fn summary(action: &WorklistAction, effect: &medrelay_store::WorklistEffect) -> Value {
    let (what, reference) = match action {
        WorklistAction::CreateAppointment { appointment, .. } => {
            ("scheduled", appointment.order.placer_order.clone())
        }
        WorklistAction::UpdateAppointment { key, .. } => ("updated", key.placer_order.clone()),
        WorklistAction::CancelAppointment { key, .. } => ("cancelled", key.placer_order.clone()),
        WorklistAction::UpsertPatient { .. } => ("patient", None),
    };
    json!({
        "id": effect.appointment_id,
        "reference": reference,
        "status": if effect.not_found { "unknown" } else { what },
        "patient_id": effect.patient_id,
    })
}
