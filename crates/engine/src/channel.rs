//! What happens to one inbound message: parse, validate, filter, transform, store
//! (with its destination queue entries, in one commit), acknowledge.
//!
//! The pipeline is transport-neutral: the MLLP source calls [`Channel::receive`]
//! with the frame's bytes and sends back whatever it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hl7v2::ack::{AckBuilder, AckCode, ErrorDetail, ErrorLocation};
use hl7v2::{ErrorCode, Message};
use medrelay_store::{InboundOutcome, InboundRecord, MessageStatus, NewDelivery, Store};
use medrelay_worklist::WorklistAction;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use crate::clock::{ControlIds, hl7_timestamp, now_ms};
use crate::config::{AckMode, ChannelConfig};
use crate::metrics::ChannelMetrics;
use crate::transform::{Filter, Transformer};
use crate::worklist_stage::WorklistStage;

/// A finished delivery, announced to `after-destinations` ACK waiters.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryDone {
    pub delivery_id: i64,
    pub sent: bool,
    /// A failed attempt that will be retried (`sent` is false).
    pub retrying: bool,
}

/// The inbound half of a channel, shared by all its connections.
pub struct Channel {
    pub(crate) name: String,
    pub(crate) org: String,
    ack_mode: AckMode,
    ack_wait: Duration,
    dedup_window: Option<i64>,
    validate: bool,
    filter: Option<Filter>,
    transformer: Transformer,
    /// Queue keys (`channel/destination`) every accepted message is queued for.
    destinations: Vec<String>,
    store: Store,
    pub(crate) metrics: ChannelMetrics,
    control_ids: Arc<ControlIds>,
    /// Wakes the destination workers after a commit.
    wake: Vec<Arc<tokio::sync::Notify>>,
    pub(crate) done: broadcast::Sender<DeliveryDone>,
    /// Integrations: orders become worklist items.
    worklist: Option<Arc<WorklistStage>>,
    control: crate::run_state::RunControl,
}

/// What the caller should send back.
pub struct Reply {
    pub ack: Vec<u8>,
    pub message_id: Option<i64>,
    pub code: AckCode,
    /// Why the message was not accepted (what the ACK's ERR says).
    pub error: Option<String>,
    /// Not accepted now, but worth sending again (the store was unavailable).
    pub retryable: bool,
}

impl Channel {
    pub(crate) fn new(
        cfg: &ChannelConfig,
        store: Store,
        control_ids: Arc<ControlIds>,
        destinations: Vec<String>,
        wake: Vec<Arc<tokio::sync::Notify>>,
        done: broadcast::Sender<DeliveryDone>,
        worklist: Option<Arc<WorklistStage>>,
    ) -> Result<Self, crate::EngineError> {
        let filter = cfg.filter.as_ref().map(Filter::new).transpose()?;
        let transformer = Transformer::new(&cfg.transform)?;
        let dedup_ms = i64::try_from(cfg.dedup_window.as_millis()).unwrap_or(i64::MAX);
        Ok(Channel {
            name: cfg.name.clone(),
            org: cfg.org.clone(),
            ack_mode: cfg.ack,
            ack_wait: cfg.ack_wait,
            dedup_window: (dedup_ms > 0).then_some(dedup_ms),
            validate: cfg.validate,
            filter,
            transformer,
            destinations,
            store,
            metrics: ChannelMetrics::new(&cfg.name),
            control_ids,
            wake,
            done,
            worklist,
            control: crate::run_state::RunControl::default(),
        })
    }

    /// Shares `control` with the channel's queue workers.
    pub(crate) fn with_control(mut self, control: crate::run_state::RunControl) -> Self {
        self.control = control;
        self
    }

    /// This channel's run state (see [`crate::run_state`]).
    pub fn control(&self) -> &crate::run_state::RunControl {
        &self.control
    }

    /// Starts, pauses or stops this channel for `by` (a user name) and
    /// remembers it, so a restart keeps it. Nothing changes if the store
    /// cannot remember it.
    pub async fn set_run_state(
        &self,
        state: crate::run_state::RunState,
        by: &str,
    ) -> Result<(), medrelay_store::StoreError> {
        self.store
            .set_channel_state(&self.name, state.as_str(), by)
            .await?;
        self.control.set(state);
        tracing::info!(channel = %self.name, state = state.as_str(), by, "channel state set");
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Processes one message and returns the reply. The message (and its queue
    /// entries) is committed before this returns a positive ACK.
    pub async fn receive(&self, raw: Vec<u8>, peer: Option<String>) -> Reply {
        if self.control.get() != crate::run_state::RunState::Running {
            return self.refuse_not_running(&raw);
        }
        let started = Instant::now();
        self.metrics.received.increment(1);
        let reply = self.process(raw, peer).await;
        self.metrics.latency.record(started.elapsed().as_secs_f64());
        match reply.code {
            AckCode::AA | AckCode::CA => self.metrics.acknowledged.increment(1),
            _ => self.metrics.errored.increment(1),
        }
        reply
    }

    /// A frame over the size limit: rejected with AR naming the limit; the first
    /// bytes are kept as evidence.
    pub async fn receive_oversized(
        &self,
        head: Vec<u8>,
        len: usize,
        limit: usize,
        peer: Option<String>,
    ) -> Reply {
        self.metrics.received.increment(1);
        self.metrics.errored.increment(1);
        let text =
            format!("message of {len} bytes exceeds the maximum frame size of {limit} bytes");
        let received_at = now_ms();
        let builder = self.ack_for_raw(&head, received_at);
        let header = Header::salvaged(&builder);
        let ack = builder
            .code(AckCode::AR)
            .error(internal_error(&text))
            .build();
        let error = format!("{text} (only the first bytes were kept)");
        let rec = self.record(header, head, received_at, peer, MessageStatus::Rejected);
        self.store_nack(rec, error, ack, AckCode::AR).await
    }

    /// Runs a stored message through the pipeline again (an operator's
    /// "reprocess", e.g. after a mapping was fixed): a new message, never
    /// taken for a retransmission of the original.
    pub async fn reprocess(&self, raw: Vec<u8>, peer: Option<String>) -> Reply {
        self.process_with(raw, peer, false).await
    }

    async fn process(&self, raw: Vec<u8>, peer: Option<String>) -> Reply {
        self.process_with(raw, peer, true).await
    }

    async fn process_with(&self, raw: Vec<u8>, peer: Option<String>, dedup: bool) -> Reply {
        let received_at = now_ms();
        let msg = match Message::parse(&raw) {
            Ok(msg) => msg,
            Err(e) => {
                let builder = self.ack_for_raw(&raw, received_at);
                let header = Header::salvaged(&builder);
                let ack = builder.code(AckCode::AR).parse_error(&e).build();
                debug!(channel = %self.name, error = %e, "unparseable message rejected");
                let rec = self.record(header, raw, received_at, peer, MessageStatus::Rejected);
                return self.store_nack(rec, e.to_string(), ack, AckCode::AR).await;
            }
        };

        let header = Header::of(&msg);

        if self.validate {
            let issues = hl7v2::validate::validate(&msg);
            if hl7v2::validate::has_errors(&issues) {
                let mut builder = self.ack_for(&msg, received_at).code(AckCode::AE);
                let mut reasons = Vec::with_capacity(issues.len());
                for issue in &issues {
                    reasons.push(issue.to_string());
                    builder = builder.error(ErrorDetail::from(issue));
                }
                let ack = builder.build();
                drop(msg);
                let rec = self.record(header, raw, received_at, peer, MessageStatus::Rejected);
                return self
                    .store_nack(rec, reasons.join("; "), ack, AckCode::AE)
                    .await;
            }
        }

        let passes = self.filter.as_ref().is_none_or(|f| f.accepts(&msg));
        let worklist = match (&self.worklist, passes) {
            (Some(stage), true) => match self.worklist_actions(stage, &msg).await {
                Ok(actions) => actions,
                Err(refusal) => {
                    let ack = self
                        .ack_for(&msg, received_at)
                        .code(refusal.code)
                        .error(refusal.detail)
                        .build();
                    drop(msg);
                    let rec = self.record(header, raw, received_at, peer, MessageStatus::Rejected);
                    return self.store_nack(rec, refusal.text, ack, refusal.code).await;
                }
            },
            _ => Vec::new(),
        };
        let payload = if passes && !self.destinations.is_empty() {
            match self.transformer.apply(&msg) {
                Ok(payload) => Some(payload),
                Err(e) => {
                    let text = format!("transformer failed: {e}");
                    let ack = self
                        .ack_for(&msg, received_at)
                        .code(AckCode::AE)
                        .error(internal_error(&text))
                        .build();
                    drop(msg);
                    let rec = self.record(header, raw, received_at, peer, MessageStatus::Errored);
                    return self.store_nack(rec, text, ack, AckCode::AE).await;
                }
            }
        } else {
            None
        };
        let ack = self.ack_for(&msg, received_at).code(AckCode::AA).build();
        let waits = passes && self.ack_mode != AckMode::AfterStore && !self.destinations.is_empty();
        // Built now, while the original is at hand; used if a destination fails or
        // does not answer in time.
        let negative = waits.then(|| NegativeAcks {
            base: self.ack_for(&msg, received_at),
            failed: self
                .ack_for(&msg, received_at)
                .code(AckCode::AE)
                .error(internal_error("a destination rejected the message"))
                .build(),
            timeout: self
                .ack_for(&msg, received_at)
                .code(AckCode::AE)
                .error(internal_error(&format!(
                    "destinations did not answer within {}s; the message is stored and stays queued",
                    self.ack_wait.as_secs()
                )))
                .build(),
        });
        drop(msg);

        let status = if !passes {
            self.metrics.filtered.increment(1);
            MessageStatus::Filtered
        } else if waits {
            MessageStatus::Received
        } else {
            MessageStatus::Accepted
        };
        let deliveries = match payload {
            Some(payload) => self
                .destinations
                .iter()
                .map(|d| NewDelivery {
                    destination: d.clone(),
                    payload: payload.clone(),
                    not_before: received_at,
                })
                .collect(),
            None => Vec::new(),
        };
        let done_rx = waits.then(|| self.done.subscribe());
        let rec = InboundRecord {
            // An after-destinations ACK is decided later; storing none keeps a
            // retransmission from being answered with a premature AA.
            ack: (!waits).then(|| ack.clone()),
            dedup_window: self.dedup_window.filter(|_| dedup),
            deliveries,
            worklist,
            ..self.record(header, raw, received_at, peer, status)
        };
        match self.store.record_inbound(rec).await {
            Ok(InboundOutcome::Stored {
                message_id,
                delivery_ids,
                ..
            }) => {
                for w in &self.wake {
                    w.notify_one();
                }
                match (done_rx, negative) {
                    (Some(rx), Some(negative)) => {
                        self.await_destinations(message_id, delivery_ids, rx, ack, negative)
                            .await
                    }
                    _ => Reply {
                        ack,
                        message_id: Some(message_id),
                        code: AckCode::AA,
                        error: None,
                        retryable: false,
                    },
                }
            }
            Ok(InboundOutcome::Duplicate {
                original_id,
                original_ack,
            }) => {
                self.metrics.duplicates.increment(1);
                debug!(channel = %self.name, original_id, "retransmission answered with the original ACK");
                Reply {
                    ack: original_ack.unwrap_or(ack),
                    message_id: Some(original_id),
                    code: AckCode::AA,
                    error: None,
                    retryable: false,
                }
            }
            Err(e) => self.store_failed(&e, received_at),
        }
    }

    /// `after-destinations`: the ACK is AA once every destination has taken the
    /// message, AE if one failed for good or they did not answer in time.
    /// `from-destination`: the first answer of each destination counts: all taken
    /// → AA; one refused for good → AR carrying the refusal; otherwise (retrying,
    /// no answer in time) AA, as the message is committed and stays queued.
    /// Either way the message stays stored.
    async fn await_destinations(
        &self,
        message_id: i64,
        mut pending: Vec<i64>,
        mut rx: broadcast::Receiver<DeliveryDone>,
        positive: Vec<u8>,
        negative: NegativeAcks,
    ) -> Reply {
        let bridge = self.ack_mode == AckMode::FromDestination;
        let deadline = tokio::time::Instant::now() + self.ack_wait;
        let mut failed = false;
        let mut queued = false;
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(done)) => {
                    if done.retrying && !bridge {
                        continue;
                    }
                    if let Some(pos) = pending.iter().position(|id| *id == done.delivery_id) {
                        pending.swap_remove(pos);
                        failed |= !done.sent && !done.retrying;
                        queued |= done.retrying;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    // Missed announcements: ask the store instead.
                    if let Ok(ds) = self.store.deliveries_for_message(message_id).await {
                        for d in ds {
                            use medrelay_store::DeliveryState as S;
                            let decided = matches!(d.state, S::Sent | S::Failed)
                                || (bridge && d.state == S::Retrying);
                            if decided {
                                pending.retain(|id| *id != d.id);
                                failed |= d.state == S::Failed;
                                queued |= d.state == S::Retrying;
                            }
                        }
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
        let timed_out = !pending.is_empty();
        let (code, ack, status, error) = if failed && bridge {
            let reason = self.refusal(message_id).await;
            let text = format!("the destination refused the message: {reason}");
            let ack = negative
                .base
                .code(AckCode::AR)
                .error(internal_error(&text))
                .build();
            (AckCode::AR, ack, MessageStatus::Errored, Some(text))
        } else if failed {
            let text = "a destination rejected the message";
            (
                AckCode::AE,
                negative.failed,
                MessageStatus::Errored,
                Some(text.to_string()),
            )
        } else if bridge && (queued || timed_out) {
            // Committed and queued: the sender may forget it.
            (AckCode::AA, positive, MessageStatus::Accepted, None)
        } else if !timed_out {
            (AckCode::AA, positive, MessageStatus::Processed, None)
        } else {
            let text = "destinations did not answer in time; the message stays queued";
            (
                AckCode::AE,
                negative.timeout,
                MessageStatus::Accepted,
                Some(text.to_string()),
            )
        };
        if let Err(e) = self
            .store
            .set_ack(message_id, status, Some(ack.clone()), error.clone())
            .await
        {
            warn!(channel = %self.name, message_id, error = %e, "could not record the ACK");
        }
        Reply {
            ack,
            message_id: Some(message_id),
            code,
            error,
            retryable: false,
        }
    }

    /// What a destination said when it refused the message for good.
    async fn refusal(&self, message_id: i64) -> String {
        let deliveries = self
            .store
            .deliveries_for_message(message_id)
            .await
            .unwrap_or_default();
        deliveries
            .into_iter()
            .find(|d| d.state == medrelay_store::DeliveryState::Failed)
            .and_then(|d| d.last_error)
            .map(|e| e.chars().take(200).collect())
            .unwrap_or_else(|| "refused".into())
    }

    /// Stores a message that is answered negatively, with its error and ACK.
    /// Never deduplicated: a corrected retransmission must be processed.
    async fn store_nack(
        &self,
        rec: InboundRecord,
        error: String,
        ack: Vec<u8>,
        code: AckCode,
    ) -> Reply {
        let rec = InboundRecord {
            ack: Some(ack.clone()),
            error: Some(error.clone()),
            ..rec
        };
        let (message_id, stored) = match self.store.record_inbound(rec).await {
            Ok(InboundOutcome::Stored { message_id, .. }) => (Some(message_id), true),
            Ok(InboundOutcome::Duplicate { original_id, .. }) => (Some(original_id), true),
            Err(e) => {
                warn!(channel = %self.name, error = %e, "could not store a rejected message");
                (None, false)
            }
        };
        Reply {
            ack,
            message_id,
            code,
            error: Some(error),
            // The evidence is not kept yet: a file stays where it is for another try.
            retryable: !stored,
        }
    }

    /// A paused or stopped channel: AE, nothing stored, so the sender keeps
    /// the message and sends it again once the channel runs.
    fn refuse_not_running(&self, raw: &[u8]) -> Reply {
        let state = self.control.get().as_str();
        let text = format!(
            "channel {} is {state}; send the message again later",
            self.name
        );
        self.retry_later(raw, &text, text.clone(), now_ms())
    }

    /// The store refused the message: answer AE so the sender keeps it and retries.
    /// Nothing was acknowledged, so nothing is lost.
    fn store_failed(&self, e: &medrelay_store::StoreError, received_at: i64) -> Reply {
        warn!(channel = %self.name, error = %e, "store failed; answering AE so the sender retries");
        self.retry_later(
            b"",
            "the message could not be stored; please retry",
            format!("the message could not be stored: {e}"),
            received_at,
        )
    }

    /// AE with `ack_text`, nothing stored: the sender keeps the message and
    /// sends it again.
    fn retry_later(&self, raw: &[u8], ack_text: &str, error: String, at: i64) -> Reply {
        let ack = AckBuilder::for_raw(raw)
            .code(AckCode::AE)
            .error(internal_error(ack_text))
            .timestamp(&hl7_timestamp(at))
            .control_id(&self.control_ids.next())
            .build();
        Reply {
            ack,
            message_id: None,
            code: AckCode::AE,
            error: Some(error),
            retryable: true,
        }
    }

    /// What the message asks of the worklist. Updates and cancels must name an
    /// order this integration sent before; otherwise the sender gets AE saying so.
    async fn worklist_actions(
        &self,
        stage: &WorklistStage,
        msg: &Message<'_>,
    ) -> Result<Vec<WorklistAction>, Refusal> {
        let actions = stage.map(msg).map_err(|e| Refusal {
            // An unsupported message type is rejected (AR); bad content is an
            // application error (AE).
            code: if e.is_reject() {
                AckCode::AR
            } else {
                AckCode::AE
            },
            detail: ErrorDetail::from(&e),
            text: e.to_string(),
        })?;
        for action in &actions {
            let key = match action {
                WorklistAction::UpdateAppointment { key, .. }
                | WorklistAction::CancelAppointment { key, .. } => key,
                _ => continue,
            };
            match self.store.find_appointment(&self.org, key).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let text = format!(
                        "unknown order: no appointment from this integration with placer order {} / filler order {}",
                        key.placer_order.as_deref().unwrap_or("(none)"),
                        key.filler_order.as_deref().unwrap_or("(none)")
                    );
                    let detail = ErrorDetail::new(ErrorCode::UnknownKeyIdentifier, &text)
                        .at(ErrorLocation::segment("ORC", 1).with_field(2));
                    return Err(Refusal {
                        code: AckCode::AE,
                        detail,
                        text,
                    });
                }
                Err(e) => {
                    let text = format!("looking up the order failed: {e}");
                    return Err(Refusal {
                        code: AckCode::AE,
                        detail: internal_error(&text),
                        text,
                    });
                }
            }
        }
        Ok(actions)
    }

    /// The columns every stored message has; callers add ACK, error, queue entries.
    fn record(
        &self,
        header: Header,
        raw: Vec<u8>,
        received_at: i64,
        peer: Option<String>,
        status: MessageStatus,
    ) -> InboundRecord {
        InboundRecord {
            org: self.org.clone(),
            channel: self.name.clone(),
            received_at,
            peer,
            control_id: header.control_id,
            message_type: header.message_type,
            sending_application: header.sending_application,
            sending_facility: header.sending_facility,
            status,
            raw,
            ..InboundRecord::default()
        }
    }

    fn ack_for(&self, msg: &Message<'_>, at: i64) -> AckBuilder {
        AckBuilder::for_message(msg)
            .timestamp(&hl7_timestamp(at))
            .control_id(&self.control_ids.next())
    }

    fn ack_for_raw(&self, raw: &[u8], at: i64) -> AckBuilder {
        AckBuilder::for_raw(raw)
            .timestamp(&hl7_timestamp(at))
            .control_id(&self.control_ids.next())
    }
}

/// An ERR entry for something that went wrong on our side (HL7 table 0357: 207).
fn internal_error(text: &str) -> ErrorDetail {
    ErrorDetail::new(ErrorCode::ApplicationInternalError, text)
}

/// Why the worklist stage refused a message, and how to answer.
struct Refusal {
    code: AckCode,
    detail: ErrorDetail,
    text: String,
}

struct NegativeAcks {
    /// For an answer whose text is known only later (the destination's refusal).
    base: AckBuilder,
    failed: Vec<u8>,
    timeout: Vec<u8>,
}

/// Header fields kept in the store's columns for search.
#[derive(Default)]
struct Header {
    control_id: Option<String>,
    message_type: Option<String>,
    sending_application: Option<String>,
    sending_facility: Option<String>,
}

impl Header {
    /// Best effort for bytes that did not parse: what the ACK builder salvaged.
    fn salvaged(b: &AckBuilder) -> Self {
        Header {
            control_id: b.original_control_id(),
            message_type: None,
            sending_application: b.original_sending_application(),
            sending_facility: b.original_sending_facility(),
        }
    }

    fn of(msg: &Message<'_>) -> Self {
        let h = msg.header();
        let some = |s: String| (!s.is_empty()).then_some(s);
        Header {
            control_id: h.control_id().map(|v| v.to_string()).and_then(some),
            message_type: some(h.message_type_string()),
            sending_application: h
                .sending_application()
                .map(|v| v.to_string())
                .and_then(some),
            sending_facility: h.sending_facility().map(|v| v.to_string()).and_then(some),
        }
    }
}
