//! Reading a configuration file (the JSON config, a `-F key = value` file,
//! `check`'s VRPs): only a regular file, and at most [`MAX_CONFIG`] bytes of
//! it, so that `--config /dev/zero` cannot grow the process and a FIFO
//! cannot block it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest configuration file read: 4 MiB, far above any real config
/// (the examples are a few KiB).
pub const MAX_CONFIG: u64 = 4 * 1024 * 1024;

/// Reads a configuration file as text. The error says why, without the
/// path (the caller names it).
pub fn read_config(path: &Path) -> Result<String, String> {
    read_text(path, MAX_CONFIG)
}

/// Reads a regular file of at most `max` bytes as text (the same rules as
/// [`read_config`], for inputs that are larger by nature, such as VRPs).
pub fn read_text(path: &Path, max: u64) -> Result<String, String> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer. It does not change reading a regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(too_big(max));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: never read past the limit.
    Read::take(&file, max + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(too_big(max));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()))
}

fn too_big(max: u64) -> String {
    format!("larger than {} MiB, the most this file may be", max / (1024 * 1024))
}

/// The text without a leading UTF-8 byte order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// True when a config file's text is JSON rather than the bundled
/// healthcheck's `key = value` lines: it starts (after a byte order mark
/// and blanks) with `{`, `[`, or a comment (`//`, `/*`), none of which
/// starts a `key = value` line. Comments are not JSON, so such a file then
/// gets the JSON parser's error, at its line and column.
pub fn looks_like_json(text: &str) -> bool {
    let t = strip_bom(text).trim_start();
    t.starts_with('{') || t.starts_with('[') || t.starts_with("//") || t.starts_with("/*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(&f, "{}").unwrap();
        assert_eq!(read_config(&f).unwrap(), "{}");
        assert_eq!(read_config(Path::new("/dev/zero")).unwrap_err(), "not a regular file");
        assert_eq!(read_config(dir.path()).unwrap_err(), "not a regular file");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read_config(&fifo).unwrap_err(), "not a regular file", "and it did not block");
        let big = dir.path().join("big");
        std::fs::File::create(&big).unwrap().set_len(MAX_CONFIG + 1).unwrap();
        assert!(read_config(&big).unwrap_err().contains("4 MiB"));
        std::fs::write(&f, b"\xff").unwrap();
        assert!(read_config(&f).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn json_is_told_by_its_first_characters() {
        for json in ["{}", "\u{feff}{}", "  [1]", "// c\n{}", "/* c */ {}", "\u{feff}\n  {"] {
            assert!(looks_like_json(json), "{json:?}");
        }
        for flags in ["ip = 198.51.100.1/32", "# comment\n{", "", "withdraw-on-down"] {
            assert!(!looks_like_json(flags), "{flags:?}");
        }
    }
}
