//! What the end-to-end tests of `medrelay serve` share: the CLI calls that set up
//! devices and tokens, and JSON over HTTP.

#![allow(dead_code)] // each test binary uses its own part

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
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
