//! The store's types for the web dashboard: users who log in with a password,
//! their sessions, the audit log of what they did and the run states they gave
//! channels.
//!
//! The store never sees a password or a session token: the caller hashes them
//! (the password hash is returned only by `user_by_name`, for verification).
//! The login policy (how many failures lock an account, for how long) is the
//! caller's; the store counts and applies what it is told.

use crate::types::Millis;

/// The roles a user may have, as stored (the schema's `CHECK` allows no other).
pub const USER_ROLES: [&str; 3] = ["admin", "operator", "viewer"];

/// A dashboard user. `id` is the row id as decimal text, like the worklist's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub org: String,
    /// The login name, unique across organisations.
    pub name: String,
    /// One of [`USER_ROLES`].
    pub role: String,
    pub created_at: Millis,
    /// Wrong passwords since the last good login or lock.
    pub failed_logins: u32,
    /// Logins are refused before this time.
    pub locked_until: Option<Millis>,
    pub last_login_at: Option<Millis>,
}

/// A login session with its user (as of the look-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user: User,
    /// The token the dashboard's forms must echo.
    pub csrf: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// The organisation a user of the whole installation (org `*`) is
    /// looking at; `None` for everyone else.
    pub org: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Grows with every entry, so it orders the log and pages it.
    pub id: i64,
    pub org: String,
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: Option<String>,
}

/// The run states a channel can be given (`Store::set_channel_state`).
pub const CHANNEL_STATES: [&str; 3] = ["running", "paused", "stopped"];

/// The run state an operator last gave a channel; channels without one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    pub channel: String,
    /// One of [`CHANNEL_STATES`].
    pub state: String,
    pub changed_at: Millis,
    /// Who set it (a user name).
    pub changed_by: String,
}
