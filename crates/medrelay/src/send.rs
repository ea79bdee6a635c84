//! `medrelay send HOST:PORT FILE…`: a small MLLP client for people and scripts.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hl7v2::Message;
use hl7v2::ack::{AckCode, parse_ack};
use mllp::{ClientTls, Sender, SenderConfig};

#[derive(clap::Args)]
pub struct SendArgs {
    /// The MLLP listener, e.g. 127.0.0.1:2575.
    pub addr: String,
    /// Files with one or more HL7 messages (`-` for standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Use TLS, trusting this CA (PEM).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name to check the server certificate against (default: the host).
    #[arg(long)]
    pub server_name: Option<String>,
    /// How long to wait for each ACK.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(args: SendArgs) -> Result<ExitCode> {
    let tls = match &args.tls_ca {
        Some(ca) => {
            let identity = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
            let config =
                mllp::tls::client_config_from_files(ca, identity).context("TLS configuration")?;
            let host = args
                .addr
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_else(|| args.addr.clone());
            Some(ClientTls {
                config,
                server_name: args.server_name.clone().unwrap_or(host),
            })
        }
        None => None,
    };
    let mut sender = Sender::new(SenderConfig {
        addr: args.addr.clone(),
        tls,
        connect_timeout: Duration::from_secs(10),
        ack_timeout: args.timeout,
        max_frame: 64 * 1024 * 1024,
    });

    let mut all_ok = true;
    for file in &args.files {
        let bytes = if file.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        } else {
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
        };
        let messages = split_messages(&bytes);
        if messages.is_empty() {
            bail!(
                "{}: no HL7 message found (a message starts with MSH)",
                file.display()
            );
        }
        for msg in messages {
            let ack = sender
                .send(&msg)
                .await
                .with_context(|| format!("sending to {}", args.addr))?;
            all_ok &= ack_is_positive(&ack);
            println!(
                "{}",
                String::from_utf8_lossy(&ack).replace('\r', "\n").trim_end()
            );
            println!();
        }
    }
    sender.close().await;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn ack_is_positive(ack: &[u8]) -> bool {
    Message::parse(ack)
        .ok()
        .and_then(|m| {
            parse_ack(&m)
                .ok()
                .map(|a| matches!(a.code, AckCode::AA | AckCode::CA))
        })
        .unwrap_or(false)
}

/// Splits a file into messages: each starts at a line beginning with `MSH`.
/// Line ends (LF, CRLF, CR) become the HL7 segment terminator CR, and blank
/// lines are dropped, so messages written in an editor work.
pub fn split_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in bytes.split(|b| *b == b'\n' || *b == b'\r') {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if line.starts_with(b"MSH") || out.is_empty() {
            out.push(Vec::new());
        }
        if let Some(current) = out.last_mut() {
            current.extend_from_slice(line);
            current.push(b'\r');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_files_with_any_line_ends() {
        let file = b"MSH|^~\\&|A|B\nPID|1\r\n\r\nMSH|^~\\&|C|D\rPV1|1\n";
        let msgs = split_messages(file);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"MSH|^~\\&|A|B\rPID|1\r");
        assert_eq!(msgs[1], b"MSH|^~\\&|C|D\rPV1|1\r");
    }
}
