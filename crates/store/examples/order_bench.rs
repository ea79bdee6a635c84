//! Writer cost of the order path: `record_inbound` of ORM^O01 orders with the
//! worklist actions the `nextgen` preset maps them to (one `CreateAppointment`
//! each), the way the MLLP listener drives it (many tasks, each waiting for its
//! commit). Runs one round of bare messages (no worklist) and then `ROUNDS`
//! rounds of orders on the same database (round 1 creates the patients, later
//! rounds find them again, like a server that keeps receiving), and reports
//! messages/s and the writer thread's CPU time per message (Linux only).
//!
//! ```text
//! cargo run --release -p medrelay-store --example order_bench -- [MESSAGES] [TASKS] [ROUNDS]
//! ```
//! Defaults: 50000 messages per round, 16 tasks, 3 rounds, a temporary directory.
//! `WRITER_CACHE_KIB=N` sets `SqliteOptions::writer_cache_kib`.

use std::time::Instant;

use medrelay_store::{InboundRecord, MessageStatus, SqliteOptions, Store};
use medrelay_worklist::WorklistAction;
use medrelay_worklist::mapping::{MapContext, map_message};

/// The ORM^O01 of `medrelay bench mllp`.
fn orm_o01(control_id: &str, n: u64) -> Vec<u8> {
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

/// CPU time (user + system, clock ticks) of the store's writer thread.
fn writer_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut ticks = 0;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        // Thread names are cut to 15 bytes: "medrelay-store-" is the writer and
        // the checkpointer; the latter is tiny, but count it too.
        if !comm.starts_with("medrelay-store-") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let after_comm = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime); index 11/12 after the comm.
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    ticks
}

async fn round(
    store: &Store,
    label: &str,
    messages: u64,
    tasks: u64,
    orders: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mapping = medrelay_worklist::presets::load("nextgen")?.mapping;
    let ctx = std::sync::Arc::new(MapContext {
        integration: "cardiology-nextgen".into(),
        group: "cardiology".into(),
        org: "default".into(),
    });
    let mapping = std::sync::Arc::new(mapping);
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let ticks_before = writer_ticks();
    let metrics_before = store.metrics_snapshot();
    let started = Instant::now();
    let mut handles = Vec::new();
    // One sequence across tasks, as an EHR numbers its messages and orders.
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for t in 0..tasks {
        let seq = seq.clone();
        let store = store.clone();
        let mapping = mapping.clone();
        let ctx = ctx.clone();
        let per_task = messages / tasks + u64::from(t < messages % tasks);
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let i = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let control_id = format!("{run_id}-{i:010}");
                let raw = orm_o01(&control_id, i);
                let worklist: Vec<WorklistAction> = if orders {
                    let msg =
                        hl7v2::message::Message::parse(&raw).map_err(|e| format!("parse: {e}"))?;
                    map_message(&msg, &mapping, &ctx).map_err(|e| format!("map: {e}"))?
                } else {
                    Vec::new()
                };
                let rec = InboundRecord {
                    channel: if orders { "cardiology-nextgen" } else { "bare" }.into(),
                    received_at: i64::try_from(i).unwrap_or(i64::MAX),
                    peer: Some(format!("10.0.0.{t}:5000")),
                    control_id: Some(control_id.clone()),
                    message_type: Some("ORM^O01".into()),
                    sending_application: Some("HIS".into()),
                    sending_facility: Some("HOSPITAL_A".into()),
                    status: MessageStatus::Accepted,
                    ack: Some(
                        format!(
                            "MSH|^~\\&|MEDRELAY|CARDIOLOGY|HIS|HOSPITAL_A||ACK|MSA|AA|{control_id}"
                        )
                        .into_bytes(),
                    ),
                    dedup_window: Some(3_600_000),
                    raw,
                    worklist,
                    ..InboundRecord::default()
                };
                store.record_inbound(rec).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for h in handles {
        h.await?.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    let ticks = writer_ticks() - ticks_before;
    let m = store.metrics_snapshot();
    let batches = m.batches - metrics_before.batches;
    let ops = m.ops - metrics_before.ops;
    // Clock ticks are 10 ms on Linux (USER_HZ = 100).
    let us_per_msg = ticks as f64 * 10_000.0 / messages as f64;
    println!(
        "{label}: {messages} msgs in {:.2} s: {:.0} msgs/s, writer {us_per_msg:.0} µs CPU/msg, {:.1} ops/commit",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64(),
        ops as f64 / batches.max(1) as f64,
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let tasks: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let rounds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let tmp = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut opts = SqliteOptions::default();
        if let Ok(kib) = std::env::var("WRITER_CACHE_KIB") {
            opts.writer_cache_kib = kib.parse()?;
        }
        println!("writer cache {} KiB", opts.writer_cache_kib);
        let store = Store::open_sqlite(&tmp.path().join("bench.db"), opts)?;
        round(&store, "bare", messages, tasks, false).await?;
        for r in 1..=rounds {
            round(&store, &format!("orders {r}"), messages, tasks, true).await?;
        }
        store.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
