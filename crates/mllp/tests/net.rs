//! Listener and sender over real sockets on 127.0.0.1, with real TLS.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mllp::{
    ClientTls, CloseReason, ConnectionEvent, Handler, Inbound, Listener, ListenerConfig, MllpCodec,
    Peer, RefuseReason, SendError, Sender, SenderConfig,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- handler

struct Gate {
    started: watch::Sender<usize>,
    release: Semaphore,
}

struct TestHandler {
    events: watch::Sender<Vec<ConnectionEvent>>,
    peers: Mutex<Vec<Peer>>,
    gate: Option<Gate>,
}

impl TestHandler {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            events: watch::Sender::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            gate: None,
        })
    }

    fn gated() -> Arc<Self> {
        Arc::new(Self {
            events: watch::Sender::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            gate: Some(Gate {
                started: watch::Sender::new(0),
                release: Semaphore::new(0),
            }),
        })
    }

    async fn wait_event(&self, pred: impl Fn(&ConnectionEvent) -> bool) -> ConnectionEvent {
        let mut rx = self.events.subscribe();
        let events = timeout(WAIT, rx.wait_for(|evs| evs.iter().any(&pred)))
            .await
            .expect("timed out waiting for a connection event")
            .expect("event channel closed");
        events
            .iter()
            .find(|e| pred(e))
            .cloned()
            .expect("event present")
    }

    fn events(&self) -> Vec<ConnectionEvent> {
        self.events.borrow().clone()
    }

    fn peers(&self) -> Vec<Peer> {
        self.peers.lock().unwrap().clone()
    }

    async fn wait_started(&self, n: usize) {
        let gate = self.gate.as_ref().expect("gated handler");
        let mut rx = gate.started.subscribe();
        timeout(WAIT, rx.wait_for(|&s| s >= n))
            .await
            .expect("handler never started")
            .expect("closed");
    }
}

impl Handler for TestHandler {
    async fn on_frame(&self, peer: &Peer, payload: Bytes) -> Option<Bytes> {
        self.peers.lock().unwrap().push(peer.clone());
        if let Some(gate) = &self.gate {
            gate.started.send_modify(|n| *n += 1);
            gate.release.acquire().await.expect("open").forget();
        }
        if payload.as_ref() == b"SILENT" {
            return None;
        }
        let mut reply = b"ACK|".to_vec();
        reply.extend_from_slice(&payload);
        Some(reply.into())
    }

    async fn on_oversized(
        &self,
        _peer: &Peer,
        head: Bytes,
        len: usize,
        limit: usize,
    ) -> Option<Bytes> {
        let start = String::from_utf8_lossy(&head[..head.len().min(8)]).into_owned();
        Some(format!("REJECT|{len}|{limit}|{start}").into())
    }

    fn on_event(&self, event: ConnectionEvent) {
        self.events.send_modify(|evs| evs.push(event));
    }
}

// ---------------------------------------------------------------- harness

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<io::Result<()>>,
    handler: Arc<TestHandler>,
}

impl Server {
    async fn start(cfg: ListenerConfig, handler: Arc<TestHandler>) -> Server {
        Self::start_with_grace(cfg, handler, Duration::from_secs(10)).await
    }

    async fn start_with_grace(
        cfg: ListenerConfig,
        handler: Arc<TestHandler>,
        grace: Duration,
    ) -> Server {
        let listener = Listener::bind(cfg).await.expect("bind");
        let addr = listener.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.run(handler.clone(), shutdown.clone(), grace));
        Server {
            addr,
            shutdown,
            task,
            handler,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        timeout(WAIT, self.task)
            .await
            .expect("listener did not stop")
            .expect("join")
            .expect("run");
    }
}

fn local() -> ListenerConfig {
    ListenerConfig::new("127.0.0.1:0".parse().unwrap())
}

fn sender(addr: SocketAddr) -> Sender {
    let mut cfg = SenderConfig::new(addr.to_string());
    cfg.ack_timeout = WAIT;
    cfg.connect_timeout = WAIT;
    Sender::new(cfg)
}

type Raw = Framed<TcpStream, MllpCodec>;

async fn raw(addr: SocketAddr) -> Raw {
    Framed::new(
        TcpStream::connect(addr).await.expect("connect"),
        MllpCodec::default(),
    )
}

/// The next reply frame, or `None` if the stream ends (EOF, reset, garbage then EOF).
async fn next_reply(conn: &mut Raw) -> Option<Bytes> {
    match timeout(WAIT, conn.next())
        .await
        .expect("no reply, no close")
    {
        Some(Ok(Inbound::Frame { payload, .. })) => Some(payload),
        Some(Ok(other)) => panic!("unexpected {other:?}"),
        Some(Err(_)) | None => None,
    }
}

/// Wait until the peer closes a raw TCP stream without having sent an MLLP frame.
async fn expect_closed_without_reply(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match timeout(WAIT, stream.read(&mut buf)).await {
            Err(_) => panic!("connection was not closed"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => assert!(
                !buf[..n].contains(&0x0B),
                "got an MLLP frame from a refused connection"
            ),
        }
    }
}

// ---------------------------------------------------------------- PKI

struct Pki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "medrelay test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "Clinic");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "device-7");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

    Pki {
        ca_pem: ca_cert.pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

fn tls_listener(pki: &Pki, mutual: bool) -> ListenerConfig {
    let mut cfg = local();
    cfg.tls = Some(
        mllp::tls::server_config(
            pki.server_cert_pem.as_bytes(),
            pki.server_key_pem.as_bytes(),
            mutual.then_some(pki.ca_pem.as_bytes()),
        )
        .expect("server config"),
    );
    cfg
}

fn tls_sender(pki: &Pki, addr: SocketAddr, with_client_cert: bool) -> Sender {
    let identity = with_client_cert.then_some((
        pki.client_cert_pem.as_bytes(),
        pki.client_key_pem.as_bytes(),
    ));
    let mut cfg = SenderConfig::new(addr.to_string());
    cfg.tls = Some(ClientTls {
        config: mllp::tls::client_config(pki.ca_pem.as_bytes(), identity).expect("client config"),
        server_name: "localhost".to_owned(),
    });
    cfg.ack_timeout = WAIT;
    cfg.connect_timeout = WAIT;
    Sender::new(cfg)
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn round_trip_keeps_the_connection() {
    let server = Server::start(local(), TestHandler::new()).await;
    let mut s = sender(server.addr);
    for i in 0..3 {
        let msg = format!("MSH|^~\\&|{i}");
        let reply = s.send(msg.as_bytes()).await.expect("send");
        assert_eq!(reply, format!("ACK|{msg}").as_bytes());
    }
    assert!(s.is_connected());
    let accepted = server
        .handler
        .events()
        .iter()
        .filter(|e| matches!(e, ConnectionEvent::Accepted { .. }))
        .count();
    assert_eq!(accepted, 1, "all messages on one connection");
    let peers = server.handler.peers();
    assert!(
        peers
            .iter()
            .all(|p| !p.tls && p.client_cert_subject.is_none())
    );
    s.close().await;
    server
        .handler
        .wait_event(|e| {
            matches!(
                e,
                ConnectionEvent::Closed {
                    reason: CloseReason::PeerClosed,
                    frames: 3,
                    ..
                }
            )
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn frames_are_answered_in_order_when_pipelined() {
    let server = Server::start(local(), TestHandler::new()).await;
    let mut conn = raw(server.addr).await;
    // Everything in one write, with junk between frames.
    let mut wire = Vec::new();
    for i in 0..50 {
        wire.extend_from_slice(b"\r\n\x0B");
        wire.extend_from_slice(format!("m{i}").as_bytes());
        wire.extend_from_slice(b"\x1C\r");
    }
    conn.get_mut().write_all(&wire).await.unwrap();
    for i in 0..50 {
        let reply = next_reply(&mut conn).await.expect("reply");
        assert_eq!(reply, format!("ACK|m{i}").as_bytes());
    }
    server.stop().await;
}

#[tokio::test]
async fn silent_handler_sends_nothing() {
    let server = Server::start(local(), TestHandler::new()).await;
    let mut conn = raw(server.addr).await;
    conn.send(&b"SILENT"[..]).await.unwrap();
    conn.send(&b"loud"[..]).await.unwrap();
    assert_eq!(next_reply(&mut conn).await.unwrap(), &b"ACK|loud"[..]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections() {
    let server = Server::start(local(), TestHandler::new()).await;
    let mut clients = Vec::new();
    for c in 0..40 {
        let addr = server.addr;
        clients.push(tokio::spawn(async move {
            let mut s = sender(addr);
            for i in 0..5 {
                let msg = format!("client{c}-msg{i}");
                let reply = s.send(msg.as_bytes()).await.expect("send");
                assert_eq!(reply, format!("ACK|{msg}").as_bytes());
            }
            s.close().await;
        }));
    }
    for c in clients {
        timeout(WAIT, c)
            .await
            .expect("client hung")
            .expect("client failed");
    }
    assert_eq!(server.handler.peers().len(), 200);
    server.stop().await;
}

#[tokio::test]
async fn oversized_frame_is_rejected_and_the_connection_goes_on() {
    let mut cfg = local();
    cfg.max_frame = 1000;
    let server = Server::start(cfg, TestHandler::new()).await;
    let mut conn = raw(server.addr).await;
    let mut big = b"MSH|big|".to_vec();
    big.resize(5000, b'x');
    // Bypass the client-side limit: the raw codec here has the default limit.
    conn.send(&big[..]).await.unwrap();
    conn.send(&b"small"[..]).await.unwrap();
    assert_eq!(
        next_reply(&mut conn).await.unwrap(),
        &b"REJECT|5000|1000|MSH|big|"[..]
    );
    assert_eq!(next_reply(&mut conn).await.unwrap(), &b"ACK|small"[..]);
    server.stop().await;
}

#[tokio::test]
async fn sender_refuses_oversized_message_and_reply() {
    let server = Server::start(local(), TestHandler::new()).await;
    let mut cfg = SenderConfig::new(server.addr.to_string());
    cfg.max_frame = 10;
    let mut s = Sender::new(cfg);
    let err = s.send(b"01234567890").await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Protocol(mllp::CodecError::PayloadTooLarge { .. })
        ),
        "{err:?}"
    );
    assert!(!s.is_connected(), "no connection needed to refuse");
    // "ACK|" + 8 bytes = 12 > 10.
    let err = s.send(b"01234567").await.unwrap_err();
    assert!(
        matches!(err, SendError::Oversized { len: 12, limit: 10 }),
        "{err:?}"
    );
    // The stream is still in sync.
    assert_eq!(s.send(b"ok").await.unwrap(), &b"ACK|ok"[..]);
    let err = s.send(b"a\x0Bb").await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Protocol(mllp::CodecError::InvalidPayload { offset: 1 })
        ),
        "{err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn truncated_frame_is_reported() {
    let server = Server::start(local(), TestHandler::new()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"\x0BMSH|half").await.unwrap();
    stream.shutdown().await.unwrap();
    server
        .handler
        .wait_event(|e| {
            matches!(
                e,
                ConnectionEvent::Closed {
                    reason: CloseReason::Truncated { bytes: 8 },
                    frames: 0,
                    ..
                }
            )
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn allow_list_refuses_other_addresses() {
    let mut cfg = local();
    cfg.allow = mllp::AllowList::parse(["127.0.0.1/32"]).unwrap();
    let server = Server::start(cfg, TestHandler::new()).await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(server.addr).await.expect("TCP connect");
    // The write may fail if the refusal is already through; that is fine too.
    let _ = stream.write_all(b"\x0BMSH|refused\x1C\r").await;
    expect_closed_without_reply(&mut stream).await;
    let ev = server
        .handler
        .wait_event(|e| matches!(e, ConnectionEvent::Refused { .. }))
        .await;
    match ev {
        ConnectionEvent::Refused { peer, reason } => {
            assert_eq!(peer.ip().to_string(), "127.0.0.2");
            assert_eq!(reason, RefuseReason::NotAllowed);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        server.handler.peers().is_empty(),
        "refused frame was handled"
    );

    let mut s = sender(server.addr);
    assert_eq!(s.send(b"hello").await.unwrap(), &b"ACK|hello"[..]);
    server.stop().await;
}

#[tokio::test]
async fn connection_limit() {
    let mut cfg = local();
    cfg.max_connections = 1;
    let server = Server::start(cfg, TestHandler::new()).await;

    let mut first = sender(server.addr);
    assert_eq!(first.send(b"one").await.unwrap(), &b"ACK|one"[..]);

    let mut second = TcpStream::connect(server.addr).await.unwrap();
    expect_closed_without_reply(&mut second).await;
    server
        .handler
        .wait_event(|e| {
            matches!(
                e,
                ConnectionEvent::Refused {
                    reason: RefuseReason::TooManyConnections,
                    ..
                }
            )
        })
        .await;

    first.close().await;
    server
        .handler
        .wait_event(|e| matches!(e, ConnectionEvent::Closed { .. }))
        .await;
    let mut third = sender(server.addr);
    assert_eq!(third.send(b"three").await.unwrap(), &b"ACK|three"[..]);
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut cfg = local();
    cfg.idle_timeout = Duration::from_millis(200);
    let server = Server::start(cfg, TestHandler::new()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    expect_closed_without_reply(&mut stream).await;
    server
        .handler
        .wait_event(|e| {
            matches!(
                e,
                ConnectionEvent::Closed {
                    reason: CloseReason::IdleTimeout,
                    ..
                }
            )
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn tls_round_trip() {
    let pki = pki();
    let server = Server::start(tls_listener(&pki, false), TestHandler::new()).await;
    let mut s = tls_sender(&pki, server.addr, false);
    for i in 0..3 {
        let msg = format!("tls-{i}");
        assert_eq!(
            s.send(msg.as_bytes()).await.unwrap(),
            format!("ACK|{msg}").as_bytes()
        );
    }
    let peers = server.handler.peers();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| p.tls && p.client_cert.is_none()));
    s.close().await;
    server.stop().await;
}

#[tokio::test]
async fn tls_sender_rejects_untrusted_server() {
    let pki = pki();
    let other = self::pki();
    let server = Server::start(tls_listener(&pki, false), TestHandler::new()).await;
    let mut s = tls_sender(&other, server.addr, false);
    let err = s.send(b"x").await.unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls() {
    let pki = pki();
    let server = Server::start(tls_listener(&pki, true), TestHandler::new()).await;

    // Without a client certificate. With TLS 1.3 the client may finish its side of
    // the handshake before the server refuses, so the error can surface as a TLS
    // error or on the first read.
    let mut anonymous = tls_sender(&pki, server.addr, false);
    let err = anonymous.send(b"anonymous").await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Tls { .. } | SendError::Io(_) | SendError::Closed
        ),
        "{err:?}"
    );
    server
        .handler
        .wait_event(|e| matches!(e, ConnectionEvent::TlsHandshakeFailed { .. }))
        .await;
    assert!(server.handler.peers().is_empty());

    let mut device = tls_sender(&pki, server.addr, true);
    assert_eq!(
        device.send(b"with cert").await.unwrap(),
        &b"ACK|with cert"[..]
    );
    let peers = server.handler.peers();
    assert_eq!(peers.len(), 1);
    assert!(peers[0].tls);
    assert!(peers[0].client_cert.is_some());
    // rcgen's default name already holds a CN, so the DER order is CN, O; RFC 4514
    // writes the last RDN first.
    assert_eq!(
        peers[0].client_cert_subject.as_deref(),
        Some("O=Clinic,CN=device-7")
    );
    server.stop().await;
}

#[tokio::test]
async fn plain_client_against_tls_listener() {
    let pki = pki();
    let server = Server::start(tls_listener(&pki, false), TestHandler::new()).await;

    let mut plain = raw(server.addr).await;
    plain.send(&b"MSH|plain"[..]).await.unwrap();
    assert_eq!(next_reply(&mut plain).await, None);
    server
        .handler
        .wait_event(|e| matches!(e, ConnectionEvent::TlsHandshakeFailed { .. }))
        .await;

    let mut s = tls_sender(&pki, server.addr, false);
    assert_eq!(s.send(b"after").await.unwrap(), &b"ACK|after"[..]);
    assert_eq!(server.handler.peers().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn tls_handshake_timeout() {
    let pki = pki();
    let mut cfg = tls_listener(&pki, false);
    cfg.tls_handshake_timeout = Duration::from_millis(200);
    let server = Server::start(cfg, TestHandler::new()).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    expect_closed_without_reply(&mut silent).await;
    let ev = server
        .handler
        .wait_event(|e| matches!(e, ConnectionEvent::TlsHandshakeFailed { .. }))
        .await;
    assert!(format!("{ev:?}").contains("timed out"), "{ev:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_reconnects_after_server_restart() {
    let first = Server::start(local(), TestHandler::new()).await;
    let addr = first.addr;
    let mut s = sender(addr);
    assert_eq!(s.send(b"before").await.unwrap(), &b"ACK|before"[..]);
    first.stop().await;

    let mut cfg = local();
    cfg.addr = addr;
    let second = Server::start(cfg, TestHandler::new()).await;
    // The kept connection was closed by the old server; the sender notices and
    // reconnects without returning an error.
    assert_eq!(s.send(b"after").await.unwrap(), &b"ACK|after"[..]);
    assert_eq!(second.handler.peers().len(), 1);
    second.stop().await;
}

#[tokio::test]
async fn sender_recovers_after_an_error() {
    let first = Server::start(local(), TestHandler::new()).await;
    let addr = first.addr;
    first.stop().await;
    let mut s = sender(addr);
    // Nothing listens now: connection refused.
    let err = s.send(b"x").await.unwrap_err();
    assert!(matches!(err, SendError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()));

    let mut cfg = local();
    cfg.addr = addr;
    let second = Server::start(cfg, TestHandler::new()).await;
    assert_eq!(s.send(b"y").await.unwrap(), &b"ACK|y"[..]);
    second.stop().await;
}

#[tokio::test]
async fn connect_timeout_when_backlog_is_full() {
    // A listener that never accepts: once its accept queue is full, the kernel
    // drops further SYNs and connects hang, all on loopback.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..64 {
        match timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connect failed: {e}"),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    if !full {
        eprintln!("backlog never filled on this kernel; skipping the timeout check");
        return;
    }
    let mut cfg = SenderConfig::new(addr.to_string());
    cfg.connect_timeout = Duration::from_millis(300);
    let mut s = Sender::new(cfg);
    let err = s.send(b"x").await.unwrap_err();
    assert!(matches!(err, SendError::ConnectTimeout { .. }), "{err:?}");
    drop(listener);
}

#[tokio::test]
async fn ack_timeout_drops_the_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and reads, never replies.
    let mute = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            conns.push(stream);
        }
    });
    let mut cfg = SenderConfig::new(addr.to_string());
    cfg.ack_timeout = Duration::from_millis(200);
    let mut s = Sender::new(cfg);
    let err = s.send(b"hello?").await.unwrap_err();
    assert!(matches!(err, SendError::AckTimeout { .. }), "{err:?}");
    assert!(!s.is_connected());
    mute.abort();
}

#[tokio::test]
async fn peer_closing_before_reply_is_closed_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rude = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        // Dropping closes without a reply.
    });
    let mut s = sender(addr);
    let err = s.send(b"hello?").await.unwrap_err();
    assert!(
        matches!(err, SendError::Closed | SendError::Io(_)),
        "{err:?}"
    );
    assert!(!s.is_connected());
    rude.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_frame_in_flight() {
    let handler = TestHandler::gated();
    let server = Server::start(local(), handler.clone()).await;
    let addr = server.addr;

    let in_flight = tokio::spawn(async move {
        let mut s = sender(addr);
        s.send(b"in flight").await
    });
    handler.wait_started(1).await;
    server.shutdown.cancel();

    // New connections are refused once the listening socket is closed.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still accepting after shutdown"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert!(
        !server.task.is_finished(),
        "run returned before the frame finished"
    );

    handler.gate.as_ref().unwrap().release.add_permits(1);
    let reply = timeout(WAIT, in_flight).await.unwrap().unwrap();
    assert_eq!(reply.unwrap(), &b"ACK|in flight"[..]);
    timeout(WAIT, server.task)
        .await
        .expect("run did not return")
        .unwrap()
        .unwrap();
    handler
        .wait_event(|e| {
            matches!(
                e,
                ConnectionEvent::Closed {
                    reason: CloseReason::Shutdown,
                    frames: 1,
                    ..
                }
            )
        })
        .await;
}

#[tokio::test]
async fn shutdown_gives_up_after_grace() {
    let handler = TestHandler::gated();
    let server =
        Server::start_with_grace(local(), handler.clone(), Duration::from_millis(200)).await;
    let addr = server.addr;
    let stuck = tokio::spawn(async move { sender(addr).send(b"never answered").await });
    handler.wait_started(1).await;
    server.shutdown.cancel();
    timeout(WAIT, server.task)
        .await
        .expect("grace not enforced")
        .unwrap()
        .unwrap();
    let err = timeout(WAIT, stuck).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(err, SendError::Closed | SendError::Io(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn idle_connections_close_on_shutdown() {
    let server = Server::start(local(), TestHandler::new()).await;
    let mut conn = raw(server.addr).await;
    conn.send(&b"hi"[..]).await.unwrap();
    assert_eq!(next_reply(&mut conn).await.unwrap(), &b"ACK|hi"[..]);
    let handler = server.handler.clone();
    server.stop().await;
    assert_eq!(next_reply(&mut conn).await, None);
    assert!(handler.events().iter().any(|e| matches!(
        e,
        ConnectionEvent::Closed {
            reason: CloseReason::Shutdown,
            ..
        }
    )));
}

#[test]
fn tls_config_from_files_and_errors() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let ca = write("ca.pem", &pki.ca_pem);
    let cert = write("server.pem", &pki.server_cert_pem);
    let key = write("server.key", &pki.server_key_pem);
    let client_cert = write("client.pem", &pki.client_cert_pem);
    let client_key = write("client.key", &pki.client_key_pem);
    let empty = write("empty.pem", "");

    mllp::tls::server_config_from_files(&cert, &key, Some(&ca)).unwrap();
    mllp::tls::client_config_from_files(&ca, Some((&client_cert, &client_key))).unwrap();

    let err = mllp::tls::server_config_from_files(&empty, &key, None).unwrap_err();
    assert!(
        matches!(err, mllp::TlsError::NoCertificates { ref what } if what.ends_with("empty.pem")),
        "{err}"
    );
    let err = mllp::tls::server_config_from_files(&cert, &cert, None).unwrap_err();
    assert!(matches!(err, mllp::TlsError::NoPrivateKey { .. }), "{err}");
    // A key that does not belong to the certificate.
    let err = mllp::tls::server_config_from_files(&cert, &client_key, None).unwrap_err();
    assert!(matches!(err, mllp::TlsError::Rustls(_)), "{err}");
    let err =
        mllp::tls::client_config_from_files(&dir.path().join("missing.pem"), None).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn tls_sender_reconnects_after_server_restart() {
    let pki = pki();
    let first = Server::start(tls_listener(&pki, false), TestHandler::new()).await;
    let addr = first.addr;
    let mut s = tls_sender(&pki, addr, false);
    assert_eq!(s.send(b"before").await.unwrap(), &b"ACK|before"[..]);
    first.stop().await;

    let mut cfg = tls_listener(&pki, false);
    cfg.addr = addr;
    let second = Server::start(cfg, TestHandler::new()).await;
    // The old server's close_notify is waiting on the idle connection.
    assert_eq!(s.send(b"after").await.unwrap(), &b"ACK|after"[..]);
    assert_eq!(second.handler.peers().len(), 1);
    second.stop().await;
}
