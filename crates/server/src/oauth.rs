//! OAuth 2.0 for the clinical systems that call medrelay (the `join` and
//! `ziplanerx` presets push appointments with client credentials): the token
//! endpoint, the extractor that checks its access tokens, and a per-client rate
//! limiter.
//!
//! - [`token`] serves `POST /oauth/token`, the client credentials grant of
//!   RFC 6749 §4.4. The client authenticates with HTTP Basic (§2.3.1: client id
//!   and secret form-urlencoded, then Base64) or with `client_id` and
//!   `client_secret` in the form body, never both. Errors follow §5.2:
//!   `{"error": "invalid_request" | "invalid_client" | "unsupported_grant_type"
//!   | "invalid_scope", "error_description": "…"}`; `invalid_client` is a 401
//!   with `WWW-Authenticate: Basic`. Every answer carries `Cache-Control:
//!   no-store`. Each client is rate limited ([`AppState::oauth_token_limiter`])
//!   before its secret is verified, which slows down guessing and bounds the
//!   argon2 work one client can cause.
//! - [`OAuthBearer`] authenticates a request by `Authorization: Bearer <access
//!   token>` (RFC 6750): unknown, revoked and expired tokens get 401 with
//!   `WWW-Authenticate: Bearer … error="invalid_token"`;
//!   [`OAuthBearer::require_scope`] answers 403 `insufficient_scope`.
//! - [`RateLimiter`] is a token bucket per key (client id) that routes call
//!   themselves; [`RateLimited`] turns into a 429 with `Retry-After`.
//!
//! ```ignore
//! pub async fn push_appointments(
//!     State(state): State<AppState>,
//!     bearer: OAuthBearer,
//!     Path(name): Path<String>,
//! ) -> Result<StatusCode, ApiError> {
//!     bearer.require_scope("appointments:write")?;
//!     state.integration_limiter.check(bearer.client_id())?;
//!     // … everything confined to bearer.org()
//! }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use medrelay_store::OAuthToken;
use medrelay_store::oauth::{ACCESS_TOKEN_PREFIX, parse_scope, token_hash};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// Default lifetime of an access token (`[server] oauth_token_ttl`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Default rate of token requests per client and second
/// (`[server] oauth_token_rate`).
pub const DEFAULT_TOKEN_RATE: f64 = 10.0;
/// Default burst of token requests per client (`[server] oauth_token_burst`).
pub const DEFAULT_TOKEN_BURST: u32 = 20;
/// Largest token request body; a real one is under 300 bytes.
pub const MAX_TOKEN_REQUEST: usize = 16 * 1024;

// ---------------------------------------------------------------- rate limiting

/// A token bucket per key: each key may make `burst` requests at once and
/// `per_second` on average. Cheap to clone (shared state); safe to call from
/// every request. Keys whose bucket is full again are forgotten as the map
/// grows, so memory follows the keys active in the last `burst / per_second`
/// seconds.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Limiter>,
}

struct Limiter {
    per_second: f64,
    burst: f64,
    state: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<String, Bucket>,
    /// Sweep full buckets when the map reaches this size.
    sweep_at: usize,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The map size at which the first sweep happens.
const SWEEP_MIN: usize = 1024;

/// A request refused by a [`RateLimiter`]: it may be retried after
/// `retry_after`. As a response (or through `?` into [`ApiError`]): 429 with
/// `Retry-After` in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl RateLimited {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

impl From<RateLimited> for ApiError {
    fn from(r: RateLimited) -> Self {
        ApiError::TooManyRequests {
            retry_after: r.retry_after_secs(),
        }
    }
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("per_second", &self.inner.per_second)
            .field("burst", &self.inner.burst)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `per_second` requests per second per key on average, `burst` at once.
    /// Values below the smallest sensible ones (a positive rate, a burst of 1)
    /// are raised to them.
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1e-6
        };
        RateLimiter {
            inner: Arc::new(Limiter {
                per_second,
                burst: f64::from(burst.max(1)),
                state: Mutex::new(Buckets {
                    map: HashMap::new(),
                    sweep_at: SWEEP_MIN,
                }),
            }),
        }
    }

    /// Takes one request from `key`'s bucket now, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), RateLimited> {
        self.check_at(key, Instant::now())
    }

    /// [`check`](Self::check) at a given instant (for tests).
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), RateLimited> {
        let l = &*self.inner;
        let mut state = l.state.lock().unwrap_or_else(|e| e.into_inner());
        let refill = |b: &Bucket| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            (b.tokens + elapsed * l.per_second).min(l.burst)
        };
        if !state.map.contains_key(key) && state.map.len() >= state.sweep_at {
            state.map.retain(|_, b| refill(b) < l.burst);
            state.sweep_at = (state.map.len() * 2).max(SWEEP_MIN);
        }
        let bucket = state.map.entry(key.to_owned()).or_insert(Bucket {
            tokens: l.burst,
            at: now,
        });
        let tokens = refill(bucket);
        bucket.at = now.max(bucket.at);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(RateLimited {
                retry_after: Duration::from_secs_f64((1.0 - tokens) / l.per_second),
            })
        }
    }

    /// Keys currently tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

// ---------------------------------------------------------------- the extractor

/// A request authenticated by an OAuth 2.0 access token from `/oauth/token`:
/// `Authorization: Bearer mro_…`, known, unexpired, its client enabled. The
/// grant is the store's [`OAuthToken`]: client id, organisation, scopes.
///
/// Rejections ([`ApiError`], JSON): 401 without a bearer token
/// (`WWW-Authenticate: Bearer realm="medrelay"`), 401 `invalid_token` for an
/// unknown, revoked or expired one.
#[derive(Debug, Clone)]
pub struct OAuthBearer(pub OAuthToken);

impl OAuthBearer {
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The organisation every action of this request is confined to.
    pub fn org(&self) -> &str {
        &self.0.org
    }

    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.has_scope(scope)
    }

    /// `Err` (403 `insufficient_scope`, naming `scope` in the
    /// `WWW-Authenticate` challenge) unless the token was granted `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope.to_owned()))
        }
    }
}

impl FromRequestParts<AppState> for OAuthBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing Authorization: Bearer token",
            ))?;
        let text = value
            .to_str()
            .map_err(|_| ApiError::InvalidToken("malformed Authorization header"))?;
        let (scheme, token) = text
            .split_once(' ')
            .ok_or(ApiError::Unauthorized("expected a Bearer token"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized("expected a Bearer token"));
        }
        let token = token.trim();
        if !token.starts_with(ACCESS_TOKEN_PREFIX) {
            return Err(ApiError::InvalidToken("unknown or revoked access token"));
        }
        let grant = state
            .store
            .oauth_token_by_hash(&token_hash(token))
            .await?
            .ok_or(ApiError::InvalidToken("unknown or revoked access token"))?;
        if grant.is_expired(medrelay_engine::clock::now_ms()) {
            return Err(ApiError::InvalidToken("the access token expired"));
        }
        Ok(OAuthBearer(grant))
    }
}

// ---------------------------------------------------------------- the token endpoint

/// An error of the token endpoint, RFC 6749 §5.2.
#[derive(Debug)]
pub struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl TokenError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        TokenError {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    fn server_error(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "oauth: token request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the token could not be issued; try again",
        )
    }
}

impl From<RateLimited> for TokenError {
    fn from(r: RateLimited) -> Self {
        let secs = r.retry_after_secs();
        TokenError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many token requests for this client; retry in {secs} s"),
            )
        }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut resp = (self.status, Json(body)).into_response();
        let headers = resp.headers_mut();
        no_store(headers);
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"medrelay\", charset=\"UTF-8\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// RFC 6749 §5.1: token responses are never cached.
fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The parameters of a token request, each at most once (§3.2); a parameter
/// sent without a value counts as absent (§3.1).
#[derive(Default)]
struct TokenRequest {
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn parse_form(body: &[u8]) -> Result<TokenRequest, TokenError> {
    let mut req = TokenRequest::default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(body) {
        if seen.iter().any(|k| *k == key) {
            return Err(TokenError::invalid_request(format!(
                "the parameter {key:?} is repeated"
            )));
        }
        seen.push(key.clone().into_owned());
        let slot = match key.as_ref() {
            "grant_type" => &mut req.grant_type,
            "scope" => &mut req.scope,
            "client_id" => &mut req.client_id,
            "client_secret" => &mut req.client_secret,
            // Unknown parameters are ignored (§3.2).
            _ => continue,
        };
        if !value.is_empty() {
            *slot = Some(value.into_owned());
        }
    }
    Ok(req)
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The client credentials of an `Authorization: Basic` header (§2.3.1), if
/// there is an Authorization header at all.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, TokenError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || TokenError::invalid_client("malformed HTTP Basic client credentials");
    let text = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(TokenError::invalid_client(
            "authenticate the client with HTTP Basic or client_id and client_secret",
        ));
    }
    let encoded = encoded.trim();
    let raw = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
    let id = form_decode(id).ok_or_else(bad)?;
    let secret = form_decode(secret).ok_or_else(bad)?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `POST /oauth/token`: the client credentials grant (see the module docs).
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match issue(&state, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn issue(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, TokenError> {
    if !is_form(headers) {
        return Err(TokenError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "expected Content-Type: application/x-www-form-urlencoded",
        ));
    }
    let body = axum::body::to_bytes(body, MAX_TOKEN_REQUEST)
        .await
        .map_err(|_| {
            TokenError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the token request is larger than {MAX_TOKEN_REQUEST} bytes"),
            )
        })?;
    let req = parse_form(&body)?;
    match req.grant_type.as_deref() {
        None => return Err(TokenError::invalid_request("grant_type is missing")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(TokenError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use client_credentials"),
            ));
        }
    }
    let (client_id, secret) = match (
        basic_credentials(headers)?,
        req.client_id,
        req.client_secret,
    ) {
        (Some(_), _, Some(_)) => {
            return Err(TokenError::invalid_request(
                "use one client authentication method: HTTP Basic or client_secret, not both",
            ));
        }
        (Some((id, _)), Some(form_id), None) if form_id != id => {
            return Err(TokenError::invalid_request(
                "client_id differs from the HTTP Basic client id",
            ));
        }
        (Some(basic), _, None) => basic,
        (None, Some(id), Some(secret)) => (id, secret),
        (None, Some(_), None) => {
            return Err(TokenError::invalid_client(
                "client authentication failed: client_secret is missing",
            ));
        }
        (None, None, _) => {
            return Err(TokenError::invalid_client(
                "client authentication is required (HTTP Basic or client_id and client_secret)",
            ));
        }
    };
    let requested = match req.scope.as_deref() {
        None => None,
        Some(text) => Some(parse_scope(text).map_err(TokenError::invalid_scope)?),
    };

    let failed = || TokenError::invalid_client("client authentication failed");
    let known = state
        .store
        .oauth_client(&client_id)
        .await
        .map_err(TokenError::server_error)?;
    if known.is_none_or(|c| c.disabled) {
        return Err(failed());
    }
    // Before the (deliberately slow) secret check: a client guessing secrets
    // gets at most `burst` tries at once and `rate` per second after that.
    state.oauth_token_limiter.check(&client_id)?;
    let client = state
        .store
        .verify_client_secret(&client_id, &secret)
        .await
        .map_err(TokenError::server_error)?
        .ok_or_else(|| {
            tracing::info!(client_id = %client_id, "oauth: client authentication failed");
            failed()
        })?;

    let scopes = match requested {
        // An empty `scope` parameter counts as absent: every scope of the client.
        Some(list) if !list.is_empty() => {
            if let Some(s) = list.iter().find(|s| !client.scopes.contains(s)) {
                return Err(TokenError::invalid_scope(format!(
                    "the scope {s:?} is not granted to this client"
                )));
            }
            list
        }
        _ => client.scopes.clone(),
    };
    let ttl = state.oauth_token_ttl;
    let issued = state
        .store
        .issue_oauth_token(&client.id, &client.org, &scopes, ttl)
        .await
        .map_err(TokenError::server_error)?;
    tracing::info!(client_id = %client.id, org = %client.org, "oauth: access token issued");
    let body = json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "scope": issued.token.scope(),
    });
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

/// Deletes expired access tokens and dashboard sessions every `every` until
/// `shutdown` resolves
/// (`medrelay serve` runs it beside the server).
pub async fn prune_expired_tokens(
    store: medrelay_store::Store,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let now = medrelay_engine::clock::now_ms();
        match store.prune_oauth_tokens(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "oauth: pruned expired access tokens"),
            Err(e) => tracing::warn!(error = %e, "oauth: pruning expired access tokens failed"),
        }
        // The dashboard's expired sessions go the same way.
        match store.prune_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "dashboard: pruned expired sessions"),
            Err(e) => tracing::warn!(error = %e, "dashboard: pruning expired sessions failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut shutdown => return,
        }
    }
}

#[cfg(test)]
mod tests;
