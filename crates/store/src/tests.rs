//! Tests against real SQLite files in temporary directories.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::task::{Context, Poll, Waker};

use tempfile::TempDir;

use crate::*;

pub(crate) fn temp() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub(crate) fn open(dir: &TempDir) -> Store {
    Store::open_sqlite(
        &dir.path().join("data/medrelay.db"),
        SqliteOptions::default(),
    )
    .expect("open store")
}

fn rec(channel: &str, control_id: &str, at: Millis) -> InboundRecord {
    InboundRecord {
        channel: channel.into(),
        received_at: at,
        peer: Some("10.0.0.5:51234".into()),
        control_id: Some(control_id.into()),
        message_type: Some("ORM^O01".into()),
        sending_application: Some("HIS".into()),
        sending_facility: Some("WARD1".into()),
        status: MessageStatus::Accepted,
        raw: format!("MSH|^~\\&|HIS|WARD1|||{at}||ORM^O01|{control_id}|P|2.5\r").into_bytes(),
        ack: Some(format!("MSA|AA|{control_id}").into_bytes()),
        ..InboundRecord::default()
    }
}

fn delivery(destination: &str, payload: &[u8], not_before: Millis) -> NewDelivery {
    NewDelivery {
        destination: destination.into(),
        payload: payload.to_vec(),
        not_before,
    }
}

fn stored(outcome: InboundOutcome) -> (i64, Vec<i64>) {
    match outcome {
        InboundOutcome::Stored {
            message_id,
            delivery_ids,
            ..
        } => (message_id, delivery_ids),
        other => panic!("expected Stored, got {other:?}"),
    }
}

/// Polls a future once so that its write op is on the writer's queue before the
/// test goes on; the future is awaited later as usual.
pub(crate) fn started<F: Future>(fut: F) -> Pin<Box<F>> {
    let mut fut = Box::pin(fut);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
    fut
}

pub(crate) fn sqlite(store: &Store) -> &crate::sqlite::SqliteBackend {
    match &*store.backend {
        Backend::Sqlite(b) => b,
    }
}

#[test]
fn names_round_trip() {
    for s in MessageStatus::ALL {
        assert_eq!(s.as_str().parse::<MessageStatus>(), Ok(s));
    }
    for s in DeliveryState::ALL {
        assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(s));
    }
    assert_eq!(DeliveryState::Retrying.as_str(), "retrying");
    assert!("Accepted".parse::<MessageStatus>().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_and_get_round_trips_every_field() {
    let dir = temp();
    let store = open(&dir);
    let raw: Vec<u8> = vec![
        0x0b, b'M', b'S', b'H', 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x1c, 0x0d,
    ];
    let input = InboundRecord {
        org: "clinic-a".into(),
        channel: "adt-in".into(),
        received_at: 1_700_000_000_123,
        peer: Some("10.0.0.5:51234".into()),
        control_id: Some("MSG0001".into()),
        message_type: Some("ADT^A01".into()),
        sending_application: Some("HIS".into()),
        sending_facility: Some("WARD1".into()),
        status: MessageStatus::Rejected,
        raw: raw.clone(),
        ack: Some(vec![0x0b, 0x80, 0x81]),
        error: Some("PID-3 missing".into()),
        dedup_window: Some(60_000),
        deliveries: vec![delivery("adt-in/pacs", &[0xde, 0xad], 5)],
        ..InboundRecord::default()
    };
    let (id, dids) = stored(store.record_inbound(input).await.unwrap());
    assert_eq!(dids.len(), 1);

    let m = store.get_message("clinic-a", id).await.unwrap().unwrap();
    assert_eq!(
        m,
        StoredMessage {
            id,
            org: "clinic-a".into(),
            channel: "adt-in".into(),
            direction: Direction::In,
            received_at: 1_700_000_000_123,
            peer: Some("10.0.0.5:51234".into()),
            control_id: Some("MSG0001".into()),
            message_type: Some("ADT^A01".into()),
            sending_application: Some("HIS".into()),
            sending_facility: Some("WARD1".into()),
            status: MessageStatus::Rejected,
            raw,
            ack: Some(vec![0x0b, 0x80, 0x81]),
            error: Some("PID-3 missing".into()),
        }
    );

    let ds = store.deliveries_for_message(id).await.unwrap();
    assert_eq!(
        ds,
        vec![Delivery {
            id: dids[0],
            message_id: id,
            org: "clinic-a".into(),
            destination: "adt-in/pacs".into(),
            payload: vec![0xde, 0xad],
            state: DeliveryState::Queued,
            attempts: 0,
            next_attempt_at: 5,
            created_at: 1_700_000_000_123,
            updated_at: 1_700_000_000_123,
            last_error: None,
            response: None,
        }]
    );

    // Minimal record: every optional field empty.
    let (id2, _) = stored(
        store
            .record_inbound(InboundRecord {
                channel: "x".into(),
                ..InboundRecord::default()
            })
            .await
            .unwrap(),
    );
    let m2 = store.get_message(DEFAULT_ORG, id2).await.unwrap().unwrap();
    assert_eq!(m2.status, MessageStatus::Received);
    assert_eq!(
        (m2.peer, m2.ack, m2.error, m2.raw),
        (None, None, None, vec![])
    );
    assert_eq!(
        store.get_message(DEFAULT_ORG, 9_999_999).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payload_round_trips() {
    let dir = temp();
    let store = open(&dir);
    let pdf: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut r = rec("results", "R1", 10);
    r.raw = pdf.clone();
    r.deliveries = vec![delivery("results/ehr", &pdf, 10)];
    let (id, _) = stored(store.record_inbound(r).await.unwrap());
    assert_eq!(
        store
            .get_message(DEFAULT_ORG, id)
            .await
            .unwrap()
            .unwrap()
            .raw,
        pdf
    );
    let pending = store.pending_deliveries("results/ehr", 10).await.unwrap();
    assert_eq!(pending[0].payload, pdf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_ack_and_set_status() {
    let dir = temp();
    let store = open(&dir);
    let mut r = rec("c", "A", 1);
    r.ack = None;
    r.status = MessageStatus::Received;
    let (id, _) = stored(store.record_inbound(r).await.unwrap());
    store
        .set_ack(
            id,
            MessageStatus::Accepted,
            Some(b"MSA|AA|A".to_vec()),
            None,
        )
        .await
        .unwrap();
    let m = store.get_message(DEFAULT_ORG, id).await.unwrap().unwrap();
    assert_eq!(
        (m.status, m.ack.as_deref()),
        (MessageStatus::Accepted, Some(&b"MSA|AA|A"[..]))
    );
    store
        .set_status(id, MessageStatus::Errored, Some("mapping failed".into()))
        .await
        .unwrap();
    let m = store.get_message(DEFAULT_ORG, id).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Errored);
    assert_eq!(m.error.as_deref(), Some("mapping failed"));
    assert_eq!(
        m.ack.as_deref(),
        Some(&b"MSA|AA|A"[..]),
        "set_status keeps the ack"
    );
    assert!(matches!(
        store
            .set_status(id + 100, MessageStatus::Processed, None)
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_inside_the_window_are_recognised() {
    let dir = temp();
    let store = open(&dir);
    let window = 60_000;
    let mut first = rec("adt", "M1", 1_000_000);
    first.dedup_window = Some(window);
    let (id, _) = stored(store.record_inbound(first.clone()).await.unwrap());

    // Same key within the window, different bytes and ack: the original ack comes back.
    let mut again = first.clone();
    again.received_at += window - 1;
    again.ack = Some(b"MSA|AA|other".to_vec());
    assert_eq!(
        store.record_inbound(again).await.unwrap(),
        InboundOutcome::Duplicate {
            original_id: id,
            original_ack: first.ack.clone(),
        }
    );
    assert_eq!(
        store
            .count_messages(DEFAULT_ORG, Some("adt"))
            .await
            .unwrap(),
        1
    );

    // Exactly on the window edge still counts as a duplicate.
    let mut edge = first.clone();
    edge.received_at += window;
    assert!(matches!(
        store.record_inbound(edge).await.unwrap(),
        InboundOutcome::Duplicate { .. }
    ));

    // Outside the window: a new message.
    let mut late = first.clone();
    late.received_at += window + 1;
    stored(store.record_inbound(late).await.unwrap());

    // Different facility, channel, org or no dedup requested: stored.
    let mut other_fac = first.clone();
    other_fac.sending_facility = Some("WARD2".into());
    stored(store.record_inbound(other_fac).await.unwrap());
    let mut other_chan = first.clone();
    other_chan.channel = "adt2".into();
    stored(store.record_inbound(other_chan).await.unwrap());
    let mut other_org = first.clone();
    other_org.org = "clinic-b".into();
    stored(store.record_inbound(other_org).await.unwrap());
    let mut no_dedup = first.clone();
    no_dedup.dedup_window = None;
    stored(store.record_inbound(no_dedup).await.unwrap());

    assert_eq!(
        store
            .count_messages(DEFAULT_ORG, Some("adt"))
            .await
            .unwrap(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_edge_cases() {
    let dir = temp();
    let store = open(&dir);
    // Missing MSH-3/MSH-4 match each other.
    let mut a = rec("c", "X", 100);
    a.sending_application = None;
    a.sending_facility = None;
    a.dedup_window = Some(1000);
    stored(store.record_inbound(a.clone()).await.unwrap());
    assert!(matches!(
        store.record_inbound(a.clone()).await.unwrap(),
        InboundOutcome::Duplicate { .. }
    ));
    // A stored message whose ACK is not known yet does not make later ones duplicates.
    let mut pending_ack = rec("c", "Y", 100);
    pending_ack.ack = None;
    pending_ack.dedup_window = Some(1000);
    stored(store.record_inbound(pending_ack.clone()).await.unwrap());
    stored(store.record_inbound(pending_ack).await.unwrap());
    // Without a control id there is nothing to recognise.
    let mut anon = rec("c", "", 100);
    anon.control_id = None;
    anon.dedup_window = Some(1000);
    stored(store.record_inbound(anon.clone()).await.unwrap());
    stored(store.record_inbound(anon).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_inside_one_batch_store_once() {
    let dir = temp();
    let store = open(&dir);
    let mut r = rec("adt", "SAME", 5_000);
    r.dedup_window = Some(10_000);
    r.deliveries = vec![delivery("adt/pacs", b"p", 5_000)];

    let release = sqlite(&store).pause_writer().await;
    let before = store.metrics_snapshot().batches;
    let first = started(store.record_inbound(r.clone()));
    let second = started(store.record_inbound(r.clone()));
    drop(release);
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(
        store.metrics_snapshot().batches - before,
        2,
        "the pause op's batch, then one batch with both records"
    );

    let (id, _) = stored(a);
    assert_eq!(
        b,
        InboundOutcome::Duplicate {
            original_id: id,
            original_ack: r.ack.clone(),
        }
    );
    assert_eq!(store.count_messages(DEFAULT_ORG, None).await.unwrap(), 1);
    assert_eq!(store.queue_depth("adt/pacs").await.unwrap().pending, 1);

    // And unforced: concurrent identical records from separate tasks.
    let mut r2 = r.clone();
    r2.control_id = Some("SAME2".into());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let r2 = r2.clone();
            tokio::spawn(async move { store.record_inbound(r2).await })
        })
        .collect();
    let mut stored_count = 0;
    for t in tasks {
        if let InboundOutcome::Stored { .. } = t.await.unwrap().unwrap() {
            stored_count += 1;
        }
    }
    assert_eq!(stored_count, 1);
    assert_eq!(store.count_messages(DEFAULT_ORG, None).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_op_does_not_fail_its_batch() {
    let dir = temp();
    let store = open(&dir);
    let release = sqlite(&store).pause_writer().await;
    let before = store.metrics_snapshot();
    let a = started(store.record_inbound(rec("c", "A", 1)));
    let missing = started(store.set_ack(424_242, MessageStatus::Accepted, None, None));
    let bad_delivery = started(store.delivery_sent(777_777, 1, None));
    let b = started(store.record_inbound(rec("c", "B", 2)));
    drop(release);

    let (ida, _) = stored(a.await.unwrap());
    assert!(matches!(missing.await, Err(StoreError::NotFound)));
    assert!(matches!(bad_delivery.await, Err(StoreError::NotFound)));
    let (idb, _) = stored(b.await.unwrap());
    let after = store.metrics_snapshot();
    assert_eq!(
        after.batches - before.batches,
        2,
        "pause batch + one batch of four"
    );
    assert_eq!(after.max_batch, 4);
    assert!(store.get_message(DEFAULT_ORG, ida).await.unwrap().is_some());
    assert!(store.get_message(DEFAULT_ORG, idb).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_op_failing_after_a_write_rolls_back_its_whole_batch() {
    let dir = temp();
    let store = open(&dir);
    let backend = sqlite(&store);
    let release = backend.pause_writer().await;
    let before = started(store.record_inbound(rec("c", "BEFORE", 1)));
    // Writes a row, then fails: its half-done work must not be committed.
    let half = started(backend.write(|conn| {
        conn.execute(
            "INSERT INTO messages (org, channel, received_at, status, raw) VALUES ('default', 'c', 1, 'accepted', x'00')",
            [],
        )?;
        conn.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(())
    }));
    let clean_fail = started(store.set_ack(424_242, MessageStatus::Accepted, None, None));
    let after = started(store.record_inbound(rec("c", "AFTER", 1)));
    drop(release);
    assert!(
        matches!(before.await, Err(StoreError::Sqlite(_))),
        "rolled back with the batch"
    );
    assert!(matches!(half.await, Err(StoreError::Sqlite(_))));
    // Ops after the rollback run in a fresh transaction.
    assert!(matches!(clean_fail.await, Err(StoreError::NotFound)));
    assert!(matches!(after.await, Ok(InboundOutcome::Stored { .. })));
    assert_eq!(
        store.count_messages(DEFAULT_ORG, None).await.unwrap(),
        1,
        "only AFTER is stored"
    );
    assert_eq!(store.metrics_snapshot().failed_batches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_fails_every_op_and_the_writer_recovers() {
    let dir = temp();
    let store = open(&dir);
    let backend = sqlite(&store);
    let release = backend.pause_writer().await;
    let good = started(store.record_inbound(rec("c", "A", 1)));
    // A deferred foreign-key violation passes its statement but makes COMMIT fail.
    let poison = started(backend.write(|conn| {
        conn.execute_batch(
            "PRAGMA defer_foreign_keys = ON;
             INSERT INTO deliveries (message_id, org, destination, state, next_attempt_at,
                                     created_at, updated_at, payload)
             VALUES (987654, 'default', 'x', 'queued', 0, 0, 0, x'00');",
        )?;
        Ok(())
    }));
    drop(release);
    assert!(matches!(good.await, Err(StoreError::Sqlite(_))));
    assert!(matches!(poison.await, Err(StoreError::Sqlite(_))));
    assert_eq!(store.metrics_snapshot().failed_batches, 1);
    assert_eq!(store.count_messages(DEFAULT_ORG, None).await.unwrap(), 0);

    let (id, _) = stored(store.record_inbound(rec("c", "B", 2)).await.unwrap());
    assert!(store.get_message(DEFAULT_ORG, id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_groups_concurrent_writers() {
    let dir = temp();
    let store = open(&dir);
    let n = 2000;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let store = store.clone();
        tasks.spawn(async move {
            let mut r = rec("load", &format!("L{i}"), i);
            r.deliveries = vec![delivery("load/out", b"x", i)];
            store.record_inbound(r).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        stored(done.unwrap().unwrap());
    }
    let m = store.metrics_snapshot();
    assert_eq!(m.ops, n as u64);
    assert!(
        m.batches * 4 <= n as u64,
        "expected far fewer commits than messages: {m:?}"
    );
    assert_eq!(
        store
            .count_messages(DEFAULT_ORG, Some("load"))
            .await
            .unwrap(),
        n as u64
    );

    // Forced: everything queued behind a paused writer goes in max_batch-sized commits.
    let release = sqlite(&store).pause_writer().await;
    let before = store.metrics_snapshot().batches;
    let futs: Vec<_> = (0..n)
        .map(|i| started(store.set_status(1 + i, MessageStatus::Processed, None)))
        .collect();
    drop(release);
    for f in futs {
        f.await.unwrap();
    }
    // 1 (the pause) + ceil(2000 / 1024).
    assert_eq!(store.metrics_snapshot().batches - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_delay_still_commits_everything() {
    let dir = temp();
    let opts = SqliteOptions {
        commit_delay: std::time::Duration::from_millis(2),
        max_batch: 64,
        ..SqliteOptions::default()
    };
    let store = Store::open_sqlite(&dir.path().join("d.db"), opts).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let store = store.clone();
        tasks.spawn(async move { store.record_inbound(rec("c", &format!("D{i}"), i)).await });
    }
    while let Some(done) = tasks.join_next().await {
        stored(done.unwrap().unwrap());
    }
    // A lone caller after the burst is not held back forever either.
    stored(store.record_inbound(rec("c", "last", 1)).await.unwrap());
    let m = store.metrics_snapshot();
    assert_eq!(m.ops, 301);
    assert!(m.max_batch <= 64);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_lifecycle() {
    let dir = temp();
    let store = open(&dir);
    let dest = "orders/pacs";
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut r = rec("orders", &format!("O{i}"), 100 + i);
        r.deliveries = vec![
            delivery(dest, format!("payload {i}").as_bytes(), 100 + i),
            delivery("orders/archive", b"a", 100 + i),
        ];
        let (_, dids) = stored(store.record_inbound(r).await.unwrap());
        ids.push(dids[0]);
    }
    let pending = store.pending_deliveries(dest, 10).await.unwrap();
    assert_eq!(pending.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
    assert_eq!(pending[2].payload, b"payload 2");
    assert_eq!(store.pending_deliveries(dest, 2).await.unwrap().len(), 2);
    assert_eq!(
        store.queue_depth(dest).await.unwrap(),
        QueueDepth {
            pending: 4,
            oldest_created_at: Some(100)
        }
    );

    // Head sent.
    store
        .delivery_sent(ids[0], 200, Some(b"MSA|AA".to_vec()))
        .await
        .unwrap();
    // Second fails transiently: still pending, still in order, future due time.
    store
        .delivery_failed(ids[1], 201, "connection refused", None, Some(5_000))
        .await
        .unwrap();
    // Third fails permanently.
    store
        .delivery_failed(
            ids[2],
            202,
            "AR: unknown patient",
            Some(b"MSA|AR".to_vec()),
            None,
        )
        .await
        .unwrap();

    let pending = store.pending_deliveries(dest, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![ids[1], ids[3]]
    );
    let retrying = &pending[0];
    assert_eq!(retrying.state, DeliveryState::Retrying);
    assert_eq!(retrying.attempts, 1);
    assert_eq!(retrying.next_attempt_at, 5_000);
    assert_eq!(retrying.last_error.as_deref(), Some("connection refused"));
    assert_eq!(
        store.queue_depth(dest).await.unwrap(),
        QueueDepth {
            pending: 2,
            oldest_created_at: Some(101)
        }
    );

    let sent = store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (sent.state, sent.attempts, sent.updated_at),
        (DeliveryState::Sent, 1, 200)
    );
    assert_eq!(sent.response.as_deref(), Some(&b"MSA|AA"[..]));
    let failed = store.get_delivery(ids[2]).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.attempts), (DeliveryState::Failed, 1));
    assert_eq!(failed.response.as_deref(), Some(&b"MSA|AR"[..]));

    // Retry again, then succeed.
    store
        .delivery_failed(ids[1], 5_001, "timeout", None, Some(9_000))
        .await
        .unwrap();
    assert_eq!(
        store.get_delivery(ids[1]).await.unwrap().unwrap().attempts,
        2
    );
    store.delivery_sent(ids[1], 9_001, None).await.unwrap();

    // Resend the permanently failed and the sent one: back in the queue, original order.
    store.requeue_delivery(ids[2], 10_000).await.unwrap();
    store.requeue_delivery(ids[0], 10_000).await.unwrap();
    let pending = store.pending_deliveries(dest, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![ids[0], ids[2], ids[3]]
    );
    let requeued = &pending[1];
    assert_eq!(
        (requeued.state, requeued.attempts, requeued.next_attempt_at),
        (DeliveryState::Queued, 0, 10_000)
    );

    // Other destinations are separate queues.
    assert_eq!(
        store.queue_depth("orders/archive").await.unwrap().pending,
        4
    );
    assert_eq!(
        store.queue_depth("nowhere").await.unwrap(),
        QueueDepth::default()
    );

    assert!(matches!(
        store.requeue_delivery(999_999, 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delivery_failed(999_999, 1, "x", None, None).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_resumes_after_reopen() {
    let dir = temp();
    let path = dir.path().join("data/medrelay.db");
    let ids = {
        let store = Store::open_sqlite(&path, SqliteOptions::default()).unwrap();
        let mut ids = Vec::new();
        for i in 0..3 {
            let mut r = rec("c", &format!("Q{i}"), i);
            r.deliveries = vec![delivery("c/d", b"p", i)];
            ids.push(stored(store.record_inbound(r).await.unwrap()).1[0]);
        }
        store
            .delivery_failed(ids[0], 10, "down", None, Some(20))
            .await
            .unwrap();
        store.delivery_sent(ids[1], 10, None).await.unwrap();
        store.close().await.unwrap();
        assert!(matches!(store.close().await, Err(StoreError::Closed)));
        assert!(matches!(
            store.record_inbound(rec("c", "late", 1)).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(
            store.queue_depth("c/d").await,
            Err(StoreError::Closed)
        ));
        ids
    };
    // TRUNCATE checkpoint: the WAL is empty once closed.
    let wal = path.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() == 0)
            .unwrap_or(true)
    );

    let store = Store::open(&format!("sqlite://{}", path.display())).unwrap();
    let pending = store.pending_deliveries("c/d", 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![ids[0], ids[2]]
    );
    assert_eq!(pending[0].state, DeliveryState::Retrying);
    assert_eq!(store.count_messages(DEFAULT_ORG, None).await.unwrap(), 3);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_dropped_without_close_keeps_data() {
    let dir = temp();
    let path = dir.path().join("medrelay.db");
    let id = {
        let store = Store::open(path.to_str().unwrap()).unwrap();
        stored(store.record_inbound(rec("c", "D", 1)).await.unwrap()).0
    };
    let store = Store::open(path.to_str().unwrap()).unwrap();
    assert!(store.get_message(DEFAULT_ORG, id).await.unwrap().is_some());
}

#[test]
fn open_rejects_unsupported_urls() {
    for url in [
        "postgres://medrelay@db/medrelay",
        "postgresql://x/y",
        "mysql://x",
        "sqlite://",
    ] {
        match Store::open(url) {
            Err(StoreError::Unsupported(msg)) => assert!(!msg.is_empty()),
            other => panic!("{url}: expected Unsupported, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_old_finished_messages_in_batches() {
    let dir = temp();
    let store = open(&dir);
    let mut old_done = Vec::new();
    let mut old_sent_deliveries = Vec::new();
    for i in 0..10 {
        let mut r = rec("c", &format!("old{i}"), 100 + i);
        r.deliveries = vec![delivery("c/d", b"p", 0)];
        let (id, dids) = stored(store.record_inbound(r).await.unwrap());
        store.delivery_sent(dids[0], 150, None).await.unwrap();
        old_done.push(id);
        old_sent_deliveries.push(dids[0]);
    }
    // Old but a delivery is still owed: must stay.
    let mut r = rec("c", "old-pending", 105);
    r.deliveries = vec![delivery("c/d", b"p", 0), delivery("c/e", b"p", 0)];
    let (old_pending, pending_dids) = stored(store.record_inbound(r).await.unwrap());
    store
        .delivery_sent(pending_dids[0], 150, None)
        .await
        .unwrap();
    // Old, no deliveries at all, different org: goes too (retention is global).
    let mut r = rec("c", "old-b", 50);
    r.org = "clinic-b".into();
    let (old_other_org, _) = stored(store.record_inbound(r).await.unwrap());
    // New: stays.
    let (new, _) = stored(store.record_inbound(rec("c", "new", 1_000)).await.unwrap());

    let batches_before = store.metrics_snapshot().batches;
    let deleted = store.prune(500, 3).await.unwrap();
    assert_eq!(deleted, 11);
    assert!(
        store.metrics_snapshot().batches - batches_before >= 4,
        "12 old messages at 3 per step"
    );

    for id in &old_done {
        assert!(store.get_message(DEFAULT_ORG, *id).await.unwrap().is_none());
        assert!(store.deliveries_for_message(*id).await.unwrap().is_empty());
    }
    for did in &old_sent_deliveries {
        assert!(store.get_delivery(*did).await.unwrap().is_none());
    }
    assert!(
        store
            .get_message("clinic-b", old_other_org)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_message(DEFAULT_ORG, old_pending)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .deliveries_for_message(old_pending)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store.get_message(DEFAULT_ORG, new).await.unwrap().is_some());

    // Once the last delivery is done, the next pass removes it.
    store
        .delivery_failed(pending_dids[1], 600, "gave up", None, None)
        .await
        .unwrap();
    assert_eq!(store.prune(500, 3).await.unwrap(), 1);
    assert_eq!(store.prune(500, 3).await.unwrap(), 0);
    assert_eq!(store.count_messages(DEFAULT_ORG, None).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_are_isolated() {
    let dir = temp();
    let store = open(&dir);
    let mut a = rec("adt", "A1", 1);
    a.org = "clinic-a".into();
    let mut b = rec("adt", "A1", 2);
    b.org = "clinic-b".into();
    let (ida, _) = stored(store.record_inbound(a).await.unwrap());
    let (idb, _) = stored(store.record_inbound(b).await.unwrap());

    assert!(store.get_message("clinic-b", ida).await.unwrap().is_none());
    assert!(store.get_message("clinic-a", idb).await.unwrap().is_none());
    assert!(store.get_message(DEFAULT_ORG, ida).await.unwrap().is_none());
    assert!(store.get_message("clinic-a", ida).await.unwrap().is_some());

    let found = store
        .find_messages(MessageQuery::new("clinic-a"))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ida]);
    let mut q = MessageQuery::new("clinic-b");
    q.control_id = Some("A1".into());
    let found = store.find_messages(q).await.unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), vec![idb]);
    assert_eq!(
        store.count_messages("clinic-a", Some("adt")).await.unwrap(),
        1
    );
    assert_eq!(store.count_messages("clinic-c", None).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_messages_filters_and_pages() {
    let dir = temp();
    let store = open(&dir);
    let mut ids = Vec::new();
    for i in 0..20i64 {
        let channel = if i % 2 == 0 { "even" } else { "odd" };
        let mut r = rec(channel, &format!("C{i}"), 1_000 + i);
        r.message_type = Some(if i % 4 == 0 { "ADT^A01" } else { "ORM^O01" }.into());
        r.status = if i == 7 {
            MessageStatus::Errored
        } else {
            MessageStatus::Accepted
        };
        ids.push(stored(store.record_inbound(r).await.unwrap()).0);
    }
    let id_list = |ms: Vec<StoredMessage>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();

    // Newest first, paged by before_id.
    let mut q = MessageQuery::new(DEFAULT_ORG);
    q.limit = 8;
    let page1 = id_list(store.find_messages(q.clone()).await.unwrap());
    assert_eq!(page1, ids.iter().rev().take(8).copied().collect::<Vec<_>>());
    q.before_id = page1.last().copied();
    let page2 = id_list(store.find_messages(q.clone()).await.unwrap());
    assert_eq!(
        page2,
        ids.iter()
            .rev()
            .skip(8)
            .take(8)
            .copied()
            .collect::<Vec<_>>()
    );

    let mut q = MessageQuery::new(DEFAULT_ORG);
    q.channel = Some("odd".into());
    let odd = store.find_messages(q).await.unwrap();
    assert_eq!(odd.len(), 10);
    assert!(odd.iter().all(|m| m.channel == "odd"));
    assert!(odd.windows(2).all(|w| w[0].id > w[1].id));

    let mut q = MessageQuery::new(DEFAULT_ORG);
    q.message_type = Some("ADT^A01".into());
    assert_eq!(store.find_messages(q).await.unwrap().len(), 5);

    let mut q = MessageQuery::new(DEFAULT_ORG);
    q.status = Some(MessageStatus::Errored);
    assert_eq!(id_list(store.find_messages(q).await.unwrap()), vec![ids[7]]);

    let mut q = MessageQuery::new(DEFAULT_ORG);
    q.since = Some(1_005);
    q.until = Some(1_010);
    q.channel = Some("even".into());
    assert_eq!(
        id_list(store.find_messages(q).await.unwrap()),
        vec![ids[8], ids[6]]
    );

    let mut q = MessageQuery::new(DEFAULT_ORG);
    q.control_id = Some("C3".into());
    assert_eq!(id_list(store.find_messages(q).await.unwrap()), vec![ids[3]]);

    let mut q = MessageQuery::new(DEFAULT_ORG);
    q.limit = 0;
    assert!(store.find_messages(q).await.unwrap().is_empty());
    assert_eq!(
        store
            .count_messages(DEFAULT_ORG, Some("even"))
            .await
            .unwrap(),
        10
    );
    assert_eq!(store.count_messages(DEFAULT_ORG, None).await.unwrap(), 20);
}

/// A raw connection to a freshly migrated database (kept alive by the TempDir).
pub(crate) fn migrated_connection() -> (TempDir, rusqlite::Connection) {
    let dir = temp();
    let path = dir.path().join("plan.db");
    drop(Store::open_sqlite(&path, SqliteOptions::default()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    (dir, conn)
}

/// SQLite's plan for `sql`, its steps joined with "; ".
pub(crate) fn query_plan(conn: &rusqlite::Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    stmt.query_map([], |row| row.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The query planner uses the indexes the schema was designed for.
#[test]
fn query_plans_use_the_indexes() {
    let (_dir, conn) = migrated_connection();
    let plan = |sql: &str| query_plan(&conn, sql);
    let pending = plan(
        "SELECT * FROM deliveries WHERE destination = 'x' \
         AND state IN ('queued', 'retrying') ORDER BY id LIMIT 10",
    );
    assert!(pending.contains("deliveries_pending"), "{pending}");
    assert!(!pending.contains("TEMP B-TREE"), "{pending}");
    let depth = plan(
        "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE destination = 'x' \
         AND state IN ('queued', 'retrying')",
    );
    assert!(depth.contains("deliveries_pending"), "{depth}");
    let by_channel = plan("SELECT COUNT(*) FROM messages WHERE org = 'a' AND channel = 'b'");
    assert!(
        by_channel.contains("messages_org_channel_time"),
        "{by_channel}"
    );
    let by_control = plan("SELECT id FROM messages WHERE org = 'a' AND control_id = 'c'");
    assert!(by_control.contains("messages_dedup"), "{by_control}");
    let dedup = plan(
        "SELECT id, ack FROM messages WHERE org = 'a' AND channel = 'c' \
         AND sending_application IS 'h' AND sending_facility IS NULL AND control_id = 'x' \
         AND received_at >= 5 AND ack IS NOT NULL ORDER BY received_at, id LIMIT 1",
    );
    assert!(dedup.contains("messages_dedup"), "{dedup}");
    assert!(!dedup.contains("TEMP B-TREE"), "{dedup}");
    let newest = plan("SELECT id FROM messages WHERE +org = 'a' ORDER BY id DESC LIMIT 5");
    assert!(!newest.contains("TEMP B-TREE"), "{newest}");
}

/// Child half of `acknowledged_messages_survive_sigkill`: runs only when the
/// parent test re-executes this binary with the env var set.
#[test]
#[ignore = "run by acknowledged_messages_survive_sigkill as a child process"]
fn crash_child() {
    let Ok(path) = std::env::var("MEDRELAY_STORE_CRASH_DB") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open_sqlite(Path::new(&path), SqliteOptions::default()).unwrap();
        let mut tasks = Vec::new();
        for conn in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let mut r = rec("crash", &format!("K{conn}-{i}"), i);
                    r.deliveries = vec![delivery("crash/out", b"payload", i)];
                    let (id, _) = stored(store.record_inbound(r).await.unwrap());
                    // Printed only after the commit returned: exactly what an ACK promises.
                    println!("ACKED {id}");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    let dir = temp();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tests::crash_child", "--ignored", "--nocapture"])
        .env("MEDRELAY_STORE_CRASH_DB", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("ACKED ") {
            acked.push(id.parse::<i64>().unwrap());
            if acked.len() == 500 {
                break;
            }
        }
    }
    assert_eq!(acked.len(), 500, "child stopped early");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acks already in the pipe were also given before the kill.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("ACKED ") {
            acked.push(id.parse::<i64>().unwrap());
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open_sqlite(&path, SqliteOptions::default()).unwrap();
        for id in &acked {
            assert!(
                store.get_message(DEFAULT_ORG, *id).await.unwrap().is_some(),
                "acknowledged message {id} lost"
            );
            assert_eq!(store.deliveries_for_message(*id).await.unwrap().len(), 1);
        }
        let total = store
            .count_messages(DEFAULT_ORG, Some("crash"))
            .await
            .unwrap();
        assert!(total >= acked.len() as u64);
        store.close().await.unwrap();
    });
}

#[tokio::test]
async fn an_empty_payload_delivers_the_message_itself() {
    let dir = temp();
    let store = open(&dir);
    let mut r = rec("c", "SAME", 1);
    r.deliveries = vec![delivery("c/a", b"", 1), delivery("c/b", b"TRANSFORMED", 1)];
    let raw = r.raw.clone();
    let InboundOutcome::Stored { message_id, .. } = store.record_inbound(r).await.unwrap() else {
        panic!("stored");
    };
    let a = store.pending_deliveries("c/a", 10).await.unwrap();
    assert_eq!(a[0].payload, raw, "read from the message, stored once");
    let b = store.pending_deliveries("c/b", 10).await.unwrap();
    assert_eq!(b[0].payload, b"TRANSFORMED");
    let all = store.deliveries_for_message(message_id).await.unwrap();
    assert_eq!(all[0].payload, raw);
    assert_eq!(
        store.get_delivery(a[0].id).await.unwrap().unwrap().payload,
        raw
    );
}

#[tokio::test]
async fn traffic_is_counted_per_window_and_direction() {
    let dir = temp();
    let store = open(&dir);
    const HOUR: Millis = 3_600_000;
    let t0 = 1_700_000_000_000 / HOUR * HOUR;
    for (i, (at, status, direction)) in [
        (t0 + 10, MessageStatus::Accepted, Direction::In),
        (t0 + 20, MessageStatus::Rejected, Direction::In),
        (t0 + 30, MessageStatus::Accepted, Direction::Out),
        (t0 + HOUR + 5, MessageStatus::Errored, Direction::In),
        (t0 - HOUR, MessageStatus::Accepted, Direction::In),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .record_inbound(InboundRecord {
                status,
                direction,
                ..rec("traffic", &format!("T{i}"), at)
            })
            .await
            .unwrap();
    }
    let b = store.message_traffic(DEFAULT_ORG, t0, HOUR).await.unwrap();
    let view: Vec<(Millis, bool, u64, u64)> = b
        .iter()
        .map(|b| (b.start, b.outbound, b.errored, b.total))
        .collect();
    assert_eq!(
        view,
        vec![
            (t0, false, 1, 2),
            (t0, true, 0, 1),
            (t0 + HOUR, false, 1, 1),
        ]
    );
    assert!(
        store
            .message_traffic("other-org", t0, HOUR)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn channel_activity_counts_the_newest_messages_per_channel() {
    let dir = temp();
    let store = open(&dir);
    for (i, (channel, status, error)) in [
        ("a", MessageStatus::Accepted, None),
        ("a", MessageStatus::Rejected, Some("bad PID")),
        ("b", MessageStatus::Accepted, None),
        ("a", MessageStatus::Accepted, None),
        ("b", MessageStatus::Errored, Some("no route")),
    ]
    .into_iter()
    .enumerate()
    {
        let at = 1_000 + i as Millis;
        store
            .record_inbound(InboundRecord {
                status,
                error: error.map(str::to_string),
                ..rec(channel, &format!("A{i}"), at)
            })
            .await
            .unwrap();
    }
    let all = store.channel_activity(DEFAULT_ORG, 100).await.unwrap();
    let b = all.iter().find(|c| c.channel == "b").unwrap();
    assert_eq!(
        (b.received, b.errored, b.last_at, b.newest_failed),
        (2, 1, 1_004, true)
    );
    assert_eq!(b.last_error, Some((1_004, "no route".to_string())));
    let a = all.iter().find(|c| c.channel == "a").unwrap();
    assert_eq!(
        (a.received, a.errored, a.last_at, a.newest_failed),
        (3, 1, 1_003, false)
    );
    assert_eq!(a.last_error, Some((1_001, "bad PID".to_string())));
    // Only the newest two messages: b's error and a's last success.
    let newest = store.channel_activity(DEFAULT_ORG, 2).await.unwrap();
    assert_eq!(newest.iter().map(|c| c.received).sum::<u64>(), 2);
}
