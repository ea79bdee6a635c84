//! Tests of the web dashboard's users, sessions and audit log, against real
//! SQLite files.

use crate::tests::{migrated_connection, open, query_plan, temp};
use crate::*;

const A: &str = "clinic-a";
const B: &str = "clinic-b";
const T0: Millis = 1_700_000_000_000;
const HOUR: Millis = 3_600_000;

fn clock() -> Millis {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as Millis).unwrap_or(0)
}

fn db(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.path().join("data/medrelay.db")).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

fn count(conn: &rusqlite::Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_found_by_name_and_listed() {
    let dir = temp();
    let store = open(&dir);
    let before = clock();
    let alice = store
        .create_user(A, "alice", "admin", "hash-a")
        .await
        .unwrap();
    let after = clock();
    assert!(alice.id.parse::<i64>().is_ok(), "{}", alice.id);
    assert_eq!(
        (alice.org.as_str(), alice.name.as_str(), alice.role.as_str()),
        (A, "alice", "admin")
    );
    assert!((before..=after).contains(&alice.created_at));
    assert_eq!(
        (alice.failed_logins, alice.locked_until, alice.last_login_at),
        (0, None, None)
    );
    let carol = store
        .create_user(A, "carol", "viewer", "hash-c")
        .await
        .unwrap();
    let bob = store
        .create_user(A, "bob", "operator", "hash-b")
        .await
        .unwrap();

    let (found, hash) = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!((found, hash.as_str()), (alice.clone(), "hash-a"));
    assert_eq!(store.user_by_name("nobody").await.unwrap(), None);
    // Names are compared exactly.
    assert_eq!(store.user_by_name("Alice").await.unwrap(), None);

    assert_eq!(store.list_users(A).await.unwrap(), vec![alice, bob, carol]);

    // The name is the login: taken in any organisation.
    for org in [A, B] {
        let err = store
            .create_user(org, "alice", "viewer", "other")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
    assert_eq!(store.list_users(A).await.unwrap().len(), 3);
    assert!(store.list_users(B).await.unwrap().is_empty());
    let (_, hash) = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(hash, "hash-a");
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_three_roles_and_non_empty_names_are_accepted() {
    let dir = temp();
    let store = open(&dir);
    for role in ["root", "Admin", "", "viewer "] {
        let err = store.create_user(A, "x", role, "h").await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{role:?}: {err:?}");
    }
    for name in ["", "  "] {
        let err = store.create_user(A, name, "viewer", "h").await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{name:?}: {err:?}");
    }
    assert!(store.list_users(A).await.unwrap().is_empty());
    for role in USER_ROLES {
        let u = store
            .create_user(A, &format!("u-{role}"), role, "h")
            .await
            .unwrap();
        assert_eq!(u.role, role);
    }
    // The schema enforces the same rule for writes that bypass the store.
    let err = db(&dir)
        .execute(
            "INSERT INTO users (org, name, role, password_hash, created_at) \
             VALUES ('a', 'sql', 'root', 'h', 0)",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("CHECK"), "{err}");
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lock_at_the_threshold_and_success_resets() {
    let dir = temp();
    let store = open(&dir);
    let u = store.create_user(A, "alice", "admin", "h").await.unwrap();
    let lock = 15 * 60_000;

    let after1 = store
        .record_login_failure(&u.id, T0, 3, lock)
        .await
        .unwrap();
    assert_eq!((after1.failed_logins, after1.locked_until), (1, None));
    let after2 = store
        .record_login_failure(&u.id, T0 + 1, 3, lock)
        .await
        .unwrap();
    assert_eq!((after2.failed_logins, after2.locked_until), (2, None));
    let locked = store
        .record_login_failure(&u.id, T0 + 2, 3, lock)
        .await
        .unwrap();
    assert_eq!(
        (locked.failed_logins, locked.locked_until),
        (0, Some(T0 + 2 + lock))
    );
    // The returned user is what is stored.
    let (stored, _) = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(stored, locked);

    // Counting starts over after a lock; a later lock moves locked_until.
    let again = store
        .record_login_failure(&u.id, T0 + 3, 3, lock)
        .await
        .unwrap();
    assert_eq!(
        (again.failed_logins, again.locked_until),
        (1, Some(T0 + 2 + lock))
    );

    store.record_login_success(&u.id, T0 + 10).await.unwrap();
    let (ok, _) = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(
        (ok.failed_logins, ok.locked_until, ok.last_login_at),
        (0, None, Some(T0 + 10))
    );

    // A threshold of 1 locks at the first failure; 0 never locks.
    let one = store
        .record_login_failure(&u.id, T0 + 20, 1, lock)
        .await
        .unwrap();
    assert_eq!(
        (one.failed_logins, one.locked_until),
        (0, Some(T0 + 20 + lock))
    );
    store.record_login_success(&u.id, T0 + 21).await.unwrap();
    for n in 1..=5 {
        let never = store
            .record_login_failure(&u.id, T0 + 30, 0, lock)
            .await
            .unwrap();
        assert_eq!((never.failed_logins, never.locked_until), (n, None));
    }

    // Concurrent failures all count (the read-modify-write is one writer op).
    let bob = store.create_user(A, "bob", "viewer", "h").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, id) = (store.clone(), bob.id.clone());
            tokio::spawn(async move { store.record_login_failure(&id, T0, 100, lock).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (bob, _) = store.user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(bob.failed_logins, 8);

    for id in ["999", "abc", "01", ""] {
        let err = store
            .record_login_failure(id, T0, 3, lock)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{id:?}: {err:?}");
        let err = store.record_login_success(id, T0).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{id:?}: {err:?}");
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_carry_their_user_and_expire() {
    let dir = temp();
    let store = open(&dir);
    let u = store
        .create_user(A, "alice", "operator", "h")
        .await
        .unwrap();
    store
        .create_session("tok-1", &u.id, "csrf-1", T0, T0 + HOUR)
        .await
        .unwrap();

    let s = store.session_by_hash("tok-1", T0).await.unwrap().unwrap();
    assert_eq!(
        s,
        Session {
            token_hash: "tok-1".into(),
            user: u.clone(),
            csrf: "csrf-1".into(),
            created_at: T0,
            expires_at: T0 + HOUR,
            org: None,
        }
    );
    // A user of the whole installation points the session at an organisation.
    store.set_session_org("tok-1", "clinic-b").await.unwrap();
    let moved = store.session_by_hash("tok-1", T0).await.unwrap().unwrap();
    assert_eq!(moved.org.as_deref(), Some("clinic-b"));
    assert!(matches!(
        store.set_session_org("no-such", "x").await,
        Err(StoreError::NotFound)
    ));
    store.set_session_org("tok-1", "default").await.unwrap();
    // The user is read with the session, so it shows the user's current state.
    store.record_login_success(&u.id, T0 + 5).await.unwrap();
    let s = store
        .session_by_hash("tok-1", T0 + HOUR - 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.user.last_login_at, Some(T0 + 5));
    // Expired at expires_at itself.
    assert_eq!(
        store.session_by_hash("tok-1", T0 + HOUR).await.unwrap(),
        None
    );
    assert_eq!(store.session_by_hash("nope", T0).await.unwrap(), None);

    let err = store
        .create_session("tok-1", &u.id, "c", T0, T0 + HOUR)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    for id in ["999", "x"] {
        let err = store
            .create_session("tok-2", id, "c", T0, T0 + HOUR)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{id:?}: {err:?}");
    }

    store
        .create_session("tok-2", &u.id, "csrf-2", T0, T0 + HOUR)
        .await
        .unwrap();
    store.delete_session("tok-1").await.unwrap();
    assert_eq!(store.session_by_hash("tok-1", T0).await.unwrap(), None);
    assert!(store.session_by_hash("tok-2", T0).await.unwrap().is_some());
    // Logging out again is not an error.
    store.delete_session("tok-1").await.unwrap();
    store.delete_session("never-existed").await.unwrap();
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_only_expired_sessions_in_batches() {
    let dir = temp();
    let store = open(&dir);
    let u = store.create_user(A, "alice", "viewer", "h").await.unwrap();
    // More than one prune batch, written directly to keep the test quick.
    {
        let mut conn = db(&dir);
        let tx = conn.transaction().unwrap();
        for i in 0..2_500_i64 {
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) \
                 VALUES (?1, ?2, 'c', ?3, ?4)",
                rusqlite::params![format!("old-{i}"), u.id, T0, T0 + i],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    store
        .create_session("live", &u.id, "c", T0, T0 + 10 * HOUR)
        .await
        .unwrap();
    store
        .create_session("edge", &u.id, "c", T0, T0 + 2_500)
        .await
        .unwrap();

    // expires_at <= now is expired, like session_by_hash.
    assert_eq!(store.prune_sessions(T0 + 2_500).await.unwrap(), 2_501);
    assert_eq!(count(&db(&dir), "sessions"), 1);
    assert!(store.session_by_hash("live", T0).await.unwrap().is_some());
    assert_eq!(store.prune_sessions(T0 + 2_500).await.unwrap(), 0);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_sessions_are_gone() {
    let dir = temp();
    let store = open(&dir);
    let alice = store.create_user(A, "alice", "viewer", "h").await.unwrap();
    let bob = store.create_user(A, "bob", "viewer", "h").await.unwrap();
    for (tok, id) in [("a1", &alice.id), ("a2", &alice.id), ("b1", &bob.id)] {
        store
            .create_session(tok, id, "c", T0, T0 + HOUR)
            .await
            .unwrap();
    }
    let conn = db(&dir);
    conn.execute("DELETE FROM users WHERE id = ?1", [&alice.id])
        .unwrap();
    assert_eq!(count(&conn, "sessions"), 1);
    assert_eq!(store.session_by_hash("a1", T0).await.unwrap(), None);
    assert_eq!(store.session_by_hash("a2", T0).await.unwrap(), None);
    assert_eq!(
        store.session_by_hash("b1", T0).await.unwrap().unwrap().user,
        bob
    );
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_appends_and_pages_newest_first() {
    let dir = temp();
    let store = open(&dir);
    let before = clock();
    for i in 0..5 {
        let detail = (i % 2 == 0).then(|| format!("{{\"n\":{i}}}"));
        store
            .audit(
                A,
                "alice",
                "device.rename",
                &format!("dev-{i}"),
                detail.as_deref(),
            )
            .await
            .unwrap();
    }
    let after = clock();
    let all = store.list_audit(A, 100, None).await.unwrap();
    let subjects: Vec<_> = all.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["dev-4", "dev-3", "dev-2", "dev-1", "dev-0"]);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let e = &all[0];
    assert_eq!(
        (e.org.as_str(), e.actor.as_str(), e.action.as_str()),
        (A, "alice", "device.rename")
    );
    assert_eq!(e.detail.as_deref(), Some("{\"n\":4}"));
    assert_eq!(all[1].detail, None);
    assert!(all.iter().all(|e| (before..=after).contains(&e.at)));

    // Pages: each starts before the last id of the previous one.
    let p1 = store.list_audit(A, 2, None).await.unwrap();
    let p2 = store.list_audit(A, 2, Some(p1[1].id)).await.unwrap();
    let p3 = store.list_audit(A, 2, Some(p2[1].id)).await.unwrap();
    let p4 = store.list_audit(A, 2, Some(p3[0].id)).await.unwrap();
    assert_eq!([p1.clone(), p2, p3.clone()].concat(), all);
    assert_eq!(p3.len(), 1);
    assert!(p4.is_empty());
    assert!(store.list_audit(A, 0, None).await.unwrap().is_empty());
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_audit_are_isolated_by_organisation() {
    let dir = temp();
    let store = open(&dir);
    let a = store.create_user(A, "alice", "admin", "h").await.unwrap();
    let b = store.create_user(B, "bert", "admin", "h").await.unwrap();
    store
        .audit(A, "alice", "login", "alice", None)
        .await
        .unwrap();
    store.audit(B, "bert", "login", "bert", None).await.unwrap();
    store
        .audit(A, "alice", "logout", "alice", None)
        .await
        .unwrap();

    assert_eq!(store.list_users(A).await.unwrap(), vec![a]);
    assert_eq!(store.list_users(B).await.unwrap(), vec![b]);
    assert!(store.list_users("other").await.unwrap().is_empty());

    let log_a = store.list_audit(A, 10, None).await.unwrap();
    let actions: Vec<_> = log_a.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["logout", "login"]);
    assert!(log_a.iter().all(|e| e.org == A));
    let log_b = store.list_audit(B, 10, None).await.unwrap();
    assert_eq!(log_b.len(), 1);
    assert_eq!(log_b[0].actor, "bert");
    // Another org's cursor only pages within the asked org.
    let page = store.list_audit(A, 10, Some(log_b[0].id)).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].action, "login");
    store.close().await.unwrap();
}

/// The query planner uses the indexes migration 0006 made.
#[test]
fn dashboard_query_plans_use_the_indexes() {
    let (_dir, conn) = migrated_connection();
    let plan = |sql: &str| query_plan(&conn, sql);
    let audit = plan(
        "SELECT id, org, at, actor, action, subject, detail FROM audit_log \
         WHERE org = 'a' AND id < 10 ORDER BY id DESC LIMIT 50",
    );
    assert!(audit.contains("audit_log_org"), "{audit}");
    assert!(!audit.contains("TEMP B-TREE"), "{audit}");
    let prune =
        plan("SELECT token_hash FROM sessions WHERE expires_at <= 5 ORDER BY expires_at LIMIT 10");
    assert!(prune.contains("sessions_expiry"), "{prune}");
    assert!(!prune.contains("TEMP B-TREE"), "{prune}");
    let cascade = plan("SELECT 1 FROM sessions WHERE user_id = 1");
    assert!(cascade.contains("sessions_user"), "{cascade}");
    let users = plan("SELECT id FROM users WHERE org = 'a' ORDER BY name");
    assert!(users.contains("users_org"), "{users}");
    assert!(!users.contains("TEMP B-TREE"), "{users}");
    let session = plan(
        "SELECT s.csrf, u.name FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = 'x' AND s.expires_at > 5",
    );
    assert!(!session.contains("SCAN"), "{session}");
}

#[tokio::test]
async fn channel_states_are_remembered_and_replaced() {
    let dir = temp();
    let store = open(&dir);
    assert!(store.channel_states().await.unwrap().is_empty());
    store
        .set_channel_state("nextgen", "paused", "olga")
        .await
        .unwrap();
    store
        .set_channel_state("adt", "stopped", "olga")
        .await
        .unwrap();
    store
        .set_channel_state("nextgen", "running", "piet")
        .await
        .unwrap();
    let states: Vec<(String, String, String)> = store
        .channel_states()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.channel, s.state, s.changed_by))
        .collect();
    assert_eq!(
        states,
        [
            ("adt".into(), "stopped".into(), "olga".into()),
            ("nextgen".into(), "running".into(), "piet".into()),
        ]
    );
    assert!(matches!(
        store.set_channel_state("adt", "asleep", "olga").await,
        Err(StoreError::Invalid(_))
    ));
    // Kept across a reopen.
    store.close().await.unwrap();
    let store = open(&dir);
    assert_eq!(store.channel_states().await.unwrap().len(), 2);
}
