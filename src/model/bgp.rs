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

/// A standard community (RFC 1997).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN (RFC 8326): receivers lower the route's preference.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
}

/// Well-known community names that ExaBGP 4.2 and 5.0 both accept.
const WELL_KNOWN: [(&str, u32); 4] = [
    ("no-export", 0xFFFF_FF01),
    ("no-advertise", 0xFFFF_FF02),
    ("no-export-subconfed", 0xFFFF_FF03),
    ("nopeer", 0xFFFF_FF04),
];

impl FromStr for Community {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(&(_, v)) = WELL_KNOWN.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(Community(v));
        }
        let bad = || {
            format!(
                "{s:?} is not a community (ASN:VALUE with both parts 0-65535, or no-export, no-advertise, no-export-subconfed, nopeer)"
            )
        };
        let (a, v) = s.split_once(':').ok_or_else(bad)?;
        let a: u16 = a.parse().map_err(|_| bad())?;
        let v: u16 = v.parse().map_err(|_| bad())?;
        Ok(Community(u32::from(a) << 16 | u32::from(v)))
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

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a large community (ASN:DATA1:DATA2, each 0-4294967295)");
        let mut parts = s.split(':').map(|p| p.parse::<u32>().map_err(|_| bad()));
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

/// An extended community of the route-target or route-origin kind
/// (RFC 4360): `target:ASN:N`, `origin:ASN:N` or `target:IPV4:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtCommunity {
    /// `target` or `origin`.
    pub kind: ExtKind,
    /// The global administrator.
    pub admin: ExtAdmin,
    /// The local administrator.
    pub value: u32,
}

/// The sub-type of an [`ExtCommunity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtKind {
    /// Route target.
    Target,
    /// Route origin (site of origin).
    Origin,
}

/// The global administrator of an [`ExtCommunity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtAdmin {
    /// A 2-byte ASN; the value may use 4 bytes.
    As2(u16),
    /// A 4-byte ASN; the value must fit in 2 bytes.
    As4(u32),
    /// An IPv4 address; the value must fit in 2 bytes.
    Ipv4(Ipv4Addr),
}

impl FromStr for ExtCommunity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("{s:?} is not an extended community ({why}; use target:ASN:N, origin:ASN:N or target:IPV4:N)")
        };
        let (kind, rest) = s.split_once(':').ok_or_else(|| bad("no type"))?;
        let kind = match kind {
            "target" => ExtKind::Target,
            "origin" => ExtKind::Origin,
            _ => return Err(bad("unknown type")),
        };
        let (admin, value) = rest.rsplit_once(':').ok_or_else(|| bad("no value"))?;
        let value: u32 = value.parse().map_err(|_| bad("value is not a number"))?;
        let admin = if let Ok(ip) = admin.parse::<Ipv4Addr>() {
            ExtAdmin::Ipv4(ip)
        } else {
            let asn: u32 = admin.parse().map_err(|_| bad("administrator is not an ASN or IPv4 address"))?;
            match u16::try_from(asn) {
                Ok(a) => ExtAdmin::As2(a),
                Err(_) => ExtAdmin::As4(asn),
            }
        };
        if !matches!(admin, ExtAdmin::As2(_)) && value > u32::from(u16::MAX) {
            return Err(bad("value must be 0-65535 with a 4-byte ASN or an IPv4 address"));
        }
        Ok(ExtCommunity { kind, admin, value })
    }
}

impl fmt::Display for ExtCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ExtKind::Target => "target",
            ExtKind::Origin => "origin",
        };
        match self.admin {
            ExtAdmin::As2(a) => write!(f, "{kind}:{a}:{}", self.value),
            ExtAdmin::As4(a) => write!(f, "{kind}:{a}:{}", self.value),
            ExtAdmin::Ipv4(a) => write!(f, "{kind}:{a}:{}", self.value),
        }
    }
}

/// An AS path: a sequence of ASNs (no sets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath(pub Vec<u32>);

impl FromStr for AsPath {
    type Err = String;

    /// Accepts `65001 65002`, with or without brackets or commas, and an
    /// optional `AS` prefix on each number.
    fn from_str(s: &str) -> Result<Self, String> {
        let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
        inner
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(|t| {
                let n = t.strip_prefix("AS").or_else(|| t.strip_prefix("as")).unwrap_or(t);
                n.parse::<u32>().map_err(|_| format!("{t:?} in as-path {s:?} is not an AS number (0-4294967295)"))
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

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
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
        assert_eq!("4200000000:1:2".parse::<LargeCommunity>().unwrap().to_string(), "4200000000:1:2");
        assert!("1:2".parse::<LargeCommunity>().is_err());
    }

    #[test]
    fn extended_communities() {
        for ok in ["target:65000:1", "origin:65000:1", "target:198.51.100.1:5", "target:4200000000:7"] {
            assert_eq!(ok.parse::<ExtCommunity>().unwrap().to_string(), ok);
        }
        for bad in ["target:65000", "color:1:1", "target:4200000000:70000", "target:x:1"] {
            assert!(bad.parse::<ExtCommunity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn as_paths_are_always_bracketed() {
        assert_eq!("65001 65002".parse::<AsPath>().unwrap().to_string(), "[ 65001 65002 ]");
        assert_eq!("[AS65001, 65002]".parse::<AsPath>().unwrap().to_string(), "[ 65001 65002 ]");
        assert!("".parse::<AsPath>().is_err());
        assert!("65001 {65002}".parse::<AsPath>().is_err());
    }

    #[test]
    fn next_hops() {
        assert_eq!("self".parse::<NextHop>(), Ok(NextHop::Own));
        assert_eq!("2001:db8::1".parse::<NextHop>().unwrap().is_ipv6(), Some(true));
        assert!("self; x".parse::<NextHop>().is_err());
    }
}
