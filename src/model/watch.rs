//! The validated watch sources of a service (issue 13, event-driven
//! detection): what the kernel is asked to tell exaprobe about, so that a
//! crashed service is noticed when it crashes, not at the next probe.
//!
//! Written as JSON `"watch": {"pid_file": PATH, "pid": N, "listen":
//! ["IP:PORT", "udp:IP:PORT"], "unit": "NAME.service"}` (`listen` may also
//! be one string) plus `"trust_events": bool`, or as the flags
//! `--watch-pid-file`, `--watch-listen` (repeatable), `--watch-unit` and
//! `--no-trust-events`. Both go through the raw form
//! ([`crate::model::raw::RawWatch`]) and the one validator, which builds the
//! [`Watch`] here.
//!
//! A watch only *starts a probe round early*; what the round finds decides
//! (see [`crate::engine::core`]'s watch module). The maintenance files need
//! no configuration: they are always watched.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

/// Most `listen` entries of one service: each is matched against every
/// socket-destroy notification, so the list is bounded.
pub const MAX_LISTEN: usize = 16;

/// Longest systemd unit name (systemd's own limit).
pub const UNIT_MAX: usize = 255;

/// The transport of a watched listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// A TCP socket in LISTEN.
    Tcp,
    /// A bound, unconnected UDP socket.
    Udp,
}

/// One watched listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Listen {
    /// TCP or UDP.
    pub proto: Proto,
    /// The local address and port; a socket bound to the wildcard address
    /// of the same family also counts.
    pub addr: SocketAddr,
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            Proto::Tcp => write!(f, "{}", self.addr),
            Proto::Udp => write!(f, "udp:{}", self.addr),
        }
    }
}

/// The service's main process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Process {
    /// The pid in this file, re-read whenever the file is rewritten.
    PidFile(PathBuf),
    /// This pid, for the life of that process (a pid is never re-armed:
    /// the number may be reused by another process).
    Pid(NonZeroU32),
}

/// What is watched of one service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Watch {
    /// The main process, if watched.
    pub process: Option<Process>,
    /// The listening sockets.
    pub listen: Vec<Listen>,
    /// A systemd unit, its ActiveState watched over D-Bus where a system
    /// bus exists.
    pub unit: Option<String>,
    /// A failed probe in a round started by (or run after) a watch event
    /// takes the service DOWN at once, without the rest of `fall`
    /// (default true).
    pub trust_events: bool,
}

impl Default for Watch {
    fn default() -> Self {
        Watch { process: None, listen: Vec::new(), unit: None, trust_events: true }
    }
}

impl Watch {
    /// Whether any source besides the maintenance files is configured.
    pub fn is_empty(&self) -> bool {
        self.process.is_none() && self.listen.is_empty() && self.unit.is_none()
    }
}

/// Parses `IP:PORT` or `udp:IP:PORT` (or `tcp:IP:PORT`).
pub fn parse_listen(s: &str) -> Result<Listen, String> {
    let (proto, rest) = match s.split_once(':') {
        Some(("udp", rest)) => (Proto::Udp, rest),
        Some(("tcp", rest)) => (Proto::Tcp, rest),
        _ => (Proto::Tcp, s),
    };
    let addr = crate::probe::tcp::parse_socket_addr(rest)
        .map_err(|e| format!("{e}; a listener is IP:PORT or udp:IP:PORT (127.0.0.1:53, udp:[::1]:53)"))?;
    if addr.port() == 0 {
        return Err(format!("{s:?}: port 0 is no listener"));
    }
    Ok(Listen { proto, addr })
}

/// Checks a systemd unit name: a name with a unit type suffix, of the
/// characters systemd allows.
pub fn valid_unit(s: &str) -> Result<String, String> {
    const TYPES: &[&str] = &[".service", ".socket", ".target", ".mount", ".scope"];
    let ok_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c));
    if s.is_empty() || s.len() > UNIT_MAX || !ok_chars {
        return Err(format!("{s:?} is not a unit name (1-{UNIT_MAX} characters of A-Z a-z 0-9 : _ . \\ @ -)"));
    }
    if !TYPES.iter().any(|t| s.len() > t.len() && s.ends_with(t)) {
        return Err(format!("{s:?} has no unit type: write e.g. \"nsd.service\""));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let l = parse_listen("127.0.0.1:53").unwrap();
        assert_eq!((l.proto, l.addr.port()), (Proto::Tcp, 53));
        assert_eq!(parse_listen("udp:[::1]:53").unwrap().to_string(), "udp:[::1]:53");
        assert_eq!(parse_listen("tcp:127.0.0.1:80").unwrap().to_string(), "127.0.0.1:80");
        assert!(parse_listen("127.0.0.1:0").unwrap_err().contains("port 0"));
        assert!(parse_listen("dns.example:53").is_err());
        assert!(parse_listen("sctp:127.0.0.1:53").is_err());
    }

    /// The errors of a JSON service with these extra keys, as (path, message).
    fn json_errors(extra: &str) -> Vec<(String, String)> {
        let text =
            format!(r#"{{"services": [{{"name": "web", "prefixes": ["198.51.100.1/32"], "checks": [], {extra}}}]}}"#);
        match crate::model::config::load(&text) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn json_rules_with_their_paths() {
        let e = json_errors(r#""watch": {"pid_file": "/run/a.pid", "pid": 12}"#);
        assert_eq!(e[0].0, "services[0].watch.pid");
        assert!(e[0].1.contains("not both"), "{e:?}");
        let e = json_errors(r#""watch": {"pid": 0}"#);
        assert!(e[0].1.contains("not a process id"), "{e:?}");
        let e = json_errors(r#""watch": {"pidfile": "/run/a.pid"}"#);
        assert!(e[0].1.contains("unknown key `pidfile`"), "{e:?}");
        let many: Vec<String> = (1..=17).map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let e = json_errors(&format!(r#""watch": {{"listen": [{}]}}"#, many.join(",")));
        assert!(e[0].1.contains("at most 16"), "{e:?}");
        let e = json_errors(r#""trust_events": "yes""#);
        assert!(!e.is_empty());
        // trust_events may be a default; a watch may not.
        let text = r#"{"defaults": {"trust_events": false, "watch": {"pid": 5}},
            "services": [{"name": "web", "prefixes": ["198.51.100.1/32"]}]}"#;
        let e = crate::model::config::load(text).err().unwrap();
        assert_eq!(e[0].path, "defaults.watch");
        let text = r#"{"defaults": {"trust_events": false},
            "services": [{"name": "web", "prefixes": ["198.51.100.1/32"], "watch": {"pid": 5}}]}"#;
        let w = &crate::model::config::load(text).unwrap().services[0].watch;
        assert!(!w.trust_events);
        assert_eq!(w.process, Some(Process::Pid(NonZeroU32::new(5).unwrap())));
        assert!(json_errors(r#""watch": {"listen": "udp:127.0.0.1:53", "unit": "nsd.service"}"#).is_empty());
    }

    #[test]
    fn unit_names() {
        assert_eq!(valid_unit("nsd.service").unwrap(), "nsd.service");
        assert!(valid_unit("getty@tty1.service").is_ok());
        assert!(valid_unit("nsd").unwrap_err().contains("no unit type"));
        assert!(valid_unit("n sd.service").is_err());
        assert!(valid_unit(".service").is_err());
    }
}
