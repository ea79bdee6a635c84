//! The token endpoint and the extractor through the real router (in memory,
//! `tower::ServiceExt::oneshot`) over a real SQLite store in a temp directory;
//! the rate limiter with explicit instants.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medrelay_store::{NewOAuthClient, SqliteOptions, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

struct Harness {
    app: Router,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn harness(ttl: Duration, rate: f64, burst: u32) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("medrelay.db"), SqliteOptions::default())
        .expect("open store");
    let engine = medrelay_engine::Engine::start(store.clone(), &[], &[], Duration::from_secs(1))
        .await
        .expect("engine");
    let state = AppState {
        metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle(),
        started: Instant::now(),
        store: store.clone(),
        results: engine.results(),
        max_body: 1 << 20,
        oauth_token_ttl: ttl,
        oauth_token_limiter: RateLimiter::new(rate, burst),
        pushes: Default::default(),
        pollers: Default::default(),
        fhir: Default::default(),
        direct: None,
        components: Default::default(),
        pipelines: Default::default(),
    };
    // Two routes that only this test has: what the extractor lets through.
    let probes = Router::new()
        .route("/probe", get(probe))
        .route("/probe/write", get(probe_write))
        .with_state(state.clone());
    Harness {
        app: crate::router(state).merge(probes),
        store,
        _dir: dir,
    }
}

async fn probe(bearer: OAuthBearer) -> Json<Value> {
    Json(json!({
        "client_id": bearer.client_id(),
        "org": bearer.org(),
        "scopes": bearer.scopes(),
    }))
}

async fn probe_write(bearer: OAuthBearer) -> Result<StatusCode, ApiError> {
    bearer.require_scope("write")?;
    Ok(StatusCode::NO_CONTENT)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `POST /oauth/token` with a form body and extra headers.
    async fn token(&self, form: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::post("/oauth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    async fn token_basic(&self, id: &str, secret: &str, form: &str) -> Answer {
        let auth = basic(id, secret);
        self.token(form, &[("Authorization", &auth)]).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn client(&self, org: &str, scopes: &[&str]) -> NewOAuthClient {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.store
            .create_oauth_client(org, "ehr", &scopes)
            .await
            .unwrap()
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn assert_oauth_error(a: &Answer, status: StatusCode, error: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["error"], error, "{}", a.body);
    assert!(
        a.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        a.body
    );
    assert_eq!(a.header(header::CACHE_CONTROL), "no-store");
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_with_basic_or_form_credentials_and_accepted() {
    let h = harness(HOUR, 10.0, 20).await;
    let c = h.client("clinic-a", &["read", "write"]).await;
    let id = c.client.id.as_str();

    let a = h
        .token_basic(id, &c.client_secret, "grant_type=client_credentials")
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(a.header(header::PRAGMA), "no-cache");
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 3600);
    assert_eq!(a.body["scope"], "read write", "all the client's scopes");
    let token = a.body["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mro_"), "{token}");

    let p = h.get("/probe", Some(&token)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(
        p.body,
        json!({"client_id": id, "org": "clinic-a", "scopes": ["read", "write"]})
    );
    assert_eq!(
        h.get("/probe/write", Some(&token)).await.status,
        StatusCode::NO_CONTENT
    );

    // Form credentials, a narrower scope.
    let form = format!(
        "grant_type=client_credentials&client_id={id}&client_secret={}&scope=read",
        c.client_secret
    );
    let a = h.token(&form, &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["scope"], "read");
    let narrow = a.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(narrow, token);
    let p = h.get("/probe", Some(&narrow)).await;
    assert_eq!(p.body["scopes"], json!(["read"]));
    let w = h.get("/probe/write", Some(&narrow)).await;
    assert_eq!(w.status, StatusCode::FORBIDDEN, "{}", w.body);
    assert_eq!(w.body["error"]["code"], "insufficient_scope");
    let challenge = w.header(header::WWW_AUTHENTICATE);
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"write\""),
        "{challenge}"
    );

    // Basic with the client id repeated in the form, and the charset parameter.
    let auth = basic(id, &c.client_secret);
    let a = h
        .token(
            &format!("grant_type=client_credentials&client_id={id}&scope="),
            &[
                ("Authorization", &auth),
                (
                    "Content-Type",
                    "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                ),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["scope"], "read write",
        "an empty scope counts as absent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_client_authentication_is_invalid_client_with_a_basic_challenge() {
    let h = harness(HOUR, 10.0, 20).await;
    let c = h.client("default", &[]).await;
    let id = c.client.id.as_str();
    let grant = "grant_type=client_credentials";

    let cases = [
        h.token_basic(id, "wrong-secret", grant).await,
        h.token_basic(
            "mrc_00000000000000000000000000000000",
            &c.client_secret,
            grant,
        )
        .await,
        h.token(&format!("{grant}&client_id={id}&client_secret=wrong"), &[])
            .await,
        h.token(&format!("{grant}&client_id={id}"), &[]).await,
        h.token(grant, &[]).await,
        h.token(grant, &[("Authorization", "Bearer something")])
            .await,
        h.token(grant, &[("Authorization", "Basic !!!")]).await,
    ];
    for (i, a) in cases.iter().enumerate() {
        assert_oauth_error(a, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(
            a.header(header::WWW_AUTHENTICATE).starts_with("Basic "),
            "case {i}: {:?}",
            a.headers
        );
        assert!(a.body.get("access_token").is_none());
    }

    // A disabled client cannot authenticate; enabled again, it can.
    h.store
        .set_oauth_client_disabled("default", id, true)
        .await
        .unwrap();
    let a = h.token_basic(id, &c.client_secret, grant).await;
    assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    h.store
        .set_oauth_client_disabled("default", id, false)
        .await
        .unwrap();
    assert_eq!(
        h.token_basic(id, &c.client_secret, grant).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_token_requests_get_rfc_6749_errors() {
    let h = harness(HOUR, 10.0, 20).await;
    let c = h.client("default", &["read"]).await;
    let (id, secret) = (c.client.id.as_str(), c.client_secret.as_str());

    let a = h.token_basic(id, secret, "grant_type=password").await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let a = h.token_basic(id, secret, "scope=read").await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_request");
    let a = h
        .token_basic(
            id,
            secret,
            "grant_type=client_credentials&grant_type=client_credentials",
        )
        .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_request");
    // Two authentication methods at once.
    let a = h
        .token_basic(
            id,
            secret,
            &format!("grant_type=client_credentials&client_secret={secret}"),
        )
        .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_request");
    let a = h
        .token_basic(
            id,
            secret,
            "grant_type=client_credentials&client_id=mrc_someone_else",
        )
        .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_request");

    // Scopes: not granted, malformed.
    let a = h
        .token_basic(id, secret, "grant_type=client_credentials&scope=read+write")
        .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_scope");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("write")
    );
    let a = h
        .token_basic(id, secret, "grant_type=client_credentials&scope=%22read%22")
        .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_scope");

    // Not a form.
    let auth = basic(id, secret);
    let req = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, &auth)
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .unwrap();
    let a = h.send(req).await;
    assert_oauth_error(&a, StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request");
    let req = Request::post("/oauth/token")
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Too large.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(MAX_TOKEN_REQUEST)
    );
    let a = h.token_basic(id, secret, &big).await;
    assert_oauth_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");

    // Nothing above issued a token.
    assert_eq!(remove_all_tokens(&h).await, 0);
}

/// Deletes every token (as if pruning far in the future) and says how many
/// there were.
async fn remove_all_tokens(h: &Harness) -> u64 {
    h.store.prune_oauth_tokens(i64::MAX).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_is_rate_limited_per_client() {
    // 2 at once, then one per 100 s: the third request is refused (argon2 in
    // a debug build takes about a second, so a faster rate would refill).
    let h = harness(HOUR, 0.01, 2).await;
    let c = h.client("default", &[]).await;
    let other = h.client("default", &[]).await;
    let id = c.client.id.as_str();
    let grant = "grant_type=client_credentials";

    // Guessing: wrong secrets count like right ones.
    let a = h.token_basic(id, "guess-1", grant).await;
    assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    let a = h.token_basic(id, &c.client_secret, grant).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = h.token_basic(id, &c.client_secret, grant).await;
    assert_oauth_error(&a, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = a.header(header::RETRY_AFTER).parse().unwrap();
    assert!((60..=100).contains(&retry), "Retry-After {retry}");
    assert!(a.body.get("access_token").is_none());

    // Another client has its own bucket.
    let a = h
        .token_basic(&other.client.id, &other.client_secret, grant)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extractor_rejects_missing_unknown_revoked_and_expired_tokens() {
    // 3 s: short enough to wait for, long enough that the first probe is
    // surely inside it even on a loaded machine.
    let h = harness(Duration::from_secs(3), 10.0, 20).await;

    let a = h.get("/probe", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.header(header::WWW_AUTHENTICATE),
        "Bearer realm=\"medrelay\""
    );
    for bad in ["mro_unknown", "mra_an-admin-token", "x"] {
        let a = h.get("/probe", Some(bad)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(a.body["error"]["code"], "invalid_token");
        assert!(
            a.header(header::WWW_AUTHENTICATE)
                .contains("error=\"invalid_token\""),
            "{:?}",
            a.headers
        );
    }

    let c = h.client("default", &[]).await;
    let a = h
        .token_basic(
            &c.client.id,
            &c.client_secret,
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(a.body["expires_in"], 3);
    let token = a.body["access_token"].as_str().unwrap().to_owned();
    // Valid now (issued a moment ago with a 3 s lifetime) …
    let first = h.get("/probe", Some(&token)).await;
    // … and refused once it expired, waited for with a deadline.
    let expired = medrelay_testkit::wait_for(
        "the access token to expire",
        Duration::from_secs(15),
        || async {
            let a = h.get("/probe", Some(&token)).await;
            (a.status != StatusCode::OK).then_some(a)
        },
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body["error"]["code"], "invalid_token");
    assert!(
        expired.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert!(
        expired
            .header(header::WWW_AUTHENTICATE)
            .contains("error=\"invalid_token\"")
    );

    // Revoked with its client.
    let c = h.client("default", &[]).await;
    let a = h
        .token_basic(
            &c.client.id,
            &c.client_secret,
            "grant_type=client_credentials",
        )
        .await;
    let token = a.body["access_token"].as_str().unwrap().to_owned();
    h.store
        .delete_oauth_client("default", &c.client.id)
        .await
        .unwrap();
    let a = h.get("/probe", Some(&token)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"]["code"], "invalid_token");
}

#[test]
fn rate_limiter_is_a_token_bucket_per_key() {
    let l = RateLimiter::new(2.0, 3);
    let t0 = Instant::now();
    for _ in 0..3 {
        assert_eq!(l.check_at("a", t0), Ok(()));
    }
    let refused = l.check_at("a", t0).unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_millis(500));
    assert_eq!(refused.retry_after_secs(), 1);
    // Another key is not affected.
    assert_eq!(l.check_at("b", t0), Ok(()));
    // Half a second later one request is allowed again, not two.
    let t1 = t0 + Duration::from_millis(500);
    assert_eq!(l.check_at("a", t1), Ok(()));
    assert!(l.check_at("a", t1).is_err());
    // After a long pause the bucket holds `burst`, never more.
    let t2 = t1 + Duration::from_secs(60);
    for _ in 0..3 {
        assert_eq!(l.check_at("a", t2), Ok(()));
    }
    assert!(l.check_at("a", t2).is_err());

    // Retry-After rounds up to whole seconds.
    let slow = RateLimiter::new(0.4, 1);
    assert_eq!(slow.check_at("k", t0), Ok(()));
    let r = slow.check_at("k", t0).unwrap_err();
    assert_eq!(r.retry_after_secs(), 3, "{:?}", r.retry_after);
}

#[test]
fn rate_limiter_forgets_idle_keys_as_it_grows() {
    let l = RateLimiter::new(100.0, 1);
    let t0 = Instant::now();
    for i in 0..SWEEP_MIN {
        l.check_at(&format!("k{i}"), t0).unwrap();
    }
    assert_eq!(l.tracked_keys(), SWEEP_MIN);
    // A second later every bucket is full again: the next new key sweeps them.
    let t1 = t0 + Duration::from_secs(1);
    l.check_at("busy", t1).unwrap();
    assert_eq!(l.tracked_keys(), 1);
    assert!(
        l.check_at("busy", t1).is_err(),
        "the live key kept its state"
    );
}

#[test]
fn rate_limited_is_a_429_with_retry_after() {
    let resp = RateLimited {
        retry_after: Duration::from_millis(1500),
    }
    .into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
}

#[test]
fn basic_credentials_are_form_decoded() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        basic("my%20client", "p%3Ass+w%2Bord").parse().unwrap(),
    );
    assert_eq!(
        basic_credentials(&headers).unwrap(),
        Some(("my client".to_string(), "p:ss w+ord".to_string()))
    );
    assert_eq!(form_decode("%zz"), None);
    assert_eq!(form_decode("a%"), None);
    assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
    assert_eq!(basic_credentials(&HeaderMap::new()).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_runs_until_shutdown() {
    let h = harness(HOUR, 10.0, 20).await;
    let c = h.client("default", &[]).await;
    let issued = h
        .store
        .issue_oauth_token(&c.client.id, "default", &[], Duration::from_millis(1))
        .await
        .unwrap();
    let hash = token_hash(&issued.access_token);
    medrelay_testkit::wait_for("the token to expire", Duration::from_secs(5), || async {
        (medrelay_engine::clock::now_ms() > issued.token.expires_at).then_some(())
    })
    .await;
    // Shutdown already requested: one pass, then it returns.
    tokio::time::timeout(
        Duration::from_secs(10),
        prune_expired_tokens(h.store.clone(), Duration::from_secs(3600), async {}),
    )
    .await
    .expect("returns at shutdown");
    assert_eq!(h.store.oauth_token_by_hash(&hash).await.unwrap(), None);
}
