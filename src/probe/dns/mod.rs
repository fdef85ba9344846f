//! DNS probe: one query to a local DNS server, judged on the reply's rcode,
//! optionally on an answer that must be present, on the header bits an
//! operator cares about (AA, AD), on the server's NSID, and optionally on how
//! far the zone's SOA serial lags behind a reference server's.
//!
//! Messages are built and parsed with NLnet Labs' `domain` crate; this
//! module only decides what to ask and how to judge. The query goes over UDP
//! (retried over TCP when the reply is truncated), with `tcp` over TCP only,
//! with `tls` over DNS-over-TLS (RFC 7858, [`dot`]), or with `doh=URL` over
//! DNS-over-HTTPS (RFC 8484, [`doh`]). A reply counts only if it comes from
//! the server (a connected socket), its ID and QR bit match ours and its
//! question is ours; a reply with an error rcode and no question section at
//! all counts too (Unbound refusing a client answers so, and dig accepts
//! it). Over UDP other datagrams are ignored (they may be late replies to an
//! earlier probe) and reported as `dns-bad-reply` only if no good reply
//! comes in time. The recursion-desired bit is set unless `norecurse` is
//! given, so the same probe suits a recursive resolver and an authoritative
//! server (which ignores the bit).
//!
//! EDNS0 (RFC 6891) is on by default, with a UDP payload size of 1232 as
//! dig's (`bufsize=N`, 512–65535; `edns=off` sends a plain RFC 1035 query):
//! without it, an answer over 512 bytes is truncated and needs TCP, which a
//! UDP-only server refuses. A truncated UDP reply whose TCP retry fails is
//! `dns-truncated`, with the TCP failure in the detail.
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
//! `src/probe/tls.rs` (`tls-wrong-name`, `tls-unknown-ca`, …); over HTTPS
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

mod doh;
mod dot;
mod transport;
mod wire;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use domain::base::iana::{Class, Rcode};
use domain::base::{Message, Name, ParsedName, Rtype};
use domain::rdata::AllRecordData;

use super::http::{CaBundle, HttpUrl, Scheme, Tls};
use super::ntp::server_addr;
use super::tcp::{escape, unescape};
use super::{Outcome, SpecError};
use wire::{Query, matching_reply};

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

/// The less common raw settings of a [`DnsBuilder`].
#[derive(Clone, Debug, Default)]
struct More {
    edns: Option<String>,
    bufsize: Option<String>,
    nsid: bool,
    nsid_text: Option<String>,
    class: Option<String>,
    dnssec: bool,
    ad: bool,
    aa: bool,
    nodata: Option<String>,
    tls: bool,
    tls_name: Option<String>,
    ca: Option<PathBuf>,
    insecure: bool,
    doh: Option<String>,
    method: Option<String>,
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
    /// The settings added with EDNS, DNSSEC, DoT and DoH, boxed: the
    /// builder is a variant of `RawProbe`, which stays small.
    more: Box<More>,
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

    /// EDNS0: `on` (the default) or `off`.
    pub fn edns(mut self, v: impl Into<String>) -> Self {
        self.more.edns = Some(v.into());
        self
    }

    /// The EDNS UDP payload size, 512–65535 (default 1232).
    pub fn bufsize(mut self, v: impl Into<String>) -> Self {
        self.more.bufsize = Some(v.into());
        self
    }

    /// Ask for the server's NSID.
    pub fn nsid(mut self, v: bool) -> Self {
        self.more.nsid = v;
        self
    }

    /// Require this NSID (asks for it).
    pub fn nsid_text(mut self, v: impl Into<String>) -> Self {
        self.more.nsid_text = Some(v.into());
        self
    }

    /// The query class: `IN` (default), `CH`, `HS`, or `CLASSn`.
    pub fn class(mut self, v: impl Into<String>) -> Self {
        self.more.class = Some(v.into());
        self
    }

    /// Set the DO bit.
    pub fn dnssec(mut self, v: bool) -> Self {
        self.more.dnssec = v;
        self
    }

    /// Require the AD bit.
    pub fn ad(mut self, v: bool) -> Self {
        self.more.ad = v;
        self
    }

    /// Require the AA bit.
    pub fn aa(mut self, v: bool) -> Self {
        self.more.aa = v;
        self
    }

    /// What NODATA means: `ok` (default) or `down`.
    pub fn nodata(mut self, v: impl Into<String>) -> Self {
        self.more.nodata = Some(v.into());
        self
    }

    /// Query over DNS-over-TLS.
    pub fn tls(mut self, v: bool) -> Self {
        self.more.tls = v;
        self
    }

    /// The TLS name (SNI and certificate check).
    pub fn tls_name(mut self, v: impl Into<String>) -> Self {
        self.more.tls_name = Some(v.into());
        self
    }

    /// CA certificates (PEM) for the TLS check.
    pub fn ca_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.more.ca = Some(v.into());
        self
    }

    /// Skip the certificate check.
    pub fn insecure(mut self, v: bool) -> Self {
        self.more.insecure = v;
        self
    }

    /// Query over DNS-over-HTTPS at this URL.
    pub fn doh(mut self, v: impl Into<String>) -> Self {
        self.more.doh = Some(v.into());
        self
    }

    /// The DoH method: `get` (default) or `post`.
    pub fn method(mut self, v: impl Into<String>) -> Self {
        self.more.method = Some(v.into());
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
            "edns" => self.edns(value),
            "bufsize" => self.bufsize(value),
            "nsid" => self.nsid_text(String::from_utf8_lossy(&unescape(value).map_err(|e| SpecError::at("nsid", e))?)),
            "class" => self.class(value),
            "nodata" => self.nodata(value),
            "tls-name" => self.tls_name(value),
            "ca" => self.ca_file(value),
            "doh" => self.doh(value),
            "method" => self.method(value),
            _ => {
                return Err(SpecError::general(format!(
                    "{key}: unknown DNS setting (known: rcode, answer, source, edns, bufsize, nsid, class, \
                     nodata, tls-name, ca, doh, method, soa-reference, soa-max-lag, soa-zone, and the words \
                     tcp, tls, norecurse, nsid, dnssec, ad, aa, insecure)"
                )));
            }
        })
    }

    /// Validates the settings; the error names the offending one.
    pub fn build(self) -> Result<DnsProbe, SpecError> {
        let name = parse_name(&self.name).map_err(|e| SpecError::at("name", e))?;
        let class = match &self.more.class {
            None => Class::IN,
            Some(s) => parse_class(s).map_err(|e| SpecError::at("class", e))?,
        };
        let rtype = match &self.rtype {
            None if class == Class::CH => Rtype::TXT,
            None => Rtype::A,
            Some(s) => parse_rtype(s).map_err(|e| SpecError::at("type", e))?,
        };
        let rcode = match &self.rcode {
            None => Rcode::NOERROR,
            Some(s) => parse_rcode(s).map_err(|e| SpecError::at("rcode", e))?,
        };
        let tls_target = self.tls_target()?;
        let (server, transport) = self.transport(tls_target)?;
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
                if matches!(transport, Transport::Https(_)) {
                    return Err(SpecError::at("source", "not with doh=URL (the HTTP client picks the address)"));
                }
                Some(ip)
            }
        };
        let soa_lag = self.soa_lag(&name, source)?;
        let edns = self.edns_settings()?;
        if let Some(t) = &self.more.nsid_text
            && t.is_empty()
        {
            return Err(SpecError::at("nsid", "must not be empty (the word nsid alone asks for it)"));
        }
        let nodata_down = match self.more.nodata.as_deref() {
            None | Some("ok") => false,
            Some("down") => true,
            Some(other) => return Err(SpecError::at("nodata", format!("{other:?} is not down or ok"))),
        };
        Ok(DnsProbe {
            server,
            name,
            rtype,
            class,
            transport,
            recursion_desired: !self.norecurse,
            rcode,
            answer,
            source,
            soa_lag,
            edns,
            nsid_required: self.more.nsid_text,
            require_ad: self.more.ad,
            require_aa: self.more.aa,
            nodata_down,
        })
    }

    /// The TLS checks, if `tls` or `doh=` is given; `tls-name`, `ca` and
    /// `insecure` need one of them.
    fn tls_target(&self) -> Result<Option<TlsTarget>, SpecError> {
        if !self.more.tls && self.more.doh.is_none() {
            let key = if self.more.tls_name.is_some() {
                Some("tls-name")
            } else if self.more.ca.is_some() {
                Some("ca")
            } else if self.more.insecure {
                Some("insecure")
            } else {
                None
            };
            if let Some(key) = key {
                return Err(SpecError::at(key, "needs tls or doh=URL"));
            }
            return Ok(None);
        }
        let name = match &self.more.tls_name {
            None => None,
            Some(n) => {
                rustls::pki_types::ServerName::try_from(n.as_str())
                    .map_err(|_| SpecError::at("tls-name", format!("{n:?} is not a DNS name or an IP address")))?;
                Some(n.clone())
            }
        };
        let tls = match (&self.more.ca, self.more.insecure) {
            (Some(_), true) => return Err(SpecError::at("insecure", "conflicts with ca=")),
            (None, true) => Tls::Insecure,
            (None, false) => Tls::Verify(None),
            (Some(path), false) => Tls::Verify(Some(CaBundle::read(path).map_err(|e| SpecError::at("ca", e))?)),
        };
        Ok(Some(TlsTarget { name, tls }))
    }

    /// The server and the transport.
    fn transport(&self, tls_target: Option<TlsTarget>) -> Result<(SocketAddr, Transport), SpecError> {
        if self.more.method.is_some() && self.more.doh.is_none() {
            return Err(SpecError::at("method", "needs doh=URL"));
        }
        let exclusive = [("tcp", self.tcp), ("tls", self.more.tls), ("doh", self.more.doh.is_some())];
        if let [(a, _), (b, _), ..] = exclusive.iter().filter(|(_, on)| *on).collect::<Vec<_>>()[..] {
            return Err(SpecError::at(b, format!("conflicts with {a} (one transport only)")));
        }
        let server = |default_port| match &self.server {
            None => Ok(SocketAddr::from(([127, 0, 0, 1], default_port))),
            Some(s) => server_addr(s, default_port).map_err(|e| SpecError::at("server", e)),
        };
        if let Some(url) = &self.more.doh {
            if self.server.is_some() {
                return Err(SpecError::at("server", "not with doh=URL (the URL names the server)"));
            }
            let url: HttpUrl = url.parse().map_err(|e: String| SpecError::at("doh", e))?;
            let post = match self.more.method.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("get") => false,
                Some("post") => true,
                Some(_) => return Err(SpecError::at("method", "is get or post for DoH")),
            };
            let tls = tls_target.unwrap_or(TlsTarget { name: None, tls: Tls::Verify(None) });
            if url.scheme == Scheme::Http && (tls.name.is_some() || tls.tls != Tls::Verify(None)) {
                let key = if tls.name.is_some() { "tls-name" } else { "ca" };
                return Err(SpecError::at(key, "needs an https:// doh= URL"));
            }
            return Ok((url.address, Transport::Https(DohTarget { url, post, tls })));
        }
        if let Some(tls) = tls_target.filter(|_| self.more.tls) {
            return Ok((server(DOT_PORT)?, Transport::Tls(tls)));
        }
        Ok((server(DNS_PORT)?, if self.tcp { Transport::Tcp } else { Transport::Udp }))
    }

    fn soa_lag(&self, name: &Name<Vec<u8>>, source: Option<IpAddr>) -> Result<Option<SoaLag>, SpecError> {
        let Some(r) = &self.soa_reference else {
            if self.soa_max_lag.is_some() || self.soa_zone.is_some() {
                return Err(SpecError::at("soa-reference", "needed by soa-max-lag and soa-zone"));
            }
            return Ok(None);
        };
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
        Ok(Some(SoaLag { reference, zone, max_lag }))
    }

    fn edns_settings(&self) -> Result<Option<Edns>, SpecError> {
        let on = match self.more.edns.as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(SpecError::at("edns", format!("{other:?} is not on or off"))),
        };
        let nsid = self.more.nsid || self.more.nsid_text.is_some();
        if !on {
            let needs = [("bufsize", self.more.bufsize.is_some()), ("nsid", nsid), ("dnssec", self.more.dnssec)];
            if let Some((key, _)) = needs.iter().find(|(_, set)| *set) {
                return Err(SpecError::at(key, "needs EDNS (not with edns=off)"));
            }
            return Ok(None);
        }
        let bufsize = match &self.more.bufsize {
            None => DEFAULT_BUFSIZE,
            Some(s) => match s.parse::<u16>() {
                Ok(n) if n >= 512 => n,
                _ => return Err(SpecError::at("bufsize", format!("{s:?} is not a number from 512 to 65535"))),
            },
        };
        Ok(Some(Edns { bufsize, dnssec_ok: self.more.dnssec, nsid }))
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

fn parse_class(s: &str) -> Result<Class, String> {
    match Class::from_str(&s.to_ascii_uppercase()) {
        Ok(Class::NONE | Class::ANY) => Err(format!("{s:?} cannot be probed")),
        Ok(c) => Ok(c),
        Err(_) => Err(format!("{s:?} is not a class (IN, CH, HS)")),
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

/// The words that switch a setting on in the flag form.
const WORDS: &[&str] = &["tcp", "tls", "norecurse", "nsid", "dnssec", "ad", "aa", "insecure"];

impl FromStr for DnsProbe {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut builder = DnsBuilder::default();
        let (mut have_server, mut have_name, mut have_type) = (false, false, false);
        for word in s.split_whitespace() {
            if let Some((key, value)) = word.split_once('=') {
                builder = builder.set(key, value)?;
            } else if have_name && WORDS.contains(&word) {
                match word {
                    "tcp" => builder.tcp = true,
                    "tls" => builder.more.tls = true,
                    "norecurse" => builder.norecurse = true,
                    "nsid" => builder.more.nsid = true,
                    "dnssec" => builder.more.dnssec = true,
                    "ad" => builder.more.ad = true,
                    "aa" => builder.more.aa = true,
                    _ => builder.more.insecure = true,
                }
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
                return Err(SpecError::general(format!("{word:?}: expected {} or KEY=VALUE", WORDS.join(", "))));
            }
        }
        builder.build()
    }
}

impl fmt::Display for DnsProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !matches!(self.transport, Transport::Https(_)) {
            write!(f, "{} ", self.server)?;
        }
        write!(f, "{} {}", self.name, self.rtype)?;
        if self.class != Class::IN {
            write!(f, " class={}", self.class)?;
        }
        let tls = match &self.transport {
            Transport::Udp => None,
            Transport::Tcp => {
                f.write_str(" tcp")?;
                None
            }
            Transport::Tls(t) => {
                f.write_str(" tls")?;
                Some(t)
            }
            Transport::Https(d) => {
                write!(f, " doh={}", d.url)?;
                if d.post {
                    f.write_str(" method=post")?;
                }
                Some(&d.tls)
            }
        };
        if let Some(t) = tls {
            if let Some(n) = &t.name {
                write!(f, " tls-name={n}")?;
            }
            match &t.tls {
                Tls::Verify(None) => {}
                Tls::Verify(Some(ca)) => write!(f, " ca={}", ca.path.display())?,
                Tls::Insecure => f.write_str(" insecure")?,
            }
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
        match &self.edns {
            None => f.write_str(" edns=off")?,
            Some(e) => {
                if e.bufsize != DEFAULT_BUFSIZE {
                    write!(f, " bufsize={}", e.bufsize)?;
                }
                match &self.nsid_required {
                    Some(t) => write!(f, " nsid={}", escape(t.as_bytes()))?,
                    None if e.nsid => f.write_str(" nsid")?,
                    None => {}
                }
                if e.dnssec_ok {
                    f.write_str(" dnssec")?;
                }
            }
        }
        if self.require_ad {
            f.write_str(" ad")?;
        }
        if self.require_aa {
            f.write_str(" aa")?;
        }
        if self.nodata_down {
            f.write_str(" nodata=down")?;
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

    /// Judges a matching reply on its rcode, NSID, header bits and expected
    /// answer: the healthy outcome, or the one that ends the probe. With a
    /// deadline, a SERVFAIL may be asked again with CD set, to tell a bogus
    /// answer.
    fn judge(&self, reply: &Message<Vec<u8>>, deadline: Option<Instant>) -> Result<Outcome, Outcome> {
        let edns = wire::EdnsReply::of(reply);
        let tag = |o: Outcome| match &edns.nsid {
            Some(n) => o.with_identity(&format!("nsid={}", wire::show_nsid(n))),
            None => o,
        };
        let rcode = reply.opt_rcode();
        if rcode != self.rcode.into() {
            let dnssec = self.require_ad || self.edns.is_some_and(|e| e.dnssec_ok);
            if rcode == Rcode::SERVFAIL.into()
                && dnssec
                && let Some(why) = self.bogus(&edns, deadline)
            {
                return Err(tag(Outcome::down("dns-bogus").with_detail(why)));
            }
            let mut detail = edns.with_ede(summary(reply));
            if rcode == Rcode::FORMERR.into() && self.edns.is_some() && reply.opt().is_none() {
                // What dig then says too: an old server that rejects the OPT record.
                detail.push_str(" (no OPT record in the reply: the server may not speak EDNS; edns=off)");
            }
            // As short as a summary: one line of a log.
            let detail: String = detail.chars().take(200).collect();
            return Err(tag(Outcome::down(format!("dns-rcode {rcode}")).with_detail(detail)));
        }
        if let Some(want) = &self.nsid_required {
            match &edns.nsid {
                None => return Err(Outcome::down("dns-nsid-missing").with_detail("the reply carries no NSID")),
                Some(got) if got.as_slice() != want.as_bytes() => {
                    return Err(tag(Outcome::down("dns-nsid-mismatch").with_detail(format!(
                        "NSID {}, not {}",
                        wire::show_nsid(got),
                        escape(want.as_bytes())
                    ))));
                }
                Some(_) => {}
            }
        }
        if self.require_aa && !reply.header().aa() {
            return Err(tag(
                Outcome::down("dns-not-authoritative").with_detail(format!("AA bit not set: {}", summary(reply)))
            ));
        }
        if self.require_ad && !reply.header().ad() {
            return Err(tag(Outcome::down("dns-not-validated")
                .with_detail(format!("AD bit not set (the server did not validate): {}", summary(reply)))));
        }
        if let Some(expected) = &self.answer
            && !self.has_answer(reply, expected).map_err(tag)?
        {
            return Err(tag(Outcome::down("dns-answer-missing").with_detail(summary(reply))));
        }
        if self.nodata_down && rcode == Rcode::NOERROR.into() && !self.has_type(reply).map_err(tag)? {
            return Err(tag(Outcome::down("dns-nodata").with_detail(format!(
                "no {} record: {}",
                self.rtype,
                summary(reply)
            ))));
        }
        Ok(tag(Outcome::healthy(format!("dns-rcode {rcode}")).with_detail(summary(reply))))
    }

    /// Why a SERVFAIL is a DNSSEC validation failure, if it is: the
    /// server's extended DNS error says so, or (with time left) the same
    /// query with checking disabled gets NOERROR.
    fn bogus(&self, edns: &wire::EdnsReply, deadline: Option<Instant>) -> Option<String> {
        if let Some((code, text)) = &edns.ede
            && wire::is_dnssec_ede(*code)
        {
            return Some(format!("SERVFAIL, extended error: {text}"));
        }
        let deadline = deadline?;
        let query = Query { cd: true, ..self.query(&self.name, self.rtype, self.class, deadline) };
        let reply = self.exchange(&self.transport, self.server, query).ok()?;
        (reply.opt_rcode() == Rcode::NOERROR.into()).then(|| {
            format!(
                "SERVFAIL, but NOERROR with checking disabled (CD): the answer fails DNSSEC validation{}",
                edns.ede.as_ref().map_or(String::new(), |(_, t)| format!(" ({t})"))
            )
        })
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

    /// True if the answer section has a record of the query type (ANY: any
    /// record).
    fn has_type(&self, reply: &Message<Vec<u8>>) -> Result<bool, Outcome> {
        let bad = |e: domain::base::wire::ParseError| Outcome::down("dns-bad-reply").with_detail(e.to_string());
        for record in reply.answer().map_err(bad)? {
            let record = record.map_err(bad)?;
            if self.rtype == Rtype::ANY || record.rtype() == self.rtype {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The SOA lag check: `Some(outcome)` when it overrides a healthy
    /// result, `None` when the serials are close enough.
    fn check_soa_lag(&self, soa: &SoaLag, deadline: Instant) -> Option<Outcome> {
        let ours = match self.soa_serial(&self.transport, self.server, &soa.zone, deadline) {
            Ok(s) => s,
            Err(outcome) => return Some(outcome),
        };
        // The reference is a plain DNS server (a hidden primary, say).
        let plain = if self.transport == Transport::Tcp { Transport::Tcp } else { Transport::Udp };
        let reference = match self.soa_serial(&plain, soa.reference, &soa.zone, deadline) {
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
            Transport::Tcp => transport::exchange_tcp(self.source, server, &message, deadline),
            Transport::Udp => {
                let reply = transport::exchange_udp(self.source, server, &message, deadline)?;
                if !reply.header().tc() {
                    return Ok(reply);
                }
                transport::exchange_tcp(self.source, server, &message, deadline).map_err(|o| {
                    let size =
                        self.edns.map_or("EDNS off: 512 bytes".to_string(), |e| format!("bufsize {}", e.bufsize));
                    Outcome::down("dns-truncated")
                        .with_detail(format!("the UDP reply was truncated ({size}) and the TCP retry failed: {o}"))
                })
            }
            Transport::Tls(t) => dot::exchange(self.source, server, t, &message, deadline),
            Transport::Https(d) => doh::exchange(d, &message, deadline),
        }
    }
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
    let mut out = format!("{}", reply.opt_rcode());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_form_parses_and_round_trips() {
        let p: DnsProbe = "127.0.0.1:5353 example.com A".parse().unwrap();
        assert_eq!(p.server, "127.0.0.1:5353".parse().unwrap());
        assert_eq!((p.rtype, p.transport.clone(), p.rcode), (Rtype::A, Transport::Udp, Rcode::NOERROR));
        assert!(p.recursion_desired);
        assert_eq!(p.to_string(), "127.0.0.1:5353 example.com A");

        let p: DnsProbe = "example.com".parse().unwrap();
        assert_eq!((p.server, p.rtype), ("127.0.0.1:53".parse().unwrap(), Rtype::A));

        let s = "::1 example.com txt tcp norecurse rcode=nxdomain answer=v=spf1\\x20-all source=::1 \
                 soa-reference=[::1]:5300 soa-max-lag=7 soa-zone=com";
        let p: DnsProbe = s.parse().unwrap();
        assert_eq!((p.rtype, p.transport.clone(), p.rcode), (Rtype::TXT, Transport::Tcp, Rcode::NXDOMAIN));
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
    fn new_settings_parse_and_round_trip() {
        let p: DnsProbe = "127.0.0.1 example.com".parse().unwrap();
        assert_eq!(p.edns, Some(Edns { bufsize: DEFAULT_BUFSIZE, dnssec_ok: false, nsid: false }));
        assert_eq!(p.class, Class::IN);
        let s = "127.0.0.1:5353 example.com A bufsize=4096 nsid=site\\x20a dnssec ad aa nodata=down";
        let p: DnsProbe = s.parse().unwrap();
        assert_eq!(p.edns, Some(Edns { bufsize: 4096, dnssec_ok: true, nsid: true }));
        assert_eq!(p.nsid_required.as_deref(), Some("site a"));
        assert!(p.require_ad && p.require_aa && p.nodata_down);
        assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

        let p: DnsProbe = "127.0.0.1 id.server class=ch".parse().unwrap();
        assert_eq!((p.class, p.rtype), (Class::CH, Rtype::TXT));
        assert_eq!(p.to_string(), "127.0.0.1:53 id.server TXT class=CH");
        let p: DnsProbe = "127.0.0.1 example.com edns=off".parse().unwrap();
        assert_eq!(p.edns, None);
        assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

        let p: DnsProbe = "127.0.0.1 example.com tls tls-name=dns.example.com insecure".parse().unwrap();
        assert_eq!(p.server, "127.0.0.1:853".parse().unwrap());
        assert_eq!(p.transport, Transport::Tls(TlsTarget { name: Some("dns.example.com".into()), tls: Tls::Insecure }));
        assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

        let p: DnsProbe = "example.com AAAA doh=https://[::1]:8443/dns-query?x=1 method=POST".parse().unwrap();
        assert_eq!(p.server, "[::1]:8443".parse().unwrap());
        let Transport::Https(d) = &p.transport else { panic!("{p:?}") };
        assert!(d.post && d.url.path == "/dns-query?x=1");
        assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);
    }

    #[test]
    fn new_settings_errors_name_the_key() {
        let e = |s: &str| s.parse::<DnsProbe>().unwrap_err().to_string();
        for (spec, key) in [
            ("127.0.0.1 example.com bufsize=511", "bufsize:"),
            ("127.0.0.1 example.com bufsize=65536", "bufsize:"),
            ("127.0.0.1 example.com edns=maybe", "edns:"),
            ("127.0.0.1 example.com edns=off nsid", "nsid:"),
            ("127.0.0.1 example.com edns=off dnssec", "dnssec:"),
            ("127.0.0.1 example.com edns=off bufsize=4096", "bufsize:"),
            ("127.0.0.1 example.com nsid=", "nsid:"),
            ("127.0.0.1 example.com class=XX", "class:"),
            ("127.0.0.1 example.com class=ANY", "class:"),
            ("127.0.0.1 example.com nodata=maybe", "nodata:"),
            ("127.0.0.1 example.com tls-name=x", "tls-name:"),
            ("127.0.0.1 example.com ca=/nonexistent", "ca:"),
            ("127.0.0.1 example.com tls ca=/nonexistent", "ca:"),
            ("127.0.0.1 example.com tls tls-name=a..b", "tls-name:"),
            ("127.0.0.1 example.com insecure", "insecure:"),
            ("127.0.0.1 example.com method=post", "method:"),
            ("127.0.0.1 example.com tcp tls", "tls:"),
            ("127.0.0.1 example.com doh=https://127.0.0.1/", "server:"),
            ("example.com doh=https://dns.example.com/", "doh:"),
            ("example.com doh=https://127.0.0.1/ method=put", "method:"),
            ("example.com doh=https://127.0.0.1/ source=127.0.0.1", "source:"),
            ("example.com doh=http://127.0.0.1/ tls-name=dns.example.com", "tls-name:"),
        ] {
            assert!(e(spec).starts_with(key), "{spec}: {}", e(spec));
        }
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
