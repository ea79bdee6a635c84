//! Folders for medrelay's file transport: local directories (including mounted
//! shares) and directories on FTP, FTPS (explicit TLS) and SFTP servers, behind one
//! API.
//!
//! EHRs and devices drop order files (GDT, HL7) into a folder and pick result files
//! up from another. What this crate guarantees, whatever the protocol:
//!
//! * **No half files for readers.** [`Folder::write_atomic`] writes under a hidden
//!   temporary name (`.<name>.<random>.tmp`) and renames it into place once it is
//!   complete (and, locally, on disk: file and directory are fsync'd).
//! * **No overwriting by accident.** `write_atomic(.., overwrite: false)` fails with
//!   [`FolderError::Exists`]; [`Folder::move_to`] picks `name.1`, `name.2`, … when the
//!   destination is taken.
//! * **No path traversal.** File names are checked to be plain names before anything
//!   touches the disk or the wire.
//! * **Listing shows finished files only**: regular files, no sub-folders, nothing
//!   whose name starts with `.` (temporary files by convention), with size and
//!   modification time so the caller can wait until a file is stable.
//! * **Remote sessions** are opened on first use, kept, and reopened once,
//!   transparently, when the server dropped them. Every operation is bounded by
//!   [`FolderOptions::io_timeout`]; [`FolderError::is_retryable`] says whether to try
//!   again later.
//!
//! ```no_run
//! use medrelay_folder::{Folder, FolderOptions, FolderSpec};
//!
//! # async fn run() -> Result<(), medrelay_folder::FolderError> {
//! let spec = FolderSpec::parse("sftp://ehr@ehr.example/srv/gdt/out")?;
//! let opts = FolderOptions {
//!     password: Some("from the secret store".into()),
//!     host_key_fingerprint: Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into()),
//!     ..FolderOptions::default()
//! };
//! let folder = Folder::new(spec, opts);
//! for entry in folder.list().await? {
//!     let bytes = folder.read(&entry.name).await?;
//!     // ... store and process `bytes` ...
//!     # let _ = bytes;
//!     folder.move_to(&entry.name, "archive", &entry.name).await?;
//! }
//! folder.write_atomic("result.gdt", b"01380006310\r\n", false).await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod ftp;
mod local;
mod remote;
mod sftp;
mod spec;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use error::FolderError;
pub use spec::{FolderSpec, RemoteSpec, Scheme};

use remote::Remote;

/// A file in a folder, as [`Folder::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name (no directory part).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, where the server tells it (FTP `MLSD` or `LIST`, SFTP
    /// attributes; local file systems always do). FTP `LIST` times may be rounded to
    /// the minute.
    pub modified: Option<SystemTime>,
}

/// Credentials, trust and time limits for a folder. Everything but the time limits
/// is for remote folders only.
#[derive(Clone)]
pub struct FolderOptions {
    /// FTP/FTPS/SFTP password. Overrides a password in the URL. FTP without user and
    /// password logs in as `anonymous`.
    pub password: Option<String>,
    /// SFTP private key file (OpenSSH format). Tried before the password when both
    /// are given.
    pub private_key: Option<PathBuf>,
    /// Passphrase of [`FolderOptions::private_key`], if it is encrypted.
    pub key_passphrase: Option<String>,
    /// SFTP host key check: a `SHA256:...` fingerprint as `ssh-keygen -lf` prints it.
    /// This, [`FolderOptions::known_hosts`] or
    /// [`FolderOptions::insecure_skip_host_key`] is required: an SFTP connection
    /// without a host key check would hand the password to whoever answers.
    pub host_key_fingerprint: Option<String>,
    /// SFTP host key check against an OpenSSH `known_hosts` file (plain or hashed
    /// host names, `[host]:port` for other ports than 22).
    pub known_hosts: Option<PathBuf>,
    /// Accepts any SFTP host key. For tests and first contact only.
    pub insecure_skip_host_key: bool,
    /// FTPS: an extra CA certificate (PEM) to trust besides the system's trust store,
    /// e.g. a clinic's own CA or a self-signed server certificate.
    pub ca: Option<PathBuf>,
    /// Limit for opening a session (TCP, TLS or SSH handshake, login). Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for one operation (`list`, `read`, `write_atomic`, ...), for local
    /// folders too (a hung network share). Default 30 s.
    pub io_timeout: Duration,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            password: None,
            private_key: None,
            key_passphrase: None,
            host_key_fingerprint: None,
            known_hosts: None,
            insecure_skip_host_key: false,
            ca: None,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for FolderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secrets: Debug output ends up in logs.
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("FolderOptions")
            .field("password", &secret(&self.password))
            .field("private_key", &self.private_key)
            .field("key_passphrase", &secret(&self.key_passphrase))
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .field("known_hosts", &self.known_hosts)
            .field("insecure_skip_host_key", &self.insecure_skip_host_key)
            .field("ca", &self.ca)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish()
    }
}

/// A folder, local or remote. Cheap to clone: clones share one remote session.
///
/// Operations on one remote folder run one at a time over its session; local
/// operations run on tokio's blocking thread pool and may run concurrently.
#[derive(Clone)]
pub struct Folder {
    inner: Arc<Inner>,
}

struct Inner {
    spec: FolderSpec,
    backend: Backend,
}

enum Backend {
    Local(local::Local),
    Ftp(Remote<ftp::FtpSession>),
    Sftp(Remote<sftp::SftpSession>),
}

impl fmt::Debug for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Folder")
            .field(&self.inner.spec.display())
            .finish()
    }
}

impl Folder {
    /// A folder; nothing is checked or connected until the first operation.
    pub fn new(spec: FolderSpec, opts: FolderOptions) -> Folder {
        let backend = match spec.remote() {
            None => Backend::Local(local::Local::new(
                spec.local_path().map(Path::to_path_buf).unwrap_or_default(),
                opts,
            )),
            Some(remote) if remote.scheme() == Scheme::Sftp => {
                Backend::Sftp(Remote::new(&spec, remote.clone(), opts))
            }
            Some(remote) => Backend::Ftp(Remote::new(&spec, remote.clone(), opts)),
        };
        Folder {
            inner: Arc::new(Inner { spec, backend }),
        }
    }

    /// Where this folder is.
    pub fn spec(&self) -> &FolderSpec {
        &self.inner.spec
    }

    /// Regular files directly in the folder, sorted by name. Sub-folders and entries
    /// whose name starts with `.` (temporary files by convention) are left out.
    pub async fn list(&self) -> Result<Vec<Entry>, FolderError> {
        let mut entries = match &self.inner.backend {
            Backend::Local(l) => l.list().await?,
            Backend::Ftp(r) => r.list().await?,
            Backend::Sftp(r) => r.list().await?,
        };
        entries.retain(|e| !e.name.starts_with('.'));
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The whole content of file `name`.
    pub async fn read(&self, name: &str) -> Result<Vec<u8>, FolderError> {
        spec::check_name(name)?;
        match &self.inner.backend {
            Backend::Local(l) => l.read(name).await,
            Backend::Ftp(r) => r.read(name).await,
            Backend::Sftp(r) => r.read(name).await,
        }
    }

    /// Whether file `name` exists.
    pub async fn exists(&self, name: &str) -> Result<bool, FolderError> {
        spec::check_name(name)?;
        match &self.inner.backend {
            Backend::Local(l) => l.exists(name).await,
            Backend::Ftp(r) => r.exists(name).await,
            Backend::Sftp(r) => r.exists(name).await,
        }
    }

    /// Writes `bytes` as file `name` so that no reader ever sees part of it.
    ///
    /// The bytes go to a hidden temporary file in the same folder
    /// (`.<name>.<random>.tmp`), which is flushed (locally: fsync'd) and then renamed
    /// onto `name`; locally the directory is fsync'd after the rename too. If
    /// `overwrite` is false and `name` exists, fails with [`FolderError::Exists`]
    /// and leaves no temporary file behind. On failure the temporary file is removed
    /// where possible.
    pub async fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> Result<(), FolderError> {
        spec::check_name(name)?;
        match &self.inner.backend {
            Backend::Local(l) => l.write_atomic(name, bytes, overwrite).await,
            Backend::Ftp(r) => r.write_atomic(name, bytes, overwrite).await,
            Backend::Sftp(r) => r.write_atomic(name, bytes, overwrite).await,
        }
    }

    /// Moves file `name` into `dest_dir` under `dest_name` and returns the name it
    /// got there.
    ///
    /// `dest_dir` is relative to this folder (`"archive"`, `"../done"`) or absolute,
    /// and is created if needed. When `dest_name` is taken, `dest_name.1`,
    /// `dest_name.2`, … is used instead: an existing file is never replaced.
    pub async fn move_to(
        &self,
        name: &str,
        dest_dir: &str,
        dest_name: &str,
    ) -> Result<String, FolderError> {
        spec::check_name(name)?;
        spec::check_dir(dest_dir)?;
        spec::check_name(dest_name)?;
        match &self.inner.backend {
            Backend::Local(l) => l.move_to(name, dest_dir, dest_name).await,
            Backend::Ftp(r) => r.move_to(name, dest_dir, dest_name).await,
            Backend::Sftp(r) => r.move_to(name, dest_dir, dest_name).await,
        }
    }

    /// [`Folder::move_to`] for many files into one `dest_dir`, keeping their
    /// names: one result per name, in order. Locally the two directories are
    /// synced once for the whole batch instead of once per file, which is what
    /// makes archiving thousands of processed files a second possible.
    pub async fn move_many(
        &self,
        names: &[String],
        dest_dir: &str,
    ) -> Vec<Result<String, FolderError>> {
        if spec::check_dir(dest_dir).is_err() {
            return names
                .iter()
                .map(|_| {
                    Err(FolderError::InvalidName {
                        name: dest_dir.to_string(),
                        reason: "not a usable destination folder",
                    })
                })
                .collect();
        }
        match &self.inner.backend {
            Backend::Local(l) => l.move_many(names, dest_dir).await,
            _ => {
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    out.push(self.move_to(name, dest_dir, name).await);
                }
                out
            }
        }
    }

    /// Writes a small file into `dest_dir` (relative or absolute, created if needed)
    /// the way [`Folder::write_atomic`] does, replacing an older file of that name.
    /// Used for `<name>.error.txt` beside a rejected file.
    pub async fn write_into(
        &self,
        dest_dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), FolderError> {
        spec::check_dir(dest_dir)?;
        spec::check_name(name)?;
        match &self.inner.backend {
            Backend::Local(l) => l.write_into(dest_dir, name, bytes).await,
            Backend::Ftp(r) => r.write_into(dest_dir, name, bytes).await,
            Backend::Sftp(r) => r.write_into(dest_dir, name, bytes).await,
        }
    }

    /// Deletes file `name`; [`FolderError::NotFound`] if it is not there.
    pub async fn remove(&self, name: &str) -> Result<(), FolderError> {
        spec::check_name(name)?;
        match &self.inner.backend {
            Backend::Local(l) => l.remove(name).await,
            Backend::Ftp(r) => r.remove(name).await,
            Backend::Sftp(r) => r.remove(name).await,
        }
    }

    /// Local folders: a stream of "something changed" wake-ups from file system
    /// notification; `None` for remote folders.
    ///
    /// Wake-ups are coalesced (the channel holds at most one) and carry no detail:
    /// list the folder on each. Notification misses changes on network shares and
    /// can overflow, so keep polling periodically as well. The watcher lives as long
    /// as the receiver. Also `None` (with a warning logged) when the watcher cannot be
    /// started (no such directory, inotify limits) or when called outside a tokio
    /// runtime; polling still works then.
    pub fn watch(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        match &self.inner.backend {
            Backend::Local(l) => watch::watch(l.dir()),
            Backend::Ftp(_) | Backend::Sftp(_) => None,
        }
    }

    /// Closes the remote session politely (FTP `QUIT`, SSH disconnect), e.g. at
    /// shutdown. Other clones keep working: the next operation reconnects. Does
    /// nothing for local folders.
    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Local(_) => {}
            Backend::Ftp(r) => r.close().await,
            Backend::Sftp(r) => r.close().await,
        }
    }
}

// Compiles the README's examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
