//! `medrelay device add` and `medrelay token create`: create a secret, store
//! only its hash, print it once (alone on the last line, for scripts).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use medrelay_server::auth::{TokenKind, generate};
use medrelay_store::{SqliteOptions, Store};

use crate::config::Config;

/// Where the store is: `--config` (its data_dir / database) or `--data-dir`.
#[derive(clap::Args)]
pub struct StoreArgs {
    #[arg(long, conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The organisation (see DESIGN.md, "Organisations").
    #[arg(long, default_value = medrelay_store::DEFAULT_ORG)]
    pub org: String,
}

impl StoreArgs {
    pub(crate) fn open(&self) -> Result<Store> {
        let mut cfg = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            cfg.server.data_dir = dir.clone();
        }
        let db = cfg.database_path()?;
        Store::open_sqlite(&db, SqliteOptions::default())
            .with_context(|| format!("opening the store {}", db.display()))
    }
}

#[derive(clap::Subcommand)]
pub enum DeviceCommand {
    /// Register a device in a group and print its API token once.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        group: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once.
    Create {
        #[arg(long, value_parser = ["admin"])]
        role: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn device(cmd: DeviceCommand) -> Result<ExitCode> {
    match cmd {
        DeviceCommand::Add { name, group, store } => {
            if !medrelay_engine::config::valid_name(&group) {
                anyhow::bail!("--group must be 1-64 characters of a-z, 0-9 and '-'");
            }
            let s = store.open()?;
            let token = generate(TokenKind::Device).context("generating a token")?;
            let device = s
                .create_device(&store.org, &name, &group, &token.hash)
                .await;
            s.close().await.ok();
            let device = device.context("registering the device")?;
            println!("device_id={}", device.id);
            println!("group={}", device.group);
            println!("token={}", token.token);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn token(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Create { role, name, store } => {
            let s = store.open()?;
            let token = generate(TokenKind::Admin).context("generating a token")?;
            let created = s
                .create_api_token(&store.org, &role, &name, &token.hash)
                .await;
            s.close().await.ok();
            created.context("storing the token")?;
            println!("token={}", token.token);
            Ok(ExitCode::SUCCESS)
        }
    }
}
