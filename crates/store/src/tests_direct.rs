//! Tests of the Direct secure messaging part of the store, against real
//! SQLite files.

use crate::tests::{migrated_connection, open, query_plan, sqlite, started, temp};
use crate::*;

const A: &str = "clinic-a";
const B: &str = "clinic-b";
const T0: Millis = 1_700_000_000_000;

const PROCESSED: &str = "PROCESSED";
const SMTPINIT: &str = "SMTPINIT";
const DISPATCHED: &str = "DISPATCHED";
const FAILED: &str = "FAILED";

fn db(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.path().join("data/medrelay.db")).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

fn count(conn: &rusqlite::Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint {
        url: url.into(),
        user: Some("u".into()),
        password: Some("p".into()),
    }
}

fn address(addr: &str, org: &str, edge: Option<&str>) -> DirectAddress {
    DirectAddress {
        address: addr.into(),
        org: org.into(),
        edge: edge.map(str::to_owned),
        endpoint: Some(endpoint("https://edge.example/in")),
        notify: None,
        created_at: T0,
    }
}

fn notification(recipient: Option<&str>, payload: &str) -> NewNotification {
    NewNotification {
        recipient: recipient.map(str::to_owned),
        url: "https://edge.example/status".into(),
        user: Some("edge".into()),
        password: None,
        payload: payload.into(),
    }
}

fn message(message_id: &str, at: Millis, recipients: &[&str]) -> NewDirectMessage {
    NewDirectMessage {
        org: A.into(),
        edge: "edge-1".into(),
        sender: "dr.a@direct.a.example".into(),
        message_id: message_id.into(),
        request_hash: format!("hash-{message_id}"),
        transaction_id: format!("tx-{message_id}"),
        created_at: at,
        deadline_at: at + 3_600_000,
        asm: true,
        xdm: false,
        body: b"MIME-Version: 1.0\r\n\r\nbody".to_vec(),
        recipients: recipients
            .iter()
            .enumerate()
            .map(|(i, r)| (r.to_string(), i % 2 == 0, PROCESSED.to_string()))
            .collect(),
        notifications: vec![notification(None, r#"{"status":"processed"}"#)],
    }
}

async fn submit(store: &Store, m: NewDirectMessage) -> i64 {
    match store.submit_direct_message(m).await.unwrap() {
        DirectSubmit::Created { id } => id,
        other => panic!("expected Created, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_are_created_listed_and_deleted_within_their_org() {
    let dir = temp();
    let store = open(&dir);
    let e = store
        .create_direct_edge("edge-1", A, "hash-1")
        .await
        .unwrap();
    assert_eq!((e.name.as_str(), e.org.as_str()), ("edge-1", A));
    assert!(e.created_at > T0, "stamped with the clock");
    store
        .create_direct_edge("edge-2", A, "hash-2")
        .await
        .unwrap();
    store
        .create_direct_edge("edge-b", B, "hash-b")
        .await
        .unwrap();
    // The name is the login: taken in any organisation.
    for org in [A, B] {
        assert!(matches!(
            store.create_direct_edge("edge-1", org, "x").await,
            Err(StoreError::Conflict(_))
        ));
    }
    assert!(matches!(
        store.create_direct_edge("", A, "x").await,
        Err(StoreError::Invalid(_))
    ));

    assert_eq!(
        store.direct_edge("edge-1").await.unwrap(),
        Some((e.clone(), "hash-1".to_string()))
    );
    assert_eq!(store.direct_edge("nope").await.unwrap(), None);
    let names = |v: Vec<DirectEdge>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_direct_edges(A).await.unwrap()),
        ["edge-1", "edge-2"]
    );
    assert_eq!(names(store.list_direct_edges(B).await.unwrap()), ["edge-b"]);

    assert!(matches!(
        store.delete_direct_edge(B, "edge-1").await,
        Err(StoreError::NotFound)
    ));
    store.delete_direct_edge(A, "edge-1").await.unwrap();
    assert_eq!(store.direct_edge("edge-1").await.unwrap(), None);
    assert!(matches!(
        store.delete_direct_edge(A, "edge-1").await,
        Err(StoreError::NotFound)
    ));
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_lowercased_and_keep_to_their_org() {
    let dir = temp();
    let store = open(&dir);
    store.create_direct_edge("edge-a", A, "h").await.unwrap();
    store.create_direct_edge("edge-b", B, "h").await.unwrap();

    // The edge must exist, in the address's organisation; nothing is written otherwise.
    for edge in ["edge-b", "nope"] {
        assert!(matches!(
            store
                .put_direct_address(address("X@a.example", A, Some(edge)))
                .await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(store.direct_address("x@a.example").await.unwrap(), None);
    assert!(matches!(
        store.put_direct_address(address("", A, None)).await,
        Err(StoreError::Invalid(_))
    ));

    let mut a = address("Dr.X@Direct.A.Example", A, Some("edge-a"));
    a.notify = Some(Endpoint {
        url: "https://edge-a.example/notify".into(),
        user: None,
        password: None,
    });
    let stored = store.put_direct_address(a.clone()).await.unwrap();
    assert_eq!(stored.address, "dr.x@direct.a.example");
    assert_eq!(
        DirectAddress {
            address: stored.address.clone(),
            ..a.clone()
        },
        stored
    );
    for look in ["dr.x@direct.a.example", "DR.X@DIRECT.A.EXAMPLE"] {
        assert_eq!(
            store.direct_address(look).await.unwrap().as_ref(),
            Some(&stored)
        );
    }

    // Replacing changes the routing, keeps created_at.
    let mut b = address("dr.x@DIRECT.a.example", A, None);
    b.endpoint = None;
    b.created_at = T0 + 99;
    let replaced = store.put_direct_address(b).await.unwrap();
    assert_eq!(replaced.edge, None);
    assert_eq!(replaced.endpoint, None);
    assert_eq!(replaced.notify, None);
    assert_eq!(replaced.created_at, T0);
    assert_eq!(
        store
            .direct_address("dr.x@direct.a.example")
            .await
            .unwrap()
            .as_ref(),
        Some(&replaced)
    );

    // Another organisation cannot take it over.
    assert!(matches!(
        store
            .put_direct_address(address("DR.x@direct.a.example", B, None))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .put_direct_address(address("b@direct.b.example", B, Some("edge-b")))
        .await
        .unwrap();
    store
        .put_direct_address(address("a2@direct.a.example", A, Some("edge-a")))
        .await
        .unwrap();
    let list = |v: Vec<DirectAddress>| v.into_iter().map(|a| a.address).collect::<Vec<_>>();
    assert_eq!(
        list(store.list_direct_addresses(A).await.unwrap()),
        ["a2@direct.a.example", "dr.x@direct.a.example"]
    );
    assert_eq!(
        list(store.list_direct_addresses(B).await.unwrap()),
        ["b@direct.b.example"]
    );

    // Deleting the edge keeps its addresses, without an edge.
    store.delete_direct_edge(A, "edge-a").await.unwrap();
    let a2 = store
        .direct_address("a2@direct.a.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a2.edge, None);
    assert_eq!(a2.endpoint, Some(endpoint("https://edge.example/in")));

    assert!(matches!(
        store.delete_direct_address(B, "a2@direct.a.example").await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_direct_address(A, "A2@Direct.A.Example")
        .await
        .unwrap();
    assert_eq!(
        store.direct_address("a2@direct.a.example").await.unwrap(),
        None
    );
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_stores_the_message_and_a_resubmission_writes_nothing() {
    let dir = temp();
    let store = open(&dir);
    let m = message(
        "<m1@a.example>",
        T0,
        &["r1@b.example", "a@a.example", "r0@b.example"],
    );
    let id = submit(&store, m.clone()).await;

    let (msg, recipients) = store
        .direct_message(&m.sender, &m.message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        msg,
        DirectMessage {
            id,
            org: A.into(),
            edge: "edge-1".into(),
            sender: m.sender.clone(),
            message_id: m.message_id.clone(),
            transaction_id: m.transaction_id.clone(),
            created_at: T0,
            deadline_at: T0 + 3_600_000,
            asm: true,
            xdm: false,
            body: m.body.clone(),
        }
    );
    // In the submitted order, not the primary key's.
    assert_eq!(
        recipients,
        vec![
            DirectRecipient {
                message: id,
                recipient: "r1@b.example".into(),
                local: true,
                status: PROCESSED.into(),
                failure_reason: None,
                attempts: 0,
                next_attempt_at: T0,
                updated_at: T0,
                last_error: None,
            },
            DirectRecipient {
                recipient: "a@a.example".into(),
                local: false,
                ..recipients[0].clone()
            },
            DirectRecipient {
                recipient: "r0@b.example".into(),
                ..recipients[0].clone()
            },
        ]
    );
    assert_eq!(
        store.direct_message_by_id(id).await.unwrap(),
        Some((msg, recipients))
    );
    assert_eq!(store.direct_message_by_id(id + 1).await.unwrap(), None);
    assert_eq!(
        store
            .direct_message("other@a.example", &m.message_id)
            .await
            .unwrap(),
        None
    );
    let notes = store.direct_notifications(id).await.unwrap();
    assert_eq!(
        notes,
        vec![DirectNotification {
            id: notes[0].id,
            message: id,
            recipient: None,
            url: "https://edge.example/status".into(),
            user: Some("edge".into()),
            password: None,
            payload: r#"{"status":"processed"}"#.into(),
            state: "pending".into(),
            attempts: 0,
            next_attempt_at: T0,
            created_at: T0,
            last_error: None,
        }]
    );

    // The same (sender, message_id) again, even with other content: the
    // original's identity comes back and nothing is written.
    let conn = db(&dir);
    let rows = |c: &rusqlite::Connection| {
        [
            "direct_messages",
            "direct_recipients",
            "direct_notifications",
        ]
        .map(|t| count(c, t))
    };
    let before = rows(&conn);
    let mut again = message("<m1@a.example>", T0 + 5, &["x@b.example"]);
    again.request_hash = "different".into();
    again.transaction_id = "tx-other".into();
    assert_eq!(
        store.submit_direct_message(again).await.unwrap(),
        DirectSubmit::Existing {
            id,
            transaction_id: m.transaction_id.clone(),
            request_hash: m.request_hash.clone(),
        }
    );
    assert_eq!(rows(&conn), before);
    assert_eq!(before, [1, 3, 1]);

    // Another sender may use the same message id.
    let mut other = m.clone();
    other.sender = "dr.b@direct.a.example".into();
    assert_ne!(submit(&store, other).await, id);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_submits_in_one_batch_store_once() {
    let dir = temp();
    let store = open(&dir);
    let m = message("<same@a.example>", T0, &["r@b.example"]);
    let release = sqlite(&store).pause_writer().await;
    let first = started(store.submit_direct_message(m.clone()));
    let second = started(store.submit_direct_message(m.clone()));
    drop(release);
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    let DirectSubmit::Created { id } = a else {
        panic!("{a:?}")
    };
    assert_eq!(
        b,
        DirectSubmit::Existing {
            id,
            transaction_id: m.transaction_id.clone(),
            request_hash: m.request_hash.clone(),
        }
    );
    assert_eq!(count(&db(&dir), "direct_recipients"), 1);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_recipient_is_refused_before_writing() {
    let dir = temp();
    let store = open(&dir);
    // A neighbour in the same batch must still commit.
    let release = sqlite(&store).pause_writer().await;
    let bad = started(store.submit_direct_message(message(
        "<bad@a.example>",
        T0,
        &["r@b.example", "q@b.example", "r@b.example"],
    )));
    let good =
        started(store.submit_direct_message(message("<good@a.example>", T0, &["r@b.example"])));
    drop(release);
    assert!(matches!(bad.await, Err(StoreError::Invalid(_))));
    assert!(matches!(good.await.unwrap(), DirectSubmit::Created { .. }));
    let conn = db(&dir);
    assert_eq!(count(&conn, "direct_messages"), 1);
    assert_eq!(count(&conn, "direct_recipients"), 1);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_recipients_come_oldest_first_up_to_the_limit() {
    let dir = temp();
    let store = open(&dir);
    assert_eq!(store.next_direct_due().await.unwrap(), None);
    assert!(
        store
            .due_direct_recipients(T0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let late = submit(&store, message("<late@a>", T0 + 20, &["l1@b", "l2@b"])).await;
    let early = submit(
        &store,
        message("<early@a>", T0 + 10, &["e2@b", "e1@b", "e3@b"]),
    )
    .await;
    assert_eq!(store.next_direct_due().await.unwrap(), Some(T0 + 10));

    let due = |v: Vec<(DirectMessage, DirectRecipient)>| {
        v.into_iter()
            .map(|(m, r)| {
                assert_eq!(m.id, r.message);
                assert!(!m.body.is_empty(), "with its body");
                (m.id, r.recipient)
            })
            .collect::<Vec<_>>()
    };
    assert!(
        store
            .due_direct_recipients(T0 + 9, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        due(store.due_direct_recipients(T0 + 10, 10).await.unwrap()),
        [
            (early, "e2@b".into()),
            (early, "e1@b".into()),
            (early, "e3@b".into())
        ]
    );
    assert_eq!(
        due(store.due_direct_recipients(T0 + 20, 4).await.unwrap()),
        [
            (early, "e2@b".to_string()),
            (early, "e1@b".into()),
            (early, "e3@b".into()),
            (late, "l1@b".into()),
        ]
    );

    // SMTPINIT is still work; final statuses are not; a reschedule reorders.
    let moved = store
        .set_direct_status(
            early,
            "e2@b",
            &[PROCESSED],
            SMTPINIT,
            None,
            Some(T0 + 30),
            None,
            T0 + 11,
        )
        .await
        .unwrap();
    assert!(moved);
    assert!(
        store
            .set_direct_status(
                early,
                "e1@b",
                &[PROCESSED],
                DISPATCHED,
                None,
                None,
                None,
                T0 + 11
            )
            .await
            .unwrap()
    );
    assert_eq!(
        due(store.due_direct_recipients(T0 + 100, 10).await.unwrap()),
        [
            (early, "e3@b".to_string()),
            (late, "l1@b".into()),
            (late, "l2@b".into()),
            (early, "e2@b".into()),
        ]
    );
    assert_eq!(
        store.due_direct_recipients(T0 + 100, 0).await.unwrap(),
        vec![]
    );
    for r in ["e3@b"] {
        store
            .set_direct_status(
                early,
                r,
                &[PROCESSED],
                FAILED,
                Some("x"),
                None,
                None,
                T0 + 12,
            )
            .await
            .unwrap();
    }
    for r in ["l1@b", "l2@b"] {
        store
            .set_direct_status(late, r, &[PROCESSED], DISPATCHED, None, None, None, T0 + 12)
            .await
            .unwrap();
    }
    assert_eq!(store.next_direct_due().await.unwrap(), Some(T0 + 30));
    store
        .set_direct_status(
            early,
            "e2@b",
            &[SMTPINIT],
            DISPATCHED,
            None,
            None,
            None,
            T0 + 31,
        )
        .await
        .unwrap();
    assert_eq!(store.next_direct_due().await.unwrap(), None);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_status_honours_from_and_notifies_only_when_it_moves() {
    let dir = temp();
    let store = open(&dir);
    let id = submit(&store, message("<s@a>", T0, &["r@b", "q@b"])).await;
    let initial = store.direct_notifications(id).await.unwrap().len();

    let note = |p: &str| Some(notification(Some("r@b"), p));
    assert!(
        store
            .set_direct_status(
                id,
                "r@b",
                &[PROCESSED, SMTPINIT],
                FAILED,
                Some("no route"),
                Some(T0 + 5),
                note("failed"),
                T0 + 1
            )
            .await
            .unwrap()
    );
    let (_, rs) = store.direct_message_by_id(id).await.unwrap().unwrap();
    let r = &rs[0];
    assert_eq!(r.status, FAILED);
    assert_eq!(r.failure_reason.as_deref(), Some("no route"));
    assert_eq!((r.updated_at, r.next_attempt_at), (T0 + 1, T0 + 5));
    assert_eq!(rs[1].status, PROCESSED, "the other recipient is untouched");
    let notes = store.direct_notifications(id).await.unwrap();
    assert_eq!(notes.len(), initial + 1);
    let last = notes.last().unwrap();
    assert_eq!(
        (
            last.recipient.as_deref(),
            last.payload.as_str(),
            last.state.as_str()
        ),
        (Some("r@b"), "failed", "pending")
    );
    assert_eq!((last.next_attempt_at, last.created_at), (T0 + 1, T0 + 1));

    // A late DISPATCHED must not overwrite the final FAILED: the caller
    // excludes it from `from`, nothing changes, nothing is queued.
    assert!(
        !store
            .set_direct_status(
                id,
                "r@b",
                &[PROCESSED, SMTPINIT],
                DISPATCHED,
                None,
                None,
                note("dispatched"),
                T0 + 2
            )
            .await
            .unwrap()
    );
    let (_, after) = store.direct_message_by_id(id).await.unwrap().unwrap();
    assert_eq!(after, rs);
    assert_eq!(store.direct_notifications(id).await.unwrap(), notes);

    // Without next_attempt_at the schedule stays; without a reason it is cleared.
    assert!(
        store
            .set_direct_status(id, "r@b", &[FAILED], PROCESSED, None, None, None, T0 + 3)
            .await
            .unwrap()
    );
    let (_, rs) = store.direct_message_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (
            rs[0].status.as_str(),
            rs[0].failure_reason.as_deref(),
            rs[0].next_attempt_at
        ),
        (PROCESSED, None, T0 + 5)
    );
    assert_eq!(store.direct_notifications(id).await.unwrap(), notes);

    for (m, r) in [(id, "nobody@b"), (id + 1, "r@b")] {
        assert!(matches!(
            store
                .set_direct_status(m, r, &[PROCESSED], FAILED, None, None, note("x"), T0)
                .await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(store.direct_notifications(id).await.unwrap(), notes);
    store.close().await.unwrap();
}

/// Two racing moves out of PROCESSED (e.g. an MDN and the delivery worker) in
/// one transaction: exactly one moves and exactly one notification is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_status_changes_move_and_notify_once() {
    let dir = temp();
    let store = open(&dir);
    let id = submit(&store, message("<race@a>", T0, &["r@b"])).await;
    let before = store.direct_notifications(id).await.unwrap().len();
    let release = sqlite(&store).pause_writer().await;
    let first = started(store.set_direct_status(
        id,
        "r@b",
        &[PROCESSED],
        DISPATCHED,
        None,
        None,
        Some(notification(Some("r@b"), "dispatched")),
        T0 + 1,
    ));
    let second = started(store.set_direct_status(
        id,
        "r@b",
        &[PROCESSED],
        FAILED,
        Some("timeout"),
        None,
        Some(notification(Some("r@b"), "failed")),
        T0 + 2,
    ));
    drop(release);
    assert_eq!((first.await.unwrap(), second.await.unwrap()), (true, false));
    let notes = store.direct_notifications(id).await.unwrap();
    assert_eq!(notes.len(), before + 1);
    assert_eq!(notes.last().unwrap().payload, "dispatched");
    let (_, rs) = store.direct_message_by_id(id).await.unwrap().unwrap();
    assert_eq!(rs[0].status, DISPATCHED);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_later_counts_attempts_and_reschedules() {
    let dir = temp();
    let store = open(&dir);
    let id = submit(&store, message("<retry@a>", T0, &["r@b", "q@b"])).await;
    store
        .direct_retry_later(id, "r@b", T0 + 60_000, "connection refused", T0 + 1)
        .await
        .unwrap();
    store
        .direct_retry_later(id, "r@b", T0 + 120_000, "503 from edge", T0 + 60_001)
        .await
        .unwrap();
    let (_, rs) = store.direct_message_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        rs[0],
        DirectRecipient {
            message: id,
            recipient: "r@b".into(),
            local: true,
            status: PROCESSED.into(),
            failure_reason: None,
            attempts: 2,
            next_attempt_at: T0 + 120_000,
            updated_at: T0 + 60_001,
            last_error: Some("503 from edge".into()),
        }
    );
    assert_eq!(rs[1].attempts, 0);
    // Not due until then: only the other recipient is.
    let due = store.due_direct_recipients(T0 + 60_001, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.recipient, "q@b");
    assert_eq!(
        store
            .due_direct_recipients(T0 + 120_000, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        store.direct_retry_later(id, "nobody@b", T0, "x", T0).await,
        Err(StoreError::NotFound)
    ));
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_due_in_creation_order_and_finish() {
    let dir = temp();
    let store = open(&dir);
    assert_eq!(store.next_direct_notification_due().await.unwrap(), None);
    let mut m1 = message("<n1@a>", T0 + 10, &["r@b"]);
    m1.notifications.push(notification(Some("r@b"), "second"));
    let id1 = submit(&store, m1).await;
    // Created later but due earlier: still after the first message's in the list.
    let id2 = submit(&store, message("<n2@a>", T0, &["r@b"])).await;
    assert_eq!(
        store.next_direct_notification_due().await.unwrap(),
        Some(T0)
    );

    let ids = |v: Vec<DirectNotification>| v.into_iter().map(|n| n.id).collect::<Vec<_>>();
    let n1 = ids(store.direct_notifications(id1).await.unwrap());
    let n2 = ids(store.direct_notifications(id2).await.unwrap());
    assert_eq!(n1.len(), 2);
    assert!(n1[0] < n1[1] && n1[1] < n2[0]);
    assert_eq!(
        ids(store.due_direct_notifications(T0, 10).await.unwrap()),
        n2
    );
    assert_eq!(
        ids(store.due_direct_notifications(T0 + 10, 10).await.unwrap()),
        [n1[0], n1[1], n2[0]]
    );
    assert_eq!(
        ids(store.due_direct_notifications(T0 + 10, 2).await.unwrap()),
        [n1[0], n1[1]]
    );

    // Sent: leaves the due list.
    store
        .direct_notification_sent(n1[0], T0 + 11)
        .await
        .unwrap();
    // Retried: later, counted.
    store
        .direct_notification_retry(n1[1], T0 + 1_000, "502", T0 + 11)
        .await
        .unwrap();
    assert_eq!(
        ids(store.due_direct_notifications(T0 + 999, 10).await.unwrap()),
        [n2[0]]
    );
    assert_eq!(
        ids(store
            .due_direct_notifications(T0 + 1_000, 10)
            .await
            .unwrap()),
        [n1[1], n2[0]]
    );
    // Failed: final.
    store
        .direct_notification_failed(n2[0], "gave up", T0 + 12)
        .await
        .unwrap();
    assert_eq!(
        store.next_direct_notification_due().await.unwrap(),
        Some(T0 + 1_000)
    );

    let all1 = store.direct_notifications(id1).await.unwrap();
    assert_eq!(
        (
            all1[0].state.as_str(),
            all1[0].attempts,
            all1[0].last_error.as_deref()
        ),
        ("sent", 0, None)
    );
    assert_eq!(
        (
            all1[1].state.as_str(),
            all1[1].attempts,
            all1[1].next_attempt_at,
            all1[1].last_error.as_deref()
        ),
        ("pending", 1, T0 + 1_000, Some("502"))
    );
    let all2 = store.direct_notifications(id2).await.unwrap();
    assert_eq!(
        (
            all2[0].state.as_str(),
            all2[0].attempts,
            all2[0].last_error.as_deref()
        ),
        ("failed", 1, Some("gave up"))
    );

    // A final state is not overwritten by a late answer.
    store
        .direct_notification_sent(n2[0], T0 + 13)
        .await
        .unwrap();
    store
        .direct_notification_retry(n1[0], T0 + 2_000, "late", T0 + 13)
        .await
        .unwrap();
    assert_eq!(store.direct_notifications(id2).await.unwrap(), all2);
    assert_eq!(store.direct_notifications(id1).await.unwrap()[0], all1[0]);

    store
        .direct_notification_sent(n1[1], T0 + 1_001)
        .await
        .unwrap();
    assert_eq!(store.next_direct_notification_due().await.unwrap(), None);
    for r in [
        store.direct_notification_sent(-1, T0).await,
        store.direct_notification_retry(-1, T0, "x", T0).await,
        store.direct_notification_failed(-1, "x", T0).await,
    ] {
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_message_deletes_its_recipients_and_notifications() {
    let dir = temp();
    let store = open(&dir);
    let gone = submit(&store, message("<gone@a>", T0, &["r@b", "q@b"])).await;
    let kept = submit(&store, message("<kept@a>", T0, &["r@b"])).await;
    store
        .set_direct_status(
            gone,
            "r@b",
            &[PROCESSED],
            DISPATCHED,
            None,
            None,
            Some(notification(Some("r@b"), "d")),
            T0,
        )
        .await
        .unwrap();
    store.close().await.unwrap();

    let conn = db(&dir);
    assert_eq!(count(&conn, "direct_notifications"), 3);
    conn.execute("DELETE FROM direct_messages WHERE id = ?1", [gone])
        .unwrap();
    assert_eq!(count(&conn, "direct_recipients"), 1);
    assert_eq!(count(&conn, "direct_notifications"), 1);
    drop(conn);

    let store = open(&dir);
    assert_eq!(store.direct_message_by_id(gone).await.unwrap(), None);
    assert_eq!(store.direct_notifications(gone).await.unwrap(), vec![]);
    assert_eq!(
        store
            .direct_message_by_id(kept)
            .await
            .unwrap()
            .unwrap()
            .1
            .len(),
        1
    );
    store.close().await.unwrap();
}

/// The query planner uses the indexes migration 0005 made for the workers.
#[test]
fn direct_query_plans_use_the_indexes() {
    let (_dir, conn) = migrated_connection();
    let plan = |sql: &str| query_plan(&conn, sql);
    let due = plan(
        "SELECT m.id, m.body, r.recipient FROM direct_recipients r \
         JOIN direct_messages m ON m.id = r.message \
         WHERE r.status IN ('PROCESSED', 'SMTPINIT') AND r.next_attempt_at <= 5 \
         ORDER BY r.next_attempt_at, r.message, r.position LIMIT 10",
    );
    assert!(due.contains("direct_recipients_due"), "{due}");
    assert!(!due.contains("TEMP B-TREE"), "{due}");
    let next = plan(
        "SELECT next_attempt_at FROM direct_recipients \
         WHERE status IN ('PROCESSED', 'SMTPINIT') ORDER BY next_attempt_at LIMIT 1",
    );
    assert!(next.contains("direct_recipients_due"), "{next}");
    let notes = plan(
        "SELECT id FROM direct_notifications WHERE state = 'pending' AND next_attempt_at <= 5 \
         ORDER BY id LIMIT 10",
    );
    assert!(notes.contains("direct_notifications_due"), "{notes}");
    let next_note = plan(
        "SELECT next_attempt_at FROM direct_notifications WHERE state = 'pending' \
         ORDER BY next_attempt_at LIMIT 1",
    );
    assert!(
        next_note.contains("direct_notifications_due"),
        "{next_note}"
    );
    let of_message = plan("SELECT * FROM direct_notifications WHERE message = 1 ORDER BY id");
    assert!(
        of_message.contains("direct_notifications_message"),
        "{of_message}"
    );
    assert!(!of_message.contains("TEMP B-TREE"), "{of_message}");
    let recipients = plan("SELECT * FROM direct_recipients WHERE message = 1 ORDER BY position");
    assert!(recipients.contains("PRIMARY KEY"), "{recipients}");
    let by_sender = plan("SELECT id FROM direct_messages WHERE sender = 'a' AND message_id = 'b'");
    assert!(
        by_sender.contains("sqlite_autoindex_direct_messages"),
        "{by_sender}"
    );
}
