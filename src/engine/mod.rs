//! The engine: the pure core ([`core`]) driven by a thin shell (this
//! module) that owns the threads, the clock and the I/O.
//!
//! ```text
//!   probe workers (pool) ──┐
//!   stdin reader (acks) ───┤
//!   signal thread ─────────┼──> events ──> shell ──> Core::{tick, probe_done, stdin, control, reload}
//!   control socket ────────┤                 │         │
//!   metrics listener ──────┘                 │         └──> Writer ──> stdout (ExaBGP)
//!                                            └──> Effects: rounds → pool, log events, state file
//! ```
//!
//! The shell reads the clock once per event and passes the time in; the
//! core returns what to do. Probes run on worker threads ([`pool`]), so a
//! slow probe never delays the engine: acks, signals and the end of stdin
//! are handled at once, and a hung check occupies its own worker for at most
//! its timeout. One probe round of a service runs at a time (rounds never
//! overlap); the next round starts `interval` (or `fast_interval`) after the
//! previous one started, or as soon as it ends if it took longer. First
//! rounds are spread over up to a second, so that many services do not fire
//! together.
//!
//! SIGHUP reloads the config (when there is one): the new file is read and
//! validated first, and an invalid one changes nothing. Unchanged services
//! keep their state; removed services are withdrawn; new ones start in INIT;
//! a service whose attributes changed is re-announced with them.

pub mod core;
pub mod events;
pub mod inbox;
pub mod poller;
pub mod pool;
pub mod routes;
pub mod timers;
pub mod watch;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::PoisonError;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;

pub use self::core::Stop;
use self::core::{Core, Effects};
use self::inbox::Inbox;
use self::poller::Poller;
use self::pool::Pool;
use crate::exabgp::{AckMode, Incoming, Routed, Writer};
use crate::model::service::Service;
use crate::ops::signals::{Meaning, meaning};
use crate::ops::{control, state};
use crate::probe::Outcome;
use crate::probe::command::Children;

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
        /// The worker that ran it, now free.
        worker: usize,
    },
    /// Connect probes finished (one epoll round of the poller).
    Connects(Vec<poller::Done>),
    /// ExaBGP wrote lines: they wait in the inbox.
    StdinReady,
    /// ExaBGP closed our stdin: it is gone.
    StdinClosed,
    /// A signal arrived.
    Signal(Signal),
    /// A request from the control socket.
    Control(control::Call),
    /// A scrape: render the metrics and send them back.
    Metrics(Sender<String>),
    /// The fleet client said something (a verdict, a change, the store's state).
    Fleet(crate::fleet::Notice),
    /// The watcher saw events or watch state changes (issue 13).
    Watch(Vec<watch::Report>),
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
    /// Most probe worker threads; 0 means one per configured check (started
    /// on demand), so that no hung check can delay another.
    pub workers: usize,
    /// The control socket, if any.
    pub control: Option<control::ControlSettings>,
    /// Prometheus listener and textfile.
    pub metrics: MetricsOptions,
    /// Tell systemd we are ready and keep its watchdog fed (standalone mode
    /// only: under ExaBGP the notify socket would be ExaBGP's).
    pub notify: bool,
    /// The fleet guard's store and this site, when configured.
    pub fleet: Option<crate::model::fleet::FleetSettings>,
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

/// How often ExaBGP's adj-rib-out is compared with what exaprobe means to
/// announce (also 10 s after start and 5 s after a reload).
pub const VERIFY_EVERY: Duration = Duration::from_secs(60);

/// How long a stopping exaprobe waits for the acks of its final withdraws;
/// ExaBGP may be gone already, and we promise to exit within a second.
const FINAL_ACK_WAIT: Duration = Duration::from_millis(400);

/// The worker limit for `services` under `opts`: one per check the
/// workers run (connect probes run on the poller).
fn worker_limit(services: &[Service], workers: usize) -> usize {
    let blocking = |c: &crate::model::service::ServiceCheck| !matches!(&c.check, crate::probe::Check::Tcp(t) if t.send.is_none() && t.expect.is_none());
    if workers > 0 { workers } else { services.iter().flat_map(|s| &s.checks).filter(|c| blocking(c)).count().max(1) }
}

/// Command checks need the supervisor (exaprobe as a child subreaper, so
/// that what a check leaves behind is killed) and, when one runs as another
/// user, no new privileges for the whole process (exaprobe never needs to
/// gain any). Both are set up when the first such check is configured, at
/// start or by a reload.
fn supervise_commands(services: &[Service]) {
    use crate::probe::{Check, command};
    let commands = services.iter().flat_map(|s| &s.checks).filter_map(|c| match &c.check {
        Check::Command(p) => Some(p),
        _ => None,
    });
    let (mut any, mut run_as) = (false, false);
    for p in commands {
        any = true;
        run_as |= p.run_as.is_some();
    }
    if any
        && !command::supervising()
        && let Err(e) = command::init_supervision()
    {
        log::warn!("{e}: processes that command checks leave behind may outlive them");
    }
    if run_as && let Err(e) = command::set_no_new_privs() {
        log::warn!("{e}");
    }
}

/// Sets up the engine for `services`: the control socket and the metrics
/// listener first (the setup that can fail on a bad config or a busy
/// socket), then the signal and stdin threads. Signals must already be
/// blocked ([`crate::ops::signals::block`]). [`Engine::run`] then runs it.
pub fn start(services: Vec<Service>, opts: &Options, reload: Option<Reload>) -> anyhow::Result<Engine<std::fs::File>> {
    let (tx, rx) = mpsc::channel();
    if let Some(control) = &opts.control {
        let ctl_tx = Mutex::new(tx.clone());
        control::serve(control, move |call| {
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
    let inbox = Arc::new(Inbox::default());
    if opts.read_stdin {
        let stdin_tx = tx.clone();
        let theirs = Arc::clone(&inbox);
        thread::Builder::new().name("stdin".into()).spawn(move || {
            crate::exabgp::read_lines(io::stdin().lock(), |line| {
                let wake = match line {
                    Some(l) => theirs.push(l).then_some(Event::StdinReady),
                    None => Some(Event::StdinClosed),
                };
                if let Some(e) = wake {
                    let _ = stdin_tx.send(e);
                }
            });
        })?;
    }
    supervise_commands(&services);
    let ack = if opts.dry_run { AckMode::NoWait } else { opts.ack };
    let writer = Writer::new(crate::exabgp::sink::stdout()?, ack)?;
    let children = Children::default();
    let pool = Pool::new(worker_limit(&services, opts.workers), tx.clone(), children.clone());
    let fleet_tx = tx.clone();
    let watcher = watch::Watcher::start(&services, tx.clone());
    let poller = Poller::start(tx)?;
    let now = Instant::now();
    let mut engine = Engine {
        core: Core::new(writer, services, now),
        events: rx,
        inbox,
        pool,
        poller,
        watcher,
        children,
        workers: opts.workers,
        reload,
        state_file: opts.control.as_ref().map(control::ControlSettings::state_path),
        mode: if opts.dry_run { "dry-run" } else { "exabgp" },
        stdin_open: true,
        textfile: opts.metrics.textfile.clone(),
        watchdog: if opts.notify { crate::ops::sdnotify::watchdog_interval().map(|t| t / 2) } else { None },
        // Due at once: the textfile exists from the start.
        last_periodic: now.checked_sub(TEXTFILE_EVERY).unwrap_or(now),
        fleet: None,
        waiting: std::collections::HashMap::new(),
    };
    if let Some(settings) = &opts.fleet {
        engine.core.enable_fleet(settings.timeout);
        let guarded = engine.core.guarded_services();
        log::info!(
            "fleet guard: site {} with {} guarded service(s), etcd {}",
            settings.site,
            guarded.len(),
            settings.endpoints.join(" ")
        );
        let fleet_tx = Mutex::new(fleet_tx);
        let notify = move |n| {
            let _ = fleet_tx.lock().unwrap_or_else(PoisonError::into_inner).send(Event::Fleet(n));
        };
        engine.fleet = Some(crate::fleet::Fleet::start(settings.clone(), guarded, Box::new(notify)));
    }
    if !opts.dry_run && matches!(ack, AckMode::Wait(_)) {
        engine.core.verify_every(VERIFY_EVERY, now);
    }
    engine.restore_drains(now)?;
    if opts.notify {
        crate::ops::sdnotify::ready();
    }
    Ok(engine)
}

/// The shell around the core: threads, clock, files.
pub struct Engine<W: Write> {
    core: Core<W>,
    events: Receiver<Event>,
    inbox: Arc<Inbox>,
    pool: Pool,
    poller: Poller,
    watcher: watch::Watcher,
    children: Children,
    /// The configured worker limit (0: one per check).
    workers: usize,
    reload: Option<Reload>,
    state_file: Option<PathBuf>,
    mode: &'static str,
    stdin_open: bool,
    textfile: Option<PathBuf>,
    /// How often to ping systemd's watchdog, when it watches us.
    watchdog: Option<Duration>,
    /// When the textfile and the watchdog were last served.
    last_periodic: Instant,
    /// The fleet client, when a fleet guard runs.
    fleet: Option<crate::fleet::Fleet>,
    /// Control calls waiting for the fleet's verdict, by reply id.
    waiting: std::collections::HashMap<u64, Sender<control::Reply>>,
}

/// How long an exit waits for the fleet lease's revoke: exaprobe ends within
/// a second of SIGTERM or EOF whatever the store does; a revoke that takes
/// longer is left to the lease's expiry (at most its ttl), as after a crash.
const REVOKE_WAIT: Duration = Duration::from_millis(500);

/// A revoke of the fleet lease running on its own thread.
struct Revoke(std::sync::mpsc::Receiver<()>);

impl Revoke {
    /// Waits for it, at most [`REVOKE_WAIT`].
    fn wait(self) {
        let _ = self.0.recv_timeout(REVOKE_WAIT);
    }
}

/// Starts revoking the lease (this site's entries vanish for the others).
fn revoke_lease(fleet: crate::fleet::Fleet) -> Revoke {
    let (done, wait) = std::sync::mpsc::channel();
    let _ = thread::Builder::new().name("fleet-revoke".into()).spawn(move || {
        fleet.stop();
        let _ = done.send(());
    });
    Revoke(wait)
}

impl<W: Write> Engine<W> {
    /// Runs until ExaBGP goes away or a signal stops it.
    pub fn run(mut self) -> anyhow::Result<Stop> {
        let result = self.event_loop();
        // Whatever happened, leave no check process behind.
        self.children.kill_all();
        // The host is going away: its fleet entries go with the lease.
        if let Some(fleet) = self.fleet.take() {
            revoke_lease(fleet).wait();
        }
        result
    }

    fn event_loop(&mut self) -> anyhow::Result<Stop> {
        loop {
            let now = Instant::now();
            let mut fx = Effects::default();
            self.core.tick(now, &mut fx)?;
            self.apply(fx, now)?;
            let periodic = self.periodic_due();
            if periodic.is_some_and(|t| now >= t) {
                self.periodic(now);
            }
            let wake = [self.core.next_deadline(), self.periodic_due()].into_iter().flatten().min();
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

    /// Carries out what the core asked for: logs, the state file, and probe
    /// rounds (maintenance files first, then the checks on the pool).
    fn apply(&mut self, fx: Effects, now: Instant) -> anyhow::Result<()> {
        let mut pending = vec![fx];
        while let Some(fx) = pending.pop() {
            for e in &fx.events {
                e.log();
            }
            if fx.save_drains {
                self.save_state();
            }
            if let Some(fleet) = &self.fleet {
                let wall = std::time::SystemTime::now();
                for call in &fx.fleet {
                    match call {
                        core::FleetCall::Publish { service, entry } => fleet.publish(service, entry.entry(now, wall)),
                        core::FleetCall::Ask { service, ticket, min_sites, withdrawn } => {
                            fleet.ask_withdraw(service, *ticket, *min_sites, withdrawn.entry(now, wall));
                        }
                    }
                }
            }
            for (id, reply) in &fx.replies {
                if let Some(to) = self.waiting.remove(id) {
                    let _ = to.send(reply.clone());
                }
            }
            let mut connects = Vec::new();
            for job in fx.rounds {
                let file = job.service.disable_files.iter().find(|f| f.exists());
                let mut more = Effects::default();
                self.core.round_checked(job.round, file.map(PathBuf::as_path), now, &mut more)?;
                if file.is_none() {
                    for probe in job.probes {
                        if poller::handles(&probe) {
                            connects.push(probe);
                        } else {
                            self.pool.submit(probe);
                        }
                    }
                }
                pending.push(more);
            }
            self.poller.submit(connects);
        }
        Ok(())
    }

    fn handle(&mut self, event: Event) -> anyhow::Result<Option<Stop>> {
        let now = Instant::now();
        let mut fx = Effects::default();
        match event {
            Event::Probe { round, check, outcome, elapsed, worker } => {
                self.pool.returned(worker);
                self.core.probe_done(round, check, outcome, elapsed, now, &mut fx)?;
            }
            Event::Connects(done) => {
                for d in done {
                    self.core.probe_done(d.round, d.check, d.outcome, d.elapsed, now, &mut fx)?;
                }
            }
            Event::Watch(reports) => {
                for r in reports {
                    match r {
                        watch::Report::Fired { service, event } => {
                            self.core.watch_event(&service, event, now, &mut fx)?
                        }
                        watch::Report::State { service, watch, state } => {
                            self.core.watch_state(&service, &watch, &state)
                        }
                    }
                }
            }
            Event::StdinReady => {
                for line in self.inbox.take() {
                    if let Some(stop) = self.core.stdin(line, now, &mut fx)? {
                        return Ok(Some(stop));
                    }
                }
            }
            Event::StdinClosed => {
                self.stdin_open = false;
                log::info!("stdin closed: ExaBGP is gone; exiting");
                return Ok(Some(Stop::ExabgpGone));
            }
            Event::Signal(sig) if meaning(sig) == Meaning::Reload => self.reload(now, &mut fx)?,
            Event::Signal(sig) if meaning(sig) == Meaning::Ignore => log::info!("{sig}: ignored"),
            Event::Metrics(reply) => {
                let _ = reply.send(self.core.render_metrics(now, self.stdin_open, self.mode, self.inbox.dropped()));
            }
            Event::Control(call) => {
                let answer = self.core.control(call.request, now, state::unix_now(), &mut fx)?;
                // The drains are saved before the reply: a client that reads
                // the state file after `drain` returns finds its drain there.
                self.apply(std::mem::take(&mut fx), now)?;
                match answer {
                    core::Answer::Now(reply) => {
                        let _ = call.reply.send(reply);
                    }
                    // Answered when the fleet's verdict comes (within its timeout).
                    core::Answer::Later(id) => {
                        self.waiting.insert(id, call.reply);
                    }
                }
            }
            Event::Fleet(notice) => self.core.fleet_notice(notice, now, &mut fx)?,
            Event::Signal(sig) => {
                log::info!("{sig}: withdrawing and exiting");
                // The lease is revoked while the routes are withdrawn (no
                // asking: the host is going away), so that the other sites
                // stop counting this one at once, without delaying the
                // withdraws by a store call.
                let revoke = self.fleet.take().map(revoke_lease);
                self.withdraw_and_wait(now)?;
                if let Some(r) = revoke {
                    r.wait();
                }
                return Ok(Some(Stop::Signalled));
            }
        }
        self.apply(fx, now)?;
        Ok(None)
    }

    /// Applies the drains of the state file, at start.
    fn restore_drains(&mut self, now: Instant) -> anyhow::Result<()> {
        let Some(path) = self.state_file.clone() else { return Ok(()) };
        let wall = state::unix_now();
        let loaded = state::load(&path, wall);
        let mut fx = Effects::default();
        self.core.restore_drains(loaded, &path, wall, now, &mut fx)?;
        self.apply(fx, now)
    }

    fn save_state(&self) {
        let Some(path) = &self.state_file else { return };
        if let Err(e) = self.core.saved_drains().save(path) {
            log::error!("saving drains: {e:#}");
        }
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
            let text = self.core.render_metrics(now, self.stdin_open, self.mode, self.inbox.dropped());
            if let Err(e) = crate::ops::metrics::write_textfile(&path, &text) {
                log::warn!("metrics textfile {}: {e}", path.display());
            }
        }
    }

    /// SIGHUP: apply a new config, or keep the old one if it is invalid.
    fn reload(&mut self, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let Some(reload) = &self.reload else {
            log::info!("SIGHUP: nothing to reload (the service comes from the command line)");
            return Ok(());
        };
        match reload() {
            Ok(services) => {
                supervise_commands(&services);
                self.pool.set_limit(worker_limit(&services, self.workers));
                self.watcher.set(&services);
                self.core.reload(services, now, fx)
            }
            Err(errors) => {
                log::error!("SIGHUP: the new config is invalid; keeping the running one ({} errors):", errors.len());
                for e in errors {
                    log::error!("  {e}");
                }
                Ok(())
            }
        }
    }

    /// Withdraws every route that may be announced, then waits briefly for
    /// acks. Services with `drain.on_shutdown` that are announced drain
    /// first: drain attributes for their stage, then the withdraw.
    fn withdraw_and_wait(&mut self, now: Instant) -> anyhow::Result<()> {
        let mut fx = Effects::default();
        let stage = self.core.begin_shutdown(now, &mut fx)?;
        for e in &fx.events {
            e.log();
        }
        if let Some(stage) = stage {
            crate::ops::sdnotify::status("draining before exit");
            if !self.wait_acks(now + stage, true)? {
                return Ok(());
            }
        }
        let now = Instant::now();
        let lines = self.core.final_withdraws();
        if lines.is_empty() {
            return Ok(());
        }
        // Written ahead of anything queued, within the deadline even if
        // ExaBGP stopped reading; then the acks, for the log only.
        let written = self.core.writer().flush_final(&lines, now + FINAL_ACK_WAIT);
        if written < lines.len() {
            log::error!("only {written} of {} final withdraws could be written before exit", lines.len());
        }
        self.wait_acks(now + FINAL_ACK_WAIT, false)?;
        Ok(())
    }

    /// Handles acks until `until` (or, unless `full`, until nothing waits for
    /// an ack). Returns false when ExaBGP went away meanwhile.
    fn wait_acks(&mut self, until: Instant, full: bool) -> anyhow::Result<bool> {
        while full || self.core.writer().in_flight() > 0 {
            let now = Instant::now();
            self.core.writer().on_tick(now)?;
            if now >= until {
                break;
            }
            let wake = self.core.writer().deadline().map_or(until, |d| d.min(until));
            match self.events.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Event::StdinReady) => {
                    for line in self.inbox.take() {
                        if let Routed::Event(Incoming::Shutdown) = self.core.writer().on_stdin(line, Instant::now())? {
                            return Ok(false);
                        }
                    }
                }
                Ok(Event::StdinClosed) => return Ok(false),
                // A second SIGTERM or SIGINT cuts a drain short.
                Ok(Event::Signal(sig)) if meaning(sig) == Meaning::Stop => break,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(true)
    }
}
