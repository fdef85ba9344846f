//! The JSON config file of a multi-service exaprobe (`--config FILE`): its
//! schema, and its conversion into validated [`Service`]s. Every error is
//! reported at once, each at its JSON path (`services[2].checks[0].timeout`)
//! and, where the JSON parser can tell, with its line and column.
//!
//! How: the file (a regular file of at most [`crate::model::file::MAX_CONFIG`]
//! bytes; a leading byte order mark is skipped) is read into raw serde structs
//! with `deny_unknown_fields` (so a misspelt key is an error, not a silently
//! ignored setting). Each service, its `defaults` merged in, becomes the one
//! raw form of a service ([`crate::model::raw::RawSpec`], every value at its JSON path), which
//! [`crate::model::validate::service`], the validator the command line uses too, turns
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
//! `fleet` (optional) turns on the fleet guard: `{"etcd": ["http://127.0.0.1:2379", …],
//! "site": "ams1", "min_sites": 1, "ttl": "10s", "timeout": "500ms", "prefix":
//! "/exaprobe/", "tls": {"ca", "cert", "key"}, "auth": {"user", "password_file"}}`
//! (`etcd` and `site` required; `ttl` 2s–1h; `timeout` up to 4s and under the
//! ttl); each service is then guarded with the top-level `min_sites` unless
//! it says `"fleet": false` or `"fleet": {"min_sites": N}` (also in `defaults`).
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
//! - `dampening`: on by default ([`crate::core::dampening::Dampening::RECOMMENDED`]), `false` off, or
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
//!   `norecurse`, `soa_reference`, `soa_max_lag`, `soa_zone`, `edns` (bool),
//!   `bufsize`, `nsid` (true, or the NSID required), `class`, `dnssec`,
//!   `ad`, `aa`, `nodata`, `tls`, `tls_name`, `ca`, `insecure`, `doh`,
//!   `method`;
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

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::model::bgp::Prefix;
use crate::model::service::Service;
use crate::ops::control::ControlSettings;

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
    /// The fleet guard's store and this site, when configured.
    pub fleet: Option<crate::model::fleet::FleetSettings>,
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

/// True when `outer` contains all of `inner`.
pub fn covers(outer: &Prefix, inner: &Prefix) -> bool {
    outer.net().contains(&inner.net())
}

mod json;
mod translate;

use translate::Cx;
