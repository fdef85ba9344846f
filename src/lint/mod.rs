//! The report of `exaprobe check`: for a valid [`Config`], what each service
//! sends to ExaBGP in each state, and what is probably wrong although valid.
//!
//! Per service: its prefixes, checks and timing, and the exact lines of each
//! state (rendered by [`crate::exabgp::encoder::lines`], as the engine would send
//! them). Then:
//! - warnings (the config's own, plus lints): prefixes longer than /24 (IPv4)
//!   or /48 (IPv6), which most networks filter unless a covering prefix is
//!   announced; checks aimed at an address that is not on this host (an
//!   anycast node must test itself, not a neighbour); command checks whose
//!   program does not exist;
//! - RPKI origin validation (RFC 6811) of every prefix against VRPs (the
//!   JSON export of rpki-client or Routinator), when given: an invalid prefix
//!   is an error, because most of the internet drops RPKI-invalid routes.

use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

use crate::core::fsm::Advert;
use crate::exabgp::encoder;
use crate::model::bgp::Prefix;
use crate::model::config::{Config, covers, parse_asn};
use crate::model::duration::show;
use crate::model::service::{OnFail, Service, ServiceCheck};
use crate::probe::Check;
use crate::probe::command::Program;

/// The outcome of `check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The human-readable report, ending with a summary line.
    pub text: String,
    /// How many errors it found (RPKI-invalid prefixes, a missing origin AS).
    pub errors: usize,
    /// How many warnings it found (the config's and the lints').
    pub warnings: usize,
}

/// One Validated ROA Payload: `asn` may originate `prefix` and its
/// more-specifics up to `max_length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vrp {
    /// The authorised origin AS (0: nobody, RFC 6483).
    pub asn: u32,
    /// The ROA prefix.
    pub prefix: Prefix,
    /// The longest prefix length authorised.
    pub max_length: u8,
}

impl fmt::Display for Vrp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} max {} AS{}", self.prefix, self.max_length, self.asn)
    }
}

/// A set of VRPs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vrps {
    /// The VRPs, in file order.
    pub vrps: Vec<Vrp>,
}

/// The RFC 6811 state of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validity {
    /// A VRP covers the prefix, with the route's origin and a long enough
    /// max length.
    Valid(Vrp),
    /// VRPs cover the prefix but none matches: why.
    Invalid(String),
    /// No VRP covers the prefix.
    NotFound,
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validity::Valid(v) => write!(f, "valid (VRP {v})"),
            Validity::Invalid(why) => write!(f, "INVALID: {why}"),
            Validity::NotFound => f.write_str("not-found (no VRP covers it)"),
        }
    }
}

/// The origin validation of a route (RFC 6811 §2).
pub fn validate(vrps: &Vrps, prefix: &Prefix, origin: u32) -> Validity {
    let covering: Vec<&Vrp> = vrps.vrps.iter().filter(|v| covers(&v.prefix, prefix)).collect();
    if covering.is_empty() {
        return Validity::NotFound;
    }
    // AS0 never matches (RFC 6483 §4): an AS0 VRP only makes routes invalid.
    let len = prefix.prefix_len();
    if let Some(v) = covering.iter().find(|v| v.asn == origin && v.asn != 0 && len <= v.max_length) {
        return Validity::Valid(**v);
    }
    let same_origin: Vec<String> =
        covering.iter().filter(|v| v.asn == origin && v.asn != 0).map(ToString::to_string).collect();
    if !same_origin.is_empty() {
        return Validity::Invalid(format!(
            "/{len} is longer than the max length of VRP {} for AS{origin}",
            same_origin.join(", ")
        ));
    }
    let others: Vec<String> = covering.iter().map(ToString::to_string).collect();
    Validity::Invalid(format!("AS{origin} is not an authorised origin (covering VRPs: {})", others.join(", ")))
}

/// The VRP export of rpki-client (`-j`) or Routinator (`--format json`).
/// Other keys (`metadata`, `source`, `ta`, …) are ignored: the file is not
/// ours.
#[derive(Deserialize)]
struct RawVrps {
    roas: Vec<RawRoa>,
}

#[derive(Deserialize)]
struct RawRoa {
    asn: serde_json::Value,
    prefix: String,
    #[serde(rename = "maxLength")]
    max_length: Option<u8>,
}

/// The largest VRP file read: 512 MiB, several times a full export of
/// today's RPKI (about 70 MB of JSON).
const MAX_VRPS: u64 = 512 * 1024 * 1024;

/// Reads a VRP file (a regular file of at most 512 MiB).
pub fn load_vrps(path: &Path) -> Result<Vrps, String> {
    let text =
        crate::model::file::read_text(path, MAX_VRPS).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_vrps(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the JSON of a VRP file; the error names the first bad entries.
pub fn parse_vrps(text: &str) -> Result<Vrps, String> {
    let raw: RawVrps = serde_json::from_str(text)
        .map_err(|e| format!("not a VRP export ({{\"roas\": [{{\"asn\", \"prefix\", \"maxLength\"}}]}}): {e}"))?;
    let mut vrps = Vec::with_capacity(raw.roas.len());
    let mut errors = Vec::new();
    for (i, r) in raw.roas.iter().enumerate() {
        match vrp(r) {
            Ok(v) => vrps.push(v),
            Err(e) => errors.push(format!("roas[{i}]: {e}")),
        }
    }
    if errors.is_empty() {
        return Ok(Vrps { vrps });
    }
    let more = errors.len().saturating_sub(5);
    errors.truncate(5);
    if more > 0 {
        errors.push(format!("and {more} more"));
    }
    Err(errors.join("; "))
}

fn vrp(r: &RawRoa) -> Result<Vrp, String> {
    let asn = match &r.asn {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) if matches!(s.as_str(), "AS0" | "0") => Some(0),
        serde_json::Value::String(s) => parse_asn(s).ok(),
        _ => None,
    };
    let asn = asn.ok_or_else(|| format!("{} is not an AS number", r.asn))?;
    let prefix: Prefix = r.prefix.parse()?;
    let max_length = r.max_length.unwrap_or(prefix.prefix_len());
    let full = if prefix.is_ipv6() { 128 } else { 32 };
    if max_length < prefix.prefix_len() || max_length > full {
        return Err(format!("maxLength {max_length} is not between /{} and /{full}", prefix.prefix_len()));
    }
    Ok(Vrp { asn, prefix, max_length })
}

/// True when `ip` is an address of this host. Loopback and unspecified
/// addresses always are; others when a UDP socket can be bound to them,
/// which the kernel allows only for local addresses.
pub fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The longest IPv4 and IPv6 prefixes most networks accept.
const LONGEST_V4: u8 = 24;
const LONGEST_V6: u8 = 48;

/// Validates nothing (the config already is valid): describes it, lints it
/// and, with VRPs, checks the origin of every prefix. `origin_as` overrides
/// the config's.
pub fn report(config: &Config, vrps: Option<&Vrps>, origin_as: Option<u32>) -> Report {
    let mut text = String::new();
    let mut warnings: Vec<String> = config.warnings.clone();
    let mut errors: Vec<String> = Vec::new();

    for (i, s) in config.services.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        describe(&mut text, s);
        lint(s, &mut warnings);
    }
    if config.services.is_empty() {
        text.push_str("no services: nothing is announced\n");
    }

    let origin = origin_as.or(config.origin_as);
    match (vrps, origin) {
        (None, _) => {}
        (Some(_), None) => errors.push(
            "RPKI origin validation needs the origin AS of the announcements: give --origin-as ASN or \
             \"origin_as\" in the config"
                .into(),
        ),
        (Some(vrps), Some(asn)) => {
            let _ = writeln!(text, "\nRPKI origin validation (RFC 6811), origin AS{asn}, {} VRPs:", vrps.vrps.len());
            for s in &config.services {
                for p in &s.prefixes {
                    let v = validate(vrps, p, asn);
                    let _ = writeln!(text, "  {p} ({}): {v}", s.name);
                    if let Validity::Invalid(why) = v {
                        errors.push(format!(
                            "service {:?}: {p} is RPKI-invalid ({why}); most of the internet drops it: fix the ROA \
                             or the origin AS",
                            s.name
                        ));
                    }
                }
            }
        }
    }

    if !warnings.is_empty() || !errors.is_empty() {
        text.push('\n');
    }
    for w in &warnings {
        let _ = writeln!(text, "warning: {w}");
    }
    for e in &errors {
        let _ = writeln!(text, "error: {e}");
    }
    let prefixes: usize = config.services.iter().map(|s| s.prefixes.len()).sum();
    let checks: usize = config.services.iter().map(|s| s.checks.len()).sum();
    let _ = writeln!(
        text,
        "\n{} service(s), {prefixes} prefix(es), {checks} check(s): {} error(s), {} warning(s)",
        config.services.len(),
        errors.len(),
        warnings.len()
    );
    Report { text, errors: errors.len(), warnings: warnings.len() }
}

fn describe(text: &mut String, s: &Service) {
    let t = &s.timing;
    let _ = writeln!(text, "service {:?}", s.name);
    let prefixes: Vec<String> = s.prefixes.iter().map(ToString::to_string).collect();
    let _ = writeln!(text, "  prefixes: {}", prefixes.join(" "));
    if let Some(c) = s.covering {
        let _ = writeln!(text, "  covering: {c}");
    }
    if s.checks.is_empty() {
        let _ = writeln!(text, "  checks: none (always healthy)");
    } else {
        let _ = writeln!(text, "  checks (require {}):", s.require);
        for c in &s.checks {
            let _ = writeln!(text, "    - {}", check_line(c));
        }
    }
    for f in &s.disable_files {
        let _ = writeln!(text, "  maintenance file: {}", f.display());
    }
    let _ = writeln!(
        text,
        "  timing: interval {}, fast_interval {}, timeout {}, rise {}, fall {}, reassert {}",
        show(t.interval),
        show(t.fast_interval),
        show(t.timeout),
        t.rise,
        t.fall,
        t.reassert.map_or_else(|| "never".to_string(), show),
    );
    match &s.dampening {
        None => {
            let _ = writeln!(text, "  dampening: off");
        }
        Some(d) => {
            let _ = writeln!(
                text,
                "  dampening: half_life {}, penalty {}, suppress {}, reuse {}, max_suppress {}",
                show(d.half_life),
                d.penalty,
                d.suppress,
                d.reuse,
                show(d.max_suppress)
            );
        }
    }
    for advert in [Advert::Up, Advert::Degraded, Advert::Down, Advert::Disabled, Advert::Draining] {
        if advert == Advert::Draining {
            let _ = writeln!(text, "  DRAINING (for {}, then withdrawn):", show(s.drain.stage));
        } else {
            let _ = writeln!(text, "  {advert}:");
        }
        for line in encoder::lines(s, advert) {
            let _ = writeln!(text, "    {line}");
        }
    }
}

fn check_line(c: &ServiceCheck) -> String {
    let mut extra = Vec::new();
    if let Some(t) = c.timeout {
        extra.push(format!("timeout {}", show(t)));
    }
    if let Some(r) = c.rise {
        extra.push(format!("rise {r}"));
    }
    if let Some(f) = c.fall {
        extra.push(format!("fall {f}"));
    }
    if c.on_fail == OnFail::Degrade {
        extra.push("on_fail degrade".into());
    }
    if extra.is_empty() { c.check.to_string() } else { format!("{} ({})", c.check, extra.join(", ")) }
}

fn lint(s: &Service, warnings: &mut Vec<String>) {
    for p in &s.prefixes {
        let longest = if p.is_ipv6() { LONGEST_V6 } else { LONGEST_V4 };
        if p.prefix_len() <= longest || s.covering.is_some_and(|c| covers(&c, p)) {
            continue;
        }
        let cover = IpNet::new(p.addr(), longest).map(|n| n.trunc().to_string()).unwrap_or_default();
        warnings.push(format!(
            "service {:?}: {p} is longer than /{longest}: most networks filter such prefixes unless a covering \
             prefix is announced too. If {cover} (or another covering prefix) is announced, from here or \
             elsewhere, say so with \"covering\": \"{cover}\" in the service to silence this",
            s.name
        ));
    }
    for c in &s.checks {
        for (ip, what) in targets(&c.check) {
            if !is_local(ip) {
                warnings.push(format!(
                    "service {:?}: check {}: {what} {ip} is not an address of this host: the check tests another \
                     machine, so this node would announce its prefixes while that machine is healthy",
                    s.name, c.check
                ));
            }
        }
        if let Check::Command(p) = &c.check
            && let Program::Argv(argv) = &p.program
            && argv[0].starts_with('/')
            && !Path::new(&argv[0]).is_file()
        {
            warnings.push(format!("service {:?}: check {}: {} does not exist here", s.name, c.check, argv[0]));
        }
    }
}

/// The addresses a check talks to (or, for a DNS source, from).
fn targets(check: &Check) -> Vec<(IpAddr, &'static str)> {
    match check {
        Check::Tcp(p) => vec![(p.address.ip(), "the address")],
        Check::Http(p) => vec![(p.url.address.ip(), "the URL's address")],
        Check::Dns(p) => {
            let mut v = vec![(p.server.ip(), "the server")];
            v.extend(p.source.map(|s| (s, "the source address")));
            v
        }
        Check::Ntp(p) => vec![(p.server.ip(), "the server")],
        Check::Command(_) => vec![],
    }
}
