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
    ChannelConfig, ClientTls, DEFAULT_ORG, DestinationConfig, RetryPolicy, ServerTls, SourceConfig,
    valid_name,
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
}

/// The HL7 presets this build knows (the transport side; mappings are data in
/// `crates/worklist/presets`).
pub const HL7_PRESETS: &[&str] = &["hl7-mllp", "birpis", "hipokrat", "iris", "isoz", "nextgen"];

impl IntegrationConfig {
    /// The inbound channel, when the integration listens for MLLP.
    pub fn channel(&self) -> Option<ChannelConfig> {
        let addr = self.inbound.mllp?;
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
        Some(ch)
    }

    /// The results destination: AA sent; AE, timeouts and refused connections
    /// retried with backoff; AR failed for good with the EHR's reason kept.
    pub fn results_destination(&self) -> Option<DestinationConfig> {
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
        if !HL7_PRESETS.contains(&self.preset.as_str()) {
            out.push(format!(
                "{at}: unknown preset {:?}; this build knows {}",
                self.preset,
                HL7_PRESETS.join(", ")
            ));
            return out;
        }
        if self.inbound.mllp.is_none() {
            out.push(format!(
                "{at}: preset {:?} receives orders over MLLP: set inbound.mllp = \"HOST:PORT\"",
                self.preset
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

/// The destination name of an integration's results queue.
pub const RESULTS: &str = "results";
