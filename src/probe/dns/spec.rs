//! The DNS probe's raw form and flag form: the builder and its checks
//! (server, transport, EDNS, SOA lag, DoT/DoH targets), the `--dns` words'
//! parser, and the `Display` that writes a probe back as those words.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use domain::base::iana::{Class, Rcode};
use domain::base::{Name, Rtype};

use super::{DEFAULT_BUFSIZE, DNS_PORT, DOT_PORT, DnsProbe, DohTarget, Edns, Expected, SoaLag, TlsTarget, Transport};
use crate::probe::SpecError;
use crate::probe::http::{CaBundle, HttpUrl, Scheme, Tls};
use crate::probe::ntp::server_addr;
use crate::probe::tcp::{escape, unescape};

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
