//! A headless Chromium driven over WebDriver, for the dashboard's browser
//! tests: each [`Browser`] starts its own `chromedriver` on a free port, with
//! its own throwaway profile directory, so tests run in parallel. Everything
//! waits on conditions with deadlines; nothing sleeps to synchronise.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium
//! chromium-driver`); `$CHROMIUM` and `$CHROMEDRIVER` override the paths.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The WebDriver client, for tests that need more than the helpers here.
pub use fantoccini;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long [`Browser::find`] (and everything built on it) waits for an element.
pub const FIND_TIMEOUT: Duration = Duration::from_secs(15);

/// How long chromedriver may take to answer `/status`.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "apt-get install chromium chromium-driver";

/// A headless Chromium session behind its own chromedriver, which is killed
/// (after ending the session) when this is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_addr: SocketAddr,
    session_id: Option<String>,
    closed: bool,
    /// The profile (`--user-data-dir`) and chromedriver's log; removed last.
    _dir: tempfile::TempDir,
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn chromedriver_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMEDRIVER") {
        return PathBuf::from(p);
    }
    let usr = PathBuf::from("/usr/bin/chromedriver");
    if usr.exists() {
        return usr;
    }
    // Elsewhere on PATH.
    PathBuf::from("chromedriver")
}

/// The last part of chromedriver's log, for error messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(3000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

impl Browser {
    /// Starts chromedriver on a free port, waits until its `/status` says it
    /// is ready, and opens a headless Chromium session with a fresh profile.
    pub async fn start() -> Browser {
        let chromium = chromium_path();
        assert!(
            chromium.exists(),
            "Chromium not found at {} (set $CHROMIUM or `{INSTALL_HINT}`)",
            chromium.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("medrelay-browser-")
            .tempdir()
            .unwrap();
        let profile = dir.path().join("profile");
        std::fs::create_dir_all(&profile).unwrap();

        // A port that was free a moment ago may be taken by the time
        // chromedriver binds it (tests start servers in parallel): try again.
        let mut attempt = 0;
        let (driver, driver_addr) = loop {
            attempt += 1;
            let log = dir.path().join(format!("chromedriver-{attempt}.log"));
            let addr = crate::free_port();
            let mut child = spawn_driver(addr, &log);
            match wait_ready(&mut child, addr).await {
                Ok(()) => break (child, addr),
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if attempt >= 3 {
                        panic!(
                            "chromedriver did not start on {addr}: {why}\n--- chromedriver log ---\n{}",
                            log_tail(&log)
                        );
                    }
                }
            }
        };

        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--no-first-run".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--window-size=1280,900".to_string(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": args,
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://{driver_addr}");
        let connected = ClientBuilder::rustls()
            .expect("a rustls HTTP connector for the WebDriver client")
            .capabilities(caps)
            .connect(&url)
            .await;
        let client = match connected {
            Ok(c) => c,
            Err(e) => {
                let mut driver = driver;
                let _ = driver.kill();
                let _ = driver.wait();
                let log = log_tail(&dir.path().join(format!("chromedriver-{attempt}.log")));
                panic!(
                    "could not open a headless Chromium session ({} via chromedriver at {url}): {e}\n\
                     (is Chromium installed? `{INSTALL_HINT}`)\n--- chromedriver log ---\n{log}",
                    chromium.display()
                );
            }
        };
        let session_id = client.session_id().await.ok().flatten();
        Browser {
            client,
            driver,
            driver_addr,
            session_id,
            closed: false,
            _dir: dir,
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("could not open {url}: {e}");
        }
    }

    /// Waits (deadline 15 s) for an element matching the CSS selector and
    /// returns it.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(FIND_TIMEOUT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let source = self.client.source().await.unwrap_or_default();
                let cut = source
                    .char_indices()
                    .nth(4000)
                    .map(|(i, _)| i)
                    .unwrap_or(source.len());
                panic!(
                    "no element matches {css:?} after {FIND_TIMEOUT:?} on {url}: {e}\n--- page source ---\n{}",
                    &source[..cut]
                );
            }
        }
    }

    /// Every element matching the CSS selector now (no waiting; possibly none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find_all({css:?}): {e}"))
    }

    /// The rendered text of the element (waits for it like [`Browser::find`]).
    /// An element that went stale under us (the page navigated between
    /// finding and reading it) is looked up again, within the same deadline.
    pub async fn text(&self, css: &str) -> String {
        let deadline = std::time::Instant::now() + FIND_TIMEOUT;
        loop {
            let el = self.find(css).await;
            match el.text().await {
                Ok(t) => return t,
                Err(e) if went_stale(&e.to_string()) && std::time::Instant::now() < deadline => {
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("text of {css:?}: {e}"),
            }
        }
    }

    /// Waits (deadline 15 s) until the element's text is `expected`: after a
    /// click that navigates, the old page may still be showing.
    pub async fn wait_text(&self, css: &str, expected: &str) {
        let deadline = std::time::Instant::now() + FIND_TIMEOUT;
        loop {
            let now = self.text(css).await;
            if now.trim() == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{css:?} still says {now:?}, not {expected:?}, after {FIND_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clears the input and types `value` into it (looked up again if it
    /// went stale, like [`Browser::text`]).
    pub async fn fill(&self, css: &str, value: &str) {
        let deadline = std::time::Instant::now() + FIND_TIMEOUT;
        loop {
            let el = self.find(css).await;
            let done = match el.clear().await {
                Ok(()) => el.send_keys(value).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => return,
                Err(e) if is_stale(&e) && std::time::Instant::now() < deadline => {}
                Err(e) => panic!("type into {css:?}: {e}"),
            }
        }
    }

    /// Clicks the element (chromedriver waits for a navigation it starts;
    /// an element that went stale first is looked up again).
    pub async fn click(&self, css: &str) {
        let deadline = std::time::Instant::now() + FIND_TIMEOUT;
        loop {
            let el = self.find(css).await;
            match el.click().await {
                Ok(_) => return,
                Err(e) if is_stale(&e) && std::time::Instant::now() < deadline => {}
                Err(e) => panic!("click {css:?}: {e}"),
            }
        }
    }

    /// The current DOM, serialised.
    pub async fn page_source(&self) -> String {
        self.client
            .source()
            .await
            .unwrap_or_else(|e| panic!("page source: {e}"))
    }

    pub async fn current_url(&self) -> String {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("current URL: {e}"))
            .to_string()
    }

    /// The browser's cookies as a `Cookie:` request header value
    /// (`name=value; name2=value2`), HttpOnly ones included.
    pub async fn cookie_header(&self) -> String {
        let cookies = self
            .client
            .get_all_cookies()
            .await
            .unwrap_or_else(|e| panic!("cookies: {e}"));
        cookies
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Saves a PNG screenshot of the viewport to `path` (creating parent dirs).
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.closed = true;
        // Drop stops chromedriver and removes the profile.
    }
}

fn spawn_driver(addr: SocketAddr, log: &Path) -> Child {
    let path = chromedriver_path();
    Command::new(&path)
        .arg(format!("--port={}", addr.port()))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "could not start chromedriver ({}): {e} (set $CHROMEDRIVER or `{INSTALL_HINT}`)",
                path.display()
            )
        })
}

/// Polls chromedriver's `/status` until it reports ready, it exits, or the
/// deadline passes.
async fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DRIVER_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("chromedriver exited: {status}"));
        }
        if let Some(v) = driver_status(addr).await
            && v["value"]["ready"] == true
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("/status not ready after {DRIVER_START_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `buf` holds a whole HTTP response (head and Content-Length body).
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    buf.len() - (end + 4) >= len
}

/// chromedriver's `GET /status` as JSON. (Not [`crate::http`]: chromedriver
/// refuses requests whose `Host` is not local.)
async fn driver_status(addr: SocketAddr) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    // chromedriver keeps the connection open whatever the request says: read
    // up to Content-Length rather than to the end.
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return Some(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if response_complete(&buf) {
                return Some(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// `DELETE /session/<id>` with blocking I/O (Drop cannot await): ends the
/// session so that chromedriver quits Chromium before it is killed itself.
fn delete_session(addr: SocketAddr, id: &str) {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return;
    }
    // chromedriver answers once Chromium has quit, and keeps the connection open.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if response_complete(&buf) {
            break;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed
            && let Some(id) = &self.session_id
        {
            delete_session(self.driver_addr, id);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The page changed between finding an element and using it.
fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    e.to_string().contains("stale element")
}

/// Whether a WebDriver error means the element belongs to a page that has
/// since been replaced: chromedriver says "stale element reference", or, when
/// the replacement happens during the read, passes on Chrome's "Node with
/// given id does not belong to the document".
fn went_stale(error: &str) -> bool {
    error.contains("stale") || error.contains("does not belong to the document")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::response::Html;
    use axum::routing::get;

    const PAGE: &str = r#"<!doctype html><html><head><title>harness</title></head><body>
<h1>Harness</h1>
<p id="greeting">Hello, browser</p>
<form id="f" method="post" action="/echo">
  <input name="q" value="preset">
  <button type="submit">Send</button>
</form>
</body></html>"#;

    async fn echo(body: String) -> Html<String> {
        Html(format!(
            "<!doctype html><html><body><h1>Echo</h1><p id=\"out\">{}</p></body></html>",
            body.replace('<', "&lt;")
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_static_page() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .route("/echo", axum::routing::post(echo));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let b = Browser::start().await;
        let base = format!("http://{addr}");
        b.goto(&format!("{base}/")).await;
        assert_eq!(b.text("h1").await, "Harness");
        assert_eq!(b.text("#greeting").await, "Hello, browser");
        assert!(b.page_source().await.contains("id=\"greeting\""));

        let shots = tempfile::tempdir().unwrap();
        let shot = shots.path().join("nested/dir/page.png");
        b.screenshot(&shot).await;
        let png = std::fs::read(&shot).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

        // fill clears the preset value first.
        b.fill("form#f input[name=q]", "hello world").await;
        b.click("form#f button[type=submit]").await;
        b.wait_text("h1", "Echo").await;
        assert_eq!(b.text("#out").await, "q=hello+world");
        assert_eq!(b.current_url().await, format!("{base}/echo"));
        assert!(b.find_all("#greeting").await.is_empty());
        assert_eq!(b.cookie_header().await, "");

        // A second browser at the same time: its own driver and profile.
        let other = Browser::start().await;
        assert_ne!(other.driver_addr, b.driver_addr);
        other.goto(&format!("{base}/")).await;
        assert_eq!(other.text("#greeting").await, "Hello, browser");
        drop(other); // ends its session from Drop

        b.close().await;
        server.abort();
    }
}
