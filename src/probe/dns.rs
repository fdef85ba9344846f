//! DNS probe: one query to a local DNS server, judged on the reply's rcode,
//! optionally on an answer that must be present, and optionally on how far
//! the zone's SOA serial lags behind a reference server's.
//!
//! Messages are built and parsed with NLnet Labs' `domain` crate; this
//! module only decides what to ask and how to judge. The query goes over UDP
//! (retried over TCP when the reply is truncated) or, with `tcp`, over TCP
//! only. A reply counts only if its ID, QR bit and question match ours; over
//! UDP other datagrams are ignored (they may be late replies to an earlier
//! probe) and reported as `dns-bad-reply` only if no good reply comes in
//! time. The recursion-desired bit is set unless `norecurse` is given, so the
//! same probe suits a recursive resolver and an authoritative server (which
//! ignores the bit).
//!
//! SOA lag: with `soa-reference=`, the probe also asks our server and the
//! reference for the SOA of `soa-zone` (default: the query name; the SOA is
//! taken from the answer or the authority section) and compares the serials
//! with RFC 1982 serial arithmetic. Ours behind by more than `soa-max-lag`
//! (default 0) is down with reason `dns-soa-lag N`. If the reference cannot
//! be asked, the outcome is *degraded* (`dns-soa-reference-failed`), not
//! down: a dead primary must not make every anycast node withdraw at once.
//!
//! Reasons: `dns-rcode NOERROR` (healthy); `dns-rcode SERVFAIL` (unexpected
//! rcode); `dns-answer-missing`; `dns-bad-reply`; `dns-soa-lag N`;
//! `dns-soa-missing`; `dns-soa-reference-failed`; `timeout`, `refused`, ….
//!
//! Flag form (`--dns`), words separated by spaces:
//!
//! ```text
//! [SERVER] NAME [TYPE] [tcp] [norecurse] [rcode=RCODE] [answer=TEXT]
//!     [source=IP] [soa-reference=SERVER] [soa-max-lag=N] [soa-zone=NAME]
//! 127.0.0.1:53 example.com A
//! 127.0.0.1 example.com A answer=192.0.2.1
//! [::1]:53 example.com TXT tcp answer=v=spf1
//! 127.0.0.1 nonexistent.example.com A rcode=NXDOMAIN
//! 127.0.0.1 example.com SOA soa-reference=127.0.0.2 soa-max-lag=5
//! ```
//!
//! `SERVER` is `IP`, `IP:PORT` or `[IPV6]:PORT` and defaults to
//! `127.0.0.1:53`; `TYPE` defaults to `A`. An A or AAAA `answer` is an address
//! that must be among the answers; for other types it is text that must occur
//! in one answer's presentation form (`10 mail.example.com.` for MX), compared
//! without regard to case except for TXT. `TEXT` takes the escapes of
//! [`super::tcp::unescape`] (`\x20` for a space).

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant};

use domain::base::iana::Rcode;
use domain::base::{Message, MessageBuilder, Name, ParsedName, Rtype};
use domain::rdata::AllRecordData;

use super::ntp::server_addr;
use super::tcp::{escape, remaining, unescape};
use super::{Outcome, SpecError, io_reason};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// How the query travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP, retried over TCP when the reply is truncated.
    Udp,
    /// TCP only.
    Tcp,
}

/// An answer that must be present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// An address among the A or AAAA answers.
    Address(IpAddr),
    /// Text within one answer's presentation form.
    Text(String),
}

/// The SOA-serial lag check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoaLag {
    /// The server whose serial is the truth (a primary, say).
    pub reference: SocketAddr,
    /// The zone whose SOA is compared.
    pub zone: Name<Vec<u8>>,
    /// How far behind ours may be, in serial units.
    pub max_lag: u32,
}

/// One DNS query to a server, judged on the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsProbe {
    /// The server asked.
    pub server: SocketAddr,
    /// The query name (absolute).
    pub name: Name<Vec<u8>>,
    /// The query type.
    pub rtype: Rtype,
    /// UDP (with TCP fallback) or TCP.
    pub transport: Transport,
    /// Whether to set the RD bit.
    pub recursion_desired: bool,
    /// The rcode that means healthy (default NOERROR).
    pub rcode: Rcode,
    /// An answer that must be present, if any. An address only with A or
    /// AAAA (of the same family).
    pub answer: Option<Expected>,
    /// Local address to send from, if not the system's choice. Same family
    /// as `server`.
    pub source: Option<IpAddr>,
    /// The SOA lag check, if any.
    pub soa_lag: Option<SoaLag>,
}

/// Raw settings for a [`DnsProbe`], validated by [`DnsBuilder::build`].
#[derive(Clone, Debug, Default)]
pub struct DnsBuilder {
    server: Option<String>,
    name: String,
    rtype: Option<String>,
    tcp: bool,
    norecurse: bool,
    rcode: Option<String>,
    answer: Option<String>,
    source: Option<String>,
    soa_reference: Option<String>,
    soa_max_lag: Option<String>,
    soa_zone: Option<String>,
}

impl DnsProbe {
    /// Starts a builder for a query of `name`.
    pub fn builder(name: impl Into<String>) -> DnsBuilder {
        DnsBuilder { name: name.into(), ..DnsBuilder::default() }
    }
}

impl DnsBuilder {
    /// The server: `IP`, `IP:PORT`, `[IPV6]:PORT` (default `127.0.0.1:53`).
    pub fn server(mut self, v: impl Into<String>) -> Self {
        self.server = Some(v.into());
        self
    }

    /// The query type: a mnemonic (`A`, `AAAA`, `SOA`, `TXT`, …) or `TYPEn`.
    pub fn rtype(mut self, v: impl Into<String>) -> Self {
        self.rtype = Some(v.into());
        self
    }

    /// Query over TCP only.
    pub fn tcp(mut self, v: bool) -> Self {
        self.tcp = v;
        self
    }

    /// Clear the recursion-desired bit.
    pub fn norecurse(mut self, v: bool) -> Self {
        self.norecurse = v;
        self
    }

    /// The rcode that means healthy: a mnemonic (`NXDOMAIN`) or a number.
    pub fn rcode(mut self, v: impl Into<String>) -> Self {
        self.rcode = Some(v.into());
        self
    }

    /// An answer that must be present (an address for A/AAAA, else text).
    pub fn answer(mut self, v: impl Into<String>) -> Self {
        self.answer = Some(v.into());
        self
    }

    /// The local address to send from.
    pub fn source(mut self, v: impl Into<String>) -> Self {
        self.source = Some(v.into());
        self
    }

    /// The reference server for the SOA lag check (turns the check on).
    pub fn soa_reference(mut self, v: impl Into<String>) -> Self {
        self.soa_reference = Some(v.into());
        self
    }

    /// The largest acceptable SOA serial lag (default 0).
    pub fn soa_max_lag(mut self, v: impl Into<String>) -> Self {
        self.soa_max_lag = Some(v.into());
        self
    }

    /// The zone whose SOA is compared (default: the query name).
    pub fn soa_zone(mut self, v: impl Into<String>) -> Self {
        self.soa_zone = Some(v.into());
        self
    }

    /// Sets one setting by its flag-form key.
    fn set(self, key: &str, value: &str) -> Result<Self, SpecError> {
        Ok(match key {
            "server" => self.server(value),
            "type" => self.rtype(value),
            "rcode" => self.rcode(value),
            "answer" => self.answer(String::from_utf8_lossy(&unescape(value).map_err(|e| SpecError::at("answer", e))?)),
            "source" => self.source(value),
            "soa-reference" => self.soa_reference(value),
            "soa-max-lag" => self.soa_max_lag(value),
            "soa-zone" => self.soa_zone(value),
            _ => {
                return Err(SpecError::general(format!(
                    "{key}: unknown DNS setting (known: rcode, answer, source, \
                     soa-reference, soa-max-lag, soa-zone, and the words tcp, norecurse)"
                )));
            }
        })
    }

    /// Validates the settings; the error names the offending one.
    pub fn build(self) -> Result<DnsProbe, SpecError> {
        let server = match &self.server {
            None => SocketAddr::from(([127, 0, 0, 1], DNS_PORT)),
            Some(s) => server_addr(s, DNS_PORT).map_err(|e| SpecError::at("server", e))?,
        };
        let name = parse_name(&self.name).map_err(|e| SpecError::at("name", e))?;
        let rtype = match &self.rtype {
            None => Rtype::A,
            Some(s) => parse_rtype(s).map_err(|e| SpecError::at("type", e))?,
        };
        let rcode = match &self.rcode {
            None => Rcode::NOERROR,
            Some(s) => parse_rcode(s).map_err(|e| SpecError::at("rcode", e))?,
        };
        let answer = match &self.answer {
            None => None,
            Some(s) if s.is_empty() => return Err(SpecError::at("answer", "must not be empty")),
            Some(s) => Some(match rtype {
                Rtype::A => Expected::Address(IpAddr::V4(
                    s.parse::<Ipv4Addr>()
                        .map_err(|_| SpecError::at("answer", format!("{s:?} is not an IPv4 address")))?,
                )),
                Rtype::AAAA => Expected::Address(IpAddr::V6(
                    s.parse::<Ipv6Addr>()
                        .map_err(|_| SpecError::at("answer", format!("{s:?} is not an IPv6 address")))?,
                )),
                _ => Expected::Text(s.clone()),
            }),
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
        let soa_lag = match &self.soa_reference {
            None => {
                if self.soa_max_lag.is_some() || self.soa_zone.is_some() {
                    return Err(SpecError::at("soa-reference", "needed by soa-max-lag and soa-zone"));
                }
                None
            }
            Some(r) => {
                let reference = server_addr(r, DNS_PORT).map_err(|e| SpecError::at("soa-reference", e))?;
                if source.is_some_and(|s| s.is_ipv4() != reference.is_ipv4()) {
                    return Err(SpecError::at("soa-reference", "not of the source address's family"));
                }
                let zone = match &self.soa_zone {
                    None => name.clone(),
                    Some(z) => parse_name(z).map_err(|e| SpecError::at("soa-zone", e))?,
                };
                let max_lag = match &self.soa_max_lag {
                    None => 0,
                    Some(s) => match s.parse::<u32>() {
                        Ok(n) if n < 1 << 31 => n,
                        _ => return Err(SpecError::at("soa-max-lag", format!("{s:?} is not a number below 2^31"))),
                    },
                };
                Some(SoaLag { reference, zone, max_lag })
            }
        };
        Ok(DnsProbe {
            server,
            name,
            rtype,
            transport: if self.tcp { Transport::Tcp } else { Transport::Udp },
            recursion_desired: !self.norecurse,
            rcode,
            answer,
            source,
            soa_lag,
        })
    }
}

fn parse_name(s: &str) -> Result<Name<Vec<u8>>, String> {
    if s.is_empty() {
        return Err("missing (a domain name such as example.com)".into());
    }
    Name::from_str(s).map_err(|e| format!("{s:?} is not a domain name ({e})"))
}

fn parse_rtype(s: &str) -> Result<Rtype, String> {
    let upper = s.to_ascii_uppercase();
    match Rtype::from_str(&upper) {
        // Meta types get no useful reply from a server's normal path.
        Ok(Rtype::AXFR | Rtype::IXFR | Rtype::OPT | Rtype::TSIG) => Err(format!("{s:?} cannot be probed")),
        Ok(t) => Ok(t),
        Err(_) => Err(format!("{s:?} is not a record type (A, AAAA, SOA, TXT, NS, MX, …)")),
    }
}

fn parse_rcode(s: &str) -> Result<Rcode, String> {
    let upper = s.to_ascii_uppercase();
    if let Ok(r) = Rcode::from_str(&upper) {
        return Ok(r);
    }
    s.parse::<u8>()
        .ok()
        .and_then(Rcode::checked_from_int)
        .ok_or_else(|| format!("{s:?} is not an rcode (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, or 0–15)"))
}

impl FromStr for DnsProbe {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut builder = DnsBuilder::default();
        let (mut have_server, mut have_name, mut have_type) = (false, false, false);
        for word in s.split_whitespace() {
            if let Some((key, value)) = word.split_once('=') {
                builder = builder.set(key, value)?;
            } else if word == "tcp" && have_name {
                builder.tcp = true;
            } else if word == "norecurse" && have_name {
                builder.norecurse = true;
            } else if !have_server && !have_name && server_addr(word, DNS_PORT).is_ok() {
                builder.server = Some(word.into());
                have_server = true;
            } else if !have_name {
                builder.name = word.into();
                have_name = true;
            } else if !have_type {
                builder.rtype = Some(word.into());
                have_type = true;
            } else {
                return Err(SpecError::general(format!("{word:?}: expected tcp, norecurse or KEY=VALUE")));
            }
        }
        builder.build()
    }
}

impl fmt::Display for DnsProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.server, self.name, self.rtype)?;
        if self.transport == Transport::Tcp {
            f.write_str(" tcp")?;
        }
        if !self.recursion_desired {
            f.write_str(" norecurse")?;
        }
        if self.rcode != Rcode::NOERROR {
            write!(f, " rcode={}", self.rcode)?;
        }
        match &self.answer {
            None => {}
            Some(Expected::Address(a)) => write!(f, " answer={a}")?,
            Some(Expected::Text(t)) => write!(f, " answer={}", escape(t.as_bytes()))?,
        }
        if let Some(s) = self.source {
            write!(f, " source={s}")?;
        }
        if let Some(soa) = &self.soa_lag {
            write!(f, " soa-reference={} soa-max-lag={}", soa.reference, soa.max_lag)?;
            if soa.zone != self.name {
                write!(f, " soa-zone={}", soa.zone)?;
            }
        }
        Ok(())
    }
}

/// A reply that matched our query, or the outcome that ends the probe.
type Exchange = Result<Message<Vec<u8>>, Outcome>;

/// Largest message we accept; the TCP length prefix allows no more.
const MAX_MESSAGE: usize = 65_535;

impl DnsProbe {
    /// Queries once (plus the SOA queries of the lag check) and judges the
    /// reply, all within `timeout`.
    pub fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let reply = match self.exchange(self.server, &self.name, self.rtype, deadline) {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        let healthy = match self.judge(&reply) {
            Ok(healthy) => healthy,
            Err(outcome) => return outcome,
        };
        match &self.soa_lag {
            None => healthy,
            Some(soa) => self.check_soa_lag(soa, deadline).unwrap_or(healthy),
        }
    }

    /// The reply decoder's entry point (public for the fuzz targets): parses
    /// `bytes` as the reply to this probe's query sent with ID `id`, and
    /// judges it as [`DnsProbe::run`] does, without the SOA lag check (which
    /// asks more servers).
    pub fn check_reply(&self, id: u16, bytes: Vec<u8>) -> Outcome {
        let judged = self.build_query(&self.name, self.rtype).and_then(|mut query| {
            query.header_mut().set_id(id);
            self.judge(&matching_reply(bytes, &query)?)
        });
        judged.unwrap_or_else(|outcome| outcome)
    }

    /// Judges a matching reply on its rcode and expected answer: the healthy
    /// outcome, or the one that ends the probe.
    fn judge(&self, reply: &Message<Vec<u8>>) -> Result<Outcome, Outcome> {
        let rcode = reply.header().rcode();
        if rcode != self.rcode {
            return Err(Outcome::down(format!("dns-rcode {rcode}")).with_detail(summary(reply)));
        }
        if let Some(expected) = &self.answer
            && !self.has_answer(reply, expected)?
        {
            return Err(Outcome::down("dns-answer-missing").with_detail(summary(reply)));
        }
        Ok(Outcome::healthy(format!("dns-rcode {rcode}")).with_detail(summary(reply)))
    }

    /// True if `reply` holds the expected answer among its records of the
    /// query type.
    fn has_answer(&self, reply: &Message<Vec<u8>>, expected: &Expected) -> Result<bool, Outcome> {
        let bad = |e: domain::base::wire::ParseError| Outcome::down("dns-bad-reply").with_detail(e.to_string());
        let section = reply.answer().map_err(bad)?;
        for record in section.limit_to::<AllRecordData<_, ParsedName<_>>>() {
            let record = record.map_err(bad)?;
            if record.rtype() != self.rtype {
                continue;
            }
            let found = match (expected, record.data()) {
                (Expected::Address(IpAddr::V4(want)), AllRecordData::A(a)) => a.addr() == *want,
                (Expected::Address(IpAddr::V6(want)), AllRecordData::Aaaa(a)) => a.addr() == *want,
                (Expected::Address(_), _) => false,
                (Expected::Text(want), data) => {
                    let shown = data.to_string();
                    if self.rtype == Rtype::TXT {
                        shown.contains(want.as_str())
                    } else {
                        shown.to_ascii_lowercase().contains(&want.to_ascii_lowercase())
                    }
                }
            };
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The SOA lag check: `Some(outcome)` when it overrides a healthy
    /// result, `None` when the serials are close enough.
    fn check_soa_lag(&self, soa: &SoaLag, deadline: Instant) -> Option<Outcome> {
        let ours = match self.soa_serial(self.server, &soa.zone, deadline) {
            Ok(s) => s,
            Err(outcome) => return Some(outcome),
        };
        let reference = match self.soa_serial(soa.reference, &soa.zone, deadline) {
            Ok(s) => s,
            Err(o) => {
                return Some(
                    Outcome::degraded("dns-soa-reference-failed")
                        .with_detail(format!("reference {}: {o}", soa.reference)),
                );
            }
        };
        let lag = serial_lag(ours, reference);
        let detail = format!("serial {ours}, reference {reference}");
        (lag > soa.max_lag).then(|| Outcome::down(format!("dns-soa-lag {lag}")).with_detail(detail))
    }

    /// The SOA serial of `zone` at `server`, from the answer or authority
    /// section.
    fn soa_serial(&self, server: SocketAddr, zone: &Name<Vec<u8>>, deadline: Instant) -> Result<u32, Outcome> {
        let reply = self.exchange(server, zone, Rtype::SOA, deadline)?;
        let bad = |e: domain::base::wire::ParseError| Outcome::down("dns-bad-reply").with_detail(e.to_string());
        // Answer section for a SOA query at the apex, authority section for
        // one below it (NODATA); the additional section holds no SOA.
        for section in [reply.answer().map_err(bad)?, reply.authority().map_err(bad)?] {
            for record in section.limit_to::<AllRecordData<_, ParsedName<_>>>() {
                if let AllRecordData::Soa(soa) = record.map_err(bad)?.data() {
                    return Ok(soa.serial().into_int());
                }
            }
        }
        let rcode = reply.header().rcode();
        Err(Outcome::down("dns-soa-missing").with_detail(format!("no SOA for {zone} from {server} ({rcode})")))
    }

    /// Sends one query and returns the reply that matches it.
    fn exchange(&self, server: SocketAddr, name: &Name<Vec<u8>>, rtype: Rtype, deadline: Instant) -> Exchange {
        let query = self.build_query(name, rtype)?;
        match self.transport {
            Transport::Tcp => self.exchange_tcp(server, &query, deadline),
            Transport::Udp => {
                let reply = self.exchange_udp(server, &query, deadline)?;
                if reply.header().tc() { self.exchange_tcp(server, &query, deadline) } else { Ok(reply) }
            }
        }
    }

    fn build_query(&self, name: &Name<Vec<u8>>, rtype: Rtype) -> Result<Message<Vec<u8>>, Outcome> {
        let mut builder = MessageBuilder::new_vec();
        builder.header_mut().set_id(random_id());
        builder.header_mut().set_rd(self.recursion_desired);
        let mut question = builder.question();
        question.push((name, rtype)).map_err(|e| Outcome::down("dns-query-failed").with_detail(e.to_string()))?;
        Ok(question.into_message())
    }

    fn local_addr(&self, server: SocketAddr) -> SocketAddr {
        let ip = self.source.unwrap_or(if server.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        SocketAddr::new(ip, 0)
    }

    fn exchange_udp(&self, server: SocketAddr, query: &Message<Vec<u8>>, deadline: Instant) -> Exchange {
        let io = |e: std::io::Error| Outcome::down(io_reason(&e));
        // Connected, so only the server's datagrams arrive, and an ICMP
        // port-unreachable reads as `refused`.
        let socket = UdpSocket::bind(self.local_addr(server)).map_err(io)?;
        socket.connect(server).map_err(io)?;
        socket.send(query.as_slice()).map_err(io)?;
        let mut mismatch = None;
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let timed_out = || mismatch.clone().unwrap_or_else(|| Outcome::down("timeout"));
            let Some(left) = remaining(deadline) else { return Err(timed_out()) };
            socket.set_read_timeout(Some(left)).map_err(io)?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(timed_out());
                }
                Err(e) => return Err(io(e)),
            };
            match matching_reply(buf[..n].to_vec(), query) {
                Ok(reply) => return Ok(reply),
                Err(outcome) => mismatch = Some(outcome),
            }
        }
    }

    fn exchange_tcp(&self, server: SocketAddr, query: &Message<Vec<u8>>, deadline: Instant) -> Exchange {
        let io = |e: std::io::Error| Outcome::down(io_reason(&e));
        let timeout = || Outcome::down("timeout");
        let mut stream = self.connect_tcp(server, deadline).map_err(io)?;
        let len = u16::try_from(query.as_slice().len()).map_err(|_| Outcome::down("dns-query-failed"))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(query.as_slice());
        stream.set_write_timeout(Some(remaining(deadline).ok_or_else(timeout)?)).map_err(io)?;
        stream.write_all(&framed).map_err(io)?;
        let mut len = [0u8; 2];
        read_exact_by(&mut stream, &mut len, deadline).map_err(io)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read_exact_by(&mut stream, &mut reply, deadline).map_err(io)?;
        // A TCP connection carries only our exchange: a mismatch is final.
        matching_reply(reply, query)
    }

    fn connect_tcp(&self, server: SocketAddr, deadline: Instant) -> std::io::Result<TcpStream> {
        let left = remaining(deadline).ok_or(ErrorKind::TimedOut)?;
        let Some(source) = self.source else {
            return TcpStream::connect_timeout(&server, left);
        };
        // std cannot bind before connecting; socket2 can.
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(server),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect_timeout(&server.into(), left)?;
        Ok(socket.into())
    }
}

/// Parses `bytes` and checks that it answers `query` (ID, QR, question).
fn matching_reply(bytes: Vec<u8>, query: &Message<Vec<u8>>) -> Exchange {
    let reply = Message::from_octets(bytes)
        .map_err(|_| Outcome::down("dns-bad-reply").with_detail("shorter than a DNS header"))?;
    if !reply.is_answer(query) {
        let detail = if reply.header().id() != query.header().id() {
            "reply ID is not our query's"
        } else {
            "reply question is not our query's"
        };
        return Err(Outcome::down("dns-bad-reply").with_detail(detail));
    }
    Ok(reply)
}

/// Fills `buf` from `stream`, giving up at `deadline` even if bytes keep
/// trickling in.
fn read_exact_by(stream: &mut TcpStream, mut buf: &mut [u8], deadline: Instant) -> std::io::Result<()> {
    while !buf.is_empty() {
        let left = remaining(deadline).ok_or(ErrorKind::TimedOut)?;
        stream.set_read_timeout(Some(left))?;
        match stream.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How far `ours` is behind `reference` in RFC 1982 serial arithmetic: 0
/// when equal or ahead, else the distance. The one undefined case (exactly
/// 2^31 apart) counts as the largest lag.
pub fn serial_lag(ours: u32, reference: u32) -> u32 {
    match reference.wrapping_sub(ours) {
        d if d < 1 << 31 => d,
        d if d == 1 << 31 => d,
        _ => 0,
    }
}

/// A one-line summary of a reply for an outcome's detail: rcode and the
/// first few answers.
fn summary(reply: &Message<Vec<u8>>) -> String {
    let mut out = format!("{}", reply.header().rcode());
    if let Ok(answer) = reply.answer() {
        let shown: Vec<String> = answer
            .limit_to::<AllRecordData<_, ParsedName<_>>>()
            .filter_map(Result::ok)
            .take(3)
            .map(|r| format!("{} {}", r.rtype(), r.data()))
            .collect();
        if !shown.is_empty() {
            out.push_str(": ");
            out.push_str(&shown.join(", "));
        }
    }
    out.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// A random query ID: a guessable one would let an off-path sender forge
/// a healthy reply.
fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): still vary between probes.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        return (nanos ^ (nanos >> 16)) as u16;
    }
    u16::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_form_parses_and_round_trips() {
        let p: DnsProbe = "127.0.0.1:5353 example.com A".parse().unwrap();
        assert_eq!(p.server, "127.0.0.1:5353".parse().unwrap());
        assert_eq!((p.rtype, p.transport, p.rcode), (Rtype::A, Transport::Udp, Rcode::NOERROR));
        assert!(p.recursion_desired);
        assert_eq!(p.to_string(), "127.0.0.1:5353 example.com A");

        let p: DnsProbe = "example.com".parse().unwrap();
        assert_eq!((p.server, p.rtype), ("127.0.0.1:53".parse().unwrap(), Rtype::A));

        let s = "::1 example.com txt tcp norecurse rcode=nxdomain answer=v=spf1\\x20-all source=::1 \
                 soa-reference=[::1]:5300 soa-max-lag=7 soa-zone=com";
        let p: DnsProbe = s.parse().unwrap();
        assert_eq!((p.rtype, p.transport, p.rcode), (Rtype::TXT, Transport::Tcp, Rcode::NXDOMAIN));
        assert!(!p.recursion_desired);
        assert_eq!(p.answer, Some(Expected::Text("v=spf1 -all".into())));
        assert_eq!(p.source, Some("::1".parse().unwrap()));
        let soa = p.soa_lag.as_ref().unwrap();
        assert_eq!((soa.reference, soa.max_lag), ("[::1]:5300".parse().unwrap(), 7));
        assert_eq!(soa.zone.to_string(), "com");
        assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

        let p: DnsProbe = "127.0.0.1 example.com AAAA answer=2001:db8::1".parse().unwrap();
        assert_eq!(p.answer, Some(Expected::Address("2001:db8::1".parse().unwrap())));
        let p: DnsProbe = "127.0.0.1 example.com TYPE65 rcode=3".parse().unwrap();
        assert_eq!((p.rtype.to_int(), p.rcode), (65, Rcode::NXDOMAIN));
    }

    #[test]
    fn errors_name_the_field() {
        let e = |s: &str| s.parse::<DnsProbe>().unwrap_err().to_string();
        assert!(e("").starts_with("name:"), "{}", e(""));
        assert!(e("127.0.0.1:53").starts_with("name:"));
        assert!(e("127.0.0.1 example.com BOGUS").starts_with("type:"));
        assert!(e("127.0.0.1 example.com A extra").contains("expected tcp"));
        assert!(e("127.0.0.1 example.com AXFR").starts_with("type:"));
        assert!(e("127.0.0.1 example.com A rcode=FINE").starts_with("rcode:"));
        assert!(e("127.0.0.1 example.com A answer=mail").starts_with("answer:"));
        assert!(e("127.0.0.1 example.com AAAA answer=192.0.2.1").starts_with("answer:"));
        assert!(e("127.0.0.1 example.com A source=::1").starts_with("source:"));
        assert!(e("127.0.0.1 example.com A source=me").starts_with("source:"));
        assert!(e("127.0.0.1 example.com A soa-max-lag=3").starts_with("soa-reference:"));
        assert!(e("127.0.0.1 example.com A soa-reference=ns1").starts_with("soa-reference:"));
        assert!(e("127.0.0.1 example.com A source=127.0.0.2 soa-reference=::1").starts_with("soa-reference:"));
        assert!(e("127.0.0.1 example.com A soa-reference=127.0.0.2 soa-max-lag=x").starts_with("soa-max-lag:"));
        assert!(e("127.0.0.1 example.com A port=53").starts_with("port:"));
        assert!(e("127.0.0.1 bad..name A").starts_with("name:"));
        assert!(
            DnsProbe::builder("example.com")
                .server("dns.example.com")
                .build()
                .unwrap_err()
                .to_string()
                .starts_with("server:")
        );
    }

    #[test]
    fn serial_arithmetic() {
        assert_eq!(serial_lag(100, 100), 0);
        assert_eq!(serial_lag(100, 105), 5);
        assert_eq!(serial_lag(105, 100), 0, "ahead is no lag");
        assert_eq!(serial_lag(u32::MAX, 2), 3, "wraps");
        assert_eq!(serial_lag(2, u32::MAX), 0);
        assert_eq!(serial_lag(0, 1 << 31), 1 << 31, "undefined counts as the most");
        assert_eq!(serial_lag(0, (1 << 31) - 1), (1 << 31) - 1);
        assert_eq!(serial_lag(0, (1 << 31) + 1), 0);
    }
}
