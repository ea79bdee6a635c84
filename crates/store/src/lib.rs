//! The durable store of medrelay: every inbound message and every outbound
//! delivery.
//!
//! The engine's hot path is: parse a message, build its ACK, call
//! [`Store::record_inbound`] (raw bytes + ACK + destination queue entries in one
//! transaction), and only when that returns send the ACK. "Nothing acknowledged
//! is ever lost" therefore rests on this crate: an `Ok` from any write method
//! means the change is committed and fsynced.
//!
//! # Embedded SQLite
//!
//! [`Store::open_sqlite`] opens a SQLite database in WAL mode with
//! `synchronous=FULL`. All writes go to one writer thread which commits
//! *batches*: it blocks for the first queued operation, takes every other
//! operation already waiting (up to [`SqliteOptions::max_batch`]), runs them in
//! one transaction — an operation that fails without having changed a row does
//! not fail its neighbours — and commits once. Sixteen connections waiting
//! for their ACKs thus share one fsync instead of queueing for sixteen.
//! Reads use a small pool of read-only connections on blocking threads; with WAL
//! they never wait for the writer.
//!
//! # Backends
//!
//! [`Store`] is a cheap handle (`Clone` is an `Arc` bump) whose methods are async
//! and use only this crate's types, so a PostgreSQL backend can be added behind
//! it without touching callers. [`Store::open`] already recognises
//! `postgres://` URLs and answers [`StoreError::Unsupported`].
//!
//! # Organisations
//!
//! Every row carries `org`. Every method that reads or changes an
//! organisation's data takes the organisation and filters by it; ids are
//! global, so [`Store::get_message`], [`Store::get_appointment`],
//! [`Store::delete_device`] … with the wrong `org` find nothing (`None` /
//! [`StoreError::NotFound`]). Only the token look-ups
//! ([`Store::device_by_token_hash`], [`Store::api_token_by_hash`]) take no
//! organisation: the token determines it.
//!
//! # The device worklist
//!
//! Beside messages and deliveries the store keeps the domain of
//! `medrelay_worklist`: patients, appointments, device groups, devices, API
//! tokens and measurements. An inbound order carries its
//! [`WorklistAction`](medrelay_worklist::WorklistAction)s in
//! [`InboundRecord::worklist`]; [`Store::record_inbound`] applies them in the
//! message's own transaction (a duplicate applies nothing) and reports one
//! [`WorklistEffect`] per action. A device's result goes in with
//! [`Store::record_measurement`], which stores the measurement, completes the
//! appointment and queues the outbound ORU^R01 (a message with
//! [`Direction::Out`]) in one transaction.
//!
//! # Direct secure messaging
//!
//! The store side of the HISP: sending edges, the addresses it serves and
//! where they are delivered, messages with a status per recipient, and the
//! status notifications owed to senders ([`Store::submit_direct_message`],
//! [`Store::set_direct_status`], …). The store knows no lifecycle: callers
//! name the statuses a change may come from.
//!
//! # The web dashboard
//!
//! Users who log in with a password ([`Store::create_user`],
//! [`Store::user_by_name`], [`Store::record_login_failure`] …), their
//! sessions ([`Store::create_session`], [`Store::session_by_hash`]) and the
//! audit log ([`Store::audit`], [`Store::list_audit`]). Passwords and session
//! tokens arrive hashed; the lockout policy is the caller's.
//!
//! Time: the message and queue methods take the time as an argument, so the
//! hot path never reads a clock; the admin operations that create rows
//! (groups, devices, tokens, measurements, appointment deletion) stamp them
//! with the system clock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), medrelay_store::StoreError> {
//! use medrelay_store::{InboundOutcome, InboundRecord, MessageStatus, NewDelivery, Store};
//!
//! let store = Store::open("sqlite://medrelay-data/medrelay.db")?;
//! let outcome = store
//!     .record_inbound(InboundRecord {
//!         channel: "adt-in".into(),
//!         received_at: 1_700_000_000_000,
//!         control_id: Some("MSG00001".into()),
//!         status: MessageStatus::Accepted,
//!         raw: b"MSH|^~\\&|...".to_vec(),
//!         ack: Some(b"MSH|^~\\&|...MSA|AA|MSG00001".to_vec()),
//!         dedup_window: Some(24 * 3600 * 1000),
//!         deliveries: vec![NewDelivery {
//!             destination: "adt-in/pacs".into(),
//!             payload: b"MSH|...".to_vec(),
//!             not_before: 1_700_000_000_000,
//!         }],
//!         ..InboundRecord::default()
//!     })
//!     .await?;
//! match outcome {
//!     InboundOutcome::Stored { .. } => { /* send the ACK we built */ }
//!     InboundOutcome::Duplicate { original_ack, .. } => { /* resend original_ack */ }
//! }
//! store.close().await?;
//! # Ok(()) }
//! ```

mod direct;
mod domain;
mod error;
mod fhir;
pub mod fold;
pub mod oauth;
mod sqlite;
mod types;
mod users;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_direct;
#[cfg(test)]
mod tests_fhir;
#[cfg(test)]
mod tests_oauth;
#[cfg(test)]
mod tests_users;
#[cfg(test)]
mod tests_worklist;

use std::path::Path;
use std::sync::Arc;

pub use direct::{
    DUE_STATUSES, DirectAddress, DirectEdge, DirectMessage, DirectNotification, DirectRecipient,
    DirectSubmit, Endpoint, NewDirectMessage, NewNotification, normalize_address,
};
pub use domain::{
    ApiToken, AppointmentQuery, GroupInfo, MeasurementIds, OutboundMessage, StoredMeasurement,
    WorklistEffect,
};
pub use error::{StoreError, UnknownName};
pub use fhir::{
    AppointmentSearch, DateFilter, DateOp, MeasurementSearch, NewStudy, PatientSearch, Sort,
    SortKey, StoredStudy, StringFilter, StringMatch, StudySearch, TokenFilter, Versioned,
};
pub use oauth::{IssuedOAuthToken, NewOAuthClient, OAuthClient, OAuthToken};
pub use sqlite::SqliteOptions;
pub use types::{
    ChannelActivity, DEFAULT_ORG, Delivery, DeliveryState, Direction, InboundOutcome,
    InboundRecord, MessageQuery, MessageStatus, Millis, NewDelivery, QueueDepth, StoreMetrics,
    StoredMessage, TrafficBucket,
};
pub use users::{AuditEntry, CHANNEL_STATES, ChannelState, Session, USER_ROLES, User};

use medrelay_worklist::{Appointment, Device, DeviceGroup, Measurement, OrderKey, Patient};

use sqlite::SqliteBackend;

/// The system clock in epoch milliseconds, for the rows that admin operations
/// create (groups, devices, tokens, measurements, deletions), whose methods take
/// no time. Everything on the message and queue paths gets its time passed in.
fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
        })
}

/// The backends behind [`Store`]. A `Postgres(PostgresBackend)` variant slots in
/// here; every `Store` method then gains one match arm.
enum Backend {
    Sqlite(SqliteBackend),
}

/// Calls the same-named method on whichever backend is in use.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &*$self.backend {
            Backend::Sqlite(b) => b.$method($($arg),*).await,
        }
    };
}

/// Handle to the store. Clones share one backend (one writer thread, one read
/// pool); closing through any clone closes it for all.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.backend {
            Backend::Sqlite(_) => "sqlite",
        };
        f.debug_struct("Store").field("backend", &kind).finish()
    }
}

impl Store {
    /// Opens (creating it and its parent directories if needed) the SQLite
    /// database file at `path`, brings the schema up to date and starts the
    /// writer thread. Blocks briefly for the migration, so call it at start-up.
    pub fn open_sqlite(path: &Path, opts: SqliteOptions) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Arc::new(Backend::Sqlite(SqliteBackend::open(path, opts)?)),
        })
    }

    /// Opens a store from configuration text: `sqlite://PATH`, `sqlite:PATH` or a
    /// plain path for SQLite with default options. `postgres://…` is recognised
    /// but not yet supported.
    pub fn open(url_or_path: &str) -> Result<Store, StoreError> {
        let lower = url_or_path.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Err(StoreError::Unsupported(
                "PostgreSQL is not supported by this build yet; use sqlite://PATH".into(),
            ));
        }
        let path = if lower.starts_with("sqlite://") {
            &url_or_path["sqlite://".len()..]
        } else if lower.starts_with("sqlite:") {
            &url_or_path["sqlite:".len()..]
        } else if let Some((scheme, _)) = url_or_path.split_once("://") {
            return Err(StoreError::Unsupported(format!(
                "database URL scheme {scheme:?}; use sqlite://PATH or a file path"
            )));
        } else {
            url_or_path
        };
        if path.is_empty() {
            return Err(StoreError::Unsupported(format!(
                "database location {url_or_path:?} names no file"
            )));
        }
        Store::open_sqlite(Path::new(path), SqliteOptions::default())
    }

    /// Commits the message, its ACK and its queue entries in one transaction, or
    /// recognises a retransmission (see [`InboundRecord::dedup_window`]). When this
    /// returns `Stored`, the message is durable and its ACK may be sent.
    pub async fn record_inbound(&self, rec: InboundRecord) -> Result<InboundOutcome, StoreError> {
        dispatch!(self.record_inbound(rec))
    }

    /// Stores the reply and final status of a message whose ACK is sent only after
    /// its destinations ("ACK after destinations"). `NotFound` for an unknown id.
    pub async fn set_ack(
        &self,
        message_id: i64,
        status: MessageStatus,
        ack: Option<Vec<u8>>,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        dispatch!(self.set_ack(message_id, status, ack, error))
    }

    /// Changes a message's status (and error text). `NotFound` for an unknown id.
    pub async fn set_status(
        &self,
        message_id: i64,
        status: MessageStatus,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        dispatch!(self.set_status(message_id, status, error))
    }

    /// Pending (queued or retrying) deliveries for one destination, oldest first (by
    /// id), at most `limit`. Includes ones whose `next_attempt_at` is in the future:
    /// the caller waits for the head, which keeps delivery ordered.
    pub async fn pending_deliveries(
        &self,
        destination: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self.pending_deliveries(destination, limit))
    }

    /// Marks a delivery sent at `at` (attempts + 1), keeping the destination's reply.
    pub async fn delivery_sent(
        &self,
        id: i64,
        at: Millis,
        response: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        dispatch!(self.delivery_sent(id, at, response))
    }

    /// Records a failed attempt (attempts + 1). `retry_at = Some(t)`: state
    /// `retrying`, next attempt at `t`. `None`: state `failed`, permanently, until
    /// an operator requeues it.
    pub async fn delivery_failed(
        &self,
        id: i64,
        at: Millis,
        error: &str,
        response: Option<Vec<u8>>,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        dispatch!(self.delivery_failed(id, at, error, response, retry_at))
    }

    /// Puts a delivery back in its queue (the dashboard's "resend"): state `queued`,
    /// due at `at`, attempts reset to 0. It keeps its id, so it takes its original
    /// place in the destination's order.
    pub async fn requeue_delivery(&self, id: i64, at: Millis) -> Result<(), StoreError> {
        dispatch!(self.requeue_delivery(id, at))
    }

    /// Every delivery of one message, in creation order.
    pub async fn deliveries_for_message(
        &self,
        message_id: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self.deliveries_for_message(message_id))
    }

    /// One delivery by id.
    pub async fn get_delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        dispatch!(self.get_delivery(id))
    }

    /// How many deliveries a destination still owes, and since when.
    pub async fn queue_depth(&self, destination: &str) -> Result<QueueDepth, StoreError> {
        dispatch!(self.queue_depth(destination))
    }

    /// One message, only if it belongs to `org`.
    pub async fn get_message(
        &self,
        org: &str,
        id: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        dispatch!(self.get_message(org, id))
    }

    /// Messages of `q.org` matching the filters, newest (highest id) first.
    pub async fn find_messages(&self, q: MessageQuery) -> Result<Vec<StoredMessage>, StoreError> {
        dispatch!(self.find_messages(q))
    }

    /// Number of messages of `org`, optionally in one channel.
    /// Per channel, among the newest `recent` messages of `org`: counts, the
    /// newest time, whether the newest failed and the newest error (for the
    /// dashboard's overview; no message body is read).
    pub async fn channel_activity(
        &self,
        org: &str,
        recent: usize,
    ) -> Result<Vec<ChannelActivity>, StoreError> {
        dispatch!(self.channel_activity(org, recent))
    }

    /// Messages of `org` received or sent since `since`, counted per
    /// `bucket_ms` window and direction, oldest window first (windows without
    /// messages are absent). For the dashboard's traffic over time.
    pub async fn message_traffic(
        &self,
        org: &str,
        since: Millis,
        bucket_ms: Millis,
    ) -> Result<Vec<TrafficBucket>, StoreError> {
        dispatch!(self.message_traffic(org, since, bucket_ms))
    }

    pub async fn count_messages(
        &self,
        org: &str,
        channel: Option<&str>,
    ) -> Result<u64, StoreError> {
        dispatch!(self.count_messages(org, channel))
    }

    /// Retention: deletes messages received before `before`, with their finished
    /// deliveries, `batch` messages per step; each step is one writer operation so
    /// normal traffic commits in between. Messages that still have a queued or
    /// retrying delivery are kept. Returns the number of messages deleted.
    pub async fn prune(&self, before: Millis, batch: usize) -> Result<u64, StoreError> {
        dispatch!(self.prune(before, batch))
    }

    // ------------------------------------------------------------ worklist

    /// The undeleted appointment of `org` with this order key (placer number
    /// first, then filler number), e.g. to check a cancel before storing it.
    pub async fn find_appointment(
        &self,
        org: &str,
        key: &OrderKey,
    ) -> Result<Option<Appointment>, StoreError> {
        dispatch!(self.find_appointment(org, key))
    }

    /// One appointment of `org` with its patient; `None` if absent, deleted or
    /// of another organisation.
    pub async fn get_appointment(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<(Appointment, Patient)>, StoreError> {
        dispatch!(self.get_appointment(org, id))
    }

    /// A device group's worklist: its scheduled, undeleted appointments with
    /// their patients, by `scheduled_at` (none first) then id.
    pub async fn worklist(
        &self,
        org: &str,
        group: &str,
        limit: usize,
    ) -> Result<Vec<(Appointment, Patient)>, StoreError> {
        dispatch!(self.worklist(org, group, limit))
    }

    /// Appointments (any status, never deleted ones) matching `q`, by
    /// `scheduled_at` then id.
    pub async fn list_appointments(
        &self,
        q: AppointmentQuery,
    ) -> Result<Vec<(Appointment, Patient)>, StoreError> {
        dispatch!(self.list_appointments(q))
    }

    /// Soft delete (the dashboard's "delete appointment"): hidden from the
    /// worklist, lists and order-key look-ups from then on; a later order with
    /// the same key creates a new appointment. `NotFound` if absent or already
    /// deleted.
    pub async fn delete_appointment(&self, org: &str, id: &str) -> Result<(), StoreError> {
        let at = now();
        dispatch!(self.delete_appointment(org, id, at))
    }

    /// One patient of `org`.
    pub async fn get_patient(&self, org: &str, id: &str) -> Result<Option<Patient>, StoreError> {
        dispatch!(self.get_patient(org, id))
    }

    /// Patients of `org` by id.
    pub async fn list_patients(
        &self,
        org: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Patient>, StoreError> {
        dispatch!(self.list_patients(org, limit, offset))
    }

    // ------------------------------------------------------------ groups, devices

    /// A new device group; `Conflict` if the name is taken in `org`.
    pub async fn create_group(&self, org: &str, name: &str) -> Result<DeviceGroup, StoreError> {
        let at = now();
        dispatch!(self.create_group(org, name, at))
    }

    /// The groups of `org` by name, with their device and open-appointment counts.
    pub async fn list_groups(&self, org: &str) -> Result<Vec<GroupInfo>, StoreError> {
        dispatch!(self.list_groups(org))
    }

    /// Renames a group, moving its devices and its appointments along.
    /// `NotFound` if `from` does not exist, `Conflict` if `to` does.
    pub async fn rename_group(&self, org: &str, from: &str, to: &str) -> Result<(), StoreError> {
        dispatch!(self.rename_group(org, from, to))
    }

    /// Deletes an empty group (its appointments keep the name). `NotFound`, or
    /// `Conflict` while it still has devices.
    pub async fn delete_group(&self, org: &str, name: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_group(org, name))
    }

    /// Registers a device in `group` (created if missing). `token_hash` is
    /// computed by the caller (SHA-256 hex of the token); `Conflict` if in use.
    pub async fn create_device(
        &self,
        org: &str,
        name: &str,
        group: &str,
        token_hash: &str,
    ) -> Result<Device, StoreError> {
        let at = now();
        dispatch!(self.create_device(org, name, group, token_hash, at))
    }

    /// The devices of `org` by id.
    pub async fn list_devices(&self, org: &str) -> Result<Vec<Device>, StoreError> {
        dispatch!(self.list_devices(org))
    }

    /// One device of `org`.
    pub async fn get_device(&self, org: &str, id: &str) -> Result<Option<Device>, StoreError> {
        dispatch!(self.get_device(org, id))
    }

    /// `NotFound` unless the device exists in `org`.
    pub async fn rename_device(&self, org: &str, id: &str, name: &str) -> Result<(), StoreError> {
        dispatch!(self.rename_device(org, id, name))
    }

    /// Moves a device to `group` (created if missing). `NotFound` unless the
    /// device exists in `org`.
    pub async fn move_device(&self, org: &str, id: &str, group: &str) -> Result<(), StoreError> {
        let at = now();
        dispatch!(self.move_device(org, id, group, at))
    }

    /// `NotFound` unless the device exists in `org`.
    pub async fn delete_device(&self, org: &str, id: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_device(org, id))
    }

    /// Replaces a device's token hash: the old token stops working at once.
    /// `NotFound` unless the device exists in `org`; `Conflict` if the hash is in use.
    pub async fn rotate_device_token(
        &self,
        org: &str,
        id: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self.rotate_device_token(org, id, new_hash))
    }

    /// The device a token belongs to (its `org` is the token's organisation).
    pub async fn device_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<Device>, StoreError> {
        dispatch!(self.device_by_token_hash(token_hash))
    }

    /// Records that a device was seen at `at`, at most once per 30 s: inside
    /// that interval it only reads and returns `false` (no write, no commit).
    /// `NotFound` for an unknown id.
    pub async fn touch_device(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        dispatch!(self.touch_device(id, at))
    }

    // ------------------------------------------------------------ API tokens

    /// Stores an API token's hash with its role (`admin`, …). `Conflict` if the
    /// hash is in use.
    pub async fn create_api_token(
        &self,
        org: &str,
        role: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<ApiToken, StoreError> {
        let at = now();
        dispatch!(self.create_api_token(org, role, name, token_hash, at))
    }

    /// The token with this hash (its `org` is the token's organisation).
    pub async fn api_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiToken>, StoreError> {
        dispatch!(self.api_token_by_hash(token_hash))
    }

    /// The tokens of `org` by id (hashes are never returned).
    pub async fn list_api_tokens(&self, org: &str) -> Result<Vec<ApiToken>, StoreError> {
        dispatch!(self.list_api_tokens(org))
    }

    /// `NotFound` unless the token exists in `org`.
    pub async fn delete_api_token(&self, org: &str, id: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_api_token(org, id))
    }

    /// Records a token's use, throttled like [`Store::touch_device`].
    pub async fn touch_api_token(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        dispatch!(self.touch_api_token(id, at))
    }

    // ------------------------------------------------------------ OAuth 2.0 clients

    /// Registers an OAuth 2.0 client of `org` that may ask for `scopes` (each an
    /// RFC 6749 scope token, else `Invalid`; repeats are dropped). Returns it
    /// with its secret, which is shown once: only its argon2id hash is stored
    /// (hashed on a blocking thread; see [`oauth`]).
    pub async fn create_oauth_client(
        &self,
        org: &str,
        name: &str,
        scopes: &[String],
    ) -> Result<NewOAuthClient, StoreError> {
        let scopes = oauth::normalize_scopes(scopes).map_err(StoreError::Invalid)?;
        if name.trim().is_empty() {
            return Err(StoreError::Invalid("the client name is empty".into()));
        }
        let client_secret = oauth::new_client_secret()?;
        let secret_hash = oauth::hash_secret(client_secret.clone()).await?;
        let client = OAuthClient {
            id: oauth::new_client_id()?,
            org: org.to_owned(),
            name: name.to_owned(),
            scopes,
            created_at: now(),
            disabled: false,
        };
        let stored = client.clone();
        dispatch!(self.create_oauth_client(stored, secret_hash))?;
        Ok(NewOAuthClient {
            client,
            client_secret,
        })
    }

    /// The client with this `client_id`, of any organisation (the id
    /// determines it), disabled or not.
    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError> {
        dispatch!(self.oauth_client(client_id))
    }

    /// Client authentication: the client, if it exists, is enabled and
    /// `secret` is its secret; `None` otherwise (which of these is not said).
    /// The argon2 verification runs on a blocking thread, at most
    /// [`oauth::MAX_CONCURRENT_HASHES`] at once; it takes tens of
    /// milliseconds by design, so rate-limit callers before calling this.
    pub async fn verify_client_secret(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<OAuthClient>, StoreError> {
        let Some((client, phc)) = dispatch!(self.oauth_client_with_secret(client_id))? else {
            return Ok(None);
        };
        if client.disabled {
            return Ok(None);
        }
        let ok = oauth::verify_secret(secret.to_owned(), phc).await?;
        Ok(ok.then_some(client))
    }

    /// The clients of `org`, oldest first (secrets are never returned).
    pub async fn list_oauth_clients(&self, org: &str) -> Result<Vec<OAuthClient>, StoreError> {
        dispatch!(self.list_oauth_clients(org))
    }

    /// Deletes a client of `org` and every token issued to it (they stop
    /// working at once). `NotFound` unless it exists in `org`.
    pub async fn delete_oauth_client(&self, org: &str, client_id: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_oauth_client(org, client_id))
    }

    /// Disables (or enables again) a client of `org`: while disabled it gets no
    /// tokens and its tokens are not found. `NotFound` unless it exists in `org`.
    pub async fn set_oauth_client_disabled(
        &self,
        org: &str,
        client_id: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        dispatch!(self.set_oauth_client_disabled(org, client_id, disabled))
    }

    /// Issues an access token to an enabled client of `org` for `scopes`
    /// (which must be among the client's: else `Invalid`), valid for `ttl`
    /// from now. Only its SHA-256 is stored; the token is in the result, once.
    /// `NotFound` if the client does not exist in `org` or is disabled.
    pub async fn issue_oauth_token(
        &self,
        client_id: &str,
        org: &str,
        scopes: &[String],
        ttl: std::time::Duration,
    ) -> Result<IssuedOAuthToken, StoreError> {
        let scopes = oauth::normalize_scopes(scopes).map_err(StoreError::Invalid)?;
        let access_token = oauth::new_access_token()?;
        let created_at = now();
        let token = OAuthToken {
            client_id: client_id.to_owned(),
            org: org.to_owned(),
            scopes,
            created_at,
            expires_at: created_at.saturating_add(oauth::ttl_millis(ttl)),
        };
        let hash = oauth::token_hash(&access_token);
        dispatch!(self.insert_oauth_token(hash, token.clone()))?;
        Ok(IssuedOAuthToken {
            access_token,
            token,
        })
    }

    /// The grant of the access token whose SHA-256 hex
    /// ([`oauth::token_hash`]) is `token_hash`, **expired or not** (check
    /// [`OAuthToken::is_expired`]); `None` if unknown, pruned, or its client was
    /// deleted or is disabled. Its `org` is the token's organisation.
    pub async fn oauth_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<OAuthToken>, StoreError> {
        dispatch!(self.oauth_token_by_hash(token_hash))
    }

    /// Deletes the access tokens expired at `now` (epoch ms), in batches of one
    /// writer operation each; returns how many.
    pub async fn prune_oauth_tokens(&self, now: Millis) -> Result<u64, StoreError> {
        dispatch!(self.prune_oauth_tokens(now))
    }

    // ------------------------------------------------------------ FHIR R4

    /// One patient of `org` with its version and last-update time.
    pub async fn get_patient_versioned(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Versioned<Patient>>, StoreError> {
        dispatch!(self.get_patient_versioned(org, id))
    }

    /// vread: the given version (current row or history); None if patient or version unknown
    pub async fn patient_version(
        &self,
        org: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<Versioned<Patient>>, StoreError> {
        dispatch!(self.patient_version(org, id, version))
    }

    /// every version, newest first (current first), paged; with the number of
    /// versions (0 for an unknown patient)
    pub async fn patient_history(
        &self,
        org: &str,
        id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Versioned<Patient>>, u64), StoreError> {
        dispatch!(self.patient_history(org, id, limit, offset))
    }

    /// Patients matching `q` (see [`PatientSearch`]): one page and the number
    /// of all matches.
    pub async fn search_patients(
        &self,
        q: PatientSearch,
    ) -> Result<(Vec<Versioned<Patient>>, u64), StoreError> {
        dispatch!(self.search_patients(q))
    }

    /// new patient (its `id` ignored); StoreError::Conflict naming the identifier when one is
    /// owned by another patient of org. Its identifiers become its own (they find it in
    /// identifier searches and HL7 matching); `Invalid` with more than 64 of them.
    pub async fn create_patient(
        &self,
        org: &str,
        patient: Patient,
    ) -> Result<Versioned<Patient>, StoreError> {
        let at = now();
        dispatch!(self.create_patient(org, patient, at))
    }

    /// full replace (not merge) of an existing patient; NotFound; StoreError::VersionConflict
    /// { current } when if_match is Some(v) and v != current version; identifier rows: add the
    /// new ones (Conflict if owned by another patient), drop the ones this patient owned and
    /// no longer lists. Returns the new version (the same one when nothing changed).
    pub async fn update_patient(
        &self,
        org: &str,
        id: &str,
        patient: Patient,
        if_match: Option<i64>,
    ) -> Result<Versioned<Patient>, StoreError> {
        let at = now();
        dispatch!(self.update_patient(org, id, patient, if_match, at))
    }

    /// appointment with its patient, INCLUDING soft-deleted ones (deleted_at set) so the
    /// caller can answer 410 Gone
    pub async fn get_appointment_versioned(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<(Versioned<Appointment>, Patient)>, StoreError> {
        dispatch!(self.get_appointment_versioned(org, id))
    }

    /// Undeleted appointments matching `q` (see [`AppointmentSearch`]) with
    /// their patients: one page and the number of all matches.
    pub async fn search_appointments(
        &self,
        q: AppointmentSearch,
    ) -> Result<(Vec<(Versioned<Appointment>, Patient)>, u64), StoreError> {
        dispatch!(self.search_appointments(q))
    }

    /// an update through FHIR: `appointment.order` and `.visit` merged into the stored ones
    /// exactly like an HL7 update (present fields overwrite), status and scheduled_at set from
    /// `appointment` (cancel: cancelled_at = now; leaving `cancelled` clears it), a non-empty
    /// `appointment.group` moves it, the patient_id set to `patient_id` (must exist in org,
    /// else NotFound); NotFound if missing or deleted; VersionConflict { current } on a stale
    /// if_match. Returns the new state.
    pub async fn update_appointment_fhir(
        &self,
        org: &str,
        id: &str,
        patient_id: &str,
        appointment: Appointment,
        if_match: Option<i64>,
    ) -> Result<Versioned<Appointment>, StoreError> {
        let at = now();
        dispatch!(self.update_appointment_fhir(org, id, patient_id, appointment, if_match, at))
    }

    /// measurement rows without PDFs (like list_measurements) plus the appointment's patient id
    pub async fn search_measurements(
        &self,
        q: MeasurementSearch,
    ) -> Result<(Vec<(StoredMeasurement, String)>, u64), StoreError> {
        dispatch!(self.search_measurements(q))
    }

    /// Stores an imaging study (version 1, created now). `patient_id` must
    /// exist in `s.org`, else `NotFound`.
    pub async fn create_study(&self, s: NewStudy) -> Result<Versioned<StoredStudy>, StoreError> {
        let at = now();
        dispatch!(self.create_study(s, at))
    }

    /// One imaging study of `org`.
    pub async fn get_study(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Versioned<StoredStudy>>, StoreError> {
        dispatch!(self.get_study(org, id))
    }

    /// Imaging studies matching `q` (see [`StudySearch`]): one page and the
    /// number of all matches.
    pub async fn search_studies(
        &self,
        q: StudySearch,
    ) -> Result<(Vec<Versioned<StoredStudy>>, u64), StoreError> {
        dispatch!(self.search_studies(q))
    }

    // ------------------------------------------------------------ Direct messaging

    /// Registers a sending edge of `org` (created now); `secret_hash` is the
    /// caller's hash of its HTTP Basic secret. `Conflict` if the name is taken
    /// (in any organisation: the name is the login), `Invalid` if it is empty.
    pub async fn create_direct_edge(
        &self,
        name: &str,
        org: &str,
        secret_hash: &str,
    ) -> Result<DirectEdge, StoreError> {
        dispatch!(self.create_direct_edge(name, org, secret_hash, now()))
    }

    /// The edge named `name`, of any organisation, with its secret hash (for
    /// authentication).
    pub async fn direct_edge(
        &self,
        name: &str,
    ) -> Result<Option<(DirectEdge, String)>, StoreError> {
        dispatch!(self.direct_edge(name))
    }

    /// The edges of `org`, by name.
    pub async fn list_direct_edges(&self, org: &str) -> Result<Vec<DirectEdge>, StoreError> {
        dispatch!(self.list_direct_edges(org))
    }

    /// Deletes an edge of `org`; its addresses stay, with `edge` cleared.
    /// `NotFound` unless it exists in `org`.
    pub async fn delete_direct_edge(&self, org: &str, name: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_direct_edge(org, name))
    }

    /// insert or replace (address lowercased); the edge, if any, must exist in the same org (else NotFound); an address of another org is a Conflict
    ///
    /// A replaced address keeps its original `created_at`; the stored address
    /// is returned. An empty address is `Invalid`.
    pub async fn put_direct_address(&self, a: DirectAddress) -> Result<DirectAddress, StoreError> {
        dispatch!(self.put_direct_address(a))
    }

    /// The address, of any organisation, compared case-insensitively.
    pub async fn direct_address(&self, address: &str) -> Result<Option<DirectAddress>, StoreError> {
        dispatch!(self.direct_address(address))
    }

    /// The addresses of `org`, in address order.
    pub async fn list_direct_addresses(&self, org: &str) -> Result<Vec<DirectAddress>, StoreError> {
        dispatch!(self.list_direct_addresses(org))
    }

    /// Deletes an address of `org` (case-insensitive). `NotFound` unless it
    /// exists in `org`.
    pub async fn delete_direct_address(&self, org: &str, address: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_direct_address(org, address))
    }

    /// One transaction: the message, its recipients, its notifications. An existing (sender, message_id) → Existing, nothing written.
    ///
    /// Recipients start with `attempts` 0 and, like the notifications, are due
    /// at `created_at`. A recipient listed twice is `Invalid`.
    pub async fn submit_direct_message(
        &self,
        m: NewDirectMessage,
    ) -> Result<DirectSubmit, StoreError> {
        dispatch!(self.submit_direct_message(m))
    }

    /// The message (with body) by sender + message id, with its recipients (in insertion order).
    pub async fn direct_message(
        &self,
        sender: &str,
        message_id: &str,
    ) -> Result<Option<(DirectMessage, Vec<DirectRecipient>)>, StoreError> {
        dispatch!(self.direct_message(sender, message_id))
    }

    /// The message with this id (with body), with its recipients in insertion
    /// order.
    pub async fn direct_message_by_id(
        &self,
        id: i64,
    ) -> Result<Option<(DirectMessage, Vec<DirectRecipient>)>, StoreError> {
        dispatch!(self.direct_message_by_id(id))
    }

    /// Recipients whose status is PROCESSED or SMTPINIT and next_attempt_at <= now, oldest first, with their message (body included; the same
    /// message once per recipient is fine), at most `limit`.
    ///
    /// "Oldest first" is by `next_attempt_at`, then message id, then the
    /// recipient's place in the submitted list.
    pub async fn due_direct_recipients(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<(DirectMessage, DirectRecipient)>, StoreError> {
        dispatch!(self.due_direct_recipients(now, limit))
    }

    /// The earliest next_attempt_at of a PROCESSED/SMTPINIT recipient (for the worker to sleep until), None if none.
    pub async fn next_direct_due(&self) -> Result<Option<Millis>, StoreError> {
        dispatch!(self.next_direct_due())
    }

    /// Moves a recipient to `status` only if its current status is one of `from` (the caller's lifecycle rules); sets failure_reason = reason,
    /// updated_at = at, and next_attempt_at = next_attempt_at when given; when the move happens, queues `notification` (if Some) in the same
    /// transaction. Returns whether it moved. NotFound for an unknown (message, recipient).
    ///
    /// The notification is due at `at`. `attempts` and `last_error` are left
    /// as they are.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_direct_status(
        &self,
        message: i64,
        recipient: &str,
        from: &[&str],
        status: &str,
        reason: Option<&str>,
        next_attempt_at: Option<Millis>,
        notification: Option<NewNotification>,
        at: Millis,
    ) -> Result<bool, StoreError> {
        dispatch!(self.set_direct_status(
            message,
            recipient,
            from,
            status,
            reason,
            next_attempt_at,
            notification,
            at
        ))
    }

    /// A failed attempt: attempts += 1, last_error, next_attempt_at; status unchanged.
    ///
    /// Also sets `updated_at = at`. `NotFound` for an unknown (message,
    /// recipient).
    pub async fn direct_retry_later(
        &self,
        message: i64,
        recipient: &str,
        next_attempt_at: Millis,
        last_error: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        dispatch!(self.direct_retry_later(message, recipient, next_attempt_at, last_error, at))
    }

    /// Pending notifications due at `now`, by id (= creation order), at most `limit`.
    pub async fn due_direct_notifications(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<DirectNotification>, StoreError> {
        dispatch!(self.due_direct_notifications(now, limit))
    }

    /// The earliest `next_attempt_at` of a pending notification, `None` if
    /// there is none.
    pub async fn next_direct_notification_due(&self) -> Result<Option<Millis>, StoreError> {
        dispatch!(self.next_direct_notification_due())
    }

    /// Marks a pending notification `sent`. This and the two below change
    /// only a pending notification (one already sent or failed stays as it
    /// is, and the call is `Ok`); `NotFound` for an unknown id.
    pub async fn direct_notification_sent(&self, id: i64, at: Millis) -> Result<(), StoreError> {
        dispatch!(self.direct_notification_sent(id, at))
    }

    /// A failed attempt to be retried: `attempts += 1`, `last_error`,
    /// `next_attempt_at`; it stays pending.
    pub async fn direct_notification_retry(
        &self,
        id: i64,
        next_attempt_at: Millis,
        error: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        dispatch!(self.direct_notification_retry(id, next_attempt_at, error, at))
    }

    /// The last attempt failed: state `failed`, `attempts += 1` (it was an
    /// attempt too), `last_error`.
    pub async fn direct_notification_failed(
        &self,
        id: i64,
        error: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        dispatch!(self.direct_notification_failed(id, error, at))
    }

    /// Notifications of a message, by id (for tests and the admin view).
    pub async fn direct_notifications(
        &self,
        message: i64,
    ) -> Result<Vec<DirectNotification>, StoreError> {
        dispatch!(self.direct_notifications(message))
    }

    // ------------------------------------------------------------ dashboard users

    /// Conflict if the name is taken; Invalid for a role other than admin|operator|viewer or an empty name.
    ///
    /// Created now. The name is the login, unique across organisations (and
    /// compared exactly: `Alice` and `alice` are two names).
    pub async fn create_user(
        &self,
        org: &str,
        name: &str,
        role: &str,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        dispatch!(self.create_user(org, name, role, password_hash, now()))
    }

    /// With its password hash.
    ///
    /// Of any organisation: the name determines it (for login).
    pub async fn user_by_name(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        dispatch!(self.user_by_name(name))
    }

    /// The users of `org`, by name.
    pub async fn list_users(&self, org: &str) -> Result<Vec<User>, StoreError> {
        dispatch!(self.list_users(org))
    }

    /// A wrong password: failed_logins += 1; when it reaches `lock_after`, locked_until = at + lock_for_ms (and failed_logins resets to 0). Returns the user after the change. NotFound for an unknown id.
    ///
    /// `lock_after` 0 never locks. The count is not checked against
    /// `locked_until`: whether a locked user's attempt counts is the caller's
    /// choice.
    pub async fn record_login_failure(
        &self,
        user_id: &str,
        at: Millis,
        lock_after: u32,
        lock_for_ms: Millis,
    ) -> Result<User, StoreError> {
        dispatch!(self.record_login_failure(user_id, at, lock_after, lock_for_ms))
    }

    /// A good password: failed_logins = 0, locked_until = NULL, last_login_at = at.
    ///
    /// `NotFound` for an unknown id.
    pub async fn record_login_success(&self, user_id: &str, at: Millis) -> Result<(), StoreError> {
        dispatch!(self.record_login_success(user_id, at))
    }

    /// Stores a session (the caller's hash of its token). `NotFound` for an
    /// unknown user, `Conflict` for a token hash in use.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf: &str,
        created_at: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        dispatch!(self.create_session(token_hash, user_id, csrf, created_at, expires_at))
    }

    /// The session with its user, None if unknown or expired at `now`.
    ///
    /// Expired means `expires_at <= now`. Deleting a user deletes their
    /// sessions.
    pub async fn session_by_hash(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<Session>, StoreError> {
        dispatch!(self.session_by_hash(token_hash, now))
    }

    /// Deletes a session (logout). An unknown hash is `Ok`: the session is
    /// gone either way.
    /// Points a session at `org` (a user of the whole installation switching
    /// organisations). `NotFound` for an unknown session.
    pub async fn set_session_org(&self, token_hash: &str, org: &str) -> Result<(), StoreError> {
        dispatch!(self.set_session_org(token_hash, org))
    }

    /// The organisations this installation knows: those with users, device
    /// groups or devices.
    pub async fn list_orgs(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self.list_orgs())
    }

    /// Remembers the run state an operator gave `channel` (one of
    /// [`CHANNEL_STATES`], else `Invalid`), so the next start keeps it.
    pub async fn set_channel_state(
        &self,
        channel: &str,
        state: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        let at = now();
        dispatch!(self.set_channel_state(channel, state, by, at))
    }

    /// Every remembered channel state, by channel name.
    pub async fn channel_states(&self) -> Result<Vec<ChannelState>, StoreError> {
        dispatch!(self.channel_states())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_session(token_hash))
    }

    /// Deletes sessions expired at `now`; returns how many.
    ///
    /// In batches, each its own writer op, like [`Store::prune_oauth_tokens`].
    pub async fn prune_sessions(&self, now: Millis) -> Result<u64, StoreError> {
        dispatch!(self.prune_sessions(now))
    }

    /// Appends to the audit log (at = the system clock).
    pub async fn audit(
        &self,
        org: &str,
        actor: &str,
        action: &str,
        subject: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let entry = AuditEntry {
            id: 0,
            org: org.to_owned(),
            at: now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            detail: detail.map(str::to_owned),
        };
        dispatch!(self.audit(entry))
    }

    /// Newest first; `before_id` pages.
    ///
    /// At most `limit` entries of `org` with `id < before_id` (all when
    /// `None`); the next page starts before the last id returned.
    pub async fn list_audit(
        &self,
        org: &str,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        dispatch!(self.list_audit(org, limit, before_id))
    }

    // ------------------------------------------------------------ measurements

    /// In one transaction: stores the measurement (created now), marks its
    /// appointment `completed` and, when given, stores the outbound message
    /// (direction `out`, status `accepted`) with its queue entries. The
    /// appointment must exist, undeleted, in `m.org`, else `NotFound` and nothing
    /// is written; an outbound message of another organisation is a `Conflict`.
    pub async fn record_measurement(
        &self,
        m: Measurement,
        outbound: Option<OutboundMessage>,
    ) -> Result<MeasurementIds, StoreError> {
        let at = now();
        dispatch!(self.record_measurement(m, at, outbound))
    }

    /// One measurement of `org` with its PDF and delivery states.
    pub async fn get_measurement(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<StoredMeasurement>, StoreError> {
        dispatch!(self.get_measurement(org, id))
    }

    /// Measurements of `org` (optionally of one appointment), newest first,
    /// without their PDFs, with delivery states.
    pub async fn list_measurements(
        &self,
        org: &str,
        appointment_id: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<StoredMeasurement>, StoreError> {
        dispatch!(self.list_measurements(org, appointment_id, limit, offset))
    }

    /// The PDF report of a measurement of `org`; `None` if there is none.
    pub async fn measurement_pdf(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.measurement_pdf(org, id))
    }

    /// The PDF report of the measurement whose outbound result message is
    /// `message_id` (a file destination writes it beside the result file).
    pub async fn pdf_for_message(&self, message_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.pdf_for_message(message_id))
    }

    /// Requeues every delivery of the measurement's outbound message (due at
    /// `at`, attempts reset) and returns their ids. `NotFound` if the
    /// measurement is not in `org` or has no delivery.
    pub async fn resend_measurement(
        &self,
        org: &str,
        id: &str,
        at: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        dispatch!(self.resend_measurement(org, id, at))
    }

    /// Waits until every operation sent so far is committed, checkpoints the WAL
    /// (TRUNCATE) and stops the writer. Afterwards every call, including `close`,
    /// returns [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        dispatch!(self.close())
    }

    /// Group-commit counters since open.
    pub fn metrics_snapshot(&self) -> StoreMetrics {
        match &*self.backend {
            Backend::Sqlite(b) => b.metrics(),
        }
    }
}
