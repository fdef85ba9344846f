//! The JSON config's translation into the one raw form
//! ([`crate::model::raw::RawSpec`]) and the rules that are the file's own
//! (required keys, what `defaults` may hold), collecting every error at its
//! path.

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

    /// The top-level `"fleet"`, through the one validator.
    fn fleet(&mut self, f: &RawFleet) -> Option<FleetSettings> {
        let o = Origin::Json("fleet".into());
        let path = |k: &str, v: &Option<String>| At::new(v.as_ref().map(PathBuf::from), o.join("tls").join(k));
        let etcd_origin = o.join("etcd");
        let raw = raw::RawFleet {
            origin: o.clone(),
            etcd: At::new(f.etcd.as_ref().map(|e| items(e, &etcd_origin)).unwrap_or_default(), etcd_origin),
            site: At::new(f.site.clone(), o.join("site")),
            min_sites: At::new(f.min_sites, o.join("min_sites")),
            ttl: duration_field(f.ttl.as_ref(), o.join("ttl")),
            timeout: duration_field(f.timeout.as_ref(), o.join("timeout")),
            prefix: At::new(f.prefix.clone(), o.join("prefix")),
            tls: f.tls.as_ref().map(|Obj(t)| raw::RawFleetTls {
                ca: path("ca", &t.ca),
                cert: path("cert", &t.cert),
                key: path("key", &t.key),
            }),
            auth: f.auth.as_ref().map(|Obj(a)| raw::RawFleetAuth {
                user: At::new(a.user.clone(), o.join("auth").join("user")),
                password_file: At::new(
                    a.password_file.as_ref().map(PathBuf::from),
                    o.join("auth").join("password_file"),
                ),
            }),
        };
        let (settings, problems) = validate::fleet(&raw);
        for p in problems {
            match p.severity {
                Severity::Error => self.err(p.origin.to_string(), p.message),
                Severity::Warning => self.warn(&p.origin.to_string(), p.message),
            }
        }
        settings
    }

    /// The watch sources: `watch` is the service's own (a pid file or a
    /// listener belongs to one service), `trust_events` may be a default.
    fn watch(&mut self, l: &Layers<'_, 't>) -> raw::RawWatch {
        if l.def.watch.is_some() {
            self.err("defaults.watch", "a watch cannot be a default: each service watches its own process");
        }
        let base = Origin::Json(format!("{}.watch", l.path));
        let (trust, p) = pick!(l, trust_events);
        let mut w = raw::RawWatch::none(&base, Origin::Json(p));
        w.trust_events.value = trust.copied();
        let Some(Obj(j)) = &l.svc.watch else { return w };
        w.pid_file.value = j.pid_file.as_ref().map(PathBuf::from);
        w.pid.value = j.pid;
        w.unit.value.clone_from(&j.unit);
        if let Some(OneOrMany(v, single)) = &j.listen {
            // One string is at `watch.listen`, a list's items at `listen[k]`.
            w.listen.value = if *single {
                v.iter().map(|s| At::new(s.clone(), w.listen.origin.clone())).collect()
            } else {
                items(v, &w.listen.origin)
            };
        }
        w
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
                if c.headers.is_some() {
                    self.warn(
                        &format!("{path}.headers"),
                        "deprecated: it sets request headers; write request_headers (and expect_headers to \
                         require headers on the response)",
                    );
                }
                for (name, value) in c.headers.iter().flatten() {
                    b = b.deprecated_header(format!("{name}: {value}"));
                }
                for (name, value) in c.request_headers.iter().flatten() {
                    b = b.header(format!("{name}: {value}"));
                }
                // "" requires the header, any value.
                for (name, re) in c.expect_headers.iter().flatten() {
                    b = b.expect_header(if re.is_empty() { name.clone() } else { format!("{name}:{re}") });
                }
                if let Some(v) = &c.cert {
                    b = b.cert_file(v.as_str());
                }
                if let Some(v) = &c.key {
                    b = b.key_file(v.as_str());
                }
                for v in c.resolve.iter().flatten() {
                    b = b.resolve(v.as_str());
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
                    ("request-header", "request_headers"),
                    ("expect-header", "expect_headers"),
                    ("ca", "ca"),
                    ("cert", "cert"),
                    ("key", "key"),
                    ("resolve", "resolve"),
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
                b = dns_more(b, &c);
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
                    ("edns", "edns"),
                    ("bufsize", "bufsize"),
                    ("nsid", "nsid"),
                    ("class", "class"),
                    ("dnssec", "dnssec"),
                    ("ad", "ad"),
                    ("aa", "aa"),
                    ("nodata", "nodata"),
                    ("tls", "tls"),
                    ("tls-name", "tls_name"),
                    ("ca", "ca"),
                    ("insecure", "insecure"),
                    ("doh", "doh"),
                    ("method", "method"),
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
                if let Some(v) = &c.max_root_distance {
                    b = b.max_root_distance(v.0.as_str());
                }
                if let Some(v) = &c.max_ref_age {
                    b = b.max_ref_age(v.0.as_str());
                }
                if let Some(v) = &c.source {
                    b = b.source(v.as_str());
                }
                let keys = &[
                    ("server", "server"),
                    ("max-stratum", "max_stratum"),
                    ("max-offset", "max_offset"),
                    ("max-dispersion", "max_dispersion"),
                    ("max-root-distance", "max_root_distance"),
                    ("max-ref-age", "max_ref_age"),
                    ("source", "source"),
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

/// Stands in for a fleet whose settings are invalid (and reported), so that
/// the services are judged as they would be with a valid one.
fn placeholder_fleet() -> FleetSettings {
    FleetSettings {
        endpoints: Vec::new(),
        site: String::new(),
        prefix: "/exaprobe/".into(),
        ttl: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_millis(500),
        min_sites: 1,
        tls: None,
        auth: None,
    }
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

/// The DNS settings of issue 12 (EDNS, NSID, DNSSEC, DoT, DoH), onto `b`.
fn dns_more(mut b: crate::probe::dns::DnsBuilder, c: &RawDns) -> crate::probe::dns::DnsBuilder {
    if let Some(on) = c.edns {
        b = b.edns(if on { "on" } else { "off" });
    }
    if let Some(v) = &c.bufsize {
        b = b.bufsize(v.0.as_str());
    }
    match &c.nsid {
        None => {}
        Some(RawNsid::Ask(on)) => b = b.nsid(*on),
        Some(RawNsid::Require(t)) => b = b.nsid_text(t.as_str()),
    }
    if let Some(v) = &c.class {
        b = b.class(v.as_str());
    }
    if let Some(v) = &c.nodata {
        b = b.nodata(v.as_str());
    }
    if let Some(v) = &c.tls_name {
        b = b.tls_name(v.as_str());
    }
    if let Some(v) = &c.doh {
        b = b.doh(v.as_str());
    }
    if let Some(v) = &c.method {
        b = b.method(v.as_str());
    }
    if let Some(v) = &c.ca {
        b = b.ca_file(v.as_str());
    }
    b.dnssec(c.dnssec.unwrap_or(false))
        .ad(c.ad.unwrap_or(false))
        .aa(c.aa.unwrap_or(false))
        .tls(c.tls.unwrap_or(false))
        .insecure(c.insecure.unwrap_or(false))
}
