//! The binary as operators run it: `medrelay serve` in its own process, driven
//! with `medrelay send`, plain HTTP, SIGTERM and SIGKILL.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medrelay_store::{MessageQuery, SqliteOptions, Store};
use medrelay_testkit::{EhrMode, ServeProcess, TestEhr, free_port, http, orm_o01, wait_for};
use mllp::{Sender, SenderConfig};

const BIN: &str = env!("CARGO_BIN_EXE_medrelay");

async fn start(config: &Path) -> ServeProcess {
    let text = std::fs::read_to_string(config).unwrap();
    let http = text
        .lines()
        .find_map(|l| l.strip_prefix("http = "))
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    ServeProcess::start(BIN, config, http).await
}

/// Status and body (as text) of a GET.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let (status, body) = http(addr, "GET", path, &[], None).await.ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn write_config(
    dir: &Path,
    mllp: std::net::SocketAddr,
    extra: &str,
) -> (PathBuf, std::net::SocketAddr) {
    let http = free_port();
    let cfg = dir.join("medrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = {:?}\nhttp = \"{http}\"\nshutdown_grace = \"5s\"\n\n[[channel]]\nname = \"orders\"\nsource = {{ mllp = \"{mllp}\" }}\n{extra}",
            dir.join("data")
        ),
    )
    .unwrap();
    (cfg, http)
}

#[tokio::test]
async fn serve_send_health_metrics_and_clean_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mllp = free_port();
    let (cfg, _) = write_config(dir.path(), mllp, "");
    let server = start(&cfg).await;

    let (status, body) = http_get(server.http, "/healthz").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    // `medrelay send` with a file holding two messages, LF line ends as an editor writes them.
    let file = dir.path().join("orders.hl7");
    let mut text = String::from_utf8(orm_o01("CLI1"))
        .unwrap()
        .replace('\r', "\n");
    text.push('\n');
    text.push_str(
        &String::from_utf8(orm_o01("CLI2"))
            .unwrap()
            .replace('\r', "\n"),
    );
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .args(["send", &mllp.to_string()])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "send failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("MSA|AA|CLI1"), "{stdout}");
    assert!(stdout.contains("MSA|AA|CLI2"), "{stdout}");

    // Garbage gets AR, and `send` says so with its exit code.
    let bad = dir.path().join("bad.hl7");
    std::fs::write(&bad, "MSH|^^|broken\n").unwrap();
    let out = Command::new(BIN)
        .args(["send", &mllp.to_string()])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("MSA|AR"));

    let (_, metrics) = http_get(server.http, "/metrics").await.unwrap();
    for line in [
        "medrelay_messages_received_total{channel=\"orders\"} 3",
        "medrelay_messages_acknowledged_total{channel=\"orders\"} 2",
        "medrelay_messages_errored_total{channel=\"orders\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    assert!(
        metrics.contains("medrelay_inbound_latency_seconds_bucket"),
        "{metrics}"
    );

    // SIGTERM: exit 0, everything flushed.
    server.signal("-TERM");
    let status = server.wait_exit().await;
    assert!(status.success(), "exit status {status:?}");
    let store = Store::open_sqlite(
        &dir.path().join("data/medrelay.db"),
        SqliteOptions::default(),
    )
    .unwrap();
    let stored = store
        .find_messages(MessageQuery {
            limit: 10,
            ..MessageQuery::new("default")
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    store.close().await.unwrap();
}

#[tokio::test]
async fn send_over_mutual_tls() {
    let pki = medrelay_testkit::TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    let mllp = free_port();
    let (cfg, _) = write_config(dir.path(), mllp, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("source = {{ mllp = \"{mllp}\" }}"),
        &format!(
            "source = {{ mllp = \"{mllp}\", tls = {{ cert = {:?}, key = {:?}, client_ca = {:?} }} }}",
            pki.server_cert, pki.server_key, pki.ca
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let server = start(&cfg).await;
    let file = dir.path().join("order.hl7");
    std::fs::write(&file, orm_o01("TLS-CLI")).unwrap();

    let with_cert = Command::new(BIN)
        .args([
            "send",
            &mllp.to_string(),
            "--server-name",
            "localhost",
            "--tls-ca",
        ])
        .arg(&pki.ca)
        .arg("--tls-cert")
        .arg(&pki.client_cert)
        .arg("--tls-key")
        .arg(&pki.client_key)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&with_cert.stdout);
    assert!(
        with_cert.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&with_cert.stderr)
    );
    assert!(stdout.contains("MSA|AA|TLS-CLI"), "{stdout}");

    // Without a client certificate the server refuses the handshake.
    let without = Command::new(BIN)
        .args([
            "send",
            &mllp.to_string(),
            "--server-name",
            "localhost",
            "--timeout",
            "5s",
            "--tls-ca",
        ])
        .arg(&pki.ca)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!without.status.success());
    assert!(!String::from_utf8_lossy(&without.stdout).contains("MSA|"));
    drop(server);
}

#[tokio::test]
async fn check_explains_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = write_config(dir.path(), free_port(), "");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[channel]]\nname = \"Bad Name\"\nsource = { mllp = \"127.0.0.1:7000\", allow = [\"10.0.0.0/33\"] }\ndestinations = [{ mllp = \"nohost\" }]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("name must be"), "{stdout}");
    assert!(stdout.contains("10.0.0.0/33"), "{stdout}");
    assert!(stdout.contains("HOST:PORT"), "{stdout}");

    std::fs::write(&bad, "[server]\nhttp = \"not an address\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("http"), "the error names the key: {stdout}");

    // File integrations: each mistake is named.
    std::fs::write(
        &bad,
        r#"[[integration]]
name = "gdt-no-folder"
preset = "doctolib"
inbound = { mllp = "127.0.0.1:7001" }
outbound = { mllp = "127.0.0.1:7002" }

[[integration]]
name = "sftp-unpinned"
preset = "tomedo"
inbound = { folder = "sftp://gdt@10.0.0.5/inbox", remote = { password = "x" } }

[[integration]]
name = "weda-both"
preset = "weda"
inbound = { folder = "/srv/weda/in" }
outbound = { url = "ftp://weda.example/results", folder = "/srv/out" }
"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("receives GDT files: set inbound.folder"),
        "{stdout}"
    );
    assert!(stdout.contains("answers with GDT files"), "{stdout}");
    assert!(stdout.contains("remote.host_key"), "{stdout}");
    assert!(stdout.contains("outbound.folder, outbound.url"), "{stdout}");
}

/// Kill -9 in the middle of a load: every control id that got an AA is in the
/// store after the restart, and the destination queue resumes and delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mllp = free_port();
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let (cfg, _) = write_config(
        dir.path(),
        mllp,
        &format!(
            "destinations = [{{ name = \"ehr\", mllp = \"{}\", retry = {{ initial = \"100ms\", max = \"1s\" }} }}]\n",
            ehr.addr
        ),
    );
    let server = start(&cfg).await;

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut senders = Vec::new();
    for c in 0..8 {
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            let mut s = Sender::new(SenderConfig {
                ack_timeout: Duration::from_secs(5),
                ..SenderConfig::new(mllp.to_string())
            });
            for i in 0..2_000 {
                let id = format!("K{c}-{i}");
                match s.send(&orm_o01(&id)).await {
                    Ok(ack) if ack.windows(7).any(|w| w == b"MSA|AA|") => {
                        acked.lock().unwrap().insert(id);
                    }
                    _ => return,
                }
            }
        }));
    }
    let count = acked.clone();
    wait_for(
        "3,000 acknowledged messages",
        Duration::from_secs(120),
        || {
            let n = count.lock().unwrap().len();
            async move { (n >= 3_000).then_some(()) }
        },
    )
    .await;
    server.signal("-KILL");
    let _ = server.wait_exit().await;
    for s in senders {
        let _ = s.await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 3_000);

    // Restart: the queue resumes and the EHR ends up with every acknowledged id.
    let server = start(&cfg).await;
    wait_for(
        "every acknowledged message at the EHR",
        Duration::from_secs(120),
        || {
            let got: HashSet<String> = ehr.control_ids().into_iter().collect();
            let missing = acked.iter().filter(|id| !got.contains(*id)).count();
            async move { (missing == 0).then_some(()) }
        },
    )
    .await;
    server.signal("-TERM");
    assert!(server.wait_exit().await.success());

    let store = Store::open_sqlite(
        &dir.path().join("data/medrelay.db"),
        SqliteOptions::default(),
    )
    .unwrap();
    let stored: HashSet<String> = store
        .find_messages(MessageQuery {
            limit: 100_000,
            ..MessageQuery::new("default")
        })
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.control_id)
        .collect();
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages missing from the store, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    store.close().await.unwrap();
    ehr.stop().await;
}
