//! Real peers for medrelay's tests: an MLLP server that plays the EHR, FTP/FTPS
//! and SFTP servers serving temporary directories, a throwaway certificate
//! authority, and waiting on a condition with a deadline (tests never sleep to
//! synchronise).

pub mod browser;
pub mod ftp_server;
pub mod sftp_server;

pub use browser::Browser;
pub use ftp_server::FtpServer;
pub use sftp_server::SftpServer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mllp::{Handler, Listener, ListenerConfig, Peer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Polls `cond` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How the test EHR answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EhrMode {
    /// `MSA|AA|<control id>`
    Accept,
    /// `MSA|AR|<control id>`
    Reject,
    /// Reads the frame and never answers.
    Silent,
}

#[derive(Default)]
struct Received {
    messages: Mutex<Vec<Vec<u8>>>,
    changed: Notify,
}

struct EhrHandler {
    mode: Mutex<EhrMode>,
    received: Arc<Received>,
}

impl Handler for EhrHandler {
    async fn on_frame(&self, _peer: &Peer, payload: Bytes) -> Option<Bytes> {
        let mode = *self.mode.lock().unwrap();
        if mode == EhrMode::Silent {
            return None;
        }
        self.received
            .messages
            .lock()
            .unwrap()
            .push(payload.to_vec());
        self.received.changed.notify_waiters();
        let code = if mode == EhrMode::Accept { "AA" } else { "AR" };
        Some(Bytes::from(ack(&payload, code)))
    }

    async fn on_oversized(&self, _: &Peer, _: Bytes, _: usize, _: usize) -> Option<Bytes> {
        None
    }
}

/// A small, independent ACK writer (deliberately not medrelay's own builder).
pub fn ack(msg: &[u8], code: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(msg);
    let msh = text.split('\r').next().unwrap_or("");
    let fields: Vec<&str> = msh.split('|').collect();
    let control_id = fields.get(9).copied().unwrap_or("");
    let version = fields.get(11).copied().unwrap_or("2.5");
    format!(
        "MSH|^~\\&|EHR|HOSP|MEDRELAY|RELAY|20250101000000||ACK|E{control_id}|P|{version}\rMSA|{code}|{control_id}\r"
    )
    .into_bytes()
}

/// A real MLLP server on 127.0.0.1 that records what it receives.
pub struct TestEhr {
    pub addr: SocketAddr,
    handler: Arc<EhrHandler>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestEhr {
    /// On a free port.
    pub async fn start(mode: EhrMode) -> TestEhr {
        Self::start_on("127.0.0.1:0".parse().unwrap(), mode).await
    }

    /// On a given address (to come back on the port a destination points at).
    pub async fn start_on(addr: SocketAddr, mode: EhrMode) -> TestEhr {
        Self::start_with(addr, mode, Arc::default()).await
    }

    async fn start_with(addr: SocketAddr, mode: EhrMode, received: Arc<Received>) -> TestEhr {
        let listener = Listener::bind(ListenerConfig::new(addr)).await.unwrap();
        let addr = listener.local_addr();
        let handler = Arc::new(EhrHandler {
            mode: Mutex::new(mode),
            received,
        });
        let shutdown = CancellationToken::new();
        let task =
            tokio::spawn(listener.run(handler.clone(), shutdown.clone(), Duration::from_secs(1)));
        TestEhr {
            addr,
            handler,
            shutdown,
            task: Some(task),
        }
    }

    pub fn set_mode(&self, mode: EhrMode) {
        *self.handler.mode.lock().unwrap() = mode;
    }

    /// Everything received so far, in arrival order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.handler.received.messages.lock().unwrap().clone()
    }

    /// The MSH-10 of everything received so far.
    pub fn control_ids(&self) -> Vec<String> {
        self.messages().iter().map(|m| control_id(m)).collect()
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let received = self.handler.received.clone();
        wait_for(&format!("{n} messages at the test EHR"), timeout, || {
            let received = received.clone();
            async move {
                let msgs = received.messages.lock().unwrap().clone();
                (msgs.len() >= n).then_some(msgs)
            }
        })
        .await
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestEhr {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// MSH-10 of a message, read naively (test helper).
pub fn control_id(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    text.split('\r')
        .next()
        .and_then(|msh| msh.split('|').nth(9))
        .unwrap_or("")
        .to_string()
}

/// A port that was free a moment ago (for a peer that is "down" at first).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A throwaway PKI: a CA, a server certificate for `localhost`/127.0.0.1 and a
/// client certificate, written as PEM files into a temporary directory.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A second CA that signed nothing we trust.
    pub other_ca: PathBuf,
}

impl TestPki {
    pub fn generate() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let make_ca = |cn: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            (cert, Issuer::new(params, key))
        };
        let (ca_cert, ca) = make_ca("medrelay test CA");
        let (other_cert, _) = make_ca("someone else's CA");

        let mut server =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca).unwrap();

        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "ehr-client");
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca).unwrap();

        TestPki {
            ca: write("ca.pem", ca_cert.pem()),
            other_ca: write("other-ca.pem", other_cert.pem()),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            dir,
        }
    }
}

/// The seed's ORM^O01 (a radiology order), with the given control id.
pub fn orm_o01(control_id: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|HIS|HOSPITAL_A|MEDISFERA|PACS|20250315120000||ORM^O01|{control_id}|P|2.5\r\
PID|1||1234567890^^^HIS||GARCIA^PEDRO^M||19751022|M|||C/ MAYOR 1^MADRID^^28001\r\
PV1|1|O|RADIOLOGY||||12345^DR LOPEZ^ANA|\r\
ORC|NW|ORD-2025-001|||SC||||20250315120000|||12345^DR LOPEZ^ANA\r\
OBR|1|ORD-2025-001||72193^TC ABDOMEN SIN CONTRASTE^LN|||20250315||||||||||12345^DR LOPEZ^ANA||||||CT|||^^MEDISFERA_MWL^MEDISFERA|||SC\r"
    )
    .into_bytes()
}

/// A minimal HTTP/1.1 client over a real socket, for tests: one request per
/// connection. Returns the status and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let (status, _, body) = http_full(addr, method, path, headers, body).await?;
    Ok((status, body))
}

/// [`http`] with the response headers (names lowercased, in order).
pub async fn http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    if let Some(b) = body {
        s.write_all(b).await?;
    }
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("HTTP response timed out"))??;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let mut body = buf[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let response_headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, response_headers, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// A small but real PDF document (a single empty page), deterministic.
pub fn sample_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        pdf.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// One segment from (field number, raw value) pairs; unlisted fields are empty.
pub fn segment(id: &str, fields: &[(usize, &str)]) -> String {
    let last = fields.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut out = vec![String::new(); last + 1];
    out[0] = id.to_string();
    for (n, v) in fields {
        out[*n] = (*v).to_string();
    }
    out.join("|")
}

/// An ORM^O01 with every field the HL7 presets map filled in.
pub fn full_orm(control_id: &str, placer: &str, control: &str) -> Vec<u8> {
    let filler = format!("FIL-{placer}");
    let group = format!("GRP-{placer}");
    let visit = format!("VN-{placer}^^^HIS^VN");
    let msh = format!(
        "MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIO|20250315120000||ORM^O01^ORM_O01|{control_id}|P|2.5"
    );
    let pid = segment(
        "PID",
        &[
            (1, "1"),
            (3, "1234567890^^^HIS^MR~99887766^^^SSA^SS"),
            (5, "GARCIA^PEDRO^MARIA^JR^DR"),
            (7, "19751022"),
            (8, "M"),
            (10, "2106-3^White^CDCREC"),
            (11, "C/ MAYOR 1^PISO 2^MADRID^MD^28001^ES^H"),
            (13, "+34911234567^PRN^PH^pedro@example.org"),
            (15, "spa"),
        ],
    );
    let pv1 = segment(
        "PV1",
        &[
            (1, "1"),
            (2, "O"),
            (3, "CARDIO^101^A^HOSPITAL_A"),
            (4, "R"),
            (7, "12345^LOPEZ^ANA^^^DR"),
            (10, "CAR"),
            (19, &visit),
            (44, "20250315114500"),
            (45, "20250315130000"),
        ],
    );
    let orc = segment(
        "ORC",
        &[
            (1, control),
            (2, placer),
            (3, &filler),
            (4, &group),
            (5, "SC"),
            (6, "Y"),
            (7, "1^^^20250315120000^^R"),
            (9, "20250315120000"),
            (10, "7777^CLERK^ANNA"),
            (11, "8888^NURSE^EVA"),
            (12, "12345^LOPEZ^ANA^^^DR"),
            (14, "+34911112222"),
            (15, "20250315120500"),
        ],
    );
    let obr = segment(
        "OBR",
        &[
            (1, "1"),
            (2, placer),
            (3, &filler),
            (4, "ECG^12-lead ECG^L"),
            (5, "R"),
            (6, "20250315120000"),
            (7, "20250315121000"),
            (16, "12345^LOPEZ^ANA^^^DR"),
            (24, "EC"),
            (27, "1^^^20250315120000^^R"),
            (34, "TECH1&TECHNICIAN&TOM"),
            (36, "20250315123000"),
            (44, "93000^Electrocardiogram^CPT"),
        ],
    );
    format!("{msh}\r{pid}\r{pv1}\r{orc}\r{obr}\r").into_bytes()
}

/// `medrelay serve` in its own process, as operators run it; killed on drop.
pub struct ServeProcess {
    child: Option<std::process::Child>,
    pub http: SocketAddr,
}

impl ServeProcess {
    /// Starts `bin serve --config config` and waits until `/healthz` on `http`
    /// answers 200.
    pub async fn start(bin: &str, config: &std::path::Path, addr: SocketAddr) -> ServeProcess {
        ServeProcess::start_with_env(bin, config, addr, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables (`TZ` …).
    pub async fn start_with_env(
        bin: &str,
        config: &std::path::Path,
        addr: SocketAddr,
        env: &[(&str, &str)],
    ) -> ServeProcess {
        let child = std::process::Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            // Times in FHIR answers depend on the zone: the same in every
            // test run unless a test asks for another.
            .env("TZ", "UTC")
            .envs(env.iter().copied())
            .env("MEDRELAY_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = ServeProcess {
            child: Some(child),
            http: addr,
        };
        wait_for(
            "medrelay to answer /healthz",
            Duration::from_secs(30),
            || async {
                http(server.http, "GET", "/healthz", &[], None)
                    .await
                    .ok()
                    .filter(|(status, _)| *status == 200)
            },
        )
        .await;
        server
    }

    /// Sends a signal (`-TERM`, `-KILL`) with `kill`.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().map(|c| c.id()).unwrap();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits (with a deadline) for the process to exit.
    pub async fn wait_exit(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_for("medrelay to exit", Duration::from_secs(30), || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
