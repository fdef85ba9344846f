//! The engine: one thread that owns all state (the service, its state
//! machine, the stdout writer) and reacts to events from the other threads.
//!
//! ```text
//!   workers (probe runs) ──┐
//!   stdin reader (acks) ───┼──> events ──> engine ──> Writer ──> stdout (ExaBGP)
//!   signal thread ─────────┘                 │
//!                                            └──> jobs ──> workers
//! ```
//!
//! Probes run on a small pool of worker threads, so a slow probe never delays
//! the engine: acks, signals and the end of stdin are handled at once. One
//! probe round of a service runs at a time (rounds never overlap); the next
//! round starts `interval` (or `fast_interval`) after the previous one
//! started, or as soon as it ends if it took longer.

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::encoder;
use crate::exabgp::{AckMode, Incoming, Writer};
use crate::fsm::{Advert, Level, ServiceFsm, State};
use crate::probe::command::Children;
use crate::probe::{Health, Outcome};
use crate::service::{Action, OnFail, Service, ServiceCheck};

/// Something that happened, for the engine to handle.
#[derive(Debug)]
pub enum Event {
    /// A probe run finished.
    Probe {
        /// The round it belongs to.
        round: u64,
        /// Index of the check in the service.
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
}

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Ack handling of the ExaBGP channel.
    pub ack: AckMode,
    /// Standalone mode: lines go to stdout for a human, stdin is not read.
    pub dry_run: bool,
}

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

/// Runs `service` until ExaBGP goes away or a signal stops it. Signals must
/// already be blocked ([`crate::signals::block`]).
pub fn run(service: Service, opts: &Options) -> anyhow::Result<Stop> {
    let (tx, rx) = mpsc::channel();
    let sig_tx = tx.clone();
    crate::signals::spawn(move |sig| {
        let _ = sig_tx.send(Event::Signal(sig));
    })?;
    if !opts.dry_run {
        let stdin_tx = tx.clone();
        thread::Builder::new().name("stdin".into()).spawn(move || {
            crate::exabgp::read_lines(io::stdin().lock(), |line| {
                let _ = stdin_tx.send(match line {
                    Some(l) => Event::Stdin(l),
                    None => Event::StdinClosed,
                });
            });
        })?;
    }
    let ack = if opts.dry_run { AckMode::NoWait } else { opts.ack };
    let writer = Writer::new(io::stdout().lock(), ack);
    Engine::new(service, writer, tx, rx).run()
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

/// The engine's state.
pub struct Engine<W: Write> {
    service: Service,
    checks: Vec<Arc<ServiceCheck>>,
    fsm: ServiceFsm,
    writer: Writer<W>,
    events: Receiver<Event>,
    jobs: Sender<Job>,
    children: Children,
    round: Option<Round>,
    rounds: u64,
    next_probe: Instant,
    last_assert: Option<Instant>,
}

impl<W: Write> Engine<W> {
    /// An engine for `service`, writing through `writer`, fed by `events`
    /// (whose sender `tx` the workers use).
    pub fn new(service: Service, writer: Writer<W>, tx: Sender<Event>, events: Receiver<Event>) -> Self {
        let now = Instant::now();
        let children = Children::default();
        let jobs = spawn_workers(service.checks.len().clamp(1, 8), tx, children.clone());
        Engine {
            checks: service.checks.iter().cloned().map(Arc::new).collect(),
            fsm: ServiceFsm::new(&service.thresholds(), service.require, now),
            service,
            writer,
            events,
            jobs,
            children,
            round: None,
            rounds: 0,
            next_probe: now,
            last_assert: None,
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
            if self.round.is_none() && now >= self.next_probe {
                self.start_round(now)?;
            }
            self.reassert_if_due(now)?;
            let wake = [self.round.is_none().then_some(self.next_probe), self.writer.deadline(), self.reassert_due()]
                .into_iter()
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
                log::debug!(
                    "{}: {} -> {outcome} in {}",
                    self.service.name,
                    self.checks[check].check,
                    crate::duration::show(elapsed)
                );
                let Some(r) = self.round.as_mut().filter(|r| r.id == round) else { return Ok(None) };
                r.outcomes[check] = Some(outcome);
                if r.outcomes.iter().all(Option::is_some) {
                    let r = self.round.take().expect("checked above");
                    let outcomes: Vec<Outcome> = r.outcomes.into_iter().flatten().collect();
                    self.finish_round(r.started, &outcomes, now)?;
                }
            }
            Event::Stdin(Incoming::Done) => self.writer.on_ack(true, now)?,
            Event::Stdin(Incoming::Error) => self.writer.on_ack(false, now)?,
            Event::Stdin(Incoming::Shutdown) => {
                log::info!("ExaBGP is shutting down; exiting without writing more");
                return Ok(Some(Stop::ExabgpGone));
            }
            Event::StdinClosed => {
                log::info!("stdin closed: ExaBGP is gone; exiting");
                return Ok(Some(Stop::ExabgpGone));
            }
            Event::Stdin(Incoming::Neighbor(line)) => log::info!("ExaBGP: {line}"),
            Event::Stdin(Incoming::Empty) => {}
            Event::Stdin(Incoming::Other(line)) => log::debug!("ExaBGP wrote: {line}"),
            Event::Signal(Signal::SIGHUP) => {
                log::info!("SIGHUP: nothing to reload (the service comes from the command line)");
            }
            Event::Signal(sig) => {
                log::info!("{sig}: withdrawing and exiting");
                self.withdraw_and_wait(now)?;
                return Ok(Some(Stop::Signalled));
            }
        }
        Ok(None)
    }

    fn start_round(&mut self, now: Instant) -> anyhow::Result<()> {
        if let Some(file) = self.service.disable_files.iter().find(|f| f.exists()) {
            let reason = format!("maintenance file {} exists", file.display());
            let before = self.fsm.asserted();
            if let Some(advert) = self.fsm.observe_disabled(now) {
                self.log_assert(before, advert, &reason);
                self.assert(advert, now)?;
            }
            self.next_probe = now + self.service.timing.interval;
            return Ok(());
        }
        if self.checks.is_empty() {
            return self.finish_round(now, &[], now);
        }
        self.rounds += 1;
        let id = self.rounds;
        for (i, probe) in self.checks.iter().enumerate() {
            let timeout = probe.timeout.unwrap_or(self.service.timing.timeout);
            let job = Job { round: id, check: i, probe: Arc::clone(probe), timeout };
            self.jobs.send(job).map_err(|_| anyhow::anyhow!("probe workers are gone"))?;
        }
        self.round = Some(Round { id, started: now, outcomes: vec![None; self.checks.len()] });
        Ok(())
    }

    fn finish_round(&mut self, started: Instant, outcomes: &[Outcome], now: Instant) -> anyhow::Result<()> {
        let before_states: Vec<State> = self.fsm.checks().iter().map(|c| c.state()).collect();
        let before = self.fsm.asserted();
        let levels: Vec<Level> = outcomes.iter().map(|o| Level::from(o.health)).collect();
        let advert = self.fsm.observe(&levels, now);
        let name = &self.service.name;
        for (i, (c, o)) in self.fsm.checks().iter().zip(outcomes).enumerate() {
            let (rise, fall) = c.thresholds();
            let shown = |s: State| match s {
                State::Rising(n) => format!("RISING({n}/{rise})"),
                State::Falling(n) => format!("FALLING({n}/{fall})"),
                other => other.to_string(),
            };
            let (from, to) = (shown(before_states[i]), shown(c.state()));
            let check = &self.checks[i].check;
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
                    self.checks.iter().zip(outcomes).map(|(c, o)| format!("{}: {o}", c.check)).collect();
                format!("require {}: {}", self.service.require, all.join("; "))
            };
            self.log_assert(before, advert, &reason);
            self.assert(advert, now)?;
        }
        self.next_probe = (started + self.service.timing.next_delay(self.fsm.is_settling())).max(now);
        Ok(())
    }

    fn log_assert(&self, before: Option<Advert>, advert: Advert, reason: &str) {
        let from = before.map_or_else(|| "INIT".to_string(), |a| a.to_string());
        log::info!("{}: service {from} -> {advert}: {reason}", self.service.name);
    }

    fn assert(&mut self, advert: Advert, now: Instant) -> anyhow::Result<()> {
        let lines = encoder::lines(&self.service, advert);
        let verb = match self.service.action(advert) {
            Action::Withdraw => "withdrawing",
            Action::Announce(_) => "announcing",
        };
        let prefixes: Vec<String> = self.service.prefixes.iter().map(ToString::to_string).collect();
        log::info!("{}: {advert}: {verb} {}", self.service.name, prefixes.join(" "));
        // Lines of an older state that still wait to be written are stale.
        self.writer.clear_queue();
        for line in lines {
            self.writer.send(line, now)?;
        }
        self.last_assert = Some(now);
        Ok(())
    }

    fn reassert_due(&self) -> Option<Instant> {
        Some(self.last_assert? + self.service.timing.reassert?)
    }

    fn reassert_if_due(&mut self, now: Instant) -> anyhow::Result<()> {
        if let (Some(due), Some(advert)) = (self.reassert_due(), self.fsm.asserted())
            && now >= due
        {
            log::debug!("{}: re-asserting {advert}", self.service.name);
            for line in encoder::lines(&self.service, advert) {
                self.writer.send(line, now)?;
            }
            self.last_assert = Some(now);
        }
        Ok(())
    }

    /// Withdraws every prefix that may be announced (all of them, unless the
    /// asserted state is already a withdraw), then waits briefly for acks.
    fn withdraw_and_wait(&mut self, now: Instant) -> anyhow::Result<()> {
        let withdrawn = self.fsm.asserted().is_some_and(|a| self.service.action(a) == Action::Withdraw);
        if withdrawn {
            return Ok(());
        }
        let lines = encoder::withdraw_all(&self.service);
        self.writer.send_now(&lines, now)?;
        let until = now + FINAL_ACK_WAIT;
        while self.writer.in_flight() > 0 {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Stdin(Incoming::Done)) => self.writer.on_ack(true, Instant::now())?,
                Ok(Event::Stdin(Incoming::Error)) => self.writer.on_ack(false, Instant::now())?,
                Ok(Event::StdinClosed | Event::Stdin(Incoming::Shutdown)) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
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
