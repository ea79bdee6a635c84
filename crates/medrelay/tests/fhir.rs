//! The FHIR R4 API over real HTTP: patients that arrived by HL7 read as FHIR
//! Patients (checked with an independent validator), paged searches visit every
//! patient once, SMART scopes are enforced, errors are OperationOutcomes.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use medrelay_testkit::{ServeProcess, free_port, full_orm, http, wait_for};
use mllp::{Sender, SenderConfig};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (status, body) = http(addr, "GET", path, &headers, None).await.unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn token(addr: SocketAddr, cfg: &std::path::Path, scopes: &[&str]) -> String {
    let (id, secret) = client_add_in(cfg, "fhir-client", scopes, "default");
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (status, body) = http(
        addr,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// The independent check: Python's fhir.resources (R4B models) accepts it.
fn valid_fhir(resource_type: &str, json: &str) {
    use std::io::Write;
    let script = format!(
        "import sys\nfrom fhir.resources.R4B import get_fhir_model_class\nget_fhir_model_class({resource_type:?}).model_validate_json(sys.stdin.read())\n"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed: python3 -m pip install fhir.resources==8.3.0");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{resource_type} rejected by fhir.resources (python3 -m pip install fhir.resources==8.3.0): {}\n{json}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_from_hl7_read_as_fhir() {
    let dir = tempfile::tempdir().unwrap();
    let http_addr = free_port();
    let mllp = free_port();
    let cfg = dir.path().join("medrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = {:?}\nhttp = \"{http_addr}\"\n\n[[integration]]\nname = \"his\"\npreset = \"hl7-mllp\"\ngroup = \"default\"\ninbound = {{ mllp = \"{mllp}\" }}\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    check_ok(&cfg);
    let _server = ServeProcess::start(BIN, &cfg, http_addr).await;

    // Seven patients, each with its own order.
    let mut sender = Sender::new(SenderConfig::new(mllp.to_string()));
    for i in 0..7 {
        let orm = String::from_utf8(full_orm(&format!("F{i}"), &format!("ORD-{i}"), "NW"))
            .unwrap()
            .replace("1234567890", &format!("MRN-{i}"))
            .replace("99887766", &format!("SSN-{i}"));
        let ack = sender.send(orm.as_bytes()).await.unwrap();
        assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|"));
    }
    sender.close().await;

    // The CapabilityStatement needs no token.
    let (status, cap, raw) = get(http_addr, "/fhir/R4/metadata", None).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(cap["fhirVersion"], "4.0.1");
    assert_eq!(cap["rest"][0]["resource"][0]["type"], "Patient");
    valid_fhir("CapabilityStatement", &raw);

    // No token, the wrong scope: OperationOutcomes with 401 and 403.
    let (status, oo, raw) = get(http_addr, "/fhir/R4/Patient", None).await;
    assert_eq!(status, 401, "{raw}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    valid_fhir("OperationOutcome", &raw);
    let other = token(http_addr, &cfg, &["appointments"]).await;
    let (status, oo, _) = get(http_addr, "/fhir/R4/Patient", Some(&other)).await;
    assert_eq!(status, 403);
    assert_eq!(oo["resourceType"], "OperationOutcome");

    let t = token(http_addr, &cfg, &["system/Patient.read"]).await;
    // Paging with _count=3 visits every patient exactly once.
    let mut seen = HashSet::new();
    let mut next = Some("/fhir/R4/Patient?_count=3".to_string());
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (status, bundle, raw) = get(http_addr, &url, Some(&t)).await;
        assert_eq!(status, 200, "{raw}");
        valid_fhir("Bundle", &raw);
        pages += 1;
        for e in bundle["entry"].as_array().unwrap() {
            let id = e["resource"]["id"].as_str().unwrap().to_string();
            assert!(seen.insert(id.clone()), "Patient/{id} twice");
        }
        next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(pages, 3);

    // A patient from HL7, read as FHIR: identifiers with their systems.
    let id = seen.iter().next().unwrap().clone();
    let (status, patient, raw) = wait_for("the patient", WAIT, || async {
        let r = get(http_addr, &format!("/fhir/R4/Patient/{id}"), Some(&t)).await;
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["name"][0]["family"], "GARCIA");
    assert_eq!(patient["gender"], "male");
    assert_eq!(patient["birthDate"], "1975-10-22");
    assert!(
        patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["system"] == "HIS" && i["value"].as_str().unwrap().starts_with("MRN-")),
        "{raw}"
    );
    valid_fhir("Patient", &raw);
    let (status, oo, _) = get(http_addr, "/fhir/R4/Patient/999999", Some(&t)).await;
    assert_eq!(status, 404);
    assert_eq!(oo["resourceType"], "OperationOutcome");
}
