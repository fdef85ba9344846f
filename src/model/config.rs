//! The JSON config file of a multi-service exaprobe (`--config FILE`): its
//! schema, and its conversion into validated [`Service`]s. Every error is
//! reported at once, each at its JSON path (`services[2].checks[0].timeout`)
//! and, where the JSON parser can tell, with its line and column.
//!
//! How: the file (a regular file of at most [`crate::model::file::MAX_CONFIG`]
//! bytes; a leading byte order mark is skipped) is read into raw serde structs
//! with `deny_unknown_fields` (so a misspelt key is an error, not a silently
//! ignored setting). Each service, its `defaults` merged in, becomes the one
//! raw form of a service ([`RawSpec`], every value at its JSON path), which
//! [`validate::service`], the validator the command line uses too, turns
//! into a [`Service`], collecting errors instead of stopping at the first.
//! Each service and each check is deserialized on its own, from its own slice
//! of the file, so a bad key in one does not hide the errors in the others.
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
//!   one service only; IPv4-mapped IPv6 prefixes (`::ffff:…`) are refused (write
//!   the IPv4 prefix); a default route (`0.0.0.0/0`, `::/0`) is a warning;
//! - `checks` (`[]`: always healthy, with a warning); `require`: `"all"`
//!   (default), `"any"` or a number of checks;
//! - `interval` (5s), `fast_interval` (1s, or the interval when shorter;
//!   longer than the interval is a warning), `timeout` (2s, or half the
//!   interval when that is 2s or less; at most the interval, as a check's
//!   `timeout`), `rise` (3), `fall` (3), `reassert` (5m; 0 never);
//! - `next_hop` (`"self"`), `next_hop6` (IPv6 or `"self"`), `neighbors` (IP
//!   list; empty: every neighbor that lists the process). IPv6 prefixes with
//!   an IPv4 `next_hop` need `next_hop6`; with `"self"` and no `next_hop6`
//!   they are a warning (`self` works only over an IPv6 BGP session);
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
//! strings (`"250ms"`, `"2s"`, `"1m"`) or numbers of seconds, at most
//! [`crate::model::duration::MAX`] (365 days).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::model::bgp::Prefix;
use crate::model::origin::{At, Field, Origin, Severity};
use crate::model::raw::{self, RawSpec};
use crate::model::service::Service;
use crate::model::validate::{self, valid_name};
use crate::ops::control::ControlSettings;
use crate::probe::command::ExitCodes;
use crate::probe::dns::DnsProbe;
use crate::probe::http::HttpProbe;
use crate::probe::ntp::NtpProbe;

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
    let text = crate::model::file::read_config(path)
        .map_err(|e| vec![ConfigError::new("", format!("cannot read {}: {e}", path.display()))])?;
    load(&text)
}

/// Validates the text of a config file (a leading byte order mark is
/// skipped; line and column numbers are the same with or without it).
pub fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    let text = crate::model::file::strip_bom(text);
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
    run_as: Option<RawRunAs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a run_as object: {\"user\": …, \"group\": …}")]
struct RawRunAs {
    user: Option<String>,
    group: Option<String>,
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
#[derive(Clone)]
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

        impl $name {
            fn common_owned(&self) -> Common {
                Common { timeout: self.timeout.clone(), rise: self.rise, fall: self.fall, on_fail: self.on_fail }
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
struct Common {
    timeout: Option<RawDuration>,
    rise: Option<u32>,
    fall: Option<u32>,
    on_fail: Option<RawOnFail>,
}

/// What identifies a service across the file.
struct Identity {
    name: Option<String>,
    prefixes: Vec<(usize, Prefix)>,
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
        let spec = self.spec(l);
        let (service, problems) = validate::service(&spec);
        for p in problems {
            let path = p.origin.to_string();
            match p.severity {
                Severity::Error => self.err(path, p.message),
                Severity::Warning => self.warn(&path, p.message),
            }
        }
        let name = l.svc.name.as_deref().and_then(|n| valid_name(n).ok());
        let prefixes = l.svc.prefixes.iter().flatten().enumerate().filter_map(|(k, p)| Some((k, p.parse().ok()?)));
        let identity = Identity { name, prefixes: prefixes.collect() };
        (service.filter(|_| self.errors.len() == before), identity)
    }

    /// The one raw form of a JSON service, its defaults merged in. Only the
    /// rules of the JSON format itself (required keys, what `defaults` and
    /// state attributes may hold) are checked here; the service's rules are
    /// [`validate::service`]'s.
    fn spec(&mut self, l: &Layers<'_, 't>) -> RawSpec {
        let json = |p: String| Origin::Json(p);
        macro_rules! field {
            ($field:ident, $map:expr) => {{
                let (v, p) = pick!(l, $field);
                At { value: v.map($map), origin: json(p) }
            }};
        }
        let name = field!(name, Clone::clone);
        if name.value.is_none() {
            self.err(name.origin.to_string(), "missing: every service needs a name");
        }
        let prefixes_origin = json(format!("{}.prefixes", l.path));
        let prefixes =
            At { value: l.svc.prefixes.as_ref().map(|v| items(v, &prefixes_origin)), origin: prefixes_origin };

        let (raw_checks, checks_path) = match (&l.svc.checks, &l.def.checks) {
            (Some(c), _) => (c.as_slice(), format!("{}.checks", l.path)),
            (None, Some(c)) => (c.as_slice(), "defaults.checks".to_string()),
            (None, None) => (&[][..], format!("{}.checks", l.path)),
        };
        let checks_origin = json(checks_path);
        let mut checks = Vec::new();
        for (j, raw) in raw_checks.iter().enumerate() {
            let origin = checks_origin.index(j);
            if let Some(c) = self.check(raw, &origin) {
                checks.push(At::new(c, origin));
            }
        }
        let (v, p) = pick!(l, disable_file);
        let disable_files = v.map(|f| At::new(PathBuf::from(f), json(p))).into_iter().collect();
        let require = field!(require, |r: &RawRequire| match r {
            RawRequire::All => raw::RawRequire::All,
            RawRequire::Any => raw::RawRequire::Any,
            RawRequire::AtLeast(n) => raw::RawRequire::AtLeast(*n),
        });
        let (v, p) = pick!(l, neighbors);
        let neighbors_origin = json(p);
        let neighbors = At::new(v.map(|n| items(n, &neighbors_origin)).unwrap_or_default(), neighbors_origin);

        let none = RawAttributes::default();
        let base = [
            (l.svc.attributes.as_ref().map_or(&none, |o| &o.0), format!("{}.attributes", l.path)),
            (l.def.attributes.as_ref().map_or(&none, |o| &o.0), "defaults.attributes".to_string()),
        ];
        let up = attributes(&base);
        let path_id = match layer!(base, path_id) {
            Some((v, p)) => Field::given(*v, json(p)),
            None => Field::absent(json(format!("{}.attributes.path_id", l.path))),
        };
        let mut layers = vec![
            (l.svc.degraded.as_ref().map_or(&none, |o| &o.0), format!("{}.degraded", l.path)),
            (l.def.degraded.as_ref().map_or(&none, |o| &o.0), "defaults.degraded".to_string()),
        ];
        self.no_path_id(&layers);
        // The degraded MED is UP's + 100 unless a degraded layer sets it.
        let degraded_med = attributes(&layers).med;
        layers.extend(base.iter().cloned());
        let degraded = raw::RawAttributes { med: degraded_med, ..attributes(&layers) };
        let (v, p) = pick!(l, on_down);
        let down = self.action(v, &p, &base);
        let (v, p) = pick!(l, disabled);
        let disabled = self.action(v, &p, &base);

        let (v, p) = pick!(l, dampening);
        let dampening_origin = json(p);
        let dampening = At {
            value: v.map(|d| match d {
                RawDampening::Off => raw::RawDampening::Off,
                RawDampening::On(f) => {
                    let o = &dampening_origin;
                    let f = f.as_ref();
                    raw::RawDampening::On {
                        half_life: duration_field(f.and_then(|f| f.half_life.as_ref()), o.join("half_life")),
                        penalty: At::new(f.and_then(|f| f.penalty), o.join("penalty")),
                        suppress: At::new(f.and_then(|f| f.suppress), o.join("suppress")),
                        reuse: At::new(f.and_then(|f| f.reuse), o.join("reuse")),
                        max_suppress: duration_field(f.and_then(|f| f.max_suppress.as_ref()), o.join("max_suppress")),
                    }
                }
            }),
            origin: dampening_origin.clone(),
        };
        let (v, p) = pick!(l, drain);
        let o = json(p);
        let d = v.map(|d| &d.0);
        let drain = raw::RawDrain {
            communities: At::new(
                d.and_then(|d| d.communities.as_ref()).map(|c| items(c, &o.join("communities"))),
                o.join("communities"),
            ),
            med: At::new(d.and_then(|d| d.med), o.join("med")),
            as_path: At::new(d.and_then(|d| d.as_path.as_ref()).map(as_path), o.join("as_path")),
            duration: duration_field(d.and_then(|d| d.duration.as_ref()), o.join("duration")),
            on_shutdown: d.and_then(|d| d.on_shutdown).unwrap_or(false),
        };

        let (v, p) = pick!(l, interval);
        let interval = duration_field(v, json(p));
        let (v, p) = pick!(l, fast_interval);
        let fast_interval = duration_field(v, json(p));
        let (v, p) = pick!(l, timeout);
        let timeout = duration_field(v, json(p));
        let (v, p) = pick!(l, reassert);
        let reassert = duration_field(v, json(p));
        RawSpec {
            name,
            prefixes,
            checks: At::new(checks, checks_origin),
            require,
            disable_files,
            interval,
            fast_interval,
            timeout,
            rise: field!(rise, |n: &u32| *n),
            fall: field!(fall, |n: &u32| *n),
            reassert,
            next_hop: field!(next_hop, Clone::clone),
            next_hop6: field!(next_hop6, Clone::clone),
            neighbors,
            path_id,
            med_increase: field!(med_increase, |n: &u32| i64::from(*n)),
            up,
            degraded,
            down,
            disabled,
            covering: field!(covering, Clone::clone),
            dampening,
            drain,
            run_as_user: {
                let (v, p) = pick!(l, run_as);
                At { value: v.and_then(|r| r.user.clone()), origin: json(format!("{p}.user")) }
            },
            run_as_group: {
                let (v, p) = pick!(l, run_as);
                At { value: v.and_then(|r| r.group.clone()), origin: json(format!("{p}.group")) }
            },
        }
    }

    fn no_path_id(&mut self, layers: &[(&RawAttributes, String)]) {
        for (a, p) in layers {
            if a.path_id.is_some() {
                self.err(format!("{p}.path_id"), "the path id is per service: set it in attributes");
            }
        }
    }

    fn action(&mut self, v: Option<&RawAction>, path: &str, base: &[(&RawAttributes, String); 2]) -> raw::RawAction {
        match v {
            None | Some(RawAction::Withdraw) => raw::RawAction::Withdraw,
            Some(RawAction::Announce(Obj(attrs))) => {
                let mut layers = vec![(attrs, format!("{path}.announce"))];
                self.no_path_id(&layers);
                layers.extend(base.iter().cloned());
                raw::RawAction::Announce(attributes(&layers))
            }
        }
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

    /// A check as written: its type picks the keys it may have.
    fn check(&mut self, raw: &'t RawValue, origin: &Origin) -> Option<raw::RawCheck> {
        let path = &origin.to_string();
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
        let (probe, common, keys): (_, Common, &'static [(&'static str, &'static str)]) = match kind.as_deref() {
            Some("tcp") => {
                let c = self.parse::<RawTcp>(sub, path)?;
                let probe =
                    raw::RawProbe::Tcp { address: c.address.clone(), send: c.send.clone(), expect: c.expect.clone() };
                (probe, c.common_owned(), &[("address", "address"), ("send", "send"), ("expect", "expect")])
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
                let keys = &[
                    ("url", "url"),
                    ("method", "method"),
                    ("host", "host"),
                    ("status", "status"),
                    ("body", "body"),
                    ("body-regex", "body_regex"),
                    ("header", "headers"),
                    ("ca", "ca"),
                ];
                (raw::RawProbe::Http(b), c.common_owned(), keys)
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
                let keys = &[
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
                (raw::RawProbe::Dns(b), c.common_owned(), keys)
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
                let keys = &[
                    ("server", "server"),
                    ("max-stratum", "max_stratum"),
                    ("max-offset", "max_offset"),
                    ("max-dispersion", "max_dispersion"),
                ];
                (raw::RawProbe::Ntp(b), c.common_owned(), keys)
            }
            Some("command") => {
                let c = self.parse::<RawCommand>(sub, path)?;
                let exit_codes = match c.exit_codes {
                    None | Some(RawExitCodes::Nagios) => ExitCodes::Nagios,
                    Some(RawExitCodes::ZeroIsHealthy) => ExitCodes::ZeroIsHealthy,
                };
                let probe = raw::RawProbe::Command { argv: c.argv.clone(), shell: c.shell.clone(), exit_codes };
                (probe, c.common_owned(), &[("argv", "argv"), ("shell", "shell")])
            }
            Some("file") => {
                let c = self.parse::<RawFile>(sub, path)?;
                return Some(raw::RawCheck::File(At::new(PathBuf::from(&c.path), origin.join("path"))));
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
        let on_fail = common.on_fail.map(|f| match f {
            RawOnFail::Down => "down".to_string(),
            RawOnFail::Degrade => "degrade".to_string(),
        });
        Some(raw::RawCheck::Probe(Box::new(raw::RawProbeCheck {
            probe,
            keys: raw::ProbeKeys::Json { check: origin.clone(), keys },
            timeout: duration_field(common.timeout.as_ref(), origin.join("timeout")),
            rise: At::new(common.rise, origin.join("rise")),
            fall: At::new(common.fall, origin.join("fall")),
            on_fail: At::new(on_fail, origin.join("on_fail")),
        })))
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

/// Raw list items, each at its index under `origin`.
fn items(v: &[String], origin: &Origin) -> Vec<At<String>> {
    v.iter().enumerate().map(|(k, s)| At::new(s.clone(), origin.index(k))).collect()
}

fn duration_field(v: Option<&RawDuration>, origin: Origin) -> Field<String> {
    At::new(v.map(|RawDuration(s)| s.clone()), origin)
}

fn as_path(v: &RawAsPath) -> raw::RawAsPath {
    match v {
        RawAsPath::Text(s) => raw::RawAsPath::Text(s.clone()),
        RawAsPath::List(l) => raw::RawAsPath::List(l.clone()),
    }
}

/// Attributes from layers, the first layer that sets a key winning; an
/// unset key is at the first layer's path.
fn attributes(layers: &[(&RawAttributes, String)]) -> raw::RawAttributes {
    let first = Origin::Json(layers[0].1.clone());
    let mut out = raw::RawAttributes::none(&first);
    macro_rules! resolve {
        ($field:ident, $map:expr) => {
            if let Some((v, p)) = layer!(layers, $field) {
                let origin = Origin::Json(p);
                out.$field = At { value: Some($map(v, &origin)), origin };
            }
        };
    }
    resolve!(med, |v: &u32, _: &Origin| *v);
    resolve!(local_preference, |v: &u32, _: &Origin| *v);
    resolve!(origin, |v: &String, _: &Origin| v.clone());
    resolve!(as_path, |v: &RawAsPath, _: &Origin| as_path(v));
    resolve!(communities, |v: &Vec<String>, o: &Origin| items(v, o));
    resolve!(extended_communities, |v: &Vec<String>, o: &Origin| items(v, o));
    resolve!(large_communities, |v: &Vec<String>, o: &Origin| items(v, o));
    out
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
