//! The control socket: a Unix socket speaking line-delimited JSON, used by
//! `exaprobe status|drain|undrain|recheck` and by any other tool.
//!
//! Protocol: one JSON object per line each way. Requests:
//!
//! ```text
//! {"command": "status"}
//! {"command": "drain", "service": "dns", "for": "10m", "reason": "kernel upgrade"}
//! {"command": "drain", "all": true}
//! {"command": "undrain", "service": "dns"}        {"command": "undrain", "all": true}
//! {"command": "recheck", "service": "dns"}
//! ```
//!
//! Every reply has `"ok": true|false`; a failed one has `"error"`. A status
//! reply has `"services": [ … ]` (see the README). Bad JSON or an unknown
//! command gets an error reply; the connection stays open for the next line.
//!
//! The socket is created with mode 0600 (or 0660 with a group). A socket file
//! that answers belongs to a live instance, and exaprobe refuses to take it;
//! one that does not answer is stale and is replaced. Drains are kept in a
//! state file, written atomically, so that they survive a restart.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the socket is and who may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlSettings {
    /// The socket path.
    pub socket: PathBuf,
    /// Its permission bits: 0o600, or 0o660 with `group`.
    pub mode: u32,
    /// The group allowed in with mode 0o660.
    pub group: Option<String>,
    /// Where drains are kept across restarts.
    pub state_file: PathBuf,
}

/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/exaprobe/exaprobe.sock";

/// The default state file.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/exaprobe/state.json";

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket: PathBuf::from(DEFAULT_SOCKET),
            mode: 0o600,
            group: None,
            state_file: PathBuf::from(DEFAULT_STATE_FILE),
        }
    }
}

/// A request, as parsed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Report every service.
    Status {},
    /// Drain one service or all.
    Drain {
        /// The service, unless `all`.
        service: Option<String>,
        /// Every service.
        #[serde(default)]
        all: bool,
        /// How long, as a duration string; forever when absent.
        #[serde(rename = "for")]
        duration: Option<String>,
        /// Why, for `status`.
        reason: Option<String>,
        /// Who, filled in by the server from the peer's credentials.
        #[serde(skip)]
        by: String,
    },
    /// End a drain.
    Undrain {
        /// The service, unless `all`.
        service: Option<String>,
        /// Every service.
        #[serde(default)]
        all: bool,
    },
    /// Probe a service now (still through hysteresis).
    Recheck {
        /// The service.
        service: String,
    },
}

/// A request for the engine, with where to send the reply.
#[derive(Debug)]
pub struct Call {
    /// The request.
    pub request: Request,
    /// The reply channel.
    pub reply: Sender<Value>,
}

/// A failed reply.
pub fn error(msg: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": msg.to_string()})
}

/// Binds the socket (refusing a live instance's, replacing a stale one),
/// sets its permissions, and serves it in a thread that hands each request
/// to `submit`.
pub fn serve(settings: &ControlSettings, submit: impl Fn(Call) -> bool + Send + Sync + 'static) -> anyhow::Result<()> {
    let path = &settings.socket;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{} belongs to a running exaprobe; stop it first, or give another control socket", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(settings.mode))?;
    if let Some(group) = &settings.group {
        let gid = nix::unistd::Group::from_name(group)?.with_context(|| format!("no group {group:?}"))?.gid;
        nix::unistd::chown(path, None, Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    }
    let submit = std::sync::Arc::new(submit);
    thread::Builder::new().name("control".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let submit = std::sync::Arc::clone(&submit);
            let _ = thread::Builder::new().name("control-conn".into()).spawn(move || {
                if let Err(e) = connection(stream, &*submit) {
                    log::debug!("control connection: {e}");
                }
            });
        }
    })?;
    Ok(())
}

/// Longest request line.
const MAX_LINE: u64 = 64 * 1024;

fn connection(stream: UnixStream, submit: &(dyn Fn(Call) -> bool + Send + Sync)) -> anyhow::Result<()> {
    let by = peer_name(&stream);
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.by_ref().take(MAX_LINE).read_line(&mut line)? == 0 {
            return Ok(());
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Err(e) => error(format!("bad request: {e}")),
            Ok(mut request) => {
                if let Request::Drain { by: who, .. } = &mut request {
                    who.clone_from(&by);
                }
                let (tx, rx) = mpsc::channel();
                if submit(Call { request, reply: tx }) {
                    rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| error("exaprobe did not answer"))
                } else {
                    error("exaprobe is stopping")
                }
            }
        };
        writeln!(out, "{reply}")?;
    }
}

/// The user name (or uid) of the process at the other end.
fn peer_name(stream: &UnixStream) -> String {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) => {
            let uid = nix::unistd::Uid::from_raw(cred.uid());
            match nix::unistd::User::from_uid(uid) {
                Ok(Some(u)) => u.name,
                _ => format!("uid {uid}"),
            }
        }
        Err(_) => "unknown".into(),
    }
}

/// Sends one request to a running exaprobe and returns its reply.
pub fn call(socket: &Path, request: &Value) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!("cannot reach exaprobe at {} (is it running with this control socket?)", socket.display())
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(stream, "{request}")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).context("exaprobe's reply is not JSON")
}

/// Renders a status reply for a human.
pub fn render_status(reply: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let empty = Vec::new();
    for s in reply["services"].as_array().unwrap_or(&empty) {
        let secs = s["seconds_in_state"].as_f64().unwrap_or(0.0);
        let shown = crate::model::duration::show(Duration::from_secs(secs as u64));
        let _ =
            writeln!(out, "{}  {}  for {shown}", s["name"].as_str().unwrap_or("?"), s["state"].as_str().unwrap_or("?"));
        let _ = writeln!(out, "  reason: {}", s["reason"].as_str().unwrap_or(""));
        for c in s["checks"].as_array().unwrap_or(&empty) {
            let last = &c["last"];
            let last = if last.is_null() {
                "no result yet".to_string()
            } else {
                format!(
                    "{} ({}) in {:.1} ms",
                    last["health"].as_str().unwrap_or("?"),
                    last["reason"].as_str().unwrap_or("?"),
                    last["seconds"].as_f64().unwrap_or(0.0) * 1000.0
                )
            };
            let _ = writeln!(
                out,
                "  check {}: {} (rise {}, fall {}), last {last}",
                c["check"].as_str().unwrap_or("?"),
                c["state"].as_str().unwrap_or("?"),
                c["rise"],
                c["fall"]
            );
        }
        let penalty = s["flap_penalty"].as_f64().unwrap_or(0.0);
        if penalty > 0.0 || s["suppressed"] == true {
            let _ = writeln!(
                out,
                "  flap penalty {penalty:.0}{}",
                if s["suppressed"] == true { ", SUPPRESSED" } else { "" }
            );
        }
        if let Some(d) = s["drained"].as_object() {
            let left = d["seconds_left"].as_f64().map_or("until undrained".to_string(), |l| format!("{l:.0}s left"));
            let _ = writeln!(
                out,
                "  drained by {} ({}), {left}",
                d["by"].as_str().unwrap_or("?"),
                d["reason"].as_str().filter(|r| !r.is_empty()).unwrap_or("no reason given")
            );
        }
        for line in s["last_lines"].as_array().unwrap_or(&empty) {
            let _ = writeln!(out, "  sent: {}", line.as_str().unwrap_or(""));
        }
    }
    out
}

/// A drain as kept in the state file (wall-clock times, so they survive a
/// restart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedDrain {
    /// Who drained it.
    pub by: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// When, in seconds since the Unix epoch.
    pub since: f64,
    /// When it ends, in seconds since the Unix epoch.
    pub until: Option<f64>,
}

/// The state file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Drains by service name.
    #[serde(default)]
    pub drains: BTreeMap<String, SavedDrain>,
}

impl State {
    /// Reads the state file; a missing one is an empty state.
    pub fn load(path: &Path) -> anyhow::Result<State> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the state file atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_strictly() {
        let r: Request = serde_json::from_str(r#"{"command":"drain","service":"dns","for":"3s"}"#).unwrap();
        assert!(matches!(r, Request::Drain { ref service, ref duration, .. }
            if service.as_deref() == Some("dns") && duration.as_deref() == Some("3s")));
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"command":"status","x":1}"#).is_err());
        assert_eq!(serde_json::from_str::<Request>(r#"{"command":"status"}"#).unwrap(), Request::Status {});
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert_eq!(State::load(&path).unwrap(), State::default());
        let mut s = State::default();
        s.drains.insert("dns".into(), SavedDrain { by: "root".into(), reason: "x".into(), since: 1.0, until: None });
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), s);
    }

    #[test]
    fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ControlSettings {
            socket: dir.path().join("c.sock"),
            mode: 0o600,
            group: None,
            state_file: dir.path().join("state.json"),
        };
        serve(&settings, |call| call.reply.send(json!({"ok": true})).is_ok()).unwrap();
        let err = serve(&settings, |_| true).unwrap_err().to_string();
        assert!(err.contains("running exaprobe"), "{err}");
        let mode = std::fs::metadata(&settings.socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(call(&settings.socket, &json!({"command": "status"})).unwrap()["ok"], true);
        let bad = call(&settings.socket, &json!({"command": "explode"})).unwrap();
        assert_eq!(bad["ok"], false);
        // A stale socket: a file nobody listens on.
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        serve(&ControlSettings { socket: stale.clone(), ..settings }, |_| true).unwrap();
        assert!(UnixStream::connect(&stale).is_ok());
    }
}
