//! MLLP (Minimal Lower Layer Protocol) for HL7 v2: framing codec, TCP/TLS listener
//! and sender, built on tokio and rustls.
//!
//! This crate moves opaque frames: it never parses HL7. A frame is
//! `0x0B payload 0x1C 0x0D`; what the payload means, and what ACK to send back, is the
//! caller's business.
//!
//! * [`codec`]: [`MllpCodec`], a `tokio_util` decoder/encoder with a frame size
//!   limit, junk skipping and oversized-frame recovery.
//! * [`server`]: [`Listener`], serving connections concurrently, frames of one
//!   connection strictly in order, with IP allow-list, connection limit, idle timeout,
//!   optional (mutual) TLS and graceful shutdown.
//! * [`client`]: [`Sender`], sending one message at a time and awaiting its reply,
//!   keeping the connection between messages.
//! * [`tls`]: rustls configurations from PEM, using the aws-lc-rs provider.
//! * [`allow`]: [`AllowList`] of CIDR networks.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use mllp::{Handler, Listener, ListenerConfig, Peer, Sender, SenderConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     async fn on_frame(&self, _peer: &Peer, payload: Bytes) -> Option<Bytes> {
//!         // A real handler stores the message, then builds an HL7 ACK.
//!         Some(payload)
//!     }
//!     async fn on_oversized(&self, _: &Peer, _: Bytes, _: usize, _: usize) -> Option<Bytes> {
//!         None
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = Listener::bind(ListenerConfig::new("127.0.0.1:0".parse()?)).await?;
//! let addr = listener.local_addr();
//! let shutdown = CancellationToken::new();
//! let server = tokio::spawn(listener.run(Arc::new(Echo), shutdown.clone(), Duration::from_secs(5)));
//!
//! let mut sender = Sender::new(SenderConfig::new(addr.to_string()));
//! let reply = sender.send(b"MSH|^~\\&|A|B|C|D|20250101||ADT^A01|1|P|2.5\r").await?;
//! assert!(reply.starts_with(b"MSH|"));
//! sender.close().await;
//!
//! shutdown.cancel();
//! server.await??;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod allow;
pub mod client;
pub mod codec;
pub mod server;
pub mod tls;

pub use allow::{AllowList, AllowListError};
pub use client::{ClientTls, SendError, Sender, SenderConfig};
pub use codec::{CodecError, DEFAULT_MAX_FRAME, Inbound, MllpCodec};
pub use server::{
    CloseReason, ConnectionEvent, Handler, Listener, ListenerConfig, Peer, RefuseReason,
};
pub use tls::TlsError;

/// Re-exported so that users need not depend on the same versions themselves.
pub use rustls;

// Compiles the README's examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub use tokio_util::sync::CancellationToken;
