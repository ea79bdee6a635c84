//! The MLLP sender: one connection, one message at a time, each answered by a
//! reply frame (the ACK).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

use crate::codec::{CodecError, DEFAULT_MAX_FRAME, Inbound, MllpCodec};

/// TLS settings of a [`Sender`].
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// See [`crate::tls::client_config`].
    pub config: Arc<rustls::ClientConfig>,
    /// Name the server certificate must be valid for (DNS name or IP address).
    pub server_name: String,
}

/// Sender settings. Start from [`SenderConfig::new`] and override fields.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// `host:port`; host names are resolved on each connect.
    pub addr: String,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<ClientTls>,
    /// Bound on TCP connect plus TLS handshake (default 10 s).
    pub connect_timeout: Duration,
    /// Bound on writing the message plus receiving the reply (default 30 s).
    pub ack_timeout: Duration,
    /// Maximum size of the message and of the reply (default 16 MiB).
    pub max_frame: usize,
}

impl SenderConfig {
    /// Plain TCP to `addr` with the defaults.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            tls: None,
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// Errors of [`Sender::send`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// TCP connect failed (refused, unreachable, name not resolved …).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Target.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// TCP connect plus TLS handshake took longer than `connect_timeout`.
    #[error("connecting to {addr} timed out after {timeout:?}")]
    ConnectTimeout {
        /// Target.
        addr: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The TLS handshake failed (untrusted certificate, name mismatch, client
    /// certificate refused …).
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        /// Target.
        addr: String,
        /// Why (wraps a `rustls::Error` where there is one).
        source: io::Error,
    },
    /// `ClientTls::server_name` is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {name:?}")]
    InvalidServerName {
        /// The name given.
        name: String,
    },
    /// No reply within `ack_timeout`. The connection was dropped.
    #[error("no reply within {timeout:?}")]
    AckTimeout {
        /// The configured timeout.
        timeout: Duration,
    },
    /// The peer closed the connection before replying. The message may or may not
    /// have been processed.
    #[error("connection closed by the peer before it replied")]
    Closed,
    /// Reading or writing failed. The connection was dropped.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The reply was larger than `max_frame`; it was discarded.
    #[error("reply of {len} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Reply payload length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The message cannot be framed (too large, contains framing bytes), or the
    /// reply was cut off.
    #[error("MLLP protocol error: {0}")]
    Protocol(#[from] CodecError),
}

/// The transport under the codec. An enum rather than a boxed trait object so that
/// the TCP socket stays reachable for the liveness check.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

type Connection = Framed<Stream, MllpCodec>;

const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// An MLLP client that keeps one connection open between messages.
///
/// Before each message the kept connection is checked with a non-blocking peek at
/// the socket: if the peer has closed it meanwhile (server restart, idle timeout on
/// the server side), it is replaced by a new one, so that case costs no error. The
/// check cannot see a close that happens while the message is in flight; then the
/// error is returned and the next call reconnects.
///
/// Dropping a [`Sender::send`] future before it completes drops the connection too,
/// so a late reply can never be taken for the answer to a later message.
pub struct Sender {
    cfg: SenderConfig,
    conn: Option<Connection>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("cfg", &self.cfg)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl Sender {
    /// A sender; nothing is connected until the first [`Sender::send`].
    pub fn new(cfg: SenderConfig) -> Sender {
        Sender { cfg, conn: None }
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.cfg
    }

    /// Whether a connection is currently kept open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Send one message and wait for the reply frame.
    ///
    /// Keeps the connection for the next call and (re)connects lazily when there is
    /// none or the last one broke. On an ack timeout or any I/O error the connection
    /// is dropped (the stream can no longer be trusted) and the error returned; the
    /// caller decides about retrying.
    pub async fn send(&mut self, payload: &[u8]) -> Result<Bytes, SendError> {
        MllpCodec::new(self.cfg.max_frame).validate_payload(payload)?;
        if let Some(conn) = self.conn.as_mut()
            && is_stale(conn).await
        {
            tracing::debug!(addr = %self.cfg.addr, "MLLP connection closed by the peer while idle; reconnecting");
            self.conn = None;
        }
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let exchange = async {
            conn.send(payload).await?;
            conn.next().await.transpose()
        };
        let outcome = tokio::time::timeout(self.cfg.ack_timeout, exchange).await;
        match outcome {
            Err(_) => Err(SendError::AckTimeout {
                timeout: self.cfg.ack_timeout,
            }),
            Ok(Ok(Some(Inbound::Frame { payload, .. }))) => {
                self.conn = Some(conn);
                Ok(payload)
            }
            Ok(Ok(Some(Inbound::Oversized { len, limit, .. }))) => {
                // The codec skipped the whole reply, so the stream is still in sync.
                self.conn = Some(conn);
                Err(SendError::Oversized { len, limit })
            }
            Ok(Ok(None)) => Err(SendError::Closed),
            Ok(Err(CodecError::Io(e))) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(SendError::Closed)
            }
            Ok(Err(CodecError::Io(e))) => Err(SendError::Io(e)),
            Ok(Err(e)) => Err(SendError::Protocol(e)),
        }
    }

    /// Close the connection, if any, politely (TLS close_notify, then FIN).
    pub async fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Every send flushes, so nothing is left in the write buffer.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.get_mut().shutdown()).await;
        }
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let addr = &self.cfg.addr;
        let attempt = async {
            let tcp =
                TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|source| SendError::Connect {
                        addr: addr.clone(),
                        source,
                    })?;
            // Messages are written in one go and then we wait; Nagle only adds delay.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let io = match &self.cfg.tls {
                None => Stream::Plain(tcp),
                Some(tls) => {
                    let name = ServerName::try_from(tls.server_name.clone()).map_err(|_| {
                        SendError::InvalidServerName {
                            name: tls.server_name.clone(),
                        }
                    })?;
                    let stream = TlsConnector::from(tls.config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|source| SendError::Tls {
                            addr: addr.clone(),
                            source,
                        })?;
                    Stream::Tls(Box::new(stream))
                }
            };
            Ok(Framed::new(io, MllpCodec::new(self.cfg.max_frame)))
        };
        match tokio::time::timeout(self.cfg.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(SendError::ConnectTimeout {
                addr: addr.clone(),
                timeout: self.cfg.connect_timeout,
            }),
        }
    }
}

/// Longest wait for the TLS layer to interpret bytes found on an idle connection.
const STALE_PROBE: Duration = Duration::from_millis(250);

enum Pending {
    Nothing,
    Closed,
    Bytes,
}

/// Ask the kernel directly whether the idle socket has anything to read. tokio's
/// own non-blocking reads only try the syscall once the reactor has seen a readiness
/// event, which it may not have processed yet; a `MSG_PEEK` on a duplicate of the
/// descriptor has no such lag and consumes nothing.
#[cfg(any(unix, windows))]
fn peek(tcp: &TcpStream) -> Pending {
    #[cfg(unix)]
    let dup = std::os::fd::AsFd::as_fd(tcp).try_clone_to_owned();
    #[cfg(windows)]
    let dup = std::os::windows::io::AsSocket::as_socket(tcp).try_clone_to_owned();
    let std_tcp = match dup {
        Ok(owned) => std::net::TcpStream::from(owned),
        Err(_) => return Pending::Bytes,
    };
    // The descriptor is a duplicate of a non-blocking socket, so this cannot block;
    // dropping it closes only the duplicate.
    let mut byte = [0u8; 1];
    match std_tcp.peek(&mut byte) {
        Ok(0) => Pending::Closed,
        Ok(_) => Pending::Bytes,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Pending::Nothing,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Pending::Bytes,
        Err(_) => Pending::Closed,
    }
}

#[cfg(not(any(unix, windows)))]
fn peek(_tcp: &TcpStream) -> Pending {
    Pending::Bytes
}

/// Whether an idle connection has been closed by the peer. Bytes waiting on an idle
/// connection are read through the stack: for TLS they are usually the close_notify
/// of a server that shut down. A frame nobody asked for also makes the connection
/// unusable, since replies could be attributed to the wrong message.
async fn is_stale(conn: &mut Connection) -> bool {
    match peek(conn.get_ref().tcp()) {
        Pending::Nothing => false,
        Pending::Closed => true,
        Pending::Bytes => match tokio::time::timeout(STALE_PROBE, conn.next()).await {
            // TLS-internal records (session tickets, key updates) only.
            Err(_) => false,
            Ok(None) | Ok(Some(Err(_))) => true,
            Ok(Some(Ok(_))) => {
                tracing::warn!("MLLP: unsolicited frame on an idle connection; reconnecting");
                true
            }
        },
    }
}
