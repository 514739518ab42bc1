//! Durable, atomic file operations and the cross-process lock.
//!
//! Every file moltguard owns is replaced, never edited in place: write a temp
//! file in the same directory, fsync it, rename it over the target, fsync the
//! directory. A crash at any instant leaves either the old or the new file,
//! never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Atomically replaces `path` with `contents`, creating it with `mode`.
///
/// # Examples
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("state.json");
/// moltguard_fsutil::write_atomic(&path, b"{\"v\":1}", 0o600)?;
/// moltguard_fsutil::write_atomic(&path, b"{\"v\":2}", 0o640)?;
///
/// assert_eq!(std::fs::read(&path)?, b"{\"v\":2}");
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o640);
/// // The temp file was renamed over the target: nothing else is left.
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".moltguard-")
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    // `tempfile` applies the mode subject to the umask; make it exact.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Creates an empty file atomically (used for the nginx allow token).
pub fn touch_atomic(path: &Path, mode: u32) -> io::Result<()> {
    write_atomic(path, b"", mode)
}

/// Removes `path` durably; a file that is already gone is not an error.
pub fn remove_durable(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent_dir(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Appends one line and fsyncs it, for append-only logs.
pub fn append_line(path: &Path, line: &str, mode: u32) -> io::Result<()> {
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    f.write_all(&buf)?;
    f.sync_all()?;
    if !existed {
        sync_dir(parent_dir(path))?;
    }
    Ok(())
}

/// Creates a directory (and parents) with `mode` if it does not exist yet.
pub fn ensure_dir(path: &Path, mode: u32) -> io::Result<()> {
    if !path.is_dir() {
        fs::create_dir_all(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Whether a file can be created in `dir`, found out by creating (and
/// removing) one: permissions, read-only mounts and immutable flags all
/// answer the same way, for root too.
pub fn check_dir_writable(dir: &Path) -> io::Result<()> {
    tempfile::Builder::new()
        .prefix(".moltguard-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create files in {}: {e}", dir.display()),
            )
        })
}

/// Reads a file that must be a regular file: a symbolic link is refused
/// (`O_NOFOLLOW`), and the metadata is that of the file actually read.
pub fn read_regular(path: &Path) -> io::Result<(Vec<u8>, fs::Metadata)> {
    use std::io::Read;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    f.read_to_end(&mut bytes)?;
    Ok((bytes, md))
}

/// Removes what killed writers left behind in `dir`: temp files of atomic
/// writes (`.moltguard-*`) older than a minute. Not every writer holds the
/// breaker lock (the guardian's status file, say), so a fresh one may still
/// be in use; no write takes a minute.
pub fn remove_stale_temp_files(dir: &Path) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(60);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE);
        if old && e.file_name().to_string_lossy().starts_with(".moltguard-") {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An exclusive advisory lock on a lock file, held until dropped.
///
/// The CLI and the guardian take it around every read-modify-write of the
/// breaker so two transitions can never interleave.
#[derive(Debug)]
pub struct ExclusiveLock {
    file: File,
    path: PathBuf,
}

impl ExclusiveLock {
    /// Blocks until the lock is ours.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(path)?;
        file.lock()?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file this lock is held on.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ExclusiveLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // No temp files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn remove_durable_tolerates_missing() {
        let dir = tempfile::tempdir().unwrap();
        remove_durable(&dir.path().join("nope")).unwrap();
    }

    #[test]
    fn append_line_appends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        append_line(&p, "a", 0o600).unwrap();
        append_line(&p, "b", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "a\nb\n");
    }
}
