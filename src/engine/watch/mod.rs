//! The watcher (issue 13, event-driven detection): one thread, one epoll
//! set for every watch of every service, feeding the engine's event queue
//! with [`Event::Watch`]. No thread per watch.
//!
//! ```text
//!   pidfds (one per watched process) ──┐
//!   inotify (maintenance and pid files) ┼──> epoll ──> watcher thread ──> Event::Watch ──> Core::watch_event
//!   netlink sock_diag (socket destroys) ┤                                              └─> Core::watch_state
//!   eventfd (new config) ───────────────┘
//! ```
//!
//! Sources ([`crate::model::watch`]): a process (a pidfd, `pidfd`; a pid
//! file is re-read when rewritten, through inotify on its directory), the
//! listening sockets (`sockdiag`), the maintenance files (always, with no
//! configuration: `inotify`), a systemd unit's ActiveState (`dbus`,
//! where a system bus exists; off, and said so once, where none does).
//!
//! **Never worse than polling.** A watch that cannot be set up (no such
//! file or directory, permission, no pidfd support, the socket-destroy groups
//! refused) is logged once (each new reason once), shown in `status`
//! as `pending: why`, and retried every [`RETRY_EVERY`]; the probes go on
//! as ever. The same holds for the watcher itself: it cannot fail the
//! engine's start ([`Watcher::start`]), and a watcher thread that stops says
//! so and shows every watch `stopped: why`. The watcher only tells the core
//! that something happened; what the core does with it is
//! [`crate::engine::core::watch`]'s.

mod dbus;
mod inotify;
mod pidfd;
mod sockdiag;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use self::inotify::{Change, Files};
use self::pidfd::ProcWatch;
use self::sockdiag::{Diag, Mode};
use super::Event;
use crate::engine::core::watch::WatchEvent;
use crate::model::service::Service;
use crate::model::watch::{Listen, Process};

/// How often a watch that could not be set up is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// How often a system bus is looked for where there is none (a host
/// without D-Bus is not expected to grow one soon).
pub const NO_BUS_EVERY: Duration = Duration::from_secs(60);

/// How often absent listeners are looked for again (a dump), in events
/// mode: a listener that comes back is armed within this.
pub const ABSENT_EVERY: Duration = Duration::from_secs(1);

const WAKE: u64 = u64::MAX;
const INOTIFY: u64 = u64::MAX - 1;
const DIAG: u64 = u64::MAX - 2;
const DBUS: u64 = u64::MAX - 3;
/// A process watch's epoll token is its index (low 32 bits) and the
/// generation of its arming (31 bits above): never one of the tokens above.
const GENERATION_MASK: u32 = 0x7fff_ffff;

/// What the watcher tells the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Something happened to a service.
    Fired {
        /// The service.
        service: String,
        /// What.
        event: WatchEvent,
    },
    /// A watch's state changed (for `status`).
    State {
        /// The service.
        service: String,
        /// What is watched (`pid-file /run/nsd.pid`).
        watch: String,
        /// `armed (pid 1234)`, `pending: …`.
        state: String,
    },
}

/// What to watch of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    service: String,
    process: Option<Process>,
    listen: Vec<Listen>,
    unit: Option<String>,
    files: Vec<PathBuf>,
}

fn specs(services: &[Service]) -> Vec<Spec> {
    services
        .iter()
        .map(|s| Spec {
            service: s.name.clone(),
            process: s.watch.process.clone(),
            listen: s.watch.listen.clone(),
            unit: s.watch.unit.clone(),
            files: s.disable_files.clone(),
        })
        .filter(|s| s.process.is_some() || !s.listen.is_empty() || s.unit.is_some() || !s.files.is_empty())
        .collect()
}

impl Spec {
    /// What each watch of the service is called in `status`.
    fn labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.process.as_ref().map(pidfd::label));
        out.extend(self.listen.iter().map(|l| format!("listen {l}")));
        out.extend(self.unit.iter().map(|u| format!("unit {u}")));
        out.extend(self.files.iter().map(|f| format!("maintenance-file {}", f.display())));
        out
    }
}

struct Shared {
    next: Mutex<Option<Vec<Spec>>>,
    /// Wakes the thread for a new config while setup keeps failing.
    retry: Condvar,
    /// Wakes the thread's epoll set for a new config, once it runs.
    wake: Mutex<Option<Arc<EventFd>>>,
    /// Whether the thread runs (it clears this when it stops).
    running: AtomicBool,
}

/// What the watcher thread needs from the kernel before it can watch
/// anything: its wake-up eventfd, its epoll set (with both in it) and its
/// inotify instance.
struct Parts {
    wake: EventFd,
    epoll: Epoll,
    files: Files,
}

fn open_parts() -> io::Result<Parts> {
    fn named(what: &'static str) -> impl Fn(nix::errno::Errno) -> io::Error {
        move |e| io::Error::other(format!("{what}: {}", e.desc()))
    }
    let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(named("eventfd"))?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(named("epoll"))?;
    epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE)).map_err(named("epoll"))?;
    let files = Files::new().map_err(|e| match e {
        nix::errno::Errno::EMFILE => io::Error::other(
            "inotify: too many inotify instances (fs.inotify.max_user_instances) or open files".to_string(),
        ),
        e => io::Error::other(format!("inotify: {}", e.desc())),
    })?;
    epoll.add(files.fd(), EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY)).map_err(named("epoll"))?;
    Ok(Parts { wake, epoll, files })
}

/// The engine's handle on the watcher thread.
///
/// Starting it cannot fail the engine (never worse than polling): with
/// nothing to watch no thread is started; a thread that cannot be spawned
/// is logged and tried again at the next config; a kernel that refuses the
/// watcher's descriptors (`EMFILE` when `fs.inotify.max_user_instances` is
/// used up, common on container hosts) leaves every watch `pending: …`,
/// retried every [`RETRY_EVERY`], while the services are probed as ever.
pub struct Watcher {
    shared: Arc<Shared>,
    events: Sender<Event>,
    open: fn() -> io::Result<Parts>,
}

impl Watcher {
    /// Starts the watcher thread for `services` (if they watch anything);
    /// reports come back as [`Event::Watch`].
    pub fn start(services: &[Service], events: Sender<Event>) -> Watcher {
        Watcher::start_with(services, events, open_parts)
    }

    fn start_with(services: &[Service], events: Sender<Event>, open: fn() -> io::Result<Parts>) -> Watcher {
        let specs = specs(services);
        let some = !specs.is_empty();
        let shared = Arc::new(Shared {
            next: Mutex::new(Some(specs)),
            retry: Condvar::new(),
            wake: Mutex::new(None),
            running: AtomicBool::new(false),
        });
        let w = Watcher { shared, events, open };
        if some {
            w.spawn();
        }
        w
    }

    /// Whether the watcher thread runs.
    fn running(&self) -> bool {
        self.shared.running.load(Ordering::Relaxed)
    }

    fn spawn(&self) {
        let (shared, events, open) = (Arc::clone(&self.shared), self.events.clone(), self.open);
        self.shared.running.store(true, Ordering::Relaxed);
        let spawned = thread::Builder::new().name("watch".into()).stack_size(256 * 1024).spawn(move || {
            thread_main(&shared, events, open);
            shared.running.store(false, Ordering::Relaxed);
        });
        match spawned {
            Ok(_) => {}
            Err(e) => {
                self.shared.running.store(false, Ordering::Relaxed);
                log::error!(
                    "starting the watcher thread: {e}: services are probed as usual, without events \
                 (tried again at the next reload)"
                );
            }
        }
    }

    /// Watches what `services` (a reloaded config) ask for instead.
    pub fn set(&self, services: &[Service]) {
        let specs = specs(services);
        let some = !specs.is_empty();
        *self.shared.next.lock().unwrap_or_else(PoisonError::into_inner) = Some(specs);
        self.shared.retry.notify_all();
        if let Some(wake) = &*self.shared.wake.lock().unwrap_or_else(PoisonError::into_inner)
            && let Err(e) = wake.write(1)
        {
            log::error!("waking the watcher: {e}");
        }
        if some && !self.running() {
            self.spawn();
        }
    }
}

/// The watcher thread: sets up its descriptors (retrying every
/// [`RETRY_EVERY`] while the kernel refuses them, each watch reported
/// `pending: …`), then runs the epoll loop.
fn thread_main(shared: &Shared, events: Sender<Event>, open: fn() -> io::Result<Parts>) {
    let mut out = Reporter { tx: events.clone(), last: HashMap::new(), batch: Vec::new() };
    let mut current: Vec<Spec> = Vec::new();
    let mut logged: Option<String> = None;
    loop {
        match open() {
            Ok(parts) => {
                if logged.is_some() {
                    log::info!("the watcher is set up now: events are watched");
                }
                let wake = Arc::new(parts.wake);
                *shared.wake.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&wake));
                {
                    let mut next = shared.next.lock().unwrap_or_else(PoisonError::into_inner);
                    if next.is_none() {
                        *next = Some(current);
                    }
                }
                let mut world = World::new(parts.epoll, parts.files, wake, events);
                run_guarded(&mut world, |w| w.run(shared));
                return;
            }
            Err(e) => {
                let why = e.to_string();
                if logged.as_deref() != Some(why.as_str()) {
                    log::error!(
                        "the watcher cannot start ({why}): services are probed as usual, without events; \
                         retrying every {}s",
                        RETRY_EVERY.as_secs()
                    );
                    logged = Some(why.clone());
                }
                let next = shared.next.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(specs) = next {
                    current = specs;
                    out.last.clear();
                }
                for s in &current {
                    for label in s.labels() {
                        out.quiet_state(&s.service, label, pending(&why));
                    }
                }
                if !out.flush() {
                    return;
                }
                let next = shared.next.lock().unwrap_or_else(PoisonError::into_inner);
                drop(shared.retry.wait_timeout_while(next, RETRY_EVERY, |n| n.is_none()));
            }
        }
    }
}

/// Runs the watcher loop; if it fails or panics, says so (at error) and
/// reports every watch `stopped: why`, so that `status` does not show
/// watches armed that nothing watches any more. The engine goes on
/// probing; a reload starts a new watcher thread.
fn run_guarded(world: &mut World, run: impl FnOnce(&mut World) -> io::Result<()>) {
    let why = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(world))) {
        // The engine is gone.
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(panic) => match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
            (Some(s), _) => format!("panic: {s}"),
            (_, Some(s)) => format!("panic: {s}"),
            _ => "panic".to_string(),
        },
    };
    log::error!("the watcher stopped ({why}): services are probed as usual, without events");
    let mut keys: Vec<(String, String)> = world.out.last.keys().cloned().collect();
    keys.sort();
    for (service, watch) in keys {
        world.out.quiet_state(&service, watch, format!("stopped: {why}; probing as usual"));
    }
    world.out.flush();
}

/// The maintenance file of a service.
struct MaintFile {
    service: String,
    path: PathBuf,
    armed: bool,
    present: bool,
}

/// A watched listener.
struct ListenWatch {
    service: String,
    listen: Listen,
    /// Whether the last dump saw it; `None` before the first.
    present: Option<bool>,
}

/// A watched systemd unit.
struct UnitWatch {
    service: String,
    unit: String,
    path: String,
    /// Whether its last ActiveState was active; `None` before the first.
    active: Option<bool>,
}

/// Sends state changes (each once) and events in one batch per wake-up.
struct Reporter {
    tx: Sender<Event>,
    last: HashMap<(String, String), String>,
    batch: Vec<Report>,
}

impl Reporter {
    fn state(&mut self, service: &str, watch: String, state: String) {
        let key = (service.to_string(), watch);
        let before = self.last.get(&key);
        if before == Some(&state) {
            return;
        }
        let (service, watch) = (&key.0, &key.1);
        if state.starts_with("armed") {
            if before.is_some() {
                log::info!("{service}: watch {watch}: {state}");
            } else {
                log::debug!("{service}: watch {watch}: {state}");
            }
        } else if state.starts_with("exited") || state.starts_with("gone") {
            log::debug!("{service}: watch {watch}: {state}");
        } else {
            // Logged once per new reason: a retry that fails alike is quiet.
            log::warn!("{service}: watch {watch}: {state}; probing as usual");
        }
        self.batch.push(Report::State { service: service.clone(), watch: watch.clone(), state: state.clone() });
        self.last.insert(key, state);
    }

    /// A state change logged by the caller (once, for all watches).
    fn quiet_state(&mut self, service: &str, watch: String, state: String) {
        let key = (service.to_string(), watch);
        if self.last.get(&key) == Some(&state) {
            return;
        }
        self.batch.push(Report::State { service: key.0.clone(), watch: key.1.clone(), state: state.clone() });
        self.last.insert(key, state);
    }

    fn fire(&mut self, service: &str, event: WatchEvent) {
        self.batch.push(Report::Fired { service: service.to_string(), event });
    }

    /// Sends the batch; false once the engine is gone.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        self.tx.send(Event::Watch(std::mem::take(&mut self.batch))).is_ok()
    }
}

struct World {
    epoll: Epoll,
    wake: Arc<EventFd>,
    files: Files,
    diag: Option<Diag>,
    procs: Vec<ProcWatch>,
    maint: Vec<MaintFile>,
    listens: Vec<ListenWatch>,
    units: Vec<UnitWatch>,
    bus: Option<dbus::Bus>,
    retry_at: Option<Instant>,
    next_dump: Option<Instant>,
    /// The last generation given to a process watch's epoll token.
    generation: u32,
    /// When to try the system bus again, if it is not connected.
    bus_next: Option<Instant>,
    out: Reporter,
}

fn pending(why: &str) -> String {
    format!("pending: {why} (retry every {}s)", RETRY_EVERY.as_secs())
}

impl World {
    fn new(epoll: Epoll, files: Files, wake: Arc<EventFd>, tx: Sender<Event>) -> World {
        World {
            epoll,
            wake,
            files,
            diag: None,
            procs: Vec::new(),
            maint: Vec::new(),
            listens: Vec::new(),
            units: Vec::new(),
            bus: None,
            retry_at: None,
            next_dump: None,
            generation: 0,
            bus_next: None,
            out: Reporter { tx, last: HashMap::new(), batch: Vec::new() },
        }
    }

    fn run(&mut self, shared: &Shared) -> io::Result<()> {
        let mut events = vec![EpollEvent::empty(); 256];
        let first = shared.next.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.rebuild(first.unwrap_or_default(), Instant::now());
        loop {
            if !self.out.flush() {
                return Ok(());
            }
            let now = Instant::now();
            let timeout = match [self.retry_at, self.next_dump].into_iter().flatten().min() {
                Some(d) => EpollTimeout::try_from(d.saturating_duration_since(now) + Duration::from_micros(999))
                    .unwrap_or(EpollTimeout::MAX),
                None => EpollTimeout::NONE,
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(e.into()),
            };
            let now = Instant::now();
            let mut wake = false;
            for ev in &events[..n] {
                match ev.data() {
                    WAKE => wake = true,
                    INOTIFY => {
                        let changes = self.files.read();
                        self.on_files(changes, now);
                    }
                    DIAG => self.on_destroyed(now),
                    DBUS => self.on_bus(now),
                    token => self.on_exit(token, now),
                }
            }
            // Last: a new config replaces the watches (and their tokens).
            if wake {
                let _ = self.wake.read();
                let next = shared.next.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(specs) = next {
                    self.rebuild(specs, now);
                }
            }
            if self.retry_at.is_some_and(|t| now >= t) {
                self.retry_at = None;
                self.arm_pending(now, false);
            }
            if self.next_dump.is_some_and(|t| now >= t) {
                self.next_dump = None;
                self.check_listens(None, now);
            }
        }
    }

    fn rebuild(&mut self, specs: Vec<Spec>, now: Instant) {
        // Dropping the pidfds takes them out of the epoll set.
        self.procs.clear();
        self.files.clear();
        self.maint.clear();
        self.listens.clear();
        self.units.clear();
        // New matches for the new units: a new connection.
        self.bus = None;
        self.bus_next = None;
        // A reload gives changed services a new runtime without watch
        // states: every state is sent again.
        self.out.last.clear();
        for s in specs {
            if let Some(p) = s.process {
                self.procs.push(ProcWatch::new(s.service.clone(), p));
            }
            for path in s.files {
                self.maint.push(MaintFile { service: s.service.clone(), path, armed: false, present: false });
            }
            for listen in s.listen {
                self.listens.push(ListenWatch { service: s.service.clone(), listen, present: None });
            }
            if let Some(unit) = s.unit {
                let path = dbus::unit_path(&unit);
                self.units.push(UnitWatch { service: s.service.clone(), unit, path, active: None });
            }
        }
        raise_fd_limit(self.procs.len() + 64);
        if !self.listens.is_empty() && self.diag.is_none() {
            self.open_diag();
        }
        self.arm_pending(now, true);
        self.check_listens(None, now);
    }

    fn open_diag(&mut self) {
        match Diag::new() {
            Ok(mut d) => {
                if let Some(fd) = d.events_fd()
                    && let Err(e) = self.epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, DIAG))
                {
                    // Never in the epoll set, the events socket would be
                    // read never: poll instead.
                    d.fall_back_to_poll(format!("socket-destroy events: epoll: {e}"));
                }
                if let Mode::Poll(why) = &d.mode {
                    log::warn!(
                        "listen watches: {why}; dumping the listening sockets every {}ms instead",
                        sockdiag::POLL_EVERY.as_millis()
                    );
                }
                self.diag = Some(d);
            }
            Err(e) => {
                for l in &self.listens {
                    self.out.state(&l.service, format!("listen {}", l.listen), pending(&e));
                }
                self.retry_at = Some(self.retry_at.map_or(Instant::now() + RETRY_EVERY, |t| t));
            }
        }
    }

    /// Tries every process and file watch that is not armed (`all`: the
    /// armed process watches too, when their pid files' events may have
    /// been lost). An armed watch is not looked at: its pid file's events
    /// and its pidfd tell what changes.
    fn arm_pending(&mut self, now: Instant, all: bool) {
        let mut retry = false;
        for k in 0..self.procs.len() {
            let p = &self.procs[k];
            let over = matches!(p.source, Process::Pid(_)) && p.exited.is_some();
            if !all && (p.armed.is_some() || over) {
                continue;
            }
            retry |= !self.arm_proc(k);
        }
        for m in &mut self.maint {
            if m.armed {
                continue;
            }
            match self.files.watch(&m.path) {
                Ok(()) => {
                    m.armed = true;
                    let present = m.path.exists();
                    if present && !m.present {
                        self.out.fire(&m.service, WatchEvent::Maintenance { path: m.path.clone(), exists: true });
                    }
                    m.present = present;
                    let state = if present { "armed (present)" } else { "armed (absent)" };
                    self.out.state(&m.service, format!("maintenance-file {}", m.path.display()), state.into());
                }
                Err(e) => {
                    retry = true;
                    self.out.state(&m.service, format!("maintenance-file {}", m.path.display()), pending(&e));
                }
            }
        }
        if self.diag.is_none() && !self.listens.is_empty() {
            self.open_diag();
            retry |= self.diag.is_none();
        }
        let mut at = retry.then_some(now + RETRY_EVERY);
        if self.bus.is_none() && !self.units.is_empty() {
            // No system bus at all is looked for again every
            // NO_BUS_EVERY, not every RETRY_EVERY.
            if self.bus_next.is_none_or(|t| now >= t) {
                self.bus_next = self.connect_bus().map(|wait| now + wait);
            }
            at = [at, self.bus_next].into_iter().flatten().min();
        }
        self.retry_at = at;
    }

    /// Arms process watch `k` if it is not; false when it stays unarmed
    /// for a reason a retry may cure.
    fn arm_proc(&mut self, k: usize) -> bool {
        let p = &mut self.procs[k];
        let label = p.label();
        if let Process::PidFile(path) = &p.source
            && let Err(e) = self.files.watch(path)
        {
            let service = p.service.clone();
            self.out.state(&service, label, pending(&e));
            return false;
        }
        match p.arm() {
            Ok(true) => {
                let (fd, pid) = p.armed.as_ref().expect("just armed");
                let pid = *pid;
                // A new generation per arming: a readiness of the pidfd
                // this one replaces, already in this batch, is told apart.
                self.generation = (self.generation + 1) & GENERATION_MASK;
                p.generation = self.generation;
                let token = k as u64 & 0xffff_ffff | u64::from(self.generation) << 32;
                if let Err(e) = self.epoll.add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token)) {
                    p.armed = None;
                    let service = p.service.clone();
                    self.out.state(&service, label, pending(&format!("epoll: {e}")));
                    return false;
                }
                let service = p.service.clone();
                if p.exited.is_some() {
                    self.out.fire(&service, WatchEvent::ProcessStarted { pid });
                }
                self.out.state(&service, label, format!("armed (pid {pid})"));
                // A restarted service: look for its listeners now.
                if self.listens.iter().any(|l| l.service == service && l.present != Some(true)) {
                    self.next_dump = Some(Instant::now());
                }
                true
            }
            Ok(false) => true,
            Err(e) => {
                let service = p.service.clone();
                let fixed = matches!(p.source, Process::Pid(_));
                let exited = p.exited.is_some();
                let state = if exited { format!("exited: {e}") } else { pending(&e) };
                self.out.state(&service, label, state);
                // A fixed pid that exited is over; anything else is
                // retried (a pid file also through inotify).
                fixed && exited
            }
        }
    }

    /// The pidfd with epoll `token` is readable: its process exited. A
    /// token of an earlier arming (the batch's readiness of a pidfd that a
    /// handler before it in the batch replaced, e.g. the pid file already
    /// names the new process) is dropped.
    fn on_exit(&mut self, token: u64, now: Instant) {
        let k = usize::try_from(token & 0xffff_ffff).unwrap_or(usize::MAX);
        let generation = u32::try_from(token >> 32).unwrap_or(u32::MAX);
        let Some(p) = self.procs.get_mut(k) else { return };
        if p.generation != generation {
            return;
        }
        let Some(pid) = p.exited() else { return };
        let service = p.service.clone();
        self.out.fire(&service, WatchEvent::ProcessExited { pid });
        // The pid file may already name the new process; if not (or it
        // cannot be read), the pid file's events and the retry re-arm.
        if !self.arm_proc(k) {
            self.retry_at.get_or_insert(now + RETRY_EVERY);
        }
    }

    fn on_files(&mut self, changes: Vec<Change>, now: Instant) {
        for c in changes {
            match c {
                Change::Written(path) => {
                    for m in self.maint.iter_mut().filter(|m| m.path == path) {
                        if !m.present && path.exists() {
                            m.present = true;
                            self.out.fire(&m.service, WatchEvent::Maintenance { path: path.clone(), exists: true });
                            self.out.state(
                                &m.service,
                                format!("maintenance-file {}", path.display()),
                                "armed (present)".into(),
                            );
                        }
                    }
                    let ks: Vec<usize> = (0..self.procs.len())
                        .filter(|k| matches!(&self.procs[*k].source, Process::PidFile(p) if *p == path))
                        .collect();
                    for k in ks {
                        if !self.arm_proc(k) {
                            self.retry_at.get_or_insert(now + RETRY_EVERY);
                        }
                    }
                }
                Change::Removed(path) => {
                    // Leaving DISABLED goes through the normal path: the
                    // next round, then rise.
                    for m in self.maint.iter_mut().filter(|m| m.path == path && m.present) {
                        m.present = false;
                        self.out.state(
                            &m.service,
                            format!("maintenance-file {}", path.display()),
                            "armed (absent)".into(),
                        );
                    }
                }
                Change::Lost(dir) => {
                    for m in &mut self.maint {
                        if dir.as_ref().is_none_or(|d| inotify::dir_of(&m.path) == *d) {
                            m.armed = false;
                        }
                    }
                    if let Some(d) = &dir {
                        log::warn!("watched directory {} went away: watching it again when it is back", d.display());
                    } else {
                        // Events were lost: look at everything again.
                        self.files.clear();
                        for m in &mut self.maint {
                            m.armed = false;
                        }
                    }
                    // Lost: the pid files' directories too.
                    self.arm_pending(now, dir.is_none());
                }
            }
        }
    }

    /// Connects to the system bus and asks for the units' signals; how long
    /// to wait before trying again if that failed.
    fn connect_bus(&mut self) -> Option<Duration> {
        let connected = match dbus::address() {
            None => Err(dbus::no_bus()),
            Some(path) => dbus::Bus::connect(&path).and_then(|mut bus| {
                for u in &self.units {
                    bus.watch_unit(&u.unit)?;
                }
                self.epoll
                    .add(bus.fd(), EpollEvent::new(EpollFlags::EPOLLIN, DBUS))
                    .map_err(|e| format!("system bus: epoll: {e}"))?;
                Ok(bus)
            }),
        };
        let (state, wait) = match connected {
            Ok(bus) => {
                self.bus = Some(bus);
                ("armed (D-Bus PropertiesChanged)".to_string(), None)
            }
            Err(e) if e.starts_with("off:") => {
                (format!("{e} (looked for every {}s)", NO_BUS_EVERY.as_secs()), Some(NO_BUS_EVERY))
            }
            Err(e) => (pending(&e), Some(RETRY_EVERY)),
        };
        for u in &self.units {
            self.out.state(&u.service, format!("unit {}", u.unit), state.clone());
        }
        wait
    }

    fn on_bus(&mut self, now: Instant) {
        let Some(bus) = &mut self.bus else { return };
        match bus.read() {
            Ok(changes) => {
                for (path, state) in changes {
                    for u in self.units.iter_mut().filter(|u| u.path == path) {
                        let active = match state.as_str() {
                            "active" => Some(true),
                            "inactive" | "failed" | "deactivating" => Some(false),
                            _ => None, // activating, reloading: no news
                        };
                        match (u.active, active) {
                            (Some(false), Some(true)) => {
                                self.out.fire(&u.service, WatchEvent::UnitActive { unit: u.unit.clone() });
                            }
                            (before, Some(false)) if before != Some(false) => {
                                let event = WatchEvent::UnitInactive { unit: u.unit.clone(), state: state.clone() };
                                self.out.fire(&u.service, event);
                            }
                            _ => {}
                        }
                        u.active = active.or(u.active);
                        // Its ActiveState at debug only, and not in the
                        // watch's state (logged at info when it changes).
                        log::debug!("{}: unit {} is {state}", u.service, u.unit);
                    }
                }
            }
            Err(e) => {
                // Dropping the connection takes it out of the epoll set.
                self.bus = None;
                self.bus_next = None;
                for u in &self.units {
                    self.out.state(&u.service, format!("unit {}", u.unit), pending(&e));
                }
                self.retry_at.get_or_insert(now + RETRY_EVERY);
            }
        }
    }

    fn on_destroyed(&mut self, now: Instant) {
        let Some(diag) = &mut self.diag else { return };
        match diag.read_destroyed() {
            Ok(gone) => {
                let hit: Vec<usize> = (0..self.listens.len())
                    .filter(|k| {
                        let l = &self.listens[*k];
                        l.present == Some(true)
                            && gone.iter().any(|d| {
                                !d.connected && sockdiag::serves(&l.listen, d.proto.unwrap_or(l.listen.proto), d.local)
                            })
                    })
                    .collect();
                if !hit.is_empty() {
                    self.check_listens(Some(&hit), now);
                }
            }
            // Notifications were lost: a dump tells what is there.
            Err(()) => self.check_listens(None, now),
        }
    }

    /// Dumps the listening sockets and updates the listen watches (`only`
    /// these, or all); a watched listener seen before and absent now fires.
    fn check_listens(&mut self, only: Option<&[usize]>, now: Instant) {
        if self.listens.is_empty() {
            return;
        }
        let Some(diag) = &mut self.diag else { return };
        let ks: Vec<usize> = only.map_or_else(|| (0..self.listens.len()).collect(), <[usize]>::to_vec);
        let kinds = sockdiag::kinds(ks.iter().map(|k| &self.listens[*k].listen));
        let polling = match &diag.mode {
            Mode::Events => None,
            Mode::Poll(why) => Some(why.clone()),
        };
        let mut failed = false;
        match diag.dump(&kinds) {
            Ok(all) => {
                for k in ks {
                    let l = &mut self.listens[k];
                    let now_present = sockdiag::present(&l.listen, &all);
                    match (l.present, now_present) {
                        (Some(true), false) => self.out.fire(&l.service, WatchEvent::ListenerGone { listen: l.listen }),
                        (Some(false), true) => self.out.fire(&l.service, WatchEvent::ListenerBack { listen: l.listen }),
                        _ => {}
                    }
                    let state = match (now_present, &polling, l.present) {
                        (true, None, _) => "armed (socket-destroy events)".to_string(),
                        (true, Some(why), _) => {
                            format!("armed (polled every {}ms: {why})", sockdiag::POLL_EVERY.as_millis())
                        }
                        (false, _, Some(_)) => {
                            format!("gone: no listener (looked for every {}s)", ABSENT_EVERY.as_secs())
                        }
                        (false, _, _) => {
                            format!("absent: no listener yet (looked for every {}s)", ABSENT_EVERY.as_secs())
                        }
                    };
                    l.present = Some(now_present);
                    self.out.state(&l.service.clone(), format!("listen {}", l.listen), state);
                }
            }
            Err(e) => {
                for k in ks {
                    let l = &self.listens[k];
                    self.out.state(&l.service.clone(), format!("listen {}", l.listen), pending(&e));
                }
                failed = true;
            }
        }
        let absent = self.listens.iter().any(|l| l.present != Some(true));
        let every = match polling {
            Some(_) => Some(sockdiag::POLL_EVERY),
            // A failed dump is tried again (in events mode no dump would
            // come otherwise until a destroy notification).
            None if failed => Some(RETRY_EVERY),
            None if absent => Some(ABSENT_EVERY),
            None => None,
        };
        if let Some(e) = every {
            let at = now + e;
            self.next_dump = Some(self.next_dump.map_or(at, |t| t.min(at)));
        }
    }
}

/// One pidfd per watched process: with many, the soft limit of open files
/// (often 1024) is raised to the hard one.
fn raise_fd_limit(needed: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    let need = needed as u64 + 512;
    if l.current.is_some_and(|c| c < need) {
        l.current = l.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, l) {
            log::warn!("raising the open files limit for {needed} watches: {e}");
        }
    }
}

/// A short reason for an I/O error on a watched file.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn services(watch: &str) -> Vec<Service> {
        let text = format!(
            r#"{{"services": [{{"name": "web", "prefixes": ["198.51.100.1/32"],
                "checks": [{{"type": "tcp", "address": "127.0.0.1:80"}}]{watch}}}]}}"#
        );
        crate::model::config::load(&text).unwrap().services
    }

    /// What `inotify_init1` says when `fs.inotify.max_user_instances` is used up.
    fn refused() -> io::Result<Parts> {
        Err(io::Error::other("inotify: too many inotify instances"))
    }

    /// The next batch of reports: (watch, state) of each state.
    fn states(rx: &mpsc::Receiver<Event>) -> Vec<(String, String)> {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::Watch(reports)) => reports
                .into_iter()
                .filter_map(|r| match r {
                    Report::State { watch, state, .. } => Some((watch, state)),
                    Report::Fired { .. } => None,
                })
                .collect(),
            other => panic!("no watch reports: {other:?}"),
        }
    }

    #[test]
    fn a_watcher_the_kernel_refuses_leaves_every_watch_pending() {
        let (tx, rx) = mpsc::channel();
        let s = services(r#", "disable_file": "/nonexistent/m", "watch": {"pid_file": "/run/web.pid"}"#);
        // Before the fix this was an io::Result, and an error stopped the engine.
        let w = Watcher::start_with(&s, tx, refused);
        assert!(w.running());
        let pending = "pending: inotify: too many inotify instances (retry every 5s)";
        assert_eq!(
            states(&rx),
            [
                ("pid-file /run/web.pid".to_string(), pending.to_string()),
                ("maintenance-file /nonexistent/m".to_string(), pending.to_string()),
            ]
        );
    }

    fn world() -> (World, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        let parts = open_parts().unwrap();
        (World::new(parts.epoll, parts.files, Arc::new(parts.wake), tx), rx)
    }

    fn fired(w: &mut World) -> Vec<WatchEvent> {
        std::mem::take(&mut w.out.batch)
            .into_iter()
            .filter_map(|r| match r {
                Report::Fired { event, .. } => Some(event),
                Report::State { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_stale_pidfd_readiness_does_not_fire_on_the_new_process() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("a.pid");
        let mut a = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let mut b = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, format!("{}\n", a.id())).unwrap();
        let (mut w, _rx) = world();
        w.procs.push(ProcWatch::new("web".into(), Process::PidFile(pid_file.clone())));
        assert!(w.arm_proc(0));
        let mut evs = [EpollEvent::empty(); 8];
        a.kill().unwrap();
        a.wait().unwrap();
        // A's pidfd is ready; then B is started and the pid file names it.
        let n = w.epoll.wait(&mut evs, EpollTimeout::try_from(Duration::from_secs(5)).unwrap()).unwrap();
        let stale = evs[..n].iter().map(EpollEvent::data).find(|d| *d & 0xffff_ffff == 0).expect("A's readiness");
        std::fs::write(&pid_file, format!("{}\n", b.id())).unwrap();
        // In one batch the inotify event is handled first: armed on B ...
        assert!(w.arm_proc(0));
        assert_eq!(w.procs[0].armed.as_ref().map(|a| a.1), Some(b.id()));
        fired(&mut w);
        // ... then A's readiness, from the same batch: not B's exit.
        w.on_exit(stale, Instant::now());
        assert_eq!(fired(&mut w), []);
        assert_eq!(w.procs[0].armed.as_ref().map(|a| a.1), Some(b.id()), "still armed on B");
        b.kill().unwrap();
        b.wait().unwrap();
    }

    #[test]
    fn a_watcher_that_dies_says_so_for_every_watch() {
        let (mut w, rx) = world();
        w.out.state("web", "pid-file /run/web.pid".into(), "armed (pid 1)".into());
        w.out.state("dns", "listen 127.0.0.1:53".into(), "armed (socket-destroy events)".into());
        assert!(w.out.flush());
        assert_eq!(states(&rx).len(), 2);
        run_guarded(&mut w, |_| panic!("boom"));
        assert_eq!(
            states(&rx),
            [
                ("listen 127.0.0.1:53".to_string(), "stopped: panic: boom; probing as usual".to_string()),
                ("pid-file /run/web.pid".to_string(), "stopped: panic: boom; probing as usual".to_string()),
            ]
        );
        run_guarded(&mut w, |_| Err(io::Error::other("epoll_wait: EBADF")));
        assert_eq!(states(&rx)[0].1, "stopped: epoll_wait: EBADF; probing as usual");
    }

    #[test]
    fn a_process_that_exits_with_no_successor_yet_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("a.pid");
        let mut a = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, format!("{}\n", a.id())).unwrap();
        let (mut w, _rx) = world();
        w.procs.push(ProcWatch::new("web".into(), Process::PidFile(pid_file)));
        assert!(w.arm_proc(0));
        assert_eq!(w.retry_at, None);
        a.kill().unwrap();
        a.wait().unwrap();
        let mut evs = [EpollEvent::empty(); 8];
        let n = w.epoll.wait(&mut evs, EpollTimeout::try_from(Duration::from_secs(5)).unwrap()).unwrap();
        let token = evs[..n].iter().map(EpollEvent::data).find(|d| *d & 0xffff_ffff == 0).expect("A's readiness");
        let t = Instant::now();
        w.on_exit(token, t);
        assert_eq!(fired(&mut w), [WatchEvent::ProcessExited { pid: a.id() }]);
        // The pid file still names A: not armed, and tried again later.
        assert!(w.procs[0].armed.is_none());
        assert_eq!(w.retry_at, Some(t + RETRY_EVERY));
    }

    #[test]
    fn a_retry_looks_only_at_the_watches_that_are_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (armed, missing) = (dir.path().join("a.pid"), dir.path().join("b.pid"));
        std::fs::write(&armed, format!("{}\n", std::process::id())).unwrap();
        let (mut w, _rx) = world();
        w.procs.push(ProcWatch::new("a".into(), Process::PidFile(armed.clone())));
        w.procs.push(ProcWatch::new("b".into(), Process::PidFile(missing.clone())));
        let t = Instant::now();
        w.arm_pending(t, true);
        assert!(w.procs[0].armed.is_some() && w.procs[1].armed.is_none());
        assert!(w.retry_at.is_some(), "b is pending: retried");
        w.out.batch.clear();
        // a's pid file is unreadable now (its events not handled yet): a
        // retry does not read it, so a stays armed and says nothing.
        std::fs::write(&armed, "garbage").unwrap();
        w.arm_pending(t + RETRY_EVERY, false);
        assert!(w.procs[0].armed.is_some());
        let states: Vec<String> = std::mem::take(&mut w.out.batch)
            .into_iter()
            .filter_map(|r| match r {
                Report::State { service, .. } => Some(service),
                Report::Fired { .. } => None,
            })
            .collect();
        assert!(!states.contains(&"a".to_string()), "{states:?}");
    }

    #[test]
    fn nothing_to_watch_starts_no_thread_until_a_reload_asks() {
        let (tx, rx) = mpsc::channel();
        let w = Watcher::start_with(&services(""), tx, refused);
        assert!(!w.running());
        w.set(&services(r#", "watch": {"listen": "127.0.0.1:80"}"#));
        assert!(w.running());
        assert_eq!(states(&rx)[0].0, "listen 127.0.0.1:80");
    }
}
