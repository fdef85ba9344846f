//! The JSON config's translation into the one raw form
//! ([`crate::model::raw::RawSpec`]) and the rules that are the file's own
//! (required keys, what `defaults` may hold), collecting every error at its
//! path. This module owns the walk over the file and a service's keys;
//! `check.rs` translates checks, `attributes.rs` the states' attributes,
//! `settings.rs` the fleet, watch, control and metrics settings.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::model::bgp::Prefix;
use crate::model::fleet::FleetSettings;
use crate::model::origin::{At, Field, Origin, Severity};
use crate::model::raw::{self, RawSpec};
use crate::model::service::Service;
use crate::model::validate::{self, valid_name};
use crate::ops::control::ControlSettings;
use crate::probe::command::ExitCodes;
use crate::probe::dns::DnsProbe;
use crate::probe::http::HttpProbe;
use crate::probe::ntp::NtpProbe;

use super::json::*;
use super::*;

/// The validation context: the file's text (for line numbers) and what has
/// been found so far.
pub(super) struct Cx<'t> {
    pub(super) text: &'t str,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<String>,
}

/// Where a service's settings come from: its own object, else `defaults`.
struct Layers<'r, 't> {
    svc: &'r RawService<'t>,
    def: &'r RawService<'t>,
    path: String,
    /// The process's fleet, for the services' guards.
    fleet: Option<&'r FleetSettings>,
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

// After the macros, which the submodules use.
mod attributes;
mod check;
mod settings;

use attributes::{as_path, attributes};
use settings::placeholder_fleet;

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

    pub(super) fn config(&mut self) -> Option<Config> {
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

        // The fleet before the services: their guards default to its min_sites.
        let fleet = top.fleet.map(|raw| {
            let parsed = self.parse::<Obj<RawFleet>>(raw.get(), "fleet").map(|f| self.fleet(&f.0));
            // An invalid fleet is reported once, at its own keys; the
            // services are judged as if it were valid.
            parsed.flatten().unwrap_or_else(placeholder_fleet)
        });
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
            let layers = Layers { svc: &svc, def: &defaults, path, fleet: fleet.as_ref() };
            let (service, identity) = self.service(&layers);
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
        Some(Config { services, origin_as, workers, control, metrics, fleet, warnings: Vec::new() })
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
        let (service, problems) = validate::service_in(&spec, l.fleet);
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
            fleet: {
                let (v, p) = pick!(l, fleet);
                let o = json(p);
                let value = v.map(|f| match f {
                    RawServiceFleet::Off => raw::RawServiceFleet::Off,
                    RawServiceFleet::On(m) => raw::RawServiceFleet::On { min_sites: At::new(*m, o.join("min_sites")) },
                });
                At { value, origin: o }
            },
            watch: self.watch(l),
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
}

/// Raw list items, each at its index under `origin`.
fn items(v: &[String], origin: &Origin) -> Vec<At<String>> {
    v.iter().enumerate().map(|(k, s)| At::new(s.clone(), origin.index(k))).collect()
}

fn duration_field(v: Option<&RawDuration>, origin: Origin) -> Field<String> {
    At::new(v.map(|RawDuration(s)| s.clone()), origin)
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
