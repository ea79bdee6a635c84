//! Payloads to an HTTP(S) endpoint (POST, PUT or PATCH), judged by the status code.
//!
//! One call to [`HttpDestination::send`] is one attempt; whether and when to try
//! again is the queue worker's business, told by [`HttpError::retryable`] and
//! [`HttpError::retry_after`]:
//!
//! | answer | outcome |
//! | --- | --- |
//! | 2xx | sent |
//! | 429 | retry, after `Retry-After` if the server gave one |
//! | 408, 5xx | retry (503 also honours `Retry-After`) |
//! | connection refused or reset, DNS, TLS, timeouts | retry |
//! | 3xx | failed: redirects are not followed |
//! | any other 4xx | failed for good, the body kept as the response |
//!
//! With OAuth 2.0 client credentials (`auth = { oauth2 = { … } }`) a token is
//! fetched from the token endpoint first and kept for later attempts until
//! shortly before it expires:
//!
//! | token endpoint | outcome |
//! | --- | --- |
//! | 200 with a token | the request is sent with `Authorization: Bearer …` |
//! | connection trouble, timeouts, 5xx, 408, 429 | retry |
//! | 400, 401 or any other answer (`invalid_client`, …) | failed for good |
//!
//! A 401 from the endpoint drops the kept token; a fresh one is fetched and the
//! request sent once more, within the same attempt. A second 401 is final.
//!
//! Secrets (the values of the `auth` block, OAuth 2.0 access tokens) never appear
//! in error messages, logs or `Debug` output, and neither do user names,
//! passwords or query strings of the URL.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER,
};
use reqwest::{Method, StatusCode, Url};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// At most this much of a response body is kept (and read).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a response body an error message quotes, in characters.
const BODY_IN_MESSAGE: usize = 200;

/// An `http` destination as it appears in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDestinationConfig {
    /// `http://` or `https://` address. `{message_id}`, `{delivery_id}` and
    /// `{control_id}` (MSH-10) are filled per delivery, percent-encoded.
    pub url: String,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers. They override the content type but may not repeat
    /// a header that `auth` sets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Defaults by payload: `application/hl7-v2` if it starts with `MSH`,
    /// `application/json` if it parses as JSON, else `application/octet-stream`.
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    #[serde(default)]
    pub tls: Option<HttpTls>,
    /// Time allowed for the TCP connection and the TLS handshake.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for the whole request, connecting and reading the answer included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_method() -> String {
    "POST".to_string()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl HttpDestinationConfig {
    /// A destination for `url` with every optional key at its default.
    pub fn new(url: &str) -> Self {
        HttpDestinationConfig {
            url: url.to_string(),
            method: default_method(),
            headers: BTreeMap::new(),
            content_type: None,
            auth: None,
            tls: None,
            connect_timeout: default_connect_timeout(),
            timeout: default_timeout(),
        }
    }
}

/// TLS settings for `https://` URLs: `{ ca = "ca.pem", cert = "client.pem", key = "client.key" }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    /// PEM file of the CA certificate(s) to trust. When set, only these are
    /// trusted; without it the system's trust store is used.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain, leaf first) for mutual TLS; needs `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// How the destination authenticates. In the configuration exactly one of:
///
/// - `{ api_key = "…", header = "X-Api-Key" }` (`header` defaults to `X-Api-Key`)
/// - `{ basic = { user = "…", password = "…" } }`
/// - `{ bearer = "…" }`
/// - `{ client_id = "…", client_secret = "…" }`, sent as `X-Client-Id` and
///   `X-Client-Secret` unless `id_header` / `secret_header` name other headers
/// - `{ oauth2 = { token_url = "…", client_id = "…", client_secret = "…" } }`,
///   OAuth 2.0 client credentials; see [`OAuth2Config`]
///
/// `Debug` never shows the secret parts.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawAuth")]
pub enum HttpAuth {
    /// A key in a header of its own.
    ApiKey { header: String, key: String },
    /// `Authorization: Basic base64(user:password)`.
    Basic { user: String, password: String },
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// Client id and secret, each in a header of its own.
    ClientIdSecret {
        id_header: String,
        id: String,
        secret_header: String,
        secret: String,
    },
    /// OAuth 2.0 client credentials grant: `Authorization: Bearer <token>` with
    /// a token fetched from `token_url`.
    OAuth2(OAuth2Config),
}

/// OAuth 2.0 client credentials (RFC 6749, section 4.4), spelled
/// `{ oauth2 = { token_url = "https://idp/token", client_id = "…", client_secret = "…",
/// scope = "a b", audience = "…", auth_style = "basic" } }`.
///
/// The token request uses the destination's `tls` settings and timeouts.
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint, `http://` or `https://`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Space-separated scopes to ask for; none when unset.
    #[serde(default)]
    pub scope: Option<String>,
    /// Sent as the extra form parameter `audience` when set (Auth0, Okta and
    /// others want it).
    #[serde(default)]
    pub audience: Option<String>,
    /// Where the client id and secret go; `basic` by default.
    #[serde(default)]
    pub auth_style: OAuth2AuthStyle,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuth2AuthStyle {
    /// HTTP Basic with the (form-encoded) client id and secret (RFC 6749, 2.3.1).
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form parameters of the request body.
    Body,
}

impl fmt::Debug for OAuth2Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Config")
            .field("token_url", &shown_url_template(&self.token_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("auth_style", &self.auth_style)
            .finish()
    }
}

impl OAuth2Config {
    /// Checks what can be checked without asking the token endpoint; errors name
    /// the key, never a secret.
    fn check(&self) -> Result<Url, String> {
        let shown = shown_url_template(&self.token_url);
        let url = Url::parse(&self.token_url)
            .map_err(|e| format!("auth: oauth2.token_url {shown}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "auth: oauth2.token_url {shown}: scheme {}:// is not supported; use https:// (or http://)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("auth: oauth2.token_url {shown}: no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "auth: oauth2.token_url {shown}: holds a user name or password; use `client_id` and `client_secret`"
            ));
        }
        if self.client_id.is_empty() {
            return Err("auth: `oauth2.client_id` is empty".into());
        }
        if self.client_secret.is_empty() {
            return Err("auth: `oauth2.client_secret` is empty".into());
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return Err("auth: `oauth2.audience` is empty; leave it out instead".into());
        }
        Ok(url)
    }

    fn scopes(&self) -> Vec<oauth2::Scope> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|s| oauth2::Scope::new(s.to_string()))
            .collect()
    }
}

pub const DEFAULT_API_KEY_HEADER: &str = "X-Api-Key";
pub const DEFAULT_CLIENT_ID_HEADER: &str = "X-Client-Id";
pub const DEFAULT_CLIENT_SECRET_HEADER: &str = "X-Client-Secret";

const REDACTED: &str = "<redacted>";

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpAuth::ApiKey { header, .. } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("key", &REDACTED)
                .finish(),
            HttpAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &REDACTED)
                .finish(),
            HttpAuth::Bearer { .. } => f.debug_struct("Bearer").field("token", &REDACTED).finish(),
            HttpAuth::ClientIdSecret {
                id_header,
                id,
                secret_header,
                ..
            } => f
                .debug_struct("ClientIdSecret")
                .field("id_header", id_header)
                .field("id", id)
                .field("secret_header", secret_header)
                .field("secret", &REDACTED)
                .finish(),
            HttpAuth::OAuth2(o) => f.debug_tuple("OAuth2").field(o).finish(),
        }
    }
}

/// The `auth` table as written; turned into [`HttpAuth`] with errors that say
/// which keys go together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    basic: Option<RawBasic>,
    #[serde(default)]
    bearer: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    id_header: Option<String>,
    #[serde(default)]
    secret_header: Option<String>,
    #[serde(default)]
    oauth2: Option<OAuth2Config>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    user: String,
    #[serde(default)]
    password: String,
}

const AUTH_KINDS: &str =
    "`api_key`, `basic`, `bearer`, `client_id` with `client_secret`, or `oauth2`";

impl TryFrom<RawAuth> for HttpAuth {
    type Error = String;

    fn try_from(raw: RawAuth) -> Result<Self, String> {
        let mut kinds = Vec::new();
        if raw.api_key.is_some() {
            kinds.push("api_key");
        }
        if raw.basic.is_some() {
            kinds.push("basic");
        }
        if raw.bearer.is_some() {
            kinds.push("bearer");
        }
        if raw.client_id.is_some() || raw.client_secret.is_some() {
            kinds.push("client_id/client_secret");
        }
        if raw.oauth2.is_some() {
            kinds.push("oauth2");
        }
        match kinds.len() {
            0 => return Err(format!("auth: give one of {AUTH_KINDS}")),
            1 => {}
            _ => {
                return Err(format!(
                    "auth: give only one kind of authentication, found {}",
                    kinds.join(" and ")
                ));
            }
        }
        if raw.header.is_some() && raw.api_key.is_none() {
            return Err("auth: `header` goes with `api_key` only".into());
        }
        if (raw.id_header.is_some() || raw.secret_header.is_some()) && raw.client_id.is_none() {
            return Err(
                "auth: `id_header` and `secret_header` go with `client_id` and `client_secret` only"
                    .into(),
            );
        }
        let auth = if let Some(key) = raw.api_key {
            HttpAuth::ApiKey {
                header: raw
                    .header
                    .unwrap_or_else(|| DEFAULT_API_KEY_HEADER.to_string()),
                key,
            }
        } else if let Some(basic) = raw.basic {
            HttpAuth::Basic {
                user: basic.user,
                password: basic.password,
            }
        } else if let Some(token) = raw.bearer {
            HttpAuth::Bearer { token }
        } else if let Some(o) = raw.oauth2 {
            o.check()?;
            HttpAuth::OAuth2(o)
        } else {
            let (Some(id), Some(secret)) = (raw.client_id, raw.client_secret) else {
                return Err("auth: give both `client_id` and `client_secret`".into());
            };
            HttpAuth::ClientIdSecret {
                id_header: raw
                    .id_header
                    .unwrap_or_else(|| DEFAULT_CLIENT_ID_HEADER.to_string()),
                id,
                secret_header: raw
                    .secret_header
                    .unwrap_or_else(|| DEFAULT_CLIENT_SECRET_HEADER.to_string()),
                secret,
            }
        };
        auth.headers()?;
        Ok(auth)
    }
}

impl HttpAuth {
    /// The fixed headers this authentication adds, values marked sensitive.
    /// Errors name the offending key, never its value. OAuth 2.0 adds none here:
    /// its `Authorization` header is set per request.
    pub fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        fn name(n: &str, key: &str) -> Result<HeaderName, String> {
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("auth: {key} {n:?} is not a valid header name"))
        }
        fn secret(v: &str, key: &str) -> Result<HeaderValue, String> {
            if v.is_empty() {
                return Err(format!("auth: `{key}` is empty"));
            }
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                format!("auth: `{key}` holds characters a header cannot carry (control characters or non-ASCII text)")
            })?;
            value.set_sensitive(true);
            Ok(value)
        }
        Ok(match self {
            HttpAuth::ApiKey { header, key } => {
                vec![(name(header, "header")?, secret(key, "api_key")?)]
            }
            HttpAuth::Basic { user, password } => {
                if user.is_empty() {
                    return Err("auth: `basic.user` is empty".into());
                }
                if user.contains(':') {
                    return Err("auth: `basic.user` may not contain ':'".into());
                }
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                vec![(AUTHORIZATION, secret(&format!("Basic {encoded}"), "basic")?)]
            }
            HttpAuth::Bearer { token } => {
                if token.is_empty() {
                    return Err("auth: `bearer` is empty".into());
                }
                vec![(AUTHORIZATION, secret(&format!("Bearer {token}"), "bearer")?)]
            }
            HttpAuth::ClientIdSecret {
                id_header,
                id,
                secret_header,
                secret: s,
            } => {
                let id_name = name(id_header, "id_header")?;
                let secret_name = name(secret_header, "secret_header")?;
                if id_name == secret_name {
                    return Err("auth: `id_header` and `secret_header` must differ".into());
                }
                vec![
                    (id_name, secret(id, "client_id")?),
                    (secret_name, secret(s, "client_secret")?),
                ]
            }
            HttpAuth::OAuth2(o) => {
                o.check()?;
                Vec::new()
            }
        })
    }
}

/// Why an attempt did not succeed. Maps one to one onto the engine's
/// `DeliveryError`, plus the wait the server asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// One line for an operator; no secrets.
    pub message: String,
    /// Worth trying again (network trouble, timeout, 5xx, 408, 429).
    pub retryable: bool,
    /// What the server answered, as `HTTP <status>\n<body>` (body cut at 64 KiB).
    pub response: Option<Vec<u8>>,
    /// From `Retry-After` on a 429 or 503; the earliest sensible next attempt.
    pub retry_after: Option<Duration>,
}

impl HttpError {
    fn retry(message: String) -> Self {
        HttpError {
            message,
            retryable: true,
            response: None,
            retry_after: None,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for HttpError {}

/// One configured HTTP destination. Clones share the client (and its
/// connections) and, with OAuth 2.0, the kept token.
#[derive(Clone)]
pub struct HttpDestination {
    client: reqwest::Client,
    cfg: HttpDestinationConfig,
    method: Method,
    /// Custom headers, then the auth headers (sensitive).
    headers: HeaderMap,
    content_type: Option<HeaderValue>,
    /// OAuth 2.0 client credentials: the token endpoint client and kept token.
    oauth2: Option<Arc<OAuth2Session>>,
}

impl fmt::Debug for HttpDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDestination")
            .field("method", &self.method)
            .field("url", &shown_url_template(&self.cfg.url))
            .finish_non_exhaustive()
    }
}

/// The connection settings a poller shares with a destination.
pub struct FetchSettings<'a> {
    pub url: &'a str,
    pub auth: Option<&'a HttpAuth>,
    pub headers: &'a BTreeMap<String, String>,
    pub tls: Option<&'a HttpTls>,
    pub timeout: Duration,
}

impl<'a> FetchSettings<'a> {
    /// A client for [`HttpDestination::fetch`] with these settings.
    pub fn client(&self) -> Result<HttpDestination, String> {
        let mut h = HttpDestinationConfig::new(self.url);
        h.auth = self.auth.cloned();
        h.headers = self.headers.clone();
        h.tls = self.tls.cloned();
        h.timeout = self.timeout;
        HttpDestination::new(h)
    }
}

impl HttpDestination {
    /// Checks the configuration and builds the client (rustls with aws-lc-rs,
    /// no redirects, no proxies from the environment). Errors are worded for the
    /// person who wrote the configuration.
    pub fn new(cfg: HttpDestinationConfig) -> Result<Self, String> {
        let method = match cfg.method.to_ascii_uppercase().as_str() {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            _ => {
                return Err(format!(
                    "method {:?} is not supported; use POST, PUT or PATCH",
                    cfg.method
                ));
            }
        };
        check_url(&cfg.url, cfg.tls.is_some(), cfg.auth.is_some())?;
        if cfg.connect_timeout.is_zero() {
            return Err("connect_timeout must be greater than zero".into());
        }
        if cfg.timeout.is_zero() {
            return Err("timeout must be greater than zero".into());
        }

        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
            if matches!(
                n.as_str(),
                "host" | "content-length" | "transfer-encoding" | "connection" | "upgrade" | "te"
            ) {
                return Err(format!(
                    "headers: {name} is set by the HTTP client and cannot be configured"
                ));
            }
            let v = HeaderValue::from_str(value).map_err(|_| {
                format!("headers: the value of {name} holds characters a header cannot carry (control characters or non-ASCII text)")
            })?;
            headers.insert(n, v);
        }
        if let Some(HttpAuth::OAuth2(_)) = &cfg.auth
            && headers.contains_key(AUTHORIZATION)
        {
            return Err(format!(
                "header {AUTHORIZATION} is set both under `headers` and by `auth`; keep one"
            ));
        }
        if let Some(auth) = &cfg.auth {
            for (n, v) in auth.headers()? {
                if headers.contains_key(&n) {
                    return Err(format!(
                        "header {n} is set both under `headers` and by `auth`; keep one"
                    ));
                }
                headers.insert(n, v);
            }
        }
        let content_type = match &cfg.content_type {
            Some(ct) => Some(
                HeaderValue::from_str(ct)
                    .map_err(|_| format!("content_type {ct:?} is not a valid header value"))?,
            ),
            None => None,
        };

        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .http1_title_case_headers()
            .user_agent(concat!("medrelay/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = &cfg.tls {
            builder = apply_tls(builder, tls)?;
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?;
        let oauth2 = match &cfg.auth {
            Some(HttpAuth::OAuth2(o)) => Some(Arc::new(OAuth2Session::new(o)?)),
            _ => None,
        };
        Ok(HttpDestination {
            client,
            cfg,
            method,
            headers,
            content_type,
            oauth2,
        })
    }

    pub fn config(&self) -> &HttpDestinationConfig {
        &self.cfg
    }

    /// [`send`](Self::send) for a queued delivery, `{control_id}` taken from MSH-10.
    pub async fn send_delivery(&self, d: &medrelay_store::Delivery) -> Result<Vec<u8>, HttpError> {
        let control_id = hl7v2::Message::parse(&d.payload)
            .ok()
            .and_then(|m| m.header().control_id().map(|v| v.to_string()));
        self.send(d.message_id, d.id, control_id.as_deref(), &d.payload)
            .await
    }

    /// One attempt to deliver `payload`. `Ok` carries `HTTP <status>\n<body>`, the
    /// body cut at [`MAX_RESPONSE_BYTES`].
    pub async fn send(
        &self,
        message_id: i64,
        delivery_id: i64,
        control_id: Option<&str>,
        payload: &[u8],
    ) -> Result<Vec<u8>, HttpError> {
        let filled = fill_url(&self.cfg.url, message_id, delivery_id, control_id);
        let url = Url::parse(&filled).map_err(|e| HttpError {
            message: format!(
                "url {} is not valid once its placeholders are filled: {e}",
                shown_url_template(&self.cfg.url)
            ),
            retryable: false,
            response: None,
            retry_after: None,
        })?;

        let (response, retried_with_fresh_token) = self
            .exchange(self.method.clone(), &url, Some(payload))
            .await?;
        let (status, retry_after, location) = answer_head(&response, &url);
        let body = read_body(response, MAX_RESPONSE_BYTES).await;
        judge(status, &url, body, retry_after, location).map_err(|mut e| {
            if retried_with_fresh_token && status == StatusCode::UNAUTHORIZED {
                e.message
                    .push_str(" (refused a freshly fetched OAuth 2.0 token too)");
            }
            e
        })
    }

    /// One request to `url` with this connector's client, headers,
    /// authentication (OAuth 2.0 included) and TLS, returning the answer's body
    /// (at most `max_bytes`) on 2xx: what a poller uses to fetch appointments or
    /// messages. Failures are classified as for a delivery.
    pub async fn fetch(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&[u8]>,
        max_bytes: usize,
    ) -> Result<Vec<u8>, HttpError> {
        let url = Url::parse(url).map_err(|e| HttpError {
            message: format!("url {} is not valid: {e}", shown_url_template(url)),
            retryable: false,
            response: None,
            retry_after: None,
        })?;
        let (response, _) = self.exchange(method, &url, body).await?;
        let (status, retry_after, location) = answer_head(&response, &url);
        let body = read_body(response, max_bytes).await;
        if status.is_success() {
            return Ok(body);
        }
        judge(status, &url, body, retry_after, location)
    }

    /// Sends the request, once more with a fresh OAuth 2.0 token after a 401;
    /// `true` when that second try happened.
    async fn exchange(
        &self,
        method: reqwest::Method,
        url: &Url,
        payload: Option<&[u8]>,
    ) -> Result<(reqwest::Response, bool), HttpError> {
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 1);
        if let Some(payload) = payload {
            let content_type = self
                .content_type
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static(detect_content_type(payload)));
            headers.insert(CONTENT_TYPE, content_type);
        }
        for (n, v) in &self.headers {
            headers.insert(n.clone(), v.clone());
        }

        let mut token = match &self.oauth2 {
            Some(o) => Some(o.token(self, None).await?),
            None => None,
        };
        let mut retried_with_fresh_token = false;
        loop {
            if let Some((value, _)) = &token {
                headers.insert(AUTHORIZATION, value.clone());
            }
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(payload) = payload {
                request = request.body(payload.to_vec());
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.transport_error(e, url))?;
            match (&self.oauth2, &token) {
                (Some(o), Some((_, generation)))
                    if response.status() == StatusCode::UNAUTHORIZED
                        && !retried_with_fresh_token =>
                {
                    // The token may have been revoked or have expired early: once
                    // more with a fresh one, within this attempt.
                    let generation = *generation;
                    drop(read_body(response, MAX_RESPONSE_BYTES).await);
                    tracing::debug!(
                        url = %shown_url(url),
                        "HTTP 401 with an OAuth 2.0 token; fetching a fresh one"
                    );
                    token = Some(o.token(self, Some(generation)).await?);
                    retried_with_fresh_token = true;
                }
                _ => return Ok((response, retried_with_fresh_token)),
            }
        }
    }

    fn transport_error(&self, e: reqwest::Error, url: &Url) -> HttpError {
        let e = e.without_url();
        let target = host_port(url);
        let shown = shown_url(url);
        let detail = error_chain(&e);
        if e.is_builder() {
            return HttpError {
                message: format!("cannot build the request to {shown}: {detail}"),
                retryable: false,
                response: None,
                retry_after: None,
            };
        }
        if e.is_timeout() {
            let message = if e.is_connect() {
                format!(
                    "connecting to {target} timed out after {} ({shown})",
                    humantime::format_duration(self.cfg.connect_timeout)
                )
            } else {
                format!(
                    "timed out: no complete answer from {target} within {} ({shown})",
                    humantime::format_duration(self.cfg.timeout)
                )
            };
            return HttpError::retry(message);
        }
        if let Some(tls) = find_rustls_error(&e) {
            let hint = match tls {
                rustls::Error::AlertReceived(
                    rustls::AlertDescription::CertificateRequired
                    | rustls::AlertDescription::BadCertificate
                    | rustls::AlertDescription::UnknownCA
                    | rustls::AlertDescription::HandshakeFailure,
                ) if self.cfg.tls.as_ref().is_none_or(|t| t.cert.is_none()) => {
                    "; the server may want a client certificate (tls.cert and tls.key)"
                }
                rustls::Error::AlertReceived(
                    rustls::AlertDescription::CertificateRequired
                    | rustls::AlertDescription::BadCertificate
                    | rustls::AlertDescription::UnknownCA
                    | rustls::AlertDescription::CertificateExpired
                    | rustls::AlertDescription::CertificateRevoked
                    | rustls::AlertDescription::CertificateUnknown,
                ) => "; the server rejected our client certificate",
                rustls::Error::InvalidCertificate(_) => {
                    if self.cfg.tls.as_ref().is_some_and(|t| t.ca.is_some()) {
                        "; it is not trusted by the CA in tls.ca"
                    } else {
                        "; set tls.ca if the server uses a private CA"
                    }
                }
                _ => "",
            };
            return HttpError::retry(format!("TLS with {target} failed: {tls}{hint} ({shown})"));
        }
        match find_io_kind(&e) {
            Some(std::io::ErrorKind::ConnectionRefused) => {
                return HttpError::retry(format!("connection refused to {target} ({shown})"));
            }
            Some(std::io::ErrorKind::ConnectionReset) => {
                return HttpError::retry(format!("connection reset by {target} ({shown})"));
            }
            Some(std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::BrokenPipe) => {
                return HttpError::retry(format!(
                    "connection to {target} broke off: {detail} ({shown})"
                ));
            }
            _ => {}
        }
        if chain_mentions(&e, "connection closed before message completed") {
            return HttpError::retry(format!(
                "{target} closed the connection before answering ({shown})"
            ));
        }
        if chain_mentions(&e, "dns error") {
            let host = url.host_str().unwrap_or("");
            return HttpError::retry(format!("cannot resolve {host}: {detail} ({shown})"));
        }
        if e.is_connect() {
            return HttpError::retry(format!("cannot connect to {target}: {detail} ({shown})"));
        }
        HttpError::retry(format!("request to {shown} failed: {detail}"))
    }
}

// ---------------------------------------------------------------- OAuth 2.0

/// At most this much of a token endpoint's answer is read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long before its expiry a token is replaced: 30 s or a tenth of its
/// lifetime, whichever is longer. A token that lives no longer than that is
/// used for one request only.
pub fn token_refresh_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(30).max(lifetime / 10)
}

type TokenClient = oauth2::basic::BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

type TokenRequestError =
    oauth2::RequestTokenError<TokenHttpError, oauth2::basic::BasicErrorResponse>;

/// The token endpoint client and the token kept for the destination (and its
/// clones). No `Debug`: it holds the secret and the token.
struct OAuth2Session {
    client: TokenClient,
    scopes: Vec<oauth2::Scope>,
    audience: Option<String>,
    token_url: Url,
    /// Only to scrub it from messages quoting the token endpoint.
    secret: String,
    /// Held while a token is fetched: one token request at a time.
    cache: tokio::sync::Mutex<Option<CachedToken>>,
    /// Numbers the tokens fetched, so that a 401 drops only the token it was for.
    fetched: AtomicU64,
}

struct CachedToken {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    generation: u64,
    /// Fetch a new one from then on; `None`: no `expires_in`, kept until a 401.
    refresh_at: Option<Instant>,
}

impl OAuth2Session {
    fn new(cfg: &OAuth2Config) -> Result<Self, String> {
        let token_url = cfg.check()?;
        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(cfg.client_id.clone()))
            .set_client_secret(oauth2::ClientSecret::new(cfg.client_secret.clone()))
            .set_auth_type(match cfg.auth_style {
                OAuth2AuthStyle::Basic => oauth2::AuthType::BasicAuth,
                OAuth2AuthStyle::Body => oauth2::AuthType::RequestBody,
            })
            .set_token_uri(oauth2::TokenUrl::from_url(token_url.clone()));
        Ok(OAuth2Session {
            client,
            scopes: cfg.scopes(),
            audience: cfg.audience.clone(),
            token_url,
            secret: cfg.client_secret.clone(),
            cache: tokio::sync::Mutex::new(None),
            fetched: AtomicU64::new(0),
        })
    }

    /// The `Authorization` value to send and its generation: the kept token if
    /// it is still good and not the `rejected` one, else a fresh one.
    async fn token(
        &self,
        dest: &HttpDestination,
        rejected: Option<u64>,
    ) -> Result<(HeaderValue, u64), HttpError> {
        let mut cache = self.cache.lock().await;
        if let Some(kept) = cache.as_ref() {
            let usable = rejected != Some(kept.generation)
                && kept.refresh_at.is_none_or(|at| Instant::now() < at);
            if usable {
                return Ok((kept.header.clone(), kept.generation));
            }
        }
        *cache = None;
        let fresh = self.fetch(dest).await?;
        let out = (fresh.header.clone(), fresh.generation);
        *cache = Some(fresh);
        Ok(out)
    }

    async fn fetch(&self, dest: &HttpDestination) -> Result<CachedToken, HttpError> {
        use oauth2::TokenResponse as _;

        let http = TokenHttp {
            client: dest.client.clone(),
            status: AtomicU16::new(0),
        };
        let mut request = self
            .client
            .exchange_client_credentials()
            .add_scopes(self.scopes.iter().cloned());
        if let Some(audience) = &self.audience {
            request = request.add_extra_param("audience", audience.as_str());
        }
        let asked = Instant::now();
        let answer = request.request_async(&http).await;
        let status = http.status.load(Ordering::Relaxed);
        let answer = answer.map_err(|e| self.error(e, status, dest))?;

        let fail = |why: &str| HttpError {
            message: self.scrub(format!(
                "fetching an OAuth 2.0 token from {} failed: {why}",
                shown_url(&self.token_url)
            )),
            retryable: false,
            response: None,
            retry_after: None,
        };
        if *answer.token_type() != oauth2::basic::BasicTokenType::Bearer {
            return Err(fail(&format!(
                "token type {:?} is not supported (only Bearer)",
                answer.token_type().as_ref()
            )));
        }
        let token = answer.access_token().secret();
        if token.is_empty() {
            return Err(fail("the access token is empty"));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| fail("the access token holds characters a header cannot carry"))?;
        header.set_sensitive(true);
        let lifetime = answer.expires_in();
        let refresh_at = lifetime.map(|l| asked + l.saturating_sub(token_refresh_margin(l)));
        let generation = self.fetched.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            token_url = %shown_url(&self.token_url),
            expires_in = ?lifetime,
            generation,
            "fetched an OAuth 2.0 token"
        );
        Ok(CachedToken {
            header,
            generation,
            refresh_at,
        })
    }

    /// A failed token request as a delivery error: retry on trouble that may
    /// pass (network, timeouts, 5xx, 408, 429), fail for good on a refusal.
    fn error(&self, e: TokenRequestError, status: u16, dest: &HttpDestination) -> HttpError {
        let shown = shown_url(&self.token_url);
        let head = || {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            format!("HTTP {status} {reason}").trim_end().to_string()
        };
        let quoted = |body: &[u8]| {
            let snippet = body_snippet(body);
            if snippet.is_empty() {
                String::new()
            } else {
                format!(": {snippet}")
            }
        };
        let mut retry_after = None;
        let (why, retryable) = match e {
            oauth2::RequestTokenError::Request(TokenHttpError::Transport(e)) => {
                let inner = dest.transport_error(e, &self.token_url);
                let suffix = format!(" ({shown})");
                let why = inner
                    .message
                    .strip_suffix(&suffix)
                    .unwrap_or(&inner.message)
                    .to_string();
                (why, inner.retryable)
            }
            oauth2::RequestTokenError::Request(TokenHttpError::Status {
                body,
                retry_after: wait,
            }) => {
                retry_after = wait;
                let shown_wait = wait
                    .map(|d| {
                        format!(
                            " (Retry-After {})",
                            humantime::format_duration(Duration::from_secs(d.as_secs()))
                        )
                    })
                    .unwrap_or_default();
                (format!("{}{shown_wait}{}", head(), quoted(&body)), true)
            }
            oauth2::RequestTokenError::Request(TokenHttpError::Other(why)) => (why, false),
            oauth2::RequestTokenError::ServerResponse(answer) => {
                // `invalid_client: description (see uri)`
                (format!("{}: {answer}", head()), false)
            }
            oauth2::RequestTokenError::Parse(e, body) => {
                if status == 200 {
                    // The body may hold a token: name the problem, quote nothing.
                    let inner = e.inner().to_string();
                    let problem = if inner.starts_with("missing field") {
                        inner
                            .split(" at line ")
                            .next()
                            .unwrap_or(&inner)
                            .to_string()
                    } else if e.inner().is_data() {
                        format!("unexpected value at `{}`", e.path())
                    } else {
                        "not JSON".to_string()
                    };
                    (
                        format!("HTTP 200 but the answer is not a token response ({problem})"),
                        false,
                    )
                } else {
                    (format!("{}{}", head(), quoted(&body)), false)
                }
            }
            oauth2::RequestTokenError::Other(why) if status != 0 => {
                (format!("{}: {why}", head()), false)
            }
            oauth2::RequestTokenError::Other(why) => (why, false),
        };
        HttpError {
            message: self.scrub(format!(
                "fetching an OAuth 2.0 token from {shown} failed: {why}"
            )),
            retryable,
            response: None,
            retry_after,
        }
    }

    /// The client secret out of a message quoting the token endpoint.
    fn scrub(&self, message: String) -> String {
        if self.secret.len() >= 4 && message.contains(&self.secret) {
            message.replace(&self.secret, REDACTED)
        } else {
            message
        }
    }
}

/// oauth2's HTTP client, on the destination's reqwest client (same TLS
/// settings and timeouts, no redirects). Answers that are worth trying again
/// later (5xx, 408, 429) come back as errors; the rest go to oauth2 to parse.
struct TokenHttp {
    client: reqwest::Client,
    /// The status of the last answer, for messages.
    status: AtomicU16,
}

#[derive(Debug)]
enum TokenHttpError {
    Transport(reqwest::Error),
    /// A status worth trying again.
    Status {
        body: Vec<u8>,
        retry_after: Option<Duration>,
    },
    Other(String),
}

impl fmt::Display for TokenHttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenHttpError::Transport(e) => f.write_str(&error_chain(e)),
            TokenHttpError::Status { .. } => f.write_str("the token endpoint is unavailable"),
            TokenHttpError::Other(why) => f.write_str(why),
        }
    }
}

impl StdError for TokenHttpError {}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp {
    type Error = TokenHttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TokenHttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(|e| {
                TokenHttpError::Other(format!(
                    "cannot build the request: {}",
                    error_chain(&e.without_url())
                ))
            })?;
            let mut response = self
                .client
                .execute(request)
                .await
                .map_err(TokenHttpError::Transport)?;
            let status = response.status();
            self.status.store(status.as_u16(), Ordering::Relaxed);
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let headers = std::mem::take(response.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(TokenHttpError::Transport)? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_TOKEN_RESPONSE_BYTES {
                    return Err(TokenHttpError::Other(format!(
                        "{status}: the answer is larger than {} KiB",
                        MAX_TOKEN_RESPONSE_BYTES / 1024
                    )));
                }
            }
            if status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
            {
                let retry_after = (status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE)
                    .then_some(retry_after)
                    .flatten();
                return Err(TokenHttpError::Status { body, retry_after });
            }
            let mut answer = oauth2::HttpResponse::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}

/// Status code to outcome; `body` is what could be read of the answer.
fn judge(
    status: StatusCode,
    url: &Url,
    body: Vec<u8>,
    retry_after: Option<Duration>,
    location: Option<String>,
) -> Result<Vec<u8>, HttpError> {
    let code = status.as_u16();
    let mut response = format!("HTTP {code}\n").into_bytes();
    response.extend_from_slice(&body);
    if status.is_success() {
        return Ok(response);
    }
    let reason = status.canonical_reason().unwrap_or("");
    let head = format!("HTTP {code} {reason}").trim_end().to_string();
    let shown = shown_url(url);
    let snippet = body_snippet(&body);
    let quoted = if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    };
    if status.is_redirection() {
        let to = location.map(|l| format!(" to {l}")).unwrap_or_default();
        return Err(HttpError {
            message: format!(
                "{head} from {shown}: redirect{to} not followed (redirects are disabled; set url to the final address)"
            ),
            retryable: false,
            response: Some(response),
            retry_after: None,
        });
    }
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    let retry_after =
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            retry_after
        } else {
            None
        };
    let wait = retry_after
        .map(|d| {
            format!(
                " (Retry-After {})",
                humantime::format_duration(Duration::from_secs(d.as_secs()))
            )
        })
        .unwrap_or_default();
    Err(HttpError {
        message: format!("{head} from {shown}{wait}{quoted}"),
        retryable,
        response: Some(response),
        retry_after,
    })
}

/// Reads at most [`MAX_RESPONSE_BYTES`]; an error part-way keeps what arrived.
async fn read_body(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(max);
    body
}

/// Status, `Retry-After` and a redirect's target, read before the body.
fn answer_head(
    response: &reqwest::Response,
    url: &Url,
) -> (StatusCode, Option<Duration>, Option<String>) {
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| shown_location(url, l));
    (response.status(), retry_after, location)
}

/// The first [`BODY_IN_MESSAGE`] characters, on one line.
fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars().take(BODY_IN_MESSAGE) {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

/// `Retry-After` as delay seconds or an HTTP-date (IMF-fixdate, RFC 850 or
/// asctime). A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let when: SystemTime = if let Ok(dt) = chrono::DateTime::parse_from_rfc2822(value) {
        dt.with_timezone(&chrono::Utc).into()
    } else {
        let gmt = value.strip_suffix(" GMT").unwrap_or(value);
        let naive = chrono::NaiveDateTime::parse_from_str(gmt, "%A, %d-%b-%y %H:%M:%S")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y"))
            .ok()?;
        naive.and_utc().into()
    };
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `application/hl7-v2` for `MSH…`, `application/json` for JSON, else octets.
pub fn detect_content_type(payload: &[u8]) -> &'static str {
    if payload.starts_with(b"MSH") {
        "application/hl7-v2"
    } else if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

const PLACEHOLDERS: [&str; 3] = ["message_id", "delivery_id", "control_id"];

/// The URL with its placeholders filled, each value percent-encoded (everything
/// but `A-Z a-z 0-9 - . _ ~`).
pub fn fill_url(
    template: &str,
    message_id: i64,
    delivery_id: i64,
    control_id: Option<&str>,
) -> String {
    // control_id last: its encoded form cannot contain `{`, so it cannot be
    // mistaken for another placeholder.
    template
        .replace("{message_id}", &message_id.to_string())
        .replace("{delivery_id}", &delivery_id.to_string())
        .replace("{control_id}", &percent_encode(control_id.unwrap_or("")))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn check_url(template: &str, has_tls: bool, has_auth: bool) -> Result<(), String> {
    let shown = shown_url_template(template);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("url {shown}: unclosed '{{'"));
        };
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "url {shown}: unknown placeholder {{{name}}}; known are {{message_id}}, {{delivery_id}} and {{control_id}}"
            ));
        }
        rest = &after[end + 1..];
    }
    let url = Url::parse(&fill_url(template, 1, 1, Some("X")))
        .map_err(|e| format!("url {shown}: {e}"))?;
    if has_auth && (!url.username().is_empty() || url.password().is_some()) {
        return Err(format!(
            "url {shown}: holds a user name or password and `auth` is set too; keep credentials in `auth`"
        ));
    }
    match url.scheme() {
        "http" if has_tls => Err(format!(
            "url {shown}: tls is set but the url is http://; use https://"
        )),
        "http" | "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                Err(format!("url {shown}: no host"))
            } else {
                Ok(())
            }
        }
        other => Err(format!(
            "url {shown}: scheme {other}:// is not supported; use http:// or https://"
        )),
    }
}

/// The URL as messages show it: no user name, password, query or fragment.
fn shown_url(url: &Url) -> String {
    let mut u = url.clone();
    let had_query = u.query().is_some();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    let mut s = u.to_string();
    if had_query {
        s.push_str("?…");
    }
    s
}

/// The configured URL, for configuration errors: cut before any query, and
/// without user information.
fn shown_url_template(template: &str) -> String {
    let cut = template.find('?').map_or(template, |i| &template[..i]);
    match (cut.find("://"), cut.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}{}", &cut[..scheme_end + 3], &cut[at + 1..])
        }
        _ => cut.to_string(),
    }
}

fn shown_location(base: &Url, location: &str) -> String {
    match base.join(location) {
        Ok(u) => shown_url(&u),
        Err(_) => shown_url_template(location),
    }
}

fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Each error in the chain, joined by ": ", skipping texts already shown.
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        // reqwest's and hyper-util's wrappers say nothing an operator can use.
        let wrapper = text == "error sending request" || text.starts_with("client error (");
        if !text.is_empty() && !wrapper && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    if parts.is_empty() {
        return e.to_string();
    }
    parts.join(": ")
}

/// Every error in the chain, including the one inside an `io::Error` (whose
/// `source()` skips it).
fn chain_errors<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        out.push(err);
        // An io::Error's source() is its inner error's source(): step into the
        // inner error itself instead, so it is seen too.
        current = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
        if out.len() > 32 {
            break;
        }
    }
    out
}

fn find_rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    chain_errors(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<rustls::Error>())
}

fn find_io_kind(e: &(dyn StdError + 'static)) -> Option<std::io::ErrorKind> {
    chain_errors(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<std::io::Error>().map(|io| io.kind()))
}

fn chain_mentions(e: &(dyn StdError + 'static), needle: &str) -> bool {
    chain_errors(e)
        .into_iter()
        .any(|err| err.to_string().contains(needle))
}

fn read_file(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("tls.{key}: cannot read {}: {e}", path.display()))
}

fn parse_certs(
    bytes: &[u8],
    path: &Path,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.{key}: {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.{key}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn apply_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &HttpTls,
) -> Result<reqwest::ClientBuilder, String> {
    if let Some(ca) = &tls.ca {
        let certs = parse_certs(&read_file(ca, "ca")?, ca, "ca")?;
        let mut roots = rustls::RootCertStore::empty();
        let mut trusted = Vec::with_capacity(certs.len());
        for cert in certs {
            roots.add(cert.clone()).map_err(|e| {
                format!(
                    "tls.ca: {} holds a certificate that cannot be a trust anchor: {e}",
                    ca.display()
                )
            })?;
            trusted.push(
                reqwest::Certificate::from_der(&cert)
                    .map_err(|e| format!("tls.ca: {}: {}", ca.display(), error_chain(&e)))?,
            );
        }
        builder = builder.tls_certs_only(trusted);
    }
    match (&tls.cert, &tls.key) {
        (Some(cert_path), Some(key_path)) => {
            let cert_pem = read_file(cert_path, "cert")?;
            let key_pem = read_file(key_path, "key")?;
            let certs = parse_certs(&cert_pem, cert_path, "cert")?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
                rustls_pki_types::pem::Error::NoItemsFound => format!(
                    "tls.key: {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    key_path.display()
                ),
                e => format!("tls.key: {} is not valid PEM: {e}", key_path.display()),
            })?;
            let provider = rustls::crypto::aws_lc_rs::default_provider();
            rustls::sign::CertifiedKey::from_der(certs, key, &provider).map_err(|e| match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                    "tls.key: {} is not the key of the certificate in {}",
                    key_path.display(),
                    cert_path.display()
                ),
                e => format!(
                    "tls.cert/tls.key: {} with {}: {e}",
                    cert_path.display(),
                    key_path.display()
                ),
            })?;
            let mut pem = cert_pem;
            pem.push(b'\n');
            pem.extend_from_slice(&key_pem);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!(
                    "tls.cert/tls.key: {} with {}: {}",
                    cert_path.display(),
                    key_path.display(),
                    error_chain(&e)
                )
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err("tls: give both `cert` and `key`, or neither".into()),
    }
    Ok(builder)
}
