//! File watches: one inotify instance for every watched file (maintenance
//! files, pid files) of every service. A file is watched through its
//! directory, so that creation, removal and a rename into place (how pid
//! files and maintenance files are usually written) are all seen; files in
//! one directory share one inotify watch.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// What happened to a watched file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Created, rewritten or renamed into place.
    Written(PathBuf),
    /// Removed or renamed away.
    Removed(PathBuf),
    /// A watched directory went away, or events were lost: every file of
    /// it (of all, for `None`) must be looked at again.
    Lost(Option<PathBuf>),
}

/// The inotify instance and its directory watches.
pub(super) struct Files {
    inotify: Inotify,
    dirs: HashMap<PathBuf, WatchDescriptor>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
}

/// `IN_MODIFY` too: a pid file rewritten in place by a writer that keeps it
/// open (truncate and write, no close) gives nothing else.
const MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// The directory a file is watched through.
pub(super) fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Files {
    pub(super) fn new() -> nix::Result<Files> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        Ok(Files { inotify, dirs: HashMap::new(), by_wd: HashMap::new() })
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Watches the directory of `file` (once per directory).
    pub(super) fn watch(&mut self, file: &Path) -> Result<(), String> {
        let dir = dir_of(file);
        if self.dirs.contains_key(&dir) {
            return Ok(());
        }
        let wd = self.inotify.add_watch(&dir, MASK).map_err(|e| match e {
            Errno::ENOENT => format!("{}: no such directory", dir.display()),
            Errno::ENOTDIR => format!("{}: not a directory", dir.display()),
            Errno::EACCES => format!("{}: permission denied", dir.display()),
            Errno::ENOSPC => "the inotify watch limit is reached (fs.inotify.max_user_watches)".to_string(),
            e => format!("{}: {e}", dir.display()),
        })?;
        self.dirs.insert(dir.clone(), wd);
        self.by_wd.insert(wd, dir);
        Ok(())
    }

    /// Stops watching every directory (a new set of watches follows).
    pub(super) fn clear(&mut self) {
        for (_, wd) in self.dirs.drain() {
            let _ = self.inotify.rm_watch(wd);
        }
        self.by_wd.clear();
    }

    /// The changes since the last call.
    pub(super) fn read(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        loop {
            let events = match self.inotify.read_events() {
                Ok(e) => e,
                Err(Errno::EAGAIN | Errno::EINTR) => return out,
                Err(e) => {
                    log::warn!("reading inotify events: {e}");
                    out.push(Change::Lost(None));
                    return out;
                }
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    out.push(Change::Lost(None));
                    continue;
                }
                let Some(dir) = self.by_wd.get(&ev.wd).cloned() else { continue };
                if ev
                    .mask
                    .intersects(AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF)
                {
                    // The directory is gone: watch it again once it is back.
                    self.dirs.remove(&dir);
                    self.by_wd.remove(&ev.wd);
                    let _ = self.inotify.rm_watch(ev.wd);
                    out.push(Change::Lost(Some(dir)));
                    continue;
                }
                let Some(name) = ev.name else { continue };
                let path = dir.join::<OsString>(name);
                if ev.mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
                    out.push(Change::Removed(path));
                } else {
                    out.push(Change::Written(path));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, Write};

    use super::*;

    #[test]
    fn a_file_rewritten_in_place_and_kept_open_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"1\n").unwrap();
        let mut files = Files::new().unwrap();
        files.watch(&path).unwrap();
        assert_eq!(files.read(), []);
        // Truncate and write, and keep it open: no IN_CLOSE_WRITE, no IN_CREATE.
        f.set_len(0).unwrap();
        f.rewind().unwrap();
        f.write_all(b"2\n").unwrap();
        let changes = files.read();
        assert!(changes.contains(&Change::Written(path.clone())), "{changes:?}");
        drop(f);
    }
}
