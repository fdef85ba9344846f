//! The one way exaprobe writes a file that outsiders may read or that may
//! sit in a directory others can write: [`write_atomic`] (the state file, the
//! pid file, the metrics textfile), and [`lock`], the lock that keeps two
//! instances off one state file.
//!
//! Files are never opened through a symlink and never reused: a temporary
//! file is created fresh (`O_CREAT|O_EXCL|O_NOFOLLOW`, a random name), filled,
//! synced, then renamed over the target. A planted symlink at the target is
//! replaced, not followed; one planted at a temporary name makes that attempt
//! fail (and the next picks another name). A reader sees the old content or
//! the new, never part of either.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg, OFlag};

/// How many temporary names [`write_atomic`] tries before giving up.
const TEMP_ATTEMPTS: usize = 8;

/// The directory a path lives in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A fresh temporary name next to `path`: `.NAME.RANDOM.tmp`, hidden and
/// ending in `.tmp` so that no collector (node_exporter reads `*.prom`) picks
/// it up.
fn temp_name(path: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let mut random = [0u8; 8];
    // Without randomness the pid and a counter still make a name that is
    // unique within this host; O_EXCL catches the rest.
    if getrandom::getrandom(&mut random).is_err() {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        random = (u64::from(std::process::id()) << 32 ^ seq).to_be_bytes();
    }
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(".{hex}.tmp"));
    dir_of(path).join(temp)
}

/// Writes `bytes` to `path` atomically, with permission bits `mode` (the
/// umask still applies), creating nothing but the file itself: the directory
/// must exist. See the module docs for the guarantees.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} has no file name", path.display())))?;
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let temp = temp_name(path, name);
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(&temp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let written = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| fs::rename(&temp, path));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written?;
        // The rename itself is durable once the directory is synced; a
        // directory that cannot be opened (no read permission) still got the
        // file, so that is not an error.
        if let Ok(dir) = File::open(dir_of(path)) {
            let _ = dir.sync_all();
        }
        return Ok(());
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// An exclusive lock on a file, held until dropped (or the process ends).
#[derive(Debug)]
pub struct Lock {
    _file: Flock<File>,
    path: PathBuf,
}

impl Lock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why [`lock`] failed.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock; its pid if it wrote one.
    Held(Option<u32>),
    /// The lock file could not be opened or locked.
    Io(io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(Some(pid)) => write!(f, "locked by another running exaprobe (pid {pid})"),
            LockError::Held(None) => write!(f, "locked by another running process"),
            LockError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LockError {}

/// Takes an exclusive `flock` on `path` (created with mode 0600 if need be,
/// never through a symlink, and only if it is a regular file) without
/// waiting, and writes our pid into it so that a second process can say who
/// holds it. The file is left in place when the lock ends: removing it would
/// race with a process that just opened it.
pub fn lock(path: &Path) -> Result<Lock, LockError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // NONBLOCK: a FIFO planted under the name must not hang us in open().
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(LockError::Io)?;
    let meta = file.metadata().map_err(LockError::Io)?;
    if !meta.file_type().is_file() {
        let kind = if meta.file_type().is_fifo() { "a FIFO" } else { "not a regular file" };
        return Err(LockError::Io(io::Error::new(io::ErrorKind::InvalidInput, kind)));
    }
    let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = Read::by_ref(&mut file).take(32).read_to_string(&mut text);
            return Err(LockError::Held(text.trim().parse().ok()));
        }
        Err((_, e)) => return Err(LockError::Io(e.into())),
    };
    file = locked.try_clone().map_err(LockError::Io)?;
    let pid = format!("{}\n", std::process::id());
    let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(pid.as_bytes()));
    drop(file);
    let _ = locked.sync_data();
    Ok(Lock { _file: locked, path: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replace_atomically_and_leave_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(names(dir.path()), ["f.json"]);
        assert!(write_atomic(&dir.path().join("no/such/dir/x"), b"x", 0o600).is_err());
        assert!(write_atomic(Path::new("/"), b"x", 0o600).is_err());
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        // The old writer's fixed temporary name, planted too.
        std::os::unix::fs::symlink(&victim, dir.path().join("state.tmp")).unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_lock_is_exclusive_names_its_holder_and_ends_with_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json.lock");
        let held = lock(&path).unwrap();
        assert_eq!(held.path(), path);
        match lock(&path) {
            Err(LockError::Held(Some(pid))) => assert_eq!(pid, std::process::id()),
            other => panic!("{other:?}"),
        }
        drop(held);
        drop(lock(&path).unwrap());
        // Never through a symlink, never on something that is not a file.
        let link = dir.path().join("link.lock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(lock(&link), Err(LockError::Io(_))));
        assert!(matches!(lock(dir.path()), Err(LockError::Io(_))));
    }
}
