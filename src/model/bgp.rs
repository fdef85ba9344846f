//! Validated BGP values: everything a user types that ends up in an ExaBGP
//! command line goes through one of these types.
//!
//! Each type parses strictly (`FromStr`) and renders canonically
//! (`Display`), so what reaches stdout is always re-rendered from numbers and
//! addresses, never copied from input: a newline or `;` in a community string
//! cannot inject a second command.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// An IP prefix whose host bits are zero (`198.51.100.0/24`, `2001:db8::1/128`).
///
/// An address without a length is a host route (`/32` or `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(IpNet);

impl Prefix {
    /// True for IPv6 prefixes.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.0, IpNet::V6(_))
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    /// The underlying network.
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// The host routes inside this prefix (the bundled healthcheck's
    /// `--deaggregate-networks`), or `None` when there are more than `max`.
    pub fn hosts(&self, max: usize) -> Option<Vec<Prefix>> {
        let host_bits = u32::from(self.0.max_prefix_len() - self.0.prefix_len());
        if host_bits >= usize::BITS || (1usize << host_bits) > max {
            return None;
        }
        let full = self.0.max_prefix_len();
        let out = match self.0 {
            IpNet::V4(n) => n.hosts().map(|a| IpNet::new(IpAddr::V4(a), full)).collect::<Result<Vec<_>, _>>(),
            IpNet::V6(n) => n.hosts().map(|a| IpNet::new(IpAddr::V6(a), full)).collect::<Result<Vec<_>, _>>(),
        };
        out.ok().map(|v| v.into_iter().map(Prefix).collect())
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let net = if s.contains('/') {
            s.parse::<IpNet>().map_err(|_| format!("{s:?} is not an IP prefix (like 198.51.100.1/32)"))?
        } else {
            let addr: IpAddr = s.parse().map_err(|_| format!("{s:?} is not an IP prefix (like 198.51.100.1/32)"))?;
            IpNet::from(addr)
        };
        if net.trunc() != net {
            return Err(format!("{s:?} has host bits set: did you mean {}?", net.trunc()));
        }
        // ::ffff:198.51.100.1/128 is 198.51.100.1/32 in disguise: announced as
        // IPv6 it reaches no IPv4 router, and it would dodge the check that a
        // prefix belongs to one service.
        if let IpNet::V6(v6) = net
            && v6.prefix_len() >= 96
            && let Some(v4) = v6.addr().to_ipv4_mapped()
        {
            let v4 =
                IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).map_or_else(|_| v4.to_string(), |n| n.to_string());
            return Err(format!("{s:?} is an IPv4-mapped IPv6 prefix: write the IPv4 prefix {v4}"));
        }
        Ok(Prefix(net))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The next hop of an announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// `self`: the BGP session's local address. Only valid when the route and
    /// the session have the same address family.
    Own,
    /// An explicit address.
    Addr(IpAddr),
}

impl NextHop {
    /// True when this next hop can carry a route of the given family
    /// regardless of the session (`self` is judged by ExaBGP, not here).
    pub fn is_ipv6(&self) -> Option<bool> {
        match self {
            NextHop::Own => None,
            NextHop::Addr(a) => Some(a.is_ipv6()),
        }
    }
}

impl FromStr for NextHop {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "self" {
            return Ok(NextHop::Own);
        }
        s.parse().map(NextHop::Addr).map_err(|_| format!("{s:?} is not an IP address or `self`"))
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Own => f.write_str("self"),
            NextHop::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// Digits only: Rust's integer parsers also take a leading `+`, ExaBGP's
/// `isdigit()` does not, and a form ExaBGP refuses should not look accepted.
fn digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `0x` followed by 1 to `max` hexadecimal digits.
fn hex(s: &str, max: usize) -> Option<u128> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.is_empty() || h.len() > max || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(h, 16).ok()
}

/// A standard community (RFC 1997).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN (RFC 8326): receivers lower the route's preference.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
}

/// Well-known community names that ExaBGP 4.2 and 5.0 both accept; the
/// first name of each value is the one rendered.
const WELL_KNOWN: [(&str, u32); 5] = [
    ("no-export", 0xFFFF_FF01),
    ("no-advertise", 0xFFFF_FF02),
    ("no-export-subconfed", 0xFFFF_FF03),
    ("nopeer", 0xFFFF_FF04),
    ("blackhole", 0xFFFF_029A),
];

/// Other spellings ExaBGP takes: `no-peer` (both versions), `no_export` and
/// `no_advertise` (5.0 only; exaprobe renders the name both accept).
const ALIASES: [(&str, u32); 3] = [("no-peer", 0xFFFF_FF04), ("no_export", 0xFFFF_FF01), ("no_advertise", 0xFFFF_FF02)];

impl FromStr for Community {
    type Err = String;

    /// `ASN:VALUE` (each 0-65535), a well-known name, a 32-bit number in
    /// decimal or `0x` hexadecimal: the forms of ExaBGP's `_community`.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(&(_, v)) = WELL_KNOWN.iter().chain(&ALIASES).find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(Community(v));
        }
        let bad = || {
            format!(
                "{s:?} is not a community (ASN:VALUE with both parts 0-65535, a 32-bit number like 4294967041 or \
                 0xFFFFFF01, or no-export, no-advertise, no-export-subconfed, nopeer, no-peer, blackhole)"
            )
        };
        if let Some((a, v)) = s.split_once(':') {
            let a: u16 = digits(a).ok_or_else(bad)?;
            let v: u16 = digits(v).ok_or_else(bad)?;
            return Ok(Community(u32::from(a) << 16 | u32::from(v)));
        }
        let n = hex(s, 32).or_else(|| digits(s)).ok_or_else(bad)?;
        u32::try_from(n).map(Community).map_err(|_| bad())
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match WELL_KNOWN.iter().find(|&&(_, v)| v == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}:{}", self.0 >> 16, self.0 & 0xFFFF),
        }
    }
}

/// A large community (RFC 8092): `ASN:DATA1:DATA2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl FromStr for LargeCommunity {
    type Err = String;

    /// `ASN:DATA1:DATA2` (each 0-4294967295) or the whole 96-bit value as one
    /// decimal number, as ExaBGP's `_large_community` takes them. Its `0x`
    /// branch calls `int()` without a base, so both versions refuse hex, and
    /// so does exaprobe.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not a large community (ASN:DATA1:DATA2, each 0-4294967295, or one decimal number below 2^96)"
            )
        };
        if !s.contains(':') {
            let n: u128 = digits(s).filter(|&n: &u128| n >> 96 == 0).ok_or_else(bad)?;
            // Truncation is the point: each part is one 32-bit word of n.
            let word = |shift: u32| (n >> shift) as u32;
            return Ok(LargeCommunity(word(64), word(32), word(0)));
        }
        let mut parts = s.split(':').map(|p| digits::<u32>(p).ok_or_else(bad));
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c), None) => Ok(LargeCommunity(a?, b?, c?)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

/// An extended community (RFC 4360), in the forms ExaBGP's
/// `_extended_community` parses.
///
/// Rendering sends the same eight bytes through 4.2 and 5.0. They encode
/// `target:`/`origin:` with a 2-byte ASN alike, but not the rest: 4.2 sends
/// `target:192.0.2.1:5` as a 2-byte-ASN community (type 0x00) and 5.0 sends
/// `target:4200000000:7` and `target:65000L:7` as IPv4-address ones (type
/// 0x01). So those, and every kind without a named form both encode alike,
/// render as the `0x` + 16 hex digits form, which both unpack verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtCommunity {
    /// Route target or route origin: `target:ASN:N`, `origin:IPV4:N`, …
    Route {
        /// `target` or `origin`.
        kind: ExtKind,
        /// The global administrator.
        admin: ExtAdmin,
        /// The local administrator (0-65535 unless the administrator is a
        /// 2-byte ASN).
        value: u32,
    },
    /// Flow-spec redirect to a VRF (RFC 5575): `redirect:ASN:N`.
    Redirect {
        /// The 2-byte ASN.
        asn: u16,
        /// The 4-byte value.
        value: u32,
    },
    /// ExaBGP's `redirect-to-nexthop` (type 0x08, sub-type 0x00).
    RedirectToNextHop,
    /// Any other community, as its eight bytes (`0x…`, `l2info:…`,
    /// `bandwidth:…`).
    Raw([u8; 8]),
}

/// The sub-type of a route [`ExtCommunity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtKind {
    /// Route target (sub-type 0x02).
    Target,
    /// Route origin, site of origin (sub-type 0x03).
    Origin,
}

/// The global administrator of a route [`ExtCommunity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtAdmin {
    /// A 2-byte ASN (type 0x00); the value may use 4 bytes.
    As2(u16),
    /// A 4-byte ASN (type 0x02, RFC 5668); the value must fit in 2 bytes.
    As4(u32),
    /// An IPv4 address (type 0x01); the value must fit in 2 bytes.
    Ipv4(Ipv4Addr),
}

impl ExtCommunity {
    /// The eight bytes on the wire.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        match self {
            ExtCommunity::Route { kind, admin, value } => {
                b[1] = match kind {
                    ExtKind::Target => 0x02,
                    ExtKind::Origin => 0x03,
                };
                // The value is at most 16 bits for As4 and Ipv4 (checked by
                // every constructor in this file), so the casts keep it whole.
                match admin {
                    ExtAdmin::As2(a) => {
                        b[2..4].copy_from_slice(&a.to_be_bytes());
                        b[4..8].copy_from_slice(&value.to_be_bytes());
                    }
                    ExtAdmin::Ipv4(ip) => {
                        b[0] = 0x01;
                        b[2..6].copy_from_slice(&ip.octets());
                        b[6..8].copy_from_slice(&(value as u16).to_be_bytes());
                    }
                    ExtAdmin::As4(a) => {
                        b[0] = 0x02;
                        b[2..6].copy_from_slice(&a.to_be_bytes());
                        b[6..8].copy_from_slice(&(value as u16).to_be_bytes());
                    }
                }
            }
            ExtCommunity::Redirect { asn, value } => {
                b[0] = 0x80;
                b[1] = 0x08;
                b[2..4].copy_from_slice(&asn.to_be_bytes());
                b[4..8].copy_from_slice(&value.to_be_bytes());
            }
            ExtCommunity::RedirectToNextHop => b[0] = 0x08,
            ExtCommunity::Raw(raw) => b = raw,
        }
        b
    }

    /// The community these bytes encode, in its most specific variant (so a
    /// `0x` form of a route target renders as `target:…` when it can).
    pub fn from_bytes(b: [u8; 8]) -> Self {
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let kind = match b[1] {
            0x02 => Some(ExtKind::Target),
            0x03 => Some(ExtKind::Origin),
            _ => None,
        };
        match (b[0], kind) {
            (0x00, Some(kind)) => ExtCommunity::Route { kind, admin: ExtAdmin::As2(u16_at(2)), value: u32_at(4) },
            (0x01, Some(kind)) => ExtCommunity::Route {
                kind,
                admin: ExtAdmin::Ipv4(Ipv4Addr::from(u32_at(2))),
                value: u32::from(u16_at(6)),
            },
            (0x02, Some(kind)) => {
                ExtCommunity::Route { kind, admin: ExtAdmin::As4(u32_at(2)), value: u32::from(u16_at(6)) }
            }
            (0x80, _) if b[1] == 0x08 => ExtCommunity::Redirect { asn: u16_at(2), value: u32_at(4) },
            (0x08, _) if b[1..] == [0; 7] => ExtCommunity::RedirectToNextHop,
            _ => ExtCommunity::Raw(b),
        }
    }
}

/// One number of an extended community: decimal, or with ExaBGP's `L`
/// suffix (which both versions strip; on a global administrator it asks for
/// a 4-byte ASN). Returns the number and whether the suffix was there.
fn ext_number(s: &str) -> Option<(u64, bool)> {
    match s.strip_suffix('L').or_else(|| s.strip_suffix('l')) {
        Some(n) => digits(n).map(|n| (n, true)),
        None => digits(s).map(|n| (n, false)),
    }
}

impl FromStr for ExtCommunity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "{s:?} is not an extended community ({why}; use target:ASN:N, origin:ASN:N, target:IPV4:N, \
                 ASN:N, ASN4L:N, redirect:ASN:N, redirect-to-nexthop, l2info:ENCAPS:CONTROL:MTU:SITE, \
                 bandwidth:ASN:BYTES_PER_SECOND or 0x and 16 hex digits)"
            )
        };
        if !s.contains(':') {
            if s.eq_ignore_ascii_case("redirect-to-nexthop") {
                return Ok(ExtCommunity::RedirectToNextHop);
            }
            // ExaBGP takes any even number of hex digits and lets the BGP
            // encoder deal with the length; only exactly eight bytes is a
            // community.
            let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).map(str::len);
            if digits != Some(16) {
                return Err(bad("not a known form"));
            }
            let n = hex(s, 16).ok_or_else(|| bad("not hexadecimal"))?;
            return Ok(ExtCommunity::from_bytes((n as u64).to_be_bytes()));
        }
        let parts: Vec<&str> = s.split(':').collect();
        let (kind, fields) = match parts.as_slice() {
            [_, _] => ("target", &parts[..]),
            [kind, rest @ ..] => (*kind, rest),
            [] => return Err(bad("empty")),
        };
        let number = |f: &str, max: u64, what: &str| {
            ext_number(f)
                .filter(|&(n, _)| n <= max)
                .map(|(n, l)| (n as u32, l))
                .ok_or_else(|| bad(&format!("{what} {f:?} is not a number 0-{max}")))
        };
        let two = |fields: &[&str]| match fields {
            [a, b] => Ok((a.to_string(), b.to_string())),
            _ => Err(bad(&format!("{kind} takes two fields"))),
        };
        let u16_max = u64::from(u16::MAX);
        let u32_max = u64::from(u32::MAX);
        let route = |kind: ExtKind, four: bool| -> Result<ExtCommunity, String> {
            let (ga, la) = two(fields)?;
            // `ASN:IPV4`: both versions pack the address as a 32-bit value.
            if let Ok(ip) = la.parse::<Ipv4Addr>() {
                let (a, _) = number(&ga, u16_max, "the ASN")?;
                return Ok(ExtCommunity::Route { kind, admin: ExtAdmin::As2(a as u16), value: u32::from(ip) });
            }
            let admin = if let Ok(ip) = ga.parse::<Ipv4Addr>() {
                ExtAdmin::Ipv4(ip)
            } else {
                let (a, long) = number(&ga, u32_max, "the administrator")?;
                match u16::try_from(a) {
                    Ok(a) if !long && !four => ExtAdmin::As2(a),
                    _ => ExtAdmin::As4(a),
                }
            };
            let max = if matches!(admin, ExtAdmin::As2(_)) { u32_max } else { u16_max };
            let (value, _) = number(&la, max, "the value (with a 4-byte ASN or an IPv4 address)")?;
            Ok(ExtCommunity::Route { kind, admin, value })
        };
        match kind {
            "target" => route(ExtKind::Target, false),
            "origin" => route(ExtKind::Origin, false),
            // 4.2 reads these as a 4-byte ASN (type 0x02), 5.0 as an IPv4
            // address (type 0x01); exaprobe takes the meaning of the name
            // and of 4.2, and renders bytes both send alike.
            "target4" => route(ExtKind::Target, true),
            "origin4" => route(ExtKind::Origin, true),
            "redirect" => {
                let (a, v) = two(fields)?;
                let (asn, _) = number(&a, u16_max, "the ASN")?;
                let (value, _) = number(&v, u32_max, "the value")?;
                Ok(ExtCommunity::Redirect { asn: asn as u16, value })
            }
            "bandwidth" => {
                let (a, v) = two(fields)?;
                let (asn, _) = number(&a, u16_max, "the ASN")?;
                let (rate, _) = number(&v, u32_max, "the bandwidth")?;
                let mut b = [0x40, 0x04, 0, 0, 0, 0, 0, 0];
                b[2..4].copy_from_slice(&(asn as u16).to_be_bytes());
                // Both versions pack the rate as an IEEE float, rounding
                // large rates the same way.
                b[4..8].copy_from_slice(&(rate as f32).to_be_bytes());
                Ok(ExtCommunity::Raw(b))
            }
            "l2info" => match fields {
                [e, c, m, site] => {
                    let (e, _) = number(e, 255, "the encapsulation")?;
                    let (c, _) = number(c, 255, "the control flags")?;
                    let (m, _) = number(m, u16_max, "the MTU")?;
                    let (site, _) = number(site, u16_max, "the site")?;
                    let mut b = [0x80, 0x0A, e as u8, c as u8, 0, 0, 0, 0];
                    b[4..6].copy_from_slice(&(m as u16).to_be_bytes());
                    b[6..8].copy_from_slice(&(site as u16).to_be_bytes());
                    Ok(ExtCommunity::Raw(b))
                }
                _ => Err(bad("l2info takes four fields")),
            },
            "mup" => Err(bad("mup is ExaBGP 5.0 only")),
            _ => Err(bad("unknown type")),
        }
    }
}

impl fmt::Display for ExtCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExtCommunity::Route { kind, admin: ExtAdmin::As2(a), value } => {
                let kind = match kind {
                    ExtKind::Target => "target",
                    ExtKind::Origin => "origin",
                };
                write!(f, "{kind}:{a}:{value}")
            }
            ExtCommunity::Redirect { asn, value } => write!(f, "redirect:{asn}:{value}"),
            ExtCommunity::RedirectToNextHop => f.write_str("redirect-to-nexthop"),
            other => write!(f, "0x{:016x}", u64::from_be_bytes(other.to_bytes())),
        }
    }
}

/// An AS path: a sequence of ASNs (no sets).
///
/// AS_SETs are refused: 4.2 reads a set only inside the brackets
/// (`[ 1 ( 2 3 ) ]`) and 5.0 only after them (`[ 1 ] ( 2 3 )`), so no line
/// carries one through both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath(pub Vec<u32>);

/// An ASN as plain (`4200000000`) or dotted (`64086.59904`, RFC 5396)
/// decimal, with an optional `AS` prefix.
fn asn(t: &str) -> Option<u32> {
    let n = t.strip_prefix("AS").or_else(|| t.strip_prefix("as")).unwrap_or(t);
    match n.split_once('.') {
        Some((hi, lo)) => Some(u32::from(digits::<u16>(hi)?) << 16 | u32::from(digits::<u16>(lo)?)),
        None => digits(n),
    }
}

impl FromStr for AsPath {
    type Err = String;

    /// Accepts `65001 65002`, with or without brackets or commas, an
    /// optional `AS` prefix on each number, and asdot (`1.10`, which 5.0
    /// takes and 4.2 does not; rendered as plain decimal for both).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains(['(', ')', '{', '}']) {
            return Err(format!(
                "as-path {s:?} has an AS_SET or confederation segment: ExaBGP 4.2 and 5.0 share no syntax for \
                 one, so exaprobe takes an AS_SEQUENCE only"
            ));
        }
        let t = s.trim();
        let inner = match (t.strip_prefix('['), t.ends_with(']')) {
            (Some(r), true) => &r[..r.len() - 1],
            (None, false) => t,
            _ => return Err(format!("as-path {s:?} has an unmatched bracket")),
        };
        inner
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(|t| {
                asn(t).ok_or_else(|| {
                    format!("{t:?} in as-path {s:?} is not an AS number (0-4294967295, or asdot like 1.10)")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|v| if v.is_empty() { Err(format!("as-path {s:?} is empty")) } else { Ok(AsPath(v)) })
    }
}

impl fmt::Display for AsPath {
    /// Always bracketed: ExaBGP 5.0 rejects an unbracketed `as-path 65010`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for asn in &self.0 {
            write!(f, " {asn}")?;
        }
        f.write_str(" ]")
    }
}

/// The ORIGIN attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// `igp`
    Igp,
    /// `egp`
    Egp,
    /// `incomplete`
    Incomplete,
}

impl FromStr for Origin {
    type Err = String;

    /// Any case, as both versions lower-case the word first.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "igp" => Ok(Origin::Igp),
            "egp" => Ok(Origin::Egp),
            "incomplete" => Ok(Origin::Incomplete),
            _ => Err(format!("{s:?} is not an origin (igp, egp or incomplete)")),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        })
    }
}

/// An ADD-PATH path identifier (RFC 7911), written as a number or, as
/// ExaBGP also takes it, a dotted quad (`0.0.0.7`). Rendered as the number,
/// which both versions take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathId(pub u32);

impl FromStr for PathId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        digits(s)
            .or_else(|| s.parse::<Ipv4Addr>().ok().map(u32::from))
            .map(PathId)
            .ok_or_else(|| format!("{s:?} is not a path id (0-4294967295 or a dotted quad like 0.0.0.7)"))
    }
}

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Parses a whitespace-separated list (`"65000:1 65000:2"`), the form the
/// bundled healthcheck takes for its community flags. Brackets are allowed.
pub fn parse_list<T: FromStr<Err = String>>(s: &str) -> Result<Vec<T>, String> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    inner.split(|c: char| c.is_ascii_whitespace() || c == ',').filter(|t| !t.is_empty()).map(str::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_reject_host_bits_and_render_canonically() {
        assert_eq!("198.51.100.0/24".parse::<Prefix>().unwrap().to_string(), "198.51.100.0/24");
        assert_eq!("198.51.100.7".parse::<Prefix>().unwrap().to_string(), "198.51.100.7/32");
        assert_eq!("2001:DB8::1".parse::<Prefix>().unwrap().to_string(), "2001:db8::1/128");
        let e = "::ffff:198.51.100.1/128".parse::<Prefix>().unwrap_err();
        assert!(e.contains("IPv4-mapped") && e.contains("198.51.100.1/32"), "{e}");
        let e = "::ffff:198.51.100.0/120".parse::<Prefix>().unwrap_err();
        assert!(e.contains("198.51.100.0/24"), "{e}");
        assert!("::/0".parse::<Prefix>().is_ok() && "64:ff9b::/96".parse::<Prefix>().is_ok());
        let e = "198.51.100.1/24".parse::<Prefix>().unwrap_err();
        assert!(e.contains("host bits") && e.contains("198.51.100.0/24"), "{e}");
        assert!("198.51.100.0/33".parse::<Prefix>().is_err());
        assert!("198.51.100.0/24\nannounce".parse::<Prefix>().is_err());
    }

    #[test]
    fn deaggregation_is_bounded() {
        let p: Prefix = "198.51.100.0/30".parse().unwrap();
        let hosts: Vec<String> = p.hosts(256).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["198.51.100.1/32", "198.51.100.2/32"]);
        assert!("2001:db8::/64".parse::<Prefix>().unwrap().hosts(256).is_none());
    }

    #[test]
    fn communities_round_trip_and_reject_junk() {
        assert_eq!("65000:100".parse::<Community>().unwrap().to_string(), "65000:100");
        assert_eq!("NO-EXPORT".parse::<Community>().unwrap().to_string(), "no-export");
        assert_eq!("65535:65281".parse::<Community>().unwrap().to_string(), "no-export");
        assert!("65536:1".parse::<Community>().is_err());
        assert!("65000:1\nwithdraw route 198.51.100.0/24".parse::<Community>().is_err());
        assert_eq!(parse_list::<Community>("65000:1 65000:2").unwrap().len(), 2);
        assert!(parse_list::<Community>("65000:1 ; shutdown").is_err());
    }

    #[test]
    fn every_standard_community_form_exabgp_takes() {
        for (form, canonical) in [
            ("blackhole", "blackhole"),
            ("BlackHole", "blackhole"),
            ("65535:666", "blackhole"),
            ("no-peer", "nopeer"),
            ("nopeer", "nopeer"),
            ("no_export", "no-export"),
            ("no_advertise", "no-advertise"),
            ("no-export-subconfed", "no-export-subconfed"),
            ("0xFDE80064", "65000:100"),
            ("0x1", "0:1"),
            ("0x0000000001", "0:1"),
            ("4259840100", "65000:100"),
            ("4294967041", "no-export"),
            ("0", "0:0"),
        ] {
            assert_eq!(form.parse::<Community>().map(|c| c.to_string()).as_deref(), Ok(canonical), "{form}");
        }
        for bad in ["4294967296", "0x100000000", "0x", "+1:2", "1:-2", "-1", "1:2:3", "no-exports", " 1:2"] {
            assert!(bad.parse::<Community>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_large_community_form_exabgp_takes() {
        assert_eq!("4200000000:1:2".parse::<LargeCommunity>().unwrap().to_string(), "4200000000:1:2");
        let whole = (65000u128 << 64) | (1 << 32) | 2;
        assert_eq!(whole.to_string().parse::<LargeCommunity>(), Ok(LargeCommunity(65000, 1, 2)));
        assert_eq!("7".parse::<LargeCommunity>(), Ok(LargeCommunity(0, 0, 7)));
        let max = ((1u128 << 96) - 1).to_string();
        assert_eq!(max.parse::<LargeCommunity>(), Ok(LargeCommunity(u32::MAX, u32::MAX, u32::MAX)));
        let over = (1u128 << 96).to_string();
        for bad in ["1:2", "1:2:3:4", "4294967296:1:1", "0x10", "+1:2:3", over.as_str()] {
            assert!(bad.parse::<LargeCommunity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_extended_community_form_exabgp_takes() {
        for (form, canonical) in [
            ("target:65000:1", "target:65000:1"),
            ("origin:65000:1", "origin:65000:1"),
            ("65000:1", "target:65000:1"),
            ("target:65000:4294967295", "target:65000:4294967295"),
            ("target:65000:1L", "target:65000:1"),
            ("target:65000:198.51.100.1", "target:65000:3325256705"),
            ("0x0002fde800000001", "target:65000:1"),
            ("0X0003FDE800000001", "origin:65000:1"),
            ("redirect:65000:10", "redirect:65000:10"),
            ("0x8008fde80000000a", "redirect:65000:10"),
            ("redirect-to-nexthop", "redirect-to-nexthop"),
            // 4-byte ASN (type 0x02), IPv4 (type 0x01): hex, see the type's doc.
            ("target:4200000000:7", "0x0202fa56ea000007"),
            ("origin:4200000000:7", "0x0203fa56ea000007"),
            ("target:65000L:7", "0x02020000fde80007"),
            ("target:65000l:7", "0x02020000fde80007"),
            ("target4:65000:7", "0x02020000fde80007"),
            ("origin4:4200000000:7", "0x0203fa56ea000007"),
            ("target:198.51.100.1:5", "0x0102c63364010005"),
            ("origin:198.51.100.1:5", "0x0103c63364010005"),
            ("l2info:19:0:1500:111", "0x800a130005dc006f"),
            ("bandwidth:65000:125000000", "0x4004fde84cee6b28"),
            ("0x030c000000000000", "0x030c000000000000"),
        ] {
            let parsed = form.parse::<ExtCommunity>().map_err(|e| format!("{form}: {e}")).unwrap();
            assert_eq!(parsed.to_string(), canonical, "{form}");
            assert_eq!(canonical.parse::<ExtCommunity>(), Ok(parsed), "{canonical} reads back");
            assert_eq!(ExtCommunity::from_bytes(parsed.to_bytes()), parsed, "{form}: bytes round trip");
        }
        for bad in [
            "target:65000",
            "color:1:1",
            "mup:1:1",
            "target:4200000000:70000",
            "target:198.51.100.1:70000",
            "target:x:1",
            "target:65536:198.51.100.1",
            "redirect:70000:1",
            "l2info:256:0:0:0",
            "0x0002fde8",
            "0x0002fde80000000101",
            "0x0002fde80000000g",
            "target:+1:1",
            "",
        ] {
            assert!(bad.parse::<ExtCommunity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn as_paths_are_always_bracketed() {
        assert_eq!("65001 65002".parse::<AsPath>().unwrap().to_string(), "[ 65001 65002 ]");
        assert_eq!("[AS65001, 65002]".parse::<AsPath>().unwrap().to_string(), "[ 65001 65002 ]");
        assert_eq!("[ 1.10 65002 ]".parse::<AsPath>().unwrap().to_string(), "[ 65546 65002 ]");
        assert_eq!("4294967295".parse::<AsPath>().unwrap().to_string(), "[ 4294967295 ]");
        assert!("".parse::<AsPath>().is_err());
        assert!("[ ]".parse::<AsPath>().is_err());
        assert!("65001 {65002}".parse::<AsPath>().is_err());
        let e = "[ 65001 ( 65002 65003 ) ]".parse::<AsPath>().unwrap_err();
        assert!(e.contains("AS_SET"), "{e}");
        assert!("[ 65001 ] ( 65002 )".parse::<AsPath>().is_err());
        for bad in ["1.65536", "1.2.3", "4294967296", "+1", "[ 1 ] [ 2 ]", "[ 1", "1 ]", "[]"] {
            assert!(bad.parse::<AsPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_take_any_case_and_path_ids_a_dotted_quad() {
        assert_eq!("IGP".parse::<Origin>(), Ok(Origin::Igp));
        assert_eq!("Incomplete".parse::<Origin>().unwrap().to_string(), "incomplete");
        assert!("igp;".parse::<Origin>().is_err());
        assert_eq!("7".parse::<PathId>(), Ok(PathId(7)));
        assert_eq!("0.0.1.2".parse::<PathId>().unwrap().to_string(), "258");
        assert!("4294967296".parse::<PathId>().is_err() && "-1".parse::<PathId>().is_err());
    }

    #[test]
    fn next_hops() {
        assert_eq!("self".parse::<NextHop>(), Ok(NextHop::Own));
        assert_eq!("2001:db8::1".parse::<NextHop>().unwrap().is_ipv6(), Some(true));
        assert!("self; x".parse::<NextHop>().is_err());
    }
}
