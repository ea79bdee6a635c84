//! A channel source that fetches HL7 v2 messages from an HTTP(S) endpoint on a
//! schedule — the second half of the `004_…` bridge: a cloud service's updates
//! pulled over HTTPS and handed to the hospital's MLLP systems.
//!
//! The answer is either HL7 text (one or more messages) or JSON with the
//! messages as strings at `items` (a JSON Pointer). Each message goes through the
//! channel exactly like one received over MLLP (parse, validate, filter, store,
//! queue); a message fetched again is recognised by its MSH-10 within the
//! channel's `dedup_window` and not forwarded twice.

use std::sync::Arc;
use std::time::Duration;

use hl7v2::ack::AckCode;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channel::Channel;
use crate::destination::http::{FetchSettings, HttpAuth, HttpDestination, HttpTls};

/// `source = { poll = { url = "https://…", every = "30s", … } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPollConfig {
    pub url: String,
    #[serde(default = "default_every", with = "humantime_serde")]
    pub every: Duration,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// The body of a `POST`.
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON answer: where the array of HL7 messages (strings) is; without it
    /// the answer is HL7 text.
    #[serde(default)]
    pub items: Option<String>,
    /// A JSON answer: where the next page's URL is.
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub tls: Option<HttpTls>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
}

fn default_every() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_pages() -> usize {
    20
}

/// Largest answer read (bytes).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// What is wrong with a poll configuration.
pub fn check(cfg: &HttpPollConfig) -> Result<(), String> {
    client(cfg).map(|_| ())?;
    method(cfg).map(|_| ())?;
    for p in [&cfg.items, &cfg.next].into_iter().flatten() {
        if !p.is_empty() && !p.starts_with('/') {
            return Err(format!("{p:?} is not a JSON Pointer (it starts with '/')"));
        }
    }
    if cfg.every.is_zero() {
        return Err("every must be longer than zero".into());
    }
    Ok(())
}

fn client(cfg: &HttpPollConfig) -> Result<HttpDestination, String> {
    FetchSettings {
        url: &cfg.url,
        auth: cfg.auth.as_ref(),
        headers: &cfg.headers,
        tls: cfg.tls.as_ref(),
        timeout: cfg.timeout,
    }
    .client()
}

fn method(cfg: &HttpPollConfig) -> Result<reqwest::Method, String> {
    match cfg
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase()
        .as_str()
    {
        "GET" => Ok(reqwest::Method::GET),
        "POST" => Ok(reqwest::Method::POST),
        other => Err(format!("method {other:?}: use GET or POST")),
    }
}

pub struct HttpPollSource {
    name: String,
    cfg: HttpPollConfig,
    http: HttpDestination,
    method: reqwest::Method,
    channel: Arc<Channel>,
}

impl HttpPollSource {
    pub fn new(name: &str, cfg: &HttpPollConfig, channel: Arc<Channel>) -> Result<Self, String> {
        Ok(HttpPollSource {
            name: name.to_string(),
            http: client(cfg)?,
            method: method(cfg)?,
            cfg: cfg.clone(),
            channel,
        })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        info!(channel = %self.name, url = %self.cfg.url, "polling for HL7 messages");
        loop {
            if let Err(e) = self.poll().await {
                warn!(channel = %self.name, error = %e, "polling failed; next try on schedule");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.every) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        info!(channel = %self.name, "poll source stopped");
    }

    async fn poll(&self) -> Result<(), String> {
        let mut url = self.cfg.url.clone();
        for _ in 0..self.cfg.max_pages.max(1) {
            let answer = self
                .http
                .fetch(
                    self.method.clone(),
                    &url,
                    self.cfg.body.as_deref().map(str::as_bytes),
                    MAX_ANSWER,
                )
                .await
                .map_err(|e| e.message)?;
            let (messages, next) = self.messages(&answer)?;
            for raw in messages {
                let reply = self.channel.receive(raw, Some(url.clone())).await;
                if !matches!(reply.code, AckCode::AA | AckCode::CA) {
                    // Stored with its error like any refused message.
                    warn!(channel = %self.name, code = reply.code.as_str(), error = ?reply.error, "a polled message was not accepted");
                }
            }
            match next {
                Some(n) if n != url => {
                    url = reqwest::Url::parse(&url)
                        .and_then(|b| b.join(&n))
                        .map(|u| u.to_string())
                        .unwrap_or(n);
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// The messages in one answer, and the next page.
    fn messages(&self, answer: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), String> {
        let Some(items) = self.cfg.items.as_deref().filter(|p| !p.is_empty()) else {
            return Ok((split_hl7(answer), None));
        };
        let doc: serde_json::Value =
            serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
        let list = doc
            .pointer(items)
            .and_then(|v| v.as_array())
            .ok_or_else(|| format!("no array of messages at {items}"))?;
        let messages = list
            .iter()
            .filter_map(|v| v.as_str())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let next = self
            .cfg
            .next
            .as_deref()
            .and_then(|p| doc.pointer(p))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok((messages, next))
    }
}

/// HL7 text holding one or more messages: each starts at an `MSH` at the start
/// of a segment.
fn split_hl7(text: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    for i in 0..text.len() {
        let at_segment_start = i == 0 || matches!(text[i - 1], b'\r' | b'\n');
        if at_segment_start && text[i..].starts_with(b"MSH") {
            starts.push(i);
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let msg = text[start..end].to_vec();
        if !msg.iter().all(u8::is_ascii_whitespace) {
            out.push(msg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_hl7;

    #[test]
    fn hl7_text_is_split_at_each_msh() {
        let text = b"MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\r\nPID|2\r\n";
        let parts = split_hl7(text);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with(b"MSH|^~\\&|A"));
        assert!(parts[1].starts_with(b"MSH|^~\\&|B"));
        assert!(split_hl7(b"").is_empty());
        assert!(split_hl7(b"no hl7 here").is_empty());
    }
}
