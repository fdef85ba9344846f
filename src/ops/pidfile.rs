//! The pid file (`--pid`): written atomically, never through a symlink
//! ([`crate::util::fs::write_atomic`]), and removed at exit only if it still
//! holds our pid (another instance may have taken the path since).

use std::path::{Path, PathBuf};

/// A pid file, removed when dropped.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes our pid to `path` (mode 0644); the error names `--pid`.
    pub fn create(path: &Path) -> Result<PidFile, String> {
        crate::util::fs::write_atomic(path, format!("{}\n", std::process::id()).as_bytes(), 0o644)
            .map_err(|e| format!("--pid: cannot write {}: {e}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.0).is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_without_following_a_symlink_and_removed_only_if_ours() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("exaprobe.pid");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let pid = PidFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        drop(pid);
        assert!(!path.exists());
        // Taken over by another instance: left alone.
        let pid = PidFile::create(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        drop(pid);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
        let err = PidFile::create(&dir.path().join("no/dir/x.pid")).unwrap_err();
        assert!(err.starts_with("--pid: cannot write"), "{err}");
    }
}
