//! The web dashboard in a real browser: `medrelay serve` in its own process,
//! headless Chromium driven over WebDriver (testkit's `Browser`), HL7 sent
//! over MLLP and devices talking HTTP as in production. One story per test,
//! each with its own server and browser. Each test screenshots its page; with
//! `MEDRELAY_SCREENSHOTS=1` they go to `docs/screenshots/` (the README's
//! pictures), otherwise to a scratch folder, so a test run leaves the tree clean.
//!
//! Needs `apt-get install chromium chromium-driver`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use medrelay_testkit::browser::fantoccini::Locator;
use medrelay_testkit::{
    Browser, EhrMode, ServeProcess, TestEhr, free_port, full_orm, http, http_full, sample_pdf,
    wait_for,
};
use mllp::{Sender, SenderConfig};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

const ADMIN: &str = "alice";
const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// `docs/screenshots/<name>` at the workspace root with
/// `MEDRELAY_SCREENSHOTS` set, else the same name in the system's temp folder.
fn screenshot_path(name: &str) -> PathBuf {
    if std::env::var_os("MEDRELAY_SCREENSHOTS").is_some() {
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/screenshots"
        ))
        .join(name)
    } else {
        std::env::temp_dir()
            .join("medrelay-screenshots")
            .join(format!("{}-{name}", std::process::id()))
    }
}

/// `medrelay serve` with one HL7 integration (group `cardiology`), a device
/// in that group, and the data directory it lives in.
struct Dash {
    _process: ServeProcess,
    http: SocketAddr,
    mllp: SocketAddr,
    cfg: PathBuf,
    base: String,
    /// A device of group `cardiology` (registered with the CLI).
    device: String,
    _dir: tempfile::TempDir,
}

impl Dash {
    /// With `ehr`, results go out over MLLP to it.
    async fn start(ehr: Option<SocketAddr>) -> Dash {
        let dir = tempfile::tempdir().unwrap();
        let http_addr = free_port();
        let mllp = free_port();
        let outbound = ehr
            .map(|a| {
                format!(
                    "outbound = {{ mllp = \"{a}\", ack_timeout = \"2s\", connect_timeout = \"1s\", retry = {{ initial = \"100ms\", max = \"500ms\" }} }}\n"
                )
            })
            .unwrap_or_default();
        let cfg = dir.path().join("medrelay.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\ndata_dir = {data:?}\nhttp = \"{http_addr}\"\n\n\
                 [[integration]]\nname = \"ehr\"\npreset = \"hl7-mllp\"\ngroup = \"cardiology\"\n\
                 inbound = {{ mllp = \"{mllp}\", allow = [\"127.0.0.1/32\"] }}\n{outbound}",
                data = dir.path().join("data"),
            ),
        )
        .unwrap();
        check_ok(&cfg);
        let device = device_add_in(&cfg, "tablet-1", "cardiology", "default");
        let process = ServeProcess::start(BIN, &cfg, http_addr).await;
        Dash {
            _process: process,
            http: http_addr,
            mllp,
            cfg,
            base: format!("http://{http_addr}"),
            device,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `medrelay user add` with the password from the environment.
    fn user_add(&self, name: &str, role: &str, password: &str) {
        let out = Command::new(BIN)
            .args([
                "user",
                "add",
                "--name",
                name,
                "--role",
                role,
                "--password-env",
                "MEDRELAY_TEST_PASSWORD",
                "--config",
            ])
            .arg(&self.cfg)
            .env("MEDRELAY_TEST_PASSWORD", password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends an ORM^O01 (patient GARCIA) over MLLP; the ACK must be AA.
    async fn send_order(&self, control_id: &str, placer: &str) {
        let mut s = Sender::new(SenderConfig::new(self.mllp.to_string()));
        let ack = s.send(&full_orm(control_id, placer, "NW")).await.unwrap();
        s.close().await;
        let ack = String::from_utf8_lossy(&ack).into_owned();
        assert!(ack.contains(&format!("MSA|AA|{control_id}")), "{ack}");
    }

    /// The appointment id of the order `placer` on the device's worklist.
    async fn appointment_id(&self, placer: &str) -> String {
        wait_for(
            &format!("{placer} on the device's worklist"),
            WAIT,
            || async {
                worklist(self.http, &self.device)
                    .await
                    .iter()
                    .find(|a| a["placer_order"] == placer)
                    .and_then(|a| a["id"].as_str().map(str::to_string))
            },
        )
        .await
    }

    /// Whether the device still sees appointment `id`.
    async fn device_sees(&self, id: &str) -> bool {
        worklist(self.http, &self.device)
            .await
            .iter()
            .any(|a| a["id"] == id)
    }
}

/// The path (and query) of an absolute URL: `http://h:p/a?b` → `/a?b`.
fn path_and_query(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".to_string(),
    }
}

/// The path of an absolute URL, without the query.
fn path_of(url: &str) -> String {
    let pq = path_and_query(url);
    pq.split(['?', '#']).next().unwrap_or("/").to_string()
}

/// Waits until the browser is on `path`.
async fn wait_path(b: &Browser, path: &str) {
    wait_for(&format!("the browser to be on {path}"), WAIT, || async {
        (path_of(&b.current_url().await) == path).then_some(())
    })
    .await;
}

/// Signs in through `form#login` and waits for the redirect to `/`.
async fn sign_in(b: &Browser, d: &Dash, user: &str, password: &str) {
    b.goto(&d.url("/login")).await;
    b.find("form#login input[type=hidden][name=csrf]").await;
    b.fill("form#login input[name=username]", user).await;
    b.fill("form#login input[name=password]", password).await;
    b.click("form#login button[type=submit]").await;
    wait_path(b, "/").await;
    b.find("nav form#logout").await;
    b.find("h1").await;
}

/// Reloads `path` until `css` matches something there.
async fn wait_on_page(b: &Browser, d: &Dash, path: &str, css: &str) {
    let url = d.url(path);
    wait_for(&format!("{css} on {path}"), WAIT, || async {
        b.goto(&url).await;
        (!b.find_all(css).await.is_empty()).then_some(())
    })
    .await;
}

/// The value of the hidden `csrf` input inside `form`.
async fn csrf_of(b: &Browser, form: &str) -> String {
    let input = b
        .find(&format!("{form} input[type=hidden][name=csrf]"))
        .await;
    let v = input.attr("value").await.unwrap().unwrap_or_default();
    assert!(!v.is_empty(), "{form} has an empty csrf token");
    v
}

/// A form POST over plain HTTP with the browser's cookies.
async fn post_form(d: &Dash, cookie: &str, path: &str, body: &str) -> (u16, String) {
    let (status, body) = http(
        d.http,
        "POST",
        path,
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(body.as_bytes()),
    )
    .await
    .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The navigation every signed-in page has.
async fn assert_nav(b: &Browser, admin: bool) {
    for (id, path) in [
        ("nav-worklist", "/worklist"),
        ("nav-devices", "/devices"),
        ("nav-measurements", "/measurements"),
        ("nav-messages", "/messages"),
    ] {
        let a = b.find(&format!("nav a#{id}")).await;
        let href = a.attr("href").await.unwrap().unwrap_or_default();
        assert_eq!(path_of(&href), path, "a#{id}");
    }
    let audit = b.find_all("nav a#nav-audit").await;
    assert_eq!(!audit.is_empty(), admin, "a#nav-audit only for admins");
    b.find("nav form#logout button").await;
    csrf_of(b, "form#logout").await;
}

/// 1. An admin sees an order that arrived over MLLP, deletes it through the
///    confirmation page, and the audit log names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deletes_an_order_and_the_audit_log_names_them() {
    let d = Dash::start(None).await;
    d.user_add(ADMIN, "admin", ADMIN_PASSWORD);
    let b = Browser::start().await;
    sign_in(&b, &d, ADMIN, ADMIN_PASSWORD).await;
    assert_nav(&b, true).await;

    d.send_order("DASH-1", "ORD-DASH-1").await;
    let id = d.appointment_id("ORD-DASH-1").await;
    let row = format!("table#appointments tr[data-id=\"{id}\"]");
    wait_on_page(&b, &d, "/worklist", &row).await;
    assert!(!b.text("h1").await.is_empty());
    let text = b.text(&row).await;
    for want in ["GARCIA", "ORD-DASH-1", "ECG", "2025-03-15", "cardiology"] {
        assert!(text.contains(want), "{want:?} missing from the row: {text}");
    }
    assert!(
        text.to_lowercase().contains("scheduled"),
        "status missing from the row: {text}"
    );
    b.screenshot(&screenshot_path("worklist.png")).await;

    // The overview: the integration, running, with the order counted.
    b.goto(&d.url("/")).await;
    let ehr_row = "table#overview tr[data-channel=\"ehr\"]";
    b.find(ehr_row).await;
    assert_eq!(
        b.text(&format!("{ehr_row} td.state")).await.trim(),
        "running"
    );
    let received: u64 = b
        .text(&format!("{ehr_row} td.received"))
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(received >= 1, "the order is not counted");
    assert!(
        b.text(&format!("{ehr_row} td.source"))
            .await
            .contains("MLLP")
    );
    b.screenshot(&screenshot_path("overview.png")).await;

    // Paused, the channel answers AE and stores nothing (the sender keeps the
    // order); started again, the same order goes through.
    b.click(&format!("{ehr_row} form.run-state button[value=pause]"))
        .await;
    b.wait_text(&format!("{ehr_row} td.state"), "paused").await;
    let mut s = Sender::new(SenderConfig::new(d.mllp.to_string()));
    let ack = String::from_utf8_lossy(
        &s.send(&full_orm("DASH-P", "ORD-PAUSED", "NW"))
            .await
            .unwrap(),
    )
    .into_owned();
    assert!(
        ack.contains("MSA|AE|DASH-P") && ack.contains("paused"),
        "{ack}"
    );
    s.close().await;
    let items = worklist(d.http, &d.device).await;
    assert!(
        !items.iter().any(|a| a.to_string().contains("ORD-PAUSED")),
        "a paused channel took the order"
    );
    b.click(&format!("{ehr_row} form.run-state button[value=start]"))
        .await;
    b.wait_text(&format!("{ehr_row} td.state"), "running").await;
    d.send_order("DASH-P", "ORD-PAUSED").await;
    d.appointment_id("ORD-PAUSED").await;

    b.goto(&d.url("/worklist")).await;
    b.find(&row).await;

    // Delete, through the confirmation page.
    let href = b
        .find(&format!("{row} a.delete"))
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(path_of(&href), format!("/worklist/{id}/delete"));
    b.click(&format!("{row} a.delete")).await;
    wait_path(&b, &format!("/worklist/{id}/delete")).await;
    csrf_of(&b, "form#confirm-delete").await;
    b.click("form#confirm-delete button[type=submit]").await;
    wait_path(&b, "/worklist").await;
    assert!(!b.text("#flash").await.is_empty());
    b.find("table#appointments").await;
    assert!(
        b.find_all(&row).await.is_empty(),
        "the deleted appointment is still listed"
    );
    assert!(!d.device_sees(&id).await, "the device still sees it");

    // The audit log names who did it.
    b.click("nav a#nav-audit").await;
    wait_path(&b, "/audit").await;
    let entry = wait_for("the deletion in the audit log", WAIT, || async {
        b.goto(&d.url("/audit")).await;
        for tr in b.find_all("table#audit tr").await {
            let t = tr.text().await.unwrap_or_default();
            if t.contains(ADMIN) && t.to_lowercase().contains("delet") {
                return Some(t);
            }
        }
        None
    })
    .await;
    assert!(!entry.is_empty());
    b.screenshot(&screenshot_path("audit.png")).await;
    b.close().await;
}

/// 2. A device registered in the browser gets a token that works on the device
///    API; rotating it from the list gives a new one and retires the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_registered_in_the_browser_reads_the_worklist() {
    let d = Dash::start(None).await;
    d.user_add(ADMIN, "admin", ADMIN_PASSWORD);
    d.send_order("DASH-2", "ORD-DASH-2").await;
    let id = d.appointment_id("ORD-DASH-2").await;

    let b = Browser::start().await;
    sign_in(&b, &d, ADMIN, ADMIN_PASSWORD).await;
    b.click("nav a#nav-devices").await;
    wait_path(&b, "/devices").await;
    b.find("table#devices").await;
    csrf_of(&b, "form#add-device").await;
    b.fill("form#add-device input[name=name]", "tablet-dash")
        .await;
    b.fill("form#add-device input[name=group]", "cardiology")
        .await;
    b.click("form#add-device [type=submit]").await;
    let token = b.text("#new-token").await.trim().to_string();
    assert!(token.starts_with("mrd_"), "{token:?}");

    let items = worklist(d.http, &token).await;
    assert!(
        items.iter().any(|a| a["id"] == id.as_str()),
        "the new device does not see the order: {items:?}"
    );

    // Listed with its group; screenshot the list.
    b.goto(&d.url("/devices")).await;
    let row = wait_for("tablet-dash in table#devices", WAIT, || async {
        for tr in b.find_all("table#devices tr[data-id]").await {
            let t = tr.text().await.unwrap_or_default();
            if t.contains("tablet-dash") {
                let id = tr.attr("data-id").await.ok().flatten()?;
                return Some((id, t));
            }
        }
        None
    })
    .await;
    assert!(row.1.contains("cardiology"), "{}", row.1);
    b.screenshot(&screenshot_path("devices.png")).await;

    // Rotate its token.
    let rotate = format!("table#devices tr[data-id=\"{}\"] form.rotate", row.0);
    csrf_of(&b, &rotate).await;
    b.click(&format!("{rotate} button")).await;
    // The page before the click shows the first token: wait for the new one.
    let rotated = wait_for("the rotated token", WAIT, || async {
        let t = b.text("#new-token").await.trim().to_string();
        (t != token).then_some(t)
    })
    .await;
    assert!(rotated.starts_with("mrd_"), "{rotated:?}");
    assert_ne!(rotated, token);
    let old = get_json(d.http, "/api/v1/worklist", &token).await.0;
    assert_eq!(old, 401, "the old token still works");
    assert_eq!(worklist(d.http, &rotated).await.len(), items.len());

    // A new group, renamed; the device renamed and moved into it: it then
    // sees that group's (empty) worklist.
    b.fill("form#add-group input[name=name]", "echo-lab").await;
    b.click("form#add-group [type=submit]").await;
    b.find("table#groups tr[data-group=\"echo-lab\"]").await;
    let rename = "table#groups tr[data-group=\"echo-lab\"] form.rename-group";
    b.fill(&format!("{rename} input[name=name]"), "echo").await;
    b.click(&format!("{rename} button")).await;
    b.find("table#groups tr[data-group=\"echo\"]").await;
    let edit = format!("table#devices tr[data-id=\"{}\"] form.move", row.0);
    b.fill(&format!("{edit} input[name=name]"), "tablet-2")
        .await;
    b.fill(&format!("{edit} input[name=group]"), "echo").await;
    b.click(&format!("{edit} button")).await;
    wait_for("the device in group echo", WAIT, || async {
        let t = b
            .text(&format!("table#devices tr[data-id=\"{}\"]", row.0))
            .await;
        (t.contains("tablet-2") && t.contains("echo")).then_some(())
    })
    .await;
    assert!(
        worklist(d.http, &rotated).await.is_empty(),
        "the moved device still sees its old group's worklist"
    );
    b.close().await;
}

/// 3. A device's measurement shows in the browser with its PDF and
///    deliveries, and a resend goes out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurement_page_serves_the_pdf_and_resends() {
    let ehr = TestEhr::start(EhrMode::Accept).await;
    let d = Dash::start(Some(ehr.addr)).await;
    d.user_add(ADMIN, "admin", ADMIN_PASSWORD);
    d.send_order("DASH-3", "ORD-DASH-3").await;
    let id = d.appointment_id("ORD-DASH-3").await;
    let pdf = sample_pdf();
    let (status, body) = post_json(
        d.http,
        "/api/v1/measurements",
        &d.device,
        &measurement(&id, &pdf),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mid = body["id"].as_str().unwrap().to_string();
    ehr.wait_for_count(1, WAIT).await;

    let b = Browser::start().await;
    sign_in(&b, &d, ADMIN, ADMIN_PASSWORD).await;
    let row = format!("table#measurements tr[data-id=\"{mid}\"]");
    wait_on_page(&b, &d, "/measurements", &row).await;
    let text = b.text(&row).await;
    assert!(text.contains("ECG"), "type missing from the row: {text}");
    b.click(&format!("{row} a.view")).await;
    wait_path(&b, &format!("/measurements/{mid}")).await;

    // The PDF, with the session's cookie; not without it.
    let href = b
        .find("a#pdf")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    let pdf_path = path_and_query(&href);
    assert_eq!(path_of(&href), format!("/measurements/{mid}/report.pdf"));
    let cookie = b.cookie_header().await;
    let (status, headers, got) = http_full(d.http, "GET", &pdf_path, &[("Cookie", &cookie)], None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let ctype = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    assert!(ctype.starts_with("application/pdf"), "{ctype}");
    assert_eq!(got, pdf, "the PDF bytes differ");
    let (status, anon) = http(d.http, "GET", &pdf_path, &[], None).await.unwrap();
    assert_ne!(status, 200, "the PDF is served without a session");
    assert_ne!(anon, pdf);

    // The delivery to the EHR integration is listed.
    let deliveries = b.text("table#deliveries").await;
    assert!(deliveries.contains("ehr"), "{deliveries}");

    // Resend: queued, and the EHR receives it a second time.
    csrf_of(&b, "form#resend").await;
    b.click("form#resend button").await;
    let flash = b.text("#flash").await;
    assert!(flash.to_lowercase().contains("queued"), "{flash}");
    ehr.wait_for_count(2, WAIT).await;
    b.screenshot(&screenshot_path("measurements.png")).await;
    b.close().await;
    ehr.stop().await;
}

/// 4. A message found by its control id in the search form, opened: raw
///    text, the field table with `PID(1)-5` and the ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_found_by_control_id_shows_its_fields() {
    let d = Dash::start(None).await;
    d.user_add(ADMIN, "admin", ADMIN_PASSWORD);
    d.send_order("DASH-4A", "ORD-DASH-4A").await;
    d.send_order("DASH-4B", "ORD-DASH-4B").await;
    let admin = admin_token_in(&d.cfg, "default");
    let (status, listed) = get_json(d.http, "/api/v1/messages?control_id=DASH-4B", &admin).await;
    assert_eq!(status, 200, "{listed}");
    let api_id = match &listed["messages"][0]["id"] {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };

    let b = Browser::start().await;
    sign_in(&b, &d, ADMIN, ADMIN_PASSWORD).await;
    b.click("nav a#nav-messages").await;
    wait_path(&b, "/messages").await;
    for field in [
        "input[name=control_id]",
        "input[name=identifier]",
        "input[name=type]",
        "select[name=status]",
        "input[name=channel]",
        "input[name=from]",
        "input[name=to]",
    ] {
        b.find(&format!("form#search {field}")).await;
    }
    b.fill("form#search input[name=control_id]", "DASH-4B")
        .await;
    b.click("form#search [type=submit]").await;
    wait_for("the search to run", WAIT, || async {
        path_and_query(&b.current_url().await)
            .contains("control_id=DASH-4B")
            .then_some(())
    })
    .await;
    b.find("table#messages").await;
    let rows = b.find_all("table#messages tr[data-id]").await;
    assert_eq!(rows.len(), 1, "one message has control id DASH-4B");
    let id = rows[0].attr("data-id").await.unwrap().unwrap_or_default();
    assert_eq!(id, api_id, "the API and the page disagree");

    b.click(&format!("table#messages tr[data-id=\"{id}\"] a.view"))
        .await;
    wait_path(&b, &format!("/messages/{id}")).await;
    let raw = b.text("pre#raw").await;
    assert!(raw.contains("DASH-4B") && raw.contains("PID|"), "{raw}");
    let ack = b.text("pre#ack").await;
    assert!(ack.contains("MSA|AA|DASH-4B"), "{ack}");

    b.find("table#fields").await;
    let mut found = None;
    for tr in b.find_all("table#fields tr").await {
        let Ok(path) = tr.find(Locator::Css("td.path")).await else {
            continue;
        };
        if path.text().await.unwrap().trim() == "PID(1)-5" {
            let title = path.attr("title").await.unwrap().unwrap_or_default();
            let value = tr
                .find(Locator::Css("td.value"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            found = Some((title, value));
            break;
        }
    }
    let (title, value) = found.expect("no td.path PID(1)-5 in table#fields");
    assert!(!title.trim().is_empty(), "PID(1)-5 has no title");
    assert!(value.contains("GARCIA"), "PID(1)-5 = {value:?}");
    b.screenshot(&screenshot_path("messages.png")).await;

    // Processed again: a second message with the same control id, not taken
    // for a retransmission, and said so.
    csrf_of(&b, "form#reprocess").await;
    b.click("form#reprocess button").await;
    let flash = b.text("#flash").await;
    assert!(flash.contains("again"), "{flash}");
    let rows = wait_for("two DASH-4B messages", WAIT, || async {
        let rows = b.find_all("table#messages tr[data-id]").await;
        (rows.len() == 2).then_some(rows)
    })
    .await;
    let mut ids = Vec::new();
    for r in &rows {
        ids.push(r.attr("data-id").await.unwrap().unwrap_or_default());
    }
    assert!(ids.contains(&id), "{ids:?}");
    b.close().await;
}

/// 5. A viewer sees the worklist but cannot delete from it, and has no audit
///    log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_cannot_delete_and_has_no_audit_log() {
    let d = Dash::start(None).await;
    d.user_add("victor", "viewer", "viewer password 123");
    d.send_order("DASH-5", "ORD-DASH-5").await;
    let id = d.appointment_id("ORD-DASH-5").await;

    let b = Browser::start().await;
    sign_in(&b, &d, "victor", "viewer password 123").await;
    assert_nav(&b, false).await;
    let row = format!("table#appointments tr[data-id=\"{id}\"]");
    wait_on_page(&b, &d, "/worklist", &row).await;
    // A valid token of this session, so a refusal below is about the role.
    let csrf = csrf_of(&b, "form#logout").await;
    let cookie = b.cookie_header().await;

    let (status, _) = http(d.http, "GET", "/audit", &[("Cookie", &cookie)], None)
        .await
        .unwrap();
    assert_eq!(status, 403, "a viewer reads the audit log");

    // In the browser: the confirmation (if the page offers one) is refused.
    b.goto(&d.url(&format!("/worklist/{id}/delete"))).await;
    b.find("h1").await;
    if !b.find_all("form#confirm-delete").await.is_empty() {
        b.click("form#confirm-delete button[type=submit]").await;
    }
    wait_for("the Forbidden page", WAIT, || async {
        (b.text("h1").await.trim() == "Forbidden").then_some(())
    })
    .await;

    // The POST itself answers 403.
    let (status, body) = post_form(
        &d,
        &cookie,
        &format!("/worklist/{id}/delete"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Forbidden"), "{body}");

    assert!(d.device_sees(&id).await, "the appointment was deleted");
    b.goto(&d.url("/worklist")).await;
    b.find(&row).await;
    b.close().await;
}

/// 6. A form POST without the session's CSRF token is refused and changes
///    nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_post_without_csrf_token_is_refused() {
    let d = Dash::start(None).await;
    d.user_add(ADMIN, "admin", ADMIN_PASSWORD);
    d.send_order("DASH-6", "ORD-DASH-6").await;
    let id = d.appointment_id("ORD-DASH-6").await;

    let b = Browser::start().await;
    sign_in(&b, &d, ADMIN, ADMIN_PASSWORD).await;
    let row = format!("table#appointments tr[data-id=\"{id}\"]");
    wait_on_page(&b, &d, "/worklist", &row).await;
    let cookie = b.cookie_header().await;
    assert!(!cookie.is_empty(), "no session cookie");

    let path = format!("/worklist/{id}/delete");
    let (status, body) = post_form(&d, &cookie, &path, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Forbidden"), "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, body) = post_form(&d, &cookie, &path, "csrf=forged").await;
    assert_eq!(status, 403, "a wrong token: {body}");

    assert!(d.device_sees(&id).await, "the appointment was deleted");
    b.goto(&d.url("/worklist")).await;
    b.find(&row).await;
    b.close().await;
}

/// 7. Five wrong passwords lock the account: the sixth attempt fails even
///    with the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_account() {
    let d = Dash::start(None).await;
    d.user_add("dora", "operator", "the right password");

    let b = Browser::start().await;
    b.goto(&d.url("/login")).await;
    b.find("form#login button[type=submit]").await;
    b.find("h1").await;
    csrf_of(&b, "form#login").await;
    b.screenshot(&screenshot_path("login.png")).await;

    for attempt in 1..=6 {
        let password = if attempt == 6 {
            "the right password".to_string()
        } else {
            format!("wrong password {attempt}")
        };
        b.goto(&d.url("/login")).await;
        b.fill("form#login input[name=username]", "dora").await;
        b.fill("form#login input[name=password]", &password).await;
        b.click("form#login button[type=submit]").await;
        let error = wait_for("#error after signing in", WAIT, || async {
            let t = b.text("#error").await;
            (!t.trim().is_empty()).then_some(t)
        })
        .await;
        if attempt == 1 {
            assert!(!error.to_lowercase().contains("locked"), "{error}");
        }
        if attempt == 6 {
            assert!(error.to_lowercase().contains("locked"), "{error}");
        }
    }

    // Not signed in: the worklist sends us back to the sign-in page.
    b.goto(&d.url("/worklist")).await;
    b.find("form#login").await;
    assert_eq!(path_of(&b.current_url().await), "/login");
    b.close().await;
}

/// 8. A user of the whole installation creates an organisation with its
///    admin and switches between organisations; each sees only its own data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installation_user_switches_organisations() {
    let d = Dash::start(None).await;
    let out = Command::new(BIN)
        .args([
            "user",
            "add",
            "--name",
            "root",
            "--role",
            "admin",
            "--installation",
        ])
        .args(["--password-env", "MEDRELAY_TEST_PASSWORD", "--config"])
        .arg(&d.cfg)
        .env("MEDRELAY_TEST_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.send_order("ORG-1", "ORD-ORG-1").await;
    let id = d.appointment_id("ORD-ORG-1").await;
    let row = format!("table#appointments tr[data-id=\"{id}\"]");

    let b = Browser::start().await;
    sign_in(&b, &d, "root", ADMIN_PASSWORD).await;
    // Until it switches, the installation user looks at `default`.
    wait_on_page(&b, &d, "/worklist", &row).await;
    b.click("nav a#nav-orgs").await;
    b.find("form#add-org").await;
    assert_eq!(b.text("#current-org").await.trim(), "default");
    b.fill("form#add-org input[name=org]", "clinic-b").await;
    b.fill("form#add-org input[name=admin]", "bea").await;
    b.fill("form#add-org input[name=password]", ADMIN_PASSWORD)
        .await;
    b.click("form#add-org button[type=submit]").await;
    b.find("table#orgs tr[data-org=\"clinic-b\"]").await;
    b.click("table#orgs tr[data-org=\"clinic-b\"] form.switch button")
        .await;
    b.wait_text("#current-org", "clinic-b").await;
    // clinic-b has no appointments: the default organisation's order is not shown.
    b.goto(&d.url("/worklist")).await;
    b.find("table#appointments").await;
    assert!(
        b.find_all(&row).await.is_empty(),
        "clinic-b sees default's order"
    );
    // Back to default.
    b.goto(&d.url("/orgs")).await;
    b.click("table#orgs tr[data-org=\"default\"] form.switch button")
        .await;
    b.wait_text("#current-org", "default").await;
    b.goto(&d.url("/worklist")).await;
    b.find(&row).await;
    b.close().await;

    // clinic-b's own admin sees only clinic-b, and manages no organisations.
    let b = Browser::start().await;
    sign_in(&b, &d, "bea", ADMIN_PASSWORD).await;
    assert!(b.find_all("nav a#nav-orgs").await.is_empty());
    b.goto(&d.url("/worklist")).await;
    b.find("table#appointments").await;
    assert!(
        b.find_all(&row).await.is_empty(),
        "bea sees another organisation's order"
    );
    b.goto(&d.url("/orgs")).await;
    b.wait_text("h1", "Forbidden").await;
    b.close().await;
}
