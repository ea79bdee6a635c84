//! The TOML configuration file: `[server]` and `[[channel]]` (see DESIGN.md and
//! the README's configuration reference).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use medrelay_engine::IntegrationConfig;
use medrelay_engine::config::ChannelConfig;
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default, rename = "channel")]
    pub channels: Vec<ChannelConfig>,
    #[serde(default, rename = "integration")]
    pub integrations: Vec<IntegrationConfig>,
    /// Direct secure messaging (the HISP behind `/MessagingAPI`).
    #[serde(default)]
    pub direct: medrelay_engine::direct::DirectConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// `sqlite://path` or a path; PostgreSQL arrives in a later release.
    #[serde(default)]
    pub database: Option<String>,
    /// Delete stored messages older than this (e.g. `90d`); absent keeps everything.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// How long SIGTERM waits for in-flight work before exiting anyway.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    #[serde(default)]
    pub log_format: LogFormat,
    /// Largest HTTP request body (a measurement with its Base64 PDF).
    #[serde(default = "default_max_body")]
    pub max_request_bytes: usize,
    /// Lifetime of the access tokens `POST /oauth/token` issues.
    #[serde(default = "default_oauth_token_ttl", with = "humantime_serde")]
    pub oauth_token_ttl: Duration,
    /// Token requests per second one OAuth client may make on average …
    #[serde(default = "default_oauth_token_rate")]
    pub oauth_token_rate: f64,
    /// … and at once.
    #[serde(default = "default_oauth_token_burst")]
    pub oauth_token_burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: default_data_dir(),
            http: default_http(),
            database: None,
            retention: None,
            shutdown_grace: default_grace(),
            log_format: LogFormat::Text,
            max_request_bytes: default_max_body(),
            oauth_token_ttl: default_oauth_token_ttl(),
            oauth_token_rate: default_oauth_token_rate(),
            oauth_token_burst: default_oauth_token_burst(),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("medrelay-data")
}
fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body() -> usize {
    32 * 1024 * 1024
}
fn default_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_oauth_token_ttl() -> Duration {
    medrelay_server::oauth::DEFAULT_TOKEN_TTL
}
fn default_oauth_token_rate() -> f64 {
    medrelay_server::oauth::DEFAULT_TOKEN_RATE
}
fn default_oauth_token_burst() -> u32 {
    medrelay_server::oauth::DEFAULT_TOKEN_BURST
}

impl Config {
    /// Reads, resolves `env:` secrets, and deserializes. Errors name the file,
    /// the line and the key.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let mut table: toml::Table = text.parse()?;
        let mut missing = Vec::new();
        resolve_env(&mut table, "", &mut missing);
        if !missing.is_empty() {
            bail!(
                "environment variables referenced with env: are not set: {}",
                missing.join(", ")
            );
        }
        let cfg: Config = toml::Value::Table(table).try_into()?;
        Ok(cfg)
    }

    /// The configuration used when `serve` gets no `--config`: an HL7
    /// integration, `default`, listening on 127.0.0.1:2575 and feeding the
    /// worklist of the device group `default`; results are kept, not sent. Plus
    /// `default-fhir`: ServiceRequests and Appointments created through
    /// `/fhir/R4` land in the same group.
    pub fn embedded_default() -> Result<Config> {
        let integration: IntegrationConfig = toml::from_str(
            "name = \"default\"\npreset = \"hl7-mllp\"\ngroup = \"default\"\ninbound = { mllp = \"127.0.0.1:2575\" }\n",
        )
        .context("the embedded default configuration")?;
        let fhir: IntegrationConfig =
            toml::from_str("name = \"default-fhir\"\npreset = \"fhir\"\ngroup = \"default\"\n")
                .context("the embedded default configuration")?;
        Ok(Config {
            integrations: vec![integration, fhir],
            ..Config::default()
        })
    }

    /// The embedded default's GDT integration, `default-gdt`: 6302 requests from
    /// `DIR/gdt/in`, 6310 results with their PDF into `DIR/gdt/out`, for the
    /// device group `default`. Added once the data directory is known.
    pub fn add_embedded_gdt(&mut self) -> Result<()> {
        let gdt = self.server.data_dir.join("gdt");
        let mut t = toml::Table::new();
        t.insert("name".into(), "default-gdt".into());
        t.insert("preset".into(), "gdt".into());
        t.insert("group".into(), "default".into());
        for (side, dir) in [("inbound", "in"), ("outbound", "out")] {
            let mut folder = toml::Table::new();
            folder.insert(
                "folder".into(),
                gdt.join(dir).to_string_lossy().into_owned().into(),
            );
            t.insert(side.into(), folder.into());
        }
        let integration: IntegrationConfig = toml::Value::Table(t)
            .try_into()
            .context("the embedded GDT integration")?;
        self.integrations.push(integration);
        Ok(())
    }

    /// Everything `check` reports beyond what deserializing already caught.
    pub fn problems(&self) -> Vec<String> {
        let mut out = medrelay_engine::check(&self.channels, &self.integrations);
        let ttl = self.server.oauth_token_ttl;
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(7 * 86400) {
            out.push(format!(
                "server.oauth_token_ttl: {} is outside 1s to 7d",
                humantime::format_duration(ttl)
            ));
        }
        let rate = self.server.oauth_token_rate;
        if !(rate.is_finite() && rate > 0.0) {
            out.push(format!(
                "server.oauth_token_rate: {rate} must be a positive number of requests per second"
            ));
        }
        if self.server.oauth_token_burst == 0 {
            out.push("server.oauth_token_burst: must be at least 1".into());
        }
        if let Some(db) = &self.server.database
            && db.starts_with("postgres")
        {
            out.push(
                "server.database: PostgreSQL is not supported yet; remove the key to use the embedded SQLite store".into(),
            );
        }
        for ch in &self.channels {
            if let Some(tls) = &ch.source.tls {
                for (what, p) in [
                    ("cert", Some(&tls.cert)),
                    ("key", Some(&tls.key)),
                    ("client_ca", tls.client_ca.as_ref()),
                ] {
                    if let Some(p) = p
                        && !p.is_file()
                    {
                        out.push(format!(
                            "channel {:?}: source.tls.{what}: file {} does not exist",
                            ch.name,
                            p.display()
                        ));
                    }
                }
            }
            for d in &ch.destinations {
                if let Some(tls) = &d.tls {
                    for (what, p) in [
                        ("ca", Some(&tls.ca)),
                        ("cert", tls.cert.as_ref()),
                        ("key", tls.key.as_ref()),
                    ] {
                        if let Some(p) = p
                            && !p.is_file()
                        {
                            out.push(format!(
                                "channel {:?}: destination tls.{what}: file {} does not exist",
                                ch.name,
                                p.display()
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// Where the SQLite file lives.
    pub fn database_path(&self) -> Result<PathBuf> {
        match &self.server.database {
            None => Ok(self.server.data_dir.join("medrelay.db")),
            Some(url) if url.starts_with("postgres") => {
                bail!("PostgreSQL is not supported yet (server.database = {url:?})")
            }
            Some(url) => Ok(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url))),
        }
    }
}

/// Replaces every string value `env:NAME` with the variable's value, so secrets
/// stay out of the file. Missing variables are collected with their key path.
fn resolve_env(table: &mut toml::Table, prefix: &str, missing: &mut Vec<String>) {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        resolve_value(value, &path, missing);
    }
}

fn resolve_value(value: &mut toml::Value, path: &str, missing: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("env:") {
                match std::env::var(name) {
                    Ok(v) => *s = v,
                    Err(_) => missing.push(format!("{name} (at {path})")),
                }
            }
        }
        toml::Value::Table(t) => resolve_env(t, path, missing),
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_value(item, &format!("{path}[{i}]"), missing);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_channels_and_env_secrets() {
        // SAFETY: single-threaded test setup of a variable no other test reads.
        unsafe { std::env::set_var("MEDRELAY_TEST_DEST", "127.0.0.1:7777") };
        let cfg = Config::parse(
            r#"
            [server]
            http = "127.0.0.1:9090"
            retention = "30d"

            [[channel]]
            name = "adt"
            source = { mllp = "127.0.0.1:6000", allow = ["10.0.0.0/8"] }
            destinations = [{ name = "pacs", mllp = "env:MEDRELAY_TEST_DEST", retry = { initial = "2s" } }]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.server.http.port(), 9090);
        assert_eq!(cfg.server.retention, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(
            cfg.channels[0].destinations[0].mllp.as_deref(),
            Some("127.0.0.1:7777")
        );
        assert_eq!(
            cfg.channels[0].destinations[0].retry.initial,
            Duration::from_secs(2)
        );
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    }

    #[test]
    fn oauth_token_settings_default_and_are_checked() {
        let cfg = Config::parse("").unwrap();
        assert_eq!(cfg.server.oauth_token_ttl, Duration::from_secs(3600));
        assert_eq!(cfg.server.oauth_token_rate, 10.0);
        assert_eq!(cfg.server.oauth_token_burst, 20);
        let cfg = Config::parse(
            "[server]\noauth_token_ttl = \"5m\"\noauth_token_rate = 0.5\noauth_token_burst = 3\n",
        )
        .unwrap();
        assert_eq!(cfg.server.oauth_token_ttl, Duration::from_secs(300));
        assert_eq!(cfg.server.oauth_token_rate, 0.5);
        assert_eq!(cfg.server.oauth_token_burst, 3);
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        let cfg = Config::parse(
            "[server]\noauth_token_ttl = \"0s\"\noauth_token_rate = 0.0\noauth_token_burst = 0\n",
        )
        .unwrap();
        let problems = cfg.problems().join("\n");
        for key in ["oauth_token_ttl", "oauth_token_rate", "oauth_token_burst"] {
            assert!(problems.contains(key), "{problems}");
        }
    }

    #[test]
    fn missing_env_and_unknown_keys_are_explained() {
        let err =
            Config::parse("[server]\ndatabase = \"env:MEDRELAY_SURELY_UNSET\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("MEDRELAY_SURELY_UNSET (at server.database)"));
        let err = Config::parse("[server]\nhtp = \"x\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("htp"), "{err:#}");
    }

    #[test]
    fn every_example_configuration_is_valid() {
        // The secret the WEDA example reads from the environment.
        unsafe { std::env::set_var("WEDA_TOKEN", "example-token") };
        unsafe { std::env::set_var("SERVICE_TOKEN", "example-token") };
        for var in ["JOIN_SECRET", "ZLR_SECRET", "LEYR_SECRET", "HALO_KEY"] {
            unsafe { std::env::set_var(var, "example-secret") };
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let cfg =
                    Config::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                assert!(
                    cfg.problems().is_empty(),
                    "{}: {:?}",
                    path.display(),
                    cfg.problems()
                );
                checked += 1;
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn embedded_default_is_an_hl7_integration_on_2575() {
        let cfg = Config::embedded_default().unwrap();
        assert!(cfg.channels.is_empty());
        assert_eq!(cfg.integrations.len(), 2);
        assert_eq!(cfg.integrations[1].preset, "fhir");
        let i = &cfg.integrations[0];
        assert_eq!(
            (i.name.as_str(), i.preset.as_str(), i.group.as_str()),
            ("default", "hl7-mllp", "default")
        );
        assert_eq!(
            i.inbound.mllp.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:2575")
        );
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    }

    #[test]
    fn embedded_default_has_a_gdt_inbox_and_outbox() {
        let mut cfg = Config::embedded_default().unwrap();
        cfg.server.data_dir = "/srv/medrelay".into();
        cfg.add_embedded_gdt().unwrap();
        let g = &cfg.integrations[2];
        assert_eq!((g.name.as_str(), g.preset.as_str()), ("default-gdt", "gdt"));
        assert_eq!(g.inbound.folder.as_deref(), Some("/srv/medrelay/gdt/in"));
        assert_eq!(g.outbound.folder.as_deref(), Some("/srv/medrelay/gdt/out"));
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    }
}
