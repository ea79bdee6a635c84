//! Direct secure messaging: medrelay as the HISP between "edges" (EHRs and
//! clinics) speaking the MedAllies-style Messaging API.
//!
//! A sending edge POSTs `send_ccda` ([`Hisp::submit`]); the message, one row
//! per recipient and the sender's "processed" notification are committed in
//! one transaction before the answer. The [`Hisp::run`] worker then delivers
//! each recipient: to a registered (local) address's receiving-edge endpoint
//! as the inbound JSON (attachments raw, or one IHE XDM zip), or, for other
//! domains, to the configured upstream HISP through the same API. Each
//! recipient moves through PROCESSED → SMTPINIT (handed upstream) →
//! DISPATCHED (→ DISPLAYED), or FAILED / FAILED-TO when the window passes;
//! every change the sender asked for is queued as a notification to its
//! notification endpoint and POSTed in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use medrelay_direct::{SendRequest, SendResponse, Status, StatusResponse};
use medrelay_store::{
    DirectAddress, DirectEdge, DirectMessage, DirectRecipient, DirectSubmit, Millis,
    NewDirectMessage, NewNotification, Store,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::RetryPolicy;

/// `[direct]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectConfig {
    /// How long a recipient may take to reach a final status.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// Where messages to addresses that are not registered here go.
    #[serde(default)]
    pub upstream: Option<Upstream>,
    /// Per sending edge.
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Every Messaging API call answers 503.
    #[serde(default)]
    pub maintenance: bool,
    /// Delivery retries (backoff) inside the window.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Timeout of one delivery or notification request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DirectConfig {
    fn default() -> Self {
        DirectConfig {
            window: default_window(),
            upstream: None,
            rate_per_second: default_rate(),
            burst: default_burst(),
            maintenance: false,
            retry: RetryPolicy::default(),
            timeout: default_timeout(),
        }
    }
}

fn default_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_rate() -> u32 {
    20
}
fn default_burst() -> u32 {
    40
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// An upstream HISP's Messaging API: `url` is its base
/// (`https://hisp.example/MessagingAPI`), authenticated with Basic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: String,
    pub user: String,
    pub password: String,
    /// The edge (`medrelay direct edge add`) the upstream HISP authenticates
    /// as when it POSTs dispositions to `/MessagingAPI/dirmsg/notification`.
    #[serde(default)]
    pub edge: Option<String>,
}

/// Why a Messaging API call was refused, for the HTTP layer (the seed's table).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectError {
    /// 400: `result` says which field is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 401
    #[error("{0}")]
    Unauthorized(String),
    /// 403
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 503 (maintenance)
    #[error("{0}")]
    Unavailable(String),
    /// 500
    #[error("{0}")]
    Internal(String),
}

impl From<medrelay_store::StoreError> for DirectError {
    fn from(e: medrelay_store::StoreError) -> Self {
        DirectError::Internal(e.to_string())
    }
}

/// The failure reason for a recipient nobody can deliver to.
pub const NO_TRUSTED_RECIPIENT: &str = "9002: ERROR=NoTrustedRecipients";

/// The HISP: submissions, status queries and the delivery worker.
pub struct Hisp {
    store: Store,
    cfg: DirectConfig,
    client: reqwest::Client,
    wake: Notify,
}

impl Hisp {
    pub fn new(store: Store, cfg: DirectConfig) -> Result<Arc<Hisp>, String> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("direct: HTTP client: {e}"))?;
        Ok(Arc::new(Hisp {
            store,
            cfg,
            client,
            wake: Notify::new(),
        }))
    }

    pub fn config(&self) -> &DirectConfig {
        &self.cfg
    }

    /// The sending edge of an `Authorization: Basic …` header.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<DirectEdge, DirectError> {
        let unauthorized = || DirectError::Unauthorized("Your API key is incorrect.".into());
        let value = authorization.ok_or_else(unauthorized)?;
        let (scheme, rest) = value.trim().split_once(' ').ok_or_else(unauthorized)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(unauthorized());
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(unauthorized)?;
        let (user, secret) = decoded.split_once(':').ok_or_else(unauthorized)?;
        let (edge, hash) = self
            .store
            .direct_edge(user)
            .await?
            .ok_or_else(unauthorized)?;
        if medrelay_store::oauth::verify_secret(secret.to_string(), hash).await? {
            Ok(edge)
        } else {
            Err(unauthorized())
        }
    }

    /// `send_ccda`: validates, checks the edge owns the sender, commits the
    /// message for every recipient, answers as the seed shows. The same
    /// request again (same sender and messageId, same body) gets the same
    /// answer; another body under a used messageId is refused.
    pub async fn submit(
        &self,
        edge: &DirectEdge,
        body: &[u8],
    ) -> Result<SendResponse, DirectError> {
        if self.cfg.maintenance {
            return Err(DirectError::Unavailable(
                "The API is offline for maintenance. Try again later.".into(),
            ));
        }
        let req = medrelay_direct::parse_send(body)
            .map_err(|e| DirectError::BadRequest(e.to_string()))?;
        let recipients = medrelay_direct::recipients(&req.to_direct_address)
            .map_err(|e| DirectError::BadRequest(e.to_string()))?;
        medrelay_direct::decode_attachments(&req)
            .map_err(|e| DirectError::BadRequest(e.to_string()))?;
        let sender = req.from_direct_address.trim().to_ascii_lowercase();
        let owned = self.store.direct_address(&sender).await?;
        match &owned {
            Some(a) if a.edge.as_deref() == Some(edge.name.as_str()) && a.org == edge.org => {}
            _ => {
                return Err(DirectError::Forbidden(format!(
                    "fromDirectAddress: {sender} is not an address of this edge"
                )));
            }
        }
        let notify = owned.and_then(|a| a.notify);
        self.accept(&edge.org, &edge.name, &req, recipients, body, notify)
            .await
    }

    /// A message medrelay itself sends (a measurement's report through an
    /// integration's `outbound.direct`), as `label`; the configuration
    /// vouches for the sender, so no edge is involved.
    pub async fn submit_internal(
        &self,
        org: &str,
        label: &str,
        req: &SendRequest,
    ) -> Result<SendResponse, DirectError> {
        let body = serde_json::to_vec(req)
            .map_err(|e| DirectError::Internal(format!("the message could not be written: {e}")))?;
        // The same checks an edge's message passes.
        let req = medrelay_direct::parse_send(&body)
            .map_err(|e| DirectError::BadRequest(e.to_string()))?;
        let recipients = medrelay_direct::recipients(&req.to_direct_address)
            .map_err(|e| DirectError::BadRequest(e.to_string()))?;
        let notify = self
            .store
            .direct_address(&req.from_direct_address)
            .await?
            .and_then(|a| a.notify);
        self.accept(org, label, &req, recipients, &body, notify)
            .await
    }

    /// Commits a checked message for every recipient and answers for it.
    async fn accept(
        &self,
        org: &str,
        edge: &str,
        req: &SendRequest,
        recipients: Vec<String>,
        body: &[u8],
        notify: Option<medrelay_store::Endpoint>,
    ) -> Result<SendResponse, DirectError> {
        let sender = req.from_direct_address.trim().to_ascii_lowercase();
        let request_hash = hex(&Sha256::digest(body));
        let now = now_ms();
        let transaction_id = uuid_v4();
        let mut rows = Vec::with_capacity(recipients.len());
        let mut failed_now = Vec::new();
        for r in &recipients {
            let local = self.store.direct_address(r).await?;
            let deliverable = local.as_ref().is_some_and(|a| a.endpoint.is_some());
            if deliverable {
                rows.push((r.clone(), true, Status::Processed.as_str().to_string()));
            } else if local.is_none() && self.cfg.upstream.is_some() {
                rows.push((r.clone(), false, Status::Processed.as_str().to_string()));
            } else {
                // Nobody to hand it to: failed at once (and said so below).
                rows.push((
                    r.clone(),
                    local.is_some(),
                    Status::Processed.as_str().to_string(),
                ));
                failed_now.push(r.clone());
            }
        }
        let notifications = notify
            .as_ref()
            .map(|n| {
                vec![note(
                    n,
                    None,
                    &medrelay_direct::notification(&req.message_id, Status::Processed, None, now),
                )]
            })
            .unwrap_or_default();
        let window = Millis::try_from(self.cfg.window.as_millis()).unwrap_or(Millis::MAX);
        let outcome = self
            .store
            .submit_direct_message(NewDirectMessage {
                org: org.to_string(),
                edge: edge.to_string(),
                sender: sender.clone(),
                message_id: req.message_id.clone(),
                request_hash: request_hash.clone(),
                transaction_id: transaction_id.clone(),
                created_at: now,
                deadline_at: now.saturating_add(window),
                asm: req.asm_enabled.unwrap_or(false),
                xdm: req.xdm.unwrap_or(false),
                body: body.to_vec(),
                recipients: rows,
                notifications,
            })
            .await?;
        let (id, transaction_id) = match outcome {
            DirectSubmit::Created { id } => (id, transaction_id),
            DirectSubmit::Existing {
                transaction_id,
                request_hash: earlier,
                ..
            } => {
                if earlier != request_hash {
                    return Err(DirectError::BadRequest(format!(
                        "messageId: {} was already used for a different message; messageId must be unique per message",
                        req.message_id
                    )));
                }
                return Ok(accepted(req, transaction_id));
            }
        };
        for r in failed_now {
            self.finish(
                id,
                &r,
                Status::Failed,
                Some(NO_TRUSTED_RECIPIENT),
                notify.as_ref(),
                req,
            )
            .await?;
        }
        self.wake.notify_one();
        Ok(accepted(req, transaction_id))
    }

    /// `GET status?xdMsgId=…&fromDirectAddress=…`: one answer per recipient
    /// (the first when there is one; the aggregate otherwise).
    pub async fn status(
        &self,
        edge: &DirectEdge,
        message_id: &str,
        from: &str,
    ) -> Result<Vec<StatusResponse>, DirectError> {
        if self.cfg.maintenance {
            return Err(DirectError::Unavailable(
                "The API is offline for maintenance. Try again later.".into(),
            ));
        }
        if message_id.trim().is_empty() {
            return Err(DirectError::BadRequest("xdMsgId: required".into()));
        }
        if from.trim().is_empty() {
            return Err(DirectError::BadRequest(
                "fromDirectAddress: required".into(),
            ));
        }
        let from = from.trim().to_ascii_lowercase();
        let not_found = || DirectError::NotFound(format!("no message {message_id} from {from}"));
        let (m, recipients) = self
            .store
            .direct_message(&from, message_id)
            .await?
            .ok_or_else(not_found)?;
        if m.edge != edge.name || m.org != edge.org {
            // Another edge's message is not even said to exist.
            return Err(not_found());
        }
        Ok(recipients
            .iter()
            .map(|r| StatusResponse {
                sender: m.sender.clone(),
                recipient: r.recipient.clone(),
                xd_msg_id: m.message_id.clone(),
                send_time: medrelay_direct::send_time(m.created_at),
                status: r.status.clone(),
                failure_reason: r.failure_reason.clone(),
            })
            .collect())
    }

    /// A disposition from the edge that received a message (a read receipt:
    /// DISPLAYED, or FAILED), or from the upstream HISP for the recipients
    /// handed to it (DISPATCHED, DISPLAYED, FAILED). A receiving edge may
    /// only speak for its own addresses, the upstream HISP (the edge named
    /// `upstream.edge`) only for recipients it was given.
    pub async fn receipt(
        &self,
        edge: &DirectEdge,
        sender: &str,
        message_id: &str,
        recipient: &str,
        status: Status,
        reason: Option<&str>,
    ) -> Result<(), DirectError> {
        let recipient = recipient.trim().to_ascii_lowercase();
        let (m, rs) = self
            .store
            .direct_message(&sender.trim().to_ascii_lowercase(), message_id)
            .await?
            .ok_or_else(|| DirectError::NotFound(format!("no message {message_id}")))?;
        let Some(r) = rs.iter().find(|r| r.recipient == recipient) else {
            return Err(DirectError::NotFound(format!(
                "{recipient} is not a recipient of {message_id}"
            )));
        };
        let upstream = self
            .cfg
            .upstream
            .as_ref()
            .and_then(|u| u.edge.as_deref())
            .is_some_and(|e| e == edge.name);
        let allowed = if r.local {
            let owner = self.store.direct_address(&recipient).await?;
            owner.and_then(|a| a.edge).as_deref() == Some(edge.name.as_str())
                && matches!(status, Status::Displayed | Status::Failed)
        } else {
            upstream
        };
        if !allowed {
            return Err(DirectError::Forbidden(format!(
                "this edge may not report on {recipient}"
            )));
        }
        let req: SendRequest = serde_json::from_slice(&m.body)
            .map_err(|e| DirectError::Internal(format!("stored message unreadable: {e}")))?;
        let notify = self.notify_of(&m).await?;
        // The upstream HISP's final word after the window, for a recipient
        // still waiting on it, does not count as delivery in time: FAILED-TO.
        // (A read receipt for one already delivered may come any time.)
        let late = now_ms() >= m.deadline_at && Status::parse(&r.status) == Some(Status::SmtpInit);
        let (status, reason) = if late {
            (
                Status::FailedTo,
                Some("the final disposition arrived after the delivery window"),
            )
        } else {
            (status, reason)
        };
        self.finish(m.id, &recipient, status, reason, notify.as_ref(), &req)
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    async fn notify_of(
        &self,
        m: &DirectMessage,
    ) -> Result<Option<medrelay_store::Endpoint>, DirectError> {
        Ok(self
            .store
            .direct_address(&m.sender)
            .await?
            .and_then(|a| a.notify))
    }

    /// Moves a recipient to `status` if the lifecycle allows, queueing the
    /// sender's notification with it (a "dispatched" one only when the
    /// sender asked for it with asmEnabled).
    async fn finish(
        &self,
        message: i64,
        recipient: &str,
        status: Status,
        reason: Option<&str>,
        notify: Option<&medrelay_store::Endpoint>,
        req: &SendRequest,
    ) -> Result<bool, DirectError> {
        let from: Vec<&str> = Status::ALL
            .iter()
            .filter(|s| s.can_become(status))
            .map(|s| s.as_str())
            .collect();
        let now = now_ms();
        let wanted = match status {
            Status::Dispatched => req.asm_enabled.unwrap_or(false),
            Status::SmtpInit => false,
            _ => true,
        };
        let notification = notify.filter(|_| wanted).map(|n| {
            note(
                n,
                Some(recipient),
                &medrelay_direct::notification(&req.message_id, status, reason, now),
            )
        });
        Ok(self
            .store
            .set_direct_status(
                message,
                recipient,
                &from,
                status.as_str(),
                reason,
                None,
                notification,
                now,
            )
            .await?)
    }

    /// Delivers due recipients and notifications until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "direct: delivery round failed");
            }
            let now = now_ms();
            let next = [
                self.store.next_direct_due().await.ok().flatten(),
                self.store
                    .next_direct_notification_due()
                    .await
                    .ok()
                    .flatten(),
            ]
            .into_iter()
            .flatten()
            .min();
            let wait = next
                .map(|t| Duration::from_millis(u64::try_from(t.saturating_sub(now)).unwrap_or(0)))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn round(&self) -> Result<(), DirectError> {
        let now = now_ms();
        let due = self.store.due_direct_recipients(now, 64).await?;
        let mut upstream_done: HashSet<i64> = HashSet::new();
        for (m, r) in due {
            if upstream_done.contains(&m.id) && !r.local {
                continue;
            }
            if let Err(e) = self.deliver(&m, &r, &mut upstream_done).await {
                tracing::warn!(message = %m.message_id, recipient = %r.recipient, error = ?e, "direct: delivery");
            }
        }
        self.notify_round().await
    }

    async fn deliver(
        &self,
        m: &DirectMessage,
        r: &DirectRecipient,
        upstream_done: &mut HashSet<i64>,
    ) -> Result<(), DirectError> {
        let req: SendRequest = serde_json::from_slice(&m.body)
            .map_err(|e| DirectError::Internal(format!("stored message unreadable: {e}")))?;
        let notify = self.notify_of(m).await?;
        let now = now_ms();
        let status = Status::parse(&r.status).unwrap_or(Status::Processed);
        if now >= m.deadline_at {
            // Handed upstream but no final word in the window: FAILED-TO;
            // never delivered at all: FAILED.
            let (final_status, reason) = if status == Status::SmtpInit {
                (
                    Status::FailedTo,
                    "no final disposition from the upstream HISP within the window".to_string(),
                )
            } else {
                (
                    Status::Failed,
                    format!(
                        "not delivered within the window{}",
                        r.last_error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                )
            };
            self.finish(
                m.id,
                &r.recipient,
                final_status,
                Some(&reason),
                notify.as_ref(),
                &req,
            )
            .await?;
            return Ok(());
        }
        if status == Status::SmtpInit {
            // Waiting for the upstream HISP; look again at the deadline.
            self.store
                .direct_retry_later(
                    m.id,
                    &r.recipient,
                    m.deadline_at,
                    "awaiting the upstream disposition",
                    now,
                )
                .await?;
            return Ok(());
        }
        let attempt = if r.local {
            self.deliver_local(m, r, &req).await
        } else {
            upstream_done.insert(m.id);
            self.deliver_upstream(m, &req).await
        };
        match attempt {
            Ok(()) if r.local => {
                self.finish(
                    m.id,
                    &r.recipient,
                    Status::Dispatched,
                    None,
                    notify.as_ref(),
                    &req,
                )
                .await?;
            }
            Ok(()) => {
                // Every remote recipient of the message went in that one request.
                let (_, all) = self
                    .store
                    .direct_message_by_id(m.id)
                    .await?
                    .ok_or_else(|| DirectError::Internal("message vanished".into()))?;
                for other in all.iter().filter(|x| !x.local) {
                    self.finish(
                        m.id,
                        &other.recipient,
                        Status::SmtpInit,
                        None,
                        notify.as_ref(),
                        &req,
                    )
                    .await?;
                }
            }
            Err(Failure::Permanent(reason)) => {
                self.finish(
                    m.id,
                    &r.recipient,
                    Status::Failed,
                    Some(&reason),
                    notify.as_ref(),
                    &req,
                )
                .await?;
            }
            Err(Failure::Retry(error)) => {
                let next = now
                    .saturating_add(
                        Millis::try_from(self.cfg.retry.backoff(r.attempts + 1).as_millis())
                            .unwrap_or(Millis::MAX),
                    )
                    .min(m.deadline_at);
                self.store
                    .direct_retry_later(m.id, &r.recipient, next, &error, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// POSTs the inbound JSON to the recipient's endpoint; only 200 counts.
    async fn deliver_local(
        &self,
        m: &DirectMessage,
        r: &DirectRecipient,
        req: &SendRequest,
    ) -> Result<(), Failure> {
        let address = self
            .store
            .direct_address(&r.recipient)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let Some(endpoint) = address.and_then(|a| a.endpoint) else {
            return Err(Failure::Permanent(NO_TRUSTED_RECIPIENT.into()));
        };
        let zip;
        let xdm = if m.xdm {
            zip = medrelay_direct::package(
                req,
                &format!("urn:uuid:{}", m.transaction_id),
                m.created_at,
            )
            .map_err(|e| Failure::Permanent(format!("XDM packaging failed: {e}")))?;
            Some((medrelay_direct::xdm_file_name(req), zip))
        } else {
            None
        };
        let payload = medrelay_direct::inbound_payload(
            req,
            &r.recipient,
            xdm.as_ref().map(|(n, z)| (n.as_str(), z.as_slice())),
        );
        post(&self.client, &endpoint, &payload).await
    }

    /// Hands the message's remote recipients to the upstream HISP in one
    /// `send_ccda`.
    async fn deliver_upstream(&self, m: &DirectMessage, req: &SendRequest) -> Result<(), Failure> {
        let Some(up) = &self.cfg.upstream else {
            return Err(Failure::Permanent(NO_TRUSTED_RECIPIENT.into()));
        };
        let (_, all) = self
            .store
            .direct_message_by_id(m.id)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?
            .ok_or_else(|| Failure::Permanent("message vanished".into()))?;
        let remote: Vec<&str> = all
            .iter()
            .filter(|r| !r.local)
            .map(|r| r.recipient.as_str())
            .collect();
        let mut forward = req.clone();
        forward.to_direct_address = remote.join(",");
        let payload =
            serde_json::to_value(&forward).map_err(|e| Failure::Permanent(e.to_string()))?;
        let endpoint = medrelay_store::Endpoint {
            url: format!("{}/dirmsg/send_ccda", up.url.trim_end_matches('/')),
            user: Some(up.user.clone()),
            password: Some(up.password.clone()),
        };
        post(&self.client, &endpoint, &payload).await
    }

    /// POSTs due notifications in creation order; one that fails holds back
    /// the later ones to the same endpoint, so they arrive in order.
    async fn notify_round(&self) -> Result<(), DirectError> {
        let now = now_ms();
        let due = self.store.due_direct_notifications(now, 64).await?;
        let mut blocked: HashSet<String> = HashSet::new();
        for n in due {
            if blocked.contains(&n.url) {
                continue;
            }
            let endpoint = medrelay_store::Endpoint {
                url: n.url.clone(),
                user: n.user.clone(),
                password: n.password.clone(),
            };
            let body: serde_json::Value = serde_json::from_str(&n.payload)
                .unwrap_or(serde_json::Value::String(n.payload.clone()));
            match post(&self.client, &endpoint, &body).await {
                Ok(()) => self.store.direct_notification_sent(n.id, now_ms()).await?,
                Err(Failure::Retry(e) | Failure::Permanent(e)) => {
                    blocked.insert(n.url.clone());
                    let next = now.saturating_add(
                        Millis::try_from(self.cfg.retry.backoff(n.attempts + 1).as_millis())
                            .unwrap_or(Millis::MAX),
                    );
                    self.store
                        .direct_notification_retry(n.id, next, &e, now_ms())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

enum Failure {
    Retry(String),
    Permanent(String),
}

/// One POST of JSON with Basic auth; 200 is success, 4xx other than 408/429
/// is permanent, the rest is retried.
async fn post(
    client: &reqwest::Client,
    endpoint: &medrelay_store::Endpoint,
    body: &serde_json::Value,
) -> Result<(), Failure> {
    let mut request = client.post(&endpoint.url).json(body);
    if let Some(user) = &endpoint.user {
        request = request.basic_auth(user, endpoint.password.as_ref());
    }
    match request.send().await {
        Ok(r) if r.status().as_u16() == 200 => Ok(()),
        Ok(r) => {
            let status = r.status().as_u16();
            let text: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let error = format!("HTTP {status} from {}: {text}", endpoint.url);
            if (400..500).contains(&status) && status != 408 && status != 429 {
                Err(Failure::Permanent(error))
            } else {
                Err(Failure::Retry(error))
            }
        }
        Err(e) => Err(Failure::Retry(format!("{}: {e}", endpoint.url))),
    }
}

fn note(
    endpoint: &medrelay_store::Endpoint,
    recipient: Option<&str>,
    n: &medrelay_direct::Notification,
) -> NewNotification {
    NewNotification {
        recipient: recipient.map(str::to_string),
        url: endpoint.url.clone(),
        user: endpoint.user.clone(),
        password: endpoint.password.clone(),
        payload: serde_json::to_string(n).unwrap_or_default(),
    }
}

fn accepted(req: &SendRequest, transaction_id: String) -> SendResponse {
    SendResponse {
        message_id: req.message_id.clone(),
        status: "SUCCESS".into(),
        transaction_id,
        result: "Message parse successfully".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random (version 4) UUID, as the seed's transactionId.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // The clock keeps ids apart if the system has no randomness to give.
        b[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A registered address as the admin API and CLI show it.
pub fn address_summary(a: &DirectAddress) -> serde_json::Value {
    serde_json::json!({
        "address": a.address,
        "org": a.org,
        "edge": a.edge,
        "endpoint": a.endpoint.as_ref().map(|e| &e.url),
        "notify": a.notify.as_ref().map(|e| &e.url),
        "created_at": a.created_at,
    })
}

/// The Direct message carrying a measurement's report for an integration's
/// `outbound.direct`: the PDF as the attachment (a text summary when there
/// is none), the values in the body, the order's patient in the patient
/// fields. `message_id` is left for the caller to set.
pub fn result_message(
    d: &crate::integration::DirectOutbound,
    appointment: &medrelay_worklist::Appointment,
    patient: &medrelay_worklist::Patient,
    m: &medrelay_worklist::Measurement,
) -> SendRequest {
    let name = [
        patient.family.as_deref(),
        patient.given.first().map(String::as_str),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let lines: Vec<String> = m
        .observations
        .iter()
        .map(|o| {
            let value = match &o.value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(c) => c
                    .get("display")
                    .or_else(|| c.get("code"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
                other => other.to_string(),
            };
            let mut line = format!(
                "{}: {value}",
                o.display.as_deref().unwrap_or(o.code.as_str())
            );
            if let Some(u) = &o.unit {
                line.push_str(&format!(" {u}"));
            }
            if let Some(r) = &o.reference_range {
                line.push_str(&format!(" (reference {r})"));
            }
            if let Some(f) = &o.abnormal_flag {
                line.push_str(&format!(" [{f}]"));
            }
            line
        })
        .collect();
    let procedure = appointment
        .order
        .procedure
        .as_ref()
        .and_then(|p| p.display.clone().or(Some(p.code.clone())));
    let body = format!(
        "{} result for {name}, performed {}{}.\n\n{}",
        m.kind,
        m.performed_at,
        procedure
            .map(|p| format!(" (ordered: {p})"))
            .unwrap_or_default(),
        lines.join("\n")
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let attachment = if m.report_pdf.is_empty() {
        medrelay_direct::Attachment {
            attachment_class: Some("text/plain".into()),
            attachment_content: b64.encode(body.as_bytes()),
            attachment_title: Some(format!("{} result", m.kind)),
            attachment_file_name: None,
        }
    } else {
        medrelay_direct::Attachment {
            attachment_class: Some("application/pdf".into()),
            attachment_content: b64.encode(&m.report_pdf),
            attachment_title: Some(format!("{} report", m.kind)),
            attachment_file_name: None,
        }
    };
    let id = patient.identifiers.iter().find(|i| !i.value.is_empty());
    let address = patient.address.clone().unwrap_or_default();
    SendRequest {
        from_direct_address: d.from.clone(),
        to_direct_address: d.to.clone(),
        email_attachment_list: vec![attachment],
        message_subject: Some(
            d.subject
                .clone()
                .unwrap_or_else(|| format!("{} result for {name}", m.kind)),
        ),
        message_body: Some(body),
        patient_id: id.map(|i| i.value.clone()),
        assigning_authority: id.and_then(|i| i.system.clone()),
        patient_id_type: id.and_then(|i| i.kind.clone()),
        patient_lastname: patient.family.clone(),
        patient_firstname: patient.given.first().cloned(),
        patient_middlename: patient.given.get(1).cloned(),
        patient_dob: patient.birth_date.as_ref().map(|d| d.replace('-', "")),
        patient_gender: patient.sex.as_deref().map(|s| {
            match s.to_ascii_lowercase().as_str() {
                "male" | "m" => "M",
                "female" | "f" => "F",
                "other" | "o" => "O",
                _ => "U",
            }
            .to_string()
        }),
        patient_address_street1: address.street,
        patient_address_street2: address.other,
        patient_address_city: address.city,
        patient_address_state: address.state,
        patient_address_zip: address.postal_code,
        xdm: Some(d.xdm),
        asm_enabled: Some(true),
        ..SendRequest::default()
    }
}
