//! The one validator: a [`RawSpec`] (from flags or JSON) into a
//! [`Service`], with every problem at its [`Origin`]. Every rule about a
//! service lives here, once; the flag and JSON translations only move
//! values.
//!
//! Rules where the two front ends used to disagree, and the choice made:
//! - a timeout (the service's or a check's) may equal the interval (the
//!   bundled healthcheck's defaults are 5 s and 5 s) or be longer (the
//!   bundled healthcheck accepts `-t 10 -i 5`, and a drop-in must too), the
//!   latter with a warning: probe rounds do not overlap, so a round that
//!   runs to its timeout delays the next one;
//! - IPv6 prefixes with next-hop `self` and no IPv6 next hop are a warning:
//!   they work over an IPv6 BGP session, and ExaBGP refuses them over an
//!   IPv4 one. An IPv4 address as the only next hop is an error.
//!
//! Also checked here, for both: durations are at most
//! [`crate::model::duration::MAX`]; names have no control characters;
//! IPv4-mapped IPv6 prefixes are refused (by [`Prefix`]); a default route is
//! a warning.

use std::collections::HashSet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::core::dampening::Dampening;
use crate::core::fsm::Require;
use crate::model::bgp::{AsPath, Community, ExtCommunity, LargeCommunity, NextHop, Origin as BgpOrigin, Prefix};
use crate::model::duration;
use crate::model::fleet::FleetSettings;
use crate::model::origin::{At, Field, Origin, Problem, Severity};
use crate::model::raw::{
    ProbeKind, RawAction, RawAsPath, RawAttributes, RawCheck, RawDampening, RawDrain, RawProbe, RawProbeCheck,
    RawRequire, RawSpec, RawWatch,
};
use crate::model::service::{Action, Attributes, DrainPolicy, OnFail, Service, ServiceCheck, Timing};
use crate::model::watch::{MAX_LISTEN, Process, Watch, parse_listen, valid_unit};
use crate::probe::command::{CommandProbe, Program, RunAs};
use crate::probe::tcp::{TcpProbe, parse_socket_addr};
use crate::probe::{Check, SpecError};

mod fleet;

pub use self::fleet::fleet;

/// Longest service name, in characters.
pub const NAME_MAX: usize = 64;

/// Most half-lives in `max_suppress`: the penalty ceiling is
/// `reuse × 2^(max_suppress / half_life)`, which must stay a number.
const MAX_HALF_LIVES: f64 = 64.0;

/// Checks a service name: 1 to [`NAME_MAX`] characters of `A-Z a-z 0-9 _ . -`
/// (so no control character can forge a log line).
pub fn valid_name(n: &str) -> Result<String, String> {
    let len = n.chars().count();
    if (1..=NAME_MAX).contains(&len) && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        Ok(n.to_string())
    } else {
        Err(format!("{n:?} is not a name (1-{NAME_MAX} characters of A-Z a-z 0-9 _ . -)"))
    }
}

/// Validates a raw service. The service comes back only when there is no
/// error; the problems (errors and warnings) always do.
pub fn service(raw: &RawSpec) -> (Option<Service>, Vec<Problem>) {
    service_in(raw, None)
}

/// Validates a raw service of a process with these fleet settings (its
/// guard defaults to the fleet's `min_sites`).
pub fn service_in(raw: &RawSpec, fleet: Option<&FleetSettings>) -> (Option<Service>, Vec<Problem>) {
    let mut v = V::default();
    let s = v.service(raw, fleet).map(Service::compact);
    let mut seen = HashSet::new();
    let problems: Vec<Problem> = v.problems.into_iter().filter(|p| seen.insert(p.clone())).collect();
    let ok = !problems.iter().any(|p| p.severity == Severity::Error);
    (s.filter(|_| ok), problems)
}

#[derive(Default)]
struct V {
    problems: Vec<Problem>,
}

impl V {
    fn err(&mut self, origin: &Origin, message: impl Into<String>) {
        self.problems.push(Problem { severity: Severity::Error, origin: origin.clone(), message: message.into() });
    }

    fn warn(&mut self, origin: &Origin, message: impl Into<String>) {
        self.problems.push(Problem { severity: Severity::Warning, origin: origin.clone(), message: message.into() });
    }

    fn take<T>(&mut self, origin: &Origin, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.err(origin, e)).ok()
    }

    fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.severity == Severity::Error).count()
    }

    fn service(&mut self, raw: &RawSpec, fleet: Option<&FleetSettings>) -> Option<Service> {
        let before = self.errors();
        let (prefixes, all_prefixes) = self.prefixes(raw);
        let name = match &raw.name.value {
            Some(n) => self.take(&raw.name.origin, valid_name(n)),
            None => prefixes.first().map(ToString::to_string),
        };

        // Timing first: check timeouts are judged against the interval.
        let interval = self.duration(&raw.interval, Duration::from_secs(5));
        if interval.is_some_and(|d| d.is_zero()) {
            self.err(
                &raw.interval.origin,
                "must be more than 0 (0, the bundled healthcheck's \"exit after the first announcement\", is not \
                 supported: ExaBGP respawns a process that exits and shuts itself down after 5 respawns)",
            );
        }
        let interval = interval.filter(|d| !d.is_zero());
        let fast_default = interval.map_or(Duration::from_secs(1), |i| i.min(Duration::from_secs(1)));
        let fast_interval = self.duration(&raw.fast_interval, fast_default);
        if fast_interval.is_some_and(|d| d.is_zero()) {
            self.err(&raw.fast_interval.origin, "must be more than 0");
        }
        if let (Some(f), Some(i)) = (fast_interval, interval)
            && f > i
        {
            self.warn(
                &raw.fast_interval.origin,
                format!("{} is longer than the interval ({})", duration::show(f), duration::show(i)),
            );
        }
        let timeout_default = match interval {
            Some(i) if i > Duration::from_secs(2) => Duration::from_secs(2),
            Some(i) => i / 2,
            None => Duration::from_secs(2),
        };
        let timeout = self.duration(&raw.timeout, timeout_default);
        if let Some(t) = timeout {
            self.check_timeout(&raw.timeout.origin, t, interval);
        }
        let rise = self.threshold(&raw.rise, 3);
        let fall = self.threshold(&raw.fall, 3);
        let reassert = self.duration(&raw.reassert, Duration::from_secs(300));

        let mut checks = Vec::new();
        let mut disable_files = Vec::new();
        for c in &raw.checks.value {
            match &c.value {
                RawCheck::Probe(p) => checks.extend(self.check(p, interval)),
                RawCheck::File(f) => disable_files.push(self.path(f)),
            }
        }
        if raw.checks.value.is_empty() {
            self.warn(&raw.checks.origin, "no checks: the service always counts as healthy");
        }
        let run_as = self.run_as(raw);
        if run_as.is_some() {
            for c in &mut checks {
                if let Check::Command(p) = &mut c.check {
                    *p = p.clone().with_run_as(run_as.clone());
                }
            }
        }
        for f in &raw.disable_files {
            disable_files.push(self.path(f));
        }
        let require = self.require(&raw.require, checks.len());

        let (next_hop, next_hop6) = self.next_hops(raw, &prefixes);
        let mut neighbors = Vec::new();
        for n in &raw.neighbors.value {
            let r = n.value.parse::<IpAddr>().map_err(|_| format!("{:?} is not an IP address", n.value));
            neighbors.extend(self.take(&n.origin, r));
        }

        let up = self.attributes(&raw.up, Some(100));
        let mut degraded = self.attributes(&raw.degraded, None);
        if degraded.med.is_none() {
            degraded.med = up.med.map(|m| m.saturating_add(100));
        }
        let down = self.action(&raw.down);
        let disabled = self.action(&raw.disabled);

        let covering = raw.covering.value.as_ref().and_then(|c| self.take(&raw.covering.origin, c.parse::<Prefix>()));
        if let Some(c) = covering
            && !prefixes.is_empty()
            && !prefixes.iter().any(|p| c.net().contains(&p.net()))
        {
            self.err(&raw.covering.origin, format!("{c} covers none of the service's prefixes"));
        }
        let dampening = self.dampening(&raw.dampening);
        let drain = self.drain(&raw.drain, &up);
        let guard = self.guard(&raw.fleet, fleet);
        let watch = self.watch(&raw.watch);

        if self.errors() != before {
            return None;
        }
        Some(Service {
            name: name?,
            prefixes: all_prefixes.then_some(prefixes)?,
            next_hop: next_hop?,
            next_hop6,
            neighbors,
            path_id: raw.path_id.value,
            med_increase: raw.med_increase.value.unwrap_or(0),
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
            guard: guard?,
            watch,
        })
    }

    /// The watch sources (issue 13).
    fn watch(&mut self, raw: &RawWatch) -> Watch {
        let mut w = Watch { trust_events: raw.trust_events.value.unwrap_or(true), ..Watch::default() };
        let pid = raw.pid.value.and_then(|n| {
            let r = u32::try_from(n).ok().and_then(NonZeroU32::new).ok_or(format!("{n} is not a process id"));
            self.take(&raw.pid.origin, r)
        });
        w.process = match (&raw.pid_file.value, pid) {
            (Some(_), Some(_)) => {
                self.err(&raw.pid.origin, "give pid_file or pid, not both");
                None
            }
            (Some(f), None) => Some(Process::PidFile(self.path(&At::new(f.clone(), raw.pid_file.origin.clone())))),
            (None, Some(p)) => Some(Process::Pid(p)),
            (None, None) => None,
        };
        if raw.listen.value.len() > MAX_LISTEN {
            self.err(&raw.listen.origin, format!("{} listeners: at most {MAX_LISTEN}", raw.listen.value.len()));
        }
        for l in raw.listen.value.iter().take(MAX_LISTEN) {
            if let Some(parsed) = self.take(&l.origin, parse_listen(&l.value)) {
                if w.listen.contains(&parsed) {
                    self.err(&l.origin, format!("{parsed} is given twice"));
                }
                w.listen.push(parsed);
            }
        }
        w.unit = raw.unit.value.as_ref().and_then(|u| self.take(&raw.unit.origin, valid_unit(u)));
        w
    }

    /// The prefixes that could be read, and whether all could.
    fn prefixes(&mut self, raw: &RawSpec) -> (Vec<Prefix>, bool) {
        let Some(raw_prefixes) = &raw.prefixes.value else {
            self.err(&raw.prefixes.origin, "missing: every service needs at least one prefix");
            return (Vec::new(), false);
        };
        if raw_prefixes.is_empty() {
            self.err(
                &raw.prefixes.origin,
                "empty: give at least one prefix to announce (exaprobe does not read addresses from lo)",
            );
            return (Vec::new(), false);
        }
        let mut out = Vec::new();
        for s in raw_prefixes {
            let Some(p) = self.take(&s.origin, s.value.parse::<Prefix>()) else { continue };
            if out.contains(&p) {
                self.err(&s.origin, format!("{p} is given twice"));
            }
            if p.prefix_len() == 0 {
                self.warn(
                    &s.origin,
                    format!(
                        "{p} is a default route: announced, it draws every destination the peers have no better \
                         route for to this host; make sure that is meant and that the peers accept it on purpose"
                    ),
                );
            }
            out.push(p);
        }
        let all = out.len() == raw_prefixes.len();
        (out, all)
    }

    /// The next hops, checked against the families of the prefixes.
    fn next_hops(&mut self, raw: &RawSpec, prefixes: &[Prefix]) -> (Option<NextHop>, Option<NextHop>) {
        let (o4, o6) = (&raw.next_hop.origin, &raw.next_hop6.origin);
        let next_hop = match &raw.next_hop.value {
            None => Some(NextHop::Own),
            Some(s) => self.take(o4, s.parse::<NextHop>()),
        };
        let next_hop6 = raw.next_hop6.value.as_ref().and_then(|s| self.take(o6, s.parse::<NextHop>()));
        if let Some(NextHop::Addr(a)) = next_hop6
            && a.is_ipv4()
        {
            self.err(o6, format!("{a} is an IPv4 address; give an IPv6 address or self"));
        }
        if let Some(NextHop::Addr(a)) = next_hop
            && a.is_ipv6()
            && let Some(p) = prefixes.iter().find(|p| !p.is_ipv6())
        {
            self.err(
                o4,
                format!("{a} is IPv6 but {p} is IPv4; give an IPv4 next hop or self (and {} for IPv6)", o6.key()),
            );
        }
        if next_hop6.is_none()
            && let Some(p) = prefixes.iter().find(|p| p.is_ipv6())
        {
            match next_hop {
                Some(NextHop::Addr(a)) if a.is_ipv4() => self
                    .err(o6, format!("{p} is IPv6 and {} {a} is IPv4: give {}, an IPv6 address", o4.key(), o6.key())),
                Some(NextHop::Own) => self.warn(
                    o6,
                    format!(
                        "{p} is IPv6 with next hop self, which works only over an IPv6 BGP session; over an IPv4 \
                         session ExaBGP refuses it (4.2 without even an ack): give {} there",
                        o6.key()
                    ),
                ),
                _ => {}
            }
        }
        (next_hop, next_hop6)
    }

    fn duration(&mut self, f: &Field<String>, default: Duration) -> Option<Duration> {
        match &f.value {
            None => Some(default),
            Some(s) => self.take(&f.origin, duration::parse(s)),
        }
    }

    /// A timeout is more than 0; longer than the interval is a warning:
    /// probe rounds never overlap, so a round that runs to its timeout
    /// delays the next one.
    fn check_timeout(&mut self, origin: &Origin, t: Duration, interval: Option<Duration>) {
        if t.is_zero() {
            self.err(origin, "must be more than 0");
        } else if let Some(i) = interval
            && t > i
        {
            self.warn(
                origin,
                format!(
                    "{} is longer than the interval ({}): probe rounds do not overlap, so a round that runs that \
                     long delays the next one",
                    duration::show(t),
                    duration::show(i)
                ),
            );
        }
    }

    fn threshold(&mut self, f: &Field<u32>, default: u32) -> Option<NonZeroU32> {
        let r = NonZeroU32::new(f.value.unwrap_or(default)).ok_or_else(|| "must be at least 1".to_string());
        self.take(&f.origin, r)
    }

    fn require(&mut self, f: &Field<RawRequire>, checks: usize) -> Option<Require> {
        match &f.value {
            None | Some(RawRequire::All) => Some(Require::All),
            Some(RawRequire::Any) => Some(Require::Any),
            Some(RawRequire::AtLeast(n)) => match usize::try_from(*n) {
                Ok(k) if k >= 1 && k <= checks => Some(Require::AtLeast(k)),
                _ => {
                    self.err(&f.origin, format!("{n} is not between 1 and the number of checks ({checks})"));
                    None
                }
            },
            Some(RawRequire::Other(s)) => {
                self.err(&f.origin, format!("{s:?} is not all, any or a number of checks"));
                None
            }
        }
    }

    /// A path; a relative one works, but against ExaBGP's working directory.
    fn path(&mut self, p: &At<PathBuf>) -> PathBuf {
        if p.value.as_os_str().is_empty() {
            self.err(&p.origin, "empty path");
        } else if p.value.is_relative() {
            self.warn(&p.origin, format!("{:?} is relative: it is looked up from ExaBGP's working directory", p.value));
        }
        p.value.clone()
    }

    /// The user (and group) command checks run as. Resolved here, once, so
    /// an unknown user is an error of `check`, not of the first probe.
    fn run_as(&mut self, raw: &RawSpec) -> Option<RunAs> {
        match (&raw.run_as_user.value, &raw.run_as_group.value) {
            (None, None) => None,
            (None, Some(_)) => {
                self.err(&raw.run_as_group.origin, "a group needs a user to run command checks as");
                None
            }
            (Some(user), group) => {
                let origin = raw.run_as_user.origin.clone();
                self.take(&origin, RunAs::resolve(user, group.as_deref()))
            }
        }
    }

    fn check(&mut self, c: &RawProbeCheck, interval: Option<Duration>) -> Option<ServiceCheck> {
        let built = match &c.probe {
            RawProbe::Words(kind, text) => match kind {
                ProbeKind::Tcp => text.parse().map(Check::Tcp),
                ProbeKind::Http => text.parse().map(Check::Http),
                ProbeKind::Dns => text.parse().map(Check::Dns),
                ProbeKind::Ntp => text.parse().map(Check::Ntp),
            },
            RawProbe::Tcp { address, send, expect } => parse_socket_addr(address)
                .map_err(|e| SpecError::at("address", e))
                .and_then(|a| {
                    TcpProbe::new(a, send.clone().map(String::into_bytes), expect.clone().map(String::into_bytes))
                })
                .map(Check::Tcp),
            RawProbe::Http(b) => b.clone().build().map(Check::Http),
            RawProbe::Dns(b) => b.clone().build().map(Check::Dns),
            RawProbe::Ntp(b) => b.clone().build().map(Check::Ntp),
            RawProbe::Command { argv, shell, exit_codes } => {
                let program = match (argv, shell) {
                    (Some(a), None) => Ok(Program::Argv(a.clone())),
                    (None, Some(s)) => Ok(Program::Shell(s.clone())),
                    (Some(_), Some(_)) => Err(SpecError::general("give either argv or shell, not both")),
                    (None, None) => {
                        Err(SpecError::general("give argv (a list: program and arguments) or shell (a string)"))
                    }
                };
                program.and_then(|p| CommandProbe::new(p, *exit_codes)).map(Check::Command)
            }
        };
        if let RawProbe::Words(ProbeKind::Http, text) = &c.probe {
            for w in crate::probe::http::deprecated_words(text) {
                let (origin, keep_key) = c.keys.locate(w.key);
                self.warn(&origin, if keep_key { w.to_string() } else { w.message });
            }
        }
        let check = built.map_err(|e| {
            let (origin, keep_key) = c.keys.locate(e.key);
            let message = if keep_key { e.to_string() } else { e.message };
            self.err(&origin, message);
        });
        let timeout = c.timeout.value.as_ref().and_then(|s| {
            let t = self.take(&c.timeout.origin, duration::parse(s))?;
            self.check_timeout(&c.timeout.origin, t, interval);
            Some(t)
        });
        let rise = c.rise.value.and_then(|_| self.threshold(&c.rise, 1));
        let fall = c.fall.value.and_then(|_| self.threshold(&c.fall, 1));
        let on_fail = match c.on_fail.value.as_deref() {
            None | Some("down") => OnFail::Down,
            Some("degrade") => OnFail::Degrade,
            Some(other) => {
                self.err(&c.on_fail.origin, format!("{other:?}: use down or degrade"));
                OnFail::Down
            }
        };
        Some(ServiceCheck { check: check.ok()?, timeout, on_fail, rise, fall })
    }

    fn list<T: FromStr<Err = String>>(&mut self, items: &[At<String>]) -> Vec<T> {
        let mut out = Vec::new();
        for s in items {
            out.extend(self.take(&s.origin, s.value.parse::<T>()));
        }
        out
    }

    fn as_path(&mut self, f: &Field<RawAsPath>) -> Option<AsPath> {
        match f.value.as_ref()? {
            RawAsPath::Text(s) => self.take(&f.origin, s.parse::<AsPath>()),
            RawAsPath::List(l) if l.is_empty() => {
                self.err(&f.origin, "empty: leave the AS path out instead");
                None
            }
            RawAsPath::List(l) => Some(AsPath(l.clone())),
        }
    }

    fn attributes(&mut self, a: &RawAttributes, med_default: Option<u32>) -> Attributes {
        let origin = a.origin.value.as_ref().and_then(|s| self.take(&a.origin.origin, s.parse::<BgpOrigin>()));
        let as_path = self.as_path(&a.as_path);
        let communities = a.communities.value.as_ref().map(|v| self.list::<Community>(v));
        let extended = a.extended_communities.value.as_ref().map(|v| self.list::<ExtCommunity>(v));
        let large = a.large_communities.value.as_ref().map(|v| self.list::<LargeCommunity>(v));
        Attributes {
            med: a.med.value.or(med_default),
            local_preference: a.local_preference.value,
            origin,
            as_path,
            communities: communities.unwrap_or_default(),
            extended_communities: extended.unwrap_or_default(),
            large_communities: large.unwrap_or_default(),
        }
    }

    fn action(&mut self, a: &RawAction) -> Option<Action> {
        match a {
            RawAction::Withdraw => Some(Action::Withdraw),
            RawAction::Announce(attrs) => {
                let before = self.errors();
                let a = self.attributes(attrs, Some(100));
                (self.errors() == before).then_some(Action::Announce(a))
            }
        }
    }

    fn dampening(&mut self, f: &Field<RawDampening>) -> Option<Option<Dampening>> {
        let r = Dampening::RECOMMENDED;
        let (half_life, penalty, suppress, reuse, max_suppress) = match &f.value {
            Some(RawDampening::Off) => return Some(None),
            None => return Some(Some(r)),
            Some(RawDampening::On { half_life, penalty, suppress, reuse, max_suppress }) => {
                (half_life, penalty, suppress, reuse, max_suppress)
            }
        };
        let half_life = self.duration(half_life, r.half_life);
        let max_suppress = self.duration(max_suppress, r.max_suppress);
        let d = Dampening {
            half_life: half_life?,
            penalty: penalty.value.unwrap_or(r.penalty),
            suppress: suppress.value.unwrap_or(r.suppress),
            reuse: reuse.value.unwrap_or(r.reuse),
            max_suppress: max_suppress?,
        };
        let d = self.take(&f.origin, d.validate())?;
        // RFC 2439's ceiling: the penalty never exceeds what decays to
        // `reuse` within `max_suppress`. Bounded so that it stays a number
        // (and the time to decay from it a representable duration).
        let half_lives = d.max_suppress.as_secs_f64() / d.half_life.as_secs_f64();
        if half_lives > MAX_HALF_LIVES {
            self.err(
                &f.origin,
                format!(
                    "max_suppress ({}) is more than {MAX_HALF_LIVES} half-lives ({}): the penalty ceiling \
                     reuse × 2^(max_suppress / half_life) would overflow; raise half_life or lower max_suppress",
                    duration::show(d.max_suppress),
                    duration::show(d.half_life)
                ),
            );
            return None;
        }
        let ceiling = d.reuse * 2f64.powf(half_lives);
        if ceiling <= d.suppress {
            self.warn(
                &f.origin,
                format!(
                    "the penalty can never exceed {ceiling:.0} (reuse × 2^(max_suppress / half_life)), so it never \
                     reaches suppress ({}): dampening never suppresses",
                    d.suppress
                ),
            );
        }
        Some(Some(d))
    }

    fn drain(&mut self, d: &RawDrain, up: &Attributes) -> Option<DrainPolicy> {
        let graceful = DrainPolicy::graceful(up);
        let before = self.errors();
        let mut attributes = up.clone();
        let extra = match &d.communities.value {
            None => vec![Community::GRACEFUL_SHUTDOWN],
            Some(c) => self.list::<Community>(c),
        };
        for c in extra {
            if !attributes.communities.contains(&c) {
                attributes.communities.push(c);
            }
        }
        if let Some(m) = d.med.value {
            attributes.med = Some(m);
        }
        if d.as_path.value.is_some() {
            attributes.as_path = self.as_path(&d.as_path);
        }
        let stage = self.duration(&d.duration, graceful.stage)?;
        (self.errors() == before).then_some(DrainPolicy { attributes, stage, on_shutdown: d.on_shutdown })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_printable_words() {
        assert_eq!(valid_name("dns-resolver_1.a"), Ok("dns-resolver_1.a".into()));
        for bad in ["", "a b", "web\nannounce route 198.51.100.1/32", "tab\t", "é", &"a".repeat(65)] {
            let e = valid_name(bad).unwrap_err();
            assert!(e.contains("1-64 characters") && !e.contains('\n'), "{bad:?}: {e}");
        }
        assert!(valid_name(&"a".repeat(64)).is_ok());
    }
}
