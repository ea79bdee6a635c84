//! The HL7 EHR integrations end to end, as a clinic runs them: `medrelay serve`
//! with an `[[integration]]`, a real MLLP "EHR" on the other side, a device
//! talking HTTP. Orders in → worklist → measurement → ORU^R01 out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::*;
use hl7v2::Message;
use medrelay_testkit::{
    EhrMode, ServeProcess, TestEhr, free_port, full_orm, http, sample_pdf, segment, wait_for,
};
use mllp::{Sender, SenderConfig};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

struct Server {
    // Kept for its lifetime: the server process is killed when this is dropped.
    _process: ServeProcess,
    http: SocketAddr,
    mllp: SocketAddr,
    cfg: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Writes the configuration, registers two devices, starts `serve`.
    async fn start(preset: &str, ehr: SocketAddr) -> (Server, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let http_addr = free_port();
        let mllp = free_port();
        let cfg = dir.path().join("medrelay.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"[server]
data_dir = {data:?}
http = "{http_addr}"
max_request_bytes = 262144

[[integration]]
name = "ehr"
preset = "{preset}"
group = "cardiology"
inbound = {{ mllp = "{mllp}", allow = ["127.0.0.1/32"] }}
outbound = {{ mllp = "{ehr}", ack_timeout = "2s", connect_timeout = "1s", retry = {{ initial = "100ms", max = "500ms" }} }}
"#,
                data = dir.path().join("data"),
            ),
        )
        .unwrap();
        check_ok(&cfg);
        let token_a = device_add(&cfg, "tablet-1", "cardiology");
        let token_b = device_add(&cfg, "tablet-2", "pulmonology");
        let process = ServeProcess::start(BIN, &cfg, http_addr).await;
        let server = Server {
            _process: process,
            http: http_addr,
            mllp,
            cfg,
            _dir: dir,
        };
        (server, token_a, token_b)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        get_json(self.http, path, token).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        post_json(self.http, path, token, body).await
    }

    async fn send(&self, msg: &[u8]) -> String {
        let mut s = Sender::new(SenderConfig::new(self.mllp.to_string()));
        let ack = s.send(msg).await.unwrap();
        s.close().await;
        String::from_utf8_lossy(&ack).into_owned()
    }

    async fn worklist(&self, token: &str) -> Vec<Value> {
        worklist(self.http, token).await
    }

    fn admin_token(&self) -> String {
        self.admin_token_in("default")
    }

    fn admin_token_in(&self, org: &str) -> String {
        admin_token_in(&self.cfg, org)
    }
}

fn device_add(cfg: &Path, name: &str, group: &str) -> String {
    device_add_in(cfg, name, group, "default")
}

fn field(msg: &Message, path: &str) -> String {
    msg.get_decoded(path)
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

/// The whole flow for one preset: order in, worklist, measurement, ORU out.
async fn order_to_result(preset: &str) {
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let (server, token, other_token) = Server::start(preset, ehr.addr).await;

    let ack = server
        .send(&full_orm("ORD1-MSG", "ORD-2025-001", "NW"))
        .await;
    assert!(ack.contains("MSA|AA|ORD1-MSG"), "{ack}");

    let items = server.worklist(&token).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let a = &items[0];
    assert_eq!(a["status"], "scheduled");
    assert_eq!(a["group"], "cardiology");
    assert_eq!(a["integration"], "ehr");
    assert_eq!(a["placer_order"], "ORD-2025-001");
    assert_eq!(a["filler_order"], "FIL-ORD-2025-001");
    assert_eq!(a["visit_number"], "VN-ORD-2025-001");
    assert_eq!(a["procedure"]["code"], "ECG");
    assert_eq!(a["procedure"]["display"], "12-lead ECG");
    assert_eq!(a["scheduled_at"], "2025-03-15T12:30:00");
    let p = &a["patient"];
    assert_eq!(p["family"], "GARCIA");
    assert_eq!(p["given"], json!(["PEDRO", "MARIA"]));
    assert_eq!(p["suffix"], "JR");
    assert_eq!(p["prefix"], "DR");
    assert_eq!(p["birth_date"], "1975-10-22");
    assert_eq!(p["sex"], "male");
    assert_eq!(p["race_code"], "white");
    assert_eq!(p["language"], "spa");
    assert_eq!(p["phone"], "+34911234567");
    assert_eq!(p["email"], "pedro@example.org");
    assert_eq!(p["address"]["city"], "MADRID");
    assert_eq!(p["address"]["postal_code"], "28001");
    assert_eq!(p["address"]["country"], "ES");
    assert_eq!(
        p["identifiers"][0],
        json!({"value": "1234567890", "system": "HIS", "type": "MR"})
    );
    assert_eq!(p["identifiers"][1]["value"], "99887766");
    let o = &a["order"];
    assert_eq!(o["request_date"], "2025-03-15T12:00:00");
    assert_eq!(o["control"], "NW");
    assert_eq!(o["group_number"], "GRP-ORD-2025-001");
    assert_eq!(o["status"], "SC");
    assert_eq!(o["response_flag"], "Y");
    assert_eq!(o["transaction_at"], "2025-03-15T12:00:00");
    assert_eq!(o["ordering_provider"]["family"], "LOPEZ");
    assert_eq!(o["entered_by"]["family"], "CLERK");
    assert_eq!(o["verified_by"]["family"], "NURSE");
    assert_eq!(o["callback_phone"], "+34911112222");
    assert_eq!(o["effective_at"], "2025-03-15T12:05:00");
    assert_eq!(o["priority"], "R");
    assert_eq!(o["requested_at"], "2025-03-15T12:00:00");
    assert_eq!(o["observation_at"], "2025-03-15T12:10:00");
    assert_eq!(o["obr_ordering_provider"]["id"], "12345");
    assert_eq!(o["diagnostic_section"], "EC");
    assert!(o["timing_block"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        o["technician"]
            .as_str()
            .is_some_and(|t| t.contains("TECH1"))
    );
    assert_eq!(o["procedure_code"]["code"], "93000");
    let v = &a["visit"];
    assert_eq!(v["class"], "O");
    assert!(
        v["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("CARDIO"))
    );
    assert_eq!(v["admission_type"], "R");
    assert_eq!(v["attending"]["family"], "LOPEZ");
    assert_eq!(v["service"], "CAR");
    assert_eq!(
        v["visit_number"],
        json!({"value": "VN-ORD-2025-001", "system": "HIS", "type": "VN"})
    );
    assert_eq!(v["admit_at"], "2025-03-15T11:45:00");
    assert_eq!(v["discharge_at"], "2025-03-15T13:00:00");

    // Another group's device does not see it; bad tokens are refused.
    assert!(server.worklist(&other_token).await.is_empty());
    assert_eq!(
        http(server.http, "GET", "/api/v1/worklist", &[], None)
            .await
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        server
            .get("/api/v1/worklist", "mrd_not-a-real-token")
            .await
            .0,
        401
    );

    // The device posts its measurement; the EHR gets the ORU^R01.
    let pdf = sample_pdf();
    let id = a["id"].as_str().unwrap().to_string();
    let (status, body) = server
        .post("/api/v1/measurements", &token, &measurement(&id, &pdf))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "queued");
    let mid = body["id"].as_str().unwrap().to_string();

    let got = ehr.wait_for_count(1, WAIT).await;
    let oru = Message::parse(&got[0]).unwrap();
    assert_eq!(oru.header().message_type_string(), "ORU^R01");
    assert_eq!(field(&oru, "PID-3.1"), "1234567890");
    assert_eq!(field(&oru, "PID-5.1"), "GARCIA");
    assert_eq!(field(&oru, "PV1-19.1"), "VN-ORD-2025-001");
    assert_eq!(field(&oru, "ORC-1"), "RE");
    assert_eq!(field(&oru, "ORC-2"), "ORD-2025-001");
    assert_eq!(field(&oru, "ORC-3"), "FIL-ORD-2025-001");
    assert_eq!(field(&oru, "OBR-2"), "ORD-2025-001");
    assert_eq!(field(&oru, "OBR-4.1"), "ECG");
    assert_eq!(field(&oru, "OBR-25"), "F");
    assert_eq!(field(&oru, "OBX(1)-2"), "NM");
    assert_eq!(field(&oru, "OBX(1)-3.1"), "8867-4");
    assert_eq!(field(&oru, "OBX(1)-5"), "72");
    assert_eq!(field(&oru, "OBX(1)-6"), "/min");
    assert_eq!(field(&oru, "OBX(2)-2"), "ST");
    assert_eq!(
        medrelay_worklist::oru::parse_oru_pdf(&oru).as_deref(),
        Some(pdf.as_slice()),
        "the ED OBX decodes to the same PDF bytes"
    );

    let (status, m) = wait_for("delivery state sent", WAIT, || async {
        let (status, m) = server
            .get(&format!("/api/v1/measurements/{mid}"), &token)
            .await;
        (m["deliveries"][0]["state"] == "sent").then_some((status, m))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(m["status"], "sent");
    assert!(
        m["deliveries"][0]["response"]
            .as_str()
            .is_some_and(|r| r.contains("MSA|AA|"))
    );
    ehr.stop().await;
}

#[tokio::test]
async fn birpis_order_to_result() {
    order_to_result("birpis").await;
}

#[tokio::test]
async fn hipokrat_order_to_result() {
    order_to_result("hipokrat").await;
}

#[tokio::test]
async fn iris_order_to_result() {
    order_to_result("iris").await;
}

#[tokio::test]
async fn isoz_order_to_result() {
    order_to_result("isoz").await;
}

#[tokio::test]
async fn nextgen_order_to_result() {
    order_to_result("nextgen").await;
}

#[tokio::test]
async fn hl7_mllp_order_to_result() {
    order_to_result("hl7-mllp").await;
}

/// Cancels, patient updates, scheduling messages and the admin operations.
#[tokio::test]
async fn order_lifecycle_and_admin_operations() {
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let (server, token, _) = Server::start("nextgen", ehr.addr).await;
    let admin = server.admin_token();

    assert!(
        server
            .send(&full_orm("M1", "ORD-A", "NW"))
            .await
            .contains("MSA|AA|M1")
    );
    assert!(
        server
            .send(&full_orm("M2", "ORD-B", "NW"))
            .await
            .contains("MSA|AA|M2")
    );
    assert_eq!(server.worklist(&token).await.len(), 2);
    let (status, page) = server.get("/api/v1/worklist?limit=1", &token).await;
    assert_eq!(status, 200);
    assert_eq!(page["appointments"].as_array().unwrap().len(), 1);
    assert_eq!(page["truncated"], true);
    assert_eq!(server.get("/api/v1/worklist?limit=x", &token).await.0, 400);

    // ORC-1 CA cancels; a cancel of an unknown order is AE with a reason.
    let ack = server.send(&full_orm("M3", "ORD-A", "CA")).await;
    assert!(ack.contains("MSA|AA|M3"), "{ack}");
    let items = server.worklist(&token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["placer_order"], "ORD-B");
    let ack = server.send(&full_orm("M4", "ORD-NOPE", "CA")).await;
    assert!(ack.contains("MSA|AE|M4"), "{ack}");
    assert!(ack.contains("unknown order"), "{ack}");

    // ADT^A08 updates the patient everywhere.
    let adt = format!(
        "MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIO|20250316090000||ADT^A08^ADT_A01|M5|P|2.5\r{}\r{}\r{}\r",
        segment("EVN", &[(1, "A08"), (2, "20250316090000")]),
        segment(
            "PID",
            &[
                (1, "1"),
                (3, "1234567890^^^HIS^MR"),
                (5, "GARCIA-LOPEZ^PEDRO"),
                (7, "19751022"),
                (8, "M")
            ]
        ),
        segment("PV1", &[(1, "1"), (2, "O")]),
    );
    assert!(server.send(adt.as_bytes()).await.contains("MSA|AA|M5"));
    let items = server.worklist(&token).await;
    assert_eq!(items[0]["patient"]["family"], "GARCIA-LOPEZ");
    assert_eq!(
        items[0]["patient"]["address"]["city"], "MADRID",
        "fields the ADT did not carry are kept"
    );

    // SIU^S12 creates, S15 cancels.
    let siu = |event: &str, id: &str| {
        format!(
            "MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIO|20250316100000||SIU^{event}^SIU_S12|{id}|P|2.5\r{}\r{}\r{}\r{}\r",
            segment(
                "SCH",
                &[
                    (1, "APT-9"),
                    (2, "FAPT-9"),
                    (6, "ROUTINE"),
                    (7, "ECG^12-lead ECG^L"),
                    (11, "^^30^20250320083000^20250320090000"),
                    (25, "Booked")
                ]
            ),
            segment(
                "PID",
                &[
                    (1, "1"),
                    (3, "555^^^HIS^MR"),
                    (5, "DOE^JANE"),
                    (7, "19800101"),
                    (8, "F")
                ]
            ),
            segment("RGS", &[(1, "1")]),
            segment(
                "AIS",
                &[(1, "1"), (3, "ECG^12-lead ECG^L"), (4, "20250320083000")]
            ),
        )
    };
    assert!(
        server
            .send(siu("S12", "M6").as_bytes())
            .await
            .contains("MSA|AA|M6")
    );
    let items = server.worklist(&token).await;
    let siu_item = items
        .iter()
        .find(|a| a["placer_order"] == "APT-9")
        .expect("SIU appointment");
    assert_eq!(siu_item["scheduled_at"], "2025-03-20T08:30:00");
    assert_eq!(siu_item["patient"]["family"], "DOE");
    assert!(
        server
            .send(siu("S15", "M7").as_bytes())
            .await
            .contains("MSA|AA|M7")
    );
    assert!(
        server
            .worklist(&token)
            .await
            .iter()
            .all(|a| a["placer_order"] != "APT-9")
    );

    // Admin: list, delete with the API; the device's worklist follows.
    let (status, body) = server
        .get("/api/v1/appointments?status=scheduled", &admin)
        .await;
    assert_eq!(status, 200, "{body}");
    let open = body["appointments"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    let id = open[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        server.get("/api/v1/appointments", &token).await.0,
        403,
        "devices cannot use the admin API"
    );
    let auth = format!("Bearer {admin}");
    let (status, _) = http(
        server.http,
        "DELETE",
        &format!("/api/v1/appointments/{id}"),
        &[("Authorization", &auth)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 204);
    assert!(server.worklist(&token).await.is_empty());

    // Devices and groups: register, move, rotate the token, rename and delete groups.
    let (status, created) = server
        .post(
            "/api/v1/devices",
            &admin,
            &json!({"name": "tablet-3", "group": "echo"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let dev_id = created["id"].as_str().unwrap().to_string();
    let old_token = created["token"].as_str().unwrap().to_string();
    assert_eq!(server.get("/api/v1/worklist", &old_token).await.0, 200);
    let (status, rotated) = server
        .post(
            &format!("/api/v1/devices/{dev_id}/token"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let new_token = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(
        server.get("/api/v1/worklist", &old_token).await.0,
        401,
        "the old token stops working"
    );
    assert_eq!(server.get("/api/v1/worklist", &new_token).await.0, 200);
    let patch = serde_json::to_vec(&json!({"group": "cardiology", "name": "tablet-3b"})).unwrap();
    let (status, body) = http(
        server.http,
        "PATCH",
        &format!("/api/v1/devices/{dev_id}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&patch),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, groups) = server.get("/api/v1/groups", &admin).await;
    let cardio = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "cardiology")
        .unwrap()
        .clone();
    assert_eq!(cardio["devices"], 2);
    let (status, _) = http(
        server.http,
        "DELETE",
        "/api/v1/groups/cardiology",
        &[("Authorization", &auth)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 409, "a group with devices cannot be deleted");
    let (status, _) = http(
        server.http,
        "DELETE",
        "/api/v1/groups/echo",
        &[("Authorization", &auth)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 204, "the emptied group can");

    // Messages are browsable with their fields and ACK.
    let (status, body) = server.get("/api/v1/messages?control_id=M4", &admin).await;
    assert_eq!(status, 200);
    let mid = body["messages"][0]["id"].as_i64().unwrap();
    let (_, detail) = server.get(&format!("/api/v1/messages/{mid}"), &admin).await;
    assert_eq!(detail["status"], "rejected");
    assert!(detail["ack"].as_str().unwrap().contains("MSA|AE|M4"));
    assert!(
        detail["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["segment"] == "ORC")
    );
    ehr.stop().await;
}

/// The EHR down for a while, an AR that fails for good, and a resend.
#[tokio::test]
async fn results_queue_through_outages_rejections_and_resends() {
    let ehr_addr = free_port();
    let (server, token, _) = Server::start("iris", ehr_addr).await;
    let admin = server.admin_token();
    assert!(
        server
            .send(&full_orm("Q1", "ORD-Q", "NW"))
            .await
            .contains("MSA|AA|Q1")
    );
    let id = server.worklist(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pdf = sample_pdf();

    // EHR down: the result is accepted and queued, and retried.
    let (status, body) = server
        .post("/api/v1/measurements", &token, &measurement(&id, &pdf))
        .await;
    assert_eq!(status, 201, "{body}");
    let mid = body["id"].as_str().unwrap().to_string();
    wait_for("a retried delivery", WAIT, || async {
        let (_, m) = server
            .get(&format!("/api/v1/measurements/{mid}"), &admin)
            .await;
        (m["deliveries"][0]["state"] == "retrying").then_some(())
    })
    .await;

    // The EHR comes up and gets it once.
    let ehr = TestEhr::start_on(ehr_addr, EhrMode::Accept).await;
    ehr.wait_for_count(1, WAIT).await;
    wait_for("sent", WAIT, || async {
        let (_, m) = server
            .get(&format!("/api/v1/measurements/{mid}"), &admin)
            .await;
        (m["status"] == "sent").then_some(())
    })
    .await;

    // AR: failed for good, the EHR's answer visible; a resend tries again.
    ehr.set_mode(EhrMode::Reject);
    let (status, _) = server
        .post(
            "/api/v1/measurements/{}/resend"
                .replace("{}", &mid)
                .as_str(),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let m = wait_for("failed", WAIT, || async {
        let (_, m) = server
            .get(&format!("/api/v1/measurements/{mid}"), &admin)
            .await;
        (m["status"] == "failed").then_some(m)
    })
    .await;
    assert!(
        m["deliveries"][0]["response"]
            .as_str()
            .unwrap()
            .contains("MSA|AR|")
    );
    assert!(
        m["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("AR")
    );
    let before = ehr.messages().len();

    ehr.set_mode(EhrMode::Accept);
    let (status, _) = server
        .post(
            &format!("/api/v1/measurements/{mid}/resend"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(status, 202);
    ehr.wait_for_count(before + 1, WAIT).await;
    wait_for("sent again", WAIT, || async {
        let (_, m) = server
            .get(&format!("/api/v1/measurements/{mid}"), &admin)
            .await;
        (m["status"] == "sent").then_some(())
    })
    .await;

    // Bad measurements: unknown appointment, not a PDF, malformed JSON.
    let (status, body) = server
        .post(
            "/api/v1/measurements",
            &token,
            &measurement("no-such-id", &pdf),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = server
        .post(
            "/api/v1/measurements",
            &token,
            &measurement(&id, b"not a pdf"),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["details"].to_string().contains("report_pdf"),
        "{body}"
    );
    let auth = format!("Bearer {token}");
    let (status, _) = http(
        server.http,
        "POST",
        "/api/v1/measurements",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(b"{\"appointment_id\": "),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    ehr.stop().await;
}

/// Another organisation's tokens see and change nothing of this one; bodies
/// over the limit get 413; message types the preset does not take get AR.
#[tokio::test]
async fn organisations_are_isolated_and_limits_hold() {
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let (server, token, _) = Server::start("hl7-mllp", ehr.addr).await;
    let admin = server.admin_token();
    let other_admin = server.admin_token_in("clinic-b");
    // Same group name, other organisation.
    let other_device = device_add_in(&server.cfg, "tablet-b", "cardiology", "clinic-b");

    assert!(
        server
            .send(&full_orm("O1", "ORD-O", "NW"))
            .await
            .contains("MSA|AA|O1")
    );
    let id = server.worklist(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = server
        .post(
            "/api/v1/measurements",
            &token,
            &measurement(&id, &sample_pdf()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mid = body["id"].as_str().unwrap().to_string();
    let (_, devices) = server.get("/api/v1/devices", &admin).await;
    let device_a = devices["devices"][0]["id"].as_str().unwrap().to_string();

    assert!(server.worklist(&other_device).await.is_empty());
    let (status, body) = server
        .post(
            "/api/v1/measurements",
            &other_device,
            &measurement(&id, &sample_pdf()),
        )
        .await;
    assert_eq!(
        status, 422,
        "another organisation's appointment is unknown: {body}"
    );
    let (_, list) = server.get("/api/v1/appointments", &other_admin).await;
    assert_eq!(list["appointments"], json!([]));
    assert_eq!(
        server
            .get(&format!("/api/v1/appointments/{id}"), &other_admin)
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .get(&format!("/api/v1/measurements/{mid}"), &other_admin)
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .get(&format!("/api/v1/measurements/{mid}"), &other_device)
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .post(
                &format!("/api/v1/measurements/{mid}/resend"),
                &other_admin,
                &json!({})
            )
            .await
            .0,
        404
    );
    let (_, their_devices) = server.get("/api/v1/devices", &other_admin).await;
    assert!(
        their_devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["id"] != device_a)
    );
    let auth = format!("Bearer {other_admin}");
    for (method, path) in [
        ("DELETE", format!("/api/v1/appointments/{id}")),
        ("DELETE", format!("/api/v1/devices/{device_a}")),
        ("POST", format!("/api/v1/devices/{device_a}/token")),
    ] {
        let (status, _) = http(
            server.http,
            method,
            &path,
            &[("Authorization", &auth)],
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 404, "{method} {path}");
    }
    let (_, messages) = server.get("/api/v1/messages", &other_admin).await;
    assert_eq!(messages["messages"], json!([]));
    // Still there for its own organisation.
    assert_eq!(
        server.worklist(&token).await.len(),
        0,
        "completed by the measurement"
    );
    assert_eq!(
        server
            .get(&format!("/api/v1/appointments/{id}"), &admin)
            .await
            .0,
        200
    );

    // 413 over the body limit (256 KiB in this configuration).
    let big = vec![b'%'; 400 * 1024];
    let (status, body) = server
        .post("/api/v1/measurements", &token, &measurement(&id, &big))
        .await;
    assert_eq!(status, 413, "{body}");

    // A message type the preset does not handle: AR naming it.
    let mdm = "MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIO|20250315120000||MDM^T02|X1|P|2.5\rEVN|T02|20250315120000\rPID|1||1^^^HIS||DOE^JOHN\rPV1|1|O\rTXA|1|CN|TX\r";
    let ack = server.send(mdm.as_bytes()).await;
    assert!(ack.contains("MSA|AR|X1"), "{ack}");
    ehr.stop().await;
}
