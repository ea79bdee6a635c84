//! The `medrelay` binary: command-line parsing and wiring only; the work happens
//! in the library crates.

// jemalloc rather than glibc's malloc: under many connections the order path
// spent ~17% of its time in glibc's allocator and its arena locks; jemalloc
// cuts the path's CPU by ~20% (README, "Benchmarks").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod admin;
mod bench;
mod client;
mod config;
mod direct;
mod send;
mod serve;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

#[derive(Parser)]
#[command(
    name = "medrelay",
    version,
    about = "Healthcare integration engine: HL7 v2 over MLLP, durable queues, one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine. Without --config: the embedded default (SQLite in
    /// --data-dir, MLLP on 127.0.0.1:2575, HTTP on 127.0.0.1:8080).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides `server.data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overrides `server.log_format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Send HL7 messages over MLLP and print each ACK. A file may hold several
    /// messages; `-` reads standard input. Exits 1 if any ACK is not AA/CA.
    Send(send::SendArgs),
    /// Validate a configuration file and explain every problem.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage devices (tablets).
    #[command(subcommand)]
    Device(admin::DeviceCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Manage OAuth 2.0 clients (client credentials for /oauth/token).
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Dashboard users (admin, operator, viewer).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Direct secure messaging: sending edges and Direct addresses.
    #[command(subcommand)]
    Direct(direct::DirectCommand),
    /// Load generators that print throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                config,
                data_dir,
                log_format,
            } => serve::run(config, data_dir, log_format).await,
            Command::Send(args) => send::run(args).await,
            Command::Check { config } => check(&config),
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Device(cmd) => admin::device(cmd).await,
            Command::Token(cmd) => admin::token(cmd).await,
            Command::Client(cmd) => client::run(cmd).await,
            Command::Direct(cmd) => direct::run(cmd).await,
            Command::User(cmd) => user::run(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = match config::Config::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            println!("{}: invalid\n  {e:#}", path.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let problems = cfg.problems();
    if problems.is_empty() {
        println!(
            "{}: OK ({} integration(s), {} channel(s))",
            path.display(),
            cfg.integrations.len(),
            cfg.channels.len(),
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{}: {} problem(s)", path.display(), problems.len());
        for p in problems {
            println!("  - {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
