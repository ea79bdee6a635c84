//! FTP and FTPS (explicit TLS) folders with suppaftp: passive mode, binary type,
//! `MLSD` listings (with a `LIST` fallback), atomic writes by `STOR` to a hidden name
//! and `RNFR`/`RNTO`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use suppaftp::list::ListParser;
use suppaftp::tokio::{
    AsyncNoTlsStream, AsyncRustlsConnector, AsyncRustlsStream, ImplAsyncFtpStream, TokioTlsStream,
};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::remote::{
    Ctx, MAX_CANDIDATES, OpError, OpResult, Session, candidate, tcp_connect, temp_name,
};
use crate::spec::remote_join;
use crate::{Entry, FolderError, Scheme};

/// A logged-in FTP or FTPS session.
pub(crate) enum FtpSession {
    Plain(Conn<AsyncNoTlsStream>),
    Tls(Conn<AsyncRustlsStream>),
}

/// The session for one kind of control stream.
pub(crate) struct Conn<T: TokioTlsStream + Send> {
    ftp: ImplAsyncFtpStream<T>,
    /// Whether `MLSD` works; `None` until it was tried.
    mlsd: Option<bool>,
    /// Directories made (or found) in this session, to spare `MKD`s on every move.
    made_dirs: HashSet<String>,
}

macro_rules! dispatch {
    ($self:expr, |$c:ident| $body:expr) => {
        match $self {
            FtpSession::Plain($c) => $body,
            FtpSession::Tls($c) => $body,
        }
    };
}

impl Session for FtpSession {
    async fn connect(ctx: &Ctx) -> Result<Self, FolderError> {
        let tcp = tcp_connect(ctx).await?;
        let peer = tcp.peer_addr().ok();
        let (user, password) = match (&ctx.remote.user, &ctx.password) {
            (Some(u), p) => (u.clone(), p.clone().unwrap_or_default()),
            (None, _) => ("anonymous".to_owned(), "anonymous@".to_owned()),
        };
        if ctx.remote.scheme == Scheme::Ftps {
            let tls = tls_config(ctx)?;
            let ftp = ImplAsyncFtpStream::<AsyncRustlsStream>::connect_with_stream(tcp)
                .await
                .map_err(|e| connect_error(ctx, "greeting", e))?;
            let connector = AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(tls));
            let ftp = ftp
                .into_secure(connector, &ctx.remote.host)
                .await
                .map_err(|e| FolderError::Tls {
                    folder: ctx.display.clone(),
                    reason: match e {
                        FtpError::UnexpectedResponse(r) => {
                            format!("server refused AUTH TLS: {}", reply_text(&r))
                        }
                        other => other.to_string(),
                    },
                })?;
            Ok(FtpSession::Tls(
                Conn::setup(ctx, ftp, peer, &user, &password).await?,
            ))
        } else {
            let ftp = ImplAsyncFtpStream::<AsyncNoTlsStream>::connect_with_stream(tcp)
                .await
                .map_err(|e| connect_error(ctx, "greeting", e))?;
            Ok(FtpSession::Plain(
                Conn::setup(ctx, ftp, peer, &user, &password).await?,
            ))
        }
    }

    async fn alive(&mut self) -> bool {
        dispatch!(self, |c| c.ftp.noop().await.is_ok())
    }

    async fn close(mut self) {
        dispatch!(&mut self, |c| {
            let _ = c.ftp.quit().await;
        })
    }

    async fn list(&mut self, ctx: &Ctx) -> OpResult<Vec<Entry>> {
        dispatch!(self, |c| c.list(ctx).await)
    }

    async fn read(&mut self, ctx: &Ctx, name: &str) -> OpResult<Vec<u8>> {
        dispatch!(self, |c| c.read(ctx, name).await)
    }

    async fn exists(&mut self, ctx: &Ctx, name: &str) -> OpResult<bool> {
        let path = ctx.file(name);
        dispatch!(self, |c| c.exists(ctx, &path).await)
    }

    async fn write_atomic(
        &mut self,
        ctx: &Ctx,
        dir: &str,
        name: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> OpResult<()> {
        dispatch!(self, |c| c
            .write_atomic(ctx, dir, name, bytes, overwrite)
            .await)
    }

    async fn move_to(
        &mut self,
        ctx: &Ctx,
        name: &str,
        dest_dir: &str,
        dest_name: &str,
    ) -> OpResult<String> {
        dispatch!(self, |c| c.move_to(ctx, name, dest_dir, dest_name).await)
    }

    async fn make_dirs(&mut self, ctx: &Ctx, dir: &str) -> OpResult<()> {
        dispatch!(self, |c| c.make_dirs(ctx, dir).await)
    }

    async fn remove(&mut self, ctx: &Ctx, name: &str) -> OpResult<()> {
        dispatch!(self, |c| c.remove(ctx, name).await)
    }
}

impl<T: TokioTlsStream + Send + 'static> Conn<T> {
    async fn setup(
        ctx: &Ctx,
        mut ftp: ImplAsyncFtpStream<T>,
        peer: Option<SocketAddr>,
        user: &str,
        password: &str,
    ) -> Result<Self, FolderError> {
        ftp.login(user, password)
            .await
            .map_err(|e| connect_error(ctx, "login", e))?;
        // Binary: the bytes of GDT and HL7 files must arrive unchanged (no CR/LF
        // translation).
        ftp.transfer_type(FileType::Binary)
            .await
            .map_err(|e| connect_error(ctx, "TYPE I", e))?;
        // Passive mode, connecting data channels to the control connection's address
        // rather than the one the server announces: servers behind NAT announce
        // private addresses, and a hostile server could point us anywhere.
        // IPv6 needs EPSV (PASV can only carry IPv4 addresses).
        if peer.is_some_and(|p| p.is_ipv6()) {
            ftp.set_mode(Mode::ExtendedPassive);
        } else {
            ftp.set_mode(Mode::Passive);
            ftp.set_passive_nat_workaround(true);
        }
        // UTF-8 file names; servers that always use UTF-8 or do not know the option
        // refuse it, which is fine.
        let _ = ftp.opts("UTF8", Some("ON")).await;
        Ok(Conn {
            ftp,
            mlsd: None,
            made_dirs: HashSet::new(),
        })
    }

    async fn list(&mut self, ctx: &Ctx) -> OpResult<Vec<Entry>> {
        let dir = ctx.dir();
        let arg = (!dir.is_empty()).then_some(dir);
        if self.mlsd != Some(false) {
            match self.ftp.mlsd(arg).await {
                Ok(lines) => {
                    self.mlsd = Some(true);
                    let mut entries = Vec::new();
                    for line in &lines {
                        if let Some(mut entry) = parse_mlsd_line(line) {
                            if entry.size == u64::MAX {
                                entry.size = self.size_of(ctx, &ctx.file(&entry.name)).await?;
                            }
                            entries.push(entry);
                        }
                    }
                    return Ok(entries);
                }
                Err(e) if is_unsupported(&e) => {
                    tracing::debug!(folder = %ctx.display, "MLSD not supported, using LIST");
                    self.mlsd = Some(false);
                }
                Err(e) => return Err(op_error(ctx, "list", dir, e)),
            }
        }
        let lines = self
            .ftp
            .list(arg)
            .await
            .map_err(|e| op_error(ctx, "list", dir, e))?;
        Ok(lines.iter().filter_map(|l| parse_list_line(l)).collect())
    }

    async fn size_of(&mut self, ctx: &Ctx, path: &str) -> OpResult<u64> {
        self.ftp
            .size(path)
            .await
            .map(|s| s as u64)
            .map_err(|e| op_error(ctx, "size", path, e))
    }

    async fn read(&mut self, ctx: &Ctx, name: &str) -> OpResult<Vec<u8>> {
        let path = ctx.file(name);
        let mut stream = match self.ftp.retr_as_stream(&path).await {
            Ok(s) => s,
            Err(e) => return Err(self.not_found_or(ctx, "read", &path, e).await),
        };
        let mut bytes = Vec::new();
        if let Err(e) = stream.read_to_end(&mut bytes).await {
            return Err(broken(ctx, format!("reading {path}: {e}")));
        }
        stream
            .finish()
            .await
            .map_err(|e| op_error(ctx, "read", &path, e))?;
        Ok(bytes)
    }

    /// Whether a file exists at `path`: `SIZE` answers for files only (binary type
    /// is set), 550 means no such file.
    async fn exists(&mut self, ctx: &Ctx, path: &str) -> OpResult<bool> {
        match self.ftp.size(path).await {
            Ok(_) => Ok(true),
            Err(e) if reply_code(&e) == Some(550) => Ok(false),
            Err(e) if is_unsupported(&e) => {
                // No SIZE: look for the name in the directory listing.
                let (dir, name) = split_path(path);
                let arg = (!dir.is_empty()).then_some(dir);
                match self.ftp.nlst(arg).await {
                    Ok(names) => Ok(names
                        .iter()
                        .any(|n| n.rsplit('/').next().is_some_and(|n| n == name))),
                    // Some servers answer 550 for an empty directory.
                    Err(e) if reply_code(&e) == Some(550) => Ok(false),
                    Err(e) => Err(op_error(ctx, "list", dir, e)),
                }
            }
            Err(e) => Err(op_error(ctx, "size", path, e)),
        }
    }

    async fn write_atomic(
        &mut self,
        ctx: &Ctx,
        dir: &str,
        name: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> OpResult<()> {
        let target = remote_join(dir, name);
        if !overwrite && self.exists(ctx, &target).await? {
            return Err(FolderError::Exists {
                path: ctx.show(&target),
            }
            .into());
        }
        let tmp = remote_join(dir, &temp_name(name));
        let result = self
            .store_and_rename(ctx, &tmp, &target, bytes, overwrite)
            .await;
        if let Err(e) = &result
            && !e.broken
        {
            // Best effort: the temporary file may or may not exist.
            let _ = self.ftp.rm(&tmp).await;
        }
        result
    }

    async fn store_and_rename(
        &mut self,
        ctx: &Ctx,
        tmp: &str,
        target: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> OpResult<()> {
        let mut upload = self
            .ftp
            .put_with_stream(tmp)
            .await
            .map_err(|e| op_error(ctx, "store", tmp, e))?;
        if let Err(e) = upload.write_all(bytes).await {
            return Err(broken(ctx, format!("writing {tmp}: {e}")));
        }
        upload
            .finish()
            .await
            .map_err(|e| op_error(ctx, "store", tmp, e))?;
        match self.ftp.rename(tmp, target).await {
            Ok(()) => Ok(()),
            // Servers on Windows refuse to rename onto an existing file: delete it
            // first, then rename. Only when replacing was asked for.
            Err(e) if overwrite && reply_code(&e).is_some_and(|c| c >= 500) => {
                tracing::debug!(folder = %ctx.display, target, "RNTO refused, deleting target first");
                match self.ftp.rm(target).await {
                    Ok(()) => {}
                    Err(e) if reply_code(&e) == Some(550) => {}
                    Err(e) => return Err(op_error(ctx, "delete", target, e)),
                }
                self.ftp
                    .rename(tmp, target)
                    .await
                    .map_err(|e| op_error(ctx, "rename", target, e))
            }
            Err(e) => Err(op_error(ctx, "rename", target, e)),
        }
    }

    async fn move_to(
        &mut self,
        ctx: &Ctx,
        name: &str,
        dest_dir: &str,
        dest_name: &str,
    ) -> OpResult<String> {
        let src = ctx.file(name);
        let dest = ctx.dest_dir(dest_dir);
        if !self.exists(ctx, &src).await? {
            return Err(FolderError::NotFound {
                path: ctx.show(&src),
            }
            .into());
        }
        self.make_dirs(ctx, &dest).await?;
        let mut remade = false;
        let mut n = 0;
        while n < MAX_CANDIDATES {
            let cand = candidate(dest_name, n);
            let target = remote_join(&dest, &cand);
            // FTP has no "rename unless the target exists": check first. Another
            // client racing for the same name in between is not guarded against.
            if self.exists(ctx, &target).await? {
                n += 1;
                continue;
            }
            match self.ftp.rename(&src, &target).await {
                Ok(()) => return Ok(cand),
                Err(e) if reply_code(&e) == Some(550) && !remade => {
                    // Perhaps the destination directory was removed since this
                    // session made it: make it again and retry once.
                    remade = true;
                    self.made_dirs.remove(&dest);
                    self.make_dirs(ctx, &dest).await?;
                }
                Err(e) => return Err(self.not_found_or(ctx, "move", &src, e).await),
            }
        }
        Err(FolderError::Remote {
            context: "move",
            path: ctx.show(&remote_join(&dest, dest_name)),
            message: format!("{MAX_CANDIDATES} names taken"),
            transient: false,
        }
        .into())
    }

    /// `MKD` for `dir` and each parent. Failures are ignored here (the directory may
    /// exist, or a parent is not ours to make); the operation that needs the
    /// directory reports it if it is still missing.
    async fn make_dirs(&mut self, ctx: &Ctx, dir: &str) -> OpResult<()> {
        if dir.is_empty() || dir == "/" || self.made_dirs.contains(dir) {
            return Ok(());
        }
        let mut prefix = if dir.starts_with('/') {
            "/".to_owned()
        } else {
            String::new()
        };
        for segment in dir.split('/').filter(|s| !s.is_empty()) {
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            prefix.push_str(segment);
            if segment == "." || segment == ".." {
                continue;
            }
            match self.ftp.mkdir(&prefix).await {
                Ok(()) => {}
                Err(FtpError::UnexpectedResponse(r)) => {
                    tracing::trace!(dir = %prefix, reply = %reply_text(&r), "MKD refused");
                }
                Err(e) => return Err(op_error(ctx, "create directory", &prefix, e)),
            }
        }
        self.made_dirs.insert(dir.to_owned());
        Ok(())
    }

    async fn remove(&mut self, ctx: &Ctx, name: &str) -> OpResult<()> {
        let path = ctx.file(name);
        match self.ftp.rm(&path).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.not_found_or(ctx, "remove", &path, e).await),
        }
    }

    /// FTP answers 550 both for "no such file" and "permission denied": ask again
    /// to tell them apart.
    async fn not_found_or(
        &mut self,
        ctx: &Ctx,
        context: &'static str,
        path: &str,
        e: FtpError,
    ) -> OpError {
        if reply_code(&e) == Some(550) && matches!(self.exists(ctx, path).await, Ok(false)) {
            return FolderError::NotFound {
                path: ctx.show(path),
            }
            .into();
        }
        op_error(ctx, context, path, e)
    }
}

/// The rustls configuration for FTPS: the system's trust store plus
/// [`crate::FolderOptions::ca`], with the aws-lc-rs provider. Built once per
/// folder, which also keeps TLS sessions for resumption on data connections.
fn tls_config(ctx: &Ctx) -> Result<Arc<ClientConfig>, FolderError> {
    if let Some(cfg) = ctx.tls.get() {
        return Ok(cfg.clone());
    }
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::trace!(added, "system CA certificates");
    if let Some(ca) = &ctx.opts.ca {
        let pem = std::fs::read(ca)
            .map_err(|e| ctx.config_error(format!("cannot read CA file {}: {e}", ca.display())))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ctx.config_error(format!("bad PEM in {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(ctx.config_error(format!("no certificate in {}", ca.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                ctx.config_error(format!("unusable CA certificate in {}: {e}", ca.display()))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(ctx.config_error(
            "no trusted CA certificates (no system trust store): set the CA option",
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FolderError::Tls {
            folder: ctx.display.clone(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let cfg = Arc::new(cfg);
    let _ = ctx.tls.set(cfg.clone());
    Ok(cfg)
}

fn reply_code(e: &FtpError) -> Option<u32> {
    match e {
        FtpError::UnexpectedResponse(r) => Some(r.status.code()),
        _ => None,
    }
}

fn reply_text(r: &suppaftp::types::Response) -> String {
    String::from_utf8_lossy(&r.body).trim().to_owned()
}

/// 500/502/504: the server does not know the command (or that parameter).
fn is_unsupported(e: &FtpError) -> bool {
    matches!(reply_code(e), Some(500 | 502 | 504))
}

fn broken(ctx: &Ctx, reason: String) -> OpError {
    OpError {
        error: ctx.connect_error(format!("connection lost: {reason}")),
        broken: true,
    }
}

/// Classifies an error during an operation: a server reply leaves the session
/// usable (except 421, "closing"); anything else means the connection is gone or
/// out of step.
fn op_error(ctx: &Ctx, context: &'static str, path: &str, e: FtpError) -> OpError {
    match e {
        FtpError::UnexpectedResponse(r) if r.status.code() != 421 => {
            let code = r.status.code();
            FolderError::Remote {
                context,
                path: ctx.show(path),
                message: reply_text(&r),
                transient: (400..500).contains(&code),
            }
            .into()
        }
        other => broken(ctx, format!("{context} {path}: {other}")),
    }
}

fn connect_error(ctx: &Ctx, stage: &str, e: FtpError) -> FolderError {
    match e {
        FtpError::UnexpectedResponse(r) => {
            ctx.connect_error(format!("{stage}: {}", reply_text(&r)))
        }
        FtpError::SecureError(s) => FolderError::Tls {
            folder: ctx.display.clone(),
            reason: s,
        },
        other => ctx.connect_error(format!("{stage}: {other}")),
    }
}

fn split_path(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

/// One line of an `MLSD` reply (RFC 3659): `fact=value;fact=value; name`. Only
/// `type=file` entries are returned; a missing size is marked `u64::MAX` for the
/// caller to ask `SIZE`.
fn parse_mlsd_line(line: &str) -> Option<Entry> {
    let (facts, name) = match line.find("; ") {
        Some(i) => (&line[..=i], &line[i + 2..]),
        None => ("", line.strip_prefix(' ')?),
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    let mut is_file = false;
    let mut size = None;
    let mut modified = None;
    for fact in facts.split(';') {
        let Some((key, value)) = fact.split_once('=') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => is_file = value.eq_ignore_ascii_case("file"),
            "size" => size = value.parse::<u64>().ok(),
            "modify" => modified = parse_ftp_time(value),
            _ => {}
        }
    }
    is_file.then(|| Entry {
        name: name.to_owned(),
        size: size.unwrap_or(u64::MAX),
        modified,
    })
}

/// One line of a `LIST` reply, Unix or DOS style.
fn parse_list_line(line: &str) -> Option<Entry> {
    let file = ListParser::parse_posix(line)
        .or_else(|_| ListParser::parse_dos(line))
        .ok()?;
    if !file.is_file() {
        return None;
    }
    Some(Entry {
        name: file.name().to_owned(),
        size: file.size() as u64,
        modified: Some(file.modified()).filter(|t| *t != UNIX_EPOCH),
    })
}

/// `YYYYMMDDHHMMSS[.fff]` in UTC (RFC 3659 time-val).
fn parse_ftp_time(s: &str) -> Option<SystemTime> {
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| main[r].parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let secs = u64::try_from(secs).ok()?;
    let nanos = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
        None => 0,
    };
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlsd_lines() {
        let e = parse_mlsd_line("type=file;size=42;modify=20240102030405; a b;c.gdt").unwrap();
        assert_eq!(e.name, "a b;c.gdt");
        assert_eq!(e.size, 42);
        assert_eq!(
            e.modified,
            Some(UNIX_EPOCH + Duration::from_secs(1_704_164_645))
        );
        let e = parse_mlsd_line("Type=File;Size=1;Modify=20240102030405.25; x").unwrap();
        assert_eq!(
            e.modified,
            Some(UNIX_EPOCH + Duration::from_millis(1_704_164_645_250))
        );
        assert!(parse_mlsd_line("type=dir;modify=20240102030405; archive").is_none());
        assert!(parse_mlsd_line("type=cdir; .").is_none());
        assert_eq!(parse_mlsd_line("type=file; y").unwrap().size, u64::MAX);
        assert!(parse_mlsd_line("garbage").is_none());
    }

    #[test]
    fn ftp_times() {
        assert_eq!(parse_ftp_time("19700101000000"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_ftp_time("20000229235959"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_799))
        );
        assert!(parse_ftp_time("2024010203040").is_none());
        assert!(parse_ftp_time("20241302030405").is_none());
        assert!(parse_ftp_time("20240102030405.x").is_none());
    }

    #[test]
    fn list_lines() {
        let e = parse_list_line("-rw-r--r--   1 user group  1234 Nov  5  2019 order.gdt").unwrap();
        assert_eq!((e.name.as_str(), e.size), ("order.gdt", 1234));
        assert!(e.modified.is_some());
        assert!(parse_list_line("drwxr-xr-x   2 user group  4096 Nov  5  2019 archive").is_none());
        let e = parse_list_line("10-20-23  03:45PM                 5120 result.hl7").unwrap();
        assert_eq!((e.name.as_str(), e.size), ("result.hl7", 5120));
    }

    #[test]
    fn paths() {
        assert_eq!(split_path("in/a"), ("in", "a"));
        assert_eq!(split_path("/a"), ("/", "a"));
        assert_eq!(split_path("a"), ("", "a"));
    }
}
