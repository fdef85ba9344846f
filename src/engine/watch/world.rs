//! The watcher's state on its thread: every watch of every service (the
//! processes, pid and maintenance files, listeners, units), how each is armed,
//! re-armed and retried, and what each kernel event means for it. The thread,
//! its epoll loop and the engine-facing [`Watcher`] are in the parent module.

use super::*;

/// The maintenance file of a service.
pub(super) struct MaintFile {
    service: String,
    path: PathBuf,
    armed: bool,
    present: bool,
}

/// A watched listener.
pub(super) struct ListenWatch {
    service: String,
    listen: Listen,
    /// Whether the last dump saw it; `None` before the first.
    present: Option<bool>,
}

/// A watched systemd unit.
pub(super) struct UnitWatch {
    service: String,
    unit: String,
    path: String,
    /// Whether its last ActiveState was active; `None` before the first.
    active: Option<bool>,
}

/// Sends state changes (each once) and events in one batch per wake-up.
pub(super) struct Reporter {
    pub(super) tx: Sender<Event>,
    pub(super) last: HashMap<(String, String), String>,
    pub(super) batch: Vec<Report>,
}

impl Reporter {
    pub(super) fn state(&mut self, service: &str, watch: String, state: String) {
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
    pub(super) fn quiet_state(&mut self, service: &str, watch: String, state: String) {
        let key = (service.to_string(), watch);
        if self.last.get(&key) == Some(&state) {
            return;
        }
        self.batch.push(Report::State { service: key.0.clone(), watch: key.1.clone(), state: state.clone() });
        self.last.insert(key, state);
    }

    pub(super) fn fire(&mut self, service: &str, event: WatchEvent) {
        self.batch.push(Report::Fired { service: service.to_string(), event });
    }

    /// Sends the batch; false once the engine is gone.
    pub(super) fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        self.tx.send(Event::Watch(std::mem::take(&mut self.batch))).is_ok()
    }
}

pub(super) struct World {
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
    pub(super) out: Reporter,
}

impl World {
    pub(super) fn new(epoll: Epoll, files: Files, wake: Arc<EventFd>, tx: Sender<Event>) -> World {
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

    pub(super) fn run(&mut self, shared: &Shared) -> io::Result<()> {
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
pub(super) fn raise_fd_limit(needed: usize) {
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

#[cfg(test)]
mod tests;
