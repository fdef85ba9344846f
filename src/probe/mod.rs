//! Probes: one function per protocol that looks at a local service once and
//! says how it is.
//!
//! A probe never fails with an `Err`: a refused connection, a timeout or a bad
//! answer is an [`Outcome`] with [`Health::Down`] and a short machine-readable
//! reason (`refused`, `timeout`, `exit 2`, …). Reasons are logged on state
//! transitions and used as metric labels, so they are lowercase, short and
//! stable. Every probe honours the timeout it is given, so one probe run never
//! lasts much longer than its timeout.

pub mod command;
pub mod dns;
pub mod http;
pub mod ntp;
pub mod tcp;
mod tls;

use std::fmt;
use std::time::Duration;

/// An invalid probe setting: which one, by its flag-form key (`url`,
/// `body-regex`, `server`, …), and why. The key is what lets a JSON config
/// put the error at the right JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The flag-form key of the setting, when the error is about one.
    pub key: Option<&'static str>,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    /// An error about the setting `key`.
    pub fn at(key: &'static str, message: impl Into<String>) -> Self {
        SpecError { key: Some(key), message: message.into() }
    }

    /// An error about the probe as a whole (or its flag form).
    pub fn general(message: impl Into<String>) -> Self {
        SpecError { key: None, message: message.into() }
    }
}

impl fmt::Display for SpecError {
    /// `key: message`, as the flag forms have always shown it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key {
            Some(k) => write!(f, "{k}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SpecError {}

/// How a service looked to one probe run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Working as it should.
    Healthy,
    /// Working, but worse than it should (a Nagios WARNING).
    Degraded,
    /// Not working.
    Down,
}

impl Health {
    /// Lowercase name, as used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one probe run: health plus a short reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What the probe concluded.
    pub health: Health,
    /// Short machine-readable reason, such as `ok`, `refused`, `timeout`,
    /// `http-status 503` or `exit 2`.
    pub reason: String,
    /// Free text for humans (the first line a command printed, say); may be
    /// empty. Logged, never used as a metric label.
    pub detail: String,
    /// Who answered, when the protocol says (a DNS server's NSID:
    /// `nsid=site-a`): at most [`IDENTITY_MAX`] printable ASCII characters,
    /// shown in `status` and in the log lines. Never a metric label.
    pub identity: Option<Box<str>>,
}

/// The longest [`Outcome::identity`] kept, in characters.
pub const IDENTITY_MAX: usize = 64;

impl Outcome {
    /// A healthy outcome with the given reason.
    pub fn healthy(reason: impl Into<String>) -> Self {
        Outcome { health: Health::Healthy, reason: reason.into(), detail: String::new(), identity: None }
    }

    /// A degraded outcome with the given reason.
    pub fn degraded(reason: impl Into<String>) -> Self {
        Outcome { health: Health::Degraded, reason: reason.into(), detail: String::new(), identity: None }
    }

    /// A down outcome with the given reason.
    pub fn down(reason: impl Into<String>) -> Self {
        Outcome { health: Health::Down, reason: reason.into(), detail: String::new(), identity: None }
    }
}

impl Outcome {
    /// The same outcome with a human-readable detail attached.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The same outcome with who answered attached: `identity` made
    /// printable ASCII (anything else becomes `?`) and cut to
    /// [`IDENTITY_MAX`] characters, since a remote server chose it.
    pub fn with_identity(mut self, identity: &str) -> Self {
        let shown: String = identity
            .chars()
            .map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' })
            .take(IDENTITY_MAX)
            .collect();
        self.identity = Some(shown.into());
        self
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.health, self.reason)?;
        if let Some(who) = &self.identity {
            write!(f, " [{who}]")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A short reason for an I/O error, for probes that talk over sockets.
pub fn io_reason(err: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => "refused".into(),
        K::TimedOut | K::WouldBlock => "timeout".into(),
        K::ConnectionReset => "reset".into(),
        K::ConnectionAborted => "aborted".into(),
        K::HostUnreachable | K::NetworkUnreachable => "unreachable".into(),
        K::AddrNotAvailable => "address-not-available".into(),
        K::UnexpectedEof => "eof".into(),
        _ => match err.raw_os_error() {
            Some(code) => format!("os-error {code}"),
            None => format!("io-error {:?}", err.kind()).to_lowercase(),
        },
    }
}

/// Reads a small regular file whole: at most `limit` bytes, else an error,
/// as is anything but a regular file (a FIFO, a device such as
/// `/dev/zero`, a directory), so that a mistyped path can neither grow
/// exaprobe's memory without bound nor block it. The error starts with the
/// path.
pub fn read_small_file(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let not_regular = |m: &std::fs::Metadata| {
        let kind = m.file_type();
        let what = if kind.is_dir() { "a directory" } else { "not a regular file" };
        format!("{shown}: {what}")
    };
    // Looked at before opening, since opening a FIFO blocks and opening a
    // device may act; and again after, on what was opened.
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits() | nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data).map_err(|e| format!("{shown}: {e}"))?;
    if data.len() as u64 > limit {
        return Err(format!("{shown}: larger than {limit} bytes"));
    }
    Ok(data)
}

/// One configured check, validated, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// TCP connect (see [`tcp`]).
    Tcp(tcp::TcpProbe),
    /// External command (see [`command`]).
    Command(command::CommandProbe),
    /// HTTP or HTTPS request (see [`http`]).
    Http(http::HttpProbe),
    /// DNS query (see [`dns`]).
    Dns(dns::DnsProbe),
    /// SNTP exchange (see [`ntp`]).
    Ntp(ntp::NtpProbe),
}

impl Check {
    /// Runs the check once. Never takes much longer than `timeout`.
    pub fn run(&self, timeout: Duration, children: &command::Children) -> Outcome {
        match self {
            Check::Tcp(p) => p.run(timeout),
            Check::Command(p) => p.run(timeout, children),
            Check::Http(p) => p.run(timeout),
            Check::Dns(p) => p.run(timeout),
            Check::Ntp(p) => p.run(timeout),
        }
    }
}

impl Check {
    /// The probe kind: `tcp`, `http`, `dns`, `ntp` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Tcp(_) => "tcp",
            Check::Command(_) => "command",
            Check::Http(_) => "http",
            Check::Dns(_) => "dns",
            Check::Ntp(_) => "ntp",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Tcp(p) => write!(f, "tcp {p}"),
            Check::Command(p) => write!(f, "command {p}"),
            Check::Http(p) => write!(f, "http {p}"),
            Check::Dns(p) => write!(f, "dns {p}"),
            Check::Ntp(p) => write!(f, "ntp {p}"),
        }
    }
}
