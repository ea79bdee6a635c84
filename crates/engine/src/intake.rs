//! What an inbound folder does with a complete file, per format.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hl7v2::ack::AckCode;
use medrelay_store::{InboundOutcome, InboundRecord, MessageStatus, Store};
use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::clock::now_ms;
use crate::folder_source::{FileHandler, FileOutcome};
use crate::integration::IntegrationConfig;
use crate::worklist_stage::WorklistStage;

/// HL7 files (WEDA): each file is one message through the integration's channel,
/// exactly as if it had arrived over MLLP; the ACK it would have got decides
/// between archive and error folder.
pub struct Hl7Files {
    pub channel: Arc<Channel>,
}

impl FileHandler for Hl7Files {
    fn handle<'a>(
        &'a self,
        _name: &'a str,
        bytes: Vec<u8>,
        peer: String,
    ) -> Pin<Box<dyn Future<Output = FileOutcome> + Send + 'a>> {
        Box::pin(async move {
            // Files written on Windows end segments with CR LF; a trailing newline
            // is not an empty segment.
            let reply = self.channel.receive(bytes, Some(peer)).await;
            match reply.code {
                AckCode::AA | AckCode::CA => FileOutcome::Accepted,
                _ if reply.retryable => FileOutcome::Retry(
                    reply
                        .error
                        .unwrap_or_else(|| "the store is unavailable".into()),
                ),
                code => FileOutcome::Rejected(format!(
                    "{}: {}",
                    code.as_str(),
                    reply.error.unwrap_or_else(|| "rejected".into())
                )),
            }
        })
    }
}

/// GDT files (Doctolib, Tomedo): parsed, mapped, and stored with the worklist
/// change in one commit. The file's content hash is its control id, so the same
/// file read again after a crash is recognised and not applied twice.
pub struct GdtFiles {
    channel: String,
    org: String,
    stage: Arc<WorklistStage>,
    store: Store,
    dedup_window: i64,
}

/// How long a processed file's content is remembered: a file left behind by a
/// crash between commit and archive is recognised for this long.
const GDT_DEDUP: i64 = 30 * 24 * 3600 * 1000;

impl GdtFiles {
    pub fn new(cfg: &IntegrationConfig, stage: Arc<WorklistStage>, store: Store) -> Self {
        GdtFiles {
            channel: cfg.name.clone(),
            org: cfg.org.clone(),
            stage,
            store,
            dedup_window: GDT_DEDUP,
        }
    }

    async fn process(&self, bytes: Vec<u8>, peer: String) -> FileOutcome {
        let received_at = now_ms();
        let hash = content_hash(&bytes);
        let mut rec = InboundRecord {
            org: self.org.clone(),
            channel: self.channel.clone(),
            received_at,
            peer: Some(peer),
            control_id: Some(format!("sha256:{hash}")),
            dedup_window: Some(self.dedup_window),
            ..InboundRecord::default()
        };
        let outcome = match gdt::parse(&bytes) {
            Err(e) => Err(format!("not a valid GDT record: {e}")),
            Ok(record) => {
                rec.message_type = Some(match record.record_type() {
                    Some(t) => format!("GDT {}", t.code()),
                    None => "GDT".into(),
                });
                rec.sending_application = record.sender_id().map(str::to_string);
                // The same reference for the same file: an order without one is
                // still found again by its content.
                let reference = format!("GDT-{}", hash.get(..16).unwrap_or(&hash));
                self.stage
                    .map_gdt(&record, &reference)
                    .map_err(|e| e.to_string())
            }
        };
        let (status, reply) = match outcome {
            Ok(actions) => {
                rec.worklist = actions;
                (MessageStatus::Accepted, "accepted".to_string())
            }
            Err(reason) => {
                rec.error = Some(reason.clone());
                (MessageStatus::Rejected, reason)
            }
        };
        rec.status = status;
        rec.raw = bytes;
        rec.ack = Some(reply.clone().into_bytes());
        if status == MessageStatus::Rejected {
            // A rejected file is kept (raw and reason) but never deduplicated: a
            // corrected file with the same name must be processed.
            rec.dedup_window = None;
        }
        match self.store.record_inbound(rec).await {
            Ok(InboundOutcome::Duplicate { .. }) => FileOutcome::Accepted,
            Ok(InboundOutcome::Stored { .. }) if status == MessageStatus::Accepted => {
                FileOutcome::Accepted
            }
            Ok(InboundOutcome::Stored { .. }) => FileOutcome::Rejected(reply),
            Err(e) => FileOutcome::Retry(format!("the store failed: {e}")),
        }
    }
}

impl FileHandler for GdtFiles {
    fn handle<'a>(
        &'a self,
        _name: &'a str,
        bytes: Vec<u8>,
        peer: String,
    ) -> Pin<Box<dyn Future<Output = FileOutcome> + Send + 'a>> {
        Box::pin(self.process(bytes, peer))
    }
}

/// SHA-256 of a file or request body, hex: how the same content is recognised
/// when it arrives again.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
