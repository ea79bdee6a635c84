use std::fmt;

/// Everything the store can fail with. Backend-neutral: no driver types leak out,
/// so callers never depend on which database is underneath.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database rejected or failed an operation. The text is the driver's message.
    #[error("database error: {0}")]
    Sqlite(String),
    /// The schema could not be brought up to date.
    #[error("schema migration failed: {0}")]
    Migration(String),
    /// The store was closed (or its writer stopped); nothing was done.
    #[error("store is closed")]
    Closed,
    /// A database URL or feature this build does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The row an update targets does not exist.
    #[error("not found")]
    NotFound,
    /// The change would break a uniqueness or integrity rule (a name already in
    /// use, a group that still has devices …). The text says which.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conditional update (FHIR `If-Match`) named another version than the
    /// current one; nothing was written.
    #[error("version conflict: the current version is {current}")]
    VersionConflict { current: i64 },
    /// The arguments were refused before anything was written (e.g. a scope
    /// that is not a valid RFC 6749 scope token). The text says why.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Creating the data directory or starting the writer thread failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

impl From<rusqlite_migration::Error> for StoreError {
    fn from(e: rusqlite_migration::Error) -> Self {
        StoreError::Migration(e.to_string())
    }
}

/// A status or state name read from text that is not one of the known names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub(crate) kind: &'static str,
    pub(crate) name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.name)
    }
}

impl std::error::Error for UnknownName {}
