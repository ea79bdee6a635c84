//! The store's types for Direct secure messaging: the HISP relays clinical
//! documents between edges, each message to one or several recipients, with a
//! status per recipient and asynchronous status notifications to the sender.
//!
//! Statuses are the caller's text (e.g. `PROCESSED`, `SMTPINIT`, `DISPATCHED`,
//! `FAILED`): the store knows no lifecycle. It only treats `PROCESSED` and
//! `SMTPINIT` as "work due" ([`DUE_STATUSES`]), and applies a status change
//! only from the statuses the caller names.

use crate::types::Millis;

/// The recipient statuses the worker still has to act on: the ones
/// `due_direct_recipients` and `next_direct_due` look at.
pub const DUE_STATUSES: [&str; 2] = ["PROCESSED", "SMTPINIT"];

/// An HTTP endpoint with optional Basic credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// A sending edge (its HTTP Basic user is `name`). Its secret hash is returned
/// only by `direct_edge`, for authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectEdge {
    pub name: String,
    pub org: String,
    pub created_at: Millis,
}

/// A Direct address this HISP serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectAddress {
    /// Stored and returned lowercased.
    pub address: String,
    pub org: String,
    /// The edge that may send from this address.
    pub edge: Option<String>,
    /// Where messages to this address are delivered (the receiving edge).
    pub endpoint: Option<Endpoint>,
    /// Where status notifications about messages from this address go.
    pub notify: Option<Endpoint>,
    pub created_at: Millis,
}

/// A notification to queue (state `pending`, due at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// The recipient the notification is about, if any.
    pub recipient: Option<String>,
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// JSON text, posted as is.
    pub payload: String,
}

/// A message to store with its recipients and first notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDirectMessage {
    pub org: String,
    pub edge: String,
    pub sender: String,
    pub message_id: String,
    /// A hash of the submission, so a resubmission of the same `message_id`
    /// with other content can be told apart (see [`DirectSubmit::Existing`]).
    pub request_hash: String,
    pub transaction_id: String,
    pub created_at: Millis,
    pub deadline_at: Millis,
    pub asm: bool,
    pub xdm: bool,
    pub body: Vec<u8>,
    /// (recipient, local, initial status e.g. "PROCESSED"); all due at created_at
    pub recipients: Vec<(String, bool, String)>,
    /// queued in the same transaction (e.g. the "processed" notification to the sender), due at created_at
    pub notifications: Vec<NewNotification>,
}

/// The outcome of `submit_direct_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectSubmit {
    Created {
        id: i64,
    },
    /// (sender, message_id) exists: nothing written
    Existing {
        id: i64,
        transaction_id: String,
        request_hash: String,
    },
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectMessage {
    pub id: i64,
    pub org: String,
    pub edge: String,
    pub sender: String,
    pub message_id: String,
    pub transaction_id: String,
    pub created_at: Millis,
    pub deadline_at: Millis,
    pub asm: bool,
    pub xdm: bool,
    pub body: Vec<u8>,
}

/// The state of a message for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectRecipient {
    pub message: i64,
    pub recipient: String,
    pub local: bool,
    pub status: String,
    pub failure_reason: Option<String>,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub updated_at: Millis,
    pub last_error: Option<String>,
}

/// A queued status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectNotification {
    pub id: i64,
    pub message: i64,
    pub recipient: Option<String>,
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub payload: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Failed sending attempts so far.
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub created_at: Millis,
    pub last_error: Option<String>,
}

/// Direct addresses are case-insensitive: the store keeps and compares them
/// lowercased.
pub fn normalize_address(address: &str) -> String {
    address.to_lowercase()
}
