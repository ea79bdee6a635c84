//! `[[integration]]`: one EHR connection built from a preset. Orders come in on
//! the inbound side and become worklist items; results go back out through the
//! integration's own durable queue.
//!
//! An integration is expanded into the same parts as a general channel: a
//! [`ChannelConfig`] for its inbound listener (with a worklist stage instead of
//! destinations) and a results destination fed by [`crate::results`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    ChannelConfig, ClientTls, DEFAULT_ORG, DestinationConfig, FolderAccess, FolderInbound,
    RetryPolicy, ServerTls, SourceConfig, valid_name,
};

fn default_org() -> String {
    DEFAULT_ORG.to_string()
}
fn default_group() -> String {
    "default".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// Unique, `[a-z0-9-]`; also the name of its inbound channel.
    pub name: String,
    /// Fills in format and mappings: `hl7-mllp`, `nextgen`, `birpis`, …
    pub preset: String,
    #[serde(default = "default_org")]
    pub org: String,
    /// The device group whose worklist receives the orders (routing rules in the
    /// mapping may choose another).
    #[serde(default = "default_group")]
    pub group: String,
    #[serde(default)]
    pub inbound: InboundConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Overrides of the preset's mapping: fields, value tables, routes.
    #[serde(default)]
    pub mapping: Option<toml::Table>,
    #[serde(default = "default_dedup", with = "humantime_serde")]
    pub dedup_window: Duration,
}

fn default_dedup() -> Duration {
    Duration::from_secs(600)
}

/// Exactly the keys the preset's transport needs; for HL7 presets an MLLP
/// listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    #[serde(default)]
    pub mllp: Option<SocketAddr>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub tls: Option<ServerTls>,
    #[serde(default)]
    pub max_frame: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    #[serde(default)]
    pub max_connections: Option<usize>,

    /// File presets: the folder the EHR drops its files into: a path, or an
    /// `ftp://`, `ftps://` or `sftp://` URL.
    #[serde(default)]
    pub folder: Option<String>,
    /// Processed files go here (relative to `folder`, or absolute); default `archive`.
    #[serde(default)]
    pub archive: Option<String>,
    /// Rejected files go here with a `<name>.error.txt`; default `error`.
    #[serde(default)]
    pub error: Option<String>,
    /// `"archive"` (default) or `"delete"` processed files.
    #[serde(default)]
    pub after: Option<String>,
    /// How often the folder is scanned (local folders are also woken by
    /// notification); default 2 s.
    #[serde(default, with = "humantime_serde")]
    pub scan: Option<Duration>,
    /// How long a file must stay unchanged before it is taken (default 1 s; `0s`
    /// when the EHR always writes under a temporary name and renames).
    #[serde(default, with = "humantime_serde")]
    pub settle: Option<Duration>,
    /// Only files with these extensions; the preset's by default.
    #[serde(default)]
    pub extensions: Option<Vec<String>>,
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
    /// Credentials and host checks for a remote `folder`.
    #[serde(default)]
    pub remote: FolderAccess,

    /// JSON push presets: the EHR POSTs appointments to
    /// `/api/v1/integrations/{name}/appointments`. `true` accepts OAuth 2.0
    /// bearer tokens medrelay issued (`/oauth/token`) to a client of the
    /// integration's organisation with the scope `appointments`; a table may add
    /// an API key or Basic credentials and limits.
    #[serde(default)]
    pub push: Option<PushSetting>,
    /// JSON poll presets (`vena`, `webdoc`, `best-practice`): the EHR's
    /// appointments endpoint, fetched on each device worklist request (cached
    /// briefly) and/or `every`.
    #[serde(default)]
    pub poll: Option<crate::json_poller::PollConfig>,
}

/// `push = true` or `push = { … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PushSetting {
    On(bool),
    With(PushConfig),
}

impl PushSetting {
    /// The settings, `None` when pushing is switched off.
    pub fn config(&self) -> Option<PushConfig> {
        match self {
            PushSetting::On(true) => Some(PushConfig::default()),
            PushSetting::On(false) => None,
            PushSetting::With(c) => Some(c.clone()),
        }
    }
}

/// Who may push and how much.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Accept medrelay-issued OAuth 2.0 tokens carrying this scope.
    #[serde(default = "default_push_scope")]
    pub scope: String,
    /// Also accept this API key in `header`.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_api_key_header")]
    pub header: String,
    /// Also accept HTTP Basic with these credentials.
    #[serde(default)]
    pub basic: Option<BasicCredentials>,
    /// Largest body (bytes); larger gets 413.
    #[serde(default = "default_push_body")]
    pub max_body_bytes: usize,
    /// Requests per second per client (token bucket, with `burst`); over it, 429
    /// with `Retry-After`.
    #[serde(default = "default_push_rate")]
    pub rate_per_second: u32,
    #[serde(default = "default_push_burst")]
    pub burst: u32,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            scope: default_push_scope(),
            api_key: None,
            header: default_api_key_header(),
            basic: None,
            max_body_bytes: default_push_body(),
            rate_per_second: default_push_rate(),
            burst: default_push_burst(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

fn default_push_scope() -> String {
    "appointments".into()
}
fn default_api_key_header() -> String {
    "X-Api-Key".into()
}
fn default_push_body() -> usize {
    1024 * 1024
}
fn default_push_rate() -> u32 {
    20
}
fn default_push_burst() -> u32 {
    40
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// HL7 presets: the EHR's MLLP listener for ORU^R01 results. Absent: results
    /// are stored and visible through the API, but not sent.
    #[serde(default)]
    pub mllp: Option<String>,
    #[serde(default)]
    pub tls: Option<ClientTls>,
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub ack_timeout: Option<Duration>,
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// MSH-3/4/5/6 of the results; default from the preset.
    #[serde(default)]
    pub sending_application: Option<String>,
    #[serde(default)]
    pub sending_facility: Option<String>,
    #[serde(default)]
    pub receiving_application: Option<String>,
    #[serde(default)]
    pub receiving_facility: Option<String>,

    /// File results: the folder the result files are written to (a path or an
    /// `ftp://`, `ftps://`, `sftp://` URL).
    #[serde(default)]
    pub folder: Option<String>,
    /// The result file's name; GDT default `{receiver}{sender}.gdt` (the GDT
    /// convention: receiver id, sender id), HL7 default `{control_id}.hl7`.
    #[serde(default)]
    pub file_name: Option<String>,
    /// The folder as the practice system sees it, for the PDF reference inside a
    /// GDT result (`C:\GDT\in`); default: `folder` itself for a local folder,
    /// the bare file name for a remote one.
    #[serde(default)]
    pub pdf_folder: Option<String>,
    /// Credentials for a remote `folder`.
    #[serde(default)]
    pub remote: FolderAccess,

    /// HTTP results (WEDA): the address each result is POSTed to. 2xx: sent;
    /// 429, 5xx and network errors: retried with backoff; other 4xx: failed, with
    /// the answer kept. `ack_timeout` limits each request, `tls` adds a CA and a
    /// client certificate.
    #[serde(default)]
    pub url: Option<String>,
    /// `{ api_key = "env:KEY", header = "X-Api-Key" }`, `{ bearer = … }`,
    /// `{ basic = { user, password } }`, `{ client_id = …, client_secret = … }`,
    /// `{ oauth2 = { token_url, client_id, client_secret, scope } }`.
    #[serde(default)]
    pub auth: Option<crate::destination::http::HttpAuth>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,

    /// Results as a Direct secure message (the PDF report and the patient's
    /// demographics) from one of medrelay's Direct addresses to a clinic's.
    #[serde(default)]
    pub direct: Option<DirectOutbound>,
}

/// `outbound.direct`: who sends the result and to whom.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectOutbound {
    /// A Direct address registered here (`medrelay direct address add`); its
    /// notification endpoint, if any, hears the delivery status.
    pub from: String,
    /// One address, or several separated by commas.
    pub to: String,
    /// Deliver the report inside an IHE XDM package (default) or raw.
    #[serde(default = "yes")]
    pub xdm: bool,
    #[serde(default)]
    pub subject: Option<String>,
}

fn yes() -> bool {
    true
}

/// The HL7 presets this build knows (the transport side; mappings are data in
/// `crates/worklist/presets`). All but `weda` receive over MLLP by default.
pub const HL7_PRESETS: &[&str] = &[
    "hl7-mllp", "birpis", "hipokrat", "iris", "isoz", "nextgen", "weda",
];

/// The GDT presets: 6302 request files in, 6310 result files + PDF out.
pub const GDT_PRESETS: &[&str] = &["gdt", "doctolib", "tomedo"];

/// The JSON presets: appointments pushed to medrelay (`join`, `ziplanerx`) or
/// polled from the EHR (`vena`, `webdoc`, `best-practice`).
pub const JSON_PRESETS: &[&str] = &["join", "ziplanerx", "vena", "webdoc", "best-practice"];

/// Orders created through medrelay's own FHIR API (ServiceRequest, Appointment);
/// results are read back through it (Observation, DiagnosticReport).
pub const FHIR_PRESETS: &[&str] = &["fhir"];

/// What an integration's orders and results are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hl7,
    Gdt,
    Json,
    /// FHIR R4 resources through `/fhir/R4`: no transport of its own.
    Fhir,
}

/// The format of a preset, `None` for one this build does not know.
pub fn preset_format(preset: &str) -> Option<Format> {
    if HL7_PRESETS.contains(&preset) {
        Some(Format::Hl7)
    } else if GDT_PRESETS.contains(&preset) {
        Some(Format::Gdt)
    } else if JSON_PRESETS.contains(&preset) {
        Some(Format::Json)
    } else if FHIR_PRESETS.contains(&preset) {
        Some(Format::Fhir)
    } else {
        None
    }
}

impl IntegrationConfig {
    pub fn format(&self) -> Option<Format> {
        preset_format(&self.preset)
    }

    /// The inbound channel, when the integration listens for MLLP.
    pub fn channel(&self) -> Option<ChannelConfig> {
        let addr = self.inbound.mllp?;
        Some(self.channel_on(addr))
    }

    /// The channel pipeline of an HL7 file integration: the same parse, validate,
    /// map and store as MLLP, without a listener.
    pub(crate) fn file_channel(&self) -> ChannelConfig {
        self.channel_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Where the practice system finds a result's PDF, for the reference inside
    /// a GDT result; `None` when results are not written as files.
    pub fn pdf_folder(&self) -> Option<String> {
        let o = &self.outbound;
        let folder = o.folder.as_ref()?;
        if let Some(p) = &o.pdf_folder {
            return Some(p.clone());
        }
        let local = medrelay_folder::FolderSpec::parse(folder)
            .map(|s| s.is_local())
            .unwrap_or(false);
        Some(if local { folder.clone() } else { String::new() })
    }

    /// How the inbound folder is watched.
    pub fn folder_inbound(&self) -> FolderInbound {
        let i = &self.inbound;
        let default_ext: &[&str] = match self.format() {
            Some(Format::Gdt) => &["gdt"],
            _ => &["hl7", "txt", "msg"],
        };
        FolderInbound {
            archive: i.archive.clone().unwrap_or_else(|| "archive".into()),
            error: i.error.clone().unwrap_or_else(|| "error".into()),
            delete_after: i.after.as_deref() == Some("delete"),
            poll: i.scan.unwrap_or(Duration::from_secs(2)),
            settle: i.settle.unwrap_or(Duration::from_secs(1)),
            extensions: Some(
                i.extensions
                    .clone()
                    .unwrap_or_else(|| default_ext.iter().map(|s| s.to_string()).collect()),
            ),
            max_file_bytes: i.max_file_bytes.unwrap_or(64 * 1024 * 1024),
        }
    }

    fn channel_on(&self, addr: SocketAddr) -> ChannelConfig {
        let mut source = SourceConfig::mllp(addr);
        source.allow = self.inbound.allow.clone();
        source.tls = self.inbound.tls.clone();
        if let Some(v) = self.inbound.max_frame {
            source.max_frame = v;
        }
        if let Some(v) = self.inbound.idle_timeout {
            source.idle_timeout = v;
        }
        if let Some(v) = self.inbound.max_connections {
            source.max_connections = v;
        }
        let mut ch = ChannelConfig::new(&self.name, source);
        ch.org = self.org.clone();
        ch.dedup_window = self.dedup_window;
        ch
    }

    /// The results destination: AA sent; AE, timeouts and refused connections
    /// retried with backoff; AR failed for good with the EHR's reason kept. File
    /// results are written into `outbound.folder`.
    pub fn results_destination(&self) -> Option<DestinationConfig> {
        if let Some(folder) = &self.outbound.folder {
            let mut d = DestinationConfig::mllp(RESULTS, "");
            d.mllp = None;
            d.file = Some(folder.into());
            d.remote = self.outbound.remote.clone();
            d.pattern = self.outbound.file_name.clone().unwrap_or_else(|| {
                match self.format() {
                    Some(Format::Gdt) => "{receiver}{sender}.gdt",
                    _ => "{control_id}.hl7",
                }
                .to_string()
            });
            if let Some(r) = &self.outbound.retry {
                d.retry = r.clone();
            }
            return Some(d);
        }
        if let Some(url) = &self.outbound.url {
            let o = &self.outbound;
            let mut d = DestinationConfig::mllp(RESULTS, "");
            d.mllp = None;
            d.http = Some(url.clone());
            d.auth = o.auth.clone();
            d.headers = o.headers.clone();
            d.method = o.method.clone();
            d.content_type = o.content_type.clone();
            d.tls = o.tls.clone();
            if let Some(v) = o.connect_timeout {
                d.connect_timeout = v;
            }
            if let Some(v) = o.ack_timeout {
                d.ack_timeout = v;
            }
            if let Some(r) = &o.retry {
                d.retry = r.clone();
            }
            return Some(d);
        }
        let addr = self.outbound.mllp.clone()?;
        let mut d = DestinationConfig::mllp(RESULTS, &addr);
        d.tls = self.outbound.tls.clone();
        if let Some(v) = self.outbound.connect_timeout {
            d.connect_timeout = v;
        }
        if let Some(v) = self.outbound.ack_timeout {
            d.ack_timeout = v;
        }
        if let Some(r) = &self.outbound.retry {
            d.retry = r.clone();
        }
        d.retry_on_ae = true;
        d.retry_on_ar = false;
        Some(d)
    }

    /// Problems worded for the person who wrote the configuration.
    pub fn problems(&self) -> Vec<String> {
        let at = format!("integration {:?}", self.name);
        let mut out = Vec::new();
        if !valid_name(&self.name) {
            out.push(format!(
                "{at}: name must be 1-64 characters of a-z, 0-9 and '-'"
            ));
        }
        if !valid_name(&self.org) {
            out.push(format!(
                "{at}: org must be 1-64 characters of a-z, 0-9 and '-'"
            ));
        }
        if !valid_name(&self.group) {
            out.push(format!(
                "{at}: group must be 1-64 characters of a-z, 0-9 and '-'"
            ));
        }
        let Some(format) = self.format() else {
            out.push(format!(
                "{at}: unknown preset {:?}; this build knows {}, {}, {}, {}",
                self.preset,
                HL7_PRESETS.join(", "),
                GDT_PRESETS.join(", "),
                JSON_PRESETS.join(", "),
                FHIR_PRESETS.join(", ")
            ));
            return out;
        };
        if format == Format::Fhir {
            return self.fhir_problems(&at, out);
        }
        let i = &self.inbound;
        let pushes = i.push.as_ref().and_then(PushSetting::config).is_some();
        if format == Format::Json
            && (i.mllp.is_some() || i.folder.is_some() || pushes == i.poll.is_some())
        {
            out.push(format!(
                "{at}: preset {:?} receives appointments over HTTPS: set inbound.push = true (the EHR POSTs them) or inbound.poll = {{ url = \"https://…\" }} (medrelay fetches them), one of the two",
                self.preset
            ));
        }
        if format != Format::Json && i.poll.is_some() {
            out.push(format!(
                "{at}: inbound.poll is for the JSON presets ({})",
                JSON_PRESETS.join(", ")
            ));
        }
        if format != Format::Json && i.push.is_some() {
            out.push(format!(
                "{at}: inbound.push is for the JSON presets ({})",
                JSON_PRESETS.join(", ")
            ));
        }
        if format == Format::Json
            && (self.outbound.mllp.is_some() || self.outbound.folder.is_some())
        {
            out.push(format!(
                "{at}: preset {:?} sends results as JSON over HTTPS: set outbound.url",
                self.preset
            ));
        }
        match (format, i.mllp.is_some(), i.folder.is_some()) {
            (Format::Json, _, _) => {}
            (_, true, true) => out.push(format!(
                "{at}: set one of inbound.mllp or inbound.folder, not both"
            )),
            (Format::Hl7, false, false) => out.push(format!(
                "{at}: preset {:?} receives HL7: set inbound.mllp = \"HOST:PORT\" or inbound.folder = \"/path\"",
                self.preset
            )),
            (Format::Gdt, true, _) | (Format::Gdt, false, false) => out.push(format!(
                "{at}: preset {:?} receives GDT files: set inbound.folder = \"/path\" (or an ftp://, ftps://, sftp:// URL)",
                self.preset
            )),
            _ => {}
        }
        if let Some(f) = &i.folder {
            out.extend(folder_problems(&at, "inbound", f, &i.remote));
        }
        let o = &self.outbound;
        let outs: Vec<&str> = [
            ("outbound.mllp", o.mllp.is_some()),
            ("outbound.folder", o.folder.is_some()),
            ("outbound.url", o.url.is_some()),
            ("outbound.direct", o.direct.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
        if outs.len() > 1 {
            out.push(format!("{at}: set one of {}, not several", outs.join(", ")));
        }
        if format == Format::Gdt && (o.mllp.is_some() || o.url.is_some()) {
            out.push(format!(
                "{at}: preset {:?} answers with GDT files: set outbound.folder",
                self.preset
            ));
        }
        if outs.len() == 1
            && let Some(d) = self.results_destination()
            && let Some(h) = d.http_config()
            && let Err(e) = crate::destination::http::HttpDestination::new(h)
        {
            out.push(format!("{at}: outbound: {e}"));
        }
        if let Some(f) = &o.folder {
            out.extend(folder_problems(&at, "outbound", f, &o.remote));
        }
        if let Some(d) = &o.direct {
            if !medrelay_direct::is_direct_address(&d.from) {
                out.push(format!(
                    "{at}: outbound.direct.from must be a Direct address (someone@clinic.example), not {:?}",
                    d.from
                ));
            }
            if let Err(e) = medrelay_direct::recipients(&d.to) {
                out.push(format!("{at}: outbound.direct.to: {}", e.message));
            }
        }
        if let Some(a) = &i.after
            && a != "archive"
            && a != "delete"
        {
            out.push(format!(
                "{at}: inbound.after must be \"archive\" or \"delete\", not {a:?}"
            ));
        }
        // Without an outbound side, results stay in medrelay (status `stored`):
        // the embedded default works that way until an EHR is configured.
        if let Err(e) = crate::worklist_stage::WorklistStage::new(self) {
            out.push(format!("{at}: {e}"));
        }
        out
    }
}

impl IntegrationConfig {
    /// A `fhir` integration has no transport: clients create orders through
    /// `/fhir/R4` and read results there, so inbound and outbound keys would
    /// only mislead.
    fn fhir_problems(&self, at: &str, mut out: Vec<String>) -> Vec<String> {
        let i = &self.inbound;
        if i.mllp.is_some() || i.folder.is_some() || i.poll.is_some() || i.push.is_some() {
            out.push(format!(
                "{at}: preset \"fhir\" receives orders through the FHIR API (/fhir/R4); remove the inbound settings"
            ));
        }
        let o = &self.outbound;
        if o.mllp.is_some() || o.folder.is_some() || o.url.is_some() || o.direct.is_some() {
            out.push(format!(
                "{at}: preset \"fhir\" answers through the FHIR API (Observation, DiagnosticReport); remove the outbound settings"
            ));
        }
        if self.mapping.is_some() {
            out.push(format!("{at}: preset \"fhir\" has no mapping to override"));
        }
        out
    }
}

/// What is wrong with a folder and the access settings beside it.
fn folder_problems(at: &str, side: &str, folder: &str, access: &FolderAccess) -> Vec<String> {
    let spec = match medrelay_folder::FolderSpec::parse(folder) {
        Ok(s) => s,
        Err(e) => return vec![format!("{at}: {side}.folder: {e}")],
    };
    let mut out = Vec::new();
    let sftp = spec
        .remote()
        .is_some_and(|r| r.scheme() == medrelay_folder::Scheme::Sftp);
    if sftp
        && access.host_key.is_none()
        && access.known_hosts.is_none()
        && !access.insecure_skip_host_key
    {
        out.push(format!(
            "{at}: {side}.folder is SFTP: set {side}.remote.host_key = \"SHA256:…\" (ssh-keygen -lf) or {side}.remote.known_hosts, so the password goes only to that server"
        ));
    }
    for (key, path) in [
        ("private_key", &access.private_key),
        ("known_hosts", &access.known_hosts),
        ("ca", &access.ca),
    ] {
        if let Some(p) = path
            && !p.exists()
        {
            out.push(format!(
                "{at}: {side}.remote.{key}: {} does not exist",
                p.display()
            ));
        }
    }
    out
}

/// The destination name of an integration's results queue.
pub const RESULTS: &str = "results";
