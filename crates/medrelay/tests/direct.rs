//! Direct secure messaging over real HTTP: sending edges call `medrelay
//! serve`'s Messaging API; receiving edges and the sender's notification
//! endpoint are small real HTTP servers inside the test. Single and
//! multi-recipient sends, raw and XDM delivery (the zip unpacked and its
//! METADATA.XML parsed), retries until 200, failure after the window, status
//! notifications in order, the status query, read receipts, and every error
//! code of the seed's table.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use common::*;
use medrelay_testkit::{ServeProcess, free_port, http_full, sample_pdf, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One POST an edge received: its Authorization header and JSON body.
type Post = (Option<String>, Value);

/// A receiving edge (or a notification endpoint): records every POST with its
/// Authorization header and answers with the status it is told; `fail_first`
/// answers 500 that many times first.
#[derive(Clone, Default)]
struct Edge {
    posts: Arc<Mutex<Vec<Post>>>,
    status: Arc<AtomicU16>,
    fail_first: Arc<AtomicU32>,
    attempts: Arc<AtomicU32>,
}

impl Edge {
    async fn start(status: u16, fail_first: u32) -> (Edge, String) {
        let edge = Edge::default();
        edge.status.store(status, Ordering::SeqCst);
        edge.fail_first.store(fail_first, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let e = edge.clone();
        // The same recorder serves as a receiving edge's inbox and as an
        // upstream HISP's send_ccda.
        let receive = move |headers: HeaderMap, body: Bytes| {
            let e = e.clone();
            async move { e.receive(&headers, &body) }
        };
        let app = axum::Router::new()
            .route("/inbox", axum::routing::post(receive.clone()))
            .route(
                "/MessagingAPI/dirmsg/send_ccda",
                axum::routing::post(receive),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (edge, format!("http://{addr}/inbox"))
    }

    fn receive(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        let code = self.status.load(Ordering::SeqCst);
        if code == 200 {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let doc = serde_json::from_slice(body).unwrap_or(Value::Null);
            self.posts.lock().unwrap().push((auth, doc));
        }
        StatusCode::from_u16(code).unwrap()
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", B64.encode(format!("{user}:{password}")))
}

fn run(cfg: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `medrelay direct address add --address ADDRESS ARGS…`.
fn address(cfg: &Path, address: &str, args: &[&str]) {
    let mut all = vec!["direct", "address", "add", "--address", address];
    all.extend_from_slice(args);
    run(cfg, &all);
}

/// Registers an edge and returns its Basic credentials header.
fn edge_add(cfg: &Path, name: &str) -> String {
    let out = run(cfg, &["direct", "edge", "add", "--name", name]);
    let secret = last_value(out.as_bytes());
    basic(name, &secret)
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    let (status, h, b) = http_full(addr, method, path, &headers, bytes.as_deref())
        .await
        .unwrap();
    (status, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn start(dir: &Path, direct: &str) -> (ServeProcess, SocketAddr, std::path::PathBuf) {
    let http_addr = free_port();
    let cfg = dir.join("medrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = {:?}\nhttp = \"{http_addr}\"\n\n{direct}\n",
            dir.join("data")
        ),
    )
    .unwrap();
    check_ok(&cfg);
    // The CLI registers edges and addresses in the same store while serve runs.
    let server = ServeProcess::start(BIN, &cfg, http_addr).await;
    (server, http_addr, cfg)
}

/// `POST /MessagingAPI/dirmsg/send_ccda` as an edge authenticated with `auth`.
async fn send_ccda(
    addr: SocketAddr,
    auth: &str,
    body: &Value,
) -> (u16, Vec<(String, String)>, Value) {
    call(
        addr,
        "POST",
        "/MessagingAPI/dirmsg/send_ccda",
        Some(auth),
        Some(body),
    )
    .await
}

fn send_body(id: &str, to: &str, xdm: bool, asm: bool) -> Value {
    json!({
        "fromDirectAddress": "john@clinic-a.example",
        "toDirectAddress": to,
        "messageId": id,
        "emailAttachmentList": [
            {"attachmentClass": "text/xml", "attachmentContent": B64.encode(b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>"), "attachmentTitle": "MR-Lumbar Spine without contrast_1"},
            {"attachmentClass": "application/pdf", "attachmentContent": B64.encode(sample_pdf()), "attachmentTitle": "MR-Lumbar Spine without contrast_report"}
        ],
        "messageBody": "Clinical Report for Patient Ralph Kramden. Please find attached clinical report",
        "messageSubject": "Referral",
        "patientAddressStreet1": "328 Chauncey Street",
        "patientAddressStreet2": "Apt 3B",
        "patientAddressCity": "Brooklyn",
        "patientAddressState": "NY",
        "patientAddressZip": "11233",
        "patientDOB": "19160226",
        "patientGender": "M",
        "patientId": "22943847",
        "assigning_authority": "2.16.840.1.113883.3.9999",
        "patientIdType": "2.16.840.1.113669.2013.2.4.880061800.0",
        "patientLastname": "Kramden",
        "patientFirstname": "Ralph",
        "patientMiddlename": "H",
        "patient_summary": "Name (last, first middle): Kramden, Ralph H",
        "replyToMessageId": "2ea5021a-0c52-470a-8635-7aee90e5be34",
        "xdm": xdm,
        "asmEnabled": asm,
        "loincName": "Referral Note",
        "loincValue": "LOINC",
        "authorPerson": "Doctor",
        "authorInstitution": "Some Hospital^^^^^^^^^2.999.1.2.3.5.8.9.1789.45",
        "xdmFileName": "kramden-referral"
    })
}

async fn status_of(addr: SocketAddr, auth: &str, id: &str) -> Value {
    let (status, _, body) = call(
        addr,
        "GET",
        &format!(
            "/MessagingAPI/dirmsg/status?xdMsgId={id}&fromDirectAddress=john@clinic-a.example"
        ),
        Some(auth),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// One recipient's status from the status answer (an object for one
/// recipient, an array for several).
fn recipient_status(answer: &Value, recipient: &str) -> String {
    let list = match answer {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    list.iter()
        .find(|r| r["recipient"] == recipient)
        .and_then(|r| r["status"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_xdm_delivery_with_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let (edge_b, url_b) = Edge::start(200, 0).await;
    let (edge_c, url_c) = Edge::start(200, 0).await;
    let (notify, notify_url) = Edge::start(200, 0).await;
    let (_server, addr, cfg) = start(
        dir.path(),
        "[direct]\nwindow = \"1h\"\nretry = { initial = \"100ms\", max = \"500ms\" }",
    )
    .await;
    let auth = edge_add(&cfg, "ehr-a");
    address(
        &cfg,
        "john@clinic-a.example",
        &[
            "--edge",
            "ehr-a",
            "--notify",
            &notify_url,
            "--notify-user",
            "ehr-a",
            "--notify-password",
            "n-secret",
        ],
    );
    address(
        &cfg,
        "smith@clinic-b.example",
        &[
            "--endpoint",
            &url_b,
            "--endpoint-user",
            "medrelay",
            "--endpoint-password",
            "b-secret",
        ],
    );
    address(&cfg, "jones@clinic-c.example", &["--endpoint", &url_c]);

    // One recipient, raw attachments, asmEnabled: processed then dispatched.
    let body = send_body(
        "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454",
        "smith@clinic-b.example",
        false,
        true,
    );
    let (status, _, answer) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "SUCCESS");
    assert_eq!(
        answer["messageId"],
        "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454"
    );
    assert_eq!(answer["result"], "Message parse successfully");
    let transaction = answer["transactionId"].as_str().unwrap().to_string();
    assert_eq!(transaction.len(), 36, "{answer}");
    let posts = wait_for("delivery to clinic B", WAIT, || async {
        let p = edge_b.posts();
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(posts.len(), 1);
    let (auth_b, inbound) = &posts[0];
    assert_eq!(
        auth_b.as_deref(),
        Some(basic("medrelay", "b-secret").as_str())
    );
    assert_eq!(inbound["fromDirectAddress"], "john@clinic-a.example");
    assert_eq!(inbound["toDirectAddress"], "smith@clinic-b.example");
    assert_eq!(inbound["patientLastname"], "Kramden");
    let att = inbound["emailAttachmentList"].as_array().unwrap();
    assert_eq!(att.len(), 2);
    assert_eq!(
        B64.decode(att[1]["attachmentContent"].as_str().unwrap())
            .unwrap(),
        sample_pdf()
    );
    let dispatched = wait_for("DISPATCHED", WAIT, || async {
        let s = status_of(addr, &auth, "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454").await;
        (recipient_status(&s, "smith@clinic-b.example") == "DISPATCHED").then_some(s)
    })
    .await;
    assert_eq!(dispatched["sender"], "john@clinic-a.example");
    // "2020-04-10 15:10:39.0", as the seed shows it.
    let send_time = dispatched["sendTime"].as_str().unwrap();
    assert_eq!(&send_time[10..11], " ", "{dispatched}");
    assert_eq!(&send_time[19..20], ".", "{dispatched}");
    let notes = wait_for("two notifications", WAIT, || async {
        let n = notify.posts();
        (n.len() >= 2).then_some(n)
    })
    .await;
    assert_eq!(
        notes[0].0.as_deref(),
        Some(basic("ehr-a", "n-secret").as_str())
    );
    assert_eq!(notes[0].1["Description"], "processed");
    assert_eq!(notes[0].1["Status"], "Success");
    assert_eq!(
        notes[0].1["Id"],
        "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454"
    );
    assert_eq!(notes[1].1["Description"], "dispatched");
    assert_eq!(
        notes[1].1["Disposition"],
        "action/MDN-sent-automatically;dispatched"
    );

    // The same request again: the same answer, nothing sent twice. Another
    // body under the same messageId: refused.
    let (status, _, again) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["transactionId"], transaction.as_str());
    let mut other = body.clone();
    other["messageSubject"] = json!("something else");
    let (status, _, refused) = send_ccda(addr, &auth, &other).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["result"].as_str().unwrap().contains("messageId"),
        "{refused}"
    );

    // Two recipients, XDM: each gets one zip with the documents inside.
    let body = send_body(
        "msg-xdm-1",
        "smith@clinic-b.example, jones@clinic-c.example",
        true,
        false,
    );
    let (status, _, answer) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200, "{answer}");
    for (edge, who) in [
        (&edge_b, "smith@clinic-b.example"),
        (&edge_c, "jones@clinic-c.example"),
    ] {
        let inbound = wait_for("the XDM delivery", WAIT, || async {
            edge.posts()
                .into_iter()
                .map(|(_, doc)| doc)
                .find(|doc| doc["messageId"] == "msg-xdm-1")
        })
        .await;
        assert_eq!(inbound["toDirectAddress"], who);
        let att = inbound["emailAttachmentList"].as_array().unwrap();
        assert_eq!(att.len(), 1, "{inbound}");
        assert_eq!(att[0]["attachmentClass"], "application/zip");
        assert_eq!(att[0]["attachmentFileName"], "kramden-referral-xdm.zip");
        let zip = B64
            .decode(att[0]["attachmentContent"].as_str().unwrap())
            .unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        for n in ["INDEX.HTM", "README.TXT", "IHE_XDM/SUBSET01/METADATA.XML"] {
            assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
        }
        let mut metadata = String::new();
        archive
            .by_name("IHE_XDM/SUBSET01/METADATA.XML")
            .unwrap()
            .read_to_string(&mut metadata)
            .unwrap();
        let xml = roxmltree::Document::parse(&metadata).expect("METADATA.XML is well-formed XML");
        let docs: Vec<String> = names
            .iter()
            .filter(|n| n.starts_with("IHE_XDM/SUBSET01/") && !n.ends_with("METADATA.XML"))
            .cloned()
            .collect();
        assert_eq!(docs.len(), 2, "{names:?}");
        let mut contents = Vec::new();
        for d in &docs {
            let file = d.rsplit('/').next().unwrap();
            assert!(metadata.contains(file), "METADATA.XML does not name {file}");
            let mut bytes = Vec::new();
            archive.by_name(d).unwrap().read_to_end(&mut bytes).unwrap();
            contents.push(bytes);
        }
        assert!(
            contents.contains(&sample_pdf()),
            "the PDF is not byte-identical"
        );
        assert!(contents.contains(&b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>".to_vec()));
        assert!(
            xml.descendants()
                .any(|n| n.tag_name().name() == "ExtrinsicObject"),
            "no DocumentEntry in METADATA.XML"
        );
        assert!(metadata.contains("22943847"), "the patient id is missing");
    }
    let both = wait_for("both DISPATCHED", WAIT, || async {
        let s = status_of(addr, &auth, "msg-xdm-1").await;
        (recipient_status(&s, "smith@clinic-b.example") == "DISPATCHED"
            && recipient_status(&s, "jones@clinic-c.example") == "DISPATCHED")
            .then_some(s)
    })
    .await;
    assert_eq!(both.as_array().unwrap().len(), 2);

    // A read receipt from clinic B: DISPLAYED, told to the sender; DISPLAYED is final.
    let auth_b = edge_add(&cfg, "ehr-b");
    address(
        &cfg,
        "smith@clinic-b.example",
        &[
            "--edge",
            "ehr-b",
            "--endpoint",
            &url_b,
            "--endpoint-user",
            "medrelay",
            "--endpoint-password",
            "b-secret",
        ],
    );
    let receipt = json!({
        "Timestamp": "2026-12-03T10:00:00.000000z", "Id": "msg-xdm-1", "Status": "Success",
        "Description": "displayed", "Disposition": "action/MDN-sent-manually;displayed",
        "fromDirectAddress": "john@clinic-a.example", "toDirectAddress": "smith@clinic-b.example"
    });
    let (status, _, r) = call(
        addr,
        "POST",
        "/MessagingAPI/dirmsg/notification",
        Some(&auth_b),
        Some(&receipt),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let s = status_of(addr, &auth, "msg-xdm-1").await;
    assert_eq!(
        recipient_status(&s, "smith@clinic-b.example"),
        "DISPLAYED",
        "{s}"
    );
    assert_eq!(
        recipient_status(&s, "jones@clinic-c.example"),
        "DISPATCHED",
        "{s}"
    );
    // Clinic A may not give receipts for clinic B's address.
    let (status, _, _) = call(
        addr,
        "POST",
        "/MessagingAPI/dirmsg/notification",
        Some(&auth),
        Some(&receipt),
    )
    .await;
    assert_eq!(status, 403);
    let notes = wait_for("the displayed notification", WAIT, || async {
        let n = notify.posts();
        n.iter()
            .any(|(_, d)| d["Description"] == "displayed")
            .then_some(n)
    })
    .await;
    // In order: processed, dispatched (first message), processed (second), displayed.
    let order: Vec<(String, String)> = notes
        .iter()
        .map(|(_, d)| {
            (
                d["Id"].as_str().unwrap().to_string(),
                d["Description"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pos = |id: &str, what: &str| {
        order
            .iter()
            .position(|(i, d)| i == id && d == what)
            .unwrap()
    };
    assert!(
        pos("urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454", "processed")
            < pos(
                "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454",
                "dispatched"
            )
    );
    assert!(pos("msg-xdm-1", "processed") < pos("msg-xdm-1", "displayed"));
    // asmEnabled false: no "dispatched" notification for the second message.
    assert!(
        !order
            .iter()
            .any(|(i, d)| i == "msg-xdm-1" && d == "dispatched"),
        "{order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_200_and_fails_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (flaky, flaky_url) = Edge::start(200, 3).await;
    let (down, down_url) = Edge::start(503, 0).await;
    let (notify, notify_url) = Edge::start(200, 0).await;
    let (_server, addr, cfg) = start(
        dir.path(),
        "[direct]\nwindow = \"3s\"\nretry = { initial = \"100ms\", max = \"300ms\" }",
    )
    .await;
    let auth = edge_add(&cfg, "ehr-a");
    address(
        &cfg,
        "john@clinic-a.example",
        &["--edge", "ehr-a", "--notify", &notify_url],
    );
    address(&cfg, "flaky@clinic-b.example", &["--endpoint", &flaky_url]);
    address(&cfg, "down@clinic-c.example", &["--endpoint", &down_url]);

    let body = send_body(
        "msg-retry",
        "flaky@clinic-b.example,down@clinic-c.example",
        false,
        true,
    );
    let (status, _, answer) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200, "{answer}");
    let s = wait_for("flaky DISPATCHED and down FAILED", WAIT, || async {
        let s = status_of(addr, &auth, "msg-retry").await;
        (recipient_status(&s, "flaky@clinic-b.example") == "DISPATCHED"
            && recipient_status(&s, "down@clinic-c.example") == "FAILED")
            .then_some(s)
    })
    .await;
    // Three 500s, then one delivery: exactly one document arrived.
    assert_eq!(flaky.posts().len(), 1);
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 4);
    let failed = s
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recipient"] == "down@clinic-c.example")
        .unwrap()
        .clone();
    let reason = failed["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("window") && reason.contains("503"),
        "{reason}"
    );
    assert!(down.attempts.load(Ordering::SeqCst) >= 2);
    // A final status is not overwritten by a late receipt.
    let notes = wait_for("the failure notification", WAIT, || async {
        let n = notify.posts();
        n.iter().any(|(_, d)| d["Status"] == "Error").then_some(n)
    })
    .await;
    let failure = notes.iter().find(|(_, d)| d["Status"] == "Error").unwrap();
    assert_eq!(
        failure.1["Disposition"],
        "action/MDN-sent-automatically;failed"
    );
    assert_eq!(notes[0].1["Description"], "processed");

    // An address nobody serves fails at once with the seed's reason.
    let body = send_body("msg-nowhere", "ghost@nowhere.example", false, false);
    let (status, _, _) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200);
    let s = status_of(addr, &auth, "msg-nowhere").await;
    assert_eq!(s["status"], "FAILED", "{s}");
    assert!(
        s["failureReason"].as_str().unwrap().starts_with("9002"),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_of_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (_edge, url) = Edge::start(200, 0).await;
    let (_server, addr, cfg) = start(dir.path(), "[direct]\nrate_per_second = 1\nburst = 30").await;
    let auth = edge_add(&cfg, "ehr-a");
    let other = edge_add(&cfg, "ehr-x");
    address(&cfg, "john@clinic-a.example", &["--edge", "ehr-a"]);
    address(&cfg, "smith@clinic-b.example", &["--endpoint", &url]);
    let send = |auth: Option<String>, body: Value| async move {
        call(
            addr,
            "POST",
            "/MessagingAPI/dirmsg/send_ccda",
            auth.as_deref(),
            Some(&body),
        )
        .await
    };
    let good = send_body("msg-errors", "smith@clinic-b.example", false, false);

    // 400: each required field, bad addresses, bad Base64.
    for (field, change) in [
        ("fromDirectAddress", json!(null)),
        ("toDirectAddress", json!("")),
        ("messageId", json!(null)),
        ("emailAttachmentList", json!([])),
    ] {
        let mut b = good.clone();
        if change.is_null() {
            b.as_object_mut().unwrap().remove(field);
        } else {
            b[field] = change;
        }
        let (status, _, r) = send(Some(auth.clone()), b).await;
        assert_eq!(status, 400, "{field}: {r}");
        assert!(
            r["result"].as_str().unwrap().contains(field),
            "{field}: {r}"
        );
    }
    let mut b = good.clone();
    b["toDirectAddress"] = json!("not an address");
    let (status, _, r) = send(Some(auth.clone()), b).await;
    assert_eq!(status, 400, "{r}");
    assert!(
        r["result"].as_str().unwrap().contains("toDirectAddress"),
        "{r}"
    );
    let mut b = good.clone();
    b["emailAttachmentList"][1]["attachmentContent"] = json!("***not base64***");
    let (status, _, r) = send(Some(auth.clone()), b).await;
    assert_eq!(status, 400, "{r}");
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .contains("emailAttachmentList[1]"),
        "{r}"
    );
    let (status, _, _) = call(
        addr,
        "POST",
        "/MessagingAPI/dirmsg/send_ccda",
        Some(&auth),
        None,
    )
    .await;
    assert_eq!(status, 400);

    // 401: no credentials, a wrong secret.
    let (status, headers, _) = send(None, good.clone()).await;
    assert_eq!(status, 401);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.starts_with("Basic"))
    );
    let (status, _, _) = send(Some(basic("ehr-a", "wrong")), good.clone()).await;
    assert_eq!(status, 401);

    // 403: sending from an address the edge does not own.
    let (status, _, r) = send(Some(other.clone()), good.clone()).await;
    assert_eq!(status, 403, "{r}");

    // 404: an unknown message; another edge's message.
    let (status, _, r) = send(Some(auth.clone()), good.clone()).await;
    assert_eq!(status, 200, "{r}");
    let (status, _, _) = call(
        addr,
        "GET",
        "/MessagingAPI/dirmsg/status?xdMsgId=nope&fromDirectAddress=john@clinic-a.example",
        Some(&auth),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = call(
        addr,
        "GET",
        "/MessagingAPI/dirmsg/status?xdMsgId=msg-errors&fromDirectAddress=john@clinic-a.example",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = call(
        addr,
        "GET",
        "/MessagingAPI/dirmsg/status?fromDirectAddress=john@clinic-a.example",
        Some(&auth),
        None,
    )
    .await;
    assert_eq!(status, 400);

    // 429: the edge's burst is spent (30 calls so far at most), then Retry-After.
    let mut limited = None;
    for _ in 0..40 {
        let (status, headers, _) = call(addr, "GET", "/MessagingAPI/dirmsg/status?xdMsgId=msg-errors&fromDirectAddress=john@clinic-a.example", Some(&auth), None).await;
        if status == 429 {
            limited = Some(headers);
            break;
        }
    }
    let headers = limited.expect("no 429 within 40 calls at 1/s with a burst of 30");
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
    // Another edge is not limited by it.
    let (status, _, _) = call(
        addr,
        "GET",
        "/MessagingAPI/dirmsg/status?xdMsgId=msg-errors&fromDirectAddress=john@clinic-a.example",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mode_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, cfg) = start(dir.path(), "[direct]\nmaintenance = true").await;
    let auth = edge_add(&cfg, "ehr-a");
    let (status, _, body) = send_ccda(
        addr,
        &auth,
        &send_body("m", "smith@clinic-b.example", false, false),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (status, _, _) = call(
        addr,
        "GET",
        "/MessagingAPI/dirmsg/status?xdMsgId=m&fromDirectAddress=a@b.example",
        None,
        None,
    )
    .await;
    assert_eq!(status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_measurement_goes_out_by_direct() {
    let dir = tempfile::tempdir().unwrap();
    let (practice, practice_url) = Edge::start(200, 0).await;
    let mllp = free_port();
    let (_server, addr, cfg) = start(
        dir.path(),
        &format!(
            "[direct]\nretry = {{ initial = \"100ms\", max = \"300ms\" }}\n\n\
             [[integration]]\nname = \"his\"\npreset = \"hl7-mllp\"\ngroup = \"cardio\"\n\
             inbound = {{ mllp = \"{mllp}\" }}\n\
             outbound = {{ direct = {{ from = \"cardio@medrelay.example\", to = \"dr.lee@practice.example\" }} }}\n"
        ),
    )
    .await;
    address(&cfg, "cardio@medrelay.example", &[]);
    address(
        &cfg,
        "dr.lee@practice.example",
        &["--endpoint", &practice_url],
    );
    let device = device_add_in(&cfg, "tablet", "cardio", "default");

    let mut sender = mllp::Sender::new(mllp::SenderConfig::new(mllp.to_string()));
    let ack = sender
        .send(&medrelay_testkit::full_orm("D1", "ORD-D1", "NW"))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|"));
    sender.close().await;
    let items = worklist(addr, &device).await;
    let appointment = items[0]["id"].as_str().unwrap().to_string();
    let pdf = sample_pdf();
    let (status, posted) = post_json(
        addr,
        "/api/v1/measurements",
        &device,
        &measurement(&appointment, &pdf),
    )
    .await;
    assert_eq!(status, 201, "{posted}");

    let inbound = wait_for("the report at the practice", WAIT, || async {
        practice.posts().into_iter().map(|(_, d)| d).next()
    })
    .await;
    assert_eq!(inbound["fromDirectAddress"], "cardio@medrelay.example");
    assert_eq!(inbound["toDirectAddress"], "dr.lee@practice.example");
    assert_eq!(inbound["patientLastname"], "GARCIA");
    assert_eq!(inbound["patientDOB"], "19751022");
    assert!(
        inbound["messageBody"].as_str().unwrap().contains("72"),
        "{inbound}"
    );
    let att = inbound["emailAttachmentList"].as_array().unwrap();
    assert_eq!(att[0]["attachmentClass"], "application/zip");
    let zip = B64
        .decode(att[0]["attachmentContent"].as_str().unwrap())
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    let pdf_entry = names
        .iter()
        .find(|n| n.ends_with(".pdf"))
        .expect("a PDF in the package")
        .clone();
    let mut bytes = Vec::new();
    archive
        .by_name(&pdf_entry)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(bytes, pdf, "the report is not byte-identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_domains_go_through_the_upstream_hisp() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, inbox_url) = Edge::start(200, 0).await;
    let upstream_base = inbox_url.trim_end_matches("/inbox").to_string();
    let (notify, notify_url) = Edge::start(200, 0).await;
    let (_server, addr, cfg) = start(
        dir.path(),
        &format!(
            "[direct]\nwindow = \"3s\"\nretry = {{ initial = \"100ms\", max = \"300ms\" }}\n\
             upstream = {{ url = \"{upstream_base}/MessagingAPI\", user = \"medrelay\", password = \"up-secret\", edge = \"upstream-hisp\" }}\n"
        ),
    )
    .await;
    let auth = edge_add(&cfg, "ehr-a");
    let upstream_auth = edge_add(&cfg, "upstream-hisp");
    address(
        &cfg,
        "john@clinic-a.example",
        &["--edge", "ehr-a", "--notify", &notify_url],
    );

    // Two remote recipients: one send_ccda upstream for both, then SMTPINIT.
    let body = send_body(
        "msg-up",
        "far@elsewhere.example,away@elsewhere.example",
        false,
        true,
    );
    let (status, _, answer) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200, "{answer}");
    let handed = wait_for("the upstream send", WAIT, || async {
        upstream.posts().into_iter().next()
    })
    .await;
    assert_eq!(
        handed.0.as_deref(),
        Some(basic("medrelay", "up-secret").as_str())
    );
    assert_eq!(handed.1["messageId"], "msg-up");
    assert_eq!(
        handed.1["toDirectAddress"],
        "far@elsewhere.example,away@elsewhere.example"
    );
    assert_eq!(handed.1["emailAttachmentList"].as_array().unwrap().len(), 2);
    wait_for("SMTPINIT", WAIT, || async {
        let s = status_of(addr, &auth, "msg-up").await;
        (recipient_status(&s, "far@elsewhere.example") == "SMTPINIT"
            && recipient_status(&s, "away@elsewhere.example") == "SMTPINIT")
            .then_some(())
    })
    .await;
    assert_eq!(
        upstream.posts().len(),
        1,
        "one upstream request for both recipients"
    );

    // The upstream HISP reports one delivered; the other never answers:
    // FAILED-TO once the window has passed.
    let dsn = json!({
        "Timestamp": "2026-12-03T10:00:00.000000z", "Id": "msg-up", "Status": "Success",
        "Description": "dispatched", "Disposition": "action/MDN-sent-automatically;dispatched",
        "fromDirectAddress": "john@clinic-a.example", "toDirectAddress": "far@elsewhere.example"
    });
    let (status, _, r) = call(
        addr,
        "POST",
        "/MessagingAPI/dirmsg/notification",
        Some(&upstream_auth),
        Some(&dsn),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    // A sending edge cannot speak for remote recipients.
    let (status, _, _) = call(
        addr,
        "POST",
        "/MessagingAPI/dirmsg/notification",
        Some(&auth),
        Some(&dsn),
    )
    .await;
    assert_eq!(status, 403);
    let s = wait_for("FAILED-TO", WAIT, || async {
        let s = status_of(addr, &auth, "msg-up").await;
        (recipient_status(&s, "away@elsewhere.example") == "FAILED-TO").then_some(s)
    })
    .await;
    assert_eq!(
        recipient_status(&s, "far@elsewhere.example"),
        "DISPATCHED",
        "{s}"
    );
    // DISPATCHED is final: a late failure does not overwrite it.
    let mut late = dsn.clone();
    late["Status"] = json!("Error");
    late["Disposition"] = json!("action/MDN-sent-automatically;failed");
    let (status, _, _) = call(
        addr,
        "POST",
        "/MessagingAPI/dirmsg/notification",
        Some(&upstream_auth),
        Some(&late),
    )
    .await;
    assert_eq!(status, 200);
    let s = status_of(addr, &auth, "msg-up").await;
    assert_eq!(
        recipient_status(&s, "far@elsewhere.example"),
        "DISPATCHED",
        "{s}"
    );
    // The sender heard: processed, dispatched (asmEnabled) for far, failed for away.
    let notes = wait_for("three notifications", WAIT, || async {
        let n = notify.posts();
        (n.len() >= 3).then_some(n)
    })
    .await;
    let descriptions: Vec<&str> = notes
        .iter()
        .map(|(_, d)| d["Description"].as_str().unwrap())
        .collect();
    assert_eq!(descriptions[0], "processed", "{descriptions:?}");
    assert_eq!(descriptions[1], "dispatched", "{descriptions:?}");
    assert_eq!(notes[2].1["Status"], "Error", "{descriptions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_registers_edges_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (clinic, clinic_url) = Edge::start(200, 0).await;
    let (_server, addr, cfg) = start(dir.path(), "[direct]\nretry = { initial = \"100ms\" }").await;
    let admin = format!("Bearer {}", admin_token_in(&cfg, "default"));
    let (status, _, edge) = call(
        addr,
        "POST",
        "/api/v1/direct/edges",
        Some(&admin),
        Some(&json!({"name": "ehr-a"})),
    )
    .await;
    assert_eq!(status, 201, "{edge}");
    let auth = basic("ehr-a", edge["secret"].as_str().unwrap());
    let (status, _, _) = call(
        addr,
        "POST",
        "/api/v1/direct/edges",
        Some(&admin),
        Some(&json!({"name": "ehr-a"})),
    )
    .await;
    assert_eq!(status, 409);
    for body in [
        json!({"address": "john@clinic-a.example", "edge": "ehr-a"}),
        json!({"address": "smith@clinic-b.example", "endpoint": {"url": clinic_url, "user": "medrelay", "password": "b-secret"}}),
    ] {
        let (status, _, r) = call(
            addr,
            "POST",
            "/api/v1/direct/addresses",
            Some(&admin),
            Some(&body),
        )
        .await;
        assert_eq!(status, 201, "{r}");
    }
    let (status, _, bad) = call(
        addr,
        "POST",
        "/api/v1/direct/addresses",
        Some(&admin),
        Some(&json!({"address": "nobody"})),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    let (status, _, list) = call(addr, "GET", "/api/v1/direct/addresses", Some(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["addresses"].as_array().unwrap().len(), 2, "{list}");
    assert!(
        !list.to_string().contains("b-secret"),
        "passwords are not shown: {list}"
    );
    // Without an admin token: 401.
    let (status, _, _) = call(addr, "GET", "/api/v1/direct/addresses", None, None).await;
    assert_eq!(status, 401);

    let body = send_body("msg-admin", "smith@clinic-b.example", false, false);
    let (status, _, r) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200, "{r}");
    wait_for("the delivery", WAIT, || async {
        (!clinic.posts().is_empty()).then_some(())
    })
    .await;

    // Removed: a message to it fails at once.
    let (status, _, _) = call(
        addr,
        "DELETE",
        "/api/v1/direct/addresses/smith@clinic-b.example",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let body = send_body("msg-admin-2", "smith@clinic-b.example", false, false);
    let (status, _, _) = send_ccda(addr, &auth, &body).await;
    assert_eq!(status, 200);
    let s = status_of(addr, &auth, "msg-admin-2").await;
    assert_eq!(s["status"], "FAILED", "{s}");
}
