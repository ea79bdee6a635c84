//! The file integrations end to end: `medrelay serve` watching a real folder,
//! the practice system's GDT (Doctolib, Tomedo) files in, 6310 + PDF files out.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use gdt::RecordType;
use medrelay_testkit::{ServeProcess, free_port, sample_pdf, wait_for};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

struct Server {
    process: Option<ServeProcess>,
    http: SocketAddr,
    cfg: PathBuf,
    inbox: PathBuf,
    outbox: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A GDT integration with folders under a temporary directory (not started).
    fn configure(preset: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let inbox = dir.path().join("in");
        let outbox = dir.path().join("out");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&outbox).unwrap();
        let cfg = dir.path().join("medrelay.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"[server]
data_dir = {data:?}
http = "{http}"

[[integration]]
name = "praxis"
preset = "{preset}"
group = "ecg"
inbound = {{ folder = {inbox:?}, scan = "100ms", settle = "300ms" }}
outbound = {{ folder = {outbox:?}, pdf_folder = 'C:\GDT\out', retry = {{ initial = "100ms", max = "300ms" }} }}
"#,
                data = dir.path().join("data"),
            ),
        )
        .unwrap();
        check_ok(&cfg);
        Server {
            process: None,
            http,
            cfg,
            inbox,
            outbox,
            _dir: dir,
        }
    }

    async fn start(&mut self) {
        self.process = Some(ServeProcess::start(BIN, &self.cfg, self.http).await);
    }

    fn kill(&mut self) {
        // Dropping the process kills it (SIGKILL): no clean shutdown.
        self.process = None;
    }

    fn archived(&self) -> Vec<String> {
        names(&self.inbox.join("archive"))
    }

    fn errors(&self) -> Vec<String> {
        names(&self.inbox.join("error"))
    }
}

async fn gdt_order_to_result(preset: &str) {
    let mut server = Server::configure(preset);
    let token = device_add_in(&server.cfg, "tablet-1", "ecg", "default");
    server.start().await;

    drop_file(&server.inbox, "PRAXMEDR.gdt", &request("12345", "ORD-4711"));
    let appt = wait_for("the appointment in the worklist", WAIT, || async {
        worklist(server.http, &token).await.into_iter().next()
    })
    .await;
    let p = &appt["patient"];
    assert_eq!(p["family"], "Müller", "{appt}");
    assert_eq!(p["given"][0], "Jürgen");
    assert_eq!(p["birth_date"], "1965-06-24");
    assert_eq!(p["sex"], "male");
    assert_eq!(p["email"], "juergen@example.org");
    assert_eq!(p["identifiers"][0]["value"], "12345");
    assert_eq!(p["identifiers"][1]["value"], "A123456789");
    assert_eq!(p["address"]["street"], "Hauptstraße 5");
    assert_eq!(p["address"]["other"], "50667 Köln");
    assert_eq!(p["address"]["postal_code"], "50667");
    assert_eq!(p["address"]["city"], "Köln");
    assert_eq!(appt["placer_order"], "ORD-4711");
    assert_eq!(appt["procedure"]["code"], "RUHE-EKG");
    assert_eq!(appt["integration"], "praxis");
    wait_for("the request file archived", WAIT, || async {
        (server.archived() == ["PRAXMEDR.gdt"]).then_some(())
    })
    .await;
    assert!(names(&server.inbox).is_empty());

    // The appointment keeps the GDT metadata the result must echo.
    let admin = admin_token_in(&server.cfg, "default");
    let id = appt["id"].as_str().unwrap().to_string();
    let (status, full) = get_json(server.http, &format!("/api/v1/appointments/{id}"), &admin).await;
    assert_eq!(status, 200, "{full}");
    let extra = &full["order"]["extra"];
    for (k, v) in [
        ("8315", "MEDR"),
        ("8316", "PRAXIS"),
        ("9218", "02.10"),
        ("9206", "2"),
        ("8402", "EKG01"),
        ("8609", "K"),
        ("2998", "RUHE-EKG"),
        ("2999", "ORD-4711"),
        ("3626", "900001"),
        ("3629", "900002"),
    ] {
        assert_eq!(extra[k], v, "{k} in {full}");
    }

    let pdf = sample_pdf();
    let (status, body) = post_json(
        server.http,
        "/api/v1/measurements",
        &token,
        &measurement(&id, &pdf),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mid = body["id"].as_str().unwrap().to_string();

    // The result and its report appear in the outbox, the GDT named by the
    // convention (receiver id, sender id).
    let files = wait_for("the result files", WAIT, || async {
        let n = names(&server.outbox);
        (n.len() == 2).then_some(n)
    })
    .await;
    assert!(files.contains(&"PRAXISMEDR.gdt".to_string()), "{files:?}");
    let pdf_name = files.iter().find(|n| n.ends_with(".pdf")).unwrap();
    assert_eq!(std::fs::read(server.outbox.join(pdf_name)).unwrap(), pdf);
    let result = gdt::parse(&std::fs::read(server.outbox.join("PRAXISMEDR.gdt")).unwrap()).unwrap();
    assert_eq!(result.record_type(), Some(RecordType::ExaminationData));
    assert_eq!(result.receiver_id(), Some("PRAXIS"));
    assert_eq!(result.sender_id(), Some("MEDR"));
    assert_eq!(result.get(f(3000)), Some("12345"));
    assert_eq!(result.get(f(3101)), Some("Müller"));
    assert_eq!(result.get(f(8402)), Some("EKG01"));
    assert_eq!(result.get(f(6200)), Some("15032025"));
    assert_eq!(result.get(f(6201)), Some("124000"));
    assert_eq!(result.get(f(6303)), Some("PDF"));
    assert_eq!(
        result.get(f(6305)).unwrap(),
        format!("C:\\GDT\\out\\{pdf_name}")
    );
    let tests: Vec<(&str, &str)> = result
        .fields()
        .iter()
        .filter(|fl| fl.id == f(8410) || fl.id == f(8420))
        .map(|fl| {
            (
                if fl.id == f(8410) { "id" } else { "value" },
                fl.value.as_str(),
            )
        })
        .collect();
    assert_eq!(
        tests,
        [
            ("id", "8867-4"),
            ("value", "72"),
            ("id", "RHYTHM"),
            ("value", "sinus rhythm")
        ]
    );

    let (_, m) = get_json(server.http, &format!("/api/v1/measurements/{mid}"), &token).await;
    assert_eq!(m["deliveries"][0]["state"], "sent", "{m}");

    // A second result waits until the practice system has collected the first
    // (the file name is taken), then arrives.
    let (status, _) = post_json(
        server.http,
        "/api/v1/measurements",
        &token,
        &measurement(&id, &pdf),
    )
    .await;
    assert_eq!(status, 201);
    std::fs::remove_file(server.outbox.join("PRAXISMEDR.gdt")).unwrap();
    wait_for("the second result", WAIT, || async {
        server.outbox.join("PRAXISMEDR.gdt").exists().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctolib_order_to_result() {
    gdt_order_to_result("doctolib").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tomedo_order_to_result() {
    gdt_order_to_result("tomedo").await;
}

/// Bad files go to the error folder with the reason beside them; the raw bytes
/// are kept in the store; good files next to them are not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_gdt_files_land_in_the_error_folder() {
    let mut server = Server::configure("doctolib");
    let token = device_add_in(&server.cfg, "tablet-1", "ecg", "default");
    server.start().await;

    let good = request("1", "ORD-1");
    // A line whose stated length is one too small.
    let bad_line = String::from_utf8_lossy(&request("2", "ORD-2"))
        .replacen("0153101", "0143101", 1)
        .into_bytes();
    let bad_line = {
        // The CP437 bytes must survive: rebuild from the raw bytes instead.
        let mut b = request("2", "ORD-2");
        let pos = b.windows(7).position(|w| w == b"0153101").unwrap();
        b[pos..pos + 3].copy_from_slice(b"014");
        assert_ne!(b, bad_line);
        b
    };
    // 8100 that does not match the record.
    let mut bad_length = request("3", "ORD-3");
    let pos = bad_length.windows(4).position(|w| w == b"8100").unwrap();
    bad_length[pos + 4] = b'9';
    // Cut in the middle of a line.
    let full = request("4", "ORD-4");
    let truncated = full[..full.len() - 7].to_vec();
    // Declared 7-bit, but with 8-bit bytes.
    let mut wrong_charset = request("5", "ORD-5");
    let pos = wrong_charset
        .windows(5)
        .position(|w| w == b"92062")
        .unwrap();
    wrong_charset[pos + 4] = b'1';

    for (name, bytes) in [
        ("bad_line.gdt", &bad_line),
        ("bad_length.gdt", &bad_length),
        ("truncated.gdt", &truncated),
        ("wrong_charset.gdt", &wrong_charset),
        ("good.gdt", &good),
    ] {
        drop_file(&server.inbox, name, bytes);
    }
    // The folder is polled in no particular order: wait for the good file too.
    wait_for(
        "four rejected files and their reasons, one archived",
        WAIT,
        || async { (server.errors().len() == 8 && !server.archived().is_empty()).then_some(()) },
    )
    .await;
    assert_eq!(server.archived(), ["good.gdt"]);
    for (name, expect) in [
        ("bad_line.gdt", "stated length"),
        ("bad_length.gdt", "8100"),
        ("truncated.gdt", "line"),
        ("wrong_charset.gdt", "7-bit"),
    ] {
        let reason =
            std::fs::read_to_string(server.inbox.join("error").join(format!("{name}.error.txt")))
                .unwrap();
        assert!(reason.contains(expect), "{name}: {reason}");
        // The file itself is kept, byte for byte.
        assert!(server.inbox.join("error").join(name).exists());
    }
    let list = worklist(server.http, &token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["placer_order"], "ORD-1");

    // The store kept every rejected file with its error.
    let admin = admin_token_in(&server.cfg, "default");
    let (status, body) = get_json(
        server.http,
        "/api/v1/messages?channel=praxis&status=rejected",
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4, "{body}");
    assert!(
        msgs.iter()
            .all(|m| m["error"].as_str().is_some_and(|e| !e.is_empty())),
        "{body}"
    );
}

/// A file still being written (no rename, growing) is not taken until it has
/// stopped changing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_written_files_are_not_picked_up_early() {
    let mut server = Server::configure("tomedo");
    let token = device_add_in(&server.cfg, "tablet-1", "ecg", "default");
    server.start().await;

    // The writer appends a few bytes at a time, more often than the settle time,
    // for several times the settle time.
    let full = request("7", "ORD-7");
    let path = server.inbox.join("slow.gdt");
    std::fs::write(&path, &full[..10]).unwrap();
    let chunks: Vec<&[u8]> = full[10..].chunks(full.len() / 12 + 1).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if i == 2 {
            // Proof that the folder is scanned while the file grows: a complete
            // file dropped meanwhile is processed.
            drop_file(&server.inbox, "marker.gdt", &request("8", "ORD-8"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(chunk).unwrap();
        drop(file);
        assert!(path.exists(), "the file was taken while it grew");
        assert!(server.errors().is_empty(), "{:?}", server.errors());
    }
    assert!(server.archived().contains(&"marker.gdt".to_string()));
    wait_for("the completed file processed", WAIT, || async {
        server
            .archived()
            .contains(&"slow.gdt".to_string())
            .then_some(())
    })
    .await;
    assert!(server.errors().is_empty(), "{:?}", server.errors());
    let orders: Vec<Value> = worklist(server.http, &token).await;
    assert_eq!(orders.len(), 2);
}

/// kill -9 in the middle of a batch: after the restart every file is processed
/// exactly once: none lost, none applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_batch_loses_and_duplicates_nothing() {
    const FILES: usize = 60;
    let mut server = Server::configure("doctolib");
    let token = device_add_in(&server.cfg, "tablet-1", "ecg", "default");
    for i in 0..FILES {
        drop_file(
            &server.inbox,
            &format!("req{i:03}.gdt"),
            &request(&format!("P{i}"), &format!("ORD-{i}")),
        );
    }
    server.start().await;
    wait_for("part of the batch processed", WAIT, || async {
        (!server.archived().is_empty()).then_some(())
    })
    .await;
    server.kill();
    let done_before = server.archived().len();
    server.start().await;
    wait_for("the whole batch processed", WAIT, || async {
        (server.archived().len() == FILES).then_some(())
    })
    .await;
    assert!(server.errors().is_empty(), "{:?}", server.errors());
    let admin = admin_token_in(&server.cfg, "default");
    let (_, body) = get_json(server.http, "/api/v1/appointments?limit=500", &admin).await;
    let appts = body["appointments"].as_array().unwrap();
    assert_eq!(appts.len(), FILES, "{done_before} before the kill");
    let list = worklist(server.http, &token).await;
    assert_eq!(list.len(), FILES);
    // One stored message per file: a file read again was recognised.
    let (_, body) = get_json(
        server.http,
        "/api/v1/messages?channel=praxis&limit=500",
        &admin,
    )
    .await;
    assert_eq!(body["messages"].as_array().unwrap().len(), FILES, "{body}");
}

/// One request as the test endpoint saw it: the status it answered, headers, body.
type Seen = (u16, axum::http::HeaderMap, Vec<u8>);

/// A WEDA endpoint: records every request; answers with the status it is told.
struct TestWeda {
    addr: SocketAddr,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    received: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl TestWeda {
    async fn start(status: u16) -> TestWeda {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(status));
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, r) = (state.clone(), received.clone());
        let app = axum::Router::new().route(
            "/api/results",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (s, r) = (s.clone(), r.clone());
                async move {
                    let code = s.load(std::sync::atomic::Ordering::SeqCst);
                    r.lock().unwrap().push((code, headers, body.to_vec()));
                    (
                        StatusCode::from_u16(code).unwrap(),
                        format!("{{\"status\": {code}, \"detail\": \"test answer\"}}"),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestWeda {
            addr,
            status: state,
            received,
        }
    }

    fn set(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    fn accepted(&self) -> Vec<(axum::http::HeaderMap, Vec<u8>)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(code, _, _)| *code == 200)
            .map(|(_, h, b)| (h.clone(), b.clone()))
            .collect()
    }

    fn attempts(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// WEDA: an HL7 order file in, the ORU POSTed over HTTP with the API token;
/// the endpoint down (503) then up → delivered once; 400 → failed with the
/// answer kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weda_order_file_to_http_result() {
    let weda = TestWeda::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    let cfg = dir.path().join("medrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
data_dir = {data:?}
http = "{http}"

[[integration]]
name = "weda"
preset = "weda"
group = "cardiology"
inbound = {{ folder = {inbox:?}, scan = "100ms", settle = "200ms" }}
outbound = {{ url = "http://{weda}/api/results", auth = {{ api_key = "weda-secret-token", header = "X-Api-Token" }}, retry = {{ initial = "100ms", max = "300ms" }} }}
"#,
            data = dir.path().join("data"),
            weda = weda.addr,
        ),
    )
    .unwrap();
    check_ok(&cfg);
    let token = device_add_in(&cfg, "tablet-1", "cardiology", "default");
    let _process = ServeProcess::start(BIN, &cfg, http).await;

    // WEDA writes its files with CR LF line ends.
    let orm = String::from_utf8(medrelay_testkit::full_orm("W1", "ECG-000123", "NW"))
        .unwrap()
        .replace('\r', "\r\n");
    drop_file(&inbox, "order-1.hl7", orm.as_bytes());
    let appt = wait_for("the WEDA appointment", WAIT, || async {
        worklist(http, &token).await.into_iter().next()
    })
    .await;
    let order = &appt["order"];
    assert_eq!(appt["placer_order"], "ECG-000123", "{appt}");
    assert_eq!(order["task_type"], "ECG");
    assert_eq!(order["activity_id"], "000123");
    assert_eq!(order["request_date"], "2025-03-15T12:00:00");
    assert!(
        order["received_at"].as_str().unwrap().ends_with('Z'),
        "{order}"
    );
    assert_eq!(appt["visit"]["location"], "CARDIO");
    assert_eq!(appt["visit"]["class"], "O");
    assert_eq!(appt["patient"]["sex"], "male");
    assert_eq!(appt["patient"]["birth_date"], "1975-10-22");
    assert_eq!(appt["patient"]["email"], "pedro@example.org");
    assert_eq!(order["ordering_provider"]["family"], "LOPEZ");
    assert_eq!(order["entered_by"]["family"], "CLERK");
    assert_eq!(order["verified_by"]["family"], "NURSE");
    assert_eq!(order["callback_phone"], "+34911112222");
    assert_eq!(order["effective_at"], "2025-03-15T12:05:00");
    wait_for("the order file archived", WAIT, || async {
        (names(&inbox.join("archive")) == ["order-1.hl7"]).then_some(())
    })
    .await;

    // The endpoint is down: the result queues and is retried.
    let pdf = sample_pdf();
    let id = appt["id"].as_str().unwrap();
    let (status, body) =
        post_json(http, "/api/v1/measurements", &token, &measurement(id, &pdf)).await;
    assert_eq!(status, 201, "{body}");
    let mid = body["id"].as_str().unwrap().to_string();
    wait_for("two refused attempts", WAIT, || async {
        (weda.attempts() >= 2).then_some(())
    })
    .await;
    let (_, m) = get_json(http, &format!("/api/v1/measurements/{mid}"), &token).await;
    assert_eq!(m["deliveries"][0]["state"], "retrying", "{m}");
    assert!(
        m["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{m}"
    );

    weda.set(200);
    wait_for("the result delivered", WAIT, || async {
        let (_, m) = get_json(http, &format!("/api/v1/measurements/{mid}"), &token).await;
        (m["deliveries"][0]["state"] == "sent").then_some(())
    })
    .await;
    let accepted = weda.accepted();
    assert_eq!(accepted.len(), 1, "delivered once");
    let (headers, body) = &accepted[0];
    assert_eq!(headers["x-api-token"], "weda-secret-token");
    assert_eq!(headers["content-type"], "application/hl7-v2");
    let oru = hl7v2::Message::parse(body).unwrap();
    assert_eq!(oru.header().message_type_string(), "ORU^R01");
    assert_eq!(
        oru.get("ORC-2")
            .map(|v| oru.text(&v).into_owned())
            .as_deref(),
        Some("ECG-000123")
    );
    assert_eq!(medrelay_worklist::parse_oru_pdf(&oru).unwrap(), pdf);

    // A 4xx is an answer, not an outage: failed for good, the answer kept.
    weda.set(400);
    let (status, body) =
        post_json(http, "/api/v1/measurements", &token, &measurement(id, &pdf)).await;
    assert_eq!(status, 201, "{body}");
    let mid = body["id"].as_str().unwrap().to_string();
    let m = wait_for("the rejected result failed", WAIT, || async {
        let (_, m) = get_json(http, &format!("/api/v1/measurements/{mid}"), &token).await;
        (m["deliveries"][0]["state"] == "failed").then_some(m)
    })
    .await;
    let d = &m["deliveries"][0];
    assert!(d["last_error"].as_str().unwrap().contains("400"), "{m}");
    assert!(
        d["response"].as_str().unwrap().contains("test answer"),
        "{m}"
    );
    assert_eq!(d["attempts"], 1, "{m}");
}
