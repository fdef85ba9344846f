//! The engine's pure core: all run-time state of the services, and one
//! method per event. Time is passed in; nothing here reads a clock, sleeps,
//! spawns or touches a file. What the shell must do (start probe rounds,
//! log, save the drains) comes back as [`Effects`]; ExaBGP commands go
//! through the one [`Writer`], which the core owns and which only queues and
//! hands lines to its sink.
//!
//! Services live in slots addressed by a stable id (their index); a probe
//! round finds its service through the round id, timers through a heap
//! ([`super::timers`]), so an event costs work in proportion to what it
//! changes. Every route line goes through the route table
//! ([`super::routes`]), which decides what is written: only changes, the
//! withdraws of a reload before anything else, and on shutdown every route
//! that may be announced.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::events::LogEvent;
use super::routes::{Routes, Want};
use super::timers::{Kind, Timers};
use crate::core::fsm::{Advert, Drain, Level, ServiceFsm, State};
use crate::exabgp::adj_rib::{self, Intended};
use crate::exabgp::encoder;
use crate::exabgp::{Answer, Counters, Incoming, Routed, Stamped, Writer};
use crate::model::service::{Action, OnFail, Service, ServiceCheck};
use crate::ops::control::{CheckStatus, DrainStatus, LastResult, Reply, Request, ServiceStatus, Status};
use crate::ops::metrics::{Live, Registry, ServiceGauges};
use crate::ops::state::{self, SavedDrain};
use crate::probe::{Health, Outcome};

/// First rounds are spread over at most this long.
const MAX_SPREAD: Duration = Duration::from_secs(1);

/// A probe round for the shell to run: first the maintenance files, then the
/// checks.
#[derive(Clone, Debug)]
pub struct RoundJob {
    /// The round's id (unique for the life of the core).
    pub round: u64,
    /// The service (its maintenance files, its name for worker limits).
    pub service: Arc<Service>,
    /// The checks to run, unless a maintenance file exists.
    pub probes: Vec<ProbeJob>,
}

/// One check of a round.
#[derive(Clone, Debug)]
pub struct ProbeJob {
    /// The round it belongs to.
    pub round: u64,
    /// Index of the check in its service.
    pub check: usize,
    /// The check.
    pub probe: Arc<ServiceCheck>,
    /// How long it may take.
    pub timeout: Duration,
}

/// What the shell must do after an event.
#[derive(Debug, Default)]
pub struct Effects {
    /// Probe rounds to start.
    pub rounds: Vec<RoundJob>,
    /// Log lines.
    pub events: Vec<LogEvent>,
    /// The drains changed: save [`Core::saved_drains`].
    pub save_drains: bool,
}

/// Why the core wants to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// ExaBGP said `shutdown` or closed stdin: nothing more may be written.
    ExabgpGone,
    /// SIGTERM or SIGINT: the announced prefixes were withdrawn.
    Signalled,
}

/// One probe round in progress.
#[derive(Clone, Debug)]
struct Round {
    id: u64,
    started: Instant,
    outcomes: Vec<Option<Outcome>>,
}

/// The run-time state of one service.
#[derive(Debug)]
struct Runtime {
    service: Arc<Service>,
    checks: Vec<Arc<ServiceCheck>>,
    fsm: ServiceFsm,
    round: Option<Round>,
    next_probe: Instant,
    last_assert: Option<Instant>,
    /// Why the asserted state was entered.
    last_reason: String,
    /// Each check's last outcome and how long it took.
    last_outcomes: Vec<Option<(Outcome, Duration)>>,
    /// The lines last asserted for this service.
    last_lines: Vec<String>,
    /// Who drained the service and why, while drained.
    drain_info: Option<SavedDrain>,
    /// The route keys (withdraw lines) of its prefixes, in prefix order.
    keys: Vec<String>,
}

impl Runtime {
    fn new(service: Service, first_probe: Instant) -> Runtime {
        let service = Arc::new(service);
        Runtime {
            checks: service.checks.iter().cloned().map(Arc::new).collect(),
            fsm: ServiceFsm::new(&service.thresholds(), service.require, first_probe)
                .with_dampening(service.dampening, first_probe),
            round: None,
            next_probe: first_probe,
            last_assert: None,
            last_reason: String::new(),
            last_outcomes: vec![None; service.checks.len()],
            last_lines: Vec::new(),
            drain_info: None,
            keys: encoder::withdraw_all(&service),
            service,
        }
    }

    fn reassert_due(&self) -> Option<Instant> {
        self.fsm.asserted()?;
        Some(self.last_assert? + self.service.timing.reassert?)
    }

    /// The wanted state of each route of the service, in prefix order;
    /// `None` while the service has no state yet (INIT).
    fn wanted(&self) -> Option<Vec<Want>> {
        let advert = self.fsm.asserted()?;
        Some(match self.service.action(advert) {
            Action::Withdraw => vec![Want::Withdraw; self.keys.len()],
            Action::Announce(_) => encoder::lines(&self.service, advert).into_iter().map(Want::Announce).collect(),
        })
    }
}

/// The engine's state: services, their state machines, the route table and
/// the ExaBGP writer.
pub struct Core<W: Write> {
    slots: Vec<Option<Runtime>>,
    by_name: HashMap<String, usize>,
    rounds: HashMap<u64, usize>,
    last_round: u64,
    timers: Timers,
    routes: Routes,
    writer: Writer<W>,
    metrics: Registry,
    /// Writer counters already copied into `metrics`.
    counted: Counters,
    /// Checking ExaBGP's adj-rib-out against the intent.
    verify: Verify,
    /// The inbox's dropped lines already counted in `metrics`.
    stdin_dropped: u64,
}

/// When and how the adj-rib-out is checked.
#[derive(Debug)]
struct Verify {
    /// How often; `None`: never.
    every: Option<Duration>,
    /// The next query.
    at: Option<Instant>,
    /// A query is in flight.
    asked: bool,
    /// Routes of services removed (or whose routes changed) since the last
    /// check: meant withdrawn, so advertised ones are repaired.
    gone: Vec<Intended>,
}

/// The first check, once the services had time for their first rounds.
const VERIFY_FIRST: Duration = Duration::from_secs(10);
/// The check after a reload.
const VERIFY_AFTER_RELOAD: Duration = Duration::from_secs(5);
/// A check that could not be used (the answer was cut, or commands were
/// behind it) is tried again this soon.
const VERIFY_RETRY: Duration = Duration::from_secs(5);

impl<W: Write> Core<W> {
    /// A core writing through `writer`, with `services` in INIT whose first
    /// rounds are spread from `now` on.
    pub fn new(writer: Writer<W>, services: Vec<Service>, now: Instant) -> Self {
        let mut core = Core {
            slots: Vec::new(),
            by_name: HashMap::new(),
            rounds: HashMap::new(),
            last_round: 0,
            timers: Timers::default(),
            routes: Routes::default(),
            writer,
            metrics: Registry::new(),
            counted: Counters::default(),
            verify: Verify { every: None, at: None, asked: false, gone: Vec::new() },
            stdin_dropped: 0,
        };
        core.add_services(services, now);
        core
    }

    /// Checks ExaBGP's adj-rib-out every `every` (the first time
    /// [`VERIFY_FIRST`] from `now`), repairing any difference from the
    /// intent. Needs acks (the end of the answer is its `done`).
    pub fn verify_every(&mut self, every: Duration, now: Instant) {
        self.verify.every = Some(every);
        self.verify.at = now.checked_add(VERIFY_FIRST.min(every));
    }

    /// The writer (for the shell's final flush and for tests).
    pub fn writer(&mut self) -> &mut Writer<W> {
        &mut self.writer
    }

    /// When the core next has something to do, if no event comes first.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let verify = self.verify.at.filter(|_| !self.verify.asked);
        [self.timers.earliest(), self.writer.deadline(), verify].into_iter().flatten().min()
    }

    fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(i, _)| i)
    }

    fn rt(&self, i: usize) -> &Runtime {
        self.slots[i].as_ref().expect("a live service id")
    }

    fn rt_mut(&mut self, i: usize) -> &mut Runtime {
        self.slots[i].as_mut().expect("a live service id")
    }

    /// Re-arms the timers of service `i` from its state.
    fn rearm(&mut self, i: usize) {
        let rt = self.rt(i);
        let probe = rt.round.is_none().then_some(rt.next_probe);
        let (reassert, fsm) = (rt.reassert_due(), rt.fsm.next_timer());
        self.timers.set(i, Kind::Probe, probe);
        self.timers.set(i, Kind::Reassert, reassert);
        self.timers.set(i, Kind::Fsm, fsm);
    }

    fn add_services(&mut self, services: Vec<Service>, now: Instant) {
        let n = services.len() as u32;
        for (k, service) in services.into_iter().enumerate() {
            let spread = service.timing.interval.min(MAX_SPREAD) * k as u32 / n.max(1);
            let i = self.slots.iter().position(Option::is_none).unwrap_or(self.slots.len());
            self.by_name.insert(service.name.clone(), i);
            let rt = Runtime::new(service, now + spread);
            if i == self.slots.len() {
                self.slots.push(Some(rt));
            } else {
                self.slots[i] = Some(rt);
            }
            self.rearm(i);
        }
    }

    /// Handles every timer due at `now` and the writer's ack deadlines.
    pub fn tick(&mut self, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        self.writer.on_tick(now)?;
        while let Some(answer) = self.writer.take_answer() {
            self.verified(answer, now, fx)?;
        }
        if !self.verify.asked && self.verify.at.is_some_and(|at| now >= at) {
            self.verify.at = None;
            if self.writer.query(adj_rib::QUERY.to_string(), now)? {
                self.verify.asked = true;
            } else {
                log::warn!("the adj-rib-out check needs ExaBGP's acks (exabgp.api.ack); it is off");
                self.verify.every = None;
            }
        }
        while let Some((i, kind, due)) = self.timers.pop_due(now) {
            match kind {
                Kind::Probe => {
                    self.metrics.record_lateness(now.saturating_duration_since(due));
                    self.start_round(i, now, fx);
                }
                Kind::Reassert => self.reassert(i, now, fx)?,
                Kind::Fsm => self.fsm_tick(i, now, fx)?,
            }
            self.rearm(i);
        }
        Ok(())
    }

    fn start_round(&mut self, i: usize, now: Instant, fx: &mut Effects) {
        self.last_round += 1;
        let id = self.last_round;
        let rt = self.rt_mut(i);
        let probes = rt
            .checks
            .iter()
            .enumerate()
            .map(|(c, probe)| ProbeJob {
                round: id,
                check: c,
                probe: Arc::clone(probe),
                timeout: probe.timeout.unwrap_or(rt.service.timing.timeout),
            })
            .collect();
        rt.round = Some(Round { id, started: now, outcomes: vec![None; rt.checks.len()] });
        fx.rounds.push(RoundJob { round: id, service: Arc::clone(&rt.service), probes });
        self.rounds.insert(id, i);
    }

    /// The shell looked at the maintenance files of `round` before running
    /// its checks: `Some(file)` when one exists (the checks are not run).
    pub fn round_checked(
        &mut self,
        round: u64,
        maintenance: Option<&Path>,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let Some(&i) = self.rounds.get(&round) else { return Ok(()) };
        if let Some(file) = maintenance {
            self.rounds.remove(&round);
            let rt = self.rt_mut(i);
            let started = rt.round.take().map_or(now, |r| r.started);
            rt.next_probe = (started + rt.service.timing.interval).max(now);
            let before = rt.fsm.asserted();
            if let Some(advert) = rt.fsm.observe_disabled(now) {
                let reason = format!("maintenance file {} exists", file.display());
                self.assert(i, before, advert, reason, now, fx)?;
            }
            self.rearm(i);
        } else if self.rt(i).checks.is_empty() {
            self.rounds.remove(&round);
            let started = self.rt_mut(i).round.take().map_or(now, |r| r.started);
            self.finish_round(i, started, &[], now, fx)?;
        }
        Ok(())
    }

    /// A probe of `round` finished.
    pub fn probe_done(
        &mut self,
        round: u64,
        check: usize,
        mut outcome: Outcome,
        elapsed: Duration,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        // A round of a service removed by a reload finds no owner.
        let Some(&i) = self.rounds.get(&round) else { return Ok(()) };
        let rt = self.slots[i].as_mut().expect("a live service id");
        let Some(c) = rt.checks.get(check) else { return Ok(()) };
        // A check marked "degrade" degrades its service instead of downing it.
        if c.on_fail == OnFail::Degrade && outcome.health == Health::Down {
            outcome.health = Health::Degraded;
        }
        fx.events.push(LogEvent::Probe {
            service: rt.service.name.clone(),
            check: c.check.to_string(),
            outcome: outcome.to_string(),
            elapsed,
        });
        self.metrics.record_probe(&rt.service.name, &c.check.to_string(), c.check.kind(), &outcome, elapsed);
        rt.last_outcomes[check] = Some((outcome.clone(), elapsed));
        let Some(r) = rt.round.as_mut() else { return Ok(()) };
        r.outcomes[check] = Some(outcome);
        if r.outcomes.iter().all(Option::is_some) {
            let r = rt.round.take().expect("checked above");
            self.rounds.remove(&round);
            let outcomes: Vec<Outcome> = r.outcomes.into_iter().flatten().collect();
            self.finish_round(i, r.started, &outcomes, now, fx)?;
        }
        Ok(())
    }

    fn finish_round(
        &mut self,
        i: usize,
        started: Instant,
        outcomes: &[Outcome],
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let rt = self.rt_mut(i);
        let before_states: Vec<State> = rt.fsm.checks().iter().map(|c| c.state()).collect();
        let before = rt.fsm.asserted();
        let levels: Vec<Level> = outcomes.iter().map(|o| Level::from(o.health)).collect();
        let advert = rt.fsm.observe(&levels, now);
        rt.next_probe = (started + rt.service.timing.next_delay(rt.fsm.is_settling())).max(now);
        for (c, (fsm, o)) in rt.fsm.checks().iter().zip(outcomes).enumerate() {
            let (rise, fall) = fsm.thresholds();
            let shown = |s: State| match s {
                State::Rising(n) => format!("RISING({n}/{rise})"),
                State::Falling(n) => format!("FALLING({n}/{fall})"),
                other => other.to_string(),
            };
            fx.events.push(LogEvent::Check {
                service: rt.service.name.clone(),
                check: rt.checks[c].check.to_string(),
                from: shown(before_states[c]),
                to: shown(fsm.state()),
                outcome: o.to_string(),
            });
        }
        if let Some(advert) = advert {
            let reason = if outcomes.is_empty() {
                "no checks configured".to_string()
            } else {
                let all: Vec<String> =
                    rt.checks.iter().zip(outcomes).map(|(c, o)| format!("{}: {o}", c.check)).collect();
                format!("require {}: {}", rt.service.require, all.join("; "))
            };
            self.assert(i, before, advert, reason, now, fx)?;
        }
        self.rearm(i);
        Ok(())
    }

    /// Records a transition to `advert` and writes its lines.
    fn assert(
        &mut self,
        i: usize,
        before: Option<Advert>,
        advert: Advert,
        reason: String,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let rt = self.rt_mut(i);
        let name = rt.service.name.clone();
        let from = before.map_or("INIT", Advert::name);
        self.metrics.record_transition(&name, from, advert.name());
        let rt = self.rt_mut(i);
        rt.last_reason.clone_from(&reason);
        rt.last_assert = Some(now);
        // A drain ends by itself at its expiry, whichever event noticed it
        // (its timer, or a probe round that came first).
        if rt.drain_info.is_some() && rt.fsm.drain().is_none() {
            rt.drain_info = None;
            fx.events.push(LogEvent::DrainExpired { service: name.clone() });
            fx.save_drains = true;
        }
        fx.events.push(LogEvent::Transition { service: name.clone(), from: before, to: advert, reason });
        fx.events.push(LogEvent::Routes {
            service: name,
            advert,
            announce: matches!(rt.service.action(advert), Action::Announce(_)),
            prefixes: rt.service.prefixes.iter().map(ToString::to_string).collect(),
        });
        self.sync(i, now)?;
        self.rearm(i);
        Ok(())
    }

    /// Brings the routes of service `i` to what its state wants, writing
    /// only what changed (and a first withdraw of routes never told).
    fn sync(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        let rt = self.slots[i].as_mut().expect("a live service id");
        let Some(wanted) = rt.wanted() else { return Ok(()) };
        rt.last_lines = rt
            .keys
            .iter()
            .zip(&wanted)
            .map(|(k, w)| match w {
                Want::Announce(line) => line.clone(),
                Want::Withdraw => k.clone(),
            })
            .collect();
        for (key, want) in rt.keys.iter().zip(wanted) {
            if let Some(line) = self.routes.want(key, want) {
                self.writer.send(line, Some(key.clone()), now)?;
            }
        }
        Ok(())
    }

    /// Writes the current announcements again. Withdrawn routes are not
    /// re-sent: ExaBGP deduplicates identical announcements, but it sends a
    /// withdraw UPDATE every time it is told to withdraw.
    fn reassert(&mut self, i: usize, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let rt = self.slots[i].as_mut().expect("a live service id");
        rt.last_assert = Some(now);
        let Some(advert) = rt.fsm.asserted() else { return Ok(()) };
        let lines: Vec<(String, String)> =
            rt.keys.iter().filter_map(|k| Some((k.clone(), self.routes.announced(k)?.to_string()))).collect();
        if lines.is_empty() {
            return Ok(());
        }
        fx.events.push(LogEvent::Reasserted { service: rt.service.name.clone(), advert });
        for (key, line) in lines {
            self.writer.send(line, Some(key), now)?;
        }
        Ok(())
    }

    /// Lets time pass for service `i`: drain stages, drain expiry, the end of
    /// a suppression.
    fn fsm_tick(&mut self, i: usize, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let rt = self.rt_mut(i);
        let before = rt.fsm.asserted();
        if let Some(advert) = rt.fsm.tick(now) {
            let reason = match advert {
                Advert::Drained => "drain stage over",
                _ => "timer",
            };
            self.assert(i, before, advert, reason.to_string(), now, fx)?;
        }
        Ok(())
    }

    /// A line from ExaBGP. Returns a stop when ExaBGP is going away.
    pub fn stdin(&mut self, line: Stamped, now: Instant, fx: &mut Effects) -> anyhow::Result<Option<Stop>> {
        match self.writer.on_stdin(line, now)? {
            Routed::Taken => {}
            Routed::Answer(answer) => self.verified(answer, now, fx)?,
            Routed::Event(Incoming::Shutdown) => {
                log::info!("ExaBGP is shutting down; exiting without writing more");
                return Ok(Some(Stop::ExabgpGone));
            }
            Routed::Event(Incoming::Neighbor(line)) => log::info!("ExaBGP: {line}"),
            Routed::Event(Incoming::Other(line)) => log::debug!("ExaBGP wrote: {line}"),
            Routed::Event(_) => {}
        }
        while let Some(answer) = self.writer.take_answer() {
            self.verified(answer, now, fx)?;
        }
        Ok(None)
    }

    /// The answer to `show adj-rib out extensive`: repairs what differs
    /// from the intent (missing or different announcements, routes meant
    /// withdrawn but advertised), and schedules the next check.
    fn verified(&mut self, answer: Answer, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let _ = fx;
        self.verify.asked = false;
        let again = |v: &Verify, d: Duration| v.every.and_then(|e| now.checked_add(d.min(e)));
        if !answer.ok || !answer.complete || answer.behind > 0 {
            log::debug!(
                "adj-rib-out check skipped (ack {}, complete {}, {} commands behind it); again soon",
                if answer.ok { "done" } else { "error" },
                answer.complete,
                answer.behind
            );
            self.verify.at = again(&self.verify, VERIFY_RETRY);
            return Ok(());
        }
        self.verify.at = again(&self.verify, Duration::MAX);
        let advertised = adj_rib::parse(&answer.lines);
        if advertised.is_empty() {
            // No session up (or nothing ever advertised): nothing to compare.
            log::debug!("adj-rib-out check: ExaBGP advertises nothing");
            return Ok(());
        }
        // Old routes meant withdrawn, unless a service owns them now.
        let gone = std::mem::take(&mut self.verify.gone);
        let owned: std::collections::HashSet<&str> =
            self.ids().flat_map(|i| self.rt(i).keys.iter().map(String::as_str)).collect();
        let mut intended: Vec<Intended> = gone
            .into_iter()
            .filter(|w| !owned.contains(encoder::withdraw(&w.neighbors, &w.prefix, w.path_id).as_str()))
            .collect();
        for i in self.ids() {
            let rt = self.rt(i);
            intended.extend(Intended::for_service(&rt.service, rt.fsm.asserted()));
        }
        let repairs = adj_rib::diff(&intended, &advertised);
        if repairs.is_empty() {
            log::debug!("adj-rib-out check: {} routes as intended", advertised.len());
            return Ok(());
        }
        let shown: Vec<String> = repairs.iter().map(|r| format!("{} ({:?})", r.prefix, r.reason)).collect();
        log::warn!(
            "ExaBGP advertises {} routes otherwise than intended; repairing: {}",
            repairs.len(),
            shown.join(", ")
        );
        for r in repairs {
            self.metrics.record_repair(match r.reason {
                adj_rib::Reason::Missing => "missing",
                adj_rib::Reason::Different => "different",
                adj_rib::Reason::Unexpected => "unexpected",
            });
            // A route's own key, so that a newer state supersedes the repair.
            let key = encoder::withdraw(&[], &r.prefix, None);
            let key = intended
                .iter()
                .find(|w| w.prefix == r.prefix)
                .map_or(key, |w| encoder::withdraw(&w.neighbors, &w.prefix, w.path_id));
            self.writer.send(r.line, Some(key), now)?;
        }
        Ok(())
    }

    fn start_drain(
        &mut self,
        i: usize,
        saved: SavedDrain,
        drain: Drain,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let rt = self.rt_mut(i);
        fx.events.push(LogEvent::Drained {
            service: rt.service.name.clone(),
            by: saved.by.clone(),
            reason: saved.reason.clone(),
            length: drain.until.map(|u| u.saturating_duration_since(drain.since)),
        });
        rt.drain_info = Some(saved);
        let before = rt.fsm.asserted();
        if let Some(advert) = rt.fsm.start_drain(drain, now) {
            self.assert(i, before, advert, "drained by the operator".into(), now, fx)?;
        }
        self.rearm(i);
        Ok(())
    }

    /// Applies the drains of the state file, at start; `wall` is the time
    /// since the Unix epoch, in seconds. Fails closed (see
    /// [`crate::ops::state`]): an unreadable file drains every service, a
    /// bad entry drains its own.
    pub fn restore_drains(
        &mut self,
        loaded: state::Loaded,
        path: &Path,
        wall: f64,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let drains = match loaded {
            state::Loaded::Read { state, problems } => {
                for p in problems {
                    log::error!("state file {}: {p}", path.display());
                }
                state.drains
            }
            state::Loaded::Unreadable { error, moved_to } => {
                log::error!(
                    "state file {} is unreadable ({error}){}; every service stays drained until undrained",
                    path.display(),
                    moved_to.map_or(String::new(), |m| format!("; kept as {}", m.display()))
                );
                let saved = SavedDrain {
                    by: state::BY_EXAPROBE.into(),
                    reason: format!("state file unreadable: {error}").chars().take(state::MAX_TEXT).collect(),
                    since: wall,
                    until: None,
                };
                self.by_name.keys().map(|name| (name.clone(), saved.clone())).collect()
            }
        };
        for (name, saved) in drains {
            if saved.until.is_some_and(|u| u <= wall) {
                continue;
            }
            let Some(&i) = self.by_name.get(&name) else { continue };
            // Bounded by state::load: since <= wall, until <= wall + MAX_AHEAD.
            let ago = Duration::try_from_secs_f64((wall - saved.since).max(0.0)).unwrap_or_default();
            let since = now.checked_sub(ago).unwrap_or(now);
            let until = saved
                .until
                .and_then(|u| Duration::try_from_secs_f64(u - wall).ok())
                .map(|d| now.checked_add(d.min(state::MAX_AHEAD)).unwrap_or(now));
            let drain = Drain { since, stage: self.rt(i).service.drain.stage, until };
            fx.events.push(LogEvent::DrainRestored { service: name, path: path.to_path_buf() });
            self.start_drain(i, saved, drain, now, fx)?;
        }
        fx.save_drains = true;
        Ok(())
    }

    /// The drains to keep in the state file.
    pub fn saved_drains(&self) -> state::State {
        let drains = self
            .ids()
            .filter_map(|i| {
                let rt = self.rt(i);
                Some((rt.service.name.clone(), rt.drain_info.clone()?))
            })
            .collect();
        state::State { drains }
    }

    /// Answers a control request; `wall` is the time since the Unix epoch.
    pub fn control(&mut self, request: Request, now: Instant, wall: f64, fx: &mut Effects) -> anyhow::Result<Reply> {
        let targets = |core: &Self, service: &Option<String>, all: bool| -> Result<Vec<usize>, Reply> {
            match (service, all) {
                (_, true) => Ok(core.ids().collect()),
                (Some(name), false) => match core.by_name.get(name) {
                    Some(&i) => Ok(vec![i]),
                    None => Err(Reply::error(format!("no service {name:?}"))),
                },
                (None, false) => Err(Reply::error("name a service, or give \"all\": true")),
            }
        };
        Ok(match request {
            Request::Status {} => Reply::Status(self.status(now, wall)),
            Request::Recheck { service } => match targets(self, &Some(service), false) {
                Err(e) => e,
                Ok(is) => {
                    for i in is {
                        self.rt_mut(i).next_probe = now;
                        self.rearm(i);
                    }
                    Reply::Done
                }
            },
            Request::Drain { service, all, duration, reason, by } => {
                let is = match targets(self, &service, all) {
                    Ok(is) => is,
                    Err(e) => return Ok(e),
                };
                // The one duration parser; beyond what the clocks can hold
                // (or the state file keeps) is an error, never a panic.
                let length = match duration.as_deref().map(crate::model::duration::parse).transpose() {
                    Ok(d) => d,
                    Err(e) => return Ok(Reply::error(format!("for: {e}"))),
                };
                // Bounded by the parser; an Instant that still cannot hold it
                // (a clock near its end) is an error too.
                let until = match length.map(|d| now.checked_add(d)) {
                    Some(None) => return Ok(Reply::error("for: too far ahead for this clock")),
                    Some(Some(u)) => Some(u),
                    None => None,
                };
                let reason = reason.unwrap_or_default();
                if reason.chars().any(char::is_control) || reason.chars().count() > state::MAX_TEXT {
                    return Ok(Reply::error(format!(
                        "reason: at most {} characters, no control characters",
                        state::MAX_TEXT
                    )));
                }
                let mut names = Vec::new();
                for i in is {
                    let stage = self.rt(i).service.drain.stage;
                    let saved = SavedDrain {
                        by: by.clone(),
                        reason: reason.clone(),
                        since: wall,
                        until: length.map(|d| wall + d.as_secs_f64()),
                    };
                    self.start_drain(i, saved, Drain { since: now, stage, until }, now, fx)?;
                    names.push(self.rt(i).service.name.clone());
                }
                fx.save_drains = true;
                Reply::Drained(names)
            }
            Request::Undrain { service, all } => {
                let is = match targets(self, &service, all) {
                    Ok(is) => is,
                    Err(e) => return Ok(e),
                };
                let mut names = Vec::new();
                for i in is {
                    if self.rt_mut(i).drain_info.take().is_some() {
                        let rt = self.rt_mut(i);
                        let before = rt.fsm.asserted();
                        names.push(rt.service.name.clone());
                        if let Some(advert) = rt.fsm.end_drain(now) {
                            self.assert(i, before, advert, "undrained".into(), now, fx)?;
                        }
                        self.rearm(i);
                    }
                }
                fx.save_drains = true;
                Reply::Undrained(names)
            }
        })
    }

    /// The status report; `wall` is the time since the Unix epoch.
    pub fn status(&self, now: Instant, wall: f64) -> Status {
        let services = self
            .ids()
            .map(|i| {
                let rt = self.rt(i);
                let checks = rt
                    .checks
                    .iter()
                    .zip(rt.fsm.checks())
                    .zip(&rt.last_outcomes)
                    .map(|((c, fsm), last)| {
                        let (rise, fall) = fsm.thresholds();
                        CheckStatus {
                            check: c.check.to_string(),
                            state: fsm.state().to_string(),
                            rise,
                            fall,
                            last: last.as_ref().map(|(o, took)| LastResult {
                                health: o.health.as_str().into(),
                                reason: o.reason.clone(),
                                detail: o.detail.clone(),
                                seconds: took.as_secs_f64(),
                            }),
                        }
                    })
                    .collect();
                ServiceStatus {
                    name: rt.service.name.clone(),
                    state: rt.fsm.asserted().map_or("INIT", Advert::name).into(),
                    wanted: rt.fsm.wanted().map_or("INIT", Advert::name).into(),
                    seconds_in_state: now.saturating_duration_since(rt.fsm.since()).as_secs_f64(),
                    reason: rt.last_reason.clone(),
                    prefixes: rt.service.prefixes.iter().map(ToString::to_string).collect(),
                    checks,
                    flap_penalty: rt.fsm.penalty(now),
                    suppressed: rt.fsm.is_suppressed(),
                    drained: rt.drain_info.as_ref().map(|d| DrainStatus {
                        by: d.by.clone(),
                        reason: d.reason.clone(),
                        seconds_ago: wall - d.since,
                        seconds_left: d.until.map(|u| (u - wall).max(0.0)),
                    }),
                    last_lines: rt.last_lines.clone(),
                }
            })
            .collect();
        Status { services }
    }

    /// The metrics in the text exposition format.
    /// `stdin_dropped` is the inbox's count of dropped lines so far.
    pub fn render_metrics(&mut self, now: Instant, channel_up: bool, mode: &'static str, stdin_dropped: u64) -> String {
        // The writer counts lines and acks; copy what is new since last time.
        let c = self.writer.counters();
        let was = self.counted;
        self.metrics.record_lines(c.lines - was.lines);
        for (result, from, to) in [
            ("done", was.done, c.done),
            ("error", was.error, c.error),
            ("missing", was.missing, c.missing),
            ("stray", was.stray, c.stray),
        ] {
            self.metrics.record_acks(result, to - from);
        }
        self.metrics.record_dropped("stdout", c.dropped - was.dropped);
        self.metrics.record_dropped("stdin", stdin_dropped.saturating_sub(self.stdin_dropped));
        self.stdin_dropped = stdin_dropped;
        self.counted = c;
        let services = self
            .ids()
            .map(|i| {
                let rt = self.rt(i);
                ServiceGauges {
                    name: rt.service.name.clone(),
                    state: rt.fsm.asserted().map_or("INIT", Advert::name).to_string(),
                    penalty: rt.fsm.penalty(now),
                    drained: rt.drain_info.is_some(),
                    suppressed: rt.fsm.is_suppressed(),
                    prefixes: rt.service.prefixes.len(),
                }
            })
            .collect();
        self.metrics.render(&Live { services, channel_up, mode })
    }

    /// Applies a new, validated config. Unchanged services keep everything;
    /// a changed one keeps its state when its probing is the same (and an
    /// operator's drain in any case); removed ones are withdrawn; new ones
    /// start in INIT. The route table then decides the lines: withdraws of
    /// routes no longer wanted first, then the announcements, so that a
    /// prefix that moved between services is never left withdrawn.
    pub fn reload(&mut self, new: Vec<Service>, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let (mut kept, mut changed, mut added) = (0, 0, 0);
        let mut fresh = Vec::new();
        let mut keep = vec![false; self.slots.len()];
        // Route keys that their service no longer has (removed, or changed).
        let mut gone = Vec::new();
        // Services whose routes must be brought to their (new) state.
        let mut touched = Vec::new();
        for service in new {
            let Some(&i) = self.by_name.get(&service.name) else {
                fresh.push(service);
                added += 1;
                continue;
            };
            keep[i] = true;
            if *self.rt(i).service == service {
                kept += 1;
                continue;
            }
            changed += 1;
            let mut old = self.slots[i].take().expect("a live service id");
            let same_probing = old.service.checks == service.checks
                && old.service.timing == service.timing
                && old.service.require == service.require
                && old.service.disable_files == service.disable_files
                && old.service.dampening == service.dampening;
            let mut rt = Runtime::new(service, now);
            if same_probing {
                // Keep the state and counters; re-announce with the new attributes.
                rt.fsm = old.fsm.clone();
                rt.next_probe = old.next_probe;
                rt.round = old.round.take();
                rt.last_assert = old.last_assert;
                rt.last_outcomes = std::mem::take(&mut old.last_outcomes);
                rt.last_reason = std::mem::take(&mut old.last_reason);
            } else {
                if let Some(r) = &old.round {
                    self.rounds.remove(&r.id);
                }
                if let Some(drain) = old.fsm.drain() {
                    // New checks start in INIT, but an operator's drain stays.
                    rt.fsm.start_drain(Drain { stage: rt.service.drain.stage, ..drain }, now);
                }
            }
            rt.drain_info = old.drain_info.take();
            gone.extend(std::mem::take(&mut old.keys));
            self.verify.gone.extend(withdrawn(&old.service));
            self.slots[i] = Some(rt);
            touched.push(i);
        }
        let mut removed = 0;
        for (i, keep) in keep.into_iter().enumerate() {
            if keep || self.slots[i].is_none() {
                continue;
            }
            let rt = self.slots[i].take().expect("checked above");
            removed += 1;
            self.metrics.forget_service(&rt.service.name);
            fx.events.push(LogEvent::Removed { service: rt.service.name.clone() });
            self.by_name.remove(&rt.service.name);
            if let Some(r) = &rt.round {
                self.rounds.remove(&r.id);
            }
            self.timers.clear(i);
            self.verify.gone.extend(withdrawn(&rt.service));
            gone.extend(rt.keys);
        }
        self.add_services(fresh, now);
        // Withdraws first: routes of removed services and old routes of
        // changed ones that no service wants now.
        let owned: std::collections::HashSet<String> = self.ids().flat_map(|i| self.rt(i).keys.clone()).collect();
        let mut strays: Vec<String> =
            self.routes.all_announced().filter(|k| !owned.contains(*k)).map(str::to_string).collect();
        strays.sort();
        for key in ordered_unique(gone.into_iter().chain(strays)).filter(|k| !owned.contains(k)) {
            if self.routes.may_be_announced(&key)
                && let Some(line) = self.routes.want(&key, Want::Withdraw)
            {
                self.writer.send(line, Some(key), now)?;
            }
        }
        self.routes.retain_withdrawn(|k| owned.contains(k));
        for i in touched {
            self.sync(i, now)?;
            self.rearm(i);
        }
        fx.events.push(LogEvent::Reloaded { kept, changed, added, removed });
        if self.verify.every.is_some() && !self.verify.asked {
            self.verify.at = now.checked_add(VERIFY_AFTER_RELOAD);
        }
        Ok(())
    }

    /// The first step of stopping on SIGTERM: services with
    /// `drain.on_shutdown` that are announced get their drain attributes.
    /// Returns how long to wait before the final withdraw (the longest drain
    /// stage), or `None` to withdraw at once.
    pub fn begin_shutdown(&mut self, now: Instant, fx: &mut Effects) -> anyhow::Result<Option<Duration>> {
        let draining: Vec<usize> = self
            .ids()
            .filter(|&i| {
                let rt = self.rt(i);
                rt.service.drain.on_shutdown && matches!(rt.fsm.asserted(), Some(Advert::Up | Advert::Degraded))
            })
            .collect();
        let stage = draining.iter().map(|&i| self.rt(i).service.drain.stage).max();
        for i in draining {
            let rt = self.rt(i);
            fx.events.push(LogEvent::ShutdownDrain { service: rt.service.name.clone() });
            let lines = encoder::lines(&rt.service, Advert::Draining);
            for (key, line) in rt.keys.clone().into_iter().zip(lines) {
                if let Some(line) = self.routes.want(&key, Want::Announce(line)) {
                    self.writer.send(line, Some(key), now)?;
                }
            }
        }
        Ok(stage)
    }

    /// The last lines before exit: a withdraw of every route that may be
    /// announced: sent announced, belonging to a service and never told, or
    /// with a line still queued (a withdraw waiting behind an unacked
    /// command is sent too). They are meant to be written at once, ahead of
    /// anything queued, which they replace.
    pub fn final_withdraws(&mut self) -> Vec<String> {
        // Services' routes in config order, then any other announced route.
        let mut keys: Vec<String> = self.ids().flat_map(|i| self.rt(i).keys.clone()).collect();
        let mut strays: Vec<String> = self.routes.all_announced().map(str::to_string).collect();
        strays.sort();
        keys.extend(strays);
        keys.extend(self.writer.pending_keys().map(str::to_string));
        let queued: std::collections::HashSet<&str> = self.writer.pending_keys().collect();
        let keys: Vec<String> = ordered_unique(keys.into_iter())
            .filter(|k| self.routes.may_be_announced(k) || queued.contains(k.as_str()))
            .collect();
        for k in &keys {
            self.routes.want(k, Want::Withdraw);
        }
        keys
    }
}

/// Every route of `service`, meant withdrawn (it was removed, or its routes
/// changed).
fn withdrawn(service: &Service) -> Vec<Intended> {
    service
        .prefixes
        .iter()
        .map(|p| Intended {
            neighbors: service.neighbors.clone(),
            prefix: *p,
            path_id: service.path_id,
            announce: None,
        })
        .collect()
}

/// The items of `items` without repeats, in first-seen order.
fn ordered_unique(items: impl Iterator<Item = String>) -> impl Iterator<Item = String> {
    let mut seen = std::collections::HashSet::new();
    items.filter(move |k| seen.insert(k.clone()))
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;

    use super::*;
    use crate::exabgp::AckMode;

    const PREFIXES: usize = 6;

    /// A config: for each prefix the service owning it (or none), and each
    /// service's health.
    fn services(owner: &[usize], healthy: &[bool], med: u32) -> Vec<Service> {
        let mut text = String::from("{\"services\": [");
        let mut first = true;
        for (s, up) in healthy.iter().enumerate() {
            let prefixes: Vec<String> =
                (0..PREFIXES).filter(|p| owner[*p] == s).map(|p| format!("\"198.51.100.{}/32\"", p + 1)).collect();
            if prefixes.is_empty() {
                continue;
            }
            if !first {
                text.push(',');
            }
            first = false;
            // The health is in the check's port, so a change of health is a
            // change of probing (the service starts over) and the driver
            // knows each service's result from its config.
            let port = if *up { 80 } else { 81 };
            text.push_str(&format!(
                "{{\"name\": \"s{s}\", \"prefixes\": [{}], \"checks\": [{{\"type\": \"tcp\", \"address\": \
                 \"127.0.0.1:{port}\"}}], \"interval\": \"1s\", \"timeout\": \"500ms\", \"rise\": 1, \"fall\": 1, \
                 \"dampening\": false, \"attributes\": {{\"med\": {med}}}}}",
                prefixes.join(", ")
            ));
        }
        text.push_str("]}");
        crate::model::config::load(&text).unwrap_or_else(|e| panic!("{text}: {e:?}")).services
    }

    #[derive(Clone, Default)]
    struct Out(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Out {
        /// The lines written since the last call, once the writer's sink
        /// thread wrote what it may.
        fn take(&self, core: &mut Core<Out>) -> Vec<String> {
            assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)));
            let mut buf = self.0.lock().unwrap();
            let lines = String::from_utf8_lossy(&buf).lines().map(String::from).collect();
            buf.clear();
            lines
        }
    }

    /// Runs the core for `secs` seconds from `*t`, answering every probe at
    /// once (port 80 healthy, anything else down) and acking each line with
    /// `ack` (or not at all).
    fn drive(core: &mut Core<Out>, t0: Instant, t: &mut Duration, secs: u64, ack: bool) {
        let end = *t + Duration::from_secs(secs);
        while *t < end {
            let now = t0 + *t;
            let mut fx = Effects::default();
            core.tick(now, &mut fx).unwrap();
            for job in std::mem::take(&mut fx.rounds) {
                core.round_checked(job.round, None, now, &mut fx).unwrap();
                for p in job.probes {
                    let healthy = p.probe.check.to_string().ends_with(":80");
                    let outcome = if healthy { Outcome::healthy("ok") } else { Outcome::down("refused") };
                    core.probe_done(p.round, p.check, outcome, Duration::ZERO, now, &mut fx).unwrap();
                }
            }
            if ack {
                assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)));
                while core.writer().in_flight() > 0 {
                    // Read after it was written: the sink thread's clock is the real one.
                    let read_at = Instant::now().max(now);
                    core.stdin(Stamped { incoming: Incoming::Done, read_at }, now, &mut fx).unwrap();
                    assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)));
                }
            }
            *t += Duration::from_millis(100);
        }
    }

    fn prefix_of(line: &str) -> String {
        line.split_whitespace().nth(2).unwrap_or_default().to_string()
    }

    fn assignment() -> impl Strategy<Value = (Vec<usize>, Vec<bool>)> {
        (prop::collection::vec(0usize..5, PREFIXES), prop::collection::vec(any::<bool>(), 4))
    }

    proptest! {
        /// For any reload, no prefix whose new owner is UP is withdrawn, and
        /// afterwards every prefix is as its owner wants it.
        #[test]
        fn a_reload_never_withdraws_a_prefix_whose_owner_is_up(
            (owner1, healthy1) in assignment(),
            (owner2, healthy2) in assignment(),
            med in prop::sample::select(vec![100u32, 200]),
        ) {
            let t0 = Instant::now();
            let out = Out::default();
            let mut core = Core::new(Writer::new(out.clone(), AckMode::NoWait).unwrap(), services(&owner1, &healthy1, 100), t0);
            let mut t = Duration::ZERO;
            drive(&mut core, t0, &mut t, 3, false);
            let mut last: HashMap<String, String> = HashMap::new();
            for l in out.take(&mut core) {
                last.insert(prefix_of(&l), l);
            }
            let mut fx = Effects::default();
            core.reload(services(&owner2, &healthy2, med), t0 + t, &mut fx).unwrap();
            let during = out.take(&mut core);
            for l in &during {
                let p = prefix_of(l);
                let n: usize = p.trim_start_matches("198.51.100.").trim_end_matches("/32").parse().unwrap();
                let o = owner2[n - 1];
                // The new owner keeps its state (same probing) only when
                // its health did not change; then an UP owner must not
                // see its prefix withdrawn.
                let kept_up = o < 4 && healthy2[o] && o < healthy1.len() && healthy1[o]
                    && (0..PREFIXES).any(|q| owner1[q] == o);
                prop_assert!(!(l.starts_with("withdraw") && kept_up), "{l} withdrawn while s{o} is UP: {during:?}");
            }
            for l in during {
                last.insert(prefix_of(&l), l);
            }
            drive(&mut core, t0, &mut t, 3, false);
            for l in out.take(&mut core) {
                last.insert(prefix_of(&l), l);
            }
            for (p, &o) in owner2.iter().enumerate() {
                let key = format!("198.51.100.{}/32", p + 1);
                let wanted_up = o < 4 && healthy2[o];
                let l = last.get(&key).cloned().unwrap_or_default();
                if wanted_up {
                    prop_assert!(l.starts_with("announce"), "{key} owned by UP s{o}: last line {l:?}");
                } else if !l.is_empty() {
                    prop_assert!(l.starts_with("withdraw"), "{key} not wanted: last line {l:?}");
                }
            }
        }

        /// For any shutdown, every route that may be announced is withdrawn:
        /// each one last written announced, each route of a service never
        /// told, and each one with a line still queued behind unacked ones.
        #[test]
        fn a_shutdown_withdraws_every_route_that_may_be_announced(
            (owner, healthy) in assignment(),
            (owner2, healthy2) in assignment(),
            reload in any::<bool>(),
            ack in any::<bool>(),
            secs in 0u64..3,
        ) {
            let t0 = Instant::now();
            let out = Out::default();
            let mut core = Core::new(Writer::new(out.clone(), AckMode::Wait(Duration::from_secs(60))).unwrap(), services(&owner, &healthy, 100), t0);
            let mut t = Duration::ZERO;
            drive(&mut core, t0, &mut t, secs, ack);
            let mut configured: HashSet<String> = (0..PREFIXES).filter(|p| owner[*p] < 4).map(|p| format!("198.51.100.{}/32", p + 1)).collect();
            if reload {
                let mut fx = Effects::default();
                core.reload(services(&owner2, &healthy2, 100), t0 + t, &mut fx).unwrap();
                drive(&mut core, t0, &mut t, 1, ack);
                configured = (0..PREFIXES).filter(|p| owner2[*p] < 4).map(|p| format!("198.51.100.{}/32", p + 1)).collect();
            }
            let mut last: HashMap<String, String> = HashMap::new();
            for l in out.take(&mut core) {
                last.insert(prefix_of(&l), l);
            }
            let finals: HashSet<String> = core.final_withdraws().iter().map(|l| prefix_of(l)).collect();
            for (p, l) in &last {
                if l.starts_with("announce") {
                    prop_assert!(finals.contains(p), "{p} last announced, not withdrawn at shutdown");
                }
            }
            for p in configured {
                if !last.contains_key(&p) {
                    prop_assert!(finals.contains(&p), "{p} never told, not withdrawn at shutdown");
                }
            }
        }
    }
}
