//! The session handling shared by FTP and SFTP: one lazily opened session per
//! folder behind a mutex, a time limit on every operation, and one transparent
//! reconnect when the server dropped an idle session.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::{Entry, FolderError, FolderOptions, FolderSpec, RemoteSpec};

/// What a session needs to know about its folder.
pub(crate) struct Ctx {
    pub remote: RemoteSpec,
    pub opts: FolderOptions,
    /// [`FolderSpec::display`], for errors.
    pub display: String,
    /// The password to log in with: the options' or else the URL's.
    pub password: Option<String>,
    /// FTPS: the TLS configuration, built on first connect and kept so that TLS
    /// sessions can be resumed (some servers require it for data connections).
    pub tls: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>>,
}

impl Ctx {
    /// The directory of the folder on the server.
    pub fn dir(&self) -> &str {
        &self.remote.path
    }

    /// The remote path of file `name` in the folder.
    pub fn file(&self, name: &str) -> String {
        crate::spec::remote_join(&self.remote.path, name)
    }

    /// The remote path of a destination directory (relative to the folder or
    /// absolute).
    pub fn dest_dir(&self, dir: &str) -> String {
        let dir = dir.trim_end_matches('/');
        let dir = if dir.is_empty() { "/" } else { dir };
        crate::spec::remote_join(&self.remote.path, dir)
    }

    /// A remote path as a URL, for error messages (written like
    /// [`FolderSpec::display`] writes the folder).
    pub fn show(&self, path: &str) -> String {
        let (scheme, path) = match self.remote.scheme {
            crate::Scheme::Sftp if path.starts_with('/') => ("sftp", path.to_owned()),
            crate::Scheme::Sftp => ("sftp", format!("/~/{path}")),
            // FTP: "/inbox" is relative to the login directory, "//srv" absolute.
            crate::Scheme::Ftp => ("ftp", format!("/{path}")),
            crate::Scheme::Ftps => ("ftps", format!("/{path}")),
        };
        format!("{scheme}://{}{path}", self.remote.host_port())
    }

    pub fn connect_error(&self, reason: impl Into<String>) -> FolderError {
        FolderError::Connect {
            folder: self.display.clone(),
            reason: reason.into(),
        }
    }

    pub fn config_error(&self, reason: impl Into<String>) -> FolderError {
        FolderError::Config {
            folder: self.display.clone(),
            reason: reason.into(),
        }
    }
}

/// An operation's failure, and whether the session is unusable after it.
pub(crate) struct OpError {
    pub error: FolderError,
    /// The connection broke or got out of step: drop the session.
    pub broken: bool,
}

impl From<FolderError> for OpError {
    fn from(error: FolderError) -> Self {
        OpError {
            error,
            broken: false,
        }
    }
}

pub(crate) type OpResult<T> = Result<T, OpError>;

/// One connection to a server, with the folder operations on it.
pub(crate) trait Session: Send + Sized + 'static {
    /// Opens and logs in. Bounded by the connect timeout by the caller.
    fn connect(ctx: &Ctx) -> impl Future<Output = Result<Self, FolderError>> + Send;
    /// Whether the session still works (a cheap round trip where needed). Asked
    /// before operations that change something, so that a stale session is
    /// replaced before the change starts rather than halfway through it.
    fn alive(&mut self) -> impl Future<Output = bool> + Send;
    /// Ends the session politely.
    fn close(self) -> impl Future<Output = ()> + Send;

    fn list(&mut self, ctx: &Ctx) -> impl Future<Output = OpResult<Vec<Entry>>> + Send;
    fn read(&mut self, ctx: &Ctx, name: &str) -> impl Future<Output = OpResult<Vec<u8>>> + Send;
    fn exists(&mut self, ctx: &Ctx, name: &str) -> impl Future<Output = OpResult<bool>> + Send;
    /// Writes `bytes` atomically as file `name` in directory `dir` (a full remote path).
    fn write_atomic(
        &mut self,
        ctx: &Ctx,
        dir: &str,
        name: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> impl Future<Output = OpResult<()>> + Send;
    fn move_to(
        &mut self,
        ctx: &Ctx,
        name: &str,
        dest_dir: &str,
        dest_name: &str,
    ) -> impl Future<Output = OpResult<String>> + Send;
    /// Creates `dir` (a full remote path) and its parents as needed.
    fn make_dirs(&mut self, ctx: &Ctx, dir: &str) -> impl Future<Output = OpResult<()>> + Send;
    fn remove(&mut self, ctx: &Ctx, name: &str) -> impl Future<Output = OpResult<()>> + Send;
}

/// A remote folder: the context and the (lazily opened) session.
pub(crate) struct Remote<S> {
    ctx: Ctx,
    session: Mutex<Option<S>>,
}

/// Runs `$body` (an expression using `$s: &mut S` and `$ctx: &Ctx`) on the
/// folder's session: connects if needed, bounds the call by the I/O timeout, drops
/// a broken session, and retries once on a fresh session when a reused one turned
/// out to be dead.
///
/// A macro rather than a method taking a closure: the body borrows the session
/// mutably across awaits, which closures cannot express without boxing.
macro_rules! on_session {
    ($remote:expr, $op:literal, idempotent = $idempotent:expr, |$s:ident, $ctx:ident| $body:expr) => {{
        let remote = $remote;
        let $ctx = &remote.ctx;
        let io_timeout = $ctx.opts.io_timeout;
        let mut guard = remote.session.lock().await;
        let mut retried = false;
        loop {
            let fresh = guard.is_none();
            let $s = match guard.as_mut() {
                Some(s) => s,
                None => guard.insert(remote.connect().await?),
            };
            if !fresh && !$idempotent && !retried {
                // Before changing anything, make sure a reused session still works.
                let alive = tokio::time::timeout(io_timeout, $s.alive())
                    .await
                    .unwrap_or(false);
                if !alive {
                    tracing::debug!(folder = %$ctx.display, "session is dead, reconnecting");
                    *guard = None;
                    retried = true;
                    continue;
                }
            }
            match tokio::time::timeout(io_timeout, $body).await {
                Ok(Ok(value)) => break Ok(value),
                Ok(Err(e)) => {
                    if e.broken {
                        *guard = None;
                        if !fresh && !retried && $idempotent {
                            tracing::debug!(
                                folder = %$ctx.display,
                                error = %e.error,
                                "connection lost, reconnecting once"
                            );
                            retried = true;
                            continue;
                        }
                    }
                    break Err(e.error);
                }
                Err(_) => {
                    *guard = None;
                    break Err(FolderError::Timeout {
                        folder: $ctx.display.clone(),
                        op: $op,
                        after: io_timeout,
                    });
                }
            }
        }
    }};
}

impl<S: Session> Remote<S> {
    pub fn new(spec: &FolderSpec, remote: RemoteSpec, opts: FolderOptions) -> Self {
        let password = opts
            .password
            .clone()
            .or_else(|| spec.url_password().map(str::to_owned));
        Remote {
            ctx: Ctx {
                remote,
                opts,
                display: spec.display(),
                password,
                tls: std::sync::OnceLock::new(),
            },
            session: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<S, FolderError> {
        let limit = self.ctx.opts.connect_timeout;
        match tokio::time::timeout(limit, S::connect(&self.ctx)).await {
            Ok(Ok(s)) => {
                tracing::debug!(folder = %self.ctx.display, "connected");
                Ok(s)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self
                .ctx
                .connect_error(format!("no session within {limit:?}"))),
        }
    }

    pub async fn close(&self) {
        let session = self.session.lock().await.take();
        if let Some(s) = session {
            let _ = tokio::time::timeout(self.ctx.opts.io_timeout, s.close()).await;
        }
    }

    pub async fn list(&self) -> Result<Vec<Entry>, FolderError> {
        on_session!(self, "list", idempotent = true, |s, ctx| s.list(ctx))
    }

    pub async fn read(&self, name: &str) -> Result<Vec<u8>, FolderError> {
        on_session!(self, "read", idempotent = true, |s, ctx| s.read(ctx, name))
    }

    pub async fn exists(&self, name: &str) -> Result<bool, FolderError> {
        on_session!(self, "exists", idempotent = true, |s, ctx| s
            .exists(ctx, name))
    }

    pub async fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> Result<(), FolderError> {
        on_session!(self, "write", idempotent = false, |s, ctx| s.write_atomic(
            ctx,
            ctx.dir(),
            name,
            bytes,
            overwrite
        ))
    }

    pub async fn move_to(
        &self,
        name: &str,
        dest_dir: &str,
        dest_name: &str,
    ) -> Result<String, FolderError> {
        on_session!(self, "move", idempotent = false, |s, ctx| s
            .move_to(ctx, name, dest_dir, dest_name))
    }

    pub async fn write_into(
        &self,
        dest_dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), FolderError> {
        on_session!(self, "write", idempotent = false, |s, ctx| async {
            let dir = ctx.dest_dir(dest_dir);
            s.make_dirs(ctx, &dir).await?;
            s.write_atomic(ctx, &dir, name, bytes, true).await
        })
    }

    pub async fn remove(&self, name: &str) -> Result<(), FolderError> {
        on_session!(self, "remove", idempotent = false, |s, ctx| s
            .remove(ctx, name))
    }
}

/// Opens a TCP connection to the server, trying each address it resolves to.
pub(crate) async fn tcp_connect(ctx: &Ctx) -> Result<tokio::net::TcpStream, FolderError> {
    let addrs = tokio::net::lookup_host((ctx.remote.host.as_str(), ctx.remote.port))
        .await
        .map_err(|e| ctx.connect_error(format!("cannot resolve {}: {e}", ctx.remote.host)))?;
    let mut last = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err(ctx.connect_error(last.unwrap_or_else(|| "no address".to_owned())))
}

/// A hidden temporary name for writing `name` in the same directory:
/// `.<name>.<16 hex digits>.tmp`, with `name` shortened so that the whole stays
/// within the usual 255-byte limit.
pub(crate) fn temp_name(name: &str) -> String {
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}.{}.tmp", &name[..cut], random_hex())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Uniqueness, not secrecy, is what matters here: fall back to time and a
        // process-wide counter.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos() as u64;
        bytes = (t ^ n.rotate_left(32) ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `n`th candidate for a destination name: `name`, `name.1`, `name.2`, …
pub(crate) fn candidate(name: &str, n: u32) -> String {
    if n == 0 {
        name.to_owned()
    } else {
        format!("{name}.{n}")
    }
}

/// How many candidates [`candidate`] is asked for before giving up.
pub(crate) const MAX_CANDIDATES: u32 = 10_000;
