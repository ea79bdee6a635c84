//! `medrelay client add | list | delete`: the OAuth 2.0 clients that get
//! access tokens from `POST /oauth/token` (client credentials grant). Like
//! `token create`, `add` prints the secret once, on the last line; only its
//! argon2id hash is stored.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use medrelay_store::StoreError;
use medrelay_store::oauth::parse_scope;

use crate::admin::StoreArgs;

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Register an OAuth 2.0 client and print `client_id=`, `scope=` and, last,
    /// `client_secret=` (shown once).
    Add {
        /// A label to recognise the client by.
        #[arg(long)]
        name: String,
        /// A scope the client may ask for; repeat the option (or separate
        /// scopes by spaces) for several. Without any, the client's tokens
        /// carry no scope.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the organisation's clients, one per line (tab-separated, with a
    /// header): client id, name, scopes, creation time, status.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a client; the tokens issued to it stop working at once.
    Delete {
        /// The client id (`mrc_…`).
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Every scope of the `--scope` options, in order, without repeats.
fn scopes(args: &[String]) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for arg in args {
        all.extend(parse_scope(arg).map_err(|e| anyhow::anyhow!("--scope: {e}"))?);
    }
    let mut out: Vec<String> = Vec::new();
    for s in all {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

pub async fn run(cmd: ClientCommand) -> Result<ExitCode> {
    match cmd {
        ClientCommand::Add {
            name,
            scopes: scope_args,
            store,
        } => {
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let scopes = scopes(&scope_args)?;
            let s = store.open()?;
            let created = s.create_oauth_client(&store.org, &name, &scopes).await;
            s.close().await.ok();
            let created = created.context("registering the client")?;
            println!("client_id={}", created.client.id);
            println!("scope={}", created.client.scope());
            println!("client_secret={}", created.client_secret);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::List { store } => {
            let s = store.open()?;
            let clients = s.list_oauth_clients(&store.org).await;
            s.close().await.ok();
            let clients = clients.context("listing the clients")?;
            println!("client_id\tname\tscope\tcreated_at\tstatus");
            for c in clients {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.id,
                    c.name,
                    c.scope(),
                    timestamp(c.created_at),
                    if c.disabled { "disabled" } else { "enabled" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Delete { id, store } => {
            let s = store.open()?;
            let deleted = s.delete_oauth_client(&store.org, &id).await;
            s.close().await.ok();
            match deleted {
                Ok(()) => {
                    println!("deleted client_id={id}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(StoreError::NotFound) => {
                    bail!("no client {id:?} in the organisation {:?}", store.org)
                }
                Err(e) => Err(e).context("deleting the client"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_options_may_repeat_and_hold_several_scopes() {
        let args = vec!["a".to_string(), "b c".into(), "a".into()];
        assert_eq!(scopes(&args).unwrap(), vec!["a", "b", "c"]);
        assert!(scopes(&["bad\"scope".to_string()]).is_err());
        assert!(scopes(&[]).unwrap().is_empty());
    }

    #[test]
    fn timestamps_are_rfc_3339_utc() {
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }
}
