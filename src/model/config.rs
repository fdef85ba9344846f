//! The JSON config file of a multi-service exaprobe (`--config FILE`): its
//! schema, and its conversion into validated [`Service`]s. Every error is
//! reported at once, each at its JSON path (`services[2].checks[0].timeout`)
//! and, where the JSON parser can tell, with its line and column.
//!
//! How: the file is read into raw serde structs with
//! `deny_unknown_fields` (so a misspelt key is an error, not a silently
//! ignored setting), then converted field by field into the validated types
//! of [`crate::model::bgp`], [`crate::probe`] and [`crate::model::service`], collecting
//! errors instead of stopping at the first. Each service and each check is
//! deserialized on its own, from its own slice of the file, so a bad key in
//! one does not hide the errors in the others.
//!
//! # Schema
//!
//! ```json
//! {
//!   "_comment": "ignored: JSON has no comments, so every object that can be commented takes this key",
//!   "origin_as": "AS64500",
//!   "workers": 8,
//!   "control": {"socket": "/run/exaprobe/exaprobe.sock", "mode": "0660", "group": "exaprobe",
//!               "state_file": "/var/lib/exaprobe/state.json"},
//!   "metrics": {"listen": "127.0.0.1:9180", "textfile": "/var/lib/node_exporter/exaprobe.prom"},
//!   "defaults": {"interval": "2s", "rise": 2, "attributes": {"communities": ["64500:100"]}},
//!   "services": [
//!     {
//!       "name": "dns",
//!       "prefixes": ["198.51.100.53/32", "2001:db8:53::/48"],
//!       "next_hop6": "2001:db8:ffff::1",
//!       "covering": "198.51.100.0/24",
//!       "checks": [
//!         {"type": "dns", "server": "127.0.0.1:53", "query": "example.com", "qtype": "A"},
//!         {"type": "tcp", "address": "127.0.0.1:53", "timeout": "500ms", "on_fail": "degrade"},
//!         {"type": "file", "path": "/etc/exaprobe/maintenance/dns"}
//!       ],
//!       "degraded": {"as_path": "64500 64500 64500"},
//!       "on_down": "withdraw"
//!     }
//!   ]
//! }
//! ```
//!
//! Top level: `services` (required, may be empty), `defaults`, `origin_as`
//! (a number or `"AS64500"`), `control`, `metrics`, `workers` (1–256, default
//! the number of checks, at most 32), `_comment`.
//!
//! `defaults` takes any service key except `name` and `prefixes`; each
//! service's own keys win. `attributes` and `degraded` are merged key by key
//! (a service that sets only `attributes.med` keeps the default communities);
//! every other key, `checks` included, is taken whole.
//!
//! Service keys, with their defaults in the config file:
//! - `name` (required): 1–64 of `A-Z a-z 0-9 _ . -`, unique;
//! - `prefixes` (required, non-empty): IPv4 and IPv6, host bits zero, each in
//!   one service only;
//! - `checks` (`[]`: always healthy, with a warning); `require`: `"all"`
//!   (default), `"any"` or a number of checks;
//! - `interval` (5s), `fast_interval` (1s, at most `interval`), `timeout`
//!   (2s, or half the interval when that is 2s or less; always below the
//!   interval), `rise` (3), `fall` (3), `reassert` (5m; 0 never);
//! - `next_hop` (`"self"`), `next_hop6` (IPv6 or `"self"`), `neighbors` (IP
//!   list; empty: every neighbor that lists the process). IPv6 prefixes need
//!   `next_hop6` or an IPv6 `next_hop`;
//! - `attributes`: `med` (100), `local_preference`, `communities`,
//!   `large_communities`, `extended_communities` (lists of strings),
//!   `as_path` (a list of numbers or a string `"64500 64500"`), `origin`
//!   (`igp`, `egp`, `incomplete`), `path_id` (ADD-PATH id);
//! - `med_increase` (0): added to the MED of each further prefix;
//! - `degraded`: attributes overriding `attributes` while DEGRADED (default:
//!   MED + 100). Lists replace, they do not add;
//! - `on_down`, `disabled`: `"withdraw"` (default) or `{"announce": {…}}`
//!   whose attributes override `attributes`;
//! - `disable_file`: a maintenance file (as a check of type `file`);
//! - `covering`: a prefix announced elsewhere that covers some of the
//!   service's prefixes, which silences `check`'s long-prefix warning;
//! - `dampening`: on by default ([`Dampening::RECOMMENDED`]), `false` off, or
//!   `{"half_life", "penalty", "suppress", "reuse", "max_suppress"}` (missing
//!   keys take the recommended values);
//! - `drain`: `{"communities": ["65535:0"], "med", "as_path", "duration":
//!   "30s"}`: while draining, the UP attributes plus these communities (and
//!   this MED and AS path, when given) are announced for `duration`, then
//!   the prefixes are withdrawn. `"on_shutdown": true` drains that way on
//!   SIGTERM too, before exiting.
//!
//! Checks: `{"type": …}` with the keys of their probe, plus `timeout`,
//! `rise`, `fall` and `on_fail` (`"down"` or `"degrade"`) on every type but
//! `file`:
//! - `tcp`: `address` (`IP:PORT`), `send`, `expect`;
//! - `http`: `url`, `method`, `status` (`"200-299,301"` or a list of
//!   numbers), `body`, `body_regex`, `headers` (an object), `host`, `ca`,
//!   `insecure`, `follow_redirects`;
//! - `dns`: `server`, `query`, `qtype`, `tcp`, `rcode`, `answer`, `source`,
//!   `norecurse`, `soa_reference`, `soa_max_lag`, `soa_zone`;
//! - `ntp`: `server`, `max_stratum`, `max_offset`, `max_dispersion`;
//! - `command`: `argv` (a list) or `shell` (a string), and `exit_codes`
//!   (`"nagios"`, the default: 1 is degraded; or `"zero-is-healthy"`);
//! - `file`: `path`: while it exists the service is DISABLED (a maintenance
//!   file, added to [`Service::disable_files`], not a probe).
//!
//! Strings are taken as JSON decodes them: `"PING\r\n"` is the six bytes,
//! with no second layer of escapes as in the flag forms. Durations are
//! strings (`"250ms"`, `"2s"`, `"1m"`) or numbers of seconds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::core::dampening::Dampening;
use crate::core::fsm::Require;
use crate::model::bgp::{AsPath, Community, ExtCommunity, LargeCommunity, NextHop, Origin, Prefix};
use crate::model::duration;
use crate::model::service::{Action, Attributes, DrainPolicy, OnFail, Service, ServiceCheck, Timing};
use crate::ops::control::ControlSettings;
use crate::probe::Check;
use crate::probe::command::{CommandProbe, ExitCodes, Program};
use crate::probe::dns::DnsProbe;
use crate::probe::http::HttpProbe;
use crate::probe::ntp::NtpProbe;
use crate::probe::tcp::{TcpProbe, parse_socket_addr};

pub use crate::ops::control::{DEFAULT_SOCKET, DEFAULT_STATE_FILE};
/// Most probe worker threads.
pub const MAX_WORKERS: usize = 256;
/// Worker threads when `workers` is not given and there are many checks.
const DEFAULT_MAX_WORKERS: usize = 32;

//------------ Public types ---------------------------------------------------

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfigError {
    /// The JSON path of the offending value, such as
    /// `services[2].checks[0].timeout`; empty for the whole file.
    pub path: String,
    /// The line (from 1), when the JSON parser could tell.
    pub line: Option<usize>,
    /// The column (from 1), when the JSON parser could tell.
    pub column: Option<usize>,
    /// What is wrong, and how to fix it when that is not obvious.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), line: None, column: None, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " (line {l}, column {c})")?;
        }
        Ok(())
    }
}

/// A validated config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The services, in file order.
    pub services: Vec<Service>,
    /// The origin AS of the announcements, for RPKI origin validation.
    pub origin_as: Option<u32>,
    /// How many probe worker threads to run.
    pub workers: usize,
    /// The control socket and state file.
    pub control: ControlSettings,
    /// The metrics exporters.
    pub metrics: MetricsSettings,
    /// Things that work but are probably not what was meant, each prefixed
    /// with its JSON path.
    pub warnings: Vec<String>,
}

/// The metrics exporters; both off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Address of the Prometheus HTTP listener.
    pub listen: Option<SocketAddr>,
    /// File for node_exporter's textfile collector.
    pub textfile: Option<PathBuf>,
}

/// Parses an AS number: `64500`, `AS64500` or `as64500`.
pub fn parse_asn(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("AS").or_else(|| s.strip_prefix("as")).unwrap_or(s);
    match digits.parse::<u32>() {
        Ok(0) => Err("AS0 cannot originate routes (RFC 7607)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not an AS number (64500 or AS64500, 1-4294967295)")),
    }
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![ConfigError::new("", format!("cannot read {}: {e}", path.display()))])?;
    load(&text)
}

/// Validates the text of a config file.
pub fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut cx = Cx { text, errors: Vec::new(), warnings: Vec::new() };
    let config = cx.config();
    // A bad value in `defaults` is found once per service that uses it.
    let mut seen = HashSet::new();
    let errors: Vec<ConfigError> = cx.errors.into_iter().filter(|e| seen.insert(e.clone())).collect();
    let mut seen = HashSet::new();
    let warnings: Vec<String> = cx.warnings.into_iter().filter(|w| seen.insert(w.clone())).collect();
    match config {
        Some(c) if errors.is_empty() => Ok(Config { warnings, ..c }),
        _ if errors.is_empty() => Err(vec![ConfigError::new("", "internal: invalid config without an error")]),
        _ => Err(errors),
    }
}

//------------ Raw types --------------------------------------------------------

/// The keys of the top level, checked on their own: after an unknown
/// top-level key has been reported, the rest of the file is still checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with a \"services\" list")]
struct RawTopKeys {
    #[serde(rename = "_comment")]
    _comment: Option<String>,
    #[serde(rename = "defaults")]
    _defaults: Option<IgnoredAny>,
    #[serde(rename = "services")]
    _services: Option<IgnoredAny>,
    #[serde(rename = "origin_as")]
    _origin_as: Option<IgnoredAny>,
    #[serde(rename = "control")]
    _control: Option<IgnoredAny>,
    #[serde(rename = "metrics")]
    _metrics: Option<IgnoredAny>,
    #[serde(rename = "workers")]
    _workers: Option<IgnoredAny>,
}

/// The top level (its keys checked by [`RawTopKeys`]). Sections are kept
/// raw and read one by one, so an error in one does not hide the errors in
/// the others.
#[derive(Deserialize)]
struct RawTop<'t> {
    #[serde(borrow)]
    defaults: Option<&'t RawValue>,
    #[serde(borrow)]
    services: Option<Vec<&'t RawValue>>,
    #[serde(borrow)]
    origin_as: Option<&'t RawValue>,
    #[serde(borrow)]
    control: Option<&'t RawValue>,
    #[serde(borrow)]
    metrics: Option<&'t RawValue>,
    #[serde(borrow)]
    workers: Option<&'t RawValue>,
}

/// The name and prefixes of a service that could not be read as a whole.
#[derive(Deserialize)]
struct RawIdentity {
    name: Option<String>,
    prefixes: Option<Vec<String>>,
}

/// A service, or the defaults. Every key is optional here: `name` and
/// `prefixes` are required of a service, and refused in the defaults,
/// during validation.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a service object")]
struct RawService<'t> {
    #[serde(rename = "_comment")]
    _comment: Option<String>,
    name: Option<String>,
    prefixes: Option<Vec<String>>,
    #[serde(borrow)]
    checks: Option<Vec<&'t RawValue>>,
    require: Option<RawRequire>,
    interval: Option<RawDuration>,
    fast_interval: Option<RawDuration>,
    timeout: Option<RawDuration>,
    rise: Option<u32>,
    fall: Option<u32>,
    next_hop: Option<String>,
    next_hop6: Option<String>,
    neighbors: Option<Vec<String>>,
    attributes: Option<Obj<RawAttributes>>,
    med_increase: Option<u32>,
    on_down: Option<RawAction>,
    degraded: Option<Obj<RawAttributes>>,
    disabled: Option<RawAction>,
    disable_file: Option<String>,
    covering: Option<String>,
    reassert: Option<RawDuration>,
    dampening: Option<RawDampening>,
    drain: Option<Obj<RawDrain>>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an attributes object")]
struct RawAttributes {
    med: Option<u32>,
    local_preference: Option<u32>,
    communities: Option<Vec<String>>,
    large_communities: Option<Vec<String>>,
    extended_communities: Option<Vec<String>>,
    as_path: Option<RawAsPath>,
    origin: Option<String>,
    path_id: Option<u32>,
}

/// `"withdraw"` or `{"announce": {attributes}}`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum RawAction {
    Withdraw,
    Announce(Obj<RawAttributes>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a dampening object")]
struct RawDampeningFields {
    half_life: Option<RawDuration>,
    penalty: Option<f64>,
    suppress: Option<f64>,
    reuse: Option<f64>,
    max_suppress: Option<RawDuration>,
}

/// `false`, `true` or a dampening object.
enum RawDampening {
    Off,
    On(Option<RawDampeningFields>),
}

impl<'de> Deserialize<'de> for RawDampening {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDampening;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("false, true or a dampening object")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawDampening, E> {
                Ok(if v { RawDampening::On(None) } else { RawDampening::Off })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawDampening, A::Error> {
                RawDampeningFields::deserialize(MapAccessDeserializer::new(map)).map(|f| RawDampening::On(Some(f)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a drain object")]
struct RawDrain {
    communities: Option<Vec<String>>,
    med: Option<u32>,
    as_path: Option<RawAsPath>,
    duration: Option<RawDuration>,
    on_shutdown: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a control object")]
struct RawControl {
    socket: Option<String>,
    mode: Option<String>,
    group: Option<String>,
    state_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a metrics object")]
struct RawMetrics {
    listen: Option<String>,
    textfile: Option<String>,
}

/// A struct that must be written as a JSON object. serde's derived
/// structs also accept an array, taking its items as the fields in order,
/// which would let `"attributes": [100]` mean a MED of 100.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Obj)
    }
}

/// A duration as written: a string, or a number of seconds kept as its
/// decimal text. Parsed by [`duration::parse`] during validation, so the
/// error carries the path.
struct RawDuration(String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (\"250ms\", \"2s\", \"1m\") or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `"all"`, `"any"` or a number.
enum RawRequire {
    All,
    Any,
    AtLeast(u64),
}

impl<'de> Deserialize<'de> for RawRequire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawRequire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\", \"any\" or a number of checks")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawRequire, E> {
                Ok(RawRequire::AtLeast(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRequire, E> {
                match v {
                    "all" => Ok(RawRequire::All),
                    "any" => Ok(RawRequire::Any),
                    _ => {
                        v.parse().map(RawRequire::AtLeast).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
                    }
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of AS numbers, or a string of them.
#[derive(Clone)]
enum RawAsPath {
    Text(String),
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for RawAsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAsPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of AS numbers or a string such as \"64500 64500\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawAsPath, E> {
                Ok(RawAsPath::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawAsPath, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<u32>()? {
                    out.push(n);
                }
                Ok(RawAsPath::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number or a string (an AS number, an HTTP status list), kept as text.
struct RawText(String);

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a string or a list of numbers")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawText, E> {
                Ok(RawText(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawText, E> {
                Ok(RawText(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawText, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<u16>()? {
                    out.push(n.to_string());
                }
                Ok(RawText(out.join(",")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawOnFail {
    Down,
    Degrade,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawExitCodes {
    Nagios,
    ZeroIsHealthy,
}

/// Only the type of a check, read first to pick the struct for the rest.
#[derive(Deserialize)]
struct RawCheckType {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Declares one raw struct per check type, each with the keys every check
/// takes. (serde's `flatten` would share them, but cannot be combined with
/// `deny_unknown_fields`.)
macro_rules! raw_checks {
    ($($name:ident $what:literal { $($field:ident : $ty:ty),* $(,)? })*) => {$(
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, expecting = $what)]
        struct $name {
            #[serde(rename = "type")]
            _kind: String,
            #[serde(rename = "_comment")]
            _comment: Option<String>,
            timeout: Option<RawDuration>,
            rise: Option<u32>,
            fall: Option<u32>,
            on_fail: Option<RawOnFail>,
            $($field: $ty,)*
        }

        impl RawCommon for $name {
            fn common(&self) -> Common<'_> {
                Common { timeout: self.timeout.as_ref(), rise: self.rise, fall: self.fall, on_fail: self.on_fail }
            }
        }
    )*};
}

raw_checks! {
    RawTcp "a tcp check object" { address: String, send: Option<String>, expect: Option<String> }
    RawHttp "an http check object" {
        url: String,
        method: Option<String>,
        status: Option<RawText>,
        body: Option<String>,
        body_regex: Option<String>,
        headers: Option<BTreeMap<String, String>>,
        host: Option<String>,
        ca: Option<String>,
        insecure: Option<bool>,
        follow_redirects: Option<bool>,
    }
    RawDns "a dns check object" {
        server: Option<String>,
        query: String,
        qtype: Option<String>,
        tcp: Option<bool>,
        rcode: Option<RawText>,
        answer: Option<String>,
        source: Option<String>,
        norecurse: Option<bool>,
        soa_reference: Option<String>,
        soa_max_lag: Option<RawText>,
        soa_zone: Option<String>,
    }
    RawNtp "an ntp check object" {
        server: Option<String>,
        max_stratum: Option<RawText>,
        max_offset: Option<RawDuration>,
        max_dispersion: Option<RawDuration>,
    }
    RawCommand "a command check object" {
        argv: Option<Vec<String>>,
        shell: Option<String>,
        exit_codes: Option<RawExitCodes>,
    }
}

/// A maintenance file: no probe, so none of the probe keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a file check object")]
struct RawFile {
    #[serde(rename = "type")]
    _kind: String,
    #[serde(rename = "_comment")]
    _comment: Option<String>,
    path: String,
}

/// The keys every probe check takes.
struct Common<'r> {
    timeout: Option<&'r RawDuration>,
    rise: Option<u32>,
    fall: Option<u32>,
    on_fail: Option<RawOnFail>,
}

trait RawCommon {
    fn common(&self) -> Common<'_>;
}

/// What identifies a service across the file.
struct Identity {
    name: Option<String>,
    prefixes: Vec<(usize, Prefix)>,
}

/// A check once validated: a probe, or a maintenance file.
enum Parsed {
    Probe(Box<ServiceCheck>),
    File(PathBuf),
}

//------------ Validation ---------------------------------------------------------

/// The validation context: the file's text (for line numbers) and what has
/// been found so far.
struct Cx<'t> {
    text: &'t str,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

/// Where a service's settings come from: its own object, else `defaults`.
struct Layers<'r, 't> {
    svc: &'r RawService<'t>,
    def: &'r RawService<'t>,
    path: String,
}

/// The value of a service key, its own or the default's, with the JSON path
/// it came from (the service's when neither has it).
macro_rules! pick {
    ($l:expr, $field:ident) => {{
        let key = stringify!($field);
        match (&$l.svc.$field, &$l.def.$field) {
            (Some(v), _) => (Some(v), format!("{}.{key}", $l.path)),
            (None, Some(v)) => (Some(v), format!("defaults.{key}")),
            (None, None) => (None, format!("{}.{key}", $l.path)),
        }
    }};
}

/// The first layer that sets an attribute, with its path.
macro_rules! layer {
    ($layers:expr, $field:ident) => {
        $layers.iter().find_map(|(a, p)| a.$field.as_ref().map(|v| (v, format!("{p}.{}", stringify!($field)))))
    };
}

impl<'t> Cx<'t> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn warn(&mut self, path: &str, message: impl fmt::Display) {
        self.warnings.push(format!("{path}: {message}"));
    }

    /// Records the error of `r`, if any, at `path`.
    fn take<T>(&mut self, path: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.err(path, e)).ok()
    }

    /// Deserializes `sub`, a slice of the file's text whose JSON path is
    /// `path`, reporting a failure with its full path and position.
    fn parse<T: Deserialize<'t>>(&mut self, sub: &'t str, path: &str) -> Option<T> {
        let mut de = serde_json::Deserializer::from_str(sub);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.inner();
                let mut full = path.to_string();
                for seg in e.path().iter() {
                    use serde_path_to_error::Segment;
                    match seg {
                        Segment::Seq { index } => full.push_str(&format!("[{index}]")),
                        Segment::Map { key } | Segment::Enum { variant: key } => {
                            if !full.is_empty() {
                                full.push('.');
                            }
                            full.push_str(key);
                        }
                        Segment::Unknown => {}
                    }
                }
                let (line, column) = self.position(sub, inner.line(), inner.column());
                self.errors.push(ConfigError { path: full, line, column, message: serde_message(inner) });
                None
            }
        }
    }

    /// The position in the whole file of a (line, column) that serde_json
    /// reported within `sub`.
    fn position(&self, sub: &str, line: usize, column: usize) -> (Option<usize>, Option<usize>) {
        if line == 0 {
            return (None, None);
        }
        // `sub` borrows from `text`: its offset there is the pointer difference.
        let base = (sub.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize).filter(|b| *b <= self.text.len());
        let Some(base) = base else { return (Some(line), Some(column)) };
        let line_start: usize = sub.split_inclusive('\n').take(line - 1).map(str::len).sum();
        let index = (base + line_start + column).min(self.text.len());
        let before = &self.text.as_bytes()[..index];
        let start_of_line = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let line = 1 + before[..start_of_line].iter().filter(|&&b| b == b'\n').count();
        (Some(line), Some((index - start_of_line).max(1)))
    }

    fn config(&mut self) -> Option<Config> {
        // Syntax first: in a file that is not JSON there is nothing else to check.
        if let Err(e) = serde_json::from_str::<IgnoredAny>(self.text) {
            let (line, column) = (e.line() > 0).then_some((e.line(), e.column())).unzip();
            self.errors.push(ConfigError { path: String::new(), line, column, message: serde_message(&e) });
            return None;
        }
        let keys = self.parse::<Obj<RawTopKeys>>(self.text, "");
        let top = match serde_json::from_str::<RawTop<'t>>(self.text) {
            Ok(t) => t,
            Err(_) if keys.is_none() => return None,
            Err(_) => {
                self.parse::<RawTop<'t>>(self.text, "");
                return None;
            }
        };
        let before = self.errors.len();
        let defaults = match top.defaults {
            Some(raw) => self.parse::<Obj<RawService<'t>>>(raw.get(), "defaults").map(|o| o.0).unwrap_or_default(),
            None => RawService::default(),
        };
        // With defaults that cannot be read, services would be judged without
        // them: only their shape is checked then, to avoid errors that are
        // not there.
        let defaults_ok = self.errors.len() == before;
        if defaults.name.is_some() {
            self.err("defaults.name", "a name cannot be a default: each service has its own");
        }
        if defaults.prefixes.is_some() {
            self.err("defaults.prefixes", "prefixes cannot be a default: each prefix belongs to one service");
        }

        let Some(raw_services) = top.services else {
            self.err("services", "missing: give a list of services (it may be empty)");
            return None;
        };
        let mut services = Vec::new();
        let mut identities = Vec::new();
        for (i, raw) in raw_services.iter().enumerate() {
            let path = format!("services[{i}]");
            let Some(Obj(svc)) = self.parse::<Obj<RawService<'t>>>(raw.get(), &path) else {
                // Still take part in the name and prefix checks across services.
                if let Ok(id) = serde_json::from_str::<RawIdentity>(raw.get()) {
                    let prefixes = id.prefixes.iter().flatten().enumerate();
                    let prefixes = prefixes.filter_map(|(k, p)| Some((k, p.parse().ok()?))).collect();
                    identities.push((i, Identity { name: id.name, prefixes }));
                }
                continue;
            };
            if !defaults_ok {
                continue;
            }
            let (service, identity) = self.service(&Layers { svc: &svc, def: &defaults, path });
            services.extend(service);
            identities.push((i, identity));
        }
        self.across_services(&identities);

        let origin_as = top.origin_as.and_then(|raw| {
            let text = self.parse::<RawText>(raw.get(), "origin_as")?;
            self.take("origin_as", parse_asn(&text.0))
        });
        let checks: usize = services.iter().map(|s| s.checks.len()).sum();
        let workers = match top.workers {
            None => checks.clamp(1, DEFAULT_MAX_WORKERS),
            Some(raw) => match self.parse::<u64>(raw.get(), "workers") {
                Some(n) if n >= 1 && n <= MAX_WORKERS as u64 => n as usize,
                Some(n) => {
                    self.err("workers", format!("{n} is not between 1 and {MAX_WORKERS}"));
                    1
                }
                None => 1,
            },
        };
        let control = match top.control {
            None => ControlSettings::default(),
            Some(raw) => {
                self.parse::<Obj<RawControl>>(raw.get(), "control").map(|c| self.control(c.0)).unwrap_or_default()
            }
        };
        let metrics = match top.metrics {
            None => MetricsSettings::default(),
            Some(raw) => {
                self.parse::<Obj<RawMetrics>>(raw.get(), "metrics").map(|m| self.metrics(m.0)).unwrap_or_default()
            }
        };
        Some(Config { services, origin_as, workers, control, metrics, warnings: Vec::new() })
    }

    /// Names and prefixes are unique across services. Judged on every
    /// service whose name or prefixes could be read, valid or not, so that
    /// these errors come in the same report as the others.
    fn across_services(&mut self, services: &[(usize, Identity)]) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut prefixes: HashMap<Prefix, (usize, &str)> = HashMap::new();
        for (i, s) in services {
            let name = s.name.as_deref().unwrap_or("");
            if let Some(n) = &s.name {
                match names.get(n.as_str()) {
                    Some(j) => {
                        self.err(format!("services[{i}].name"), format!("{n:?} is also the name of services[{j}]"))
                    }
                    None => {
                        names.insert(n, *i);
                    }
                }
            }
            for (k, p) in &s.prefixes {
                match prefixes.get(p) {
                    Some((j, other)) => self.err(
                        format!("services[{i}].prefixes[{k}]"),
                        format!("{p} is also announced by service {other:?} (services[{j}]); a prefix belongs to one service"),
                    ),
                    None => {
                        prefixes.insert(*p, (*i, name));
                    }
                }
            }
        }
    }

    /// A service, and its name and prefixes (with their indexes) as far as
    /// they could be read, for the checks across services.
    fn service(&mut self, l: &Layers<'_, 't>) -> (Option<Service>, Identity) {
        let before = self.errors.len();
        let service = self.service_inner(l);
        let name = l.svc.name.as_deref().and_then(|n| valid_name(n).ok());
        let prefixes = l.svc.prefixes.iter().flatten().enumerate().filter_map(|(k, p)| Some((k, p.parse().ok()?)));
        let identity = Identity { name, prefixes: prefixes.collect() };
        (service.filter(|_| self.errors.len() == before), identity)
    }

    fn service_inner(&mut self, l: &Layers<'_, 't>) -> Option<Service> {
        let before = self.errors.len();
        let name = match &l.svc.name {
            None => {
                self.err(format!("{}.name", l.path), "missing: every service needs a name");
                None
            }
            Some(n) => self.take(&format!("{}.name", l.path), valid_name(n)),
        };
        let prefixes = self.prefixes(l);

        // Timing first: check timeouts are judged against the interval.
        let (v, p) = pick!(l, interval);
        let interval = self.duration(v, &p, Duration::from_secs(5));
        if interval.is_some_and(|d| d.is_zero()) {
            self.err(&p, "must be more than 0");
        }
        let interval = interval.filter(|d| !d.is_zero());
        let (v, p) = pick!(l, fast_interval);
        let fast_default = interval.map_or(Duration::from_secs(1), |i| i.min(Duration::from_secs(1)));
        let fast_interval = self.duration(v, &p, fast_default);
        if fast_interval.is_some_and(|d| d.is_zero()) {
            self.err(&p, "must be more than 0");
        }
        if let (Some(f), Some(i)) = (fast_interval, interval)
            && f > i
        {
            self.warn(&p, format!("{} is longer than the interval ({})", duration::show(f), duration::show(i)));
        }
        let (v, p) = pick!(l, timeout);
        let timeout_default = match interval {
            Some(i) if i > Duration::from_secs(2) => Duration::from_secs(2),
            Some(i) => i / 2,
            None => Duration::from_secs(2),
        };
        let timeout = self.duration(v, &p, timeout_default);
        if let Some(t) = timeout {
            self.check_timeout(&p, t, interval);
        }
        let (v, p) = pick!(l, rise);
        let rise = self.threshold(&p, v.copied(), 3);
        let (v, p) = pick!(l, fall);
        let fall = self.threshold(&p, v.copied(), 3);
        let (v, p) = pick!(l, reassert);
        let reassert = self.duration(v, &p, Duration::from_secs(300));

        // Checks.
        let (raw_checks, checks_path) = match (&l.svc.checks, &l.def.checks) {
            (Some(c), _) => (c.as_slice(), format!("{}.checks", l.path)),
            (None, Some(c)) => (c.as_slice(), "defaults.checks".to_string()),
            (None, None) => (&[][..], format!("{}.checks", l.path)),
        };
        let mut checks = Vec::new();
        let mut disable_files = Vec::new();
        for (j, raw) in raw_checks.iter().enumerate() {
            match self.check(raw, &format!("{checks_path}[{j}]"), interval) {
                Some(Parsed::Probe(c)) => checks.push(*c),
                Some(Parsed::File(f)) => disable_files.push(f),
                None => {}
            }
        }
        if raw_checks.is_empty() {
            self.warn(&checks_path, "no checks: the service always counts as healthy");
        }
        let (v, p) = pick!(l, disable_file);
        if let Some(f) = v {
            disable_files.push(self.path(&p, f));
        }
        let (v, p) = pick!(l, require);
        let require = match v {
            None | Some(RawRequire::All) => Some(Require::All),
            Some(RawRequire::Any) => Some(Require::Any),
            Some(RawRequire::AtLeast(n)) => match usize::try_from(*n) {
                Ok(k) if k >= 1 && k <= checks.len() => Some(Require::AtLeast(k)),
                _ => {
                    self.err(&p, format!("{n} is not between 1 and the number of checks ({})", checks.len()));
                    None
                }
            },
        };

        // Routes.
        let (next_hop, next_hop6) = self.next_hops(l, &prefixes.0);
        let (v, p) = pick!(l, neighbors);
        let mut neighbors = Vec::new();
        for (k, n) in v.into_iter().flatten().enumerate() {
            let r = n.parse::<IpAddr>().map_err(|_| format!("{n:?} is not an IP address"));
            neighbors.extend(self.take(&format!("{p}[{k}]"), r));
        }
        let (v, _) = pick!(l, med_increase);
        let med_increase = v.copied().unwrap_or(0);

        let none = RawAttributes::default();
        let base = [
            (l.svc.attributes.as_ref().map_or(&none, |o| &o.0), format!("{}.attributes", l.path)),
            (l.def.attributes.as_ref().map_or(&none, |o| &o.0), "defaults.attributes".to_string()),
        ];
        let up = self.attributes(&base, Some(100));
        let path_id = layer!(base, path_id).map(|(v, _)| *v);
        let mut layers = vec![
            (l.svc.degraded.as_ref().map_or(&none, |o| &o.0), format!("{}.degraded", l.path)),
            (l.def.degraded.as_ref().map_or(&none, |o| &o.0), "defaults.degraded".to_string()),
        ];
        self.no_path_id(&layers);
        let degraded_med = layer!(layers, med).is_some();
        layers.extend(base.iter().cloned());
        let mut degraded = self.attributes(&layers, None);
        if !degraded_med {
            degraded.med = up.med.map(|m| m.saturating_add(100));
        }
        let (v, p) = pick!(l, on_down);
        let down = self.action(v, &p, &base);
        let (v, p) = pick!(l, disabled);
        let disabled = self.action(v, &p, &base);

        let (v, p) = pick!(l, covering);
        let covering = v.and_then(|c| self.take(&p, c.parse::<Prefix>()));
        if let Some(c) = covering
            && !prefixes.0.is_empty()
            && !prefixes.0.iter().any(|x| covers(&c, x))
        {
            self.err(&p, format!("{c} covers none of the service's prefixes"));
        }
        let (v, p) = pick!(l, dampening);
        let dampening = self.dampening(v, &p);
        let (v, p) = pick!(l, drain);
        let drain = self.drain(v.map(|o| &o.0), &p, &up);

        if self.errors.len() != before {
            return None;
        }
        Some(Service {
            name: name?,
            prefixes: prefixes.1.then_some(prefixes.0)?,
            next_hop: next_hop?,
            next_hop6,
            neighbors,
            path_id,
            med_increase,
            up,
            degraded,
            down: down?,
            disabled: disabled?,
            checks,
            require: require?,
            disable_files,
            covering,
            timing: Timing {
                interval: interval?,
                fast_interval: fast_interval?,
                timeout: timeout?,
                rise: rise?,
                fall: fall?,
                reassert: reassert.filter(|d| !d.is_zero()),
            },
            drain: drain?,
            dampening: dampening?,
        })
    }

    /// The prefixes that could be read, and whether all could.
    fn prefixes(&mut self, l: &Layers<'_, 't>) -> (Vec<Prefix>, bool) {
        let path = format!("{}.prefixes", l.path);
        let Some(raw) = &l.svc.prefixes else {
            self.err(path, "missing: every service needs at least one prefix");
            return (Vec::new(), false);
        };
        if raw.is_empty() {
            self.err(path, "empty: every service needs at least one prefix");
            return (Vec::new(), false);
        }
        let mut out = Vec::new();
        for (k, s) in raw.iter().enumerate() {
            let Some(p) = self.take(&format!("{path}[{k}]"), s.parse::<Prefix>()) else { continue };
            if out.contains(&p) {
                self.err(format!("{path}[{k}]"), format!("{p} is given twice"));
            }
            out.push(p);
        }
        let all = out.len() == raw.len();
        (out, all)
    }

    /// The next hops, checked against the families of the prefixes.
    fn next_hops(&mut self, l: &Layers<'_, 't>, prefixes: &[Prefix]) -> (Option<NextHop>, Option<NextHop>) {
        let (v, p4) = pick!(l, next_hop);
        let next_hop = match v {
            None => Some(NextHop::Own),
            Some(s) => self.take(&p4, s.parse::<NextHop>()),
        };
        let (v, p6) = pick!(l, next_hop6);
        let next_hop6 = v.and_then(|s| self.take(&p6, s.parse::<NextHop>()));
        if let Some(NextHop::Addr(a)) = next_hop6
            && a.is_ipv4()
        {
            self.err(&p6, format!("{a} is an IPv4 address; give an IPv6 address, or \"self\""));
        }
        if let Some(NextHop::Addr(a)) = next_hop
            && a.is_ipv6()
            && let Some(p) = prefixes.iter().find(|p| !p.is_ipv6())
        {
            self.err(&p4, format!("{a} is IPv6 but {p} is IPv4; give an IPv4 next hop or \"self\" (and next_hop6)"));
        }
        let v6_next_hop = next_hop6.is_some() || matches!(next_hop, Some(NextHop::Addr(a)) if a.is_ipv6());
        if next_hop.is_some()
            && !v6_next_hop
            && let Some(p) = prefixes.iter().find(|p| p.is_ipv6())
        {
            self.err(
                &p6,
                format!(
                    "{p} is IPv6 and next_hop is not: give next_hop6, an IPv6 address (\"self\" works only over an \
                     IPv6 BGP session)"
                ),
            );
        }
        (next_hop, next_hop6)
    }

    /// Attributes from layers, the first layer that sets a key winning.
    fn attributes(&mut self, layers: &[(&RawAttributes, String)], med_default: Option<u32>) -> Attributes {
        let origin = layer!(layers, origin).and_then(|(v, p)| self.take(&p, v.parse::<Origin>()));
        let as_path = layer!(layers, as_path).and_then(|(v, p)| self.as_path(v, &p));
        let communities = layer!(layers, communities).map(|(v, p)| self.list::<Community>(v, &p));
        let extended = layer!(layers, extended_communities).map(|(v, p)| self.list::<ExtCommunity>(v, &p));
        let large = layer!(layers, large_communities).map(|(v, p)| self.list::<LargeCommunity>(v, &p));
        Attributes {
            med: layer!(layers, med).map(|(v, _)| *v).or(med_default),
            local_preference: layer!(layers, local_preference).map(|(v, _)| *v),
            origin,
            as_path,
            communities: communities.unwrap_or_default(),
            extended_communities: extended.unwrap_or_default(),
            large_communities: large.unwrap_or_default(),
        }
    }

    fn no_path_id(&mut self, layers: &[(&RawAttributes, String)]) {
        for (a, p) in layers {
            if a.path_id.is_some() {
                self.err(format!("{p}.path_id"), "the path id is per service: set it in attributes");
            }
        }
    }

    fn list<T: std::str::FromStr<Err = String>>(&mut self, items: &[String], path: &str) -> Vec<T> {
        let mut out = Vec::new();
        for (k, s) in items.iter().enumerate() {
            out.extend(self.take(&format!("{path}[{k}]"), s.parse::<T>()));
        }
        out
    }

    fn as_path(&mut self, v: &RawAsPath, path: &str) -> Option<AsPath> {
        match v {
            RawAsPath::Text(s) => self.take(path, s.parse::<AsPath>()),
            RawAsPath::List(l) if l.is_empty() => {
                self.err(path, "empty: leave as_path out instead");
                None
            }
            RawAsPath::List(l) => Some(AsPath(l.clone())),
        }
    }

    fn action(&mut self, v: Option<&RawAction>, path: &str, base: &[(&RawAttributes, String); 2]) -> Option<Action> {
        match v {
            None | Some(RawAction::Withdraw) => Some(Action::Withdraw),
            Some(RawAction::Announce(Obj(attrs))) => {
                let before = self.errors.len();
                let mut layers = vec![(attrs, format!("{path}.announce"))];
                self.no_path_id(&layers);
                layers.extend(base.iter().cloned());
                let a = self.attributes(&layers, Some(100));
                (self.errors.len() == before).then_some(Action::Announce(a))
            }
        }
    }

    fn duration(&mut self, v: Option<&RawDuration>, path: &str, default: Duration) -> Option<Duration> {
        match v {
            None => Some(default),
            Some(RawDuration(s)) => self.take(path, duration::parse(s)),
        }
    }

    /// A timeout is more than 0 and below the interval: probe rounds never
    /// overlap, so a timeout as long as the interval would stretch it.
    fn check_timeout(&mut self, path: &str, t: Duration, interval: Option<Duration>) {
        if t.is_zero() {
            self.err(path, "must be more than 0");
        } else if let Some(i) = interval
            && t >= i
        {
            self.err(
                path,
                format!(
                    "{} is not below the interval ({}): lower it or raise interval",
                    duration::show(t),
                    duration::show(i)
                ),
            );
        }
    }

    fn threshold(&mut self, path: &str, v: Option<u32>, default: u32) -> Option<NonZeroU32> {
        let n = v.unwrap_or(default);
        let r = NonZeroU32::new(n).ok_or_else(|| "must be at least 1".to_string());
        self.take(path, r)
    }

    /// A path; a relative one works, but against ExaBGP's working directory.
    fn path(&mut self, path: &str, s: &str) -> PathBuf {
        if s.is_empty() {
            self.err(path, "empty path");
        } else if !s.starts_with('/') {
            self.warn(path, format!("{s:?} is relative: it is looked up from ExaBGP's working directory"));
        }
        PathBuf::from(s)
    }

    fn check(&mut self, raw: &'t RawValue, path: &str, interval: Option<Duration>) -> Option<Parsed> {
        let sub = raw.get();
        if !sub.starts_with('{') {
            let (line, column) = self.position(sub, 1, 1);
            self.errors.push(ConfigError {
                path: path.to_string(),
                line,
                column,
                message: "a check is an object such as {\"type\": \"tcp\", \"address\": \"127.0.0.1:53\"}".into(),
            });
            return None;
        }
        let kind = self.parse::<RawCheckType>(sub, path)?.kind;
        let built = match kind.as_deref() {
            Some("tcp") => {
                let c = self.parse::<RawTcp>(sub, path)?;
                let r = parse_socket_addr(&c.address).map_err(|e| format!("address: {e}")).and_then(|a| {
                    TcpProbe::new(a, c.send.clone().map(String::into_bytes), c.expect.clone().map(String::into_bytes))
                });
                self.probe(
                    path,
                    r.map(Check::Tcp),
                    &c,
                    &[("address", "address"), ("send", "send"), ("expect", "expect")],
                    interval,
                )
            }
            Some("http") => {
                let c = self.parse::<RawHttp>(sub, path)?;
                let mut b = HttpProbe::builder(c.url.as_str());
                if let Some(v) = &c.method {
                    b = b.method(v.as_str());
                }
                if let Some(v) = &c.status {
                    b = b.status(v.0.as_str());
                }
                if let Some(v) = &c.body {
                    b = b.body_contains(v.as_str());
                }
                if let Some(v) = &c.body_regex {
                    b = b.body_regex(v.as_str());
                }
                for (name, value) in c.headers.iter().flatten() {
                    b = b.header(format!("{name}: {value}"));
                }
                if let Some(v) = &c.host {
                    b = b.host(v.as_str());
                }
                if let Some(v) = &c.ca {
                    b = b.ca_file(v.as_str());
                }
                b = b.insecure(c.insecure.unwrap_or(false)).follow_redirects(c.follow_redirects.unwrap_or(false));
                let keys = [
                    ("url", "url"),
                    ("method", "method"),
                    ("host", "host"),
                    ("status", "status"),
                    ("body", "body"),
                    ("body-regex", "body_regex"),
                    ("header", "headers"),
                    ("ca", "ca"),
                ];
                self.probe(path, b.build().map(Check::Http), &c, &keys, interval)
            }
            Some("dns") => {
                let c = self.parse::<RawDns>(sub, path)?;
                let mut b = DnsProbe::builder(c.query.as_str());
                if let Some(v) = &c.server {
                    b = b.server(v.as_str());
                }
                if let Some(v) = &c.qtype {
                    b = b.rtype(v.as_str());
                }
                if let Some(v) = &c.answer {
                    b = b.answer(v.as_str());
                }
                if let Some(v) = &c.source {
                    b = b.source(v.as_str());
                }
                if let Some(v) = &c.soa_reference {
                    b = b.soa_reference(v.as_str());
                }
                if let Some(v) = &c.soa_zone {
                    b = b.soa_zone(v.as_str());
                }
                if let Some(v) = &c.rcode {
                    b = b.rcode(v.0.as_str());
                }
                if let Some(v) = &c.soa_max_lag {
                    b = b.soa_max_lag(v.0.as_str());
                }
                b = b.tcp(c.tcp.unwrap_or(false)).norecurse(c.norecurse.unwrap_or(false));
                let keys = [
                    ("server", "server"),
                    ("name", "query"),
                    ("type", "qtype"),
                    ("rcode", "rcode"),
                    ("answer", "answer"),
                    ("source", "source"),
                    ("soa-reference", "soa_reference"),
                    ("soa-max-lag", "soa_max_lag"),
                    ("soa-zone", "soa_zone"),
                ];
                self.probe(path, b.build().map(Check::Dns), &c, &keys, interval)
            }
            Some("ntp") => {
                let c = self.parse::<RawNtp>(sub, path)?;
                let mut b = NtpProbe::builder();
                if let Some(v) = &c.server {
                    b = b.server(v.as_str());
                }
                if let Some(v) = &c.max_stratum {
                    b = b.max_stratum(v.0.as_str());
                }
                if let Some(v) = &c.max_offset {
                    b = b.max_offset(v.0.as_str());
                }
                if let Some(v) = &c.max_dispersion {
                    b = b.max_dispersion(v.0.as_str());
                }
                let keys = [
                    ("server", "server"),
                    ("max-stratum", "max_stratum"),
                    ("max-offset", "max_offset"),
                    ("max-dispersion", "max_dispersion"),
                ];
                self.probe(path, b.build().map(Check::Ntp), &c, &keys, interval)
            }
            Some("command") => {
                let c = self.parse::<RawCommand>(sub, path)?;
                let program = match (&c.argv, &c.shell) {
                    (Some(a), None) => Ok(Program::Argv(a.clone())),
                    (None, Some(s)) => Ok(Program::Shell(s.clone())),
                    (Some(_), Some(_)) => Err("give either argv or shell, not both".to_string()),
                    (None, None) => Err("give argv (a list: program and arguments) or shell (a string)".to_string()),
                };
                let exit_codes = match c.exit_codes {
                    None | Some(RawExitCodes::Nagios) => ExitCodes::Nagios,
                    Some(RawExitCodes::ZeroIsHealthy) => ExitCodes::ZeroIsHealthy,
                };
                let r = program.and_then(|p| CommandProbe::new(p, exit_codes));
                self.probe(path, r.map(Check::Command), &c, &[("argv", "argv"), ("shell", "shell")], interval)
            }
            Some("file") => {
                let c = self.parse::<RawFile>(sub, path)?;
                return Some(Parsed::File(self.path(&format!("{path}.path"), &c.path)));
            }
            Some(other) => {
                self.err(
                    format!("{path}.type"),
                    format!("unknown check type {other:?} (tcp, http, dns, ntp, command or file)"),
                );
                return None;
            }
            None => {
                self.err(path, "missing key `type` (tcp, http, dns, ntp, command or file)");
                return None;
            }
        };
        built.map(|c| Parsed::Probe(Box::new(c)))
    }

    /// A probe check with its common keys. A probe builder's error starts
    /// with its flag-form key (`body-regex: …`), which `keys` maps to the
    /// JSON key so that the error lands at the right path.
    fn probe(
        &mut self,
        path: &str,
        check: Result<Check, String>,
        raw: &dyn RawCommon,
        keys: &[(&str, &str)],
        interval: Option<Duration>,
    ) -> Option<ServiceCheck> {
        let check = check.map_err(|e| {
            let at = e.split_once(": ").and_then(|(k, rest)| {
                keys.iter().find(|(flag, _)| *flag == k).map(|(_, json)| (format!("{path}.{json}"), rest.to_string()))
            });
            let (p, m) = at.unwrap_or_else(|| (path.to_string(), e));
            self.err(p, m);
        });
        let common = raw.common();
        let timeout = common.timeout.and_then(|RawDuration(s)| {
            let p = format!("{path}.timeout");
            let t = self.take(&p, duration::parse(s))?;
            self.check_timeout(&p, t, interval);
            Some(t)
        });
        let rise = common.rise.map(|n| self.threshold(&format!("{path}.rise"), Some(n), 1));
        let fall = common.fall.map(|n| self.threshold(&format!("{path}.fall"), Some(n), 1));
        let on_fail = match common.on_fail {
            None | Some(RawOnFail::Down) => OnFail::Down,
            Some(RawOnFail::Degrade) => OnFail::Degrade,
        };
        let check = check.ok()?;
        Some(ServiceCheck { check, timeout, on_fail, rise: rise.flatten(), fall: fall.flatten() })
    }

    fn dampening(&mut self, v: Option<&RawDampening>, path: &str) -> Option<Option<Dampening>> {
        let r = Dampening::RECOMMENDED;
        let f = match v {
            Some(RawDampening::Off) => return Some(None),
            None | Some(RawDampening::On(None)) => return Some(Some(r)),
            Some(RawDampening::On(Some(f))) => f,
        };
        let half_life = self.duration(f.half_life.as_ref(), &format!("{path}.half_life"), r.half_life)?;
        let max_suppress = self.duration(f.max_suppress.as_ref(), &format!("{path}.max_suppress"), r.max_suppress)?;
        let d = Dampening {
            half_life,
            penalty: f.penalty.unwrap_or(r.penalty),
            suppress: f.suppress.unwrap_or(r.suppress),
            reuse: f.reuse.unwrap_or(r.reuse),
            max_suppress,
        };
        let d = self.take(path, d.validate())?;
        // RFC 2439's ceiling: the penalty never exceeds what decays to
        // `reuse` within `max_suppress`.
        let ceiling = d.reuse * 2f64.powf(d.max_suppress.as_secs_f64() / d.half_life.as_secs_f64());
        if ceiling <= d.suppress {
            self.warn(
                path,
                format!(
                    "the penalty can never exceed {ceiling:.0} (reuse × 2^(max_suppress / half_life)), so it never \
                     reaches suppress ({}): dampening never suppresses",
                    d.suppress
                ),
            );
        }
        Some(Some(d))
    }

    fn drain(&mut self, v: Option<&RawDrain>, path: &str, up: &Attributes) -> Option<DrainPolicy> {
        let graceful = DrainPolicy::graceful(up);
        let Some(d) = v else { return Some(graceful) };
        let before = self.errors.len();
        let mut attributes = up.clone();
        let extra = match &d.communities {
            None => vec![Community::GRACEFUL_SHUTDOWN],
            Some(c) => self.list::<Community>(c, &format!("{path}.communities")),
        };
        for c in extra {
            if !attributes.communities.contains(&c) {
                attributes.communities.push(c);
            }
        }
        if let Some(m) = d.med {
            attributes.med = Some(m);
        }
        if let Some(a) = &d.as_path {
            attributes.as_path = self.as_path(a, &format!("{path}.as_path"));
        }
        let stage = self.duration(d.duration.as_ref(), &format!("{path}.duration"), graceful.stage)?;
        let on_shutdown = d.on_shutdown.unwrap_or(false);
        (self.errors.len() == before).then_some(DrainPolicy { attributes, stage, on_shutdown })
    }

    fn control(&mut self, c: RawControl) -> ControlSettings {
        let mut out = ControlSettings::default();
        if let Some(s) = &c.socket {
            out.socket = self.path("control.socket", s);
            // sun_path holds 108 bytes, the terminating NUL included.
            if s.len() > 107 {
                self.err("control.socket", format!("{} bytes long: a socket path has at most 107", s.len()));
            }
        }
        match c.mode.as_deref() {
            None | Some("0600" | "600") => {}
            Some("0660" | "660") => out.mode = 0o660,
            Some(m) => self.err("control.mode", format!("{m:?} is not \"0600\" (owner only) or \"0660\" (and group)")),
        }
        if let Some(g) = &c.group {
            let ok = !g.is_empty()
                && g.len() <= 32
                && g.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !g.starts_with('-');
            if !ok {
                self.err("control.group", format!("{g:?} is not a group name"));
            }
            if out.mode == 0o600 {
                self.warn("control.group", "has no effect with mode \"0600\": set \"mode\": \"0660\" too");
            }
            out.group = Some(g.clone());
        }
        if let Some(s) = &c.state_file {
            out.state_file = Some(self.path("control.state_file", s));
        }
        out
    }

    fn metrics(&mut self, m: RawMetrics) -> MetricsSettings {
        let listen = m.listen.as_deref().and_then(|s| {
            let a =
                self.take("metrics.listen", s.parse::<SocketAddr>().map_err(|_| format!("{s:?} is not IP:PORT")))?;
            if !a.ip().is_loopback() {
                self.warn(
                    "metrics.listen",
                    format!(
                        "{a} is not a loopback address: the metrics (service names, states) are open to the network"
                    ),
                );
            }
            Some(a)
        });
        let textfile = m.textfile.as_deref().map(|s| self.path("metrics.textfile", s));
        MetricsSettings { listen, textfile }
    }
}

/// True when `outer` contains all of `inner`.
pub fn covers(outer: &Prefix, inner: &Prefix) -> bool {
    outer.net().contains(&inner.net())
}

fn valid_name(n: &str) -> Result<String, String> {
    if !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        Ok(n.to_string())
    } else {
        Err(format!("{n:?} is not a name (1-64 of A-Z a-z 0-9 _ . -)"))
    }
}

/// serde_json's message without its " at line L column C" (kept apart), in
/// the config's words: keys, not fields.
fn serde_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    if let Some((key, expected)) = msg.strip_prefix("unknown field ").and_then(|r| r.split_once(", expected ")) {
        let keys = expected.trim_start_matches("one of ").replace('`', "").replace(" or ", ", ");
        return format!("unknown key {key}; the keys here are: {keys}");
    }
    let mut msg = msg.to_string();
    for (field, key) in
        [("unknown field", "unknown key"), ("missing field", "missing key"), ("duplicate field", "duplicate key")]
    {
        msg = msg.replacen(field, key, 1);
    }
    msg
}
