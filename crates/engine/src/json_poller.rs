//! Appointments pulled from a cloud EHR's API (Vena and Webdoc through Leyr,
//! Best Practice through HALO): on a schedule and/or whenever a device asks for
//! its worklist — "on each device invocation" — with a short cache so a burst of
//! devices makes one call.
//!
//! Each page is stored raw like every other inbound message, with its content
//! hash as control id: a page identical to one already applied is recognised and
//! applies nothing. Within a page, an appointment identical to the one last seen
//! under its id is skipped; a changed one (rescheduled, cancelled) is applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medrelay_store::{InboundOutcome, InboundRecord, MessageStatus, Store};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::destination::http::{FetchSettings, HttpAuth, HttpDestination, HttpTls};
use crate::intake::content_hash;
use crate::worklist_stage::WorklistStage;

/// `inbound.poll = { url = "…", … }` of a JSON integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// The appointments endpoint (first page).
    pub url: String,
    /// Also poll on this schedule; without it, only on worklist requests.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// Poll when a device asks for its worklist; default from the preset.
    #[serde(default)]
    pub on_worklist: Option<bool>,
    /// A worklist request within this long of the last fetch uses its result.
    #[serde(default = "default_cache", with = "humantime_serde")]
    pub cache: Duration,
    /// `GET` or `POST`; default from the preset.
    #[serde(default)]
    pub method: Option<String>,
    /// The body of a `POST` poll (Best Practice's SQL query); default from the preset.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub tls: Option<HttpTls>,
    /// The whole request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Pages followed per poll at most.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
}

fn default_cache() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_pages() -> usize {
    20
}

/// Largest page read (bytes).
const MAX_PAGE: usize = 16 * 1024 * 1024;
/// How long an identical page is recognised.
const DEDUP: i64 = 24 * 3600 * 1000;

struct PollState {
    last: Option<Instant>,
    /// Content hash of each appointment last applied, by its id.
    seen: HashMap<String, String>,
}

pub struct JsonPoller {
    name: String,
    org: String,
    stage: Arc<WorklistStage>,
    store: Store,
    http: HttpDestination,
    url: String,
    method: reqwest::Method,
    body: Option<String>,
    on_worklist: bool,
    cache: Duration,
    max_pages: usize,
    state: Mutex<PollState>,
}

impl JsonPoller {
    pub fn new(
        name: &str,
        org: &str,
        cfg: &PollConfig,
        stage: Arc<WorklistStage>,
        store: Store,
    ) -> Result<Self, String> {
        let transport = stage
            .json_mapping()
            .map(|m| m.transport.clone())
            .ok_or_else(|| "the preset does not speak JSON".to_string())?;
        let http = FetchSettings {
            url: &cfg.url,
            auth: cfg.auth.as_ref(),
            headers: &cfg.headers,
            tls: cfg.tls.as_ref(),
            timeout: cfg.timeout,
        }
        .client()?;
        let method = cfg
            .method
            .clone()
            .unwrap_or(transport.poll_method.clone())
            .to_ascii_uppercase();
        let method = match method.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            other => return Err(format!("poll method {other:?}: use GET or POST")),
        };
        Ok(JsonPoller {
            name: name.to_string(),
            org: org.to_string(),
            stage,
            store,
            http,
            url: cfg.url.clone(),
            method,
            body: cfg.body.clone().or(transport.poll_body.clone()),
            on_worklist: cfg.on_worklist.unwrap_or(transport.poll_on_worklist),
            cache: cfg.cache,
            max_pages: cfg.max_pages.max(1),
            state: Mutex::new(PollState {
                last: None,
                seen: HashMap::new(),
            }),
        })
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    /// Whether worklist requests trigger this poller.
    pub fn on_worklist(&self) -> bool {
        self.on_worklist
    }

    /// Fetches and applies the appointments, unless that happened within the
    /// cache time. Concurrent callers wait for the one fetch. Returns how many
    /// appointments were applied.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut state = self.state.lock().await;
        if state.last.is_some_and(|t| t.elapsed() < self.cache) {
            return Ok(0);
        }
        let result = self.poll(&mut state).await;
        // A failed poll is not retried by every device request in a burst either.
        state.last = Some(Instant::now());
        result
    }

    /// Polls every `every` until shutdown.
    pub async fn run(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        info!(integration = %self.name, url = %self.url, "polling for appointments");
        loop {
            match self.refresh().await {
                Ok(n) if n > 0 => info!(integration = %self.name, appointments = n, "polled"),
                Ok(_) => {}
                Err(e) => warn!(integration = %self.name, error = %e, "polling failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    async fn poll(&self, state: &mut PollState) -> Result<usize, String> {
        let mut url = self.url.clone();
        let mut applied = 0;
        for _ in 0..self.max_pages {
            let page = self
                .http
                .fetch(
                    self.method.clone(),
                    &url,
                    self.body.as_deref().map(str::as_bytes),
                    MAX_PAGE,
                )
                .await
                .map_err(|e| e.message)?;
            let (count, next) = self.apply_page(page, &url, state).await?;
            applied += count;
            match next {
                Some(n) if n != url => url = absolute(&url, &n),
                _ => break,
            }
        }
        Ok(applied)
    }

    /// Stores the page and applies its new or changed appointments; returns how
    /// many, and the next page.
    async fn apply_page(
        &self,
        page: Vec<u8>,
        url: &str,
        state: &mut PollState,
    ) -> Result<(usize, Option<String>), String> {
        let mut rec = InboundRecord {
            org: self.org.clone(),
            channel: self.name.clone(),
            received_at: now_ms(),
            peer: Some(url.to_string()),
            control_id: Some(format!("sha256:{}", content_hash(&page))),
            message_type: Some("JSON appointments (polled)".into()),
            dedup_window: Some(DEDUP),
            ..InboundRecord::default()
        };
        let parsed = serde_json::from_slice::<serde_json::Value>(&page)
            .map_err(|e| format!("the page from {url} is not JSON: {e}"))
            .and_then(|doc| {
                let items = self.stage.map_json(&doc).map_err(|e| e.to_string())?;
                let next = self
                    .stage
                    .json_mapping()
                    .and_then(|m| medrelay_worklist::json_map::next_page(&doc, m));
                Ok((items, next))
            });
        rec.raw = page;
        let (items, next) = match parsed {
            Ok(v) => v,
            Err(e) => {
                rec.status = MessageStatus::Rejected;
                rec.error = Some(e.clone());
                rec.dedup_window = None;
                let _ = self.store.record_inbound(rec).await;
                return Err(e);
            }
        };
        let mut fresh = Vec::new();
        let mut hashes = Vec::new();
        for item in items {
            let hash = serde_json::to_vec(&item.action)
                .map(|b| content_hash(&b))
                .unwrap_or_default();
            if state.seen.get(&item.key) == Some(&hash) {
                continue;
            }
            hashes.push((item.key.clone(), hash));
            fresh.push(item.action);
        }
        let count = fresh.len();
        rec.status = MessageStatus::Accepted;
        rec.ack = Some(b"accepted".to_vec());
        rec.worklist = fresh;
        match self.store.record_inbound(rec).await {
            Ok(InboundOutcome::Stored { .. }) => {
                state.seen.extend(hashes);
                Ok((count, next))
            }
            Ok(InboundOutcome::Duplicate { .. }) => {
                state.seen.extend(hashes);
                Ok((0, next))
            }
            Err(e) => Err(format!("storing the page failed: {e}")),
        }
    }
}

/// A next-page link relative to the page it came from.
fn absolute(base: &str, next: &str) -> String {
    match reqwest::Url::parse(base).and_then(|b| b.join(next)) {
        Ok(u) => u.to_string(),
        Err(_) => next.to_string(),
    }
}
