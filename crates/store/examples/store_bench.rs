//! Throughput of `record_inbound` under concurrent load, the way the MLLP
//! listener drives it: many connections, each waiting for its commit before
//! sending the next message.
//!
//! ```text
//! cargo run --release -p medrelay-store --example store_bench -- [MESSAGES] [TASKS] [DIR]
//! ```
//! Defaults: 100000 messages of 1 KiB (each with one queued delivery), 16 tasks,
//! a temporary directory. `COMMIT_DELAY_US=N` sets `SqliteOptions::commit_delay`.

use std::time::Instant;

use medrelay_store::{InboundRecord, MessageStatus, NewDelivery, SqliteOptions, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let tasks: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().into());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut opts = SqliteOptions::default();
        if let Ok(us) = std::env::var("COMMIT_DELAY_US") {
            opts.commit_delay = std::time::Duration::from_micros(us.parse()?);
        }
        println!("commit_delay {:?}", opts.commit_delay);
        let store = Store::open_sqlite(&dir.join("bench.db"), opts)?;
        let body = vec![b'x'; 1024 - 80];
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            let body = body.clone();
            let per_task = messages / tasks + u64::from(t < messages % tasks);
            handles.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let control_id = format!("T{t}-{i}");
                    let mut raw = format!(
                        "MSH|^~\\&|HIS|WARD{t}|PACS|RAD|20240101120000||ORM^O01|{control_id}|P|2.5\r"
                    )
                    .into_bytes();
                    raw.extend_from_slice(&body);
                    let at = i64::try_from(i).unwrap_or(i64::MAX);
                    let rec = InboundRecord {
                        channel: "bench".into(),
                        received_at: at,
                        peer: Some(format!("10.0.0.{t}:5000")),
                        control_id: Some(control_id.clone()),
                        message_type: Some("ORM^O01".into()),
                        sending_application: Some("HIS".into()),
                        sending_facility: Some(format!("WARD{t}")),
                        status: MessageStatus::Accepted,
                        ack: Some(format!("MSH|^~\\&|PACS|RAD|HIS|WARD{t}||ACK|MSA|AA|{control_id}").into_bytes()),
                        deliveries: vec![NewDelivery {
                            destination: "bench/pacs".into(),
                            payload: raw.clone(),
                            not_before: at,
                        }],
                        dedup_window: Some(3_600_000),
                        raw,
                        ..InboundRecord::default()
                    };
                    store.record_inbound(rec).await?;
                }
                Ok::<_, medrelay_store::StoreError>(())
            }));
        }
        for h in handles {
            h.await??;
        }
        let elapsed = started.elapsed();
        let m = store.metrics_snapshot();
        store.close().await?;
        println!(
            "{messages} messages (1 KiB + 1 delivery each) from {tasks} tasks in {:.2} s: {:.0} messages/s",
            elapsed.as_secs_f64(),
            messages as f64 / elapsed.as_secs_f64()
        );
        println!(
            "{} commits, {:.1} ops per commit on average, largest {}",
            m.batches,
            m.ops_per_batch(),
            m.max_batch
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
