use std::fmt;
use std::str::FromStr;

use medrelay_worklist::WorklistAction;

use crate::domain::WorklistEffect;
use crate::error::UnknownName;

/// Unix epoch milliseconds. Callers pass time in so that the store never reads a
/// clock itself and tests stay deterministic.
pub type Millis = i64;

/// The organisation every single-clinic installation uses.
pub const DEFAULT_ORG: &str = "default";

/// What happened to an inbound message. Stored as the lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MessageStatus {
    /// Stored, not yet answered.
    #[default]
    Received,
    /// Answered with a positive ACK (AA / 2xx).
    Accepted,
    /// Refused by policy or validation (AR / AE for bad content).
    Rejected,
    /// Processing failed inside the engine.
    Errored,
    /// Dropped by a channel filter on purpose.
    Filtered,
    /// Fully handled (all destinations fed).
    Processed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Received,
        MessageStatus::Accepted,
        MessageStatus::Rejected,
        MessageStatus::Errored,
        MessageStatus::Filtered,
        MessageStatus::Processed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Accepted => "accepted",
            MessageStatus::Rejected => "rejected",
            MessageStatus::Errored => "errored",
            MessageStatus::Filtered => "filtered",
            MessageStatus::Processed => "processed",
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "message status",
                name: s.to_owned(),
            })
    }
}

/// Where a queued delivery stands. Stored as the lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its first attempt (or re-queued by an operator).
    Queued,
    /// Failed transiently; will be tried again at `next_attempt_at`.
    Retrying,
    /// Delivered.
    Sent,
    /// Failed permanently; only an operator's requeue brings it back.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Queued,
        DeliveryState::Retrying,
        DeliveryState::Sent,
        DeliveryState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    /// Queued or retrying: still owed to the destination.
    pub fn is_pending(self) -> bool {
        matches!(self, DeliveryState::Queued | DeliveryState::Retrying)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "delivery state",
                name: s.to_owned(),
            })
    }
}

/// Whether a stored message came in (from a sender) or goes out (a message
/// medrelay built, e.g. the ORU^R01 of a measurement). Stored as `in` / `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    In,
    Out,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Direction::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "message direction",
                name: s.to_owned(),
            })
    }
}

/// One message as the engine hands it to [`Store::record_inbound`](crate::Store::record_inbound).
/// Despite the name it may also be an outbound message (`direction: Out`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecord {
    pub org: String,
    pub channel: String,
    /// `In` (the default) for what a sender sent us, `Out` for what medrelay built.
    pub direction: Direction,
    pub received_at: Millis,
    /// `"10.0.0.5:51234"`, a file path or an HTTP client id.
    pub peer: Option<String>,
    /// MSH-10 or the equivalent.
    pub control_id: Option<String>,
    /// `"ORM^O01"`.
    pub message_type: Option<String>,
    pub sending_application: Option<String>,
    pub sending_facility: Option<String>,
    pub status: MessageStatus,
    /// Exactly the bytes received: may be non-UTF-8, may be megabytes.
    pub raw: Vec<u8>,
    /// The reply that will be sent; `None` when the ACK comes after the destinations.
    pub ack: Option<Vec<u8>>,
    pub error: Option<String>,
    /// `Some(w)`: if a message with the same (org, channel, sending application,
    /// sending facility, control id) and a stored ACK was received at or after
    /// `received_at - w`, nothing is stored and [`InboundOutcome::Duplicate`] is
    /// returned. Messages without a control id are never treated as duplicates.
    pub dedup_window: Option<Millis>,
    /// Queue entries committed in the same transaction as the message.
    pub deliveries: Vec<NewDelivery>,
    /// What the message asks of the worklist (patients, appointments), applied
    /// in the same transaction, after the message is stored, in this order. A
    /// duplicate applies nothing. See [`WorklistEffect`](crate::WorklistEffect).
    pub worklist: Vec<WorklistAction>,
}

impl Default for InboundRecord {
    fn default() -> Self {
        InboundRecord {
            org: DEFAULT_ORG.to_owned(),
            channel: String::new(),
            direction: Direction::In,
            received_at: 0,
            peer: None,
            control_id: None,
            message_type: None,
            sending_application: None,
            sending_facility: None,
            status: MessageStatus::Received,
            raw: Vec::new(),
            ack: None,
            error: None,
            dedup_window: None,
            deliveries: Vec::new(),
            worklist: Vec::new(),
        }
    }
}

/// A queue entry to create together with an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The `"channel/destination"` key the queue worker reads by.
    pub destination: String,
    /// The bytes to deliver. Empty means "the message's own bytes" (`raw`), so a
    /// message forwarded unchanged, or a result with a large PDF, is stored once;
    /// [`Delivery::payload`] always carries the real bytes.
    pub payload: Vec<u8>,
    /// First attempt not before this time.
    pub not_before: Millis,
}

/// What [`Store::record_inbound`](crate::Store::record_inbound) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    /// Committed; `delivery_ids` are in the order of `InboundRecord::deliveries`,
    /// `worklist` has one entry per `InboundRecord::worklist` action, in order.
    Stored {
        message_id: i64,
        delivery_ids: Vec<i64>,
        worklist: Vec<WorklistEffect>,
    },
    /// A retransmission inside the dedup window: nothing stored. Answer it with
    /// the original ACK.
    Duplicate {
        original_id: i64,
        original_ack: Option<Vec<u8>>,
    },
}

/// One queue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub message_id: i64,
    pub org: String,
    pub destination: String,
    pub payload: Vec<u8>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub created_at: Millis,
    /// When the state last changed (the `at` of the last sent / failed / requeue call).
    pub updated_at: Millis,
    pub last_error: Option<String>,
    pub response: Option<Vec<u8>>,
}

/// A message (inbound or outbound) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub org: String,
    pub channel: String,
    pub direction: Direction,
    pub received_at: Millis,
    pub peer: Option<String>,
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    pub sending_application: Option<String>,
    pub sending_facility: Option<String>,
    pub status: MessageStatus,
    pub raw: Vec<u8>,
    pub ack: Option<Vec<u8>>,
    pub error: Option<String>,
}

/// How far behind a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Queued plus retrying entries.
    pub pending: u64,
    pub oldest_created_at: Option<Millis>,
}

/// A search over stored messages, newest first. Every filter left `None` matches
/// everything; `org` is always applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageQuery {
    pub org: String,
    pub channel: Option<String>,
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    pub status: Option<MessageStatus>,
    pub direction: Option<Direction>,
    /// Inclusive lower bound on `received_at`.
    pub since: Option<Millis>,
    /// Exclusive upper bound on `received_at`.
    pub until: Option<Millis>,
    pub limit: usize,
    /// Paging cursor: only messages with a smaller id (i.e. older than the last
    /// one of the previous page).
    pub before_id: Option<i64>,
}

impl MessageQuery {
    /// All messages of `org`, newest first, 100 per page.
    pub fn new(org: impl Into<String>) -> Self {
        MessageQuery {
            org: org.into(),
            channel: None,
            control_id: None,
            message_type: None,
            status: None,
            direction: None,
            since: None,
            until: None,
            limit: 100,
            before_id: None,
        }
    }
}

impl Default for MessageQuery {
    fn default() -> Self {
        MessageQuery::new(DEFAULT_ORG)
    }
}

/// Group-commit counters, cheap to read at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreMetrics {
    /// Transactions committed by the writer (one fsync each).
    pub batches: u64,
    /// Write operations in those committed transactions (including ones that
    /// failed cleanly, e.g. a `NotFound`).
    pub ops: u64,
    /// Largest number of operations in one committed transaction.
    pub max_batch: u64,
    /// Transactions whose commit (or begin) failed; all their operations got the error.
    pub failed_batches: u64,
}

impl StoreMetrics {
    /// Average operations per committed transaction; 0 before the first commit.
    pub fn ops_per_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.ops as f64 / self.batches as f64
        }
    }
}

/// Messages counted in one time window and direction
/// ([`Store::message_traffic`](crate::Store::message_traffic)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficBucket {
    /// Start of the window, epoch milliseconds.
    pub start: Millis,
    /// `out`: messages medrelay built and sent; else received.
    pub outbound: bool,
    /// Errored or rejected.
    pub errored: u64,
    pub total: u64,
}

/// A channel's recent traffic ([`Store::channel_activity`](crate::Store::channel_activity)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelActivity {
    pub channel: String,
    pub received: u64,
    /// Errored or rejected.
    pub errored: u64,
    /// The newest message's time.
    pub last_at: Millis,
    /// The newest message was errored or rejected.
    pub newest_failed: bool,
    /// The newest failure: its time and error text.
    pub last_error: Option<(Millis, String)>,
}
