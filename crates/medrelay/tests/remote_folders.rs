//! The GDT file integrations with their folders on other machines, end to end:
//! `medrelay serve` takes the practice system's 6302 requests from an SFTP
//! server and writes the 6310 results and PDF reports to an FTP or FTPS server.
//! Both are real servers (`medrelay_testkit::{SftpServer, FtpServer}`) serving
//! temporary directories, so every check looks at what is on disk there.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use gdt::RecordType;
use medrelay_testkit::{
    FtpServer, ServeProcess, SftpServer, TestPki, free_port, ftp_server, sample_pdf, sftp_server,
    wait_for,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The result file's name: `{receiver}{sender}.gdt` of the result.
const RESULT: &str = "PRAXISMEDR.gdt";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outbound {
    Ftp,
    Ftps,
}

/// An SFTP server with the practice system's outbox (our inbound folder), an
/// FTP(S) server with its inbox (our outbound folder), and `medrelay serve`
/// between them.
struct Setup {
    sftp: SftpServer,
    ftp: FtpServer,
    http: SocketAddr,
    cfg: PathBuf,
    /// A device of the integration's group.
    token: String,
    _process: ServeProcess,
    _pki: TestPki,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start(outbound: Outbound) -> Setup {
        let pki = TestPki::generate();
        let sftp = SftpServer::start(true).await;
        let ftp = FtpServer::start((outbound == Outbound::Ftps).then_some(&pki));
        std::fs::create_dir(sftp.root().join("inbox")).unwrap();
        std::fs::create_dir(ftp.root().join("results")).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let cfg = dir.path().join("medrelay.toml");
        let (scheme, ca) = match outbound {
            Outbound::Ftp => ("ftp", String::new()),
            Outbound::Ftps => ("ftps", format!(", ca = {:?}", pki.ca)),
        };
        std::fs::write(
            &cfg,
            format!(
                r#"[server]
data_dir = {data:?}
http = "{http}"

[[integration]]
name = "praxis"
preset = "doctolib"
group = "ecg"

[integration.inbound]
folder = "{inbound}"
scan = "100ms"
settle = "300ms"
remote = {{ password = "{sftp_password}", host_key = "{host_key}", insecure_skip_host_key = false, connect_timeout = "2s", io_timeout = "5s" }}

[integration.outbound]
folder = "{outbound}"
retry = {{ initial = "100ms", max = "300ms" }}
remote = {{ password = "{ftp_password}"{ca}, connect_timeout = "2s", io_timeout = "5s" }}
"#,
                data = dir.path().join("data"),
                inbound = sftp.url("/inbox"),
                sftp_password = sftp_server::PASSWORD,
                host_key = sftp.fingerprint(),
                outbound = ftp.url(scheme, "results"),
                ftp_password = ftp_server::PASSWORD,
            ),
        )
        .unwrap();
        check_ok(&cfg);
        let token = device_add_in(&cfg, "tablet-1", "ecg", "default");
        let process = ServeProcess::start(BIN, &cfg, http).await;
        Setup {
            sftp,
            ftp,
            http,
            cfg,
            token,
            _process: process,
            _pki: pki,
            _dir: dir,
        }
    }

    /// The SFTP folder the practice system writes its requests into.
    fn inbox(&self) -> PathBuf {
        self.sftp.root().join("inbox")
    }

    /// The FTP folder results are written into.
    fn outbox(&self) -> PathBuf {
        self.ftp.root().join("results")
    }

    /// Drops a request into the SFTP inbox and waits until its appointment is in
    /// the device's worklist and the file is archived on the SFTP server.
    async fn order(&self, name: &str, patient: &str, reference: &str) -> Value {
        drop_file(&self.inbox(), name, &request(patient, reference));
        let appt = wait_for("the appointment in the worklist", WAIT, || async {
            worklist(self.http, &self.token)
                .await
                .into_iter()
                .find(|a| a["placer_order"] == reference)
        })
        .await;
        let archive = self.inbox().join("archive");
        wait_for("the request archived on the SFTP server", WAIT, || async {
            names(&archive).contains(&name.to_string()).then_some(())
        })
        .await;
        assert!(
            !names(&self.inbox()).contains(&name.to_string()),
            "{:?}",
            names(&self.inbox())
        );
        appt
    }

    /// Posts the device's measurement with `pdf`; returns the measurement id.
    async fn measure(&self, appointment_id: &str, pdf: &[u8]) -> String {
        let (status, body) = post_json(
            self.http,
            "/api/v1/measurements",
            &self.token,
            &measurement(appointment_id, pdf),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn delivery(&self, measurement_id: &str) -> Value {
        let (status, m) = get_json(
            self.http,
            &format!("/api/v1/measurements/{measurement_id}"),
            &self.token,
        )
        .await;
        assert_eq!(status, 200, "{m}");
        m["deliveries"][0].clone()
    }

    async fn wait_sent(&self, measurement_id: &str) -> Value {
        wait_for("the delivery sent", WAIT, || async {
            let d = self.delivery(measurement_id).await;
            (d["state"] == "sent").then_some(d)
        })
        .await
    }

    /// Waits for the result and its PDF on the FTP server and checks them.
    async fn check_result(&self, pdf: &[u8]) {
        let outbox = self.outbox();
        let files = wait_for("the result files on the FTP server", WAIT, || async {
            let n = names(&outbox);
            (n.len() == 2 && n.iter().any(|n| n == RESULT)).then_some(n)
        })
        .await;
        // Written under temporary names and renamed: none is left behind.
        assert!(
            all_names(&outbox).iter().all(|n| !n.starts_with('.')),
            "{:?}",
            all_names(&outbox)
        );
        let pdf_name = files.iter().find(|n| n.ends_with(".pdf")).unwrap();
        assert_eq!(std::fs::read(outbox.join(pdf_name)).unwrap(), pdf);

        let result = gdt::parse(&std::fs::read(outbox.join(RESULT)).unwrap()).unwrap();
        assert_eq!(result.record_type(), Some(RecordType::ExaminationData));
        // The request came from PRAXIS (8316) for MEDR (8315): the answer goes
        // the other way.
        assert_eq!(result.receiver_id(), Some("PRAXIS"));
        assert_eq!(result.sender_id(), Some("MEDR"));
        assert_eq!(result.get(f(3000)), Some("12345"));
        assert_eq!(result.get(f(3101)), Some("Müller"));
        assert_eq!(result.get(f(8402)), Some("EKG01"));
        assert_eq!(result.get(f(6303)), Some("PDF"));
        // A remote folder without `pdf_folder`: the bare file name, beside the
        // result.
        assert_eq!(result.get(f(6305)), Some(pdf_name.as_str()));
    }
}

async fn order_to_result(outbound: Outbound) {
    let setup = Setup::start(outbound).await;
    let appt = setup.order("PRAXMEDR.gdt", "12345", "ORD-4711").await;
    assert_eq!(appt["patient"]["family"], "Müller", "{appt}");
    assert_eq!(appt["patient"]["birth_date"], "1965-06-24", "{appt}");
    assert_eq!(appt["procedure"]["code"], "RUHE-EKG", "{appt}");
    assert_eq!(appt["integration"], "praxis", "{appt}");
    assert_eq!(names(&setup.inbox()), Vec::<String>::new());
    assert_eq!(names(&setup.inbox().join("archive")), ["PRAXMEDR.gdt"]);
    assert!(!setup.inbox().join("error").exists());

    let pdf = sample_pdf();
    let mid = setup.measure(appt["id"].as_str().unwrap(), &pdf).await;
    setup.check_result(&pdf).await;
    let d = setup.wait_sent(&mid).await;
    assert_eq!(d["attempts"], 1, "{d}");
}

/// SFTP in (password login, host key pinned by fingerprint), FTP out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_order_to_ftp_result() {
    order_to_result(Outbound::Ftp).await;
}

/// SFTP in, FTPS out (TLS required by the server, trusted through `remote.ca`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_order_to_ftps_result() {
    order_to_result(Outbound::Ftps).await;
}

/// The FTP server is down when the result is ready: the delivery waits and
/// retries, with the reason visible; once the server is back the result arrives,
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_server_down_then_up_delivers_once() {
    let mut setup = Setup::start(Outbound::Ftp).await;
    let appt = setup.order("PRAXMEDR.gdt", "12345", "ORD-4711").await;

    setup.ftp.kill();
    let pdf = sample_pdf();
    let mid = setup.measure(appt["id"].as_str().unwrap(), &pdf).await;
    let d = wait_for("the delivery retrying", WAIT, || async {
        let d = setup.delivery(&mid).await;
        (d["state"] == "retrying" && d["attempts"].as_u64() >= Some(2)).then_some(d)
    })
    .await;
    let error = d["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("127.0.0.1"), "{d}");
    assert!(!error.contains(ftp_server::PASSWORD), "{d}");
    assert!(all_names(&setup.outbox()).is_empty());

    setup.ftp.restart();
    setup.check_result(&pdf).await;
    setup.wait_sent(&mid).await;
    // One rename onto the result's name in the server's log: written once.
    let log = setup.ftp.log();
    let renames = log
        .lines()
        .filter(|l| l.contains("RNTO ") && l.contains(&format!("/results/{RESULT} 250")))
        .count();
    assert_eq!(renames, 1, "{log}");
}

/// A damaged request in the SFTP inbox goes to the SFTP folder's `error/` with
/// the reason beside it; a good one next to it is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_gdt_in_the_sftp_inbox_lands_in_its_error_folder() {
    let setup = Setup::start(Outbound::Ftp).await;
    // A line whose stated length is one too small.
    let mut bad = request("2", "ORD-2");
    let pos = bad.windows(7).position(|w| w == b"0153101").unwrap();
    bad[pos..pos + 3].copy_from_slice(b"014");
    drop_file(&setup.inbox(), "bad.gdt", &bad);
    setup.order("good.gdt", "1", "ORD-1").await;

    let error = setup.inbox().join("error");
    wait_for("the rejected file and its reason", WAIT, || async {
        (names(&error).len() == 2).then_some(())
    })
    .await;
    assert_eq!(names(&error), ["bad.gdt", "bad.gdt.error.txt"]);
    assert_eq!(std::fs::read(error.join("bad.gdt")).unwrap(), bad);
    let reason = std::fs::read_to_string(error.join("bad.gdt.error.txt")).unwrap();
    assert!(reason.contains("stated length"), "{reason}");
    assert_eq!(names(&setup.inbox().join("archive")), ["good.gdt"]);
    assert_eq!(names(&setup.inbox()), Vec::<String>::new());
    let list = worklist(setup.http, &setup.token).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["placer_order"], "ORD-1");

    // The store kept the rejected file with its error.
    let admin = admin_token_in(&setup.cfg, "default");
    let (status, body) = get_json(
        setup.http,
        "/api/v1/messages?channel=praxis&status=rejected",
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1, "{body}");
}
