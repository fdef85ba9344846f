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
//!
//! The methods are grouped by what drives them: probe rounds, timers and
//! ExaBGP's lines here; an operator's requests, drains, status and metrics
//! in `operator`; reloads and shutdown in `lifecycle`; the adj-rib-out
//! check in `verify`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::events::LogEvent;
use super::routes::{Routes, Want};
use super::timers::{Kind, Timers};
use crate::core::fsm::{Advert, Level, ServiceFsm, State};
use crate::exabgp::adj_rib;
use crate::exabgp::encoder;
use crate::exabgp::{Counters, Incoming, Routed, Stamped, Writer};
use crate::model::service::{Action, OnFail, Service, ServiceCheck};
use crate::ops::metrics::Registry;
use crate::ops::state::SavedDrain;
use crate::probe::{Health, Outcome};

mod guard;
mod lifecycle;
mod operator;
#[cfg(test)]
mod tests;
mod verify;
pub mod watch;

pub use self::guard::{Answer, FleetCall, FleetEvent, Published};
use self::verify::Verify;

/// Probe rounds may start this much early, so that rounds due within it
/// share one wake-up of the engine and one batch to the poller (with 1000
/// services at 1 s, about five rounds a wake-up instead of one). Early, never
/// late: the lateness metric counts only lateness.
const PROBE_SLACK: Duration = Duration::from_millis(5);

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
    /// The service (shared, not copied: the check is `service.checks[check]`).
    pub service: Arc<Service>,
    /// How long it may take.
    pub timeout: Duration,
}

impl ProbeJob {
    /// The check to run.
    pub fn probe(&self) -> &ServiceCheck {
        &self.service.checks[self.check]
    }
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
    /// Calls to the fleet client, in order.
    pub fleet: Vec<FleetCall>,
    /// Control replies that waited ([`Answer::Later`]), by id.
    pub replies: Vec<(u64, crate::ops::control::Reply)>,
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
    fsm: ServiceFsm,
    round: Option<Round>,
    next_probe: Instant,
    last_assert: Option<Instant>,
    /// Why the asserted state was entered.
    last_reason: String,
    /// Each check's last outcome and how long it took.
    last_outcomes: Vec<Option<(Outcome, Duration)>>,
    /// Who drained the service and why, while drained.
    drain_info: Option<SavedDrain>,
    /// The route keys (withdraw lines) of its prefixes, in prefix order.
    keys: Vec<String>,
    /// The fleet guard's state.
    guard: guard::GuardRt,
    /// What watch events asked of its rounds ([`watch`]).
    watch: watch::EventState,
}

impl Runtime {
    fn new(service: Service, first_probe: Instant) -> Runtime {
        let service = Arc::new(service);
        Runtime {
            fsm: ServiceFsm::new(&service.thresholds(), service.require, first_probe)
                .with_dampening(service.dampening, first_probe),
            round: None,
            next_probe: first_probe,
            last_assert: None,
            last_reason: String::new(),
            last_outcomes: vec![None; service.checks.len()],
            drain_info: None,
            keys: encoder::withdraw_all(&service),
            guard: guard::GuardRt::default(),
            watch: watch::EventState::default(),
            service,
        }
    }

    fn reassert_due(&self) -> Option<Instant> {
        self.fsm.asserted()?;
        Some(self.last_assert? + self.service.timing.reassert?)
    }

    /// The state its routes show: the asserted one, except while the fleet
    /// guard keeps them announced (asking, or held), with the degraded
    /// attributes.
    fn shown(&self) -> Option<Advert> {
        let advert = self.fsm.asserted()?;
        Some(if self.guard.keeps_announced() { Advert::Degraded } else { advert })
    }

    /// The wanted state of each route of the service, in prefix order;
    /// `None` while the service has no state yet (INIT).
    fn wanted(&self) -> Option<Vec<Want>> {
        let advert = self.shown()?;
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
    /// The fleet store, when a fleet guard runs.
    fleet: Option<guard::FleetState>,
}

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
            fleet: None,
        };
        core.add_services(services, now);
        core
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
        // The guard's deadline shares the state machine's timer.
        let fsm = [fsm, rt.guard.deadline()].into_iter().flatten().min();
        self.timers.set(i, Kind::Probe, probe);
        self.timers.set(i, Kind::Reassert, reassert);
        self.timers.set(i, Kind::Fsm, fsm);
    }

    fn add_services(&mut self, services: Vec<Service>, now: Instant) {
        let n = services.len() as u32;
        self.slots.reserve_exact(services.len());
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
        while let Some((i, kind, due)) = self.timers.pop_due(now, PROBE_SLACK) {
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
            .service
            .checks
            .iter()
            .enumerate()
            .map(|(c, probe)| ProbeJob {
                round: id,
                check: c,
                service: Arc::clone(&rt.service),
                timeout: probe.timeout.unwrap_or(rt.service.timing.timeout),
            })
            .collect();
        rt.round = Some(Round { id, started: now, outcomes: vec![None; rt.service.checks.len()] });
        rt.watch.round_started(now);
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
            if rt.watch.round_ended(false).1 {
                rt.next_probe = now;
            }
            let before = rt.fsm.asserted();
            if let Some(advert) = rt.fsm.observe_disabled(now) {
                let reason = format!("maintenance file {} exists", file.display());
                self.assert(i, before, advert, reason, now, fx)?;
            }
            self.rearm(i);
        } else if self.rt(i).service.checks.is_empty() {
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
        let Some(c) = rt.service.checks.get(check) else { return Ok(()) };
        // A check marked "degrade" degrades its service instead of downing it.
        if c.on_fail == OnFail::Degrade && outcome.health == Health::Down {
            outcome.health = Health::Degraded;
        }
        // Debug events cost a few strings each, on every probe: only when
        // they would be logged.
        let debug = log::log_enabled!(log::Level::Debug);
        if debug {
            fx.events.push(LogEvent::Probe {
                service: rt.service.name.clone(),
                check: c.check.to_string(),
                outcome: outcome.to_string(),
                elapsed,
            });
        }
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
        let (definitive, queued) = rt.watch.round_ended(rt.service.watch.trust_events);
        let advert = match &definitive {
            Some(_) => rt.fsm.observe_after_event(&levels, now),
            None => rt.fsm.observe(&levels, now),
        };
        rt.next_probe = (started + rt.service.timing.next_delay(rt.fsm.is_settling())).max(now);
        if queued {
            rt.next_probe = now;
        }
        for (c, (fsm, o)) in rt.fsm.checks().iter().zip(outcomes).enumerate() {
            let (rise, fall) = fsm.thresholds();
            let shown = |s: State| match s {
                State::Rising(n) => format!("RISING({n}/{rise})"),
                State::Falling(n) => format!("FALLING({n}/{fall})"),
                other => other.to_string(),
            };
            let (from, to) = (shown(before_states[c]), shown(fsm.state()));
            // "Still UP" is a debug line, on every probe: only when logged.
            if from == to && !log::log_enabled!(log::Level::Debug) {
                continue;
            }
            fx.events.push(LogEvent::Check {
                service: rt.service.name.clone(),
                check: rt.service.checks[c].check.to_string(),
                from,
                to,
                outcome: o.to_string(),
            });
        }
        if let Some(advert) = advert {
            let reason = if outcomes.is_empty() {
                "no checks configured".to_string()
            } else {
                let all: Vec<String> =
                    rt.service.checks.iter().zip(outcomes).map(|(c, o)| format!("{}: {o}", c.check)).collect();
                format!("require {}: {}", rt.service.require, all.join("; "))
            };
            let reason = match definitive.filter(|c| !c.is_empty() && advert == Advert::Down) {
                Some(cause) => format!("{cause}, then {reason}"),
                None => reason,
            };
            self.assert(i, before, advert, reason, now, fx)?;
        }
        self.guard_round(i, now, fx);
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
        self.guard_assert(i, advert, now, fx);
        let rt = self.rt(i);
        fx.events.push(LogEvent::Routes {
            service: name,
            advert,
            announce: rt.guard.keeps_announced() || matches!(rt.service.action(advert), Action::Announce(_)),
            prefixes: rt.service.prefixes.iter().map(ToString::to_string).collect(),
        });
        self.sync(i, now)?;
        self.publish(i, fx);
        self.rearm(i);
        Ok(())
    }

    /// Brings the routes of service `i` to what its state wants, writing
    /// only what changed (and a first withdraw of routes never told).
    fn sync(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        let rt = self.slots[i].as_mut().expect("a live service id");
        let Some(wanted) = rt.wanted() else { return Ok(()) };
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
        self.guard_due(i, now, fx)?;
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
}
