//! The MLLP listener: accepts TCP (optionally TLS) connections and hands each
//! frame to a [`Handler`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::allow::AllowList;
use crate::codec::{CodecError, DEFAULT_MAX_FRAME, Inbound, MllpCodec};

/// Listener settings. Start from [`ListenerConfig::new`] and override fields.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// TLS settings; `None` for plain TCP. See [`crate::tls::server_config`].
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Peers allowed to connect; empty allows all.
    pub allow: AllowList,
    /// A connection that does not complete a frame within this time is closed
    /// (default 5 minutes). The timer restarts after each frame, so a peer that
    /// trickles bytes without ever finishing a frame is closed too.
    pub idle_timeout: Duration,
    /// Connections served at once (default 256); more are accepted and closed.
    pub max_connections: usize,
    /// Maximum payload size (default 16 MiB); larger frames go to
    /// [`Handler::on_oversized`].
    pub max_frame: usize,
    /// Time allowed for the TLS handshake (default 10 s).
    pub tls_handshake_timeout: Duration,
}

impl ListenerConfig {
    /// Plain TCP on `addr`, open to all, with the defaults.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            allow: AllowList::any(),
            idle_timeout: Duration::from_secs(300),
            max_connections: 256,
            max_frame: DEFAULT_MAX_FRAME,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The remote end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// Remote address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Subject of the verified client certificate (mutual TLS), RFC 4514 style,
    /// e.g. `CN=device-7,O=Clinic`.
    pub client_cert_subject: Option<String>,
    /// The verified client certificate (leaf), DER.
    pub client_cert: Option<CertificateDer<'static>>,
}

impl Peer {
    /// A plain-TCP peer; handy for testing handlers.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: false,
            client_cert_subject: None,
            client_cert: None,
        }
    }
}

/// Why a connection was refused right after accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The address is not in the allow-list.
    NotAllowed,
    /// `max_connections` connections are already being served.
    TooManyConnections,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection between frames.
    PeerClosed,
    /// No complete frame within the idle timeout.
    IdleTimeout,
    /// The listener is shutting down.
    Shutdown,
    /// The peer closed the connection in the middle of a frame.
    Truncated {
        /// Payload bytes of the unfinished frame.
        bytes: usize,
    },
    /// A read or write failed, or the reply could not be sent.
    Error(String),
}

/// Connection lifecycle notifications, for metrics and logging. Each `Accepted` is
/// followed by exactly one `TlsHandshakeFailed` or `Closed` for the same peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A connection passed the allow-list and the connection limit.
    Accepted {
        /// Remote address.
        peer: SocketAddr,
    },
    /// A connection was closed right after accept, before anything was read.
    Refused {
        /// Remote address.
        peer: SocketAddr,
        /// Why.
        reason: RefuseReason,
    },
    /// The TLS handshake failed or timed out; the connection was closed.
    TlsHandshakeFailed {
        /// Remote address.
        peer: SocketAddr,
        /// What went wrong.
        error: String,
    },
    /// A served connection ended.
    Closed {
        /// Remote address.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
        /// Frames (including oversized ones) received on it.
        frames: u64,
    },
    /// `accept` failed (e.g. out of file descriptors); the listener backs off
    /// briefly and goes on.
    AcceptFailed {
        /// What went wrong.
        error: String,
    },
}

/// Application callbacks of a [`Listener`].
///
/// Frames of one connection are handled strictly in order: the reply to a frame is
/// written before the next frame of that connection is passed in. Different
/// connections are served concurrently, so the handler is shared.
pub trait Handler: Send + Sync + 'static {
    /// One complete frame; return the bytes to send back (the ACK), or `None` to
    /// send nothing.
    fn on_frame(&self, peer: &Peer, payload: Bytes) -> impl Future<Output = Option<Bytes>> + Send;

    /// A frame over the size limit (its body was discarded); return a rejection to
    /// send, or `None`. `head` is the start of the payload, enough for the MSH.
    fn on_oversized(
        &self,
        peer: &Peer,
        head: Bytes,
        len: usize,
        limit: usize,
    ) -> impl Future<Output = Option<Bytes>> + Send;

    /// Connection lifecycle events. Called inline by the accept loop, so it must
    /// be quick and must not panic.
    fn on_event(&self, _event: ConnectionEvent) {}
}

/// A bound MLLP listener.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    local_addr: SocketAddr,
    cfg: ListenerConfig,
}

struct ConnSettings {
    acceptor: Option<TlsAcceptor>,
    idle_timeout: Duration,
    max_frame: usize,
    handshake_timeout: Duration,
}

const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// Bound on the polite close (TLS close_notify, FIN) of a finished connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

impl Listener {
    /// Bind the listening socket. Port 0 picks a free port; see
    /// [`Listener::local_addr`].
    pub async fn bind(cfg: ListenerConfig) -> io::Result<Listener> {
        let socket = if cfg.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // A restarted engine must be able to take its port back while connections
        // of the previous run are still in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(cfg.addr)?;
        let inner = socket.listen(1024)?;
        let local_addr = inner.local_addr()?;
        Ok(Listener {
            inner,
            local_addr,
            cfg,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve until `shutdown` is cancelled. Then the listening socket is closed at
    /// once; each connection finishes the frame it is handling, sends its reply and
    /// closes. Returns when all connections are done, or after `grace`, when the
    /// remaining ones are dropped.
    pub async fn run<H: Handler>(
        self,
        handler: Arc<H>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> io::Result<()> {
        let Listener {
            inner,
            cfg,
            local_addr,
        } = self;
        let settings = Arc::new(ConnSettings {
            acceptor: cfg.tls.clone().map(TlsAcceptor::from),
            idle_timeout: cfg.idle_timeout,
            max_frame: cfg.max_frame,
            handshake_timeout: cfg.tls_handshake_timeout,
        });
        let slots = Arc::new(Semaphore::new(cfg.max_connections));
        let mut tasks = JoinSet::new();
        let mut backoff = MIN_ACCEPT_BACKOFF;
        tracing::info!(addr = %local_addr, tls = cfg.tls.is_some(), allow = %cfg.allow, "MLLP listener started");

        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                // Reap finished connections so the set does not grow without bound.
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = done
                        && e.is_panic()
                    {
                        tracing::error!("MLLP connection task panicked");
                    }
                }
                accepted = inner.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff = MIN_ACCEPT_BACKOFF;
                        if !cfg.allow.allows(peer.ip()) {
                            drop(stream);
                            tracing::warn!(%peer, "MLLP connection refused: not in allow-list");
                            handler.on_event(ConnectionEvent::Refused { peer, reason: RefuseReason::NotAllowed });
                            continue;
                        }
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            drop(stream);
                            tracing::warn!(%peer, limit = cfg.max_connections, "MLLP connection refused: too many connections");
                            handler.on_event(ConnectionEvent::Refused { peer, reason: RefuseReason::TooManyConnections });
                            continue;
                        };
                        tracing::debug!(%peer, "MLLP connection accepted");
                        handler.on_event(ConnectionEvent::Accepted { peer });
                        // Connection tasks log inside the caller's span (e.g. its channel).
                        tasks.spawn(
                            serve_connection(
                                stream,
                                peer,
                                settings.clone(),
                                handler.clone(),
                                shutdown.clone(),
                                permit,
                            )
                            .in_current_span(),
                        );
                    }
                    Err(e) if is_per_connection_error(&e) => {
                        tracing::debug!(error = %e, "MLLP accept: connection failed before accept");
                    }
                    Err(e) => {
                        // Typically EMFILE/ENFILE/ENOMEM: retrying at once would spin.
                        tracing::error!(error = %e, backoff_ms = backoff.as_millis() as u64, "MLLP accept failed");
                        handler.on_event(ConnectionEvent::AcceptFailed { error: e.to_string() });
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    }
                }
            }
        }

        drop(inner);
        tracing::info!(connections = tasks.len(), "MLLP listener stopping");
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                connections = tasks.len(),
                "MLLP grace period over; dropping remaining connections"
            );
            tasks.shutdown().await;
        }
        Ok(())
    }
}

fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    addr: SocketAddr,
    settings: Arc<ConnSettings>,
    handler: Arc<H>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    // Replies are small and latency-bound; Nagle would hold each ACK back.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(peer = %addr, error = %e, "cannot set TCP_NODELAY");
    }
    let (reason, frames) = match &settings.acceptor {
        None => {
            let peer = Peer::new(addr);
            serve_frames(stream, &peer, &settings, &*handler, &shutdown).await
        }
        Some(acceptor) => {
            let handshake = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    handler.on_event(ConnectionEvent::Closed { peer: addr, reason: CloseReason::Shutdown, frames: 0 });
                    return;
                }
                r = tokio::time::timeout(settings.handshake_timeout, acceptor.accept(stream)) => r,
            };
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::warn!(peer = %addr, error = %e, "MLLP TLS handshake failed");
                    handler.on_event(ConnectionEvent::TlsHandshakeFailed {
                        peer: addr,
                        error: e.to_string(),
                    });
                    return;
                }
                Err(_) => {
                    tracing::warn!(peer = %addr, "MLLP TLS handshake timed out");
                    handler.on_event(ConnectionEvent::TlsHandshakeFailed {
                        peer: addr,
                        error: "handshake timed out".to_owned(),
                    });
                    return;
                }
            };
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|c| c.clone().into_owned());
            let peer = Peer {
                addr,
                tls: true,
                client_cert_subject: client_cert
                    .as_ref()
                    .and_then(|c| crate::tls::certificate_subject(c)),
                client_cert,
            };
            serve_frames(tls, &peer, &settings, &*handler, &shutdown).await
        }
    };
    tracing::debug!(peer = %addr, ?reason, frames, "MLLP connection closed");
    handler.on_event(ConnectionEvent::Closed {
        peer: addr,
        reason,
        frames,
    });
}

async fn serve_frames<S, H>(
    io: S,
    peer: &Peer,
    settings: &ConnSettings,
    handler: &H,
    shutdown: &CancellationToken,
) -> (CloseReason, u64)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut framed = Framed::new(io, MllpCodec::new(settings.max_frame));
    let mut frames = 0u64;
    let reason = loop {
        // Shutdown is only honoured between frames: a frame being handled gets its
        // reply, so the sender is not left guessing whether it was accepted.
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break CloseReason::Shutdown,
            r = tokio::time::timeout(settings.idle_timeout, framed.next()) => r,
        };
        let item = match next {
            Err(_) => break CloseReason::IdleTimeout,
            Ok(None) => break CloseReason::PeerClosed,
            Ok(Some(Err(CodecError::Truncated { bytes }))) => {
                break CloseReason::Truncated { bytes };
            }
            Ok(Some(Err(e))) => break CloseReason::Error(e.to_string()),
            Ok(Some(Ok(item))) => item,
        };
        frames += 1;
        let reply = match item {
            Inbound::Frame { payload, .. } => handler.on_frame(peer, payload).await,
            Inbound::Oversized {
                head, len, limit, ..
            } => handler.on_oversized(peer, head, len, limit).await,
        };
        let Some(reply) = reply else { continue };
        // Bounded so that a peer that stops reading cannot pin the connection.
        match tokio::time::timeout(settings.idle_timeout, framed.send(reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break CloseReason::Error(format!("sending reply: {e}")),
            Err(_) => break CloseReason::Error("timed out sending reply".to_owned()),
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, framed.get_mut().shutdown()).await;
    (reason, frames)
}
