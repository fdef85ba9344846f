//! The state file: the operator's drains, kept across restarts. It owns the
//! file's format, its default path ([`default_path`]), reading it
//! defensively ([`load`]), writing it ([`State::save`], through
//! [`crate::util::fs::write_atomic`]) and the lock that keeps a second
//! instance off it ([`lock`]).
//!
//! Reading fails closed. A file that cannot be read or parsed is renamed
//! aside (`<state>.corrupt-<unixtime>`) and reported as [`Loaded::Unreadable`]:
//! the engine then drains every service until an operator undrains, because
//! announcing a service that someone had drained is the worse mistake. An
//! entry that is bad on its own drains its service. Numbers are checked:
//! `since` and `until` must be finite; `since` in the future becomes now and
//! `until` more than [`MAX_AHEAD`] ahead becomes now + [`MAX_AHEAD`]. Text is
//! cut to [`MAX_TEXT`] characters, with control characters replaced.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::util::fs::{self, LockError};

/// The default state file for the default socket (config-file mode). It
/// lives under /var/lib, so drains survive a reboot too.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/exaprobe/state.json";

/// The longest a drain read from the file may still run; a later `until` is
/// cut to this. The longest duration exaprobe takes anywhere
/// ([`crate::model::duration::MAX`]), so no drain `--for` is ever cut.
pub const MAX_AHEAD: Duration = crate::model::duration::MAX;

/// Longest `by` or `reason` kept from the file (characters).
pub const MAX_TEXT: usize = 200;

/// Largest state file read; anything longer is unreadable. Each drain takes
/// about 100 bytes, so this is thousands of services.
pub const MAX_FILE: u64 = 1024 * 1024;

/// Who drained a service when the state file did not say.
pub const BY_EXAPROBE: &str = "exaprobe";

/// The state file that goes with `socket` when none is configured: the
/// default one for the default socket, `<socket>.state` for any other, so
/// that two instances with different sockets never share a state file.
pub fn default_path(socket: &Path) -> PathBuf {
    if socket == Path::new(crate::ops::control::DEFAULT_SOCKET) {
        return PathBuf::from(DEFAULT_STATE_FILE);
    }
    let mut s = socket.as_os_str().to_owned();
    s.push(".state");
    PathBuf::from(s)
}

/// The lock file of a state file: `<state>.lock`. A sibling, because the
/// state file itself is replaced by rename on every write.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut s = state.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Locks the state file for as long as the returned lock lives (the
/// process, in practice); a second instance gets a clear error naming the
/// file and the holder's pid. Creates the state file's directory.
pub fn lock(state: &Path) -> anyhow::Result<fs::Lock> {
    create_dir(state)?;
    let path = lock_path(state);
    fs::lock(&path).map_err(|e| match e {
        LockError::Held(pid) => anyhow::anyhow!(
            "the state file {} is in use by another running exaprobe{} (lock {}); give each instance its own \
             state file (--state-file, control.state_file) or control socket",
            state.display(),
            pid.map_or(String::new(), |p| format!(", pid {p}")),
            path.display()
        ),
        LockError::Io(e) => anyhow::anyhow!("cannot lock the state file {} ({}): {e}", state.display(), path.display()),
    })
}

fn create_dir(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// A drain as kept in the state file (wall-clock times, so they survive a
/// restart). Once loaded, `since` and `until` are finite and bounded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedDrain {
    /// Who drained it.
    pub by: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// When, in seconds since the Unix epoch.
    pub since: f64,
    /// When it ends, in seconds since the Unix epoch; never when absent.
    pub until: Option<f64>,
}

/// The state file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Drains by service name.
    #[serde(default)]
    pub drains: BTreeMap<String, SavedDrain>,
}

/// What [`load`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Loaded {
    /// The file, or none (an empty state). `problems` lists entries that
    /// were bad on their own (their services are drained, with the problem
    /// as the reason) or values that were cut to bounds.
    Read {
        /// The drains.
        state: State,
        /// One line per entry or value that was not as written.
        problems: Vec<String>,
    },
    /// The file exists but could not be used: drain everything.
    Unreadable {
        /// Why, for the log and the drain reason.
        error: String,
        /// Where the file was moved, if it could be.
        moved_to: Option<PathBuf>,
    },
}

/// Reads the state file at wall-clock time `now` (seconds since the epoch);
/// see the module docs. A missing file is an empty state.
pub fn load(path: &Path, now: f64) -> Loaded {
    let text = match read_bounded(path) {
        Ok(None) => return Loaded::Read { state: State::default(), problems: Vec::new() },
        Ok(Some(t)) => t,
        Err(error) => return unreadable(path, error, now),
    };
    let top: BTreeMap<String, Value> = match serde_json::from_str(&text) {
        Ok(t) => t,
        Err(e) => return unreadable(path, format!("not a JSON object: {e}"), now),
    };
    let drains = match top.get("drains") {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return unreadable(path, "\"drains\" is not an object".into(), now),
    };
    let mut state = State::default();
    let mut problems = Vec::new();
    for (name, raw) in drains {
        let saved = match entry(raw, now) {
            Ok((saved, cut)) => {
                problems.extend(cut.into_iter().map(|c| format!("drains.{name}: {c}")));
                saved
            }
            Err(e) => {
                problems.push(format!("drains.{name}: {e}; the service stays drained"));
                SavedDrain {
                    by: BY_EXAPROBE.into(),
                    reason: clean(&format!("state file entry unreadable: {e}")),
                    since: now,
                    until: None,
                }
            }
        };
        state.drains.insert(name, saved);
    }
    Loaded::Read { state, problems }
}

/// The file's text, `None` when it does not exist.
fn read_bounded(path: &Path) -> Result<Option<String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("longer than {MAX_FILE} bytes"));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| "not UTF-8".into())
}

/// Renames an unreadable file aside, so that the next save does not
/// destroy what an operator may want to look at.
fn unreadable(path: &Path, error: String, now: f64) -> Loaded {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{}", now.max(0.0) as u64));
    let aside = PathBuf::from(aside);
    let moved_to = std::fs::rename(path, &aside).is_ok().then_some(aside);
    Loaded::Unreadable { error, moved_to }
}

/// One entry, checked; with the values that had to be cut.
fn entry(raw: Value, now: f64) -> Result<(SavedDrain, Vec<String>), String> {
    let mut saved: SavedDrain = serde_json::from_value(raw).map_err(|e| e.to_string())?;
    let mut cut = Vec::new();
    if !saved.since.is_finite() {
        return Err("\"since\" is not a finite number".into());
    }
    if saved.since > now {
        cut.push(format!("\"since\" {} is in the future; now instead", saved.since));
        saved.since = now;
    } else if saved.since < 0.0 {
        cut.push(format!("\"since\" {} is before 1970; 0 instead", saved.since));
        saved.since = 0.0;
    }
    if let Some(until) = saved.until {
        if !until.is_finite() {
            return Err("\"until\" is not a finite number".into());
        }
        let max = now + MAX_AHEAD.as_secs_f64();
        if until > max {
            cut.push(format!("\"until\" {until} is more than {} ahead; cut to that", show(MAX_AHEAD)));
            saved.until = Some(max);
        }
    }
    for (field, text) in [("by", &mut saved.by), ("reason", &mut saved.reason)] {
        let c = clean(text);
        if c != *text {
            cut.push(format!("\"{field}\" shortened or cleaned"));
            *text = c;
        }
    }
    Ok((saved, cut))
}

fn show(d: Duration) -> String {
    format!("{} days", d.as_secs() / 86400)
}

/// At most [`MAX_TEXT`] characters, no control characters.
fn clean(s: &str) -> String {
    s.chars().take(MAX_TEXT).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

impl State {
    /// Writes the state file atomically (mode 0600), creating its
    /// directory.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        create_dir(path)?;
        let text = serde_json::to_string_pretty(self)?;
        fs::write_atomic(path, text.as_bytes(), 0o600).with_context(|| format!("writing {}", path.display()))
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000.0;

    fn drain(until: Option<f64>) -> SavedDrain {
        SavedDrain { by: "root".into(), reason: "x".into(), since: 1.0, until }
    }

    fn read(text: &str) -> (tempfile::TempDir, PathBuf, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, text).unwrap();
        let loaded = load(&path, NOW);
        (dir, path, loaded)
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert_eq!(load(&path, NOW), Loaded::Read { state: State::default(), problems: vec![] });
        let mut s = State::default();
        s.drains.insert("dns".into(), drain(None));
        s.drains.insert("web".into(), drain(Some(NOW + 60.0)));
        s.save(&path).unwrap();
        assert_eq!(load(&path, NOW), Loaded::Read { state: s, problems: vec![] });
    }

    #[test]
    fn an_unparsable_file_is_moved_aside_and_reported() {
        let (dir, path, loaded) = read("{\"drains\": {\"dns\": ");
        let Loaded::Unreadable { error, moved_to } = loaded else { panic!("{loaded:?}") };
        assert!(error.contains("not a JSON object"), "{error}");
        let aside = dir.path().join(format!("state.json.corrupt-{}", NOW as u64));
        assert_eq!(moved_to.as_deref(), Some(aside.as_path()));
        assert!(!path.exists());
        assert_eq!(std::fs::read_to_string(aside).unwrap(), "{\"drains\": {\"dns\": ");
        for bad in ["[]", "{\"drains\": 3}", "\u{0}"] {
            assert!(matches!(read(bad).2, Loaded::Unreadable { .. }), "{bad}");
        }
    }

    #[test]
    fn a_bad_entry_drains_its_service_and_absurd_numbers_are_bounded() {
        let text = r#"{"drains": {
            "text": {"by": "root", "since": 1, "until": NaN},
            "typo": {"by": 5, "since": 1},
            "huge": {"by": "root", "since": 1, "until": 1e300},
            "future": {"by": "root", "since": 1e300, "until": null}
        }}"#;
        // serde_json refuses NaN in the file: the whole file is unreadable.
        assert!(matches!(read(text).2, Loaded::Unreadable { .. }));
        let text = text.replace("NaN", "\"soon\"");
        let Loaded::Read { state, problems } = read(&text).2 else { panic!() };
        assert_eq!(state.drains.len(), 4);
        for name in ["text", "typo"] {
            let d = &state.drains[name];
            assert_eq!((d.by.as_str(), d.until), (BY_EXAPROBE, None), "{name}");
            assert!(d.reason.starts_with("state file entry unreadable"), "{}", d.reason);
        }
        assert_eq!(state.drains["huge"].until, Some(NOW + MAX_AHEAD.as_secs_f64()));
        assert_eq!(state.drains["future"].since, NOW);
        assert_eq!(problems.len(), 4, "{problems:?}");
        // An overflowing literal is refused by serde_json: unreadable too.
        assert!(matches!(read(r#"{"drains": {"a": {"by": "r", "since": 1e999}}}"#).2, Loaded::Unreadable { .. }));
    }

    #[test]
    fn text_is_bounded_and_cleaned() {
        let long = "x".repeat(1000);
        let text = format!(r#"{{"drains": {{"a": {{"by": "r\nm", "reason": "{long}", "since": 1}}}}}}"#);
        let Loaded::Read { state, .. } = read(&text).2 else { panic!() };
        assert_eq!(state.drains["a"].by, "r m");
        assert_eq!(state.drains["a"].reason.len(), MAX_TEXT);
    }

    #[test]
    fn default_paths() {
        assert_eq!(default_path(Path::new(crate::ops::control::DEFAULT_SOCKET)), Path::new(DEFAULT_STATE_FILE));
        assert_eq!(default_path(Path::new("/tmp/a.sock")), Path::new("/tmp/a.sock.state"));
        assert_eq!(lock_path(Path::new("/x/state.json")), Path::new("/x/state.json.lock"));
    }

    #[test]
    fn a_second_lock_names_the_file_and_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s/state.json");
        let _held = lock(&path).unwrap();
        let err = lock(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
    }
}
