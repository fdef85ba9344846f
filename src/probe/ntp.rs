//! NTP probe: one SNTP exchange (RFC 4330, RFC 5905) with a local NTP
//! server; healthy only if the server is up *and synchronised*.
//!
//! An anycast NTP node whose daemon runs but has lost its sources would
//! hand clients a drifting clock, so an unsynchronised server counts as
//! down. The packet code is hand-written: the probe needs exactly the health
//! fields (stratum, leap indicator, root dispersion, offset) and the checks on
//! them, which are a few dozen lines.
//!
//! The request is 48 bytes, LI 0, VN 4, mode 3 (client), with a random
//! transmit timestamp (as chrony does) so that only a reply echoing it as its
//! originate timestamp is taken as ours. The reply must be mode 4 (server),
//! stratum 1–15 and leap indicator other than 3; optional bounds apply to its
//! root dispersion, its root distance, the age of its reference timestamp
//! and the clock offset measured against this host.
//!
//! Holdover: a chronyd that has lost its sources keeps answering with its
//! stratum and leap indicator intact, so neither says it is drifting; what
//! does is the **reference timestamp** (when it last updated its clock from
//! a source), which ages, and the **root distance** (root delay / 2 + root
//! dispersion: chrony's `maxdistance` rule), which grows with the time since
//! that update. `max-ref-age=` bounds the first (measured as the reply's
//! transmit timestamp minus its reference timestamp, both by the server's
//! clock, so this host's clock does not matter; a reference timestamp
//! later than the transmit timestamp fails it too, shown as "in the
//! future"), `max-root-distance=` the second. A server with a local
//! reference clock (chrony's `local`) updates its reference time rarely: do
//! not bound its reference age.
//!
//! Reasons: `ntp-synchronised` (healthy); `ntp-unsynchronised` (LI 3 or
//! stratum 16, and LI 3 with stratum 0 and no kiss code, or the code INIT
//! or STEP, which is how chronyd and ntpd answer before they have
//! synchronised); `ntp-rate-limited` (a
//! `RATE` kiss-o'-death); `ntp-kod CODE` (another kiss-o'-death, with its
//! code); `ntp-stratum N` (above `max-stratum`); `ntp-dispersion`;
//! `ntp-root-distance`; `ntp-ref-age`; `ntp-offset`; `ntp-bad-reply` (not a
//! valid server reply); `ntp-bad-origin` (only replies that did not echo
//! our timestamp came back); `timeout`, `refused`, ….
//!
//! Rate limiting: ntpd (`restrict … limited kod`) and chrony from 4.4
//! (`ratelimit … kod N`) answer a client over its rate with a `RATE` kiss,
//! which the probe reports as `ntp-rate-limited`. chrony before 4.4 (Debian
//! 12 has 4.3), and any server without the `kod` option, drops the request
//! instead: one exchange cannot tell that drop from a lost packet or a dead
//! server, so it is a `timeout` (probing less often than the server's
//! `ratelimit interval` avoids it).
//!
//! Flag form (`--ntp`), words separated by spaces, all optional:
//!
//! ```text
//! [IP[:PORT]] [max-stratum=N] [max-dispersion=DURATION] [max-offset=DURATION]
//!     [max-root-distance=DURATION] [max-ref-age=DURATION] [source=IP]
//! 127.0.0.1:123
//! 127.0.0.1 max-offset=100ms max-dispersion=1s max-stratum=4
//! 192.0.2.123 max-root-distance=1.5s max-ref-age=20m source=192.0.2.1
//! ```
//!
//! `source=IP` binds the query's source address (an address of this host,
//! of the server's family), for a server that answers only some clients.
//!
//! The server defaults to `127.0.0.1:123` and the port to 123; durations are
//! written as for `--interval` (`0.5`, `250ms`, `1s`).

use std::fmt;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::tcp::{parse_socket_addr, remaining};
use super::{Outcome, SpecError, io_reason};
use crate::model::duration;

/// The NTP port.
pub const NTP_PORT: u16 = 123;

/// One SNTP exchange with a server, judged on its health fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtpProbe {
    /// The server.
    pub server: SocketAddr,
    /// Highest acceptable stratum, 1–15 (default 15).
    pub max_stratum: u8,
    /// Largest acceptable root dispersion, if bounded.
    pub max_dispersion: Option<Duration>,
    /// Largest acceptable |offset| between the server's clock and this
    /// host's, if bounded.
    pub max_offset: Option<Duration>,
    /// Largest acceptable root distance (root delay / 2 + root dispersion),
    /// if bounded.
    pub max_root_distance: Option<Duration>,
    /// Largest acceptable age of the reference timestamp, if bounded.
    pub max_ref_age: Option<Duration>,
    /// The source address queries are sent from, if not the system's
    /// choice.
    pub source: Option<IpAddr>,
}

/// Raw settings for an [`NtpProbe`], validated by [`NtpBuilder::build`].
#[derive(Clone, Debug, Default)]
pub struct NtpBuilder {
    server: Option<String>,
    max_stratum: Option<String>,
    max_dispersion: Option<String>,
    max_offset: Option<String>,
    max_root_distance: Option<String>,
    max_ref_age: Option<String>,
    source: Option<String>,
}

impl NtpProbe {
    /// Starts a builder; every setting is optional.
    pub fn builder() -> NtpBuilder {
        NtpBuilder::default()
    }
}

impl NtpBuilder {
    /// `IP:PORT`, or `IP` for port 123.
    pub fn server(mut self, v: impl Into<String>) -> Self {
        self.server = Some(v.into());
        self
    }

    /// Highest acceptable stratum, 1–15.
    pub fn max_stratum(mut self, v: impl Into<String>) -> Self {
        self.max_stratum = Some(v.into());
        self
    }

    /// Largest acceptable root dispersion, as a duration (`0.5`, `250ms`).
    pub fn max_dispersion(mut self, v: impl Into<String>) -> Self {
        self.max_dispersion = Some(v.into());
        self
    }

    /// Largest acceptable |offset|, as a duration (`0.5`, `100ms`).
    pub fn max_offset(mut self, v: impl Into<String>) -> Self {
        self.max_offset = Some(v.into());
        self
    }

    /// Largest acceptable root distance (root delay / 2 + root
    /// dispersion), as a duration (`1.5s`).
    pub fn max_root_distance(mut self, v: impl Into<String>) -> Self {
        self.max_root_distance = Some(v.into());
        self
    }

    /// Largest acceptable age of the server's reference timestamp, as a
    /// duration (`20m`).
    pub fn max_ref_age(mut self, v: impl Into<String>) -> Self {
        self.max_ref_age = Some(v.into());
        self
    }

    /// The source address of the queries, an IP address of this host.
    pub fn source(mut self, v: impl Into<String>) -> Self {
        self.source = Some(v.into());
        self
    }

    /// Sets one setting by its flag-form key.
    fn set(self, key: &str, value: &str) -> Result<Self, SpecError> {
        Ok(match key {
            "server" => self.server(value),
            "max-stratum" => self.max_stratum(value),
            "max-dispersion" => self.max_dispersion(value),
            "max-offset" => self.max_offset(value),
            "max-root-distance" => self.max_root_distance(value),
            "max-ref-age" => self.max_ref_age(value),
            "source" => self.source(value),
            _ => {
                return Err(SpecError::general(format!(
                    "{key}: unknown NTP setting (known: max-stratum, max-dispersion, max-offset, \
                     max-root-distance, max-ref-age, source)"
                )));
            }
        })
    }

    /// Validates the settings; the error names the offending one.
    pub fn build(self) -> Result<NtpProbe, SpecError> {
        let server = match &self.server {
            None => SocketAddr::from(([127, 0, 0, 1], NTP_PORT)),
            Some(s) => server_addr(s, NTP_PORT).map_err(|e| SpecError::at("server", e))?,
        };
        let max_stratum = match &self.max_stratum {
            None => 15,
            Some(s) => match s.parse::<u8>() {
                Ok(n @ 1..=15) => n,
                _ => return Err(SpecError::at("max-stratum", format!("{s:?} is not a stratum from 1 to 15"))),
            },
        };
        let bound = |name: &'static str, v: &Option<String>| -> Result<Option<Duration>, SpecError> {
            v.as_deref().map(duration::parse).transpose().map_err(|e| SpecError::at(name, e))
        };
        let source = match &self.source {
            None => None,
            Some(s) => {
                let ip: IpAddr =
                    s.parse().map_err(|_| SpecError::at("source", format!("{s:?} is not an IP address")))?;
                if ip.is_ipv4() != server.is_ipv4() {
                    return Err(SpecError::at("source", format!("{ip} is not of the server's address family")));
                }
                Some(ip)
            }
        };
        Ok(NtpProbe {
            server,
            max_stratum,
            max_dispersion: bound("max-dispersion", &self.max_dispersion)?,
            max_offset: bound("max-offset", &self.max_offset)?,
            max_root_distance: bound("max-root-distance", &self.max_root_distance)?,
            max_ref_age: bound("max-ref-age", &self.max_ref_age)?,
            source,
        })
    }
}

/// `IP:PORT`, `[IPV6]:PORT`, `localhost:PORT`, or a bare IP with
/// `default_port`. Shared with the DNS probe.
pub(crate) fn server_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if s == "localhost" {
        return Ok(SocketAddr::from(([127, 0, 0, 1], default_port)));
    }
    parse_socket_addr(s)
}

impl FromStr for NtpProbe {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut builder = NtpProbe::builder();
        for (i, word) in s.split_whitespace().enumerate() {
            builder = match word.split_once('=') {
                Some((key, value)) => builder.set(key, value)?,
                None if i == 0 => builder.server(word),
                None => return Err(SpecError::general(format!("{word:?}: expected KEY=VALUE"))),
            };
        }
        builder.build()
    }
}

impl fmt::Display for NtpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.server)?;
        if self.max_stratum != 15 {
            write!(f, " max-stratum={}", self.max_stratum)?;
        }
        if let Some(d) = self.max_dispersion {
            write!(f, " max-dispersion={}", duration::show(d))?;
        }
        if let Some(d) = self.max_offset {
            write!(f, " max-offset={}", duration::show(d))?;
        }
        if let Some(d) = self.max_root_distance {
            write!(f, " max-root-distance={}", duration::show(d))?;
        }
        if let Some(d) = self.max_ref_age {
            write!(f, " max-ref-age={}", duration::show(d))?;
        }
        if let Some(ip) = self.source {
            write!(f, " source={ip}")?;
        }
        Ok(())
    }
}

/// Seconds from the NTP era 0 epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Length of an NTP header without extensions or MAC.
pub const PACKET_LEN: usize = 48;

/// The fields of a server reply that the probe judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Leap indicator (3 = clock unsynchronised).
    pub leap: u8,
    /// Protocol version.
    pub version: u8,
    /// Association mode (4 = server).
    pub mode: u8,
    /// Stratum (0 = kiss-o'-death, 16 = unsynchronised).
    pub stratum: u8,
    /// Root delay, 16.16 fixed-point seconds.
    pub root_delay: u32,
    /// Root dispersion, 16.16 fixed-point seconds.
    pub root_dispersion: u32,
    /// Reference ID; the kiss code when stratum is 0.
    pub reference_id: [u8; 4],
    /// When the server's clock was last set or corrected (0: never).
    pub reference_time: u64,
    /// Originate timestamp: our transmit timestamp, echoed.
    pub originate: u64,
    /// When the server received the request.
    pub receive: u64,
    /// When the server sent the reply.
    pub transmit: u64,
}

impl Reply {
    /// Decodes the fixed header; `None` if `bytes` is shorter than 48.
    pub fn parse(bytes: &[u8]) -> Option<Reply> {
        let b: &[u8; PACKET_LEN] = bytes.get(..PACKET_LEN)?.try_into().ok()?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        Some(Reply {
            leap: b[0] >> 6,
            version: (b[0] >> 3) & 7,
            mode: b[0] & 7,
            stratum: b[1],
            root_delay: u32_at(4),
            root_dispersion: u32_at(8),
            reference_id: [b[12], b[13], b[14], b[15]],
            reference_time: u64_at(16),
            originate: u64_at(24),
            receive: u64_at(32),
            transmit: u64_at(40),
        })
    }

    /// The reference ID for a detail: a stratum-1 source code (`GPS`) or
    /// kiss code as text, above stratum 1 the upstream server's IPv4
    /// address (or the hash of its IPv6 address), as dotted quad.
    pub fn reference(&self) -> String {
        match self.stratum {
            0 | 1 => self.kiss_code(),
            _ => std::net::Ipv4Addr::from(self.reference_id).to_string(),
        }
    }

    /// The kiss code of a kiss-o'-death reply (or a stratum-1 reference
    /// ID), printable ASCII only.
    pub fn kiss_code(&self) -> String {
        let code: String =
            self.reference_id.iter().filter(|b| b.is_ascii_alphanumeric()).map(|&b| char::from(b)).collect();
        if code.is_empty() { "unknown".into() } else { code }
    }
}

/// A client request: LI 0, VN 4, mode 3, with `transmit` as the transmit
/// timestamp and every other field zero.
pub fn request(transmit: u64) -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    packet[0] = 0x23;
    packet[40..48].copy_from_slice(&transmit.to_be_bytes());
    packet
}

/// This host's clock as an NTP timestamp (32.32 fixed point since 1900,
/// wrapping at the era boundary in 2036 as the wire format does).
pub fn ntp_now() -> u64 {
    let since_unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// `a - b` between two NTP timestamps, in seconds. Computed on the wrapped
/// 64-bit difference (RFC 5905 §6), so it is right across an era boundary
/// as long as the two are within 68 years of each other.
fn diff_secs(a: u64, b: u64) -> f64 {
    a.wrapping_sub(b).cast_signed() as f64 / 4_294_967_296.0
}

/// A 16.16 fixed-point number of seconds as a duration.
fn short_to_duration(v: u32) -> Duration {
    Duration::from_nanos((u64::from(v) * 1_000_000_000) >> 16)
}

/// A random 64-bit value: a guessed originate timestamp must not be
/// accepted, so it must not be predictable.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): fall back to the clock,
        // which still differs between probes.
        return ntp_now() ^ 0x5a5a_5a5a_5a5a_5a5a;
    }
    u64::from_be_bytes(bytes)
}

impl NtpProbe {
    /// Sends one request and judges the reply, all within `timeout`.
    pub fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let unspecified =
            if self.server.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
        // A connected socket only receives datagrams from the server, and
        // reports an ICMP port-unreachable as `refused`.
        let local = self.source.unwrap_or(unspecified);
        let socket = match UdpSocket::bind((local, 0)).and_then(|s| s.connect(self.server).map(|()| s)) {
            Ok(s) => s,
            Err(e) => {
                let detail = match self.source {
                    Some(ip) => format!("source={ip}: {e}"),
                    None => e.to_string(),
                };
                return Outcome::down(io_reason(&e)).with_detail(detail);
            }
        };
        let cookie = random_u64();
        let sent_at = ntp_now();
        if let Err(e) = socket.send(&request(cookie)) {
            return Outcome::down(io_reason(&e));
        }
        let mut bogus = None;
        let mut buf = [0u8; 1024];
        loop {
            let Some(left) = remaining(deadline) else {
                return bogus.unwrap_or_else(|| Outcome::down("timeout"));
            };
            if let Err(e) = socket.set_read_timeout(Some(left)) {
                return Outcome::down(io_reason(&e));
            }
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return bogus.unwrap_or_else(|| Outcome::down("timeout"));
                }
                Err(e) => return Outcome::down(io_reason(&e)),
            };
            let received_at = ntp_now();
            let Some(reply) = Reply::parse(&buf[..n]) else {
                bogus = Some(Outcome::down("ntp-bad-reply").with_detail(format!("{n}-byte reply")));
                continue;
            };
            if reply.originate != cookie {
                // A stale or forged datagram: keep waiting for ours, but say
                // what came if ours never does.
                bogus = Some(
                    Outcome::down("ntp-bad-origin")
                        .with_detail("reply's originate timestamp is not our transmit timestamp"),
                );
                continue;
            }
            return self.judge(&reply, sent_at, received_at);
        }
    }

    /// Judges the reply to our request, received at `t4` for a request sent
    /// at `t1` (both by this host's clock).
    pub fn judge(&self, reply: &Reply, t1: u64, t4: u64) -> Outcome {
        if reply.mode != 4 {
            return Outcome::down("ntp-bad-reply").with_detail(format!("mode {} instead of 4", reply.mode));
        }
        if reply.stratum == 0 {
            let code = reply.kiss_code();
            // chronyd before its first synchronisation: LI 3, stratum 0
            // ("unspecified") and a zero reference ID, which is no kiss;
            // ntpd says INIT (no source yet) or STEP (stepping its clock).
            if reply.leap == 3 && matches!(code.as_str(), "unknown" | "INIT" | "STEP") {
                let shown = if code == "unknown" { String::new() } else { format!(", reference ID {code}") };
                return Outcome::down("ntp-unsynchronised").with_detail(format!(
                    "leap indicator 3, stratum 0{shown}: the server has never synchronised (no source)"
                ));
            }
            if code == "RATE" {
                return Outcome::down("ntp-rate-limited")
                    .with_detail("kiss-o'-death RATE: the server rate-limits this client; probe less often");
            }
            return Outcome::down(format!("ntp-kod {code}")).with_detail("kiss-o'-death");
        }
        if reply.leap == 3 || reply.stratum == 16 {
            return Outcome::down("ntp-unsynchronised")
                .with_detail(format!("leap indicator {}, stratum {}", reply.leap, reply.stratum));
        }
        if reply.stratum > 16 {
            return Outcome::down("ntp-bad-reply").with_detail(format!("reserved stratum {}", reply.stratum));
        }
        if reply.transmit == 0 {
            return Outcome::down("ntp-bad-reply").with_detail("zero transmit timestamp");
        }
        let dispersion = short_to_duration(reply.root_dispersion);
        // Clock offset and round-trip delay, RFC 4330 §5.
        let offset = (diff_secs(reply.receive, t1) + diff_secs(reply.transmit, t4)) / 2.0;
        let delay = diff_secs(t4, t1) - diff_secs(reply.transmit, reply.receive);
        // chrony's maxdistance rule: root delay / 2 + root dispersion.
        let distance = short_to_duration(reply.root_delay) / 2 + dispersion;
        // By the server's clock alone; a reference time of 0 (never set) is
        // infinitely old.
        let ref_age = (reply.reference_time != 0).then(|| diff_secs(reply.transmit, reply.reference_time));
        let ref_age_text = match ref_age {
            // Set after the reply was sent: the server's clock went back.
            Some(a) if a < 0.0 => format!("{:.3}s in the future", -a),
            Some(a) => format!("{a:.3}s"),
            None => "never set".to_string(),
        };
        let detail = format!(
            "stratum {}, offset {offset:+.6}s, delay {delay:.6}s, root dispersion {:.6}s, root distance \
             {:.6}s, reference age {ref_age_text}, reference {}",
            reply.stratum,
            dispersion.as_secs_f64(),
            distance.as_secs_f64(),
            reply.reference(),
        );
        if reply.stratum > self.max_stratum {
            return Outcome::down(format!("ntp-stratum {}", reply.stratum)).with_detail(detail);
        }
        if self.max_dispersion.is_some_and(|max| dispersion > max) {
            return Outcome::down("ntp-dispersion").with_detail(detail);
        }
        if self.max_root_distance.is_some_and(|max| distance > max) {
            return Outcome::down("ntp-root-distance").with_detail(detail);
        }
        // A reference time in the future is no proof of a recent update.
        if self.max_ref_age.is_some_and(|max| ref_age.is_none_or(|a| a < 0.0 || a > max.as_secs_f64())) {
            return Outcome::down("ntp-ref-age").with_detail(detail);
        }
        if self.max_offset.is_some_and(|max| offset.abs() > max.as_secs_f64()) {
            return Outcome::down("ntp-offset").with_detail(detail);
        }
        Outcome::healthy("ntp-synchronised").with_detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Health;

    fn reply(leap: u8, stratum: u8) -> Reply {
        let now = ntp_now();
        Reply {
            leap,
            version: 4,
            mode: 4,
            stratum,
            root_delay: 0,
            root_dispersion: 1 << 12, // 1/16 s
            reference_id: *b"GPS\0",
            reference_time: now.wrapping_sub(2 << 32),
            originate: 1,
            receive: now,
            transmit: now,
        }
    }

    #[test]
    fn flag_form_parses_and_round_trips() {
        let p: NtpProbe = "127.0.0.1:123".parse().unwrap();
        assert_eq!(p, NtpProbe::builder().build().unwrap());
        let p: NtpProbe = "::1 max-offset=100ms max-dispersion=1s max-stratum=4".parse().unwrap();
        assert_eq!(p.server, "[::1]:123".parse().unwrap());
        assert_eq!(p.max_offset, Some(Duration::from_millis(100)));
        assert_eq!(p.max_dispersion, Some(Duration::from_secs(1)));
        assert_eq!(p.max_stratum, 4);
        assert_eq!(p.to_string().parse::<NtpProbe>().unwrap(), p);
        assert_eq!("max-offset=1s".parse::<NtpProbe>().unwrap().server.port(), 123);
        let p: NtpProbe = "127.0.0.2:1123 max-root-distance=1.5s max-ref-age=20m source=127.0.0.3".parse().unwrap();
        assert_eq!(p.max_root_distance, Some(Duration::from_millis(1500)));
        assert_eq!(p.max_ref_age, Some(Duration::from_secs(1200)));
        assert_eq!(p.source, Some(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(p.to_string().parse::<NtpProbe>().unwrap(), p);
    }

    #[test]
    fn errors_name_the_field() {
        let e = |s: &str| s.parse::<NtpProbe>().unwrap_err().to_string();
        assert!(e("ntp.example.com").starts_with("server:"));
        assert!(e("127.0.0.1 max-stratum=16").starts_with("max-stratum:"));
        assert!(e("127.0.0.1 max-stratum=0").starts_with("max-stratum:"));
        assert!(e("127.0.0.1 max-offset=soon").starts_with("max-offset:"));
        assert!(e("127.0.0.1 max-dispersion=").starts_with("max-dispersion:"));
        assert!(e("127.0.0.1 stratum=2").starts_with("stratum:"));
        assert!(e("127.0.0.1 max-root-distance=far").starts_with("max-root-distance:"));
        assert!(e("127.0.0.1 max-ref-age=-1").starts_with("max-ref-age:"));
        assert!(e("127.0.0.1 source=lo").starts_with("source:"));
        assert!(e("127.0.0.1 source=::1").starts_with("source:"));
        assert!(e("127.0.0.1 ::1").contains("KEY=VALUE"));
    }

    #[test]
    fn request_and_parse_agree() {
        let packet = request(0x0123_4567_89ab_cdef);
        assert_eq!(packet[0], 0x23);
        let r = Reply::parse(&packet).unwrap();
        assert_eq!((r.leap, r.version, r.mode), (0, 4, 3));
        assert_eq!(r.transmit, 0x0123_4567_89ab_cdef);
        assert!(Reply::parse(&packet[..47]).is_none());
    }

    #[test]
    fn judges_health_fields() {
        let p = NtpProbe::builder().max_dispersion("100ms").max_offset("1s").build().unwrap();
        let now = ntp_now();
        assert_eq!(p.judge(&reply(0, 2), now, now).reason, "ntp-synchronised");
        assert_eq!(p.judge(&reply(1, 2), now, now).health, Health::Healthy);
        assert_eq!(p.judge(&reply(3, 2), now, now).reason, "ntp-unsynchronised");
        assert_eq!(p.judge(&reply(0, 16), now, now).reason, "ntp-unsynchronised");
        let mut kod = reply(3, 0);
        kod.reference_id = *b"RATE";
        assert_eq!(p.judge(&kod, now, now).reason, "ntp-rate-limited");
        kod.reference_id = *b"DENY";
        assert_eq!(p.judge(&kod, now, now).reason, "ntp-kod DENY");
        // chronyd with no source: LI 3, stratum 0, reference ID 0.
        let mut unsynced = reply(3, 0);
        unsynced.reference_id = [0; 4];
        assert_eq!(p.judge(&unsynced, now, now).reason, "ntp-unsynchronised");
        let holdover = NtpProbe::builder().max_root_distance("100ms").max_ref_age("10s").build().unwrap();
        assert_eq!(holdover.judge(&reply(0, 3), now, now).reason, "ntp-synchronised");
        let mut r = reply(0, 3);
        r.root_delay = 1 << 16; // 1 s of delay: half of it counts
        assert_eq!(holdover.judge(&r, now, now).reason, "ntp-root-distance");
        r.root_delay = 1 << 12; // 62.5 ms: 31 ms + 62.5 ms dispersion, within
        assert_eq!(holdover.judge(&r, now, now).reason, "ntp-synchronised");
        let mut r = reply(0, 3);
        r.reference_time = now.wrapping_sub(11 << 32);
        assert_eq!(holdover.judge(&r, now, now).reason, "ntp-ref-age");
        r.reference_time = 0;
        assert_eq!(holdover.judge(&r, now, now).reason, "ntp-ref-age");
        let mut r = reply(0, 2);
        r.root_dispersion = 1 << 16;
        assert_eq!(p.judge(&r, now, now).reason, "ntp-dispersion");
        let mut r = reply(0, 2);
        r.receive = r.receive.wrapping_add(5 << 32);
        r.transmit = r.transmit.wrapping_add(5 << 32);
        assert_eq!(p.judge(&r, now, now).reason, "ntp-offset");
        let mut r = reply(0, 2);
        r.mode = 3;
        assert_eq!(p.judge(&r, now, now).reason, "ntp-bad-reply");
        let strict = NtpProbe::builder().max_stratum("1").build().unwrap();
        assert_eq!(strict.judge(&reply(0, 2), now, now).reason, "ntp-stratum 2");
    }

    #[test]
    fn ntpd_before_its_first_sync_is_unsynchronised_not_a_kiss() {
        let p = NtpProbe::builder().build().unwrap();
        let now = ntp_now();
        // ntpd starting: LI 3, stratum 0, reference ID INIT (or STEP).
        for code in [*b"INIT", *b"STEP"] {
            let mut r = reply(3, 0);
            r.reference_id = code;
            let o = p.judge(&r, now, now);
            assert_eq!((o.health, o.reason.as_str()), (Health::Down, "ntp-unsynchronised"), "{o}");
            // The same codes with LI 0 are kisses still.
            r.leap = 0;
            assert_eq!(p.judge(&r, now, now).reason, format!("ntp-kod {}", String::from_utf8_lossy(&code)));
        }
    }

    #[test]
    fn a_reference_time_in_the_future_fails_max_ref_age() {
        let holdover = NtpProbe::builder().max_ref_age("10s").build().unwrap();
        let now = ntp_now();
        let mut r = reply(0, 3);
        r.reference_time = now.wrapping_add(5 << 32); // 5 s after the transmit time
        let o = holdover.judge(&r, now, now);
        assert_eq!((o.health, o.reason.as_str()), (Health::Down, "ntp-ref-age"), "{o}");
        assert!(o.detail.contains("in the future"), "{o}");
        // Without the bound it is only shown.
        let o = NtpProbe::builder().build().unwrap().judge(&r, now, now);
        assert_eq!(o.reason, "ntp-synchronised");
    }

    #[test]
    fn differences_wrap_at_the_era_boundary() {
        // One second after the 2036 rollover minus one second before it.
        assert_eq!(diff_secs(1 << 32, u64::MAX - (1 << 32) + 1), 2.0);
        assert_eq!(diff_secs(0, 1 << 32), -1.0);
        assert_eq!(short_to_duration(1 << 15), Duration::from_millis(500));
    }
}
