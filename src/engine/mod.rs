//! The engine: one thread that owns all state (the services, their state
//! machines, the stdout writer) and reacts to events from the other threads.
//!
//! ```text
//!   workers (probe runs) ──┐
//!   stdin reader (acks) ───┼──> events ──> engine ──> Writer ──> stdout (ExaBGP)
//!   signal thread ─────────┘                 │
//!                                            └──> jobs ──> workers (bounded pool)
//! ```
//!
//! Probes run on a bounded pool of worker threads, so a slow probe never
//! delays the engine: acks, signals and the end of stdin are handled at once,
//! and a hung check occupies one worker for at most its timeout. One probe
//! round of a service runs at a time (rounds never overlap); the next round
//! starts `interval` (or `fast_interval`) after the previous one started, or
//! as soon as it ends if it took longer. First rounds are spread over up to a
//! second, so that many services do not fire together.
//!
//! SIGHUP reloads the config (when there is one): the new file is read and
//! validated first, and an invalid one changes nothing. Unchanged services
//! keep their state; removed services are withdrawn; new ones start in INIT;
//! a service whose attributes changed is re-announced with them.

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::core::fsm::{Advert, Drain, Level, ServiceFsm, State};
use crate::exabgp::encoder;
use crate::exabgp::{AckMode, Counters, Incoming, Writer};
use crate::model::service::{Action, OnFail, Service, ServiceCheck};
use crate::ops::control::{self, Request, SavedDrain};
use crate::ops::metrics::{Live, Registry, ServiceGauges};
use crate::probe::command::Children;
use crate::probe::{Health, Outcome};

/// Something that happened, for the engine to handle.
#[derive(Debug)]
pub enum Event {
    /// A probe run finished.
    Probe {
        /// The round it belongs to (unique across services).
        round: u64,
        /// Index of the check in its service.
        check: usize,
        /// What it found.
        outcome: Outcome,
        /// How long it took.
        elapsed: Duration,
    },
    /// ExaBGP wrote a line.
    Stdin(Incoming),
    /// ExaBGP closed our stdin: it is gone.
    StdinClosed,
    /// A signal arrived.
    Signal(Signal),
    /// A request from the control socket.
    Control(crate::ops::control::Call),
    /// A scrape: render the metrics and send them back.
    Metrics(Sender<String>),
}

/// Reads and validates the config again, for SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Vec<Service>, Vec<String>> + Send>;

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Ack handling of the ExaBGP channel.
    pub ack: AckMode,
    /// Standalone mode: lines go to stdout for a human, acks are not awaited.
    pub dry_run: bool,
    /// Read ExaBGP's lines on stdin (and exit at its end). Always so under
    /// ExaBGP, even with `dry_run`: a child that does not drain its stdin
    /// freezes ExaBGP once the pipe fills.
    pub read_stdin: bool,
    /// Probe worker threads; 0 means min(32, number of checks).
    pub workers: usize,
    /// The control socket, if any.
    pub control: Option<crate::ops::control::ControlSettings>,
    /// Prometheus listener and textfile.
    pub metrics: MetricsOptions,
    /// Tell systemd we are ready and keep its watchdog fed (standalone mode
    /// only: under ExaBGP the notify socket would be ExaBGP's).
    pub notify: bool,
}

/// Where metrics go.
#[derive(Clone, Debug, Default)]
pub struct MetricsOptions {
    /// Address of the HTTP listener for `/metrics`.
    pub listen: Option<std::net::SocketAddr>,
    /// node_exporter textfile, rewritten every [`TEXTFILE_EVERY`].
    pub textfile: Option<PathBuf>,
}

/// How often the metrics textfile is rewritten.
pub const TEXTFILE_EVERY: Duration = Duration::from_secs(15);

/// Why the engine stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// ExaBGP said `shutdown` or closed stdin: nothing more was written.
    ExabgpGone,
    /// SIGTERM or SIGINT: the announced prefixes were withdrawn.
    Signalled,
}

/// How long a stopping exaprobe waits for the acks of its final withdraws;
/// ExaBGP may be gone already, and we promise to exit within a second.
const FINAL_ACK_WAIT: Duration = Duration::from_millis(400);

/// First rounds are spread over at most this long.
const MAX_SPREAD: Duration = Duration::from_secs(1);

/// Most probe workers by default.
const DEFAULT_MAX_WORKERS: usize = 32;

/// Sets up the engine for `services`: the control socket and the metrics
/// listener first (the setup that can fail on a bad config or a busy
/// socket), then the signal and stdin threads. Signals must already be
/// blocked ([`crate::ops::signals::block`]). [`Engine::run`] then runs it.
pub fn start(services: Vec<Service>, opts: &Options, reload: Option<Reload>) -> anyhow::Result<Engine<std::fs::File>> {
    let (tx, rx) = mpsc::channel();
    if let Some(control) = &opts.control {
        let ctl_tx = Mutex::new(tx.clone());
        crate::ops::control::serve(control, move |call| {
            ctl_tx.lock().unwrap_or_else(PoisonError::into_inner).send(Event::Control(call)).is_ok()
        })?;
        log::info!("control socket: {}", control.socket.display());
    }
    if let Some(addr) = opts.metrics.listen {
        let m_tx = Mutex::new(tx.clone());
        let bound = crate::ops::metrics::serve(addr, move || {
            let (reply, answer) = mpsc::channel();
            m_tx.lock().unwrap_or_else(PoisonError::into_inner).send(Event::Metrics(reply)).ok()?;
            answer.recv_timeout(Duration::from_secs(5)).ok()
        })
        .with_context(|| format!("metrics listener on {addr}"))?;
        log::info!("metrics: http://{bound}/metrics");
    }
    let sig_tx = tx.clone();
    crate::ops::signals::spawn(move |sig| {
        let _ = sig_tx.send(Event::Signal(sig));
    })?;
    if opts.read_stdin {
        let stdin_tx = tx.clone();
        thread::Builder::new().name("stdin".into()).spawn(move || {
            crate::exabgp::read_lines(io::stdin().lock(), |line| {
                let _ = stdin_tx.send(match line {
                    Some(l) => Event::Stdin(l.incoming),
                    None => Event::StdinClosed,
                });
            });
        })?;
    }
    let ack = if opts.dry_run { AckMode::NoWait } else { opts.ack };
    let writer = Writer::new(crate::exabgp::sink::stdout()?, ack)?;
    let checks: usize = services.iter().map(|s| s.checks.len()).sum();
    let workers = if opts.workers == 0 { checks.clamp(1, DEFAULT_MAX_WORKERS) } else { opts.workers };
    let mut engine = Engine::new(writer, tx, rx, workers);
    engine.reload = reload;
    engine.mode = if opts.dry_run { "dry-run" } else { "exabgp" };
    engine.textfile = opts.metrics.textfile.clone();
    if opts.notify {
        engine.watchdog = crate::ops::sdnotify::watchdog_interval().map(|t| t / 2);
    }
    engine.state_file = opts.control.as_ref().map(|c| c.state_file.clone());
    engine.add_services(services, Instant::now());
    engine.restore_drains(Instant::now());
    if opts.notify {
        crate::ops::sdnotify::ready();
    }
    Ok(engine)
}

/// One probe round in progress.
struct Round {
    id: u64,
    started: Instant,
    outcomes: Vec<Option<Outcome>>,
}

/// A probe job for a worker.
struct Job {
    round: u64,
    check: usize,
    probe: Arc<ServiceCheck>,
    timeout: Duration,
}

/// The run-time state of one service.
struct Runtime {
    service: Service,
    checks: Vec<Arc<ServiceCheck>>,
    fsm: ServiceFsm,
    round: Option<Round>,
    next_probe: Instant,
    last_assert: Option<Instant>,
    /// Why the asserted state was entered.
    last_reason: String,
    /// Each check's last outcome and how long it took.
    last_outcomes: Vec<Option<(Outcome, Duration)>>,
    /// The last line sent for each prefix.
    last_lines: Vec<String>,
    /// Who drained the service and why, while drained.
    drain_info: Option<SavedDrain>,
}

impl Runtime {
    fn new(service: Service, first_probe: Instant) -> Runtime {
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
            service,
        }
    }

    fn reassert_due(&self) -> Option<Instant> {
        self.fsm.asserted()?;
        Some(self.last_assert? + self.service.timing.reassert?)
    }

    /// True when the routes may be announced now (not known withdrawn).
    fn may_be_announced(&self) -> bool {
        !self.fsm.asserted().is_some_and(|a| self.service.action(a) == Action::Withdraw)
    }
}

/// The engine's state.
pub struct Engine<W: Write> {
    services: Vec<Runtime>,
    writer: Writer<W>,
    events: Receiver<Event>,
    jobs: Sender<Job>,
    children: Children,
    rounds: u64,
    reload: Option<Reload>,
    state_file: Option<PathBuf>,
    metrics: Registry,
    /// Writer counters already copied into `metrics`.
    counted: Counters,
    mode: &'static str,
    stdin_open: bool,
    textfile: Option<PathBuf>,
    /// How often to ping systemd's watchdog, when it watches us.
    watchdog: Option<Duration>,
    /// When the textfile and the watchdog were last served.
    last_periodic: Instant,
}

impl<W: Write> Engine<W> {
    /// An engine writing through `writer`, fed by `events` (whose sender
    /// `tx` the workers use), with `workers` probe threads.
    pub fn new(writer: Writer<W>, tx: Sender<Event>, events: Receiver<Event>, workers: usize) -> Self {
        let children = Children::default();
        let jobs = spawn_workers(workers.max(1), tx, children.clone());
        Engine {
            services: Vec::new(),
            writer,
            events,
            jobs,
            children,
            rounds: 0,
            reload: None,
            state_file: None,
            metrics: Registry::new(),
            counted: Counters::default(),
            mode: "exabgp",
            stdin_open: true,
            textfile: None,
            watchdog: None,
            // Due at once: the textfile exists from the start.
            last_periodic: Instant::now().checked_sub(TEXTFILE_EVERY).unwrap_or_else(Instant::now),
        }
    }

    /// Adds services in INIT, their first rounds spread from `now` on.
    pub fn add_services(&mut self, services: Vec<Service>, now: Instant) {
        let n = services.len() as u32;
        for (i, service) in services.into_iter().enumerate() {
            let spread = service.timing.interval.min(MAX_SPREAD) * i as u32 / n.max(1);
            self.services.push(Runtime::new(service, now + spread));
        }
    }

    /// Runs until ExaBGP goes away or a signal stops it.
    pub fn run(mut self) -> anyhow::Result<Stop> {
        let result = self.event_loop();
        // Whatever happened, leave no check process behind.
        self.children.kill_all();
        result
    }

    fn event_loop(&mut self) -> anyhow::Result<Stop> {
        loop {
            let now = Instant::now();
            self.writer.on_tick(now)?;
            for i in 0..self.services.len() {
                if self.services[i].round.is_none() && now >= self.services[i].next_probe {
                    self.metrics.record_lateness(now - self.services[i].next_probe);
                    self.start_round(i, now)?;
                }
                if self.services[i].reassert_due().is_some_and(|due| now >= due) {
                    self.reassert(i, now)?;
                }
                if self.services[i].fsm.next_timer().is_some_and(|t| now >= t) {
                    self.tick(i, now)?;
                }
            }
            let periodic = self.periodic_due();
            if periodic.is_some_and(|t| now >= t) {
                self.periodic(now);
            }
            let wake = self
                .services
                .iter()
                .flat_map(|r| [r.round.is_none().then_some(r.next_probe), r.reassert_due(), r.fsm.next_timer()])
                .chain([self.writer.deadline(), self.periodic_due()])
                .flatten()
                .min();
            let event = match wake {
                Some(at) => match self.events.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(e) => e,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => anyhow::bail!("event channel closed"),
                },
                None => self.events.recv()?,
            };
            if let Some(stop) = self.handle(event)? {
                return Ok(stop);
            }
        }
    }

    fn handle(&mut self, event: Event) -> anyhow::Result<Option<Stop>> {
        let now = Instant::now();
        match event {
            Event::Probe { round, check, outcome, elapsed } => {
                // A round of a service removed by a reload finds no owner.
                let Some(i) = self.services.iter().position(|r| r.round.as_ref().is_some_and(|x| x.id == round)) else {
                    return Ok(None);
                };
                let rt = &mut self.services[i];
                log::debug!(
                    "{}: {} -> {outcome} in {}",
                    rt.service.name,
                    rt.checks[check].check,
                    crate::model::duration::show(elapsed)
                );
                rt.last_outcomes[check] = Some((outcome.clone(), elapsed));
                let c = &rt.checks[check].check;
                self.metrics.record_probe(&rt.service.name, &c.to_string(), c.kind(), &outcome, elapsed);
                let Some(r) = rt.round.as_mut() else { return Ok(None) };
                r.outcomes[check] = Some(outcome);
                if r.outcomes.iter().all(Option::is_some) {
                    let r = rt.round.take().expect("checked above");
                    let outcomes: Vec<Outcome> = r.outcomes.into_iter().flatten().collect();
                    self.finish_round(i, r.started, &outcomes, now)?;
                }
            }
            Event::Stdin(Incoming::Done) => self.writer.on_ack(true, now)?,
            Event::Stdin(Incoming::Error) => self.writer.on_ack(false, now)?,
            Event::Stdin(Incoming::Shutdown) => {
                log::info!("ExaBGP is shutting down; exiting without writing more");
                return Ok(Some(Stop::ExabgpGone));
            }
            Event::StdinClosed => {
                self.stdin_open = false;
                log::info!("stdin closed: ExaBGP is gone; exiting");
                return Ok(Some(Stop::ExabgpGone));
            }
            Event::Stdin(Incoming::Neighbor(line)) => log::info!("ExaBGP: {line}"),
            Event::Stdin(Incoming::Empty) => {}
            Event::Stdin(Incoming::Other(line)) => log::debug!("ExaBGP wrote: {line}"),
            Event::Signal(Signal::SIGHUP) => self.reload(now)?,
            Event::Metrics(reply) => {
                let _ = reply.send(self.render_metrics(now));
            }
            Event::Control(call) => {
                let reply = self.control(call.request, now)?;
                let _ = call.reply.send(reply);
            }
            Event::Signal(sig) => {
                log::info!("{sig}: withdrawing and exiting");
                self.withdraw_and_wait(now)?;
                return Ok(Some(Stop::Signalled));
            }
        }
        Ok(None)
    }

    fn start_round(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        let rt = &mut self.services[i];
        if let Some(file) = rt.service.disable_files.iter().find(|f| f.exists()) {
            let reason = format!("maintenance file {} exists", file.display());
            let before = rt.fsm.asserted();
            rt.next_probe = now + rt.service.timing.interval;
            if let Some(advert) = rt.fsm.observe_disabled(now) {
                self.log_assert(i, before, advert, &reason);
                self.assert(i, advert, now)?;
            }
            return Ok(());
        }
        if rt.checks.is_empty() {
            return self.finish_round(i, now, &[], now);
        }
        self.rounds += 1;
        let id = self.rounds;
        for (c, probe) in rt.checks.iter().enumerate() {
            let timeout = probe.timeout.unwrap_or(rt.service.timing.timeout);
            let job = Job { round: id, check: c, probe: Arc::clone(probe), timeout };
            self.jobs.send(job).map_err(|_| anyhow::anyhow!("probe workers are gone"))?;
        }
        rt.round = Some(Round { id, started: now, outcomes: vec![None; rt.checks.len()] });
        Ok(())
    }

    fn finish_round(&mut self, i: usize, started: Instant, outcomes: &[Outcome], now: Instant) -> anyhow::Result<()> {
        let rt = &mut self.services[i];
        let before_states: Vec<State> = rt.fsm.checks().iter().map(|c| c.state()).collect();
        let before = rt.fsm.asserted();
        let levels: Vec<Level> = outcomes.iter().map(|o| Level::from(o.health)).collect();
        let advert = rt.fsm.observe(&levels, now);
        rt.next_probe = (started + rt.service.timing.next_delay(rt.fsm.is_settling())).max(now);
        let name = &rt.service.name;
        for (c, (fsm, o)) in rt.fsm.checks().iter().zip(outcomes).enumerate() {
            let (rise, fall) = fsm.thresholds();
            let shown = |s: State| match s {
                State::Rising(n) => format!("RISING({n}/{rise})"),
                State::Falling(n) => format!("FALLING({n}/{fall})"),
                other => other.to_string(),
            };
            let (from, to) = (shown(before_states[c]), shown(fsm.state()));
            let check = &rt.checks[c].check;
            if from != to {
                log::info!("{name}: {check}: {from} -> {to}: {o}");
            } else {
                log::debug!("{name}: {check}: still {to}: {o}");
            }
        }
        if let Some(advert) = advert {
            let reason = if outcomes.is_empty() {
                "no checks configured".to_string()
            } else {
                let all: Vec<String> =
                    rt.checks.iter().zip(outcomes).map(|(c, o)| format!("{}: {o}", c.check)).collect();
                format!("require {}: {}", rt.service.require, all.join("; "))
            };
            self.log_assert(i, before, advert, &reason);
            self.assert(i, advert, now)?;
        }
        Ok(())
    }

    fn log_assert(&mut self, i: usize, before: Option<Advert>, advert: Advert, reason: &str) {
        let from = before.map_or_else(|| "INIT".to_string(), |a| a.to_string());
        self.metrics.record_transition(&self.services[i].service.name, &from, advert.name());
        log::info!("{}: service {from} -> {advert}: {reason}", self.services[i].service.name);
        self.services[i].last_reason = reason.to_string();
    }

    fn assert(&mut self, i: usize, advert: Advert, now: Instant) -> anyhow::Result<()> {
        let rt = &mut self.services[i];
        let verb = match rt.service.action(advert) {
            Action::Withdraw => "withdrawing",
            Action::Announce(_) => "announcing",
        };
        let prefixes: Vec<String> = rt.service.prefixes.iter().map(ToString::to_string).collect();
        log::info!("{}: {advert}: {verb} {}", rt.service.name, prefixes.join(" "));
        rt.last_assert = Some(now);
        self.send_state(i, advert, now)
    }

    /// Writes the lines of `advert` for service `i`; each supersedes lines of
    /// an older state of the same route that still wait in the queue.
    fn send_state(&mut self, i: usize, advert: Advert, now: Instant) -> anyhow::Result<()> {
        let rt = &self.services[i];
        let lines = encoder::lines(&rt.service, advert);
        let keys: Vec<String> = rt.service.prefixes.iter().map(|p| format!("{}/{p}", rt.service.name)).collect();
        self.services[i].last_lines.clone_from(&lines);
        for (line, key) in lines.into_iter().zip(keys) {
            self.writer.send(line, Some(key), now)?;
        }
        Ok(())
    }

    /// Writes the current announcements again. Withdrawn states are not
    /// re-sent: ExaBGP deduplicates identical announcements, but it sends a
    /// withdraw UPDATE every time it is told to withdraw.
    fn reassert(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        let rt = &mut self.services[i];
        rt.last_assert = Some(now);
        let Some(advert) = rt.fsm.asserted() else { return Ok(()) };
        if rt.service.action(advert) == Action::Withdraw {
            return Ok(());
        }
        log::debug!("{}: re-asserting {advert}", rt.service.name);
        self.send_state(i, advert, now)
    }

    fn withdraw_lines(&mut self, service: &Service, now: Instant) -> anyhow::Result<()> {
        for line in encoder::withdraw_all(service) {
            self.writer.send(line, None, now)?;
        }
        Ok(())
    }

    /// Lets time pass for service `i`: drain stages, drain expiry, the end of
    /// a suppression.
    fn tick(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        let before = self.services[i].fsm.asserted();
        let advert = self.services[i].fsm.tick(now);
        let rt = &self.services[i];
        if rt.drain_info.is_some() && rt.fsm.drain().is_none() {
            log::info!("{}: drain expired", rt.service.name);
            self.services[i].drain_info = None;
            self.save_state();
        }
        if let Some(advert) = advert {
            let reason = match advert {
                Advert::Drained => "drain stage over".to_string(),
                _ => "timer".to_string(),
            };
            self.log_assert(i, before, advert, &reason);
            self.assert(i, advert, now)?;
        }
        Ok(())
    }

    /// Answers a control request.
    fn control(&mut self, request: Request, now: Instant) -> anyhow::Result<Value> {
        let targets = |engine: &Self, service: &Option<String>, all: bool| -> Result<Vec<usize>, Value> {
            match (service, all) {
                (_, true) => Ok((0..engine.services.len()).collect()),
                (Some(name), false) => match engine.services.iter().position(|r| r.service.name == *name) {
                    Some(i) => Ok(vec![i]),
                    None => Err(control::error(format!("no service {name:?}"))),
                },
                (None, false) => Err(control::error("name a service, or give \"all\": true")),
            }
        };
        Ok(match request {
            Request::Status {} => self.status(now),
            Request::Recheck { service } => match targets(self, &Some(service), false) {
                Err(e) => e,
                Ok(is) => {
                    for i in is {
                        self.services[i].next_probe = now;
                    }
                    json!({"ok": true})
                }
            },
            Request::Drain { service, all, duration, reason, by } => {
                let is = match targets(self, &service, all) {
                    Ok(is) => is,
                    Err(e) => return Ok(e),
                };
                let until = match duration.as_deref().map(crate::model::duration::parse).transpose() {
                    Ok(d) => d,
                    Err(e) => return Ok(control::error(format!("for: {e}"))),
                };
                let reason = reason.unwrap_or_default();
                if reason.chars().any(char::is_control) || reason.len() > 200 {
                    return Ok(control::error("reason: at most 200 characters, no control characters"));
                }
                let wall = control::unix_now();
                let mut names = Vec::new();
                for i in is {
                    let stage = self.services[i].service.drain.stage;
                    let saved = SavedDrain {
                        by: by.clone(),
                        reason: reason.clone(),
                        since: wall,
                        until: until.map(|d| wall + d.as_secs_f64()),
                    };
                    self.start_drain(i, saved, Drain { since: now, stage, until: until.map(|d| now + d) }, now)?;
                    names.push(self.services[i].service.name.clone());
                }
                self.save_state();
                json!({"ok": true, "drained": names})
            }
            Request::Undrain { service, all } => {
                let is = match targets(self, &service, all) {
                    Ok(is) => is,
                    Err(e) => return Ok(e),
                };
                let mut names = Vec::new();
                for i in is {
                    if self.services[i].drain_info.take().is_some() {
                        let before = self.services[i].fsm.asserted();
                        names.push(self.services[i].service.name.clone());
                        if let Some(advert) = self.services[i].fsm.end_drain(now) {
                            self.log_assert(i, before, advert, "undrained");
                            self.assert(i, advert, now)?;
                        }
                    }
                }
                self.save_state();
                json!({"ok": true, "undrained": names})
            }
        })
    }

    fn start_drain(&mut self, i: usize, saved: SavedDrain, drain: Drain, now: Instant) -> anyhow::Result<()> {
        let rt = &mut self.services[i];
        log::info!(
            "{}: drained by {}{}{}",
            rt.service.name,
            saved.by,
            if saved.reason.is_empty() { String::new() } else { format!(" ({})", saved.reason) },
            drain.until.map_or(String::new(), |u| format!(" for {}", crate::model::duration::show(u - drain.since)))
        );
        rt.drain_info = Some(saved);
        let before = rt.fsm.asserted();
        if let Some(advert) = rt.fsm.start_drain(drain, now) {
            self.log_assert(i, before, advert, "drained by the operator");
            self.assert(i, advert, now)?;
        }
        Ok(())
    }

    /// Applies the drains of the state file, at start.
    fn restore_drains(&mut self, now: Instant) {
        let Some(path) = self.state_file.clone() else { return };
        let state = match control::State::load(&path) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("{e:#}; starting without saved drains");
                return;
            }
        };
        let wall = control::unix_now();
        for (name, saved) in state.drains {
            if saved.until.is_some_and(|u| u <= wall) {
                continue;
            }
            let Some(i) = self.services.iter().position(|r| r.service.name == name) else { continue };
            let ago = Duration::try_from_secs_f64((wall - saved.since).max(0.0)).unwrap_or_default();
            let since = now.checked_sub(ago).unwrap_or(now);
            let until = saved.until.and_then(|u| Duration::try_from_secs_f64(u - wall).ok()).map(|d| now + d);
            let drain = Drain { since, stage: self.services[i].service.drain.stage, until };
            log::info!("{name}: drain restored from {}", path.display());
            if let Err(e) = self.start_drain(i, saved, drain, now) {
                log::error!("{name}: restoring its drain: {e:#}");
            }
        }
        self.save_state();
    }

    fn save_state(&self) {
        let Some(path) = &self.state_file else { return };
        let drains =
            self.services.iter().filter_map(|r| Some((r.service.name.clone(), r.drain_info.clone()?))).collect();
        if let Err(e) = (control::State { drains }).save(path) {
            log::error!("saving drains: {e:#}");
        }
    }

    /// The status report.
    fn status(&self, now: Instant) -> Value {
        let wall = control::unix_now();
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|rt| {
                let checks: Vec<Value> = rt
                    .checks
                    .iter()
                    .zip(rt.fsm.checks())
                    .zip(&rt.last_outcomes)
                    .map(|((c, fsm), last)| {
                        let (rise, fall) = fsm.thresholds();
                        json!({
                            "check": c.check.to_string(),
                            "state": fsm.state().to_string(),
                            "rise": rise,
                            "fall": fall,
                            "last": last.as_ref().map(|(o, took)| json!({
                                "health": o.health.as_str(),
                                "reason": o.reason,
                                "detail": o.detail,
                                "seconds": took.as_secs_f64(),
                            })),
                        })
                    })
                    .collect();
                let in_state = now.saturating_duration_since(rt.fsm.since()).as_secs_f64();
                json!({
                    "name": rt.service.name,
                    "state": rt.fsm.asserted().map_or("INIT", Advert::name),
                    "wanted": rt.fsm.wanted().map_or("INIT", Advert::name),
                    "seconds_in_state": in_state,
                    "reason": rt.last_reason,
                    "prefixes": rt.service.prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "checks": checks,
                    "flap_penalty": rt.fsm.penalty(now),
                    "suppressed": rt.fsm.is_suppressed(),
                    "drained": rt.drain_info.as_ref().map(|d| json!({
                        "by": d.by,
                        "reason": d.reason,
                        "seconds_ago": wall - d.since,
                        "seconds_left": d.until.map(|u| (u - wall).max(0.0)),
                    })),
                    "last_lines": rt.last_lines,
                })
            })
            .collect();
        json!({"ok": true, "services": services})
    }

    /// The metrics in the text exposition format.
    fn render_metrics(&mut self, now: Instant) -> String {
        // The writer counts lines and acks; copy what is new since last time.
        let c = self.writer.counters();
        let was = self.counted;
        self.metrics.record_lines(c.lines - was.lines);
        for (result, from, to) in
            [("done", was.done, c.done), ("error", was.error, c.error), ("missing", was.missing, c.missing)]
        {
            self.metrics.record_acks(result, to - from);
        }
        self.counted = c;
        let services = self
            .services
            .iter()
            .map(|rt| ServiceGauges {
                name: rt.service.name.clone(),
                state: rt.fsm.asserted().map_or("INIT", Advert::name).to_string(),
                penalty: rt.fsm.penalty(now),
                drained: rt.drain_info.is_some(),
                suppressed: rt.fsm.is_suppressed(),
                prefixes: rt.service.prefixes.len(),
            })
            .collect();
        self.metrics.render(&Live { services, channel_up: self.stdin_open, mode: self.mode })
    }

    fn periodic_due(&self) -> Option<Instant> {
        let every = match (self.textfile.is_some(), self.watchdog) {
            (false, None) => return None,
            (true, Some(w)) => w.min(TEXTFILE_EVERY),
            (true, None) => TEXTFILE_EVERY,
            (false, Some(w)) => w,
        };
        Some(self.last_periodic + every)
    }

    /// Rewrites the metrics textfile and feeds systemd's watchdog: the engine
    /// thread doing this proves it is not stuck.
    fn periodic(&mut self, now: Instant) {
        self.last_periodic = now;
        if self.watchdog.is_some() {
            crate::ops::sdnotify::watchdog_ping();
        }
        if let Some(path) = self.textfile.clone() {
            let text = self.render_metrics(now);
            if let Err(e) = crate::ops::metrics::write_textfile(&path, &text) {
                log::warn!("metrics textfile {}: {e}", path.display());
            }
        }
    }

    /// SIGHUP: apply a new config, or keep the old one if it is invalid.
    fn reload(&mut self, now: Instant) -> anyhow::Result<()> {
        let Some(reload) = &self.reload else {
            log::info!("SIGHUP: nothing to reload (the service comes from the command line)");
            return Ok(());
        };
        let new = match reload() {
            Ok(s) => s,
            Err(errors) => {
                log::error!("SIGHUP: the new config is invalid; keeping the running one ({} errors):", errors.len());
                for e in errors {
                    log::error!("  {e}");
                }
                return Ok(());
            }
        };
        let mut old: Vec<Runtime> = std::mem::take(&mut self.services);
        let (mut kept, mut changed, mut added) = (0, 0, 0);
        let mut fresh = Vec::new();
        for service in new {
            let Some(pos) = old.iter().position(|r| r.service.name == service.name) else {
                fresh.push(service);
                added += 1;
                continue;
            };
            let mut rt = old.swap_remove(pos);
            if rt.service == service {
                kept += 1;
                self.services.push(rt);
                continue;
            }
            changed += 1;
            let same_routes_target = rt.service.neighbors == service.neighbors && rt.service.path_id == service.path_id;
            // Prefixes that are gone, or all of them when the selector or
            // path id changed (new lines would not replace the old routes).
            let mut gone = rt.service.clone();
            if same_routes_target {
                gone.prefixes.retain(|p| !service.prefixes.contains(p));
            }
            if rt.may_be_announced() && !gone.prefixes.is_empty() {
                self.withdraw_lines(&gone, now)?;
            }
            let same_probing = rt.service.checks == service.checks
                && rt.service.timing == service.timing
                && rt.service.require == service.require
                && rt.service.disable_files == service.disable_files
                && rt.service.dampening == service.dampening;
            let mut new_rt = Runtime::new(service, now);
            if same_probing {
                // Keep the state and counters; re-announce with the new attributes.
                new_rt.fsm = rt.fsm.clone();
                new_rt.next_probe = rt.next_probe;
                new_rt.round = rt.round.take();
                new_rt.last_assert = rt.last_assert;
                new_rt.last_outcomes = std::mem::take(&mut rt.last_outcomes);
                new_rt.last_reason = std::mem::take(&mut rt.last_reason);
            } else if let Some(drain) = rt.fsm.drain() {
                // New checks start in INIT, but an operator's drain stays.
                new_rt.fsm.start_drain(Drain { stage: new_rt.service.drain.stage, ..drain }, now);
            }
            new_rt.drain_info = rt.drain_info.take();
            self.services.push(new_rt);
            let i = self.services.len() - 1;
            if let Some(advert) = self.services[i].fsm.asserted() {
                self.send_state(i, advert, now)?;
            }
        }
        let removed = old.len();
        for rt in old {
            self.metrics.forget_service(&rt.service.name);
            log::info!("{}: removed by reload; withdrawing", rt.service.name);
            if rt.may_be_announced() {
                self.withdraw_lines(&rt.service, now)?;
            }
        }
        self.add_services(fresh, now);
        log::info!("SIGHUP: config reloaded: {kept} unchanged, {changed} changed, {added} added, {removed} removed");
        Ok(())
    }

    /// Withdraws every prefix that may be announced, then waits briefly for
    /// acks. Services with `drain.on_shutdown` that are announced drain
    /// first: drain attributes for their stage, then the withdraw.
    fn withdraw_and_wait(&mut self, now: Instant) -> anyhow::Result<()> {
        let draining: Vec<usize> = (0..self.services.len())
            .filter(|&i| {
                let rt = &self.services[i];
                rt.service.drain.on_shutdown && matches!(rt.fsm.asserted(), Some(Advert::Up | Advert::Degraded))
            })
            .collect();
        if let Some(stage) = draining.iter().map(|&i| self.services[i].service.drain.stage).max() {
            for &i in &draining {
                log::info!("{}: draining before exit", self.services[i].service.name);
                self.send_state(i, Advert::Draining, now)?;
            }
            crate::ops::sdnotify::status("draining before exit");
            if !self.wait_acks(now + stage, true)? {
                return Ok(());
            }
        }
        let now = Instant::now();
        let lines: Vec<String> = self
            .services
            .iter()
            .filter(|r| r.may_be_announced())
            .flat_map(|r| encoder::withdraw_all(&r.service))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        self.writer.send_now(&lines, now)?;
        self.wait_acks(now + FINAL_ACK_WAIT, false)?;
        Ok(())
    }

    /// Handles acks until `until` (or, unless `full`, until nothing waits for
    /// an ack). Returns false when ExaBGP went away meanwhile.
    fn wait_acks(&mut self, until: Instant, full: bool) -> anyhow::Result<bool> {
        while full || self.writer.in_flight() > 0 {
            let now = Instant::now();
            self.writer.on_tick(now)?;
            if now >= until {
                break;
            }
            let wake = self.writer.deadline().map_or(until, |d| d.min(until));
            match self.events.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Event::Stdin(Incoming::Done)) => self.writer.on_ack(true, Instant::now())?,
                Ok(Event::Stdin(Incoming::Error)) => self.writer.on_ack(false, Instant::now())?,
                Ok(Event::StdinClosed | Event::Stdin(Incoming::Shutdown)) => return Ok(false),
                // A second SIGTERM or SIGINT cuts a drain short.
                Ok(Event::Signal(sig)) if sig != Signal::SIGHUP => break,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(true)
    }
}

/// Starts `n` probe workers; returns the job queue they share.
fn spawn_workers(n: usize, tx: Sender<Event>, children: Children) -> Sender<Job> {
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    for i in 0..n {
        let (rx, tx, children) = (Arc::clone(&job_rx), tx.clone(), children.clone());
        let spawned = thread::Builder::new().name(format!("probe-{i}")).stack_size(256 * 1024).spawn(move || {
            loop {
                let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                let Ok(job) = job else { return };
                let start = Instant::now();
                // A panicking probe is a failed check, not a dead process.
                let mut outcome = catch_unwind(AssertUnwindSafe(|| job.probe.check.run(job.timeout, &children)))
                    .unwrap_or_else(|_| Outcome::down("panic"));
                if job.probe.on_fail == OnFail::Degrade && outcome.health == Health::Down {
                    outcome.health = Health::Degraded;
                }
                let event = Event::Probe { round: job.round, check: job.check, outcome, elapsed: start.elapsed() };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            log::error!("could not start probe worker {i}: {e}");
        }
    }
    job_tx
}
