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
mod world;

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
use self::world::{Reporter, World};
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

pub(super) fn pending(why: &str) -> String {
    format!("pending: {why} (retry every {}s)", RETRY_EVERY.as_secs())
}

/// A short reason for an I/O error on a watched file.
pub(super) fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
