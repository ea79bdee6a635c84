//! SFTP folders with russh and russh-sftp: host key check by fingerprint or
//! `known_hosts`, public-key and password login, atomic writes by writing a hidden
//! file and renaming it (`posix-rename@openssh.com` where the server has it).

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use russh::client;
use russh::keys::{
    Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
    check_known_hosts_path, known_hosts::known_host_keys_path, load_secret_key,
};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

use crate::remote::{
    Ctx, MAX_CANDIDATES, OpError, OpResult, Session, candidate, tcp_connect, temp_name,
};
use crate::spec::remote_join;
use crate::{Entry, FolderError};

/// Bytes per read or write request: what every server accepts.
const CHUNK: u32 = 32 * 1024;

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const FSYNC: &str = "fsync@openssh.com";

pub(crate) struct SftpSession {
    ssh: client::Handle<HostKeyCheck>,
    sftp: RawSftpSession,
    posix_rename: bool,
    fsync: bool,
    made_dirs: HashSet<String>,
}

enum HostKeyPolicy {
    Fingerprint(String),
    KnownHosts(PathBuf),
    Insecure,
}

/// The russh client handler: checks the host key and, on rejection, leaves the
/// reason for `connect` (russh itself only reports "unknown key").
struct HostKeyCheck {
    policy: HostKeyPolicy,
    host: String,
    port: u16,
    rejected: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    fn reject(&self, reason: String) -> Result<bool, russh::Error> {
        if let Ok(mut slot) = self.rejected.lock() {
            *slot = Some(reason);
        }
        Ok(false)
    }

    fn check(&self, key: &PublicKey) -> Result<bool, russh::Error> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match &self.policy {
            HostKeyPolicy::Insecure => {
                tracing::warn!(
                    host = %self.host,
                    %fingerprint,
                    "accepting SFTP host key without checking (insecure_skip_host_key)"
                );
                Ok(true)
            }
            HostKeyPolicy::Fingerprint(expected) => {
                if normalize_fingerprint(expected) == normalize_fingerprint(&fingerprint) {
                    Ok(true)
                } else {
                    self.reject(format!(
                        "the server's key {fingerprint} is not the configured {expected}"
                    ))
                }
            }
            HostKeyPolicy::KnownHosts(path) => {
                match check_known_hosts_path(&self.host, self.port, key, path) {
                    Ok(true) => Ok(true),
                    Ok(false) => self.reject(format!(
                        "the server's {} key {fingerprint} is not in {}",
                        key.algorithm(),
                        path.display()
                    )),
                    Err(russh::keys::Error::KeyChanged { line }) => self.reject(format!(
                        "the server's key {fingerprint} differs from the one in {} line {line} (changed key or man in the middle)",
                        path.display()
                    )),
                    Err(e) => self.reject(format!("cannot check {}: {e}", path.display())),
                }
            }
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.check(key),
            PublicKeyOrCertificate::Certificate(_) => {
                self.reject("host certificates are not supported".to_owned())
            }
        }
    }
}

/// `SHA256:abc=` and `abc` compare equal; base64 itself is case-sensitive.
fn normalize_fingerprint(s: &str) -> &str {
    let s = s.trim();
    let s = match s.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("SHA256:") => &s[7..],
        _ => s,
    };
    s.trim_end_matches('=')
}

impl Session for SftpSession {
    async fn connect(ctx: &Ctx) -> Result<Self, FolderError> {
        let opts = &ctx.opts;
        let host = ctx.remote.host.clone();
        let port = ctx.remote.port;
        let policy = if let Some(fp) = &opts.host_key_fingerprint {
            if fp.trim().to_ascii_uppercase().starts_with("MD5:") {
                return Err(ctx.config_error(
                    "MD5 host key fingerprints are not supported; use the SHA256 one (ssh-keygen -lf)",
                ));
            }
            HostKeyPolicy::Fingerprint(fp.trim().to_owned())
        } else if let Some(path) = &opts.known_hosts {
            if let Err(e) = std::fs::metadata(path) {
                return Err(ctx.config_error(format!("known_hosts {}: {e}", path.display())));
            }
            HostKeyPolicy::KnownHosts(path.clone())
        } else if opts.insecure_skip_host_key {
            HostKeyPolicy::Insecure
        } else {
            return Err(ctx.config_error(
                "SFTP needs a host key check: set host_key_fingerprint or known_hosts \
                 (or insecure_skip_host_key for tests)",
            ));
        };
        if opts.private_key.is_none() && ctx.password.is_none() {
            return Err(ctx.config_error("SFTP needs a password or a private key"));
        }
        let key = match &opts.private_key {
            Some(path) => Some(
                load_secret_key(path, opts.key_passphrase.as_deref()).map_err(|e| {
                    ctx.config_error(format!("cannot load private key {}: {e}", path.display()))
                })?,
            ),
            None => None,
        };

        let mut config = client::Config {
            keepalive_interval: Some(Duration::from_secs(30)),
            nodelay: true,
            ..Default::default()
        };
        // Host certificates would bypass the key check; ask for plain keys.
        config.preferred.host_key_certificates = Cow::Borrowed(&[]);
        if let HostKeyPolicy::KnownHosts(path) = &policy {
            // Like OpenSSH: ask for the key types known_hosts has for this host, so
            // that a server with several host keys shows the one we can check.
            if let Ok(known) = known_host_keys_path(&host, port, path) {
                let mut algorithms = config.preferred.key.to_vec();
                algorithms.sort_by_key(|a| {
                    !known.iter().any(|(_, k)| {
                        let k = k.algorithm();
                        let rsa = |x: &Algorithm| matches!(x, Algorithm::Rsa { .. });
                        *a == k || (rsa(a) && rsa(&k))
                    })
                });
                config.preferred.key = Cow::Owned(algorithms);
            }
        }

        let tcp = tcp_connect(ctx).await?;
        let rejected = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            policy,
            host,
            port,
            rejected: rejected.clone(),
        };
        let mut ssh = match client::connect_stream(Arc::new(config), tcp, handler).await {
            Ok(h) => h,
            Err(e) => {
                let reason = rejected.lock().ok().and_then(|mut r| r.take());
                return Err(match reason {
                    Some(reason) => FolderError::HostKey {
                        host: ctx.remote.host_port(),
                        reason,
                    },
                    None => ctx.connect_error(format!("SSH handshake: {e}")),
                });
            }
        };

        let user = ctx.remote.user.clone().unwrap_or_default();
        let ssh_error = |stage: &str, e: russh::Error| ctx.connect_error(format!("{stage}: {e}"));
        let mut authenticated = false;
        let mut tried = Vec::new();
        if let Some(key) = key {
            let hash = ssh
                .best_supported_rsa_hash()
                .await
                .map_err(|e| ssh_error("authentication", e))?
                .flatten();
            let result = ssh
                .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .map_err(|e| ssh_error("authentication", e))?;
            authenticated = result.success();
            tried.push("public key");
        }
        if !authenticated && let Some(password) = &ctx.password {
            let result = ssh
                .authenticate_password(&user, password)
                .await
                .map_err(|e| ssh_error("authentication", e))?;
            authenticated = result.success();
            tried.push("password");
        }
        if !authenticated {
            return Err(ctx.connect_error(format!(
                "authentication as {user:?} failed ({})",
                tried.join(", ")
            )));
        }

        let channel = ssh
            .channel_open_session()
            .await
            .map_err(|e| ssh_error("opening a channel", e))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| ssh_error("starting SFTP", e))?;
        let sftp = RawSftpSession::new(channel.into_stream());
        sftp.set_timeout(opts.io_timeout.as_secs().max(1));
        let version = sftp
            .init()
            .await
            .map_err(|e| ctx.connect_error(format!("starting SFTP: {e}")))?;
        let has = |ext: &str| version.extensions.get(ext).is_some_and(|v| v == "1");
        Ok(SftpSession {
            posix_rename: has(POSIX_RENAME),
            fsync: has(FSYNC),
            ssh,
            sftp,
            made_dirs: HashSet::new(),
        })
    }

    async fn alive(&mut self) -> bool {
        // russh notices a closed connection by itself; a dead peer that did not
        // close is caught by the operation's time-out.
        !self.ssh.is_closed()
    }

    async fn close(self) {
        let _ = self.sftp.close_session();
        let _ = self
            .ssh
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    async fn list(&mut self, ctx: &Ctx) -> OpResult<Vec<Entry>> {
        let dir = dir_arg(ctx.dir());
        let handle = self
            .sftp
            .opendir(dir)
            .await
            .map_err(|e| sftp_error(ctx, "list", dir, e))?
            .handle;
        let mut entries = Vec::new();
        let mut unsure = Vec::new();
        let result = loop {
            match self.sftp.readdir(handle.as_str()).await {
                Ok(name) => {
                    for file in name.files {
                        if file.filename.starts_with('.') || file.filename.contains('/') {
                            continue;
                        }
                        match kind(&file.attrs, &file.longname) {
                            Kind::File => entries.push(entry(file.filename, &file.attrs)),
                            // A link (to a file?) or a server that does not say.
                            Kind::Link | Kind::Unknown => unsure.push(file.filename),
                            Kind::Other => {}
                        }
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(sftp_error(ctx, "list", dir, e)),
            }
        };
        match &result {
            Err(e) if e.broken => {}
            _ => {
                let _ = self.sftp.close(handle.as_str()).await;
            }
        }
        result?;
        for name in unsure {
            let path = remote_join(dir, &name);
            match self.sftp.stat(path.as_str()).await {
                Ok(attrs) if kind(&attrs.attrs, "") == Kind::File => {
                    entries.push(entry(name, &attrs.attrs))
                }
                Ok(_) => {}
                Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
                Err(e) => return Err(sftp_error(ctx, "stat", &path, e)),
            }
        }
        Ok(entries)
    }

    async fn read(&mut self, ctx: &Ctx, name: &str) -> OpResult<Vec<u8>> {
        let path = ctx.file(name);
        let handle = self
            .sftp
            .open(path.as_str(), OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(|e| sftp_error(ctx, "read", &path, e))?
            .handle;
        let mut bytes = Vec::new();
        let result = loop {
            match self
                .sftp
                .read(handle.as_str(), bytes.len() as u64, CHUNK)
                .await
            {
                Ok(data) if data.data.is_empty() => break Ok(()),
                Ok(data) => bytes.extend_from_slice(&data.data),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(sftp_error(ctx, "read", &path, e)),
            }
        };
        match &result {
            Err(e) if e.broken => {}
            _ => {
                let _ = self.sftp.close(handle.as_str()).await;
            }
        }
        result.map(|()| bytes)
    }

    async fn exists(&mut self, ctx: &Ctx, name: &str) -> OpResult<bool> {
        let path = ctx.file(name);
        self.exists_path(ctx, &path).await
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
        if !overwrite && self.exists_path(ctx, &target).await? {
            return Err(FolderError::Exists {
                path: ctx.show(&target),
            }
            .into());
        }
        let tmp = remote_join(dir, &temp_name(name));
        let handle = self
            .sftp
            .open(
                tmp.as_str(),
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE | OpenFlags::EXCLUDE,
                FileAttributes::empty(),
            )
            .await
            .map_err(|e| sftp_error(ctx, "create", &tmp, e))?
            .handle;
        let result = self
            .write_and_rename(ctx, handle, &tmp, &target, bytes, overwrite)
            .await;
        if let Err(e) = &result
            && !e.broken
        {
            // Best effort: the temporary file may be gone already.
            let _ = self.sftp.remove(tmp.as_str()).await;
        }
        result
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
        if !self.exists_path(ctx, &src).await? {
            return Err(FolderError::NotFound {
                path: ctx.show(&src),
            }
            .into());
        }
        self.make_dirs(ctx, &dest).await?;
        for n in 0..MAX_CANDIDATES {
            let cand = candidate(dest_name, n);
            let target = remote_join(&dest, &cand);
            // SFTP's rename refuses to replace an existing file (protocol version 3,
            // and OpenSSH); the check spares a failed rename and protects against
            // servers that replace anyway.
            if self.exists_path(ctx, &target).await? {
                continue;
            }
            match self.sftp.rename(src.as_str(), target.as_str()).await {
                Ok(_) => return Ok(cand),
                Err(SftpError::Status(status)) => {
                    if !self.exists_path(ctx, &src).await? {
                        return Err(FolderError::NotFound {
                            path: ctx.show(&src),
                        }
                        .into());
                    }
                    if self.exists_path(ctx, &target).await? {
                        // Someone else took the name in between.
                        continue;
                    }
                    self.made_dirs.remove(&dest);
                    return Err(sftp_error(ctx, "move", &target, SftpError::Status(status)));
                }
                Err(e) => return Err(sftp_error(ctx, "move", &src, e)),
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

    async fn make_dirs(&mut self, ctx: &Ctx, dir: &str) -> OpResult<()> {
        if dir.is_empty() || dir == "/" || dir == "." || self.made_dirs.contains(dir) {
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
            match self.sftp.stat(prefix.as_str()).await {
                Ok(attrs) if kind(&attrs.attrs, "") == Kind::Other => {}
                Ok(_) => {
                    return Err(FolderError::Remote {
                        context: "create directory",
                        path: ctx.show(&prefix),
                        message: "a file is in the way".to_owned(),
                        transient: false,
                    }
                    .into());
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                    if let Err(e) = self
                        .sftp
                        .mkdir(prefix.as_str(), FileAttributes::empty())
                        .await
                    {
                        // Made by someone else in between?
                        if self.sftp.stat(prefix.as_str()).await.is_err() {
                            return Err(sftp_error(ctx, "create directory", &prefix, e));
                        }
                    }
                }
                Err(e) => return Err(sftp_error(ctx, "create directory", &prefix, e)),
            }
        }
        self.made_dirs.insert(dir.to_owned());
        Ok(())
    }

    async fn remove(&mut self, ctx: &Ctx, name: &str) -> OpResult<()> {
        let path = ctx.file(name);
        self.sftp
            .remove(path.as_str())
            .await
            .map(drop)
            .map_err(|e| sftp_error(ctx, "remove", &path, e))
    }
}

impl SftpSession {
    async fn exists_path(&mut self, ctx: &Ctx, path: &str) -> OpResult<bool> {
        match self.sftp.lstat(path).await {
            Ok(_) => Ok(true),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(false),
            Err(e) => Err(sftp_error(ctx, "stat", path, e)),
        }
    }

    async fn write_and_rename(
        &mut self,
        ctx: &Ctx,
        handle: String,
        tmp: &str,
        target: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> OpResult<()> {
        let mut written = Ok(());
        for (i, chunk) in bytes.chunks(CHUNK as usize).enumerate() {
            let offset = (i * CHUNK as usize) as u64;
            if let Err(e) = self
                .sftp
                .write(handle.as_str(), offset, chunk.to_vec())
                .await
            {
                written = Err(sftp_error(ctx, "write", tmp, e));
                break;
            }
        }
        if written.is_ok()
            && self.fsync
            && let Err(e) = self.sftp.fsync(handle.as_str()).await
        {
            written = Err(sftp_error(ctx, "fsync", tmp, e));
        }
        if let Err(e) = &written
            && e.broken
        {
            return written;
        }
        // Closing completes the write on the server; its failure is a failed write.
        let closed = self
            .sftp
            .close(handle.as_str())
            .await
            .map(drop)
            .map_err(|e| sftp_error(ctx, "close", tmp, e));
        written?;
        closed?;
        self.rename_into_place(ctx, tmp, target, overwrite).await
    }

    async fn rename_into_place(
        &mut self,
        ctx: &Ctx,
        tmp: &str,
        target: &str,
        overwrite: bool,
    ) -> OpResult<()> {
        if overwrite {
            if self.posix_rename {
                // Atomic replace: readers see the old or the new file, never none.
                return self.posix_rename(ctx, tmp, target).await;
            }
            match self.sftp.remove(target).await {
                Ok(_) => {}
                Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
                Err(e) => return Err(sftp_error(ctx, "remove", target, e)),
            }
        }
        match self.sftp.rename(tmp, target).await {
            Ok(_) => Ok(()),
            Err(SftpError::Status(status)) => {
                if !overwrite && self.exists_path(ctx, target).await? {
                    Err(FolderError::Exists {
                        path: ctx.show(target),
                    }
                    .into())
                } else {
                    Err(sftp_error(ctx, "rename", target, SftpError::Status(status)))
                }
            }
            Err(e) => Err(sftp_error(ctx, "rename", target, e)),
        }
    }

    async fn posix_rename(&mut self, ctx: &Ctx, from: &str, to: &str) -> OpResult<()> {
        let mut data = Vec::with_capacity(8 + from.len() + to.len());
        for s in [from, to] {
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(s.as_bytes());
        }
        match self.sftp.extended(POSIX_RENAME, data).await {
            Ok(Packet::Status(s)) if s.status_code == StatusCode::Ok => Ok(()),
            Ok(Packet::Status(s)) => Err(sftp_error(ctx, "rename", to, SftpError::Status(s))),
            Ok(_) => Err(sftp_error(ctx, "rename", to, SftpError::UnexpectedPacket)),
            Err(e) => Err(sftp_error(ctx, "rename", to, e)),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    File,
    Link,
    Other,
    Unknown,
}

/// The file type from the mode bits, or from `ls -l`-style `longname` when the
/// server sends no permissions.
fn kind(attrs: &FileAttributes, longname: &str) -> Kind {
    match attrs.permissions.map(|p| p & 0o170_000) {
        Some(0o100_000) => Kind::File,
        Some(0o120_000) => Kind::Link,
        Some(0) | None => match longname.chars().next() {
            Some('-') => Kind::File,
            Some('l') => Kind::Link,
            Some(_) => Kind::Other,
            None => Kind::Unknown,
        },
        Some(_) => Kind::Other,
    }
}

fn entry(name: String, attrs: &FileAttributes) -> Entry {
    Entry {
        name,
        size: attrs.size.unwrap_or(0),
        modified: attrs
            .mtime
            .map(|t| UNIX_EPOCH + Duration::from_secs(u64::from(t))),
    }
}

fn dir_arg(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

fn sftp_error(ctx: &Ctx, context: &'static str, path: &str, e: SftpError) -> OpError {
    match e {
        SftpError::Status(s) => match s.status_code {
            StatusCode::NoSuchFile => FolderError::NotFound {
                path: ctx.show(path),
            }
            .into(),
            StatusCode::NoConnection | StatusCode::ConnectionLost => OpError {
                error: ctx.connect_error(format!("{context} {path}: {}", s.status_code)),
                broken: true,
            },
            code => FolderError::Remote {
                context,
                path: ctx.show(path),
                message: if s.error_message.is_empty() {
                    code.to_string()
                } else {
                    format!("{code}: {}", s.error_message)
                },
                transient: false,
            }
            .into(),
        },
        SftpError::Limited(message) => FolderError::Remote {
            context,
            path: ctx.show(path),
            message,
            transient: false,
        }
        .into(),
        other => OpError {
            error: ctx.connect_error(format!("connection lost: {context} {path}: {other}")),
            broken: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        assert_eq!(
            normalize_fingerprint("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(normalize_fingerprint(" sha256:abc= "), "abc");
        assert_eq!(normalize_fingerprint("abc"), "abc");
        assert_ne!(
            normalize_fingerprint("SHA256:abc"),
            normalize_fingerprint("SHA256:ABC")
        );
    }

    #[test]
    fn kinds() {
        let with = |p: u32| FileAttributes {
            permissions: Some(p),
            ..FileAttributes::default()
        };
        assert_eq!(kind(&with(0o100_644), ""), Kind::File);
        assert_eq!(kind(&with(0o040_755), ""), Kind::Other);
        assert_eq!(kind(&with(0o120_777), ""), Kind::Link);
        assert_eq!(
            kind(&FileAttributes::default(), "-rw-r--r-- 1 a b 1 x"),
            Kind::File
        );
        assert_eq!(kind(&FileAttributes::default(), "drwxr-xr-x"), Kind::Other);
        assert_eq!(kind(&FileAttributes::default(), ""), Kind::Unknown);
    }
}
