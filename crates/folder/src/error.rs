//! The one error type of this crate.

use std::time::Duration;

/// Why a folder operation failed.
///
/// The variants say what the caller can do about it: [`FolderError::is_retryable`]
/// tells a transient condition (network, server restart, a share that is away for a
/// moment) from one that needs a person (bad configuration, a host key that changed)
/// or is about one file (not found, already there).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// The folder specification (path or URL) cannot be used.
    #[error("invalid folder {spec:?}: {reason}")]
    InvalidSpec {
        /// The specification as given (a password in it is masked).
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The options do not fit the folder (e.g. SFTP without any host key check, a
    /// key or CA file that cannot be read).
    #[error("invalid options for {folder}: {reason}")]
    Config {
        /// The folder, as [`crate::FolderSpec::display`] shows it.
        folder: String,
        /// What is wrong.
        reason: String,
    },
    /// A file or folder name given to an operation is not a plain file name. Names
    /// can come from outside (an order file, a message field), so anything that could
    /// leave the folder is refused rather than cleaned up.
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The file does not exist.
    #[error("not found: {path}")]
    NotFound {
        /// The file, as a path or URL.
        path: String,
    },
    /// The target file exists and the operation must not replace it.
    #[error("already exists: {path}")]
    Exists {
        /// The file, as a path or URL.
        path: String,
    },
    /// The server could not be reached, the connection broke, or login failed.
    /// Retryable: the server may be restarting, or the password being changed.
    #[error("cannot connect to {folder}: {reason}")]
    Connect {
        /// The folder, as [`crate::FolderSpec::display`] shows it.
        folder: String,
        /// Why.
        reason: String,
    },
    /// An operation did not finish within [`crate::FolderOptions::io_timeout`]. The
    /// connection is dropped; the next operation reconnects.
    #[error("{op} on {folder} timed out after {after:?}")]
    Timeout {
        /// The folder, as [`crate::FolderSpec::display`] shows it.
        folder: String,
        /// The operation (`list`, `read`, ...).
        op: &'static str,
        /// The limit that was reached.
        after: Duration,
    },
    /// A local file system operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done (`read`, `rename`, ...).
        context: &'static str,
        /// The path it was done to.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The remote server refused an operation (FTP reply, SFTP status).
    #[error("{context} {path}: {message}")]
    Remote {
        /// What was being done (`read`, `rename`, ...).
        context: &'static str,
        /// The remote path.
        path: String,
        /// The server's answer.
        message: String,
        /// Whether the server said the condition is temporary (FTP 4xx replies).
        transient: bool,
    },
    /// The SFTP server's host key is not the expected one, or is not known.
    #[error("host key of {host} rejected: {reason}")]
    HostKey {
        /// `host:port`.
        host: String,
        /// The key's fingerprint and why it was rejected.
        reason: String,
    },
    /// TLS could not be set up for FTPS (certificate not trusted, handshake failed,
    /// server does not offer TLS).
    #[error("TLS with {folder} failed: {reason}")]
    Tls {
        /// The folder, as [`crate::FolderSpec::display`] shows it.
        folder: String,
        /// Why.
        reason: String,
    },
}

impl FolderError {
    /// Whether trying the same operation again later may succeed without anyone
    /// changing the configuration or the file.
    ///
    /// True for connection problems, time-outs, local I/O errors (a network share
    /// that went away, a full disk) and temporary server replies; false for invalid
    /// specifications, names and options, missing or already existing files, host
    /// key and TLS problems, and permanent server refusals.
    pub fn is_retryable(&self) -> bool {
        match self {
            FolderError::Connect { .. } | FolderError::Timeout { .. } | FolderError::Io { .. } => {
                true
            }
            FolderError::Remote { transient, .. } => *transient,
            FolderError::InvalidSpec { .. }
            | FolderError::Config { .. }
            | FolderError::InvalidName { .. }
            | FolderError::NotFound { .. }
            | FolderError::Exists { .. }
            | FolderError::HostKey { .. }
            | FolderError::Tls { .. } => false,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl AsRef<std::path::Path>,
        source: std::io::Error,
    ) -> Self {
        FolderError::Io {
            context,
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
