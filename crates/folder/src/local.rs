//! Local folders (and mounted network shares) with `std::fs` on tokio's blocking
//! pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::remote::{MAX_CANDIDATES, candidate, temp_name};
use crate::{Entry, FolderError, FolderOptions};

pub(crate) struct Local {
    dir: PathBuf,
    io_timeout: Duration,
}

impl Local {
    pub fn new(dir: PathBuf, opts: FolderOptions) -> Self {
        Local {
            dir,
            io_timeout: opts.io_timeout,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` on the blocking pool, bounded by the I/O timeout: a hung network
    /// share must not hang the caller. The blocking call itself cannot be
    /// cancelled; it may still finish after the time-out was reported.
    async fn blocking<T, F>(&self, op: &'static str, f: F) -> Result<T, FolderError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, FolderError> + Send + 'static,
    {
        let task = tokio::task::spawn_blocking(f);
        match tokio::time::timeout(self.io_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(FolderError::io(
                op,
                &self.dir,
                io::Error::other(join.to_string()),
            )),
            Err(_) => Err(FolderError::Timeout {
                folder: self.dir.display().to_string(),
                op,
                after: self.io_timeout,
            }),
        }
    }

    pub async fn list(&self) -> Result<Vec<Entry>, FolderError> {
        let dir = self.dir.clone();
        self.blocking("list", move || list(&dir)).await
    }

    pub async fn read(&self, name: &str) -> Result<Vec<u8>, FolderError> {
        let path = self.dir.join(name);
        self.blocking("read", move || {
            fs::read(&path).map_err(|e| not_found_or(e, "read", &path))
        })
        .await
    }

    pub async fn exists(&self, name: &str) -> Result<bool, FolderError> {
        let path = self.dir.join(name);
        self.blocking("exists", move || exists(&path)).await
    }

    pub async fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> Result<(), FolderError> {
        let dir = self.dir.clone();
        let name = name.to_owned();
        let bytes = bytes.to_vec();
        self.blocking("write", move || {
            write_atomic(&dir, &name, &bytes, overwrite)
        })
        .await
    }

    pub async fn move_to(
        &self,
        name: &str,
        dest_dir: &str,
        dest_name: &str,
    ) -> Result<String, FolderError> {
        let src_dir = self.dir.clone();
        let src = self.dir.join(name);
        let dest = self.dest_dir(dest_dir);
        let dest_name = dest_name.to_owned();
        self.blocking("move", move || move_to(&src_dir, &src, &dest, &dest_name))
            .await
    }

    pub async fn move_many(
        &self,
        names: &[String],
        dest_dir: &str,
    ) -> Vec<Result<String, FolderError>> {
        let src_dir = self.dir.clone();
        let dest = self.dest_dir(dest_dir);
        let names = names.to_vec();
        let count = names.len();
        let result = self
            .blocking("move", move || {
                let mut out = Vec::with_capacity(names.len());
                let mut moved = false;
                for name in &names {
                    let r = crate::spec::check_name(name)
                        .and_then(|()| move_unsynced(&src_dir, &src_dir.join(name), &dest, name));
                    moved |= r.is_ok();
                    out.push(r);
                }
                if moved {
                    sync_dir(&dest)?;
                    if dest != src_dir {
                        sync_dir(&src_dir)?;
                    }
                }
                Ok(out)
            })
            .await;
        match result {
            Ok(out) => out,
            Err(e) => {
                let text = e.to_string();
                (0..count)
                    .map(|_| {
                        Err(FolderError::io(
                            "move",
                            &self.dir,
                            io::Error::other(text.clone()),
                        ))
                    })
                    .collect()
            }
        }
    }

    pub async fn write_into(
        &self,
        dest_dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), FolderError> {
        let dest = self.dest_dir(dest_dir);
        let name = name.to_owned();
        let bytes = bytes.to_vec();
        self.blocking("write", move || {
            fs::create_dir_all(&dest).map_err(|e| FolderError::io("create directory", &dest, e))?;
            write_atomic(&dest, &name, &bytes, true)
        })
        .await
    }

    pub async fn remove(&self, name: &str) -> Result<(), FolderError> {
        let dir = self.dir.clone();
        let path = self.dir.join(name);
        self.blocking("remove", move || {
            fs::remove_file(&path).map_err(|e| not_found_or(e, "remove", &path))?;
            // Make the removal durable: a file that comes back after a crash would
            // be processed twice.
            sync_dir(&dir)
        })
        .await
    }

    fn dest_dir(&self, dest_dir: &str) -> PathBuf {
        let p = Path::new(dest_dir);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.dir.join(p)
        }
    }
}

fn list(dir: &Path) -> Result<Vec<Entry>, FolderError> {
    let read_dir = fs::read_dir(dir).map_err(|e| FolderError::io("list", dir, e))?;
    let mut entries = Vec::new();
    for item in read_dir {
        let item = item.map_err(|e| FolderError::io("list", dir, e))?;
        let Ok(name) = item.file_name().into_string() else {
            tracing::debug!(dir = %dir.display(), name = ?item.file_name(), "skipping a name that is not UTF-8");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        // Follows symbolic links: a link to a regular file counts as a file.
        let meta = match fs::metadata(item.path()) {
            Ok(m) => m,
            // Gone since the directory was read, or a dangling link.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FolderError::io("stat", item.path(), e)),
        };
        if !meta.is_file() {
            continue;
        }
        entries.push(Entry {
            name,
            size: meta.len(),
            modified: meta.modified().ok(),
        });
    }
    Ok(entries)
}

fn exists(path: &Path) -> Result<bool, FolderError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FolderError::io("stat", path, e)),
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8], overwrite: bool) -> Result<(), FolderError> {
    let target = dir.join(name);
    if !overwrite && exists(&target)? {
        return Err(FolderError::Exists {
            path: target.display().to_string(),
        });
    }
    let tmp = dir.join(temp_name(name));
    let result = write_temp_and_rename(&tmp, &target, bytes, overwrite);
    if result.is_err() {
        // Whatever happened, do not leave the temporary file behind (it may not
        // exist: then there is nothing to do).
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir)
}

fn write_temp_and_rename(
    tmp: &Path,
    target: &Path,
    bytes: &[u8],
    overwrite: bool,
) -> Result<(), FolderError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| FolderError::io("create", tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| FolderError::io("write", tmp, e))?;
    file.sync_all()
        .map_err(|e| FolderError::io("fsync", tmp, e))?;
    drop(file);
    let renamed = if overwrite {
        fs::rename(tmp, target)
    } else {
        rename_noreplace(tmp, target)
    };
    renamed.map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            FolderError::Exists {
                path: target.display().to_string(),
            }
        } else {
            FolderError::io("rename", target, e)
        }
    })
}

fn move_to(
    src_dir: &Path,
    src: &Path,
    dest: &Path,
    dest_name: &str,
) -> Result<String, FolderError> {
    let (name, synced) = move_inner(src_dir, src, dest, dest_name)?;
    if !synced {
        sync_dir(dest)?;
        if dest != src_dir {
            sync_dir(src_dir)?;
        }
    }
    Ok(name)
}

/// [`move_to`] leaving the directory syncs to the caller (a batch syncs once).
fn move_unsynced(
    src_dir: &Path,
    src: &Path,
    dest: &Path,
    dest_name: &str,
) -> Result<String, FolderError> {
    move_inner(src_dir, src, dest, dest_name).map(|(name, _)| name)
}

/// The move; `true` when it already made itself durable (a copy across file
/// systems does).
fn move_inner(
    src_dir: &Path,
    src: &Path,
    dest: &Path,
    dest_name: &str,
) -> Result<(String, bool), FolderError> {
    match fs::symlink_metadata(src) {
        Ok(_) => {}
        Err(e) => return Err(not_found_or(e, "move", src)),
    }
    fs::create_dir_all(dest).map_err(|e| FolderError::io("create directory", dest, e))?;
    for n in 0..MAX_CANDIDATES {
        let name = candidate(dest_name, n);
        let target = dest.join(&name);
        match rename_noreplace(src, &target) {
            Ok(()) => return Ok((name, false)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                return copy_across(src_dir, src, dest, dest_name).map(|n| (n, true));
            }
            Err(e) => return Err(not_found_or(e, "move", src)),
        }
    }
    Err(too_many(dest, dest_name))
}

/// `move_to` onto another file system: copy to a temporary file there, make it
/// durable, rename it into place without replacing anything, then remove the
/// source.
fn copy_across(
    src_dir: &Path,
    src: &Path,
    dest: &Path,
    dest_name: &str,
) -> Result<String, FolderError> {
    let tmp = dest.join(temp_name(dest_name));
    let result = (|| {
        let mut from = File::open(src).map_err(|e| not_found_or(e, "move", src))?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| FolderError::io("create", &tmp, e))?;
        io::copy(&mut from, &mut to).map_err(|e| FolderError::io("copy", &tmp, e))?;
        to.sync_all()
            .map_err(|e| FolderError::io("fsync", &tmp, e))?;
        for n in 0..MAX_CANDIDATES {
            let name = candidate(dest_name, n);
            let target = dest.join(&name);
            match rename_noreplace(&tmp, &target) {
                Ok(()) => return Ok(name),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(FolderError::io("rename", &target, e)),
            }
        }
        Err(too_many(dest, dest_name))
    })();
    match result {
        Ok(name) => {
            sync_dir(dest)?;
            fs::remove_file(src).map_err(|e| FolderError::io("remove", src, e))?;
            sync_dir(src_dir)?;
            Ok(name)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn too_many(dest: &Path, dest_name: &str) -> FolderError {
    FolderError::io(
        "move",
        dest.join(dest_name),
        io::Error::other(format!("{MAX_CANDIDATES} names taken")),
    )
}

fn not_found_or(e: io::Error, context: &'static str, path: &Path) -> FolderError {
    if e.kind() == io::ErrorKind::NotFound {
        FolderError::NotFound {
            path: path.display().to_string(),
        }
    } else {
        FolderError::io(context, path, e)
    }
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`). Atomic on
/// Linux (`renameat2` with `RENAME_NOREPLACE`); elsewhere, and on file systems
/// without that flag, a check followed by the rename.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use rustix::io::Errno;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP => {}
            Err(e) => return Err(e.into()),
        }
    }
    match fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(from, to),
        Err(e) => Err(e),
    }
}

/// Makes a rename or removal in `dir` durable. File systems that cannot sync a
/// directory (some network and FUSE file systems) are tolerated: the data itself
/// was synced already.
fn sync_dir(dir: &Path) -> Result<(), FolderError> {
    #[cfg(unix)]
    {
        let synced = File::open(dir).and_then(|d| d.sync_all());
        match synced {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput
                        | io::ErrorKind::Unsupported
                        | io::ErrorKind::PermissionDenied
                ) =>
            {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot fsync directory");
            }
            Err(e) => return Err(FolderError::io("fsync directory", dir, e)),
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
