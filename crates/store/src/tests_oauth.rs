//! Tests of the OAuth 2.0 clients and access tokens, against real SQLite files.

use std::time::Duration;

use crate::oauth::token_hash;
use crate::tests::{migrated_connection, query_plan, temp};
use crate::*;

const A: &str = "clinic-a";
const B: &str = "clinic-b";

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_sqlite(&dir.path().join("medrelay.db"), SqliteOptions::default())
        .expect("open store")
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn clock() -> Millis {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as Millis).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_created_with_a_hashed_secret_and_verified() {
    let dir = temp();
    let store = open(&dir);
    let before = clock();
    let new = store
        .create_oauth_client(A, "join", &scopes(&["appointments:write", "b", "b"]))
        .await
        .unwrap();
    let c = &new.client;
    assert!(c.id.starts_with("mrc_") && c.id.len() == 36, "{}", c.id);
    assert_eq!((c.org.as_str(), c.name.as_str()), (A, "join"));
    assert_eq!(
        c.scopes,
        scopes(&["appointments:write", "b"]),
        "repeats dropped"
    );
    assert!(c.created_at >= before && !c.disabled);
    assert_eq!(new.client_secret.len(), 43);
    assert!(!format!("{new:?}").contains(&new.client_secret));

    // The secret is not stored, only its argon2id PHC string.
    let conn = rusqlite::Connection::open(dir.path().join("medrelay.db")).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT secret_hash FROM oauth_clients WHERE id = ?1",
            [&c.id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains(&new.client_secret));

    assert_eq!(store.oauth_client(&c.id).await.unwrap().as_ref(), Some(c));
    assert_eq!(store.oauth_client("mrc_nope").await.unwrap(), None);
    assert_eq!(
        store
            .verify_client_secret(&c.id, &new.client_secret)
            .await
            .unwrap()
            .as_ref(),
        Some(c)
    );
    assert_eq!(
        store.verify_client_secret(&c.id, "wrong").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .verify_client_secret("mrc_nope", &new.client_secret)
            .await
            .unwrap(),
        None
    );
    // Two clients never share an id or a secret.
    let other = store.create_oauth_client(A, "join", &[]).await.unwrap();
    assert_ne!(other.client.id, c.id);
    assert_ne!(other.client_secret, new.client_secret);
    assert!(other.client.scopes.is_empty());
    assert_eq!(
        store
            .verify_client_secret(&c.id, &other.client_secret)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_scopes_and_names_are_refused() {
    let dir = temp();
    let store = open(&dir);
    for bad in [&["a b"][..], &["a\"b"], &[""]] {
        assert!(matches!(
            store.create_oauth_client(A, "x", &scopes(bad)).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        store.create_oauth_client(A, " ", &[]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.list_oauth_clients(A).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_listed_and_deleted_per_organisation() {
    let dir = temp();
    let store = open(&dir);
    let a1 = store.create_oauth_client(A, "one", &[]).await.unwrap();
    let a2 = store.create_oauth_client(A, "two", &[]).await.unwrap();
    let b1 = store.create_oauth_client(B, "one", &[]).await.unwrap();
    let names = |list: Vec<OAuthClient>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let mut expected_a = vec![a1.client.id.clone(), a2.client.id.clone()];
    let mut listed_a = names(store.list_oauth_clients(A).await.unwrap());
    expected_a.sort();
    listed_a.sort();
    assert_eq!(listed_a, expected_a);
    assert_eq!(
        names(store.list_oauth_clients(B).await.unwrap()),
        vec![b1.client.id.clone()]
    );
    // Another organisation's client is not found.
    assert!(matches!(
        store.delete_oauth_client(A, &b1.client.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_oauth_client_disabled(A, &b1.client.id, true)
            .await,
        Err(StoreError::NotFound)
    ));
    store.delete_oauth_client(A, &a1.client.id).await.unwrap();
    assert!(matches!(
        store.delete_oauth_client(A, &a1.client.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        names(store.list_oauth_clients(A).await.unwrap()),
        vec![a2.client.id.clone()]
    );
    assert_eq!(
        store
            .verify_client_secret(&a1.client.id, &a1.client_secret)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_as_hashes_and_found_with_their_expiry() {
    let dir = temp();
    let store = open(&dir);
    let c = store
        .create_oauth_client(A, "join", &scopes(&["read", "write"]))
        .await
        .unwrap()
        .client;
    let before = clock();
    let issued = store
        .issue_oauth_token(&c.id, A, &scopes(&["write"]), Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(issued.access_token.starts_with("mro_"));
    assert!(!format!("{issued:?}").contains(&issued.access_token));
    let t = &issued.token;
    assert_eq!(
        (t.client_id.as_str(), t.org.as_str(), t.scopes.clone()),
        (c.id.as_str(), A, scopes(&["write"]))
    );
    assert!(t.created_at >= before);
    assert_eq!(t.expires_at, t.created_at + 3_600_000);
    assert!(!t.is_expired(t.created_at) && t.is_expired(t.expires_at));
    assert!(t.has_scope("write") && !t.has_scope("read"));

    let found = store
        .oauth_token_by_hash(&token_hash(&issued.access_token))
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(t));
    // The token itself is no key: only its hash is stored.
    assert_eq!(
        store
            .oauth_token_by_hash(&issued.access_token)
            .await
            .unwrap(),
        None
    );
    let conn = rusqlite::Connection::open(dir.path().join("medrelay.db")).unwrap();
    let leaked: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM oauth_tokens WHERE token_hash = ?1",
            [&issued.access_token],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaked, 0);

    // Two tokens for the same grant differ.
    let again = store
        .issue_oauth_token(&c.id, A, &[], Duration::from_secs(60))
        .await
        .unwrap();
    assert_ne!(again.access_token, issued.access_token);
    assert!(again.token.scopes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_only_issued_within_the_clients_grant() {
    let dir = temp();
    let store = open(&dir);
    let c = store
        .create_oauth_client(A, "join", &scopes(&["read"]))
        .await
        .unwrap()
        .client;
    let ttl = Duration::from_secs(60);
    assert!(matches!(
        store
            .issue_oauth_token(&c.id, A, &scopes(&["write"]), ttl)
            .await,
        Err(StoreError::Invalid(_))
    ));
    // Wrong organisation, unknown client.
    assert!(matches!(
        store.issue_oauth_token(&c.id, B, &[], ttl).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.issue_oauth_token("mrc_nope", A, &[], ttl).await,
        Err(StoreError::NotFound)
    ));
    let conn = rusqlite::Connection::open(dir.path().join("medrelay.db")).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM oauth_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_or_deleting_a_client_revokes_its_tokens() {
    let dir = temp();
    let store = open(&dir);
    let new = store.create_oauth_client(A, "join", &[]).await.unwrap();
    let c = new.client;
    let ttl = Duration::from_secs(60);
    let t = store.issue_oauth_token(&c.id, A, &[], ttl).await.unwrap();
    let h = token_hash(&t.access_token);
    assert!(store.oauth_token_by_hash(&h).await.unwrap().is_some());

    store
        .set_oauth_client_disabled(A, &c.id, true)
        .await
        .unwrap();
    assert!(store.oauth_client(&c.id).await.unwrap().unwrap().disabled);
    assert_eq!(store.oauth_token_by_hash(&h).await.unwrap(), None);
    assert_eq!(
        store
            .verify_client_secret(&c.id, &new.client_secret)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store.issue_oauth_token(&c.id, A, &[], ttl).await,
        Err(StoreError::NotFound)
    ));

    store
        .set_oauth_client_disabled(A, &c.id, false)
        .await
        .unwrap();
    assert!(store.oauth_token_by_hash(&h).await.unwrap().is_some());

    store.delete_oauth_client(A, &c.id).await.unwrap();
    assert_eq!(store.oauth_token_by_hash(&h).await.unwrap(), None);
    let conn = rusqlite::Connection::open(dir.path().join("medrelay.db")).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM oauth_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the tokens went with their client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_pruned_and_live_ones_kept() {
    let dir = temp();
    let store = open(&dir);
    let c = store
        .create_oauth_client(A, "join", &[])
        .await
        .unwrap()
        .client;
    let short = store
        .issue_oauth_token(&c.id, A, &[], Duration::from_millis(1))
        .await
        .unwrap();
    let long = store
        .issue_oauth_token(&c.id, A, &[], Duration::from_secs(3600))
        .await
        .unwrap();
    // Nothing has expired yet at the short token's creation time.
    assert_eq!(
        store
            .prune_oauth_tokens(short.token.created_at)
            .await
            .unwrap(),
        0
    );
    let found = store
        .oauth_token_by_hash(&token_hash(&short.access_token))
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_expired(short.token.expires_at));
    assert_eq!(
        store
            .prune_oauth_tokens(short.token.expires_at)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .oauth_token_by_hash(&token_hash(&short.access_token))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .oauth_token_by_hash(&token_hash(&long.access_token))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_crosses_batches() {
    let dir = temp();
    let store = open(&dir);
    let c = store
        .create_oauth_client(A, "join", &[])
        .await
        .unwrap()
        .client;
    // More than one prune batch of expired rows, written directly.
    let n = 2 * 1000 + 7;
    {
        let mut conn = rusqlite::Connection::open(dir.path().join("medrelay.db")).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..n {
            tx.execute(
                "INSERT INTO oauth_tokens (token_hash, client_id, org, scopes, expires_at, \
                 created_at) VALUES (?1, ?2, ?3, '', ?4, 0)",
                rusqlite::params![format!("h{i}"), c.id, A, 100 + i as i64],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    assert_eq!(store.prune_oauth_tokens(50).await.unwrap(), 0);
    assert_eq!(store.prune_oauth_tokens(1_000_000).await.unwrap(), n as u64);
    assert_eq!(store.oauth_token_by_hash("h5").await.unwrap(), None);
}

/// Token look-up and pruning use their indexes.
#[test]
fn oauth_query_plans_use_the_indexes() {
    let (_dir, conn) = migrated_connection();
    let prune = query_plan(
        &conn,
        "SELECT token_hash FROM oauth_tokens WHERE expires_at <= 5 ORDER BY expires_at LIMIT 10",
    );
    assert!(prune.contains("oauth_tokens_expiry"), "{prune}");
    let by_hash = query_plan(
        &conn,
        "SELECT t.client_id FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id \
         WHERE t.token_hash = 'x' AND c.disabled = 0",
    );
    assert!(
        by_hash.contains("SEARCH t USING PRIMARY KEY") && by_hash.contains("SEARCH c"),
        "{by_hash}"
    );
    let cascade = query_plan(&conn, "DELETE FROM oauth_tokens WHERE client_id = 'x'");
    assert!(cascade.contains("oauth_tokens_client"), "{cascade}");
}
