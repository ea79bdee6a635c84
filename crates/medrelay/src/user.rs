//! `medrelay user add | list`: the people who sign in to the dashboard. The
//! password comes from an environment variable (`--password-env`), or a
//! random one is made and printed once; only its argon2id hash is stored.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine as _;

use crate::admin::StoreArgs;

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Create a dashboard user.
    Add {
        /// The sign-in name.
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// The environment variable holding the password (at least 12
        /// characters). Without it a random password is printed once.
        #[arg(long)]
        password_env: Option<String>,
        /// A user of the whole installation: switches between organisations
        /// and creates them (instead of belonging to `--org`).
        #[arg(long)]
        installation: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The organisation's users, one per line.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_env,
            installation,
            store,
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                bail!("--name must be 1-100 characters without control characters");
            }
            let (password, generated) = match password_env {
                Some(var) => {
                    let p = std::env::var(&var)
                        .with_context(|| format!("the environment variable {var} is not set"))?;
                    if p.chars().count() < 12 {
                        bail!("the password in {var} must be at least 12 characters");
                    }
                    (p, false)
                }
                None => {
                    let mut bytes = [0u8; 18];
                    getrandom::fill(&mut bytes).context("generating a password")?;
                    (
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
                        true,
                    )
                }
            };
            let hash = medrelay_store::oauth::hash_secret(password.clone()).await?;
            let s = store.open()?;
            let org = if installation {
                "*"
            } else {
                store.org.as_str()
            };
            let created = s.create_user(org, &name, &role, &hash).await;
            s.close().await.ok();
            let user = created.context("creating the user")?;
            println!("user={}", user.name);
            println!("role={}", user.role);
            if generated {
                println!("password={password}");
            }
        }
        UserCommand::List { store } => {
            let s = store.open()?;
            let users = s.list_users(&store.org).await;
            s.close().await.ok();
            println!("name\trole\tlocked");
            for u in users? {
                println!(
                    "{}\t{}\t{}",
                    u.name,
                    u.role,
                    if u.locked_until.is_some() {
                        "locked"
                    } else {
                        "-"
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
