//! TCP probe: the service is healthy when a TCP connection to it succeeds
//! within the timeout and, for a banner check, when its reply contains the
//! expected bytes.
//!
//! Flag form (`--tcp`), words separated by spaces:
//!
//! ```text
//! IP:PORT [send=BYTES] [expect=BYTES]
//! 127.0.0.1:22                          connect only
//! 127.0.0.1:25 expect=220               SMTP banner
//! [::1]:6379 send=PING\r\n expect=+PONG Redis
//! ```
//!
//! `localhost:PORT` means `127.0.0.1:PORT`. `BYTES` takes the escapes of
//! [`unescape`] (`\r`, `\n`, `\t`, `\0`, `\\`, `\xHH`), so a space is `\x20`.
//! The other probes' flag forms use the same escapes.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::{Outcome, SpecError, io_reason};

/// Connects to one address, optionally sends bytes and optionally waits for
/// a reply containing some bytes. Host names are refused at parse time
/// (except `localhost`), because a name lookup has no timeout and a probe
/// must not hang.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProbe {
    /// Where to connect.
    pub address: SocketAddr,
    /// Bytes written once connected. Never empty.
    pub send: Option<Vec<u8>>,
    /// Bytes the reply must contain (anywhere in its first
    /// [`REPLY_LIMIT`] bytes). Never empty.
    pub expect: Option<Vec<u8>>,
}

/// How much of a reply the probe reads while looking for `expect`: enough
/// for any banner, small enough that a chatty server cannot make a probe
/// buffer without bound.
pub const REPLY_LIMIT: usize = 64 * 1024;

impl TcpProbe {
    /// A connect-only probe.
    pub fn connect(address: SocketAddr) -> Self {
        TcpProbe { address, send: None, expect: None }
    }

    /// A probe from raw parts; `send` and `expect` must not be empty.
    pub fn new(address: SocketAddr, send: Option<Vec<u8>>, expect: Option<Vec<u8>>) -> Result<Self, SpecError> {
        if send.as_ref().is_some_and(Vec::is_empty) {
            return Err(SpecError::at("send", "must not be empty (leave it out to send nothing)"));
        }
        if expect.as_ref().is_some_and(Vec::is_empty) {
            return Err(SpecError::at("expect", "must not be empty (leave it out to only connect)"));
        }
        if expect.as_ref().is_some_and(|e| e.len() > REPLY_LIMIT) {
            return Err(SpecError::at("expect", format!("longer than the {REPLY_LIMIT} bytes read")));
        }
        Ok(TcpProbe { address, send, expect })
    }
}

/// Parses `IP:PORT`, `[IPV6]:PORT` or `localhost:PORT`, refusing host names.
/// Shared by the probes whose flag forms name a server.
pub(crate) fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("invalid port in {s:?}"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not IP:PORT (IPv6 as [ADDR]:PORT; host names are not resolved)"))
}

impl FromStr for TcpProbe {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut words = s.split_whitespace();
        let address = parse_socket_addr(words.next().unwrap_or("")).map_err(SpecError::general)?;
        let (mut send, mut expect) = (None, None);
        for word in words {
            match word.split_once('=') {
                Some(("send", v)) => send = Some(unescape(v).map_err(|e| SpecError::at("send", e))?),
                Some(("expect", v)) => {
                    expect = Some(unescape(v).map_err(|e| SpecError::at("expect", e))?);
                }
                _ => return Err(SpecError::general(format!("{word:?}: expected send=BYTES or expect=BYTES"))),
            }
        }
        TcpProbe::new(address, send, expect)
    }
}

impl fmt::Display for TcpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        if let Some(send) = &self.send {
            write!(f, " send={}", escape(send))?;
        }
        if let Some(expect) = &self.expect {
            write!(f, " expect={}", escape(expect))?;
        }
        Ok(())
    }
}

impl TcpProbe {
    /// Connects once; healthy if the handshake completes and, when
    /// configured, the reply contains `expect`, all within `timeout`.
    pub fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        // connect_timeout panics on a zero duration.
        let mut stream = match TcpStream::connect_timeout(&self.address, at_least_1ms(timeout)) {
            Ok(s) => s,
            Err(e) => return Outcome::down(io_reason(&e)),
        };
        if let Some(send) = &self.send {
            let Some(left) = remaining(deadline) else { return Outcome::down("timeout") };
            let written = stream.set_write_timeout(Some(left)).and_then(|()| stream.write_all(send));
            if let Err(e) = written {
                return Outcome::down(io_reason(&e)).with_detail("while sending");
            }
        }
        match &self.expect {
            None => Outcome::healthy("connected"),
            Some(expect) => read_until_match(&mut stream, expect, deadline),
        }
    }
}

/// Reads until the reply contains `expect`, the peer closes, the reply
/// exceeds [`REPLY_LIMIT`] or the deadline passes.
fn read_until_match(stream: &mut TcpStream, expect: &[u8], deadline: Instant) -> Outcome {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(left) = remaining(deadline) else {
            return Outcome::down("timeout").with_detail(first_line(&reply));
        };
        if let Err(e) = stream.set_read_timeout(Some(left)) {
            return Outcome::down(io_reason(&e));
        }
        match stream.read(&mut chunk) {
            Ok(0) if reply.is_empty() => {
                return Outcome::down("eof").with_detail("closed without replying");
            }
            Ok(0) => return Outcome::down("reply-mismatch").with_detail(first_line(&reply)),
            Ok(n) => {
                // Search only where a match can newly end, so a slow trickle
                // of bytes costs linear time, not quadratic.
                let from = reply.len().saturating_sub(expect.len().saturating_sub(1));
                reply.extend_from_slice(&chunk[..n]);
                if contains(&reply[from..], expect) {
                    return Outcome::healthy("reply-matched").with_detail(first_line(&reply));
                }
                if reply.len() >= REPLY_LIMIT {
                    return Outcome::down("reply-mismatch").with_detail(first_line(&reply));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Outcome::down(io_reason(&e)).with_detail(first_line(&reply)),
        }
    }
}

/// Time left before `deadline`, or `None` once it has passed. Never returns
/// a zero duration, which socket timeouts refuse.
pub(crate) fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.checked_duration_since(Instant::now())?;
    (!left.is_zero()).then(|| at_least_1ms(left))
}

fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// True when `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first non-empty line of some bytes, printable and at most 200
/// characters, for an outcome's detail.
pub(crate) fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Decodes the escapes of the flag forms: `\r`, `\n`, `\t`, `\0`, `\\` and
/// `\xHH` (two hex digits). Any other backslash sequence is an error, so a
/// typo is caught at start-up rather than sent on the wire.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = [bytes.next(), bytes.next()];
                let value = match hex {
                    [Some(h), Some(l)] => {
                        std::str::from_utf8(&[h, l]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
                    }
                    _ => None,
                };
                out.push(value.ok_or_else(|| format!("\\x needs two hex digits in {s:?}"))?);
            }
            Some(other) => {
                return Err(format!("unknown escape \\{} in {s:?}", char::from(other)));
            }
            None => return Err(format!("trailing backslash in {s:?}")),
        }
    }
    Ok(out)
}

/// The inverse of [`unescape`]: printable ASCII other than space and
/// backslash as is, everything else escaped, so the result is one word.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'!'..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Health;
    use std::net::TcpListener;

    #[test]
    fn parses_addresses() {
        assert_eq!("127.0.0.1:80".parse::<TcpProbe>().unwrap().address.port(), 80);
        assert!("[::1]:53".parse::<TcpProbe>().unwrap().address.is_ipv6());
        assert_eq!("localhost:8080".parse::<TcpProbe>().unwrap().to_string(), "127.0.0.1:8080");
        assert!("example.com:80".parse::<TcpProbe>().is_err());
        assert!("127.0.0.1".parse::<TcpProbe>().is_err());
        assert!("".parse::<TcpProbe>().is_err());
    }

    #[test]
    fn parses_send_and_expect() {
        let p: TcpProbe = "[::1]:6379 send=PING\\r\\n expect=+PONG".parse().unwrap();
        assert_eq!(p.send.as_deref(), Some(&b"PING\r\n"[..]));
        assert_eq!(p.expect.as_deref(), Some(&b"+PONG"[..]));
        assert_eq!(p.to_string(), "[::1]:6379 send=PING\\r\\n expect=+PONG");
        assert_eq!(p.to_string().parse::<TcpProbe>().unwrap(), p);
        let e = "127.0.0.1:25 expect=".parse::<TcpProbe>().unwrap_err().to_string();
        assert!(e.starts_with("expect:"), "{e}");
        let e = "127.0.0.1:25 send=\\q".parse::<TcpProbe>().unwrap_err().to_string();
        assert!(e.starts_with("send:"), "{e}");
        assert!("127.0.0.1:25 banner=220".parse::<TcpProbe>().is_err());
    }

    #[test]
    fn escapes_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
        assert_eq!(unescape("a\\x20b\\\\").unwrap(), b"a b\\");
        assert!(unescape("\\x2").is_err());
        assert!(unescape("\\xzz").is_err());
        assert!(unescape("abc\\").is_err());
        assert!(!escape(b"a b").contains(' '));
    }

    #[test]
    fn connects_to_a_listener_and_reports_refused_when_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let probe = TcpProbe::connect(listener.local_addr().unwrap());
        assert_eq!(probe.run(Duration::from_secs(2)).health, Health::Healthy);
        drop(listener);
        let outcome = probe.run(Duration::from_secs(2));
        assert_eq!(outcome, Outcome::down("refused"));
    }

    #[test]
    fn remaining_is_none_after_the_deadline() {
        assert!(remaining(Instant::now() - Duration::from_millis(1)).is_none());
        assert!(remaining(Instant::now() + Duration::from_secs(1)).unwrap() > Duration::ZERO);
    }
}
