//! Channel configuration as it appears under `[[channel]]` in the TOML file.
//!
//! These types deserialize directly from the configuration so that there is one
//! definition of every key; the binary only resolves `env:` secrets and file paths
//! before handing them over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use medrelay_store::DEFAULT_ORG;

fn default_org() -> String {
    DEFAULT_ORG.to_string()
}

/// One channel: a source, optional filter and transformer steps, destinations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name, `[a-z0-9-]`; appears in metrics, logs and the store.
    pub name: String,
    #[serde(default = "default_org")]
    pub org: String,
    pub source: SourceConfig,
    /// When the sender gets its ACK: after the message is committed (default), or
    /// after every destination has answered.
    #[serde(default)]
    pub ack: AckMode,
    /// How long an `after-destinations` ACK waits before answering AE.
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Retransmissions (same MSH-3, MSH-4, MSH-10) inside this window are answered
    /// with the original ACK and not processed again. `0s` disables.
    #[serde(default = "default_dedup_window", with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Structural validation of known message types; failures get AE with ERR.
    #[serde(default = "default_true")]
    pub validate: bool,
    #[serde(default)]
    pub filter: Option<FilterConfig>,
    #[serde(default)]
    pub transform: Vec<TransformStep>,
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
}

impl ChannelConfig {
    /// A channel with every optional key at its default.
    pub fn new(name: &str, source: SourceConfig) -> Self {
        ChannelConfig {
            name: name.to_string(),
            org: default_org(),
            source,
            ack: AckMode::default(),
            ack_wait: default_ack_wait(),
            dedup_window: default_dedup_window(),
            validate: true,
            filter: None,
            transform: Vec::new(),
            destinations: Vec::new(),
        }
    }
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_dedup_window() -> Duration {
    Duration::from_secs(600)
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckMode {
    #[default]
    AfterStore,
    AfterDestinations,
    /// Bridging: the destination's first answer decides the ACK. Taken → AA;
    /// refused for good (an HTTP 4xx, an AR) → AR with the refusal; not reachable
    /// or not answering within `ack_wait` → AA, because the message is committed
    /// and stays queued.
    FromDestination,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Address of the MLLP listener, e.g. `0.0.0.0:2575`.
    #[serde(default)]
    pub mllp: Option<SocketAddr>,
    /// Instead of a listener: HL7 messages fetched from an HTTP(S) endpoint.
    #[serde(default)]
    pub poll: Option<crate::http_poll_source::HttpPollConfig>,
    /// IP allow-list in CIDR notation; empty means any peer.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub tls: Option<ServerTls>,
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl SourceConfig {
    pub fn mllp(addr: SocketAddr) -> Self {
        SourceConfig {
            mllp: Some(addr),
            poll: None,
            allow: Vec::new(),
            tls: None,
            max_frame: default_max_frame(),
            idle_timeout: default_idle(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_max_frame() -> usize {
    16 * 1024 * 1024
}
fn default_idle() -> Duration {
    Duration::from_secs(300)
}
fn default_max_connections() -> usize {
    256
}

/// TLS on a listener; `client_ca` turns on mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// TLS on a sender: the CA that signed the peer, optionally our client certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    pub ca: PathBuf,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Name to verify the server certificate against; defaults to the host part.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Which messages continue to the destinations. A message that does not pass is
/// stored with status `filtered` and still acknowledged with AA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// `ORM^O01`, `ADT^*` (any trigger) or `*`.
    #[serde(default)]
    pub message_types: Vec<String>,
    /// Field conditions that must all hold, e.g. `{ path = "MSH-5", equals = "PACS" }`.
    #[serde(default)]
    pub fields: Vec<FieldCondition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldCondition {
    pub path: String,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub one_of: Vec<String>,
    /// `true`: the field must be present and non-empty; `false`: it must be absent.
    #[serde(default)]
    pub present: Option<bool>,
}

/// Transformer steps, applied in order to the message before it is queued.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, untagged)]
pub enum TransformStep {
    /// `{ set = "MSH-5", value = "PACS" }`
    Set { set: String, value: String },
    /// `{ copy = "PID-3.1", to = "PID-2" }`
    Copy { copy: String, to: String },
    /// `{ clear = "PID-19" }` — empties the field.
    Clear { clear: String },
    /// `{ remove_segments = "NTE" }` — drops every segment with this id.
    RemoveSegments { remove_segments: String },
}

/// A destination and its delivery policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Unique within the channel; defaults to the connector type and position.
    #[serde(default)]
    pub name: Option<String>,
    /// MLLP peer `host:port`.
    #[serde(default)]
    pub mllp: Option<String>,
    #[serde(default)]
    pub tls: Option<ClientTls>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// An AE (or CE) from the peer is retried like a network error instead of
    /// failing the delivery for good.
    #[serde(default)]
    pub retry_on_ae: bool,
    /// The same for AR (or CR), which usually means "never send this again".
    #[serde(default)]
    pub retry_on_ar: bool,
    /// Folder to write each message to (written under a temporary name, then
    /// renamed): a path or an `ftp://`, `ftps://`, `sftp://` URL.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Credentials for a remote `file` folder.
    #[serde(default)]
    pub remote: FolderAccess,
    /// HTTP(S) address each message is sent to; `{message_id}`, `{delivery_id}`
    /// and `{control_id}` are filled in. `ack_timeout` limits the whole request,
    /// `tls` gives a CA and a client certificate.
    #[serde(default)]
    pub http: Option<String>,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Default by payload: HL7 `application/hl7-v2`, JSON `application/json`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `{ api_key = …, header = … }`, `{ basic = { user, password } }`,
    /// `{ bearer = … }`, `{ client_id = …, client_secret = … }`,
    /// `{ oauth2 = { token_url, client_id, client_secret, scope, audience } }`.
    #[serde(default)]
    pub auth: Option<crate::destination::http::HttpAuth>,
    /// Set by an integration whose EHR confirms results later (Best Practice).
    #[serde(skip)]
    pub confirm: Option<medrelay_worklist::json_map::AsyncResult>,
    /// File name pattern: `{control_id}`, `{message_id}`, `{delivery_id}`, `{channel}`,
    /// `{type}`, `{timestamp}`; for GDT results also `{receiver}`, `{sender}`, `{id}`.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_pattern() -> String {
    "{timestamp}-{message_id}.hl7".to_string()
}

/// Exponential backoff: `initial`, doubling per attempt, capped at `max`. A
/// delivery is retried until it succeeds unless `max_attempts` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(default = "default_initial", with = "humantime_serde")]
    pub initial: Duration,
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max: Duration,
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: default_initial(),
            max: default_max_backoff(),
            max_attempts: None,
        }
    }
}

fn default_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

impl RetryPolicy {
    /// Delay before attempt number `attempts + 1`, given `attempts` failures so far.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempts >= max)
    }
}

impl DestinationConfig {
    /// An MLLP destination with every optional key at its default.
    pub fn mllp(name: &str, addr: &str) -> Self {
        DestinationConfig {
            name: Some(name.to_string()),
            mllp: Some(addr.to_string()),
            tls: None,
            connect_timeout: default_connect_timeout(),
            ack_timeout: default_ack_timeout(),
            retry_on_ae: false,
            retry_on_ar: false,
            file: None,
            remote: FolderAccess::default(),
            http: None,
            method: None,
            headers: Default::default(),
            content_type: None,
            auth: None,
            confirm: None,
            pattern: default_pattern(),
            retry: RetryPolicy::default(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match (&self.mllp, &self.file, &self.http) {
            (Some(_), _, _) => "mllp",
            (None, Some(_), _) => "file",
            (None, None, Some(_)) => "http",
            _ => "none",
        }
    }

    /// The HTTP connector's settings, when this is an HTTP destination.
    pub fn http_config(&self) -> Option<crate::destination::http::HttpDestinationConfig> {
        use crate::destination::http::{HttpDestinationConfig, HttpTls};
        let url = self.http.as_ref()?;
        let mut h = HttpDestinationConfig::new(url);
        if let Some(m) = &self.method {
            h.method = m.clone();
        }
        h.headers = self.headers.clone();
        h.content_type = self.content_type.clone();
        h.auth = self.auth.clone();
        h.tls = self.tls.as_ref().map(|t| HttpTls {
            ca: Some(t.ca.clone()),
            cert: t.cert.clone(),
            key: t.key.clone(),
        });
        h.connect_timeout = self.connect_timeout;
        h.timeout = self.ack_timeout;
        Some(h)
    }
}

/// Errors found while checking a channel configuration, worded for the person who
/// wrote it.
pub fn check_channels(channels: &[ChannelConfig]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut addrs = std::collections::HashSet::new();
    for (i, ch) in channels.iter().enumerate() {
        let at = format!("channel #{} ({:?})", i + 1, ch.name);
        if !valid_name(&ch.name) {
            errors.push(format!(
                "{at}: name must be 1-64 characters of a-z, 0-9 and '-'"
            ));
        }
        if !names.insert(ch.name.clone()) {
            errors.push(format!("{at}: another channel has the same name"));
        }
        if !valid_name(&ch.org) {
            errors.push(format!(
                "{at}: org must be 1-64 characters of a-z, 0-9 and '-'"
            ));
        }
        match (ch.source.mllp, &ch.source.poll) {
            (Some(addr), None) => {
                if addr.port() != 0 && !addrs.insert(addr) {
                    errors.push(format!(
                        "{at}: source address {addr} is used by another channel"
                    ));
                }
            }
            (None, Some(poll)) => {
                if let Err(e) = crate::http_poll_source::check(poll) {
                    errors.push(format!("{at}: source.poll: {e}"));
                }
            }
            (Some(_), Some(_)) => errors.push(format!(
                "{at}: the source is either `mllp` (a listener) or `poll` (an HTTP endpoint), not both"
            )),
            (None, None) => errors.push(format!(
                "{at}: source needs `mllp = \"ADDR:PORT\"` or `poll = {{ url = \"https://…\" }}`"
            )),
        }
        for entry in &ch.source.allow {
            if mllp::AllowList::parse([entry.as_str()]).is_err() {
                errors.push(format!(
                    "{at}: allow entry {entry:?} is not an IP address or CIDR range"
                ));
            }
        }
        if ch.source.max_frame < 1024 {
            errors.push(format!(
                "{at}: source.max_frame must be at least 1024 bytes"
            ));
        }
        if let Some(filter) = &ch.filter {
            for cond in &filter.fields {
                if let Err(e) = cond.path.parse::<hl7v2::Path>() {
                    errors.push(format!("{at}: filter path {:?}: {e}", cond.path));
                }
            }
        }
        for step in &ch.transform {
            for path in step.paths() {
                if let Err(e) = path.parse::<hl7v2::Path>() {
                    errors.push(format!("{at}: transform path {path:?}: {e}"));
                }
            }
        }
        let mut dest_names = std::collections::HashSet::new();
        for (j, dest) in ch.destinations.iter().enumerate() {
            let name = crate::destination_name(dest, j);
            let at = format!("{at}, destination {name:?}");
            if !dest_names.insert(name.clone()) {
                errors.push(format!(
                    "{at}: another destination of this channel has the same name"
                ));
            }
            let kinds = [
                dest.mllp.is_some(),
                dest.file.is_some(),
                dest.http.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() > 1 {
                errors.push(format!(
                    "{at}: set exactly one of `mllp`, `file` or `http`, not several"
                ));
                continue;
            }
            if let Some(h) = dest.http_config() {
                if let Err(e) = crate::destination::http::HttpDestination::new(h) {
                    errors.push(format!("{at}: {e}"));
                }
                continue;
            }
            match (&dest.mllp, &dest.file) {
                (Some(_), Some(_)) => {}
                (None, None) => errors.push(format!("{at}: set one of `mllp`, `file` or `http`")),
                (Some(addr), None) => {
                    if addr
                        .rsplit_once(':')
                        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                    {
                        errors.push(format!("{at}: mllp must be HOST:PORT, got {addr:?}"));
                    }
                }
                (None, Some(_)) => {
                    if dest.tls.is_some() {
                        errors.push(format!("{at}: tls applies to mllp destinations only"));
                    }
                }
            }
            if dest.retry.initial.is_zero() {
                errors.push(format!("{at}: retry.initial must be greater than zero"));
            }
            if dest.retry.max < dest.retry.initial {
                errors.push(format!("{at}: retry.max must not be below retry.initial"));
            }
        }
    }
    errors
}

/// Names of channels, destinations and organisations: short, lowercase, URL- and
/// label-safe.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl TransformStep {
    fn paths(&self) -> Vec<&str> {
        match self {
            TransformStep::Set { set, .. } => vec![set],
            TransformStep::Copy { copy, to } => vec![copy, to],
            TransformStep::Clear { clear } => vec![clear],
            TransformStep::RemoveSegments { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: Some(5),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_secs(1));
        assert_eq!(p.backoff(200), Duration::from_secs(1));
        assert!(!p.exhausted(4));
        assert!(p.exhausted(5));
    }
}

/// How to reach a remote folder (`ftp://`, `ftps://`, `sftp://`); ignored for
/// local folders but the time limits. Secrets take `env:NAME`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderAccess {
    #[serde(default)]
    pub password: Option<String>,
    /// SFTP: an OpenSSH private key file instead of (or besides) the password.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    #[serde(default)]
    pub key_passphrase: Option<String>,
    /// SFTP: the server's host key fingerprint, `SHA256:…` as `ssh-keygen -lf` prints it.
    #[serde(default)]
    pub host_key: Option<String>,
    /// SFTP: an OpenSSH `known_hosts` file, instead of `host_key`.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// SFTP: accept any host key (tests and first set-up only).
    #[serde(default)]
    pub insecure_skip_host_key: bool,
    /// FTPS: a CA certificate (PEM) to trust besides the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub io_timeout: Duration,
}

impl Default for FolderAccess {
    fn default() -> Self {
        FolderAccess {
            password: None,
            private_key: None,
            key_passphrase: None,
            host_key: None,
            known_hosts: None,
            insecure_skip_host_key: false,
            ca: None,
            connect_timeout: default_connect_timeout(),
            io_timeout: default_ack_timeout(),
        }
    }
}

impl FolderAccess {
    pub fn options(&self) -> medrelay_folder::FolderOptions {
        medrelay_folder::FolderOptions {
            password: self.password.clone(),
            private_key: self.private_key.clone(),
            key_passphrase: self.key_passphrase.clone(),
            host_key_fingerprint: self.host_key.clone(),
            known_hosts: self.known_hosts.clone(),
            insecure_skip_host_key: self.insecure_skip_host_key,
            ca: self.ca.clone(),
            connect_timeout: self.connect_timeout,
            io_timeout: self.io_timeout,
        }
    }
}

/// How an inbound folder is watched and what happens to a file afterwards.
#[derive(Debug, Clone)]
pub struct FolderInbound {
    /// Where processed files go, relative to the folder or absolute.
    pub archive: String,
    /// Where rejected files go, each with a `<name>.error.txt`.
    pub error: String,
    /// Delete processed files instead of archiving them.
    pub delete_after: bool,
    /// The scan interval (local folders are also woken by notification).
    pub poll: Duration,
    /// How long a file's size and time must stay the same before it is taken.
    pub settle: Duration,
    /// Only these extensions (`gdt` also matches numbered ones: `.001`); all when empty.
    pub extensions: Option<Vec<String>>,
    pub max_file_bytes: u64,
}
