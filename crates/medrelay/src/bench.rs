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
}

pub async fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Mllp {
            addr,
            conns,
            msgs,
            pid,
        } => mllp_load(addr, conns.max(1), msgs, pid).await,
    }
}

async fn mllp_load(addr: String, conns: usize, msgs: u64, pid: Option<u32>) -> Result<ExitCode> {
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis() % 0xffff_ffff);
    let negative = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
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
        let (addr, run_id, negative, errors) = (
            addr.clone(),
            run_id.clone(),
            negative.clone(),
            errors.clone(),
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
            for i in 0..share {
                let msg = orm_o01(&format!("{run_id}-{c}-{i}"), i);
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
ORC|NW|ORD{n}|FIL{n}|GRP{n}|SC||1^^^20250315120000^^R||20250315120000|7777^CLERK^ANNA|||12345^LOPEZ^ANA^^^DR|CARDIO^101|+34911112222|20250315120000||HOSPITAL_A\r\
OBR|1|ORD{n}|FIL{n}|ECG12^12-lead ECG^L|R|20250315120000|20250315120000||||||||ECG&Electrocardiogram|12345^LOPEZ^ANA^^^DR|+34911112222|||||||CARDIO|SC||1^^^20250315120000^^R|||||||||20250315120000||||||||ECG12^12-lead ECG^L\r\
NTE|1||Patient has a pacemaker; please note on the report.\r",
        mrn = 1_000_000 + n,
        ssn = 500_000_000 + n,
    )
    .into_bytes()
}
