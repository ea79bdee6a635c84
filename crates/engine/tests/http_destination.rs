//! The HTTP destination against real HTTP(S) servers on loopback: what the
//! server receives, and how each kind of answer (or silence) is judged.

use medrelay_engine::destination::http;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use http::{HttpDestination, HttpDestinationConfig, HttpError};
use medrelay_testkit::{TestPki, orm_o01};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

// ---------------------------------------------------------------- test servers

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// What the server answers to every request.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }
}

struct Shared {
    reply: Reply,
    seen: mpsc::UnboundedSender<Seen>,
}

async fn record(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    // Recorded before answering: once the client has the answer, the record is there.
    let _ = shared.seen.send(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body: body.to_vec(),
    });
    let mut response = Response::builder().status(shared.reply.status);
    for (name, value) in &shared.reply.headers {
        response = response.header(*name, value);
    }
    response
        .body(Body::from(shared.reply.body.clone()))
        .unwrap()
}

fn router(reply: Reply) -> (axum::Router, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared { reply, seen: tx });
    (axum::Router::new().fallback(record).with_state(shared), rx)
}

/// A plain HTTP server on loopback answering every request with `reply`.
async fn server(reply: Reply) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (app, rx) = router(reply);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

/// TLS in front of axum: the handshake happens in `accept`, failed ones are dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An HTTPS server with the test PKI's server certificate; with `require_client`,
/// only clients with a certificate from the test CA get through the handshake.
async fn tls_server(
    pki: &TestPki,
    require_client: bool,
    reply: Reply,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (app, rx) = router(reply);
    (tls_serve(pki, require_client, app).await, rx)
}

/// `app` behind TLS, as [`tls_server`] sets it up.
async fn tls_serve(pki: &TestPki, require_client: bool, app: axum::Router) -> SocketAddr {
    let config = mllp::tls::server_config_from_files(
        &pki.server_cert,
        &pki.server_key,
        require_client.then_some(pki.ca.as_path()),
    )
    .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(config),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A port that refuses connections: bound, then released.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn destination(cfg: HttpDestinationConfig) -> HttpDestination {
    HttpDestination::new(cfg).unwrap()
}

fn from_toml(text: &str) -> HttpDestinationConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}\n{e}"))
}

fn toml_err(text: &str) -> String {
    match toml::from_str::<HttpDestinationConfig>(text) {
        Ok(cfg) => panic!("accepted {text}: {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

async fn send_err(dest: &HttpDestination, payload: &[u8]) -> HttpError {
    match dest.send(1, 1, None, payload).await {
        Ok(r) => panic!("expected an error, got {:?}", String::from_utf8_lossy(&r)),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- 2xx and requests

#[tokio::test]
async fn ok_carries_status_and_body_and_server_sees_method_type_headers_payload() {
    let (addr, mut seen) = server(Reply::new(200, "accepted: 42")).await;
    let cfg = from_toml(&format!(
        r#"
url = "http://{addr}/results"
method = "put"
headers = {{ "X-Source" = "medrelay", "X-Trace" = "abc-1" }}
auth = {{ api_key = "k-123" }}
"#
    ));
    let dest = destination(cfg);
    assert_eq!(dest.config().url, format!("http://{addr}/results"));
    let payload = orm_o01("CTRL1");
    let out = dest.send(1, 2, Some("CTRL1"), &payload).await.unwrap();
    assert_eq!(out, b"HTTP 200\naccepted: 42");

    let s = seen.try_recv().unwrap();
    assert_eq!(s.method, "PUT");
    assert_eq!(s.uri, "/results");
    assert_eq!(s.header("content-type"), Some("application/hl7-v2"));
    assert_eq!(s.header("x-source"), Some("medrelay"));
    assert_eq!(s.header("x-trace"), Some("abc-1"));
    assert_eq!(s.header("x-api-key"), Some("k-123"));
    assert!(s.header("authorization").is_none());
    assert!(s.header("user-agent").unwrap().starts_with("medrelay/"));
    assert_eq!(s.body, payload);
}

/// What a poller uses: any method, the raw body back on 2xx, the same
/// authentication, failures classified like deliveries.
#[tokio::test]
async fn fetch_returns_the_raw_body_with_the_same_authentication() {
    let (addr, mut seen) = server(Reply::new(200, "{\"data\": []}")).await;
    let dest = destination(from_toml(&format!(
        "url = \"http://{addr}/results\"\nauth = {{ bearer = \"t-1\" }}\n"
    )));
    let body = dest
        .fetch(
            reqwest::Method::GET,
            &format!("http://{addr}/appointments?page=2"),
            None,
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(body, b"{\"data\": []}");
    let s = seen.try_recv().unwrap();
    assert_eq!(s.method, "GET");
    assert_eq!(s.uri, "/appointments?page=2");
    assert_eq!(s.header("authorization"), Some("Bearer t-1"));
    assert!(
        s.header("content-type").is_none(),
        "no body, no content type"
    );

    let (addr, _) = server(Reply::new(503, "later")).await;
    let dest = destination(from_toml(&format!("url = \"http://{addr}/x\"\n")));
    let e = dest
        .fetch(
            reqwest::Method::POST,
            &format!("http://{addr}/x"),
            Some(b"{}"),
            1024,
        )
        .await
        .unwrap_err();
    assert!(e.retryable && e.message.contains("503"), "{}", e.message);
}

#[tokio::test]
async fn content_type_is_detected_configured_or_overridden_by_headers() {
    let (addr, mut seen) = server(Reply::new(204, "")).await;
    let url = format!("http://{addr}/in");
    let auto = destination(HttpDestinationConfig::new(&url));

    let out = auto.send(1, 1, None, b"MSH|^~\\&|A").await.unwrap();
    assert_eq!(out, b"HTTP 204\n");
    assert_eq!(
        seen.try_recv().unwrap().header("content-type"),
        Some("application/hl7-v2")
    );
    auto.send(1, 1, None, br#"{"resourceType":"Bundle"}"#)
        .await
        .unwrap();
    assert_eq!(
        seen.try_recv().unwrap().header("content-type"),
        Some("application/json")
    );
    auto.send(1, 1, None, b"\x00\x01 not json").await.unwrap();
    assert_eq!(
        seen.try_recv().unwrap().header("content-type"),
        Some("application/octet-stream")
    );

    let mut cfg = HttpDestinationConfig::new(&url);
    cfg.content_type = Some("application/fhir+json".into());
    destination(cfg).send(1, 1, None, b"MSH|x").await.unwrap();
    assert_eq!(
        seen.try_recv().unwrap().header("content-type"),
        Some("application/fhir+json")
    );

    let mut cfg = HttpDestinationConfig::new(&url);
    cfg.headers
        .insert("Content-Type".into(), "text/plain; charset=utf-8".into());
    destination(cfg).send(1, 1, None, b"MSH|x").await.unwrap();
    let s = seen.try_recv().unwrap();
    assert_eq!(s.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(s.headers.get_all("content-type").iter().count(), 1);
    assert_eq!(s.method, "POST");
}

/// Sends once with `auth = { … }` and returns what the server saw.
async fn seen_with_auth(auth: &str) -> Seen {
    let (addr, mut seen) = server(Reply::new(200, "ok")).await;
    let cfg = from_toml(&format!("url = \"http://{addr}/\"\nauth = {auth}\n"));
    destination(cfg).send(1, 1, None, b"x").await.unwrap();
    seen.try_recv().unwrap()
}

#[tokio::test]
async fn auth_api_key_default_header() {
    let s = seen_with_auth(r#"{ api_key = "key-1" }"#).await;
    assert_eq!(s.header("x-api-key"), Some("key-1"));
    assert!(s.header("authorization").is_none());
}

#[tokio::test]
async fn auth_api_key_custom_header() {
    let s = seen_with_auth(r#"{ api_key = "key-2", header = "Ocp-Apim-Subscription-Key" }"#).await;
    assert_eq!(s.header("ocp-apim-subscription-key"), Some("key-2"));
    assert!(s.header("x-api-key").is_none());
}

#[tokio::test]
async fn auth_basic_is_base64_of_user_colon_password() {
    let s = seen_with_auth(r#"{ basic = { user = "Aladdin", password = "open sesame" } }"#).await;
    // RFC 7617's example.
    assert_eq!(
        s.header("authorization"),
        Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    );
}

#[tokio::test]
async fn auth_bearer() {
    let s = seen_with_auth(r#"{ bearer = "eyJ.token" }"#).await;
    assert_eq!(s.header("authorization"), Some("Bearer eyJ.token"));
}

#[tokio::test]
async fn auth_client_id_secret_default_headers() {
    let s = seen_with_auth(r#"{ client_id = "ris", client_secret = "s3cret" }"#).await;
    assert_eq!(s.header("x-client-id"), Some("ris"));
    assert_eq!(s.header("x-client-secret"), Some("s3cret"));
}

#[tokio::test]
async fn auth_client_id_secret_custom_headers() {
    let s = seen_with_auth(
        r#"{ client_id = "ris", client_secret = "s3cret", id_header = "client_id", secret_header = "Client-Secret" }"#,
    )
    .await;
    assert_eq!(s.header("client_id"), Some("ris"));
    assert_eq!(s.header("client-secret"), Some("s3cret"));
    assert!(s.header("x-client-id").is_none());
    assert!(s.header("x-client-secret").is_none());
}

#[tokio::test]
async fn url_placeholders_are_filled_and_encoded() {
    let (addr, mut seen) = server(Reply::new(201, "created")).await;
    let dest = destination(HttpDestinationConfig::new(&format!(
        "http://{addr}/msg/{{message_id}}/d/{{delivery_id}}?control={{control_id}}"
    )));
    dest.send(42, 7, Some("A B/ü&x=1"), b"x").await.unwrap();
    assert_eq!(
        seen.try_recv().unwrap().uri,
        "/msg/42/d/7?control=A%20B%2F%C3%BC%26x%3D1"
    );
    dest.send(43, 8, None, b"x").await.unwrap();
    assert_eq!(seen.try_recv().unwrap().uri, "/msg/43/d/8?control=");
}

#[tokio::test]
async fn send_delivery_takes_control_id_from_msh10() {
    let (addr, mut seen) = server(Reply::new(200, "")).await;
    let dest = destination(HttpDestinationConfig::new(&format!(
        "http://{addr}/orders/{{control_id}}?m={{message_id}}&d={{delivery_id}}"
    )));
    let d = medrelay_store::Delivery {
        id: 11,
        message_id: 10,
        org: "default".into(),
        destination: "ch/http".into(),
        payload: orm_o01("ORD 9"),
        state: medrelay_store::DeliveryState::Queued,
        attempts: 0,
        next_attempt_at: 0,
        created_at: 0,
        updated_at: 0,
        last_error: None,
        response: None,
    };
    dest.send_delivery(&d).await.unwrap();
    assert_eq!(seen.try_recv().unwrap().uri, "/orders/ORD%209?m=10&d=11");
}

#[tokio::test]
async fn response_kept_is_cut_at_64_kib() {
    let big = "x".repeat(100 * 1024);
    let (addr, _seen) = server(Reply::new(200, &big)).await;
    let out = destination(HttpDestinationConfig::new(&format!("http://{addr}/")))
        .send(1, 1, None, b"x")
        .await
        .unwrap();
    assert_eq!(out.len(), "HTTP 200\n".len() + http::MAX_RESPONSE_BYTES);
    assert!(out.starts_with(b"HTTP 200\nxxx"));
}

// ---------------------------------------------------------------- error statuses

#[tokio::test]
async fn http_503_is_retryable_and_message_names_status_url_and_body() {
    let (addr, _seen) = server(Reply::new(503, "maintenance\nuntil 14:00")).await;
    let dest = destination(HttpDestinationConfig::new(&format!(
        "http://{addr}/results"
    )));
    let e = send_err(&dest, b"MSH|x").await;
    assert!(e.retryable);
    assert_eq!(
        e.message,
        format!("HTTP 503 Service Unavailable from http://{addr}/results: maintenance until 14:00")
    );
    assert_eq!(
        e.response.as_deref(),
        Some(&b"HTTP 503\nmaintenance\nuntil 14:00"[..])
    );
    assert_eq!(e.retry_after, None);
}

#[tokio::test]
async fn message_quotes_at_most_200_characters_of_the_body() {
    let body = "é".repeat(500);
    let (addr, _seen) = server(Reply::new(500, &body)).await;
    let dest = destination(HttpDestinationConfig::new(&format!("http://{addr}/")));
    let e = send_err(&dest, b"x").await;
    assert!(e.retryable);
    let quoted = e.message.rsplit_once(": ").unwrap().1;
    assert_eq!(quoted.chars().count(), 200);
    assert!(!e.message.contains('\n'));
}

#[tokio::test]
async fn http_429_with_retry_after_seconds() {
    let (addr, _seen) = server(Reply::new(429, "slow down").header("Retry-After", "7")).await;
    let dest = destination(HttpDestinationConfig::new(&format!("http://{addr}/")));
    let e = send_err(&dest, b"x").await;
    assert!(e.retryable);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(
        e.message.starts_with("HTTP 429 Too Many Requests"),
        "{}",
        e.message
    );
    assert!(e.message.contains("Retry-After 7s"), "{}", e.message);
}

#[tokio::test]
async fn http_429_with_retry_after_http_date() {
    let when = chrono::Utc::now() + chrono::Duration::seconds(120);
    let date = when.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let (addr, _seen) = server(Reply::new(429, "").header("Retry-After", &date)).await;
    let dest = destination(HttpDestinationConfig::new(&format!("http://{addr}/")));
    let e = send_err(&dest, b"x").await;
    assert!(e.retryable);
    let wait = e.retry_after.unwrap();
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
}

#[test]
fn retry_after_formats() {
    use http::parse_retry_after;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(
        parse_retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    let later = Some(Duration::from_secs(60));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
        later
    );
    assert_eq!(
        parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
        later
    );
    assert_eq!(parse_retry_after("Sun Nov  6 08:50:37 1994", now), later);
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("", now), None);
}

#[tokio::test]
async fn http_400_with_json_body_fails_for_good_keeping_the_body() {
    let body = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","diagnostics":"PID-3 missing"}]}"#;
    let (addr, _seen) = server(
        Reply::new(400, body)
            .header("Content-Type", "application/json")
            .header("Retry-After", "5"),
    )
    .await;
    let dest = destination(HttpDestinationConfig::new(&format!("http://{addr}/fhir")));
    let e = send_err(&dest, br#"{"a":1}"#).await;
    assert!(!e.retryable);
    assert_eq!(e.retry_after, None);
    let response = String::from_utf8(e.response.unwrap()).unwrap();
    assert_eq!(response, format!("HTTP 400\n{body}"));
    assert!(
        e.message.starts_with(&format!(
            "HTTP 400 Bad Request from http://{addr}/fhir: {{\"resourceType\""
        )),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn status_classes_decide_retryable() {
    for (status, retryable) in [
        (408, true),
        (500, true),
        (502, true),
        (504, true),
        (401, false),
        (403, false),
        (404, false),
        (409, false),
        (422, false),
    ] {
        let (addr, _seen) = server(Reply::new(status, "no")).await;
        let dest = destination(HttpDestinationConfig::new(&format!("http://{addr}/")));
        let e = send_err(&dest, b"x").await;
        assert_eq!(e.retryable, retryable, "HTTP {status}: {}", e.message);
        assert!(
            e.message.starts_with(&format!("HTTP {status} ")),
            "{}",
            e.message
        );
        assert_eq!(
            e.response.as_deref(),
            Some(format!("HTTP {status}\nno").as_bytes())
        );
    }
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let (addr, mut seen) = server(Reply::new(301, "moved").header("Location", "/elsewhere")).await;
    let dest = destination(HttpDestinationConfig::new(&format!("http://{addr}/old")));
    let e = send_err(&dest, b"x").await;
    assert!(!e.retryable);
    assert!(
        e.message.starts_with("HTTP 301 Moved Permanently"),
        "{}",
        e.message
    );
    assert!(e.message.contains("not followed"), "{}", e.message);
    assert!(
        e.message.contains(&format!("http://{addr}/elsewhere")),
        "{}",
        e.message
    );
    assert_eq!(seen.try_recv().unwrap().uri, "/old");
    // Had the client followed it, the second request would be recorded by now.
    assert!(seen.try_recv().is_err());
}

// ---------------------------------------------------------------- transport errors

#[tokio::test]
async fn connection_refused_is_retryable() {
    let addr = closed_port().await;
    let dest = destination(HttpDestinationConfig::new(&format!(
        "http://{addr}/results"
    )));
    let e = send_err(&dest, b"x").await;
    assert!(e.retryable);
    assert_eq!(
        e.message,
        format!("connection refused to {addr} (http://{addr}/results)")
    );
    assert_eq!(e.response, None);
}

#[tokio::test]
async fn silent_server_times_out_quickly_and_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and reads nothing, answers nothing; holds the sockets open.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let mut cfg = HttpDestinationConfig::new(&format!("http://{addr}/"));
    cfg.timeout = Duration::from_millis(300);
    let dest = destination(cfg);
    let started = Instant::now();
    let e = send_err(&dest, b"x").await;
    let took = started.elapsed();
    assert!(e.retryable);
    assert!(e.message.starts_with("timed out"), "{}", e.message);
    assert!(e.message.contains("300ms"), "{}", e.message);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn server_closing_without_answer_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            drop(sock);
        }
    });
    let dest = destination(HttpDestinationConfig::new(&format!("http://{addr}/")));
    let e = send_err(&dest, b"x").await;
    assert!(e.retryable, "{}", e.message);
    assert_eq!(
        e.message,
        format!("{addr} closed the connection before answering (http://{addr}/)")
    );
    assert_eq!(e.response, None);
}

#[tokio::test]
async fn unknown_host_is_retryable() {
    // `.invalid` never resolves (RFC 6761); no traffic leaves the machine.
    let mut cfg = HttpDestinationConfig::new("http://no-such-host.invalid/results");
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.timeout = Duration::from_secs(3);
    let e = send_err(&destination(cfg), b"x").await;
    assert!(e.retryable);
    assert!(
        e.message.starts_with("cannot resolve no-such-host.invalid")
            || e.message.contains("timed out"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn messages_leave_out_credentials_and_query() {
    let (addr, mut seen) = server(Reply::new(503, "")).await;
    let dest = destination(HttpDestinationConfig::new(&format!(
        "http://operator:pw-in-url@{addr}/api?code=query-secret"
    )));
    let e = send_err(&dest, b"x").await;
    assert_eq!(
        e.message,
        format!("HTTP 503 Service Unavailable from http://{addr}/api?…")
    );
    // The user information still reaches the server, as Basic authentication.
    assert_eq!(
        seen.try_recv().unwrap().header("authorization"),
        Some("Basic b3BlcmF0b3I6cHctaW4tdXJs")
    );

    let closed = closed_port().await;
    let cfg = from_toml(&format!(
        r#"
url = "http://{closed}/api?code=query-secret"
auth = {{ basic = {{ user = "u", password = "basic-secret" }} }}
"#
    ));
    let e = send_err(&destination(cfg), b"x").await;
    assert_eq!(
        e.message,
        format!("connection refused to {closed} (http://{closed}/api?…)")
    );
    assert!(!e.message.contains("basic-secret"));
}

// ---------------------------------------------------------------- TLS

fn https(addr: SocketAddr) -> HttpDestinationConfig {
    HttpDestinationConfig::new(&format!("https://{addr}/results"))
}

#[tokio::test]
async fn https_with_custom_ca() {
    let pki = TestPki::generate();
    let (addr, mut seen) = tls_server(&pki, false, Reply::new(200, "tls ok")).await;
    let mut cfg = https(addr);
    cfg.tls = Some(http::HttpTls {
        ca: Some(pki.ca.clone()),
        ..Default::default()
    });
    let out = destination(cfg).send(1, 1, None, b"MSH|x").await.unwrap();
    assert_eq!(out, b"HTTP 200\ntls ok");
    assert_eq!(seen.try_recv().unwrap().body, b"MSH|x");
}

#[tokio::test]
async fn https_without_the_ca_is_a_retryable_certificate_error() {
    let pki = TestPki::generate();
    let (addr, mut seen) = tls_server(&pki, false, Reply::new(200, "tls ok")).await;
    let e = send_err(&destination(https(addr)), b"x").await;
    assert!(e.retryable);
    assert!(
        e.message.starts_with(&format!("TLS with {addr} failed")),
        "{}",
        e.message
    );
    assert!(e.message.contains("certificate"), "{}", e.message);
    assert!(seen.try_recv().is_err());

    // Trusting another CA instead is no better.
    let mut cfg = https(addr);
    cfg.tls = Some(http::HttpTls {
        ca: Some(pki.other_ca.clone()),
        ..Default::default()
    });
    let e = send_err(&destination(cfg), b"x").await;
    assert!(e.retryable);
    assert!(e.message.contains("UnknownIssuer"), "{}", e.message);
    assert!(e.message.contains("tls.ca"), "{}", e.message);
    assert!(seen.try_recv().is_err());
}

#[tokio::test]
async fn mutual_tls_with_and_without_client_certificate() {
    let pki = TestPki::generate();
    let (addr, mut seen) = tls_server(&pki, true, Reply::new(200, "mtls ok")).await;

    let cfg = from_toml(&format!(
        "url = \"https://{addr}/results\"\ntls = {{ ca = {:?}, cert = {:?}, key = {:?} }}\n",
        pki.ca, pki.client_cert, pki.client_key
    ));
    let out = destination(cfg).send(1, 1, None, b"MSH|x").await.unwrap();
    assert_eq!(out, b"HTTP 200\nmtls ok");
    assert_eq!(seen.try_recv().unwrap().uri, "/results");

    let mut cfg = https(addr);
    cfg.tls = Some(http::HttpTls {
        ca: Some(pki.ca.clone()),
        ..Default::default()
    });
    let e = send_err(&destination(cfg), b"x").await;
    assert!(e.retryable);
    assert!(e.message.contains("TLS with"), "{}", e.message);
    assert!(e.message.contains("client certificate"), "{}", e.message);
    assert!(seen.try_recv().is_err());
}

#[test]
fn tls_files_are_checked_with_clear_errors() {
    let pki = TestPki::generate();
    let with_tls = |tls: http::HttpTls| {
        let mut cfg = HttpDestinationConfig::new("https://ehr.example/results");
        cfg.tls = Some(tls);
        match HttpDestination::new(cfg) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    };
    let missing = pki.dir.path().join("nope.pem");
    let e = with_tls(http::HttpTls {
        ca: Some(missing.clone()),
        ..Default::default()
    });
    assert!(e.starts_with("tls.ca: cannot read "), "{e}");
    assert!(e.contains("nope.pem"), "{e}");

    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let e = with_tls(http::HttpTls {
        ca: Some(garbage.clone()),
        ..Default::default()
    });
    assert!(e.contains("holds no PEM certificate"), "{e}");

    let e = with_tls(http::HttpTls {
        cert: Some(pki.client_cert.clone()),
        key: Some(garbage.clone()),
        ..Default::default()
    });
    assert!(
        e.starts_with("tls.key:") && e.contains("no PEM private key"),
        "{e}"
    );

    let e = with_tls(http::HttpTls {
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.server_key.clone()),
        ..Default::default()
    });
    assert!(e.contains("is not the key of the certificate"), "{e}");

    let e = with_tls(http::HttpTls {
        cert: Some(pki.client_cert.clone()),
        ..Default::default()
    });
    assert!(e.contains("both `cert` and `key`"), "{e}");
}

// ---------------------------------------------------------------- configuration

#[test]
fn config_keys_and_defaults() {
    let cfg = from_toml(r#"url = "https://ehr.example/results""#);
    assert_eq!(cfg.method, "POST");
    assert_eq!(cfg.connect_timeout, Duration::from_secs(10));
    assert_eq!(cfg.timeout, Duration::from_secs(30));
    assert!(cfg.headers.is_empty() && cfg.auth.is_none() && cfg.tls.is_none());
    assert!(cfg.content_type.is_none());

    let cfg = from_toml(
        r#"
url = "https://ehr.example/results/{control_id}"
method = "PATCH"
content_type = "application/hl7-v2+er7"
headers = { "X-Site" = "north" }
auth = { client_id = "ris", client_secret = "s", id_header = "Id" }
tls = { ca = "ca.pem", cert = "client.pem", key = "client.key" }
connect_timeout = "2s"
timeout = "1m"
"#,
    );
    assert_eq!(cfg.method, "PATCH");
    assert_eq!(cfg.connect_timeout, Duration::from_secs(2));
    assert_eq!(cfg.timeout, Duration::from_secs(60));
    assert_eq!(cfg.headers["X-Site"], "north");
    assert_eq!(
        cfg.auth,
        Some(http::HttpAuth::ClientIdSecret {
            id_header: "Id".into(),
            id: "ris".into(),
            secret_header: "X-Client-Secret".into(),
            secret: "s".into(),
        })
    );
    let tls = cfg.tls.unwrap();
    assert_eq!(tls.ca.unwrap().to_str(), Some("ca.pem"));
    assert_eq!(tls.key.unwrap().to_str(), Some("client.key"));
}

#[test]
fn auth_blocks_are_checked_with_clear_errors() {
    let auth = |a: &str| toml_err(&format!("url = \"https://x.example/\"\nauth = {a}\n"));
    let e = auth(r#"{ api_key = "k", bearer = "t" }"#);
    assert!(
        e.contains("only one kind") && e.contains("api_key and bearer"),
        "{e}"
    );
    let e = auth("{}");
    assert!(
        e.contains("give one of `api_key`, `basic`, `bearer`"),
        "{e}"
    );
    let e = auth(r#"{ bearer = "t", header = "X-Token" }"#);
    assert!(e.contains("`header` goes with `api_key` only"), "{e}");
    let e = auth(r#"{ client_id = "c" }"#);
    assert!(e.contains("both `client_id` and `client_secret`"), "{e}");
    let e = auth(r#"{ oauth2 = { token_url = "https://idp/token" } }"#);
    assert!(e.contains("missing field `client_id`"), "{e}");
    let e = auth(r#"{ bearr = "t" }"#);
    assert!(e.contains("unknown field `bearr`"), "{e}");
    let e = auth(r#"{ basic = { user = "u", pass = "p" } }"#);
    assert!(e.contains("unknown field `pass`"), "{e}");
    let e = auth(r#"{ bearer = "" }"#);
    assert!(e.contains("`bearer` is empty"), "{e}");
    let e = auth(r#"{ api_key = "k", header = "bad header" }"#);
    assert!(e.contains("not a valid header name"), "{e}");
    let e = auth(r#"{ api_key = "line1\nline2-secret" }"#);
    assert!(e.contains("`api_key` holds characters"), "{e}");

    let e = toml_err("url = \"https://x.example/\"\nmethd = \"PUT\"\n");
    assert!(e.contains("unknown field `methd`"), "{e}");
}

#[test]
fn debug_output_hides_secrets() {
    let cfg = from_toml(
        r#"
url = "https://x.example/"
auth = { client_id = "ris", client_secret = "very-secret" }
"#,
    );
    let text = format!("{cfg:?}");
    assert!(!text.contains("very-secret"), "{text}");
    assert!(
        text.contains("<redacted>") && text.contains("ris"),
        "{text}"
    );
    for auth in [
        r#"{ api_key = "very-secret" }"#,
        r#"{ bearer = "very-secret" }"#,
        r#"{ basic = { user = "u", password = "very-secret" } }"#,
    ] {
        let cfg = from_toml(&format!("url = \"https://x.example/\"\nauth = {auth}\n"));
        assert!(!format!("{cfg:?}").contains("very-secret"), "{auth}");
    }
}

#[test]
fn bad_settings_are_refused_by_new() {
    let new_err = |cfg: HttpDestinationConfig| match HttpDestination::new(cfg) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    let mut cfg = HttpDestinationConfig::new("https://x.example/");
    cfg.method = "GET".into();
    assert!(new_err(cfg).contains("use POST, PUT or PATCH"));

    let cfg = HttpDestinationConfig::new("https://x.example/{msg_id}");
    let e = new_err(cfg);
    assert!(e.contains("unknown placeholder {msg_id}"), "{e}");

    let cfg = HttpDestinationConfig::new("ftp://x.example/");
    assert!(new_err(cfg).contains("scheme ftp://"));

    let cfg = HttpDestinationConfig::new("not a url");
    assert!(new_err(cfg).starts_with("url not a url:"));

    let mut cfg = HttpDestinationConfig::new("http://x.example/");
    cfg.tls = Some(http::HttpTls::default());
    assert!(new_err(cfg).contains("use https://"));

    let mut cfg = from_toml(
        r#"
url = "https://x.example/"
auth = { bearer = "t" }
"#,
    );
    cfg.headers.insert("Authorization".into(), "Basic x".into());
    assert!(new_err(cfg).contains("set both under `headers` and by `auth`"));

    let cfg = from_toml(
        r#"
url = "https://user:pw@x.example/"
auth = { bearer = "t" }
"#,
    );
    let e = new_err(cfg);
    assert!(e.contains("keep credentials in `auth`"), "{e}");
    assert!(!e.contains("pw"), "{e}");

    let mut cfg = HttpDestinationConfig::new("https://x.example/");
    cfg.headers.insert("Content-Length".into(), "3".into());
    assert!(new_err(cfg).contains("cannot be configured"));

    let mut cfg = HttpDestinationConfig::new("https://x.example/");
    cfg.timeout = Duration::ZERO;
    assert!(new_err(cfg).contains("timeout must be greater than zero"));
}

// ---------------------------------------------------------------- OAuth 2.0

/// One request to the token endpoint as it arrived.
#[derive(Debug, Clone)]
struct TokenCall {
    form: BTreeMap<String, String>,
    /// Client id and secret from `Authorization: Basic`, form-decoded.
    basic: Option<(String, String)>,
}

/// A token endpoint (`POST /token`) and a resource (`POST /fhir`) that accepts
/// only the tokens the endpoint issued, while they are valid.
struct Idp {
    client_id: String,
    client_secret: String,
    /// `expires_in` of the next tokens; none: left out.
    lifetime: Mutex<Option<u64>>,
    /// How long the token endpoint takes to answer.
    delay: Duration,
    /// When set, the token endpoint answers this status and JSON body.
    forced: Mutex<Option<(u16, String)>>,
    calls: Mutex<Vec<TokenCall>>,
    /// Token to expiry (none: does not expire).
    issued: Mutex<HashMap<String, Option<Instant>>>,
    revoked: Mutex<HashSet<String>>,
    /// The resource refuses every token.
    reject_all: AtomicBool,
    /// What the resource saw: the bearer token and its answer.
    resource_log: Mutex<Vec<(Option<String>, u16)>>,
}

impl Idp {
    fn new(client_id: &str, client_secret: &str) -> Idp {
        Idp {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            lifetime: Mutex::new(Some(3600)),
            delay: Duration::ZERO,
            forced: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            issued: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
            reject_all: AtomicBool::new(false),
            resource_log: Mutex::new(Vec::new()),
        }
    }

    fn lifetime(self, lifetime: Option<u64>) -> Idp {
        *self.lifetime.lock().unwrap() = lifetime;
        self
    }

    fn calls(&self) -> Vec<TokenCall> {
        self.calls.lock().unwrap().clone()
    }

    fn resource_log(&self) -> Vec<(Option<String>, u16)> {
        self.resource_log.lock().unwrap().clone()
    }

    /// The switch: every token issued so far counts as expired from now on.
    fn expire_all(&self) {
        let now = Instant::now();
        for expiry in self.issued.lock().unwrap().values_mut() {
            *expiry = Some(now);
        }
    }

    fn revoke(&self, token: &str) {
        self.revoked.lock().unwrap().insert(token.to_string());
    }

    fn valid(&self, token: &str) -> bool {
        let known = self.issued.lock().unwrap().get(token).copied();
        match known {
            Some(expiry) => {
                !self.reject_all.load(Ordering::SeqCst)
                    && !self.revoked.lock().unwrap().contains(token)
                    && expiry.is_none_or(|at| Instant::now() < at)
            }
            None => false,
        }
    }
}

fn json_reply(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(Body::from(body))
        .unwrap()
}

fn form_decode(s: &str) -> String {
    let pair = format!("v={s}");
    oauth2::url::form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn token_endpoint(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use base64::Engine as _;
    let form: BTreeMap<String, String> = oauth2::url::form_urlencoded::parse(&body)
        .into_owned()
        .collect();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(id, secret)| (form_decode(id), form_decode(secret)))
        });
    // Recorded before answering: once the client has the answer, the call is there.
    idp.calls.lock().unwrap().push(TokenCall {
        form: form.clone(),
        basic: basic.clone(),
    });
    if let Some((status, body)) = idp.forced.lock().unwrap().clone() {
        return json_reply(status, body);
    }
    tokio::time::sleep(idp.delay).await;
    let from_form = form.get("client_id").map(|id| {
        (
            id.clone(),
            form.get("client_secret").cloned().unwrap_or_default(),
        )
    });
    let (id, secret) = match (basic, from_form) {
        (Some(c), None) | (None, Some(c)) => c,
        (Some(_), Some(_)) => {
            return json_reply(
                400,
                r#"{"error":"invalid_request","error_description":"two client authentications"}"#
                    .into(),
            );
        }
        (None, None) => (String::new(), String::new()),
    };
    if id != idp.client_id || secret != idp.client_secret {
        return json_reply(
            401,
            r#"{"error":"invalid_client","error_description":"client authentication failed"}"#
                .into(),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return json_reply(400, r#"{"error":"unsupported_grant_type"}"#.into());
    }
    let lifetime = *idp.lifetime.lock().unwrap();
    let token = {
        let mut issued = idp.issued.lock().unwrap();
        let token = format!("tok-{}", issued.len() + 1);
        issued.insert(
            token.clone(),
            lifetime.map(|s| Instant::now() + Duration::from_secs(s)),
        );
        token
    };
    let mut answer = serde_json::json!({ "access_token": token, "token_type": "Bearer" });
    if let Some(s) = lifetime {
        answer["expires_in"] = s.into();
    }
    json_reply(200, answer.to_string())
}

async fn resource(State(idp): State<Arc<Idp>>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let ok = token.as_deref().is_some_and(|t| idp.valid(t));
    let status = if ok { 200 } else { 401 };
    idp.resource_log.lock().unwrap().push((token, status));
    let mut response = Response::builder().status(status);
    if !ok {
        response = response.header("WWW-Authenticate", r#"Bearer error="invalid_token""#);
    }
    response
        .body(Body::from(if ok { "stored" } else { "invalid token" }))
        .unwrap()
}

fn idp_router(idp: Arc<Idp>) -> axum::Router {
    axum::Router::new()
        .route("/token", axum::routing::post(token_endpoint))
        .route("/fhir", axum::routing::post(resource))
        .with_state(idp)
}

async fn idp_server(idp: Idp) -> (SocketAddr, Arc<Idp>) {
    let idp = Arc::new(idp);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = idp_router(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, idp)
}

const CLIENT_SECRET: &str = "s3cr3t-Value";

/// An OAuth 2.0 destination for the resource at `addr`, its token endpoint at
/// `token_addr`; `extra` goes into the `oauth2` table.
fn oauth_cfg(addr: SocketAddr, token_addr: SocketAddr, extra: &str) -> HttpDestinationConfig {
    from_toml(&format!(
        "url = \"http://{addr}/fhir\"\nauth = {{ oauth2 = {{ token_url = \"http://{token_addr}/token\", client_id = \"ris\", client_secret = \"{CLIENT_SECRET}\"{extra} }} }}\n"
    ))
}

fn ok_log(tokens: &[&str]) -> Vec<(Option<String>, u16)> {
    tokens.iter().map(|t| (Some(t.to_string()), 200)).collect()
}

#[tokio::test]
async fn oauth2_two_sends_reuse_one_token_and_clones_share_it() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET)).await;
    let dest = destination(oauth_cfg(addr, addr, ""));
    for _ in 0..2 {
        let out = dest.send(1, 1, None, b"MSH|x").await.unwrap();
        assert_eq!(out, b"HTTP 200\nstored");
    }
    let twin = dest.clone();
    twin.send(1, 1, None, b"MSH|x").await.unwrap();

    let calls = idp.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(idp.resource_log(), ok_log(&["tok-1", "tok-1", "tok-1"]));
    // Default style: id and secret in HTTP Basic, not in the form.
    assert_eq!(
        calls[0].basic,
        Some(("ris".to_string(), CLIENT_SECRET.to_string()))
    );
    assert_eq!(
        calls[0].form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    for key in ["client_id", "client_secret", "scope", "audience"] {
        assert!(!calls[0].form.contains_key(key), "{key}: {calls:?}");
    }
}

#[tokio::test]
async fn oauth2_expired_token_is_replaced_transparently() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET).lifetime(Some(1))).await;
    let dest = destination(oauth_cfg(addr, addr, ""));
    dest.send(1, 1, None, b"x").await.unwrap();
    idp.expire_all();
    assert!(!idp.valid("tok-1"));

    let out = dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(out, b"HTTP 200\nstored");
    assert_eq!(idp.calls().len(), 2);
    // Replaced before use, from `expires_in`: the expired token never reached
    // the resource, so no 401 round trip.
    assert_eq!(idp.resource_log(), ok_log(&["tok-1", "tok-2"]));
}

#[tokio::test]
async fn oauth2_token_is_replaced_30s_or_a_tenth_of_its_lifetime_before_expiry() {
    use http::token_refresh_margin;
    assert_eq!(
        token_refresh_margin(Duration::from_secs(3600)),
        Duration::from_secs(360)
    );
    assert_eq!(
        token_refresh_margin(Duration::from_secs(100)),
        Duration::from_secs(30)
    );
    assert_eq!(
        token_refresh_margin(Duration::from_secs(1)),
        Duration::from_secs(30)
    );

    // 40 s: usable for 10 s, so kept across two quick sends.
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET).lifetime(Some(40))).await;
    let dest = destination(oauth_cfg(addr, addr, ""));
    dest.send(1, 1, None, b"x").await.unwrap();
    dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(idp.calls().len(), 1);
    assert_eq!(idp.resource_log(), ok_log(&["tok-1", "tok-1"]));

    // 25 s: within the margin from the start, so each send fetches its own.
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET).lifetime(Some(25))).await;
    let dest = destination(oauth_cfg(addr, addr, ""));
    dest.send(1, 1, None, b"x").await.unwrap();
    dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(idp.calls().len(), 2);
    assert_eq!(idp.resource_log(), ok_log(&["tok-1", "tok-2"]));
}

#[tokio::test]
async fn oauth2_revoked_token_is_refreshed_and_the_request_retried_in_the_same_send() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET)).await;
    let dest = destination(oauth_cfg(addr, addr, ""));
    dest.send(1, 1, None, b"x").await.unwrap();
    idp.revoke("tok-1");

    let out = dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(out, b"HTTP 200\nstored");
    assert_eq!(idp.calls().len(), 2);
    assert_eq!(
        idp.resource_log(),
        vec![
            (Some("tok-1".to_string()), 200),
            (Some("tok-1".to_string()), 401),
            (Some("tok-2".to_string()), 200),
        ]
    );
    // The fresh token is kept.
    dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(idp.calls().len(), 2);
}

#[tokio::test]
async fn oauth2_token_without_expires_in_is_kept_until_a_401() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET).lifetime(None)).await;
    let dest = destination(oauth_cfg(addr, addr, ""));
    for _ in 0..3 {
        dest.send(1, 1, None, b"x").await.unwrap();
    }
    assert_eq!(idp.calls().len(), 1);
    idp.revoke("tok-1");
    dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(idp.calls().len(), 2);
    assert_eq!(
        idp.resource_log().last(),
        Some(&(Some("tok-2".into()), 200))
    );
}

#[tokio::test]
async fn oauth2_second_401_fails_for_good_keeping_the_body() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET)).await;
    idp.reject_all.store(true, Ordering::SeqCst);
    let dest = destination(oauth_cfg(addr, addr, ""));
    let e = send_err(&dest, b"x").await;
    assert!(!e.retryable, "{}", e.message);
    assert_eq!(e.response.as_deref(), Some(&b"HTTP 401\ninvalid token"[..]));
    assert!(
        e.message.starts_with("HTTP 401 Unauthorized from"),
        "{}",
        e.message
    );
    assert!(e.message.contains("freshly fetched"), "{}", e.message);
    assert!(!e.message.contains("tok-"), "{}", e.message);
    // One refresh, one retry; not more.
    assert_eq!(idp.calls().len(), 2);
    assert_eq!(
        idp.resource_log(),
        vec![
            (Some("tok-1".to_string()), 401),
            (Some("tok-2".to_string()), 401),
        ]
    );
}

#[tokio::test]
async fn oauth2_wrong_secret_is_not_retryable_and_names_invalid_client() {
    let (addr, idp) = idp_server(Idp::new("ris", "the-right-one")).await;
    let cfg = oauth_cfg(addr, addr, "");
    assert!(!format!("{cfg:?}").contains(CLIENT_SECRET));
    let dest = destination(cfg);
    assert!(!format!("{dest:?}").contains(CLIENT_SECRET));
    let e = send_err(&dest, b"x").await;
    assert!(!e.retryable, "{}", e.message);
    assert_eq!(
        e.message,
        format!(
            "fetching an OAuth 2.0 token from http://{addr}/token failed: HTTP 401 Unauthorized: invalid_client: client authentication failed"
        )
    );
    assert!(!e.message.contains(CLIENT_SECRET));
    assert_eq!(idp.calls().len(), 1);
    assert!(idp.resource_log().is_empty());

    // Any other refusal (400 here) is just as final, with the description.
    *idp.forced.lock().unwrap() = Some((
        400,
        r#"{"error":"invalid_scope","error_description":"scope fhir/*.write is not allowed"}"#
            .into(),
    ));
    let e = send_err(&dest, b"x").await;
    assert!(!e.retryable, "{}", e.message);
    assert!(
        e.message
            .ends_with("HTTP 400 Bad Request: invalid_scope: scope fhir/*.write is not allowed"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn oauth2_token_endpoint_down_or_failing_is_retryable() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET)).await;
    let closed = closed_port().await;
    let dest = destination(oauth_cfg(addr, closed, ""));
    let e = send_err(&dest, b"x").await;
    assert!(e.retryable, "{}", e.message);
    assert_eq!(
        e.message,
        format!(
            "fetching an OAuth 2.0 token from http://{closed}/token failed: connection refused to {closed}"
        )
    );
    assert_eq!(e.response, None);
    assert!(idp.resource_log().is_empty());

    *idp.forced.lock().unwrap() = Some((503, r#"{"status":"maintenance"}"#.into()));
    let dest = destination(oauth_cfg(addr, addr, ""));
    let e = send_err(&dest, b"x").await;
    assert!(e.retryable, "{}", e.message);
    assert_eq!(
        e.message,
        format!(
            "fetching an OAuth 2.0 token from http://{addr}/token failed: HTTP 503 Service Unavailable: {{\"status\":\"maintenance\"}}"
        )
    );
    assert!(idp.resource_log().is_empty());

    // Back up: the next attempt gets through.
    *idp.forced.lock().unwrap() = None;
    dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(idp.resource_log(), ok_log(&["tok-1"]));
}

#[tokio::test]
async fn oauth2_silent_token_endpoint_times_out_and_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET)).await;
    let mut cfg = oauth_cfg(addr, silent, "");
    cfg.timeout = Duration::from_millis(300);
    let e = send_err(&destination(cfg), b"x").await;
    assert!(e.retryable, "{}", e.message);
    assert!(
        e.message.starts_with(&format!(
            "fetching an OAuth 2.0 token from http://{silent}/token failed: timed out"
        )),
        "{}",
        e.message
    );
    assert!(idp.resource_log().is_empty());
}

#[tokio::test]
async fn oauth2_scope_and_audience_reach_the_token_endpoint() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET)).await;
    let dest = destination(oauth_cfg(
        addr,
        addr,
        r#", scope = "system/Observation.write  system/Patient.read", audience = "https://fhir.example/api""#,
    ));
    dest.send(1, 1, None, b"x").await.unwrap();
    let calls = idp.calls();
    assert_eq!(calls.len(), 1);
    let form = &calls[0].form;
    assert_eq!(
        form.get("scope").map(String::as_str),
        Some("system/Observation.write system/Patient.read")
    );
    assert_eq!(
        form.get("audience").map(String::as_str),
        Some("https://fhir.example/api")
    );
    assert_eq!(
        calls[0].basic,
        Some(("ris".to_string(), CLIENT_SECRET.to_string()))
    );
    assert!(!form.contains_key("client_secret"));
}

#[tokio::test]
async fn oauth2_body_style_sends_id_and_secret_in_the_form() {
    let (addr, idp) = idp_server(Idp::new("ris", CLIENT_SECRET)).await;
    let dest = destination(oauth_cfg(addr, addr, r#", auth_style = "body""#));
    let out = dest.send(1, 1, None, b"x").await.unwrap();
    assert_eq!(out, b"HTTP 200\nstored");
    let calls = idp.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].basic, None);
    assert_eq!(
        calls[0].form.get("client_id").map(String::as_str),
        Some("ris")
    );
    assert_eq!(
        calls[0].form.get("client_secret").map(String::as_str),
        Some(CLIENT_SECRET)
    );
}

#[tokio::test]
async fn oauth2_concurrent_sends_share_one_token_request() {
    let mut idp = Idp::new("ris", CLIENT_SECRET);
    // Slow enough that the sends overlap while the token is on its way.
    idp.delay = Duration::from_millis(200);
    let (addr, idp) = idp_server(idp).await;
    let dest = destination(oauth_cfg(addr, addr, ""));
    let twin = dest.clone();
    let (a, b, c, d) = tokio::join!(
        dest.send(1, 1, None, b"a"),
        dest.send(1, 2, None, b"b"),
        twin.send(1, 3, None, b"c"),
        twin.send(1, 4, None, b"d"),
    );
    for out in [a, b, c, d] {
        assert_eq!(out.unwrap(), b"HTTP 200\nstored");
    }
    assert_eq!(idp.calls().len(), 1);
    assert_eq!(idp.resource_log(), ok_log(&["tok-1"; 4]));
}

#[tokio::test]
async fn oauth2_token_request_uses_the_destinations_tls_settings() {
    let pki = TestPki::generate();
    let idp = Arc::new(Idp::new("ris", CLIENT_SECRET));
    let addr = tls_serve(&pki, true, idp_router(idp.clone())).await;
    let cfg = |tls: &str| {
        from_toml(&format!(
            "url = \"https://{addr}/fhir\"\nauth = {{ oauth2 = {{ token_url = \"https://{addr}/token\", client_id = \"ris\", client_secret = \"{CLIENT_SECRET}\" }} }}\ntls = {tls}\n"
        ))
    };
    let mtls = format!(
        "{{ ca = {:?}, cert = {:?}, key = {:?} }}",
        pki.ca, pki.client_cert, pki.client_key
    );
    let out = destination(cfg(&mtls))
        .send(1, 1, None, b"x")
        .await
        .unwrap();
    assert_eq!(out, b"HTTP 200\nstored");
    assert_eq!(idp.calls().len(), 1);
    assert_eq!(idp.resource_log(), ok_log(&["tok-1"]));

    // Without the client certificate the token endpoint is not reached either.
    let e = send_err(&destination(cfg(&format!("{{ ca = {:?} }}", pki.ca))), b"x").await;
    assert!(e.retryable, "{}", e.message);
    assert!(
        e.message.starts_with(&format!(
            "fetching an OAuth 2.0 token from https://{addr}/token failed: TLS with {addr} failed"
        )),
        "{}",
        e.message
    );
    assert!(e.message.contains("client certificate"), "{}", e.message);
    assert_eq!(idp.calls().len(), 1);
}

#[test]
fn oauth2_config_keys_defaults_and_errors() {
    let cfg = from_toml(
        r#"
url = "https://ehr.example/fhir"
auth = { oauth2 = { token_url = "https://idp.example/token", client_id = "ris", client_secret = "very-secret" } }
"#,
    );
    let expected = http::OAuth2Config {
        token_url: "https://idp.example/token".into(),
        client_id: "ris".into(),
        client_secret: "very-secret".into(),
        scope: None,
        audience: None,
        auth_style: http::OAuth2AuthStyle::Basic,
    };
    assert_eq!(cfg.auth, Some(http::HttpAuth::OAuth2(expected)));
    let text = format!("{cfg:?}");
    assert!(!text.contains("very-secret"), "{text}");
    assert!(
        text.contains("<redacted>") && text.contains("idp.example/token"),
        "{text}"
    );

    let cfg = from_toml(
        r#"
url = "https://ehr.example/fhir"
auth = { oauth2 = { token_url = "https://idp.example/token", client_id = "ris", client_secret = "s", scope = "a b", audience = "api", auth_style = "body" } }
"#,
    );
    let Some(http::HttpAuth::OAuth2(o)) = cfg.auth else {
        panic!("{cfg:?}")
    };
    assert_eq!(o.scope.as_deref(), Some("a b"));
    assert_eq!(o.audience.as_deref(), Some("api"));
    assert_eq!(o.auth_style, http::OAuth2AuthStyle::Body);

    let auth = |a: &str| toml_err(&format!("url = \"https://x.example/\"\nauth = {a}\n"));
    let o = |rest: &str| {
        auth(&format!(
            r#"{{ oauth2 = {{ token_url = "https://idp/token", client_id = "c"{rest} }} }}"#
        ))
    };
    let e = o("");
    assert!(e.contains("missing field `client_secret`"), "{e}");
    let e = o(r#", client_secret = "s", auth_style = "header""#);
    assert!(e.contains("unknown variant `header`"), "{e}");
    let e = o(r#", client_secret = "s", scopes = "a""#);
    assert!(e.contains("unknown field `scopes`"), "{e}");
    let e = o(r#", client_secret = """#);
    assert!(e.contains("`oauth2.client_secret` is empty"), "{e}");
    let e = auth(
        r#"{ oauth2 = { token_url = "ftp://idp/token", client_id = "c", client_secret = "s" } }"#,
    );
    assert!(
        e.contains("oauth2.token_url") && e.contains("ftp://"),
        "{e}"
    );
    let e = auth(
        r#"{ oauth2 = { token_url = "https://u:pw-secret@idp/token", client_id = "c", client_secret = "s" } }"#,
    );
    // The TOML error quotes the input line; our own message (the last line) does not.
    let ours = e.trim_end().lines().last().unwrap();
    assert!(ours.contains("user name or password"), "{e}");
    assert!(!ours.contains("pw-secret"), "{e}");
    let e = auth(
        r#"{ bearer = "t", oauth2 = { token_url = "https://idp/token", client_id = "c", client_secret = "s" } }"#,
    );
    assert!(e.contains("bearer and oauth2"), "{e}");

    // The token goes into Authorization: a configured one would clash.
    let mut cfg = from_toml(
        r#"
url = "https://ehr.example/fhir"
auth = { oauth2 = { token_url = "https://idp.example/token", client_id = "ris", client_secret = "s" } }
"#,
    );
    cfg.headers.insert("Authorization".into(), "Basic x".into());
    match HttpDestination::new(cfg) {
        Ok(_) => panic!("accepted"),
        Err(e) => assert!(e.contains("set both under `headers` and by `auth`"), "{e}"),
    }
}

#[test]
fn oauth2_send_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let dest = destination(oauth_cfg(
        "127.0.0.1:9".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        "",
    ));
    // Never polled: only the type matters (the queue worker spawns it).
    let fut = dest.send(1, 1, None, b"x");
    assert_send(&fut);
}
