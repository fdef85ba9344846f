//! DNS probe: one query to a local DNS server, judged on the reply's rcode,
//! optionally on an answer that must be present, on the header bits an
//! operator cares about (AA, AD), on the server's NSID, and optionally on how
//! far the zone's SOA serial lags behind a reference server's.
//!
//! Messages are built and parsed with NLnet Labs' `domain` crate; this
//! module only decides what to ask and how to judge. The query goes over UDP
//! (retried over TCP when the reply is truncated), with `tcp` over TCP only,
//! with `tls` over DNS-over-TLS (RFC 7858, `dot`), or with `doh=URL` over
//! DNS-over-HTTPS (RFC 8484, `doh`). A reply counts only if it comes from
//! the server (a connected socket), its ID and QR bit match ours and its
//! question is ours; a bare REFUSED, FORMERR or NOTIMP (no question,
//! answer or authority record) counts too (Unbound refusing a client
//! answers so, and dig accepts it). Over UDP other datagrams are ignored (they may be late replies to an
//! earlier probe) and reported as `dns-bad-reply` only if no good reply
//! comes in time. The recursion-desired bit is set unless `norecurse` is
//! given, so the same probe suits a recursive resolver and an authoritative
//! server (which ignores the bit).
//!
//! EDNS0 (RFC 6891) is on by default, with a UDP payload size of 1232 as
//! dig's (`bufsize=N`, 512–65535; `edns=off` sends a plain RFC 1035 query):
//! without it, an answer over 512 bytes is truncated and needs TCP, which a
//! UDP-only server refuses. A truncated UDP reply whose TCP retry fails is
//! `dns-truncated`, with the TCP failure in the detail; so is a reply with
//! the TC bit over TCP, TLS or HTTPS (detail `TC set over TCP`), which has
//! nothing to be truncated to.
//!
//! - `nsid` asks for the server's NSID (RFC 5001); `nsid=TEXT` also
//!   requires it to be exactly `TEXT`. The NSID received is the outcome's
//!   identity (`nsid=site-a`), shown by `exaprobe status` and in the logs.
//! - `class=CH` asks in the CHAOS class (`id.server`, `hostname.bind`,
//!   `version.bind`, type TXT by default there).
//! - `dnssec` sets the DO bit; `ad` requires the AD bit in the reply (it
//!   sets AD in the query, as dig does, so that a validating resolver says
//!   whether it validated). A SERVFAIL to a `dnssec` or `ad` query that is
//!   a validation failure is `dns-bogus`: the server said so with an
//!   extended DNS error (RFC 8914, DNSSEC Bogus and its kin), or the same
//!   query with checking disabled (CD) gets NOERROR.
//! - `aa` requires the authoritative-answer bit (an authoritative server's
//!   answer for its own zone; a resolver never sets it).
//! - `nodata=down`: NOERROR without any record of the asked type (NODATA)
//!   is down, not healthy.
//!
//! SOA lag: with `soa-reference=`, the probe also asks our server and the
//! reference for the SOA of `soa-zone` (default: the query name; the SOA is
//! taken from the answer or the authority section) and compares the serials
//! with RFC 1982 serial arithmetic. Ours behind by more than `soa-max-lag`
//! (default 0) is down with reason `dns-soa-lag N`. If the reference cannot
//! be asked, the outcome is *degraded* (`dns-soa-reference-failed`), not
//! down: a dead primary must not make every anycast node withdraw at once.
//! The reference is asked over UDP (TCP with `tcp`), never over TLS.
//!
//! Reasons: `dns-rcode NOERROR` (healthy); `dns-rcode SERVFAIL` (unexpected
//! rcode); `dns-bogus`; `dns-answer-missing`; `dns-nodata`;
//! `dns-not-authoritative`; `dns-not-validated`; `dns-nsid-missing`;
//! `dns-nsid-mismatch`; `dns-truncated`; `dns-bad-reply`; `dns-soa-lag N`;
//! `dns-soa-missing`; `dns-soa-reference-failed`; over TLS the reasons of
//! `src/probe/tls/` (`tls-wrong-name`, `tls-unknown-ca`, …); over HTTPS
//! also `http-status N` and `doh-bad-content-type`; `timeout`, `refused`, ….
//!
//! Flag form (`--dns`), words separated by spaces:
//!
//! ```text
//! [SERVER] NAME [TYPE] [tcp | tls | doh=URL] [norecurse] [rcode=RCODE]
//!     [answer=TEXT] [source=IP] [edns=off] [bufsize=N] [nsid | nsid=TEXT]
//!     [class=IN|CH] [dnssec] [ad] [aa] [nodata=down|ok] [tls-name=NAME]
//!     [ca=PEM-FILE] [insecure] [method=get|post]
//!     [soa-reference=SERVER] [soa-max-lag=N] [soa-zone=NAME]
//! 127.0.0.1:53 example.com A
//! 127.0.0.1 example.com A answer=192.0.2.1 aa nsid
//! [::1]:53 example.com TXT tcp answer=v=spf1
//! 127.0.0.1 nonexistent.example.com A rcode=NXDOMAIN
//! 127.0.0.1 example.com SOA soa-reference=127.0.0.2 soa-max-lag=5
//! 127.0.0.1 id.server class=CH answer=site-a
//! 127.0.0.1 example.com A dnssec ad
//! 127.0.0.1 example.com A tls tls-name=dns.example.com ca=/etc/ssl/ca.pem
//! example.com A doh=https://127.0.0.1/dns-query tls-name=dns.example.com
//! ```
//!
//! `SERVER` is `IP`, `IP:PORT` or `[IPV6]:PORT` and defaults to
//! `127.0.0.1:53` (port 853 with `tls`); with `doh=` the server is the URL's
//! address and is not given. `TYPE` defaults to `A` (`TXT` in class CH). An
//! A or AAAA `answer` is an address that must be among the answers; for
//! other types it is text that must occur in one answer's presentation form
//! (`10 mail.example.com.` for MX), compared without regard to case except
//! for TXT. `TEXT` takes the escapes of [`super::tcp::unescape`] (`\x20` for
//! a space). `tls-name` is the name sent as SNI and checked in the
//! certificate (default: the server's address); `ca=` and `insecure` are as
//! for HTTPS.
//!
//! This module holds the probe's types and its run (the query and the
//! exchange over a transport); `spec.rs` the builder and the flag form,
//! `judge.rs` the judging of a reply, `transport.rs`, `dot.rs` and `doh.rs`
//! the transports, `wire.rs` the messages.

mod doh;
mod dot;
mod judge;
mod spec;
#[cfg(test)]
mod tests;
mod transport;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use domain::base::iana::{Class, Rcode};
use domain::base::{Message, Name, ParsedName, Rtype};
use domain::rdata::AllRecordData;

use super::Outcome;
use super::http::{HttpUrl, Tls};
use wire::{Query, matching_reply};

pub use judge::serial_lag;
pub use spec::DnsBuilder;

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// The DNS-over-TLS port (RFC 7858).
pub const DOT_PORT: u16 = 853;

/// The EDNS UDP payload size sent by default: dig's, and the DNS flag day
/// 2020 recommendation (no IP fragmentation on common paths).
pub const DEFAULT_BUFSIZE: u16 = 1232;

/// How the query travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP, retried over TCP when the reply is truncated.
    Udp,
    /// TCP only.
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls(TlsTarget),
    /// DNS over HTTPS (RFC 8484).
    Https(DohTarget),
}

/// How a TLS connection (DoT, or DoH's HTTPS) is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsTarget {
    /// The name sent as SNI and checked in the certificate; the server's
    /// address when `None`.
    pub name: Option<String>,
    /// Certificate checking, as for HTTPS.
    pub tls: Tls,
}

/// A DoH endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DohTarget {
    /// The URL (its address is the probe's server).
    pub url: HttpUrl,
    /// POST (the query as the body) rather than GET (`?dns=` base64url).
    pub post: bool,
    /// The TLS checks (HTTPS URLs).
    pub tls: TlsTarget,
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

/// The EDNS0 settings of the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The UDP payload size advertised.
    pub bufsize: u16,
    /// The DO bit (`dnssec`).
    pub dnssec_ok: bool,
    /// Whether to ask for the NSID.
    pub nsid: bool,
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
    /// The query class (IN, or CH for `id.server`).
    pub class: Class,
    /// UDP (with TCP fallback), TCP, TLS or HTTPS.
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
    /// EDNS0, unless `edns=off`.
    pub edns: Option<Edns>,
    /// The NSID the answer must carry (`nsid=TEXT`).
    pub nsid_required: Option<String>,
    /// The reply must have the AD bit (`ad`).
    pub require_ad: bool,
    /// The reply must have the AA bit (`aa`).
    pub require_aa: bool,
    /// NOERROR without a record of the asked type is down (`nodata=down`).
    pub nodata_down: bool,
}

/// A reply that matched our query, or the outcome that ends the probe.
type Exchange = Result<Message<Vec<u8>>, Outcome>;

/// Largest message we accept; the TCP length prefix allows no more.
const MAX_MESSAGE: usize = 65_535;

impl DnsProbe {
    /// Queries once (plus the SOA queries of the lag check, and the CD
    /// query that tells a bogus answer) and judges the reply, all within
    /// `timeout`.
    pub fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let query = self.query(&self.name, self.rtype, self.class, deadline);
        let reply = match self.exchange(&self.transport, self.server, query) {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        let healthy = match self.judge(&reply, Some(deadline)) {
            Ok(healthy) => healthy,
            Err(outcome) => return outcome,
        };
        match self.soa_lag.as_ref().and_then(|soa| self.check_soa_lag(soa, deadline)) {
            None => healthy,
            // Who answered the main query still shows.
            Some(o) => Outcome { identity: healthy.identity, ..o },
        }
    }

    /// The reply decoder's entry point (public for the fuzz targets): parses
    /// `bytes` as the reply to this probe's query sent with ID `id`, and
    /// judges it as [`DnsProbe::run`] does, without the SOA lag check and
    /// the CD query (which ask servers again).
    pub fn check_reply(&self, id: u16, bytes: Vec<u8>) -> Outcome {
        let judged = self.query(&self.name, self.rtype, self.class, Instant::now()).build().and_then(|mut query| {
            query.header_mut().set_id(id);
            self.judge(&matching_reply(bytes, &query)?, None)
        });
        judged.unwrap_or_else(|outcome| outcome)
    }

    /// The query this probe sends for `name`, `rtype` in `class`.
    fn query<'a>(&self, name: &'a Name<Vec<u8>>, rtype: Rtype, class: Class, deadline: Instant) -> Query<'a> {
        Query {
            name,
            rtype,
            class,
            rd: self.recursion_desired,
            ad: self.require_ad,
            cd: false,
            edns: self.edns,
            deadline,
        }
    }

    /// The SOA serial of `zone` at `server`, from the answer or authority
    /// section.
    fn soa_serial(
        &self,
        transport: &Transport,
        server: SocketAddr,
        zone: &Name<Vec<u8>>,
        deadline: Instant,
    ) -> Result<u32, Outcome> {
        let query = Query { ad: false, ..self.query(zone, Rtype::SOA, Class::IN, deadline) };
        let reply = self.exchange(transport, server, query)?;
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

    /// Sends one query over `transport` and returns the reply that matches
    /// it, by the query's deadline.
    fn exchange(&self, transport: &Transport, server: SocketAddr, query: Query<'_>) -> Exchange {
        let deadline = query.deadline;
        let message = query.build()?;
        match transport {
            Transport::Tcp => whole(transport::exchange_tcp(self.source, server, &message, deadline), "TCP"),
            Transport::Udp => {
                let reply = transport::exchange_udp(self.source, server, &message, deadline)?;
                if !reply.header().tc() {
                    return Ok(reply);
                }
                let retry = transport::exchange_tcp(self.source, server, &message, deadline).map_err(|o| {
                    let size =
                        self.edns.map_or("EDNS off: 512 bytes".to_string(), |e| format!("bufsize {}", e.bufsize));
                    Outcome::down("dns-truncated")
                        .with_detail(format!("the UDP reply was truncated ({size}) and the TCP retry failed: {o}"))
                });
                whole(retry, "TCP")
            }
            Transport::Tls(t) => whole(dot::exchange(self.source, server, t, &message, deadline), "DoT"),
            Transport::Https(d) => whole(doh::exchange(d, &message, deadline), "DoH"),
        }
    }
}

/// A reply over a stream (TCP, TLS, HTTPS), which has no size limit to
/// truncate to: one with TC set is a broken server's, `dns-truncated`
/// rather than taken as whole.
fn whole(reply: Exchange, over: &str) -> Exchange {
    match reply {
        Ok(m) if m.header().tc() => Err(Outcome::down("dns-truncated").with_detail(format!("TC set over {over}"))),
        other => other,
    }
}
