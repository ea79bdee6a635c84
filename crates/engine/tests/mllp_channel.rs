//! A channel end to end over real sockets and a real SQLite file: MLLP in,
//! store, ACK, destination queues out.

use std::time::Duration;

use hl7v2::Message;
use hl7v2::ack::{AckCode, parse_ack};
use medrelay_engine::config::{AckMode, ChannelConfig, DestinationConfig, SourceConfig};
use medrelay_engine::{Engine, queue_key};
use medrelay_store::{DeliveryState, MessageQuery, MessageStatus, SqliteOptions, Store};
use medrelay_testkit::{EhrMode, TestEhr, TestPki, orm_o01, wait_for};
use mllp::{Sender, SenderConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    engine: Engine,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(channels: Vec<ChannelConfig>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open_sqlite(&dir.path().join("medrelay.db"), SqliteOptions::default()).unwrap();
        let engine = Engine::start(store.clone(), &channels, &[], Duration::from_secs(5))
            .await
            .unwrap();
        Harness {
            engine,
            store,
            _dir: dir,
        }
    }

    fn sender(&self, channel: &str) -> Sender {
        let addr = self.engine.source_addr(channel).unwrap();
        Sender::new(SenderConfig::new(addr.to_string()))
    }

    async fn messages(&self, control_id: Option<&str>) -> Vec<medrelay_store::StoredMessage> {
        self.store
            .find_messages(MessageQuery {
                control_id: control_id.map(str::to_string),
                limit: 1000,
                ..MessageQuery::new("default")
            })
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.engine.shutdown().await;
        self.store.close().await.unwrap();
    }
}

fn channel(name: &str) -> ChannelConfig {
    ChannelConfig::new(name, SourceConfig::mllp("127.0.0.1:0".parse().unwrap()))
}

fn mllp_destination(name: &str, addr: std::net::SocketAddr) -> DestinationConfig {
    let mut d: DestinationConfig = toml::from_str(&format!(
        "name = \"{name}\"\nmllp = \"{addr}\"\nconnect_timeout = \"1s\"\nack_timeout = \"2s\"\nretry = {{ initial = \"50ms\", max = \"400ms\" }}\n"
    ))
    .unwrap();
    d.name = Some(name.to_string());
    d
}

struct Ack {
    code: AckCode,
    acked: String,
    raw: String,
}

fn read_ack(bytes: &[u8]) -> Ack {
    let msg = Message::parse(bytes).expect("the reply is HL7");
    let view = parse_ack(&msg).expect("the reply is an ACK");
    Ack {
        code: view.code,
        acked: view.acknowledged_control_id.to_string(),
        raw: String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[tokio::test]
async fn orm_is_acknowledged_aa_after_it_is_stored() {
    let h = Harness::start(vec![channel("orders")]).await;
    let mut s = h.sender("orders");
    let msg = orm_o01("MSG001");
    let ack = read_ack(&s.send(&msg).await.unwrap());
    assert_eq!(ack.code, AckCode::AA, "{}", ack.raw);
    assert_eq!(ack.acked, "MSG001");
    assert!(
        ack.raw.contains("|ACK^O01"),
        "MSH-9 is ACK^O01: {}",
        ack.raw
    );

    let stored = h.messages(Some("MSG001")).await;
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!(m.raw, msg, "the raw bytes are kept exactly");
    assert_eq!(m.status, MessageStatus::Accepted);
    assert_eq!(m.message_type.as_deref(), Some("ORM^O01"));
    assert_eq!(m.sending_application.as_deref(), Some("HIS"));
    assert_eq!(m.sending_facility.as_deref(), Some("HOSPITAL_A"));
    assert_eq!(m.channel, "orders");
    assert_eq!(m.org, "default");
    assert!(
        m.peer
            .as_deref()
            .is_some_and(|p| p.starts_with("127.0.0.1:"))
    );
    assert_eq!(
        m.ack
            .as_deref()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
        Some(ack.raw)
    );
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn malformed_input_gets_a_nack_naming_the_problem_and_is_kept() {
    let h = Harness::start(vec![channel("orders")]).await;
    let mut s = h.sender("orders");

    // No MSH at all.
    let garbage = b"hello, this is not HL7\r".to_vec();
    let ack = read_ack(&s.send(&garbage).await.unwrap());
    assert_eq!(ack.code, AckCode::AR, "{}", ack.raw);
    assert!(
        ack.raw.contains("\rERR|"),
        "ERR segment present: {}",
        ack.raw
    );
    assert!(
        ack.raw.to_lowercase().contains("msh"),
        "the error names MSH: {}",
        ack.raw
    );

    // Broken delimiters: MSH-2 repeats the field separator.
    let broken = b"MSH|^^|\\&|HIS|HOSP|X|Y|20250101||ORM^O01|BAD1|P|2.5\r".to_vec();
    let ack = read_ack(&s.send(&broken).await.unwrap());
    assert_eq!(ack.code, AckCode::AR, "{}", ack.raw);
    assert!(ack.raw.contains("\rERR|"), "{}", ack.raw);

    // Parses, but an ORM^O01 without PID/ORC/OBR is structurally invalid.
    let incomplete = b"MSH|^~\\&|HIS|HOSP|X|Y|20250101||ORM^O01|BAD2|P|2.5\r".to_vec();
    let ack = read_ack(&s.send(&incomplete).await.unwrap());
    assert_eq!(ack.code, AckCode::AE, "{}", ack.raw);
    assert_eq!(ack.acked, "BAD2");
    assert!(ack.raw.contains("\rERR|"), "{}", ack.raw);
    assert!(
        ack.raw.contains("ORC") || ack.raw.contains("OBR"),
        "the ERR names the missing segment: {}",
        ack.raw
    );

    // The same connection still works.
    let ack = read_ack(&s.send(&orm_o01("GOOD1")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA);

    let all = h.messages(None).await;
    assert_eq!(all.len(), 4, "every input is stored, good or bad");
    for (raw, status) in [
        (&garbage, MessageStatus::Rejected),
        (&broken, MessageStatus::Rejected),
        (&incomplete, MessageStatus::Rejected),
    ] {
        let m = all.iter().find(|m| &m.raw == raw).expect("raw bytes kept");
        assert_eq!(m.status, status);
        assert!(m.error.as_deref().is_some_and(|e| !e.is_empty()));
        assert!(m.ack.is_some());
    }
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn peer_outside_the_allow_list_is_refused() {
    let mut ch = channel("guarded");
    ch.source.allow = vec!["127.0.0.1/32".into()];
    let h = Harness::start(vec![ch]).await;
    let addr = h.engine.source_addr("guarded").unwrap();

    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = sock.connect(addr).await.unwrap();
    let mut frame = vec![0x0b];
    frame.extend_from_slice(&orm_o01("DENIED1"));
    frame.extend_from_slice(&[0x1c, 0x0d]);
    let _ = stream.write_all(&frame).await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "a refused peer gets no ACK, only a closed connection");

    // 127.0.0.1 is allowed.
    let mut s = h.sender("guarded");
    let ack = read_ack(&s.send(&orm_o01("ALLOWED1")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA);
    assert!(
        h.messages(Some("DENIED1")).await.is_empty(),
        "nothing from the refused peer is processed"
    );
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn tls_round_trip_and_plain_text_client_fails_cleanly() {
    let pki = TestPki::generate();
    let mut ch = channel("secure");
    ch.source.tls = Some(medrelay_engine::config::ServerTls {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: None,
    });
    let h = Harness::start(vec![ch]).await;
    let addr = h.engine.source_addr("secure").unwrap();

    // Plain text against TLS: no ACK, a closed connection.
    let mut plain = Sender::new(SenderConfig {
        ack_timeout: Duration::from_secs(5),
        ..SenderConfig::new(addr.to_string())
    });
    assert!(plain.send(&orm_o01("PLAIN1")).await.is_err());

    let tls = mllp::tls::client_config_from_files(&pki.ca, None).unwrap();
    let mut s = Sender::new(SenderConfig {
        tls: Some(mllp::ClientTls {
            config: tls,
            server_name: "localhost".into(),
        }),
        ..SenderConfig::new(addr.to_string())
    });
    let ack = read_ack(&s.send(&orm_o01("TLS1")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA);
    assert_eq!(h.messages(Some("TLS1")).await.len(), 1);
    assert!(h.messages(Some("PLAIN1")).await.is_empty());
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn oversized_frame_is_rejected_and_the_server_lives() {
    let mut ch = channel("small");
    ch.source.max_frame = 4096;
    let h = Harness::start(vec![ch]).await;
    let mut s = h.sender("small");

    let mut big = orm_o01("BIG1");
    big.extend_from_slice(b"NTE|1||");
    big.extend(std::iter::repeat_n(b'x', 10_000));
    big.push(b'\r');
    let ack = read_ack(&s.send(&big).await.unwrap());
    assert_eq!(ack.code, AckCode::AR, "{}", ack.raw);
    assert_eq!(
        ack.acked, "BIG1",
        "the MSH is salvaged from the head of the frame"
    );
    assert!(
        ack.raw.contains("4096"),
        "the ERR names the limit: {}",
        ack.raw
    );

    let ack = read_ack(&s.send(&orm_o01("SMALL1")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA);
    let kept = h.messages(Some("BIG1")).await;
    assert_eq!(kept.len(), 1, "evidence of the oversized frame is kept");
    assert_eq!(kept[0].status, MessageStatus::Rejected);
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn retransmission_gets_the_same_ack_and_one_stored_copy() {
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let mut ch = channel("dedup");
    ch.destinations = vec![mllp_destination("ehr", ehr.addr)];
    let h = Harness::start(vec![ch]).await;
    let mut s = h.sender("dedup");
    let first = s.send(&orm_o01("RETX1")).await.unwrap();
    let second = s.send(&orm_o01("RETX1")).await.unwrap();
    assert_eq!(first, second, "byte-identical ACK for the retransmission");
    assert_eq!(read_ack(&first).code, AckCode::AA);
    assert_eq!(h.messages(Some("RETX1")).await.len(), 1);
    // The destination gets it once.
    ehr.wait_for_count(1, WAIT).await;
    let third = s.send(&orm_o01("OTHER1")).await.unwrap();
    assert_eq!(read_ack(&third).code, AckCode::AA);
    let got = ehr.wait_for_count(2, WAIT).await;
    assert_eq!(got.len(), 2, "the retransmission was not forwarded again");
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn a_down_destination_is_retried_and_gets_everything_in_order() {
    let addr = medrelay_testkit::free_port();
    let mut ch = channel("retry");
    ch.destinations = vec![mllp_destination("ehr", addr)];
    let h = Harness::start(vec![ch]).await;
    let mut s = h.sender("retry");
    let ids: Vec<String> = (0..20).map(|i| format!("ORD{i:03}")).collect();
    for id in &ids {
        let ack = read_ack(&s.send(&orm_o01(id)).await.unwrap());
        assert_eq!(
            ack.code,
            AckCode::AA,
            "ACK after store, even with the destination down"
        );
    }
    // The head of the queue is retried with backoff while the EHR is down.
    let key = queue_key("retry", "ehr");
    let store = h.store.clone();
    let msg_id = h.messages(Some("ORD000")).await[0].id;
    wait_for("two failed attempts", WAIT, || {
        let store = store.clone();
        async move {
            let d = store.deliveries_for_message(msg_id).await.ok()?;
            (d.first()?.attempts >= 2 && d[0].state == DeliveryState::Retrying).then_some(())
        }
    })
    .await;
    let depth = h.store.queue_depth(&key).await.unwrap();
    assert_eq!(depth.pending, 20);

    let ehr = TestEhr::start_on(addr, EhrMode::Accept).await;
    ehr.wait_for_count(20, WAIT).await;
    assert_eq!(ehr.control_ids(), ids, "every message, in order, once");
    let store = h.store.clone();
    let key2 = key.clone();
    wait_for("empty queue", WAIT, || {
        let (store, key) = (store.clone(), key2.clone());
        async move { (store.queue_depth(&key).await.ok()?.pending == 0).then_some(()) }
    })
    .await;
    let d = h.store.deliveries_for_message(msg_id).await.unwrap();
    assert_eq!(d[0].state, DeliveryState::Sent);
    assert!(
        d[0].response
            .as_deref()
            .is_some_and(|r| r.windows(7).any(|w| w == b"MSA|AA|"))
    );
    s.close().await;
    h.stop().await;
    ehr.stop().await;
}

#[tokio::test]
async fn ack_after_destinations_reflects_the_destination() {
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let mut ch = channel("sync");
    ch.ack = AckMode::AfterDestinations;
    ch.ack_wait = Duration::from_secs(10);
    let mut d = mllp_destination("ehr", ehr.addr);
    d.retry.max_attempts = Some(1);
    ch.destinations = vec![d];
    let h = Harness::start(vec![ch]).await;
    let mut s = h.sender("sync");

    let ack = read_ack(&s.send(&orm_o01("SYNC1")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA);
    assert_eq!(
        ehr.messages().len(),
        1,
        "the destination had it before the ACK"
    );
    assert_eq!(
        h.messages(Some("SYNC1")).await[0].status,
        MessageStatus::Processed
    );

    ehr.set_mode(EhrMode::Reject);
    let ack = read_ack(&s.send(&orm_o01("SYNC2")).await.unwrap());
    assert_eq!(ack.code, AckCode::AE, "{}", ack.raw);
    assert_eq!(ack.acked, "SYNC2");
    let stored = h.messages(Some("SYNC2")).await;
    assert_eq!(
        stored.len(),
        1,
        "kept even though the destination refused it"
    );
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn file_destination_writes_complete_files() {
    let out = tempfile::tempdir().unwrap();
    let mut ch = channel("files");
    let d: DestinationConfig = toml::from_str(&format!(
        "name = \"archive\"\nfile = {:?}\npattern = \"{{control_id}}.hl7\"\n",
        out.path()
    ))
    .unwrap();
    ch.destinations = vec![d];
    ch.filter = Some(toml::from_str("message_types = [\"ORM^O01\"]").unwrap());
    ch.transform = vec![toml::from_str("set = \"MSH-5\"\nvalue = \"ARCHIVE\"").unwrap()];
    let h = Harness::start(vec![ch]).await;
    let mut s = h.sender("files");
    for id in ["F1", "F2", "../evil"] {
        assert_eq!(
            read_ack(&s.send(&orm_o01(id)).await.unwrap()).code,
            AckCode::AA
        );
    }
    // Filtered out: an ADT is acknowledged and stored but not written.
    let adt = b"MSH|^~\\&|HIS|HOSP|X|Y|20250101||ADT^A08|ADT1|P|2.5\rEVN|A08|20250101\rPID|1||123^^^HIS||DOE^JOHN\rPV1|1|O\r";
    assert_eq!(read_ack(&s.send(adt).await.unwrap()).code, AckCode::AA);

    let dir = out.path().to_path_buf();
    let files = wait_for("three files", WAIT, || {
        let dir = dir.clone();
        async move {
            let names: Vec<String> = std::fs::read_dir(&dir)
                .ok()?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            (names.len() >= 3).then_some(names)
        }
    })
    .await;
    let mut files = files;
    files.sort();
    assert_eq!(
        files,
        vec!["F1.hl7", "F2.hl7", "_evil.hl7"],
        "no temp files left, no path escape"
    );
    let f1 = std::fs::read(out.path().join("F1.hl7")).unwrap();
    assert!(
        f1.starts_with(b"MSH|^~\\&|HIS|HOSPITAL_A|ARCHIVE|"),
        "{}",
        String::from_utf8_lossy(&f1)
    );
    assert_eq!(
        h.messages(Some("ADT1")).await[0].status,
        MessageStatus::Filtered
    );
    s.close().await;
    h.stop().await;
}

#[tokio::test]
async fn queued_work_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("medrelay.db");
    let addr = medrelay_testkit::free_port();
    let mut ch = channel("resume");
    ch.destinations = vec![mllp_destination("ehr", addr)];

    let store = Store::open_sqlite(&db, SqliteOptions::default()).unwrap();
    let engine = Engine::start(
        store.clone(),
        std::slice::from_ref(&ch),
        &[],
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let mut s = Sender::new(SenderConfig::new(
        engine.source_addr("resume").unwrap().to_string(),
    ));
    for i in 0..5 {
        s.send(&orm_o01(&format!("R{i}"))).await.unwrap();
    }
    s.close().await;
    engine.shutdown().await;
    store.close().await.unwrap();

    let ehr = TestEhr::start_on(addr, EhrMode::Accept).await;
    let store = Store::open_sqlite(&db, SqliteOptions::default()).unwrap();
    let engine = Engine::start(
        store.clone(),
        std::slice::from_ref(&ch),
        &[],
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    ehr.wait_for_count(5, WAIT).await;
    assert_eq!(ehr.control_ids(), vec!["R0", "R1", "R2", "R3", "R4"]);
    engine.shutdown().await;
    store.close().await.unwrap();
}

/// A channel an operator stopped is still stopped after a restart, its queue
/// held, until it is started again.
#[tokio::test]
async fn a_stopped_channel_stays_stopped_across_a_restart() {
    use medrelay_engine::run_state::RunState;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("medrelay.db");
    let addr = medrelay_testkit::free_port();
    let mut ch = channel("kept");
    ch.destinations = vec![mllp_destination("ehr", addr)];
    let start = |store: Store| {
        let ch = ch.clone();
        async move {
            Engine::start(
                store,
                std::slice::from_ref(&ch),
                &[],
                Duration::from_secs(2),
            )
            .await
            .unwrap()
        }
    };

    let store = Store::open_sqlite(&db, SqliteOptions::default()).unwrap();
    let engine = start(store.clone()).await;
    let mut s = Sender::new(SenderConfig::new(
        engine.source_addr("kept").unwrap().to_string(),
    ));
    assert_eq!(
        read_ack(&s.send(&orm_o01("K1")).await.unwrap()).code,
        AckCode::AA
    );
    s.close().await;
    engine.pipelines()["kept"]
        .set_run_state(RunState::Stopped, "olga")
        .await
        .unwrap();
    engine.shutdown().await;
    store.close().await.unwrap();

    let store = Store::open_sqlite(&db, SqliteOptions::default()).unwrap();
    let engine = start(store.clone()).await;
    let pipeline = engine.pipelines()["kept"].clone();
    assert_eq!(pipeline.control().get(), RunState::Stopped);
    let mut s = Sender::new(SenderConfig::new(
        engine.source_addr("kept").unwrap().to_string(),
    ));
    let ack = read_ack(&s.send(&orm_o01("K2")).await.unwrap());
    assert_eq!(ack.code, AckCode::AE);
    assert!(ack.raw.contains("stopped"), "{}", ack.raw);

    // Started again: the held message goes out, and the start is remembered.
    let ehr = TestEhr::start_on(addr, EhrMode::Accept).await;
    pipeline
        .set_run_state(RunState::Running, "piet")
        .await
        .unwrap();
    ehr.wait_for_count(1, WAIT).await;
    assert_eq!(ehr.control_ids(), vec!["K1"]);
    let states = store.channel_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].state.as_str(), states[0].changed_by.as_str()),
        ("running", "piet")
    );
    s.close().await;
    engine.shutdown().await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn hostile_frames_are_answered_and_kept() {
    let h = Harness::start(vec![channel("hostile")]).await;
    let mut s = h.sender("hostile");

    // An empty frame, NUL bytes and binary noise: AR each, connection survives.
    for raw in [
        b"".to_vec(),
        vec![0u8; 64],
        (0..=255u8)
            .cycle()
            .take(3000)
            .filter(|b| *b != 0x0b && *b != 0x1c)
            .collect(),
    ] {
        let ack = read_ack(&s.send(&raw).await.unwrap());
        assert_eq!(ack.code, AckCode::AR, "{}", ack.raw);
    }

    // ISO-8859-1 bytes (not UTF-8) are accepted and stored exactly as received.
    let mut latin1 = orm_o01("LATIN1");
    let at = latin1.windows(6).position(|w| w == b"GARCIA").unwrap();
    latin1.splice(at..at + 6, b"GARC\xCDA".iter().copied());
    let ack = read_ack(&s.send(&latin1).await.unwrap());
    assert_eq!(ack.code, AckCode::AA, "{}", ack.raw);
    assert_eq!(h.messages(Some("LATIN1")).await[0].raw, latin1);

    // A 10,000-character control id: the ACK stays small (the echo is capped).
    let long_id = "X".repeat(10_000);
    let reply = s.send(&orm_o01(&long_id)).await.unwrap();
    assert!(reply.len() < 2_000, "ACK of {} bytes", reply.len());

    // Delimiter characters in the control id come back escaped, not as structure.
    let ack = read_ack(&s.send(&orm_o01("A\\F\\B")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA);
    assert!(ack.raw.contains("MSA|AA|A\\F\\B"), "{}", ack.raw);

    let all = h.messages(None).await;
    assert_eq!(all.len(), 6, "every frame is kept");
    assert!(
        all.iter()
            .any(|m| m.raw.is_empty() && m.status == MessageStatus::Rejected)
    );
    s.close().await;
    h.stop().await;
}

/// An HTTPS service as the bridge's far side: answers each POST with the status
/// it is told and records what it accepted.
struct TestService {
    addr: std::net::SocketAddr,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl TestService {
    async fn start(status: u16) -> TestService {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(status));
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, a) = (status.clone(), accepted.clone());
        let app = axum::Router::new().route(
            "/hl7",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (s, a) = (s.clone(), a.clone());
                async move {
                    let code = s.load(Ordering::SeqCst);
                    if code == 200 {
                        a.lock().unwrap().push(body.to_vec());
                    }
                    (
                        axum::http::StatusCode::from_u16(code).unwrap(),
                        format!("{{\"error\": \"answer {code}\"}}"),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestService {
            addr,
            status,
            accepted,
        }
    }

    fn set(&self, code: u16) {
        self.status.store(code, std::sync::atomic::Ordering::SeqCst);
    }

    fn accepted(&self) -> Vec<Vec<u8>> {
        self.accepted.lock().unwrap().clone()
    }
}

/// The `004_…` bridge: MLLP in, HTTPS out, the HTTP answer becomes the ACK.
/// 2xx → AA; 4xx → AR naming the refusal; 5xx → AA once committed, delivered
/// when the service is back, once.
#[tokio::test]
async fn mllp_to_http_bridge_acks_from_the_http_answer() {
    let service = TestService::start(200).await;
    let mut ch = channel("bridge");
    ch.ack = AckMode::FromDestination;
    ch.ack_wait = Duration::from_secs(10);
    let d: DestinationConfig = toml::from_str(&format!(
        "name = \"doctolib\"\nhttp = \"http://{}/hl7\"\nauth = {{ bearer = \"secret-token\" }}\nretry = {{ initial = \"50ms\", max = \"200ms\" }}\n",
        service.addr
    ))
    .unwrap();
    ch.destinations = vec![d];
    let h = Harness::start(vec![ch]).await;
    let mut s = h.sender("bridge");

    let ack = read_ack(&s.send(&orm_o01("BR1")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA, "{}", ack.raw);
    assert_eq!(service.accepted().len(), 1, "delivered before the ACK");
    assert_eq!(
        h.messages(Some("BR1")).await[0].status,
        MessageStatus::Processed
    );

    service.set(422);
    let ack = read_ack(&s.send(&orm_o01("BR2")).await.unwrap());
    assert_eq!(ack.code, AckCode::AR, "{}", ack.raw);
    assert!(ack.raw.contains("422"), "the refusal is named: {}", ack.raw);
    let stored = &h.messages(Some("BR2")).await[0];
    assert_eq!(stored.status, MessageStatus::Errored);

    service.set(503);
    let ack = read_ack(&s.send(&orm_o01("BR3")).await.unwrap());
    assert_eq!(ack.code, AckCode::AA, "queued durably: {}", ack.raw);
    assert_eq!(service.accepted().len(), 1);
    service.set(200);
    wait_for("the queued message delivered", WAIT, || async {
        (service.accepted().len() == 2).then_some(())
    })
    .await;
    let delivered = service.accepted();
    assert!(
        String::from_utf8_lossy(&delivered[1]).contains("BR3"),
        "the queued message, not another"
    );
    // Exactly once: a short while later, still two.
    let id = h.messages(Some("BR3")).await[0].id;
    wait_for("the delivery recorded as sent", WAIT, || async {
        let d = h.store.deliveries_for_message(id).await.ok()?;
        (d[0].state == DeliveryState::Sent).then_some(())
    })
    .await;
    assert_eq!(service.accepted().len(), 2);
    s.close().await;
    h.stop().await;
}

/// The other half of the bridge: HL7 messages fetched from an HTTPS service and
/// forwarded over MLLP; a message fetched again is not forwarded twice.
#[tokio::test]
async fn http_poll_source_forwards_to_mllp_once() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let polls = std::sync::Arc::new(AtomicU32::new(0));
    let p = polls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let messages = serde_json::json!({
        "messages": [
            String::from_utf8(orm_o01("POLL1")).unwrap(),
            String::from_utf8(orm_o01("POLL2")).unwrap(),
        ]
    });
    let app = axum::Router::new().route(
        "/updates",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let (p, messages) = (p.clone(), messages.clone());
            async move {
                p.fetch_add(1, Ordering::SeqCst);
                if headers.get("x-api-key").is_none_or(|v| v != "k1") {
                    return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                }
                (axum::http::StatusCode::OK, messages.to_string())
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut ch: ChannelConfig = toml::from_str(&format!(
        "name = \"pull\"\nsource = {{ poll = {{ url = \"http://{addr}/updates\", every = \"100ms\", items = \"/messages\", auth = {{ api_key = \"k1\" }} }} }}\n"
    ))
    .unwrap();
    ch.destinations = vec![mllp_destination("his", ehr.addr)];
    assert!(medrelay_engine::check(std::slice::from_ref(&ch), &[]).is_empty());
    let h = Harness::start(vec![ch]).await;
    ehr.wait_for_count(2, WAIT).await;
    assert_eq!(ehr.control_ids(), ["POLL1", "POLL2"]);
    let seen = polls.load(Ordering::SeqCst);
    wait_for("two more polls", WAIT, || async {
        (polls.load(Ordering::SeqCst) >= seen + 2).then_some(())
    })
    .await;
    assert_eq!(ehr.messages().len(), 2, "fetched again, forwarded once");
    assert_eq!(h.messages(Some("POLL1")).await.len(), 1);
    h.stop().await;
    ehr.stop().await;
}

#[tokio::test]
async fn paused_and_stopped_channels_refuse_with_ae_and_stopped_holds_the_queue() {
    use medrelay_engine::run_state::RunState;
    let addr = medrelay_testkit::free_port();
    let mut ch = channel("ctl");
    ch.destinations = vec![mllp_destination("ehr", addr)];
    let h = Harness::start(vec![ch]).await;
    let mut s = h.sender("ctl");
    // Accepted while running; the EHR is down, so it waits in the queue.
    assert_eq!(
        read_ack(&s.send(&orm_o01("CTL1")).await.unwrap()).code,
        AckCode::AA
    );
    let control = h.engine.pipelines()["ctl"].control().clone();

    // Paused: AE naming the state, nothing stored, the sender keeps it.
    h.engine.pipelines()["ctl"]
        .set_run_state(RunState::Paused, "olga")
        .await
        .unwrap();
    assert_eq!(control.get(), RunState::Paused);
    let ack = read_ack(&s.send(&orm_o01("CTL2")).await.unwrap());
    assert_eq!(ack.code, AckCode::AE);
    assert_eq!(ack.acked, "CTL2");
    assert!(ack.raw.contains("paused"), "{}", ack.raw);
    assert!(h.messages(Some("CTL2")).await.is_empty());

    // Stopped: refused the same way, and the queue holds its delivery even
    // once the EHR is back (watched for a second: an absence, not a wait).
    control.set(RunState::Stopped);
    let ack = read_ack(&s.send(&orm_o01("CTL3")).await.unwrap());
    assert_eq!(ack.code, AckCode::AE);
    assert!(ack.raw.contains("stopped"), "{}", ack.raw);
    let ehr = TestEhr::start_on(addr, EhrMode::Accept).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ehr.messages().is_empty(), "a stopped channel delivered");

    // Started: the held message goes out, and new ones are taken again.
    control.set(RunState::Running);
    ehr.wait_for_count(1, WAIT).await;
    assert_eq!(
        read_ack(&s.send(&orm_o01("CTL2")).await.unwrap()).code,
        AckCode::AA
    );
    let got = ehr.wait_for_count(2, WAIT).await;
    assert_eq!(got.len(), 2);
    s.close().await;
    h.stop().await;
}
