//! What the end-to-end tests of `medrelay serve` share: the CLI calls that set up
//! devices and tokens, and JSON over HTTP.

#![allow(dead_code)] // each test binary uses its own part

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use gdt::{FieldId, Record, RecordType};
use medrelay_testkit::http;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_medrelay");

/// The value of a `name=value` line printed last (how secrets are printed).
pub fn last_value(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().unwrap_or("");
    line.split_once('=')
        .map(|(_, v)| v)
        .unwrap_or(line)
        .trim()
        .to_string()
}

/// `medrelay device add`; returns the device's token.
pub fn device_add_in(cfg: &Path, name: &str, group: &str, org: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "device", "add", "--name", name, "--group", group, "--org", org, "--config",
        ])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = last_value(&out.stdout);
    assert!(token.starts_with("mrd_"), "{token}");
    token
}

/// `medrelay token create --role admin`.
pub fn admin_token_in(cfg: &Path, org: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "token", "create", "--role", "admin", "--org", org, "--config",
        ])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    last_value(&out.stdout)
}

/// `medrelay check --config`, which must pass.
pub fn check_ok(cfg: &Path) {
    let check = Command::new(BIN)
        .args(["check", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// A device's result: two observations and the PDF.
pub fn measurement(appointment_id: &str, pdf: &[u8]) -> Value {
    json!({
        "appointment_id": appointment_id,
        "type": "ECG",
        "performed_at": "2025-03-15T12:40:00Z",
        "observations": [
            {"code": "8867-4", "system": "LN", "display": "Heart rate", "value": 72, "unit": "/min", "reference_range": "60-100", "abnormal_flag": "N"},
            {"code": "RHYTHM", "display": "Rhythm", "value": "sinus rhythm"}
        ],
        "report_pdf": base64::engine::general_purpose::STANDARD.encode(pdf),
    })
}

pub async fn get_json(addr: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, body) = http(addr, "GET", path, &[("Authorization", &auth)], None)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub async fn post_json(addr: SocketAddr, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let bytes = serde_json::to_vec(body).unwrap();
    let (status, body) = http(
        addr,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&bytes),
    )
    .await
    .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The open appointments a device sees.
pub async fn worklist(addr: SocketAddr, token: &str) -> Vec<Value> {
    let (status, body) = get_json(addr, "/api/v1/worklist", token).await;
    assert_eq!(status, 200, "{body}");
    body["appointments"].as_array().cloned().unwrap_or_default()
}

/// A GDT field id.
pub fn f(id: u16) -> FieldId {
    FieldId::new(id).unwrap()
}

/// A 6302 as Doctolib or Tomedo write it, with every field the catalogue lists.
pub fn request(patient: &str, reference: &str) -> Vec<u8> {
    let mut r = Record::new(RecordType::ExaminationRequest);
    for (id, v) in [
        (8315, "MEDR"),
        (8316, "PRAXIS"),
        (9206, "2"),
        (9218, "02.10"),
        (3000, patient),
        (3101, "Müller"),
        (3102, "Jürgen"),
        (3103, "24061965"),
        (3105, "A123456789"),
        (3106, "50667 Köln"),
        (3107, "Hauptstraße 5"),
        (3110, "1"),
        (3112, "50667"),
        (3113, "Köln"),
        (3633, "juergen@example.org"),
        (8402, "EKG01"),
        (8609, "K"),
        (2998, "RUHE-EKG"),
        (2999, reference),
        (3626, "900001"),
        (3629, "900002"),
    ] {
        r.push(f(id), v);
    }
    r.to_bytes().unwrap()
}

/// Writes a file the way a careful practice system does: temporary name, rename.
pub fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Every name in `dir`, hidden ones and directories included, sorted.
pub fn all_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The visible regular files in `dir`, sorted: what a practice system picks
/// up. Hidden files are writes still in progress (temporary name, then
/// rename), so a wait on this list never sees one half-done;
/// [`all_names`] shows them.
pub fn names(dir: &Path) -> Vec<String> {
    all_names(dir)
        .into_iter()
        .filter(|n| !n.starts_with('.') && dir.join(n).is_file())
        .collect()
}

/// `medrelay client add` (OAuth 2.0 client credentials): `(client_id, client_secret)`.
/// The secret is the last line; the id is the `client_id=` line.
pub fn client_add_in(cfg: &Path, name: &str, scopes: &[&str], org: &str) -> (String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["client", "add", "--name", name, "--org", org]);
    for s in scopes {
        cmd.args(["--scope", s]);
    }
    let out = cmd.arg("--config").arg(cfg).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("client_id="))
        .unwrap_or_else(|| panic!("no client_id= line in {text:?}"))
        .to_string();
    let last = text.lines().last().unwrap_or("");
    assert!(last.starts_with("client_secret="), "{text}");
    (id, last_value(&out.stdout))
}
