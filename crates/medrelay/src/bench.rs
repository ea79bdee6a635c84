//! `medrelay bench mllp`: sends realistic ORM^O01 orders over N connections,
//! waits for each ACK, and prints throughput and latency percentiles.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use mllp::{Sender, SenderConfig};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// MLLP load: every message waits for its ACK before the connection sends the next.
    Mllp {
        /// The MLLP listener under test.
        addr: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 16)]
        conns: usize,
        /// Messages in total, spread over the connections.
        #[arg(long, default_value_t = 100_000)]
        msgs: u64,
        /// Sample the resident memory of this process (the server) during the run.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Results out: posts a measurement (with a PDF) for each open appointment of
    /// the device's worklist, then waits until every ORU^R01 was ACKed by the EHR.
    Results {
        /// medrelay's HTTP address, e.g. 127.0.0.1:8080.
        http: String,
        /// A device token (`medrelay device add`).
        #[arg(long)]
        token: String,
        /// Measurements to post (at most the open appointments).
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 8)]
        conns: usize,
        /// Size of the PDF report in KiB.
        #[arg(long, default_value_t = 50)]
        pdf_kib: usize,
    },
    /// GDT intake: writes `files` 6302 requests into an integration's inbound
    /// folder (each under a temporary name, then renamed) and waits until the
    /// server has archived them all.
    Gdt {
        /// The inbound folder of a running `serve` (a local path).
        folder: std::path::PathBuf,
        /// Requests to write.
        #[arg(long, default_value_t = 10_000)]
        files: usize,
        /// Where processed files go; default `<folder>/archive`.
        #[arg(long)]
        archive: Option<std::path::PathBuf>,
    },
    /// HTTP source load: POSTs join-style JSON appointments (one new appointment
    /// each) to `/api/v1/integrations/{integration}/appointments` with a bearer
    /// token from `/oauth/token` and prints requests/s and latency.
    Push {
        /// medrelay's HTTP address, e.g. 127.0.0.1:8080.
        http: String,
        /// A push integration (preset `join`).
        #[arg(long, default_value = "join")]
        integration: String,
        /// An access token (`medrelay client add`, then `POST /oauth/token`).
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 8)]
        conns: usize,
    },
    /// FHIR API load: creates `patients` Patients (POST /fhir/R4/Patient, each
    /// with its own identifier), then times `reads` reads by id and `searches`
    /// identifier searches (`Patient?identifier=system|value`), each spread
    /// over `conns` clients. The token needs system/Patient.* (`medrelay client
    /// add`, then POST /oauth/token).
    Fhir {
        /// medrelay's HTTP address, e.g. 127.0.0.1:8080.
        http: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 100_000)]
        patients: usize,
        #[arg(long, default_value_t = 100_000)]
        reads: usize,
        #[arg(long, default_value_t = 50_000)]
        searches: usize,
        #[arg(long, default_value_t = 8)]
        conns: usize,
    },
    /// A stand-in cloud EHR for results: an HTTP listener that answers 200 to
    /// every POST and prints how many it got. Runs until Ctrl-C.
    HttpSink {
        /// Where to listen, e.g. 127.0.0.1:8099.
        addr: std::net::SocketAddr,
    },
    /// A stand-in EHR: an MLLP listener that answers every message with AA and
    /// prints how many it got. Runs until Ctrl-C.
    Sink {
        /// Where to listen, e.g. 127.0.0.1:6661.
        addr: std::net::SocketAddr,
    },
}

pub async fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Mllp {
            addr,
            conns,
            msgs,
            pid,
        } => mllp_load(addr, conns.max(1), msgs, pid).await,
        BenchCommand::Results {
            http,
            token,
            count,
            conns,
            pdf_kib,
        } => results_load(&http, &token, count, conns.max(1), pdf_kib).await,
        BenchCommand::Gdt {
            folder,
            files,
            archive,
        } => {
            let archive = archive.unwrap_or_else(|| folder.join("archive"));
            gdt_load(&folder, &archive, files).await
        }
        BenchCommand::Sink { addr } => sink(addr).await,
        BenchCommand::Push {
            http,
            integration,
            token,
            count,
            conns,
        } => push_load(&http, &integration, &token, count, conns.max(1)).await,
        BenchCommand::HttpSink { addr } => http_sink(addr).await,
        BenchCommand::Fhir {
            http,
            token,
            patients,
            reads,
            searches,
            conns,
        } => fhir_load(&http, &token, patients, reads, searches, conns.max(1)).await,
    }
}

/// What one phase of [`fhir_load`] does for request `n`: the request, and the
/// status that counts as success.
type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, u64) -> (reqwest::RequestBuilder, u16) + Send + Sync>;

/// Runs `count` requests over `conns` clients; prints and returns the rate.
async fn http_phase(name: &str, count: usize, conns: usize, make: MakeRequest) -> Result<f64> {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, next, failed, make) =
            (client.clone(), next.clone(), failed.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).ok();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count as u64 {
                    break;
                }
                let (request, expected) = make(&client, n);
                let t = Instant::now();
                let outcome = match request.send().await {
                    Ok(r) if r.status().as_u16() == expected => {
                        r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(why) = outcome
                    && failed.fetch_add(1, Ordering::Relaxed) == 0
                {
                    eprintln!("first failure: request {n}: {why}");
                }
                if let Some(h) = hist.as_mut() {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                }
            }
            hist
        }));
    }
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        if let Some(h) = t.await? {
            latency.add(&h)?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = count as f64 / secs;
    println!(
        "{name}: {count} in {secs:.2}s = {rate:.0}/s; p50 {:.2} ms, p99 {:.2} ms; failed: {}",
        percentile_ms(&latency, 0.5),
        percentile_ms(&latency, 0.99),
        failed.load(Ordering::Relaxed)
    );
    Ok(rate)
}

async fn fhir_load(
    http: &str,
    token: &str,
    patients: usize,
    reads: usize,
    searches: usize,
    conns: usize,
) -> Result<ExitCode> {
    let base = format!("http://{http}/fhir/R4");
    let run = format!("{:x}", chrono::Utc::now().timestamp_millis() % 0xffff_ffff);
    let system = format!("urn:medrelay:bench:{run}");
    let auth = format!("Bearer {token}");
    println!("medrelay bench fhir: {patients} patients, {conns} clients");
    let (b, a, sys) = (base.clone(), auth.clone(), system.clone());
    http_phase(
        "create Patient",
        patients,
        conns,
        Arc::new(move |c: &reqwest::Client, n| {
            let body = serde_json::json!({
                "resourceType": "Patient",
                "identifier": [{"system": sys, "value": format!("B{n}")}],
                "name": [{"family": format!("Bench{}", n % 997), "given": ["Load"]}],
                "gender": if n % 2 == 0 { "female" } else { "male" },
                "birthDate": format!("{}-{:02}-{:02}", 1930 + n % 80, 1 + n % 12, 1 + n % 28),
            });
            (
                c.post(format!("{b}/Patient"))
                    .header("Authorization", &a)
                    .header("Content-Type", "application/fhir+json")
                    .header("Prefer", "return=minimal")
                    .body(body.to_string()),
                201,
            )
        }),
    )
    .await?;
    // Ids are the store's row ids, assigned in commit order: the bench's
    // patients are the newest `patients` ids (nothing else was created
    // meanwhile), wherever each one landed.
    let newest: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/Patient?_sort=-_id&_count=1"))
        .header("Authorization", &auth)
        .send()
        .await?
        .json()
        .await?;
    let last_id: u64 = newest["entry"][0]["resource"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no patient found after loading: {newest}"))?;
    let first_id = last_id.saturating_sub(patients.max(1) as u64 - 1);
    let (b, a) = (base.clone(), auth.clone());
    let span = patients.max(1) as u64;
    let reads_rate = http_phase(
        "read Patient/{id}",
        reads,
        conns,
        Arc::new(move |c: &reqwest::Client, n| {
            let id = first_id + (n.wrapping_mul(7919) % span);
            (
                c.get(format!("{b}/Patient/{id}"))
                    .header("Authorization", &a),
                200,
            )
        }),
    )
    .await?;
    let (b, a, sys) = (base.clone(), auth.clone(), system.clone());
    let search_rate = http_phase(
        "search Patient?identifier=",
        searches,
        conns,
        Arc::new(move |c: &reqwest::Client, n| {
            let v = n.wrapping_mul(104_729) % span;
            (
                c.get(format!("{b}/Patient?identifier={sys}|B{v}"))
                    .header("Authorization", &a),
                200,
            )
        }),
    )
    .await?;
    // Name searches scan every patient's folded names (no index: see the
    // store's migration 0008); a tenth as many, each a different prefix.
    let (b, a) = (base.clone(), auth.clone());
    let name_rate = http_phase(
        "search Patient?family= (prefix, any case and accents)",
        (searches / 10).max(1),
        conns,
        Arc::new(move |c: &reqwest::Client, n| {
            (
                c.get(format!("{b}/Patient?family=BENCH{}&_count=10", n % 997))
                    .header("Authorization", &a),
                200,
            )
        }),
    )
    .await?;
    println!(
        "reads: {reads_rate:.0}/s (target >= 10,000); identifier searches: {search_rate:.0}/s (target >= 3,000); name searches: {name_rate:.0}/s"
    );
    Ok(ExitCode::SUCCESS)
}

async fn mllp_load(addr: String, conns: usize, msgs: u64, pid: Option<u32>) -> Result<ExitCode> {
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis() % 0xffff_ffff);
    let negative = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    // One sequence across connections, as an EHR numbers its messages and orders:
    // control ids and order numbers increase, so the store appends to its indexes.
    let seq = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let rss_before = pid.and_then(rss_kib);
    let sampler = pid.map(|pid| {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    });

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns as u64 {
        let share = msgs / conns as u64 + u64::from(c < msgs % conns as u64);
        let (addr, run_id, negative, errors, seq) = (
            addr.clone(),
            run_id.clone(),
            negative.clone(),
            errors.clone(),
            seq.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).ok();
            let mut sender = Sender::new(SenderConfig {
                addr,
                tls: None,
                connect_timeout: Duration::from_secs(10),
                ack_timeout: Duration::from_secs(30),
                max_frame: 1024 * 1024,
            });
            for _ in 0..share {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let msg = orm_o01(&format!("{run_id}-{n:010}"), n);
                let t = Instant::now();
                match sender.send(&msg).await {
                    Ok(ack) => {
                        if !ack.windows(7).any(|w| w == b"MSA|AA|") {
                            negative.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(h) = hist.as_mut() {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                }
            }
            sender.close().await;
            hist
        }));
    }
    let mut total = Histogram::<u64>::new(3)?;
    for t in tasks {
        if let Ok(Some(h)) = t.await {
            total.add(&h)?;
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = match sampler {
        Some(s) => s.await.ok(),
        None => None,
    };

    let sent = total.len();
    println!(
        "medrelay bench mllp: {sent} messages over {conns} connections in {:.2}s",
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.0} messages/s",
        sent as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        total.value_at_quantile(0.50) as f64 / 1000.0,
        total.value_at_quantile(0.90) as f64 / 1000.0,
        total.value_at_quantile(0.99) as f64 / 1000.0,
        total.max() as f64 / 1000.0
    );
    let (neg, err) = (
        negative.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    println!("not AA: {neg}, transport errors: {err}");
    if let (Some(before), Some(peak)) = (rss_before, peak) {
        println!(
            "server resident memory: {:.1} MB before, {:.1} MB peak during the load",
            before as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    Ok(if neg == 0 && err == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Resident set size in KiB from /proc (Linux only).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A realistic ~1 KB radiology order.
pub fn orm_o01(control_id: &str, n: u64) -> Vec<u8> {
    format!(
        "MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIOLOGY|20250315120000||ORM^O01^ORM_O01|{control_id}|P|2.5|||AL|NE||8859/1\r\
PID|1||{mrn}^^^HIS^MR~{ssn}^^^SSA^SS||GARCIA^PEDRO^MARIA^JR^DR||19751022|M||2106-3^White^HL70005|C/ MAYOR 1^PISO 2^MADRID^MD^28001^ES^H||+34911234567^PRN^PH^^^^^^^^^pedro.garcia@example.org|+34917654321^WPN^PH||M||ACC{n}|||N\r\
PV1|1|O|CARDIO^101^A^HOSPITAL_A||||12345^LOPEZ^ANA^^^DR|67890^RUIZ^JUAN^^^DR||CAR||||1|||12345^LOPEZ^ANA^^^DR|OP|VN{n}^^^HIS^VN|||||||||||||||||||||||||20250315114500\r\
ORC|NW|P{control_id}|F{control_id}|GRP{n}|SC||1^^^20250315120000^^R||20250315120000|7777^CLERK^ANNA||12345^LOPEZ^ANA^^^DR|CARDIO^101|+34911112222|20250315120000||HOSPITAL_A\r\
OBR|1|P{control_id}|F{control_id}|ECG12^12-lead ECG^L|R|20250315120000|20250315120000||||||||ECG&Electrocardiogram|12345^LOPEZ^ANA^^^DR|+34911112222|||||||CARDIO|SC||1^^^20250315120000^^R|||||||||20250315120000||||||||ECG12^12-lead ECG^L\r\
NTE|1||Patient has a pacemaker; please note on the report.\r",
        mrn = 1_000_000 + n,
        ssn = 500_000_000 + n,
    )
    .into_bytes()
}

fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn results_load(
    http: &str,
    token: &str,
    count: usize,
    conns: usize,
    pdf_kib: usize,
) -> Result<ExitCode> {
    use base64::Engine as _;
    let base = format!("http://{http}");
    let client = reqwest::Client::new();
    let worklist: serde_json::Value = client
        .get(format!(
            "{base}/api/v1/worklist?limit={}",
            count.clamp(1, 5000)
        ))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ids: Vec<String> = worklist["appointments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_string))
                .take(count)
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(
        !ids.is_empty(),
        "the device's worklist is empty: send orders first (medrelay bench mllp)"
    );
    let pdf = padded_pdf(pdf_kib * 1024);
    let pdf_b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let queue = Arc::new(std::sync::Mutex::new(ids.clone()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, base, token, queue, pdf_b64) = (
            client.clone(),
            base.clone(),
            token.to_string(),
            queue.clone(),
            pdf_b64.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).ok();
            let mut posted = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(id) = next else { break };
                let body = serde_json::json!({
                    "appointment_id": id, "type": "ECG", "performed_at": "2025-03-15T12:40:00Z",
                    "observations": [{"code": "8867-4", "system": "LN", "display": "Heart rate", "value": 72, "unit": "/min"}],
                    "report_pdf": pdf_b64,
                });
                let t = Instant::now();
                let resp = client
                    .post(format!("{base}/api/v1/measurements"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                if let Some(h) = hist.as_mut() {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                }
                if let Ok(r) = resp
                    && r.status().as_u16() == 201
                    && let Ok(v) = r.json::<serde_json::Value>().await
                    && let Some(mid) = v["id"].as_str()
                {
                    posted.push(mid.to_string());
                }
            }
            (hist, posted)
        }));
    }
    let mut latency = Histogram::<u64>::new(3)?;
    let mut posted = Vec::new();
    for t in tasks {
        let (h, p) = t.await?;
        if let Some(h) = h {
            latency.add(&h)?;
        }
        posted.extend(p);
    }
    let post_secs = started.elapsed().as_secs_f64();
    // The results queue delivers in order, so once every measurement reports
    // "sent" the EHR has ACKed them all; poll until then.
    let mut pending = posted.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for mid in pending {
            let v: serde_json::Value = client
                .get(format!("{base}/api/v1/measurements/{mid}"))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if v["status"] != "sent" {
                still.push(mid);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let total_secs = started.elapsed().as_secs_f64();
    println!(
        "medrelay bench results: {} measurements with a {} KiB PDF over {conns} clients",
        posted.len(),
        pdf_kib
    );
    println!(
        "posted (201, committed with their queued result message): {:.0}/s; POST latency p50 {:.2} ms, p99 {:.2} ms",
        posted.len() as f64 / post_secs,
        percentile_ms(&latency, 0.5),
        percentile_ms(&latency, 0.99)
    );
    println!(
        "end to end (POST → result taken by the EHR: ORU^R01 ACKed, JSON or file delivered): {:.0}/s, all done after {:.2}s; not delivered: {}",
        posted.len() as f64 / total_secs,
        total_secs,
        pending.len()
    );
    Ok(if pending.is_empty() && posted.len() == ids.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A valid one-page PDF padded with a comment to about `size` bytes.
fn padded_pdf(size: usize) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n".to_vec();
    while pdf.len() + 80 < size {
        pdf.extend_from_slice(
            b"% padding padding padding padding padding padding padding padding padding\n",
        );
    }
    pdf.extend_from_slice(b"trailer\n<< /Root 1 0 R >>\n%%EOF\n");
    pdf
}

struct AcceptAll {
    count: AtomicU64,
}

impl mllp::Handler for AcceptAll {
    async fn on_frame(&self, _peer: &mllp::Peer, payload: bytes::Bytes) -> Option<bytes::Bytes> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let ack = match hl7v2::Message::parse(&payload) {
            Ok(m) => hl7v2::ack::AckBuilder::for_message(&m),
            Err(_) => hl7v2::ack::AckBuilder::for_raw(&payload),
        };
        Some(ack.timestamp("20250101000000").build().into())
    }

    async fn on_oversized(
        &self,
        _: &mllp::Peer,
        _: bytes::Bytes,
        _: usize,
        _: usize,
    ) -> Option<bytes::Bytes> {
        None
    }
}

async fn sink(addr: std::net::SocketAddr) -> Result<ExitCode> {
    let listener = mllp::Listener::bind(mllp::ListenerConfig::new(addr)).await?;
    println!("bench sink: answering AA on {}", listener.local_addr());
    let handler = Arc::new(AcceptAll {
        count: AtomicU64::new(0),
    });
    let shutdown = mllp::CancellationToken::new();
    let server =
        tokio::spawn(listener.run(handler.clone(), shutdown.clone(), Duration::from_secs(1)));
    let mut last = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let n = handler.count.load(Ordering::Relaxed);
                if n != last {
                    println!("received {n}");
                    last = n;
                }
            }
        }
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(ExitCode::SUCCESS)
}

/// A 6302 request as a practice system writes it, one patient and order per `n`.
pub fn gdt_request(run: &str, n: usize) -> Result<Vec<u8>> {
    let mut r = gdt::Record::new(gdt::RecordType::ExaminationRequest);
    let patient = format!("{}", 100_000 + n);
    let reference = format!("{run}-{n:07}");
    let insurance = format!("A{:09}", n);
    for (id, v) in [
        (8315, "MEDR"),
        (8316, "PRAXIS"),
        (9206, "2"),
        (9218, "02.10"),
        (3000, patient.as_str()),
        (3101, "Müller"),
        (3102, "Jürgen"),
        (3103, "24061965"),
        (3105, insurance.as_str()),
        (3106, "50667 Köln"),
        (3107, "Hauptstraße 5"),
        (3110, "1"),
        (3112, "50667"),
        (3113, "Köln"),
        (3633, "juergen@example.org"),
        (8402, "EKG01"),
        (2998, "RUHE-EKG"),
        (2999, reference.as_str()),
    ] {
        let id = gdt::FieldId::new(id).ok_or_else(|| anyhow::anyhow!("field id {id}"))?;
        r.push(id, v);
    }
    Ok(r.to_bytes()?)
}

async fn gdt_load(
    folder: &std::path::Path,
    archive: &std::path::Path,
    files: usize,
) -> Result<ExitCode> {
    use anyhow::Context;
    let count = |dir: &std::path::Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let before = count(archive);
    let run = format!("{:x}", chrono::Utc::now().timestamp_millis() % 0xffff_ffff);
    // Prepared first: the load is the server's, not the generator's.
    let requests: Vec<Vec<u8>> = (0..files)
        .map(|n| gdt_request(&run, n))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    for (n, bytes) in requests.iter().enumerate() {
        let name = format!("bench-{run}-{n:07}.gdt");
        let tmp = folder.join(format!(".{name}.part"));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, folder.join(&name))?;
    }
    let written = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while count(archive) < before + files {
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {files} files archived after 10 minutes",
                count(archive) - before
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "medrelay bench gdt: {files} files written in {:.2}s, all archived after {:.2}s",
        written.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.0} files/s",
        files as f64 / elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

async fn push_load(
    http: &str,
    integration: &str,
    token: &str,
    count: usize,
    conns: usize,
) -> Result<ExitCode> {
    let url = format!("http://{http}/api/v1/integrations/{integration}/appointments");
    let run = format!("{:x}", chrono::Utc::now().timestamp_millis() % 0xffff_ffff);
    let auth = format!("Bearer {token}");
    println!(
        "medrelay bench push: {count} requests over {conns} clients (each stored raw, mapped and committed before its 201)"
    );
    http_phase(
        "push appointments",
        count,
        conns,
        Arc::new(move |c: &reqwest::Client, n| {
            let body = serde_json::json!({"appointments": [{
                "appointmentId": format!("BENCH-{run}-{n}"),
                "status": "scheduled",
                "scheduledAt": "2025-03-15T10:15:00+01:00",
                "visitId": format!("VIS-{n}"),
                "tabletGroup": "default",
                "measurement": {"code": "ABI", "name": "Ankle-brachial index"},
                "patient": {"patientId": format!("P-{run}-{n}"), "firstName": "Ana",
                            "lastName": "Kovač", "dateOfBirth": "1958-11-03", "gender": "female"}
            }]});
            (c.post(&url).header("Authorization", &auth).json(&body), 201)
        }),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn http_sink(addr: std::net::SocketAddr) -> Result<ExitCode> {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().fallback(move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::Relaxed);
            "{\"status\": \"ok\"}"
        }
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "bench http-sink: answering 200 on {}",
        listener.local_addr()?
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut last = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let n = count.load(Ordering::Relaxed);
                if n != last {
                    println!("received {n}");
                    last = n;
                }
            }
        }
    }
    server.abort();
    Ok(ExitCode::SUCCESS)
}
