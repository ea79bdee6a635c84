//! The FHIR R4 API over real HTTP against `medrelay serve`: records that
//! arrived by HL7 read as FHIR resources, FHIR-created orders reach a
//! device's worklist, measurements read as Observation + DiagnosticReport with
//! the PDF, versioning (ETag, If-Match, history, vread, If-None-Exist), search
//! parameters and paging, validation (422 with paths), content negotiation
//! and SMART scopes. Every resource the server returns is checked with an
//! independent validator (Python's fhir.resources), not only our own types.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use medrelay_testkit::{ServeProcess, free_port, full_orm, http_full, sample_pdf, wait_for};
use mllp::{Sender, SenderConfig};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    raw: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A FHIR client with a bearer token (or none).
struct Client {
    addr: SocketAddr,
    token: Option<String>,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &auth {
            all.push(("Authorization", a));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        if bytes.is_some() && !headers.iter().any(|(k, _)| *k == "Content-Type") {
            all.push(("Content-Type", "application/fhir+json"));
        }
        let (status, headers, body) = http_full(self.addr, method, path, &all, bytes.as_deref())
            .await
            .unwrap();
        let raw = String::from_utf8_lossy(&body).into_owned();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, &[], Some(body)).await
    }
}

/// A link or fullUrl (`http://test/fhir/R4/…`, the Host the test client
/// sends) as a request path.
fn path_of(url: &str) -> String {
    url.strip_prefix("http://test").unwrap_or(url).to_string()
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(path_of)
}

fn entries<'a>(bundle: &'a Value, mode: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| &e["resource"])
                .collect()
        })
        .unwrap_or_default()
}

/// Collects what the server returned and checks all of it at once with
/// Python's fhir.resources (R4B models; one interpreter start per test).
#[derive(Default)]
struct Validator(Vec<(String, Value)>);

impl Validator {
    fn add(&mut self, reply: &Reply) {
        let kind = reply.body["resourceType"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(!kind.is_empty(), "not a resource: {}", reply.raw);
        self.0.push((kind, reply.body.clone()));
    }

    fn check(&self) {
        use std::io::Write;
        let script = "import sys, json\nfrom fhir.resources.R4B import get_fhir_model_class\nbad = []\nfor kind, res in json.load(sys.stdin):\n    try:\n        get_fhir_model_class(kind).model_validate(res)\n    except Exception as e:\n        bad.append(f'{kind}: {e}\\n{json.dumps(res)[:2000]}')\nif bad:\n    print('\\n\\n'.join(bad), file=sys.stderr)\n    sys.exit(1)\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed: python3 -m pip install fhir.resources==8.3.0");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&serde_json::to_vec(&self.0).unwrap())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "rejected by fhir.resources (python3 -m pip install fhir.resources==8.3.0):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn token(addr: SocketAddr, cfg: &Path, name: &str, scopes: &[&str]) -> String {
    let (id, secret) = client_add_in(cfg, name, scopes, "default");
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (status, _, body) = http_full(
        addr,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// `medrelay serve` with an HL7 integration (group `cardio`) and a FHIR one
/// (group `ct`).
async fn start(dir: &Path) -> (ServeProcess, SocketAddr, SocketAddr, std::path::PathBuf) {
    start_in_zone(dir, None).await
}

/// [`start`], with the server's `TZ` set to `zone`.
async fn start_in_zone(
    dir: &Path,
    zone: Option<&str>,
) -> (ServeProcess, SocketAddr, SocketAddr, std::path::PathBuf) {
    let http_addr = free_port();
    let mllp = free_port();
    let cfg = dir.join("medrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = {:?}\nhttp = \"{http_addr}\"\n\n\
             [[integration]]\nname = \"his\"\npreset = \"hl7-mllp\"\ngroup = \"cardio\"\ninbound = {{ mllp = \"{mllp}\" }}\n\n\
             [[integration]]\nname = \"ris\"\npreset = \"fhir\"\ngroup = \"ct\"\n",
            dir.join("data")
        ),
    )
    .unwrap();
    check_ok(&cfg);
    let env: Vec<(&str, &str)> = zone.map(|z| ("TZ", z)).into_iter().collect();
    let server = ServeProcess::start_with_env(BIN, &cfg, http_addr, &env).await;
    (server, http_addr, mllp, cfg)
}

async fn send_orders(mllp: SocketAddr, n: usize) {
    let mut sender = Sender::new(SenderConfig::new(mllp.to_string()));
    for i in 0..n {
        let orm = String::from_utf8(full_orm(&format!("F{i}"), &format!("ORD-{i}"), "NW"))
            .unwrap()
            .replace("1234567890", &format!("MRN-{i}"))
            .replace("99887766", &format!("SSN-{i}"));
        let ack = sender.send(orm.as_bytes()).await.unwrap();
        assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|"));
    }
    sender.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_orders_and_fhir_orders_are_one_worklist() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, mllp, cfg) = start(dir.path()).await;
    let mut valid = Validator::default();
    send_orders(mllp, 3).await;

    // The CapabilityStatement needs no token and lists every resource.
    let anon = Client { addr, token: None };
    let cap = anon.get("/fhir/R4/metadata").await;
    assert_eq!(cap.status, 200, "{}", cap.raw);
    assert_eq!(cap.body["fhirVersion"], "4.0.1");
    let types: Vec<&str> = cap.body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for t in [
        "Patient",
        "ServiceRequest",
        "Appointment",
        "ImagingStudy",
        "Observation",
        "DiagnosticReport",
        "Device",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    valid.add(&cap);

    let t = token(
        addr,
        &cfg,
        "ris",
        &["system/*.read", "system/ServiceRequest.write"],
    )
    .await;
    let c = Client {
        addr,
        token: Some(t),
    };

    // The HL7 patient, found by its identifier (system|value).
    let found = c.get("/fhir/R4/Patient?identifier=HIS|MRN-1").await;
    assert_eq!(found.status, 200, "{}", found.raw);
    assert_eq!(found.body["total"], 1, "{}", found.raw);
    let pid = entries(&found.body, "match")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    valid.add(&found);

    // Its HL7 order as a ServiceRequest, with the Patient included.
    let srs = c
        .get(&format!(
            "/fhir/R4/ServiceRequest?patient={pid}&_include=ServiceRequest:patient"
        ))
        .await;
    assert_eq!(srs.status, 200, "{}", srs.raw);
    let matched = entries(&srs.body, "match");
    assert_eq!(matched.len(), 1, "{}", srs.raw);
    assert_eq!(matched[0]["subject"]["reference"], format!("Patient/{pid}"));
    assert!(
        matched[0]["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == "ORD-1"),
        "{}",
        srs.raw
    );
    let included = entries(&srs.body, "include");
    assert_eq!(included.len(), 1);
    assert_eq!(included[0]["resourceType"], "Patient");
    assert_eq!(included[0]["id"], pid.as_str());
    valid.add(&srs);
    // Search by order number and by status; the Appointment view of it.
    let by_number = c.get("/fhir/R4/ServiceRequest?identifier=ORD-2").await;
    assert_eq!(by_number.body["total"], 1, "{}", by_number.raw);
    let active = c
        .get("/fhir/R4/ServiceRequest?status=active&_summary=count")
        .await;
    assert_eq!(active.body["total"], 3, "{}", active.raw);
    assert!(active.body.get("entry").is_none());
    valid.add(&active);
    let appts = c
        .get(&format!("/fhir/R4/Appointment?patient={pid}&status=booked"))
        .await;
    assert_eq!(appts.body["total"], 1, "{}", appts.raw);
    valid.add(&appts);

    // A ServiceRequest created through FHIR reaches the worklist of the fhir
    // integration's group.
    let device = device_add_in(&cfg, "ct-1", "ct", "default");
    assert!(worklist(addr, &device).await.is_empty());
    let sr = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]}, "value": "RIS-77"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "11524-6", "display": "EKG study"}]},
        "subject": {"reference": format!("Patient/{pid}")},
        "occurrenceDateTime": "2026-12-04T09:30:00Z",
        "authoredOn": "2026-12-03"
    });
    let created = c.post("/fhir/R4/ServiceRequest", &sr).await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let sr_id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["meta"]["versionId"], "1");
    assert!(
        created
            .header("location")
            .unwrap()
            .ends_with(&format!("/fhir/R4/ServiceRequest/{sr_id}/_history/1")),
        "{:?}",
        created.headers
    );
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    valid.add(&created);
    let items = worklist(addr, &device).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], sr_id.as_str());
    assert_eq!(items[0]["patient"]["id"], pid.as_str());
    // The same identifier again is a conflict, not a second order.
    let again = c.post("/fhir/R4/ServiceRequest", &sr).await;
    assert_eq!(again.status, 409, "{}", again.raw);
    valid.add(&again);
    // If-None-Exist finds it instead.
    let cond = c
        .call(
            "POST",
            "/fhir/R4/ServiceRequest",
            &[("If-None-Exist", "identifier=RIS-77")],
            Some(&sr),
        )
        .await;
    assert_eq!(cond.status, 200, "{}", cond.raw);
    assert_eq!(cond.body["id"], sr_id.as_str());

    // Update with If-Match: the current version works, a stale one is 412.
    let mut changed = created.body.clone();
    changed["occurrenceDateTime"] = json!("2026-12-05T10:00:00Z");
    let updated = c
        .call(
            "PUT",
            &format!("/fhir/R4/ServiceRequest/{sr_id}"),
            &[("If-Match", "W/\"1\"")],
            Some(&changed),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.raw);
    assert_eq!(updated.body["meta"]["versionId"], "2");
    assert_eq!(updated.body["occurrenceDateTime"], "2026-12-05T10:00:00Z");
    valid.add(&updated);
    let stale = c
        .call(
            "PUT",
            &format!("/fhir/R4/ServiceRequest/{sr_id}"),
            &[("If-Match", "W/\"1\"")],
            Some(&changed),
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.raw);
    assert_eq!(stale.body["resourceType"], "OperationOutcome");
    valid.add(&stale);

    // Invalid resources: 422 with an issue per problem, each with its path.
    let bad = json!({
        "resourceType": "ServiceRequest",
        "status": "bogus",
        "intent": "order",
        "subject": {"reference": "not a reference"},
        "authoredOn": "2026-13-45"
    });
    let refused = c.post("/fhir/R4/ServiceRequest", &bad).await;
    assert_eq!(refused.status, 422, "{}", refused.raw);
    let paths: Vec<String> = refused.body["issue"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    for p in [
        "ServiceRequest.status",
        "ServiceRequest.subject.reference",
        "ServiceRequest.authoredOn",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} not in {paths:?}");
    }
    valid.add(&refused);
    // Not JSON: 400; not FHIR JSON: 415; an unsupported method: 405.
    let (status, _, _) = http_full(
        addr,
        "POST",
        "/fhir/R4/ServiceRequest",
        &[
            (
                "Authorization",
                &format!("Bearer {}", c.token.as_ref().unwrap()),
            ),
            ("Content-Type", "application/fhir+json"),
        ],
        Some(b"{\"resourceType\": \"ServiceRe"),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    let xml = c
        .call(
            "POST",
            "/fhir/R4/ServiceRequest",
            &[("Content-Type", "application/fhir+xml")],
            Some(&sr),
        )
        .await;
    assert_eq!(xml.status, 415, "{}", xml.raw);
    let delete = c
        .call(
            "DELETE",
            &format!("/fhir/R4/ServiceRequest/{sr_id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(delete.status, 405, "{}", delete.raw);
    valid.add(&delete);

    // Scopes: reading is not writing.
    let reader = Client {
        addr,
        token: Some(token(addr, &cfg, "reader", &["system/Patient.read"]).await),
    };
    let denied = reader.post("/fhir/R4/ServiceRequest", &sr).await;
    assert_eq!(denied.status, 403, "{}", denied.raw);
    let denied = reader.get("/fhir/R4/Observation").await;
    assert_eq!(denied.status, 403, "{}", denied.raw);
    assert_eq!(anon.get("/fhir/R4/Patient").await.status, 401);

    // The device measures: Observations (one per value) and a DiagnosticReport
    // carrying the PDF.
    let pdf = sample_pdf();
    let (status, posted) = post_json(
        addr,
        "/api/v1/measurements",
        &device,
        &measurement(&sr_id, &pdf),
    )
    .await;
    assert_eq!(status, 201, "{posted}");
    let mid = posted["id"].as_str().unwrap().to_string();
    let report = c.get(&format!("/fhir/R4/DiagnosticReport/{mid}")).await;
    assert_eq!(report.status, 200, "{}", report.raw);
    assert_eq!(
        report.body["subject"]["reference"],
        format!("Patient/{pid}")
    );
    let data = report.body["presentedForm"][0]["data"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
        pdf
    );
    assert_eq!(report.body["result"].as_array().unwrap().len(), 2);
    valid.add(&report);
    let obs = c
        .get(&format!(
            "/fhir/R4/Observation?patient={pid}&code=http://loinc.org|8867-4"
        ))
        .await;
    assert_eq!(obs.status, 200, "{}", obs.raw);
    assert_eq!(obs.body["total"], 1, "{}", obs.raw);
    let hr = entries(&obs.body, "match")[0].clone();
    assert_eq!(hr["valueQuantity"]["value"], 72);
    assert_eq!(hr["valueQuantity"]["system"], "http://unitsofmeasure.org");
    valid.add(&obs);
    // A page of one: the walk stops after the page (plus one to know there is
    // more), so there is a next link and no guessed total.
    let first = c
        .get(&format!("/fhir/R4/Observation?patient={pid}&_count=1"))
        .await;
    assert_eq!(entries(&first.body, "match").len(), 1, "{}", first.raw);
    assert!(first.body.get("total").is_none(), "{}", first.raw);
    let second = c
        .get(&link(&first.body, "next").expect("a next page"))
        .await;
    assert_eq!(entries(&second.body, "match").len(), 1, "{}", second.raw);
    assert_ne!(
        entries(&first.body, "match")[0]["id"],
        entries(&second.body, "match")[0]["id"]
    );
    valid.add(&first);
    let counted = c
        .get(&format!(
            "/fhir/R4/Observation?patient={pid}&_summary=count"
        ))
        .await;
    assert_eq!(counted.body["total"], 2, "{}", counted.raw);
    let one = c
        .get(&format!(
            "/fhir/R4/Observation/{}",
            hr["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one.status, 200, "{}", one.raw);
    valid.add(&one);
    let reports = c
        .get(&format!(
            "/fhir/R4/DiagnosticReport?patient={pid}&category=EC"
        ))
        .await;
    assert_eq!(reports.body["total"], 1, "{}", reports.raw);
    valid.add(&reports);
    // The order is completed now.
    let done = c.get(&format!("/fhir/R4/ServiceRequest/{sr_id}")).await;
    assert_eq!(done.body["status"], "completed", "{}", done.raw);

    // The device itself.
    let devices = c.get("/fhir/R4/Device?identifier=ct-1").await;
    assert_eq!(devices.body["total"], 1, "{}", devices.raw);
    valid.add(&devices);

    // An Appointment created through FHIR is a worklist item too; cancelling
    // it (update with status cancelled) takes it off the worklist.
    let appt = json!({
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [{"coding": [{"system": "http://loinc.org", "code": "11524-6", "display": "EKG study"}]}],
        "start": "2026-12-06T08:00:00Z",
        "end": "2026-12-06T08:20:00Z",
        "participant": [{"actor": {"reference": format!("Patient/{pid}")}, "status": "accepted"}]
    });
    let booked = c.post("/fhir/R4/Appointment", &appt).await;
    assert_eq!(
        booked.status, 403,
        "the ris client may not write Appointments: {}",
        booked.raw
    );
    let scheduler = Client {
        addr,
        token: Some(token(addr, &cfg, "scheduler", &["system/Appointment.*"]).await),
    };
    let booked = scheduler.post("/fhir/R4/Appointment", &appt).await;
    assert_eq!(booked.status, 201, "{}", booked.raw);
    valid.add(&booked);
    let appt_id = booked.body["id"].as_str().unwrap().to_string();
    assert!(
        worklist(addr, &device)
            .await
            .iter()
            .any(|i| i["id"] == appt_id.as_str()),
        "the FHIR appointment is not on the worklist"
    );
    let mut cancel = booked.body.clone();
    cancel["status"] = json!("cancelled");
    let cancelled = scheduler
        .call(
            "PUT",
            &format!("/fhir/R4/Appointment/{appt_id}"),
            &[("If-Match", booked.header("etag").unwrap())],
            Some(&cancel),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.raw);
    assert_eq!(cancelled.body["status"], "cancelled");
    valid.add(&cancelled);
    assert!(
        !worklist(addr, &device)
            .await
            .iter()
            .any(|i| i["id"] == appt_id.as_str()),
        "a cancelled appointment stays on the worklist"
    );
    // Booked on an order that already has its appointment: 409.
    let mut twice = appt.clone();
    twice["basedOn"] = json!([{"reference": format!("ServiceRequest/{sr_id}")}]);
    let dup = scheduler.post("/fhir/R4/Appointment", &twice).await;
    assert_eq!(dup.status, 409, "{}", dup.raw);

    // The refused order was kept, raw, as a rejected message of the fhir
    // integration, with the reasons.
    let admin = admin_token_in(&cfg, "default");
    let (status, msgs) =
        get_json(addr, "/api/v1/messages?channel=ris&status=rejected", &admin).await;
    assert_eq!(status, 200, "{msgs}");
    let rejected = msgs["messages"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{msgs}");
    assert!(
        rejected[0]["error"].as_str().unwrap().contains("status"),
        "{msgs}"
    );
    // An id sent with a create is ignored (R4 http.html): the server's wins.
    let mut with_id = sr.clone();
    with_id["id"] = json!("client-chosen");
    with_id["identifier"][0]["value"] = json!("RIS-78");
    let created2 = c.post("/fhir/R4/ServiceRequest", &with_id).await;
    assert_eq!(created2.status, 201, "{}", created2.raw);
    let sr2 = created2.body["id"].as_str().unwrap().to_string();
    assert_ne!(sr2, "client-chosen");
    // An order deleted from the worklist is gone (410), not unknown (404).
    let (status, _) = http_full(
        addr,
        "DELETE",
        &format!("/api/v1/appointments/{sr2}"),
        &[("Authorization", &format!("Bearer {admin}"))],
        None,
    )
    .await
    .map(|(s, _, b)| (s, b))
    .unwrap();
    assert_eq!(status, 204);
    let gone = c.get(&format!("/fhir/R4/ServiceRequest/{sr2}")).await;
    assert_eq!(gone.status, 410, "{}", gone.raw);
    valid.add(&gone);
    assert_eq!(c.get("/fhir/R4/ServiceRequest/424242").await.status, 404);
    assert_eq!(c.get("/fhir/R4/Medication/1").await.status, 404);

    valid.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_page_version_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, _mllp, cfg) = start(dir.path()).await;
    let mut valid = Validator::default();
    let c = Client {
        addr,
        token: Some(token(addr, &cfg, "admin", &["system/*.*"]).await),
    };

    // 250 patients created through FHIR, births spread over 1950–1999.
    for i in 0..250 {
        let p = json!({
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:1.2.3.4", "value": format!("P{i:03}")}],
            "name": [{"use": "official", "family": if i % 2 == 0 { "Müller" } else { "Smith" }, "given": [format!("Given{i}")]}],
            "gender": if i % 3 == 0 { "female" } else { "male" },
            "birthDate": format!("{}-{:02}-15", 1950 + i % 50, 1 + i % 12),
        });
        let r = c.post("/fhir/R4/Patient", &p).await;
        assert_eq!(r.status, 201, "{}", r.raw);
        if i == 0 {
            valid.add(&r);
        }
    }

    // Paging with _count=50 visits every patient exactly once.
    let mut seen = HashSet::new();
    let mut next = Some("/fhir/R4/Patient?_count=50".to_string());
    let mut pages = 0;
    while let Some(url) = next.take() {
        let r = c.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["total"], 250);
        if pages == 0 {
            valid.add(&r);
        }
        pages += 1;
        for e in entries(&r.body, "match") {
            let id = e["id"].as_str().unwrap().to_string();
            assert!(seen.insert(id.clone()), "Patient/{id} twice");
        }
        next = link(&r.body, "next");
    }
    assert_eq!(seen.len(), 250);
    assert_eq!(pages, 5);

    // Search parameters.
    let count = |q: &str| {
        let q = q.to_string();
        let c = &c;
        async move {
            let r = c.get(&format!("/fhir/R4/Patient?{q}&_summary=count")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.raw);
            r.body["total"].as_u64().unwrap()
        }
    };
    assert_eq!(count("identifier=urn:oid:1.2.3.4|P007").await, 1);
    assert_eq!(count("identifier=P007").await, 1);
    assert_eq!(count("identifier=urn:oid:9.9|P007").await, 0);
    assert_eq!(count("family=smi").await, 125);
    assert_eq!(count("name=given12").await, 11); // Given12, Given120..129
    assert_eq!(count("gender=female").await, 84);
    assert_eq!(count("family=smith&gender=female").await, 42);
    // Strings match regardless of case and accents; :exact and :contains.
    assert_eq!(count("family=muller").await, 125);
    assert_eq!(count("family=M%C3%9CLL").await, 125); // MÜLL
    assert_eq!(count("family:exact=M%C3%BCller").await, 125); // Müller
    assert_eq!(count("family:exact=Muller").await, 0);
    assert_eq!(count("family:exact=M%C3%BCll").await, 0);
    assert_eq!(count("name:contains=ULLE").await, 125);
    assert_eq!(count("given:contains=en12").await, 11);
    // The modifier stays on the paging links.
    let first = c
        .get("/fhir/R4/Patient?family:exact=M%C3%BCller&_count=100")
        .await;
    let next = link(&first.body, "next").expect("a next page");
    let second = c.get(&path_of(&next)).await;
    assert_eq!(second.status, 200, "{}", second.raw);
    let families: Vec<&str> = entries(&second.body, "match")
        .iter()
        .map(|p| p["name"][0]["family"].as_str().unwrap())
        .collect();
    assert_eq!(families.len(), 25, "{}", second.raw);
    assert!(families.iter().all(|f| *f == "Müller"), "{families:?}");
    // Modifiers the server does not apply: refused when strict.
    for q in [
        "family:missing=true",
        "gender:exact=female",
        "family:text=x",
    ] {
        let r = c
            .call(
                "GET",
                &format!("/fhir/R4/Patient?{q}"),
                &[("Prefer", "handling=strict")],
                None,
            )
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.raw);
        assert!(r.raw.contains("modifier"), "{q}: {}", r.raw);
    }
    assert_eq!(count("birthdate=1950").await, 5);
    assert_eq!(count("birthdate=lt1955").await, 25);
    assert_eq!(count("birthdate=ge1995-01").await, 25);
    assert_eq!(count("birthdate=ne1950").await, 245);
    assert_eq!(count("birthdate=1950,1951").await, 10);
    assert_eq!(count("birthdate=ge1950&birthdate=lt1952").await, 10);
    // Sorted by birth date, newest first.
    let sorted = c.get("/fhir/R4/Patient?_sort=-birthdate&_count=3").await;
    let births: Vec<&str> = entries(&sorted.body, "match")
        .iter()
        .map(|p| p["birthDate"].as_str().unwrap())
        .collect();
    assert!(births.windows(2).all(|w| w[0] >= w[1]), "{births:?}");
    assert!(births[0].starts_with("1999"), "{births:?}");
    // Unknown parameters: ignored (and said so) by default, 400 when strict.
    let lenient = c.get("/fhir/R4/Patient?shoe-size=42&_count=1").await;
    assert_eq!(lenient.status, 200);
    assert_eq!(lenient.body["total"], 250);
    assert_eq!(
        entries(&lenient.body, "outcome").len(),
        1,
        "{}",
        lenient.raw
    );
    valid.add(&lenient);
    let strict = c
        .call(
            "GET",
            "/fhir/R4/Patient?shoe-size=42",
            &[("Prefer", "handling=strict")],
            None,
        )
        .await;
    assert_eq!(strict.status, 400, "{}", strict.raw);
    valid.add(&strict);
    let bad_date = c.get("/fhir/R4/Patient?birthdate=sa2000").await;
    assert_eq!(bad_date.status, 400, "{}", bad_date.raw);
    // Hostile queries: clear 400s or harmless matches, never a 500.
    let many = (0..5000)
        .map(|i| format!("P{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for (q, want) in [
        ("_count=-1".to_string(), 400),
        ("_count=99999999999999999999999".to_string(), 400),
        ("_offset=abc".to_string(), 400),
        ("birthdate=1975-02-30".to_string(), 400),
        ("birthdate=".to_string(), 200),
        ("gender=robot".to_string(), 400),
        ("identifier=a|b|c".to_string(), 400),
        (format!("identifier={many}"), 400),
        ("family=%25%27%20OR%201%3D1--".to_string(), 200),
        ("family=%5F%5F%5F".to_string(), 200),
        ("name=%FF%FE".to_string(), 200),
        ("name:contains=%FF%FE".to_string(), 200),
        ("family:contains=%25%5F%00".to_string(), 200),
        (
            "family:exact=%27%3B%20DROP%20TABLE%20patients--".to_string(),
            200,
        ),
        ("given=%F0%9F%92%A9".to_string(), 200),
        (format!("family:contains={}", "x".repeat(20_000)), 200),
        // No end to its prefix range: the range is left open.
        ("family=%F4%8F%BF%BF%F4%8F%BF%BF".to_string(), 200),
        ("_sort=shoe".to_string(), 200),
        ("_include=Patient:link".to_string(), 200),
    ] {
        let r = c.get(&format!("/fhir/R4/Patient?{q}")).await;
        assert_eq!(r.status, want, "{q}: {}", r.raw);
        assert!(r.body["resourceType"].is_string(), "{q}: {}", r.raw);
        if want == 200 && !q.starts_with("birthdate") && !q.starts_with("_") {
            assert_eq!(r.body["total"], 0, "{q}: {}", r.raw);
        }
    }
    // Only JSON is spoken.
    let xml = c.get("/fhir/R4/Patient?_format=xml").await;
    assert_eq!(xml.status, 406, "{}", xml.raw);

    // Versioning: read with ETag, update with If-Match, history and vread.
    let pid = {
        let r = c.get("/fhir/R4/Patient?identifier=P010").await;
        entries(&r.body, "match")[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let read = c.get(&format!("/fhir/R4/Patient/{pid}")).await;
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    assert!(read.header("last-modified").is_some());
    let mut p = read.body.clone();
    p["name"][0]["family"] = json!("Renamed");
    let put = c
        .call(
            "PUT",
            &format!("/fhir/R4/Patient/{pid}"),
            &[("If-Match", "W/\"1\""), ("Prefer", "return=minimal")],
            Some(&p),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.raw);
    assert!(put.raw.is_empty(), "return=minimal: {}", put.raw);
    assert_eq!(put.header("etag"), Some("W/\"2\""));
    let stale = c
        .call(
            "PUT",
            &format!("/fhir/R4/Patient/{pid}"),
            &[("If-Match", "W/\"1\"")],
            Some(&p),
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.raw);
    let history = c.get(&format!("/fhir/R4/Patient/{pid}/_history")).await;
    assert_eq!(history.status, 200, "{}", history.raw);
    assert_eq!(history.body["type"], "history");
    assert_eq!(history.body["total"], 2);
    assert_eq!(
        history.body["entry"][0]["resource"]["name"][0]["family"],
        "Renamed"
    );
    assert_eq!(
        history.body["entry"][1]["resource"]["name"][0]["family"],
        "Müller"
    );
    valid.add(&history);
    let v1 = c.get(&format!("/fhir/R4/Patient/{pid}/_history/1")).await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.body["meta"]["versionId"], "1");
    assert_eq!(v1.body["name"][0]["family"], "Müller");
    valid.add(&v1);
    assert_eq!(
        c.get(&format!("/fhir/R4/Patient/{pid}/_history/9"))
            .await
            .status,
        404
    );
    // PUT to an id the server never assigned.
    let mut ghost = p.clone();
    ghost["id"] = json!("987654");
    assert_eq!(
        c.call("PUT", "/fhir/R4/Patient/987654", &[], Some(&ghost))
            .await
            .status,
        405
    );

    // Conditional create: the existing patient, not a duplicate.
    let same = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.3.4", "value": "P010"}],
        "name": [{"family": "Other"}]
    });
    let cond = c
        .call(
            "POST",
            "/fhir/R4/Patient",
            &[("If-None-Exist", "identifier=urn:oid:1.2.3.4|P010")],
            Some(&same),
        )
        .await;
    assert_eq!(cond.status, 200, "{}", cond.raw);
    assert_eq!(cond.body["id"], pid.as_str());
    // Without the condition the identifier is someone else's: 409.
    let dup = c.post("/fhir/R4/Patient", &same).await;
    assert_eq!(dup.status, 409, "{}", dup.raw);

    // Invalid patients: 422, every problem with its path.
    let bad = json!({"resourceType": "Patient", "gender": "robot", "birthDate": "1990-13-45", "name": "Smith"});
    let r = c.post("/fhir/R4/Patient", &bad).await;
    assert_eq!(r.status, 422, "{}", r.raw);
    let text = r.raw.clone();
    for p in ["Patient.gender", "Patient.birthDate", "Patient.name"] {
        assert!(text.contains(p), "{p} not in {text}");
    }
    valid.add(&r);
    // Hostile bodies: the wrong type, nested garbage, a huge string.
    let wrong = c
        .post("/fhir/R4/Patient", &json!({"resourceType": "Observation"}))
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.raw);
    let deep = json!({"resourceType": "Patient", "name": [{"family": {"a": [[[[1]]]]}}]});
    let r = c.post("/fhir/R4/Patient", &deep).await;
    assert_eq!(r.status, 422, "{}", r.raw);
    let huge = json!({"resourceType": "Patient", "name": [{"family": "x".repeat(3 << 20)}]});
    let r = c.post("/fhir/R4/Patient", &huge).await;
    assert_eq!(r.status, 422, "FHIR strings are at most 1 MB");
    assert!(
        r.raw.contains("Patient.name[0].family"),
        "{}",
        &r.raw[..r.raw.len().min(500)]
    );
    assert_eq!(
        c.get("/fhir/R4/Patient?_summary=count").await.body["total"],
        250
    );

    // ImagingStudy: create (the seed's example), read, search by modality.
    let study = json!({
        "resourceType": "ImagingStudy",
        "status": "available",
        "subject": {"reference": format!("Patient/{pid}")},
        "started": "2025-03-15T12:05:00+01:00",
        "numberOfSeries": 1,
        "numberOfInstances": 512,
        "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.3.4.5.6.7"}],
        "series": [{"uid": "1.2.3.4.5.6.8", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}, "numberOfInstances": 512}]
    });
    let created = c.post("/fhir/R4/ImagingStudy", &study).await;
    assert_eq!(created.status, 201, "{}", created.raw);
    valid.add(&created);
    let sid = created.body["id"].as_str().unwrap().to_string();
    let read = c.get(&format!("/fhir/R4/ImagingStudy/{sid}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["series"][0]["uid"], "1.2.3.4.5.6.8");
    let ct = c
        .get(&format!(
            "/fhir/R4/ImagingStudy?patient={pid}&modality=CT&started=2025-03"
        ))
        .await;
    assert_eq!(ct.body["total"], 1, "{}", ct.raw);
    valid.add(&ct);
    let mr = c.get("/fhir/R4/ImagingStudy?modality=MR").await;
    assert_eq!(mr.body["total"], 0, "{}", mr.raw);

    valid.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_updates_make_patient_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, mllp, cfg) = start(dir.path()).await;
    send_orders(mllp, 1).await;
    let c = Client {
        addr,
        token: Some(token(addr, &cfg, "reader", &["system/Patient.read"]).await),
    };
    let pid = wait_for("the patient", WAIT, || async {
        let r = c.get("/fhir/R4/Patient?identifier=MRN-0").await;
        entries(&r.body, "match")
            .first()
            .and_then(|p| p["id"].as_str())
            .map(str::to_string)
    })
    .await;
    // The same order again changes nothing: still version 1.
    send_orders(mllp, 1).await;
    assert_eq!(
        c.get(&format!("/fhir/R4/Patient/{pid}"))
            .await
            .header("etag"),
        Some("W/\"1\"")
    );
    // A new address for the patient is version 2; version 1 keeps the old one.
    let mut sender = Sender::new(SenderConfig::new(mllp.to_string()));
    let orm = String::from_utf8(full_orm("F-move", "ORD-0", "XO"))
        .unwrap()
        .replace("1234567890", "MRN-0")
        .replace("99887766", "SSN-0")
        .replace("GARCIA", "GARCIA-LOPEZ");
    let ack = sender.send(orm.as_bytes()).await.unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|"));
    sender.close().await;
    let now = c.get(&format!("/fhir/R4/Patient/{pid}")).await;
    assert_eq!(now.header("etag"), Some("W/\"2\""), "{}", now.raw);
    assert_eq!(now.body["name"][0]["family"], "GARCIA-LOPEZ");
    let v1 = c.get(&format!("/fhir/R4/Patient/{pid}/_history/1")).await;
    assert_eq!(v1.body["name"][0]["family"], "GARCIA");
    let mut valid = Validator::default();
    valid.add(&now);
    valid.add(&v1);
    valid.check();
}

/// Stored times are wall-clock times of the server's zone: zoned FHIR times
/// are converted on the way in, read back with the offset in force then
/// (summer and winter), and zoned search values compare in that zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_are_local_to_the_servers_zone() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, mllp, cfg) = start_in_zone(dir.path(), Some("Europe/Berlin")).await;
    let mut valid = Validator::default();
    let scheduler = Client {
        addr,
        token: Some(token(addr, &cfg, "scheduler", &["system/*.*"]).await),
    };
    send_orders(mllp, 1).await;
    let pid = {
        let r = scheduler.get("/fhir/R4/Patient?identifier=MRN-0").await;
        entries(&r.body, "match")[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let book = |start: &str, end: &str| {
        json!({
            "resourceType": "Appointment",
            "status": "booked",
            "serviceType": [{"coding": [{"system": "http://loinc.org", "code": "11524-6"}]}],
            "start": start,
            "end": end,
            "participant": [{"actor": {"reference": format!("Patient/{pid}")}, "status": "accepted"}]
        })
    };
    let summer = scheduler
        .post(
            "/fhir/R4/Appointment",
            &book("2026-07-06T08:00:00Z", "2026-07-06T08:20:00Z"),
        )
        .await;
    assert_eq!(summer.status, 201, "{}", summer.raw);
    assert_eq!(
        summer.body["start"], "2026-07-06T10:00:00+02:00",
        "{}",
        summer.raw
    );
    valid.add(&summer);
    let winter = scheduler
        .post(
            "/fhir/R4/Appointment",
            &book("2026-12-06T10:30:00+02:00", "2026-12-06T10:50:00+02:00"),
        )
        .await;
    assert_eq!(winter.status, 201, "{}", winter.raw);
    assert_eq!(
        winter.body["start"], "2026-12-06T09:30:00+01:00",
        "{}",
        winter.raw
    );

    // The worklist shows the local time, as for an HL7 order.
    let device = device_add_in(&cfg, "ct-1", "ct", "default");
    let items = worklist(addr, &device).await;
    let id = summer.body["id"].as_str().unwrap();
    let item = items
        .iter()
        .find(|i| i["id"] == id)
        .expect("on the worklist");
    assert_eq!(item["scheduled_at"], "2026-07-06T10:00:00", "{item}");

    let found = |q: &'static str| {
        let c = &scheduler;
        async move {
            let r = c
                .get(&format!("/fhir/R4/Appointment?{q}&_summary=count"))
                .await;
            assert_eq!(r.status, 200, "{q}: {}", r.raw);
            r.body["total"].as_u64().unwrap()
        }
    };
    // 07:30Z is 09:30 in Berlin in July: the 10:00 appointment is later.
    assert_eq!(
        found("date=ge2026-07-06T07:30:00Z&date=lt2026-07-07").await,
        1
    );
    assert_eq!(
        found("date=gt2026-07-06T08:30:00Z&date=lt2026-07-07").await,
        0
    );
    assert_eq!(found("date=2026-07-06T10:00:00%2B02:00").await, 1);
    assert_eq!(found("date=2026-07-06T08:00:00Z").await, 1);
    assert_eq!(found("date=2026-12-06T08:30:00Z").await, 1);
    assert_eq!(found("date=2026-07-06").await, 1);
    valid.check();
}
