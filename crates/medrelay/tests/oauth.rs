//! OAuth 2.0 client credentials end to end, as an EHR uses them: an operator
//! registers the client with `medrelay client add`, the EHR asks `medrelay
//! serve` for a token at `POST /oauth/token` (RFC 6749 §4.4). Token expiry
//! through the extractor is tested in the server crate (`oauth::tests`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::*;
use medrelay_testkit::{ServeProcess, free_port};
use serde_json::Value;

const FORM: &str = "application/x-www-form-urlencoded";

struct Server {
    _process: ServeProcess,
    http: SocketAddr,
    cfg: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A server with only HTTP, and `extra` lines in `[server]`; `setup` runs
    /// the CLI against its configuration before it starts.
    async fn start(extra: &str, setup: impl FnOnce(&Path)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let cfg = dir.path().join("medrelay.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\ndata_dir = {:?}\nhttp = \"{http}\"\n{extra}\n",
                dir.path().join("data")
            ),
        )
        .unwrap();
        check_ok(&cfg);
        setup(&cfg);
        let process = ServeProcess::start(BIN, &cfg, http).await;
        Server {
            _process: process,
            http,
            cfg,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/oauth/token", self.http)
    }

    /// `POST /oauth/token` with HTTP Basic client authentication.
    async fn token_basic(&self, id: &str, secret: &str, form: &str) -> Reply {
        let resp = reqwest::Client::new()
            .post(self.url())
            .basic_auth(id, Some(secret))
            .header("Content-Type", FORM)
            .body(form.to_owned())
            .send()
            .await
            .unwrap();
        Reply::read(resp).await
    }

    /// `POST /oauth/token` with a body of the given content type, no header auth.
    async fn token_body(&self, content_type: &str, body: &str) -> Reply {
        let resp = reqwest::Client::new()
            .post(self.url())
            .header("Content-Type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        Reply::read(resp).await
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.cfg)
            .output()
            .unwrap()
    }
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// An RFC 6749 §5.2 error with this status and code, not cached.
    fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
        assert!(
            self.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
        assert!(self.body.get("access_token").is_none());
        assert_eq!(self.header("cache-control"), "no-store");
    }
}

#[tokio::test]
async fn cli_clients_get_tokens_with_basic_or_form_credentials() {
    let mut creds = (String::new(), String::new());
    let server = Server::start("", |cfg| {
        creds = client_add_in(
            cfg,
            "ehr",
            &["appointments:write", "results:read"],
            "default",
        );
    })
    .await;
    let (id, secret) = (creds.0.as_str(), creds.1.as_str());
    assert!(id.starts_with("mrc_"), "{id}");
    assert_eq!(secret.len(), 43, "32 bytes, Base64url");

    // HTTP Basic: every scope of the client by default.
    let r = server
        .token_basic(id, secret, "grant_type=client_credentials")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600, "the default lifetime");
    assert_eq!(r.body["scope"], "appointments:write results:read");
    let basic_token = r.body["access_token"].as_str().unwrap().to_owned();
    assert!(basic_token.starts_with("mro_"), "{basic_token}");

    // Form credentials, one scope.
    let r = server
        .token_body(
            FORM,
            &format!(
                "grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=results%3Aread"
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "results:read");
    assert_ne!(r.body["access_token"].as_str().unwrap(), basic_token);

    // The client is listed in its organisation only.
    let out = server.cli(&["client", "list"]);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{id}\tehr\tappointments:write results:read\t"))),
        "{listed}"
    );
    let out = server.cli(&["client", "list", "--org", "elsewhere"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(id));
}

#[tokio::test]
async fn token_requests_get_rfc_6749_errors() {
    let mut creds = (String::new(), String::new());
    let server = Server::start("", |cfg| {
        creds = client_add_in(cfg, "ehr", &["appointments:write"], "default");
    })
    .await;
    let (id, secret) = (creds.0.as_str(), creds.1.as_str());

    // Wrong secret: 401 invalid_client with a Basic challenge.
    let r = server
        .token_basic(id, "not-the-secret", "grant_type=client_credentials")
        .await;
    r.assert_error(401, "invalid_client");
    assert!(
        r.header("www-authenticate").starts_with("Basic "),
        "{:?}",
        r.headers
    );
    // No client authentication at all.
    let r = server
        .token_body(FORM, "grant_type=client_credentials")
        .await;
    r.assert_error(401, "invalid_client");

    let r = server.token_basic(id, secret, "grant_type=password").await;
    r.assert_error(400, "unsupported_grant_type");
    let r = server
        .token_basic(id, secret, "grant_type=client_credentials&scope=admin")
        .await;
    r.assert_error(400, "invalid_scope");
    let r = server
        .token_body(
            "application/json",
            &format!(
                r#"{{"grant_type":"client_credentials","client_id":"{id}","client_secret":"{secret}"}}"#
            ),
        )
        .await;
    r.assert_error(415, "invalid_request");

    // A deleted client gets no more tokens.
    let out = server.cli(&["client", "delete", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = server
        .token_basic(id, secret, "grant_type=client_credentials")
        .await;
    r.assert_error(401, "invalid_client");
    let out = server.cli(&["client", "delete", id]);
    assert!(!out.status.success(), "deleting twice fails");
}

#[tokio::test]
async fn the_token_endpoint_limits_each_client_and_uses_the_configured_lifetime() {
    let mut creds = (String::new(), String::new());
    let mut other = (String::new(), String::new());
    // Two requests at once, then one per 100 s: the third is refused whatever
    // the machine's speed.
    let server = Server::start(
        "oauth_token_ttl = \"90s\"\noauth_token_rate = 0.01\noauth_token_burst = 2",
        |cfg| {
            creds = client_add_in(cfg, "ehr", &[], "default");
            other = client_add_in(cfg, "ehr-2", &[], "default");
        },
    )
    .await;
    let (id, secret) = (creds.0.as_str(), creds.1.as_str());
    let grant = "grant_type=client_credentials";

    // Guesses use up the burst like real requests.
    server
        .token_basic(id, "guess", grant)
        .await
        .assert_error(401, "invalid_client");
    let r = server.token_basic(id, secret, grant).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["expires_in"], 90, "oauth_token_ttl");
    assert_eq!(r.body["scope"], "");

    let r = server.token_basic(id, secret, grant).await;
    r.assert_error(429, "rate_limited");
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((60..=100).contains(&retry), "Retry-After: {retry}");

    // Another client is not slowed down.
    let r = server.token_basic(&other.0, &other.1, grant).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
