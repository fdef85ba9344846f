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
    /// A systemd unit, watched over D-Bus where a system bus exists.
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

    #[test]
    fn unit_names() {
        assert_eq!(valid_unit("nsd.service").unwrap(), "nsd.service");
        assert!(valid_unit("getty@tty1.service").is_ok());
        assert!(valid_unit("nsd").unwrap_err().contains("no unit type"));
        assert!(valid_unit("n sd.service").is_err());
        assert!(valid_unit(".service").is_err());
    }
}
