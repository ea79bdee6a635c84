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
//! Secrets (the values of the `auth` block) never appear in error messages, and
//! neither do user names, passwords or query strings of the URL.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    // OAuth 2.0 client credentials will become `OAuth2(OAuth2Config)`, spelled
    // `{ oauth2 = { token_url = …, client_id = …, … } }`: one more key in `RawAuth`
    // and one more arm in its conversion.
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
    /// Reserved so that its absence is reported as "not yet", not as a typo.
    #[serde(default)]
    oauth2: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    user: String,
    #[serde(default)]
    password: String,
}

const AUTH_KINDS: &str = "`api_key`, `basic`, `bearer`, or `client_id` with `client_secret`";

impl TryFrom<RawAuth> for HttpAuth {
    type Error = String;

    fn try_from(raw: RawAuth) -> Result<Self, String> {
        if raw.oauth2.is_some() {
            return Err(format!(
                "auth: `oauth2` is not supported yet; use one of {AUTH_KINDS}"
            ));
        }
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
    /// The headers this authentication adds, values marked sensitive. Errors name
    /// the offending key, never its value.
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

pub struct HttpDestination {
    client: reqwest::Client,
    cfg: HttpDestinationConfig,
    method: Method,
    /// Custom headers, then the auth headers (sensitive).
    headers: HeaderMap,
    content_type: Option<HeaderValue>,
}

impl fmt::Debug for HttpDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDestination")
            .field("method", &self.method)
            .field("url", &shown_url_template(&self.cfg.url))
            .finish_non_exhaustive()
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
        Ok(HttpDestination {
            client,
            cfg,
            method,
            headers,
            content_type,
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

        let mut headers = HeaderMap::with_capacity(self.headers.len() + 1);
        let content_type = self
            .content_type
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static(detect_content_type(payload)));
        headers.insert(CONTENT_TYPE, content_type);
        for (n, v) in &self.headers {
            headers.insert(n.clone(), v.clone());
        }

        let response = self
            .client
            .request(self.method.clone(), url.clone())
            .headers(headers)
            .body(payload.to_vec())
            .send()
            .await
            .map_err(|e| self.transport_error(e, &url))?;

        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| shown_location(&url, l));
        let body = read_body(response).await;
        judge(status, &url, body, retry_after, location)
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
async fn read_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_RESPONSE_BYTES);
    body
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
