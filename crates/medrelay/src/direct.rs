//! `medrelay direct edge add | list` and `medrelay direct address add | list |
//! delete`: who may use the Direct Messaging API and where messages to each
//! address are delivered. `edge add` prints the edge's secret once, on the
//! last line; only its argon2id hash is stored.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use medrelay_store::{DirectAddress, Endpoint};

use crate::admin::StoreArgs;

#[derive(clap::Subcommand)]
pub enum DirectCommand {
    /// Sending edges: the systems that call the Messaging API (HTTP Basic).
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Direct addresses: who sends from them, where messages to them go.
    #[command(subcommand)]
    Address(AddressCommand),
}

#[derive(clap::Subcommand)]
pub enum EdgeCommand {
    /// Register an edge and print `user=` and, last, `secret=` (shown once).
    Add {
        /// The Basic user name, `[a-z0-9-]`.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The organisation's edges, one per line.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(clap::Subcommand)]
pub enum AddressCommand {
    /// Register (or replace) a Direct address.
    Add {
        /// `someone@clinic.example`
        #[arg(long)]
        address: String,
        /// The edge that may send from this address.
        #[arg(long)]
        edge: Option<String>,
        /// Where messages to this address are POSTed (the receiving edge).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, requires = "endpoint")]
        endpoint_user: Option<String>,
        #[arg(long, requires = "endpoint_user")]
        endpoint_password: Option<String>,
        /// Where status notifications for messages sent from this address go.
        #[arg(long)]
        notify: Option<String>,
        #[arg(long, requires = "notify")]
        notify_user: Option<String>,
        #[arg(long, requires = "notify_user")]
        notify_password: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The organisation's addresses, one per line (tab-separated, with a header).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an address.
    Delete {
        address: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn url(u: &str, option: &str) -> Result<String> {
    let lower = u.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        bail!("{option} must be an http:// or https:// URL, not {u:?}");
    }
    Ok(u.to_string())
}

pub async fn run(cmd: DirectCommand) -> Result<ExitCode> {
    match cmd {
        DirectCommand::Edge(EdgeCommand::Add { name, store }) => {
            if !medrelay_engine::config::valid_name(&name) {
                bail!("--name must be 1-64 characters of a-z, 0-9 and '-'");
            }
            let mut bytes = [0u8; 24];
            getrandom::fill(&mut bytes).context("generating a secret")?;
            let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let hash = medrelay_store::oauth::hash_secret(secret.clone()).await?;
            let s = store.open()?;
            let created = s.create_direct_edge(&name, &store.org, &hash).await;
            s.close().await.ok();
            created.context("registering the edge")?;
            println!("user={name}");
            println!("secret={secret}");
        }
        DirectCommand::Edge(EdgeCommand::List { store }) => {
            let s = store.open()?;
            let edges = s.list_direct_edges(&store.org).await;
            s.close().await.ok();
            println!("name\tcreated_at");
            for e in edges? {
                println!("{}\t{}", e.name, e.created_at);
            }
        }
        DirectCommand::Address(AddressCommand::Add {
            address,
            edge,
            endpoint,
            endpoint_user,
            endpoint_password,
            notify,
            notify_user,
            notify_password,
            store,
        }) => {
            if !medrelay_direct::is_direct_address(&address) {
                bail!("--address must be a Direct address like someone@clinic.example");
            }
            let endpoint = match endpoint {
                Some(u) => Some(Endpoint {
                    url: url(&u, "--endpoint")?,
                    user: endpoint_user,
                    password: endpoint_password,
                }),
                None => None,
            };
            let notify = match notify {
                Some(u) => Some(Endpoint {
                    url: url(&u, "--notify")?,
                    user: notify_user,
                    password: notify_password,
                }),
                None => None,
            };
            let s = store.open()?;
            let saved = s
                .put_direct_address(DirectAddress {
                    address,
                    org: store.org.clone(),
                    edge,
                    endpoint,
                    notify,
                    created_at: 0,
                })
                .await;
            s.close().await.ok();
            let saved = saved.context("registering the address")?;
            println!("address={}", saved.address);
        }
        DirectCommand::Address(AddressCommand::List { store }) => {
            let s = store.open()?;
            let list = s.list_direct_addresses(&store.org).await;
            s.close().await.ok();
            println!("address\tedge\tendpoint\tnotify");
            for a in list? {
                println!(
                    "{}\t{}\t{}\t{}",
                    a.address,
                    a.edge.as_deref().unwrap_or("-"),
                    a.endpoint.as_ref().map_or("-", |e| e.url.as_str()),
                    a.notify.as_ref().map_or("-", |e| e.url.as_str()),
                );
            }
        }
        DirectCommand::Address(AddressCommand::Delete { address, store }) => {
            let s = store.open()?;
            let done = s.delete_direct_address(&store.org, &address).await;
            s.close().await.ok();
            done.context("removing the address")?;
            println!("deleted={address}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
