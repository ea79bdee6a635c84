//! The cloud JSON integrations that push (Join, ZipLaneRx) end to end: the EHR
//! gets a token from medrelay's `/oauth/token` and POSTs appointments; a device
//! measures; medrelay POSTs the JSON result to the EHR, authenticated the way
//! the EHR wants (OAuth 2.0 with expiring tokens, or client id / secret).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use common::*;
use medrelay_testkit::{ServeProcess, free_port, http, sample_pdf, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The EHR's cloud: an OAuth 2.0 token endpoint whose tokens can be expired at
/// will, and a results endpoint that answers with the status it is told.
#[derive(Clone, Default)]
struct Cloud {
    issued: Arc<Mutex<HashMap<String, bool>>>,
    token_calls: Arc<AtomicU32>,
    status: Arc<AtomicU16>,
    results: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    attempts: Arc<AtomicU32>,
}

impl Cloud {
    async fn start() -> (Cloud, SocketAddr) {
        let cloud = Cloud::default();
        cloud.status.store(200, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (c1, c2) = (cloud.clone(), cloud.clone());
        let app = axum::Router::new()
            .route(
                "/token",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let c = c1.clone();
                    async move {
                        let (status, body) = c.token(&headers, &body);
                        (
                            status,
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            body,
                        )
                    }
                }),
            )
            .route(
                "/results",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let c = c2.clone();
                    async move { c.result(headers, &body) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (cloud, addr)
    }

    fn token(&self, headers: &HeaderMap, body: &str) -> (StatusCode, String) {
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if !body.contains("grant_type=client_credentials")
            || basic.as_deref() != Some("medrelay:cloud-secret")
        {
            return (
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client"}).to_string(),
            );
        }
        let n = self.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("cloud-token-{n}");
        self.issued.lock().unwrap().insert(token.clone(), true);
        (
            StatusCode::OK,
            json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}).to_string(),
        )
    }

    fn result(&self, headers: HeaderMap, body: &[u8]) -> (StatusCode, String) {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let valid = match &bearer {
            Some(t) => self.issued.lock().unwrap().get(t).copied().unwrap_or(false),
            // Client id / secret instead of a token.
            None => headers
                .get("x-client-secret")
                .is_some_and(|v| v == "zlr-secret"),
        };
        if !valid {
            return (
                StatusCode::UNAUTHORIZED,
                "{\"error\": \"invalid_token\"}".into(),
            );
        }
        let code = self.status.load(Ordering::SeqCst);
        if code == 200 {
            let doc = serde_json::from_slice(body).unwrap_or(Value::Null);
            self.results.lock().unwrap().push((headers, doc));
        }
        let status = StatusCode::from_u16(code).unwrap();
        (status, format!("{{\"status\": {code}}}"))
    }

    /// Every token issued so far stops working (the EHR's tokens expired).
    fn expire_tokens(&self) {
        for v in self.issued.lock().unwrap().values_mut() {
            *v = false;
        }
    }

    fn results(&self) -> Vec<(HeaderMap, Value)> {
        self.results.lock().unwrap().clone()
    }
}

struct Server {
    _process: ServeProcess,
    http: SocketAddr,
    cfg: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// `medrelay serve` with one integration (`inbound` and `outbound` as inline TOML
/// tables) and a device of `group`; returns the server and the device's token.
async fn serve_integration(
    preset: &str,
    group: &str,
    inbound: &str,
    outbound: &str,
) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let http_addr = free_port();
    let cfg = dir.path().join("medrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
data_dir = {data:?}
http = "{http_addr}"

[[integration]]
name = "{preset}"
preset = "{preset}"
group = "default"
inbound = {inbound}
outbound = {outbound}
"#,
            data = dir.path().join("data"),
        ),
    )
    .unwrap();
    check_ok(&cfg);
    let device = device_add_in(&cfg, "tablet-1", group, "default");
    let process = ServeProcess::start(BIN, &cfg, http_addr).await;
    (
        Server {
            _process: process,
            http: http_addr,
            cfg,
            _dir: dir,
        },
        device,
    )
}

/// A push integration whose results go to a test cloud.
async fn start(preset: &str, group: &str, outbound_auth: &str) -> (Server, Cloud, String) {
    let (cloud, cloud_addr) = Cloud::start().await;
    let auth = outbound_auth.replace("CLOUD", &cloud_addr.to_string());
    let (server, device) = serve_integration(
        preset,
        group,
        "{ push = { max_body_bytes = 65536, rate_per_second = 50, burst = 100 } }",
        &format!(
            r#"{{ url = "http://{cloud_addr}/results", auth = {auth}, retry = {{ initial = "100ms", max = "300ms" }} }}"#
        ),
    )
    .await;
    (server, cloud, device)
}

/// A token from medrelay's own `/oauth/token` for a client of `scopes`.
async fn medrelay_token(server: &Server, scopes: &[&str]) -> (String, String, String) {
    let (id, secret) = client_add_in(&server.cfg, "ehr", scopes, "default");
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (status, body) = http(
        server.http,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let token: Value = serde_json::from_slice(&body).unwrap();
    (
        token["access_token"].as_str().unwrap().to_string(),
        id,
        secret,
    )
}

async fn push(server: &Server, name: &str, auth: &str, ctype: &str, body: &[u8]) -> (u16, Value) {
    let (status, body) = http(
        server.http,
        "POST",
        &format!("/api/v1/integrations/{name}/appointments"),
        &[("Authorization", auth), ("Content-Type", ctype)],
        Some(body),
    )
    .await
    .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn cloud_order_to_result(preset: &str, group: &str, outbound_auth: &str, result_key: &str) {
    let (server, cloud, device) = start(preset, group, outbound_auth).await;
    let (token, id, _) = medrelay_token(&server, &["appointments"]).await;
    let bearer = format!("Bearer {token}");
    let example = std::fs::read(format!(
        "{}/../../examples/{preset}-appointments.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();

    let (status, body) = push(&server, preset, &bearer, "application/json", &example).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        !body["appointments"].as_array().unwrap().is_empty(),
        "{body}"
    );
    // The same body again: recognised, nothing applied twice.
    let (status, body) = push(&server, preset, &bearer, "application/json", &example).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], true);

    let list = worklist(server.http, &device).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let appt = &list[0];
    assert!(appt["patient"]["family"].is_string(), "{appt}");
    assert!(appt["patient"]["birth_date"].is_string(), "{appt}");
    assert!(appt["patient"]["sex"].is_string(), "{appt}");
    assert!(appt["procedure"]["code"].is_string(), "{appt}");
    assert!(appt["visit_number"].is_string(), "{appt}");
    assert_eq!(appt["group"], group);

    // The stored request names the client that pushed it.
    let admin = admin_token_in(&server.cfg, "default");
    let (_, msgs) = get_json(
        server.http,
        &format!("/api/v1/messages?channel={preset}"),
        &admin,
    )
    .await;
    let m = &msgs["messages"][0];
    assert!(m["peer"].as_str().unwrap().contains(&id), "{m}");

    // Result out, authenticated the EHR's way.
    let pdf = sample_pdf();
    let aid = appt["id"].as_str().unwrap();
    let (status, body) = post_json(
        server.http,
        "/api/v1/measurements",
        &device,
        &measurement(aid, &pdf),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let results = wait_for("the result at the EHR", WAIT, || async {
        let r = cloud.results();
        (!r.is_empty()).then_some(r)
    })
    .await;
    let (_, doc) = &results[0];
    let placer = appt["placer_order"].as_str().unwrap();
    assert_eq!(doc[result_key], placer, "{doc}");
    let text = doc.to_string();
    assert!(
        text.contains(&base64::engine::general_purpose::STANDARD.encode(&pdf)),
        "the PDF travels with the result"
    );

    // The EHR's token expires: the next result fetches a fresh one by itself.
    if outbound_auth.contains("oauth2") {
        let calls = cloud.token_calls.load(Ordering::SeqCst);
        cloud.expire_tokens();
        let (status, _) = post_json(
            server.http,
            "/api/v1/measurements",
            &device,
            &measurement(aid, &pdf),
        )
        .await;
        assert_eq!(status, 201);
        wait_for("the second result", WAIT, || async {
            (cloud.results().len() == 2).then_some(())
        })
        .await;
        assert_eq!(cloud.token_calls.load(Ordering::SeqCst), calls + 1);
    }

    // 429 and 503: retried, delivered once.
    let before = cloud.results().len();
    cloud.status.store(503, Ordering::SeqCst);
    let (_, body) = post_json(
        server.http,
        "/api/v1/measurements",
        &device,
        &measurement(aid, &pdf),
    )
    .await;
    let mid = body["id"].as_str().unwrap().to_string();
    let attempts = cloud.attempts.load(Ordering::SeqCst);
    wait_for("a refused attempt", WAIT, || async {
        (cloud.attempts.load(Ordering::SeqCst) > attempts).then_some(())
    })
    .await;
    cloud.status.store(429, Ordering::SeqCst);
    let attempts = cloud.attempts.load(Ordering::SeqCst);
    wait_for("another refused attempt", WAIT, || async {
        (cloud.attempts.load(Ordering::SeqCst) > attempts).then_some(())
    })
    .await;
    cloud.status.store(200, Ordering::SeqCst);
    wait_for("the result delivered", WAIT, || async {
        let (_, m) = get_json(server.http, &format!("/api/v1/measurements/{mid}"), &device).await;
        (m["deliveries"][0]["state"] == "sent").then_some(())
    })
    .await;
    assert_eq!(cloud.results().len(), before + 1, "delivered once");

    // 400: failed for good, visible with the EHR's answer.
    cloud.status.store(400, Ordering::SeqCst);
    let (_, body) = post_json(
        server.http,
        "/api/v1/measurements",
        &device,
        &measurement(aid, &pdf),
    )
    .await;
    let mid = body["id"].as_str().unwrap().to_string();
    let m = wait_for("the refused result failed", WAIT, || async {
        let (_, m) = get_json(server.http, &format!("/api/v1/measurements/{mid}"), &device).await;
        (m["deliveries"][0]["state"] == "failed").then_some(m)
    })
    .await;
    assert!(
        m["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("400"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_pushes_appointments_and_gets_results_with_oauth2() {
    cloud_order_to_result(
        "join",
        "angiology",
        r#"{ oauth2 = { token_url = "http://CLOUD/token", client_id = "medrelay", client_secret = "cloud-secret" } }"#,
        "appointmentId",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ziplanerx_pushes_appointments_and_gets_results_with_client_id_and_secret() {
    let doc: Value =
        serde_json::from_str(include_str!("../../../examples/ziplanerx-result.json")).unwrap();
    // The key the ZipLaneRx result carries its appointment id under.
    let key = ["appointment_id", "appointmentId", "id"]
        .into_iter()
        .find(|k| doc.get(*k).is_some())
        .unwrap();
    cloud_order_to_result(
        "ziplanerx",
        "pulmonology",
        r#"{ client_id = "zlr-client", client_secret = "zlr-secret" }"#,
        key,
    )
    .await;
}

/// What a pushing client gets wrong is answered clearly, and nothing of it is
/// applied: no or wrong credentials, a wrong secret at the token endpoint, a body
/// over the limit, the wrong content type, bad JSON, appointments without ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_refusals_are_clear() {
    let (server, _cloud, device) = start(
        "join",
        "angiology",
        r#"{ oauth2 = { token_url = "http://CLOUD/token", client_id = "medrelay", client_secret = "cloud-secret" } }"#,
    )
    .await;
    let (token, id, _) = medrelay_token(&server, &["appointments"]).await;
    let bearer = format!("Bearer {token}");
    let body = br#"{"appointments": []}"#;

    let (status, _) = push(
        &server,
        "join",
        "Bearer mro_nonsense",
        "application/json",
        body,
    )
    .await;
    assert_eq!(status, 401);
    // A wrong client secret at medrelay's token endpoint.
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret=wrong");
    let (status, _) = http(
        server.http,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    // A token without the scope.
    let (other, _, _) = medrelay_token(&server, &["fhir"]).await;
    let (status, _) = push(
        &server,
        "join",
        &format!("Bearer {other}"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = push(&server, "join", &bearer, "text/plain", body).await;
    assert_eq!(status, 415);
    let big = format!(
        "{{\"appointments\": [], \"pad\": \"{}\"}}",
        "x".repeat(70_000)
    );
    let (status, _) = push(&server, "join", &bearer, "application/json", big.as_bytes()).await;
    assert_eq!(status, 413);
    let (status, body) = push(&server, "join", &bearer, "application/json", b"{not json").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = push(
        &server,
        "join",
        &bearer,
        "application/json",
        br#"{"appointments": [{"status": "scheduled", "patient": {"patientId": "P1"}}]}"#,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = push(&server, "nope", &bearer, "application/json", b"{}").await;
    assert_eq!(status, 404);
    assert!(worklist(server.http, &device).await.is_empty());
    // The refused bodies are kept as evidence.
    let admin = admin_token_in(&server.cfg, "default");
    let (_, msgs) = get_json(
        server.http,
        "/api/v1/messages?channel=join&status=rejected",
        &admin,
    )
    .await;
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 2, "{msgs}");
}

/// One poll as the API saw it: method, query, body, headers.
type Poll = (String, String, String, HeaderMap);

/// A Leyr- or HALO-style API: answers appointment polls with pages it is given
/// and records each poll.
#[derive(Clone, Default)]
struct Api {
    pages: Arc<Mutex<HashMap<String, Value>>>,
    polls: Arc<Mutex<Vec<Poll>>>,
}

impl Api {
    async fn start() -> (Api, SocketAddr) {
        let api = Api::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let a = api.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: String| {
                let a = a.clone();
                async move {
                    let query = uri
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default();
                    a.polls.lock().unwrap().push((
                        method.to_string(),
                        query.clone(),
                        body,
                        headers,
                    ));
                    let page = a.pages.lock().unwrap().get(&query).cloned();
                    match page {
                        Some(p) => (StatusCode::OK, p.to_string()),
                        None => (StatusCode::NOT_FOUND, "{}".to_string()),
                    }
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (api, addr)
    }

    fn set(&self, query: &str, page: Value) {
        self.pages.lock().unwrap().insert(query.to_string(), page);
    }

    fn polls(&self) -> Vec<Poll> {
        self.polls.lock().unwrap().clone()
    }
}

async fn start_polled(
    preset: &str,
    group: &str,
    inbound: &str,
    outbound_url: &str,
) -> (Server, String) {
    serve_integration(
        preset,
        group,
        &format!("{{ poll = {inbound} }}"),
        &format!(
            r#"{{ url = "{outbound_url}", auth = {{ client_id = "mr", client_secret = "zlr-secret" }}, retry = {{ initial = "100ms", max = "300ms" }} }}"#
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vena_is_polled_on_each_worklist_request() {
    leyr_is_polled_on_each_worklist_request("vena").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdoc_is_polled_on_each_worklist_request() {
    leyr_is_polled_on_each_worklist_request("webdoc").await;
}

/// Vena and Webdoc through a Leyr-style API: fetched when a device asks for its
/// worklist, page after page, with client id and secret; a burst of devices
/// makes one call; a later change (a cancel) is applied on the next poll; the
/// result goes back with client id and secret.
async fn leyr_is_polled_on_each_worklist_request(preset: &str) {
    let (api, api_addr) = Api::start().await;
    let mut first: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../examples/{preset}-appointments.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let booked = first["data"][0]["id"].as_str().unwrap().to_string();
    let group = first["data"][0]["tablet_group"]
        .as_str()
        .unwrap()
        .to_string();
    first["next"] = json!(format!("http://{api_addr}/v1/appointments?cursor=2"));
    let mut second = json!({"data": [first["data"][0].clone()], "next": null});
    second["data"][0]["id"] = json!("apt_PAGE2");
    second["data"][0]["patient"]["id"] = json!("pat_PAGE2");
    api.set("/v1/appointments", first.clone());
    api.set("/v1/appointments?cursor=2", second);
    let (cloud, cloud_addr) = Cloud::start().await;
    let (server, device) = start_polled(
        preset,
        &group,
        &format!(
            r#"{{ url = "http://{api_addr}/v1/appointments", cache = "300ms", auth = {{ client_id = "vena-id", client_secret = "vena-secret" }} }}"#
        ),
        &format!("http://{cloud_addr}/results"),
    )
    .await;

    // Nothing is fetched until a device asks.
    assert!(api.polls().is_empty());
    let (a, b) = tokio::join!(
        worklist(server.http, &device),
        worklist(server.http, &device)
    );
    // Page 1 has one booked and one cancelled appointment; page 2 one more.
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(b.len(), 2);
    let polls = api.polls();
    assert_eq!(polls.len(), 2, "one call per page for the burst: {polls:?}");
    assert_eq!(polls[0].0, "GET");
    assert_eq!(polls[1].1, "/v1/appointments?cursor=2");
    assert_eq!(polls[0].3["x-client-id"], "vena-id");
    assert_eq!(polls[0].3["x-client-secret"], "vena-secret");
    let ids: Vec<&str> = a
        .iter()
        .map(|x| x["placer_order"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&booked.as_str()) && ids.contains(&"apt_PAGE2"),
        "{ids:?}"
    );

    // The EHR cancels one: the next worklist (after the cache time) drops it.
    first["data"][0]["status"] = json!("cancelled");
    api.set("/v1/appointments", first);
    let list = wait_for("the cancel applied", WAIT, || async {
        let l = worklist(server.http, &device).await;
        (l.len() == 1).then_some(l)
    })
    .await;
    assert_eq!(list[0]["placer_order"], "apt_PAGE2");

    // A result goes back with client id and secret.
    let pdf = sample_pdf();
    let aid = list[0]["id"].as_str().unwrap();
    let (status, body) = post_json(
        server.http,
        "/api/v1/measurements",
        &device,
        &measurement(aid, &pdf),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let results = wait_for("the result at Leyr", WAIT, || async {
        let r = cloud.results();
        (!r.is_empty()).then_some(r)
    })
    .await;
    let (headers, doc) = &results[0];
    assert_eq!(headers["x-client-id"], "mr");
    assert_eq!(doc["appointment_id"], "apt_PAGE2", "{doc}");
}

/// Best Practice through a HALO-style API: the SQL passthrough query POSTed with
/// the API key, the returned rows mapped; the result accepted with a status URL
/// and confirmed there later, without being sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_practice_posts_its_sql_query_and_waits_for_confirmation() {
    let (api, api_addr) = Api::start().await;
    api.set(
        "/halo/query",
        serde_json::from_str(include_str!(
            "../../../examples/best-practice-appointments.json"
        ))
        .unwrap(),
    );
    api.set(
        "/halo/results",
        json!({"requestId": "r1", "statusUrl": format!("http://{api_addr}/halo/status/r1")}),
    );
    api.set("/halo/status/r1", json!({"status": "Processing"}));
    let (server, device) = start_polled(
        "best-practice",
        "ecg",
        &format!(
            r#"{{ url = "http://{api_addr}/halo/query", auth = {{ api_key = "halo-key", header = "X-Api-Key" }} }}"#
        ),
        &format!("http://{api_addr}/halo/results"),
    )
    .await;
    let list = worklist(server.http, &device).await;
    assert_eq!(list.len(), 1, "one booked, one cancelled: {list:?}");
    assert_eq!(list[0]["placer_order"], "48213");
    assert_eq!(list[0]["patient"]["family"], "Nguyen");
    let polls = api.polls();
    assert_eq!(polls[0].0, "POST");
    assert!(polls[0].2.contains("\"sql\""), "{}", polls[0].2);
    assert!(polls[0].2.contains("FROM Appointments"));
    assert_eq!(polls[0].3["x-api-key"], "halo-key");

    let pdf = sample_pdf();
    let aid = list[0]["id"].as_str().unwrap();
    let (status, body) = post_json(
        server.http,
        "/api/v1/measurements",
        &device,
        &measurement(aid, &pdf),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mid = body["id"].as_str().unwrap().to_string();
    let measurement_state = || async {
        let (_, m) = get_json(server.http, &format!("/api/v1/measurements/{mid}"), &device).await;
        m
    };
    // Accepted, not yet confirmed: visible as waiting, asked again on retries.
    let m = wait_for("the result awaiting confirmation", WAIT, || async {
        let m = measurement_state().await;
        let waiting = m["deliveries"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("awaiting confirmation"));
        waiting.then_some(m)
    })
    .await;
    assert_eq!(m["deliveries"][0]["state"], "retrying", "{m}");
    let status_looks = |api: &Api| {
        api.polls()
            .iter()
            .filter(|p| p.1 == "/halo/status/r1")
            .count()
    };
    let looked = status_looks(&api);
    wait_for("another look at the status", WAIT, || async {
        (status_looks(&api) > looked).then_some(())
    })
    .await;
    api.set("/halo/status/r1", json!({"status": "Completed"}));
    wait_for("the result confirmed", WAIT, || async {
        (measurement_state().await["deliveries"][0]["state"] == "sent").then_some(())
    })
    .await;
    let posted = api
        .polls()
        .iter()
        .filter(|p| p.1 == "/halo/results")
        .count();
    assert_eq!(posted, 1, "the result was sent once");
}
