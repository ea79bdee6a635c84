//! `medrelay serve`: open the store, start the channels and the HTTP server,
//! and stop cleanly on SIGTERM / Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use medrelay_engine::Engine;
use medrelay_store::{SqliteOptions, Store};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing::{info, warn};

use crate::config::{Config, LogFormat};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub async fn run(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
) -> Result<ExitCode> {
    let started = Instant::now();
    let mut cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default()?,
    };
    if let Some(dir) = data_dir {
        cfg.server.data_dir = dir;
    }
    if config.is_none() {
        cfg.add_embedded_gdt()?;
    }
    init_logging(log_format.unwrap_or(cfg.server.log_format));
    let problems = cfg.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
    }

    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("configuring the metrics exporter")?
        .install_recorder()
        .context("installing the metrics recorder")?;

    std::fs::create_dir_all(&cfg.server.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            cfg.server.data_dir.display()
        )
    })?;
    if config.is_none() {
        for dir in ["in", "out"] {
            let path = cfg.server.data_dir.join("gdt").join(dir);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
    }
    let db = cfg.database_path()?;
    let store = Store::open_sqlite(&db, SqliteOptions::default())
        .with_context(|| format!("opening the store {}", db.display()))?;

    let engine = Engine::start_with_direct(
        store.clone(),
        &cfg.channels,
        &cfg.integrations,
        cfg.server.shutdown_grace,
        cfg.direct.clone(),
    )
    .await?;
    let shutdown = engine.shutdown_token();

    let http = tokio::net::TcpListener::bind(cfg.server.http)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", cfg.server.http))?;
    let app = medrelay_server::router(medrelay_server::AppState {
        metrics,
        started,
        store: store.clone(),
        results: engine.results(),
        max_body: cfg.server.max_request_bytes,
        oauth_token_ttl: cfg.server.oauth_token_ttl,
        oauth_token_limiter: medrelay_server::oauth::RateLimiter::new(
            cfg.server.oauth_token_rate,
            cfg.server.oauth_token_burst,
        ),
        pushes: medrelay_server::integration_api::endpoints(engine.pushes()),
        pollers: std::sync::Arc::new(engine.worklist_pollers()),
        fhir: std::sync::Arc::new(engine.fhir_targets()),
        direct: Some(medrelay_server::direct_api::DirectState::new(engine.hisp())),
        pipelines: engine.pipelines(),
        components: std::sync::Arc::new(medrelay_engine::components(
            &cfg.channels,
            &cfg.integrations,
        )),
    });
    let http_token = shutdown.clone();
    let http_task = tokio::spawn(medrelay_server::serve(http, app, async move {
        http_token.cancelled().await
    }));

    tokio::spawn(medrelay_server::oauth::prune_expired_tokens(
        store.clone(),
        Duration::from_secs(600),
        shutdown.clone().cancelled_owned(),
    ));

    if let Some(keep) = cfg.server.retention {
        tokio::spawn(medrelay_engine::retention::run(
            store.clone(),
            keep,
            Duration::from_secs(3600),
            shutdown.clone(),
        ));
    }

    info!(
        http = %cfg.server.http,
        data_dir = %cfg.server.data_dir.display(),
        channels = cfg.channels.len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "medrelay ready"
    );

    wait_for_signal().await;
    info!("shutting down: no new connections; finishing in-flight messages");
    engine.shutdown().await;
    match http_task.await {
        Ok(Err(e)) => warn!(error = %e, "HTTP server stopped with an error"),
        Err(e) => warn!(error = %e, "HTTP server task failed"),
        Ok(Ok(())) => {}
    }
    store.close().await.context("flushing the store")?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs go to stderr. Info level carries no patient data: channel names,
/// counts, addresses and errors only. `MEDRELAY_LOG` (or `RUST_LOG`) filters.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MEDRELAY_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
