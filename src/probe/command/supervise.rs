//! The supervisor of command checks: exaprobe as a child subreaper, and a
//! thread that kills and reaps what checks leave behind, even outside their
//! process group (see the parent module's documentation).

#[allow(clippy::wildcard_imports)]
use super::*;

/// The supervisor's inbox: the process groups of checks that just ended.
pub(super) static SUPERVISOR: OnceLock<mpsc::Sender<i32>> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// How often the supervisor looks for orphans when nothing happens.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// First and longest pause between sweeps while there is work.
const RETRY_FIRST: Duration = Duration::from_millis(1);
pub(super) const RETRY_MAX: Duration = Duration::from_millis(100);
/// How long the supervisor keeps looking after an ended check's group.
const GROUP_WATCH: Duration = Duration::from_secs(10);
/// Without the kernel's lists of children, a sweep reads every process's
/// `/proc/PID/stat` (some 10–30 µs each); this keeps that to at most a few
/// sweeps a second, however many checks end (at exit, no limit applies).
pub const SCAN_EVERY_MIN: Duration = Duration::from_millis(250);

/// Makes exaprobe a child subreaper (`PR_SET_CHILD_SUBREAPER`) and starts
/// the supervisor thread, so that processes a check leaves behind, even
/// outside its process group, are killed and reaped (see the module
/// documentation). Call once at startup, in the exaprobe process only: from
/// then on every child of the process that is not a running check counts as
/// a check's leftover. Calling it again does nothing.
pub fn init_supervision() -> Result<(), String> {
    let _once = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if SUPERVISOR.get().is_some() {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a child subreaper (prctl PR_SET_CHILD_SUBREAPER): {e}"))?;
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("cmd-reaper".into())
        .stack_size(256 * 1024)
        .spawn(move || supervise(rx))
        .map_err(|e| format!("cannot start the check supervisor thread: {e}"))?;
    let _ = SUPERVISOR.set(tx);
    Ok(())
}

/// True once [`init_supervision`] has succeeded.
pub fn supervising() -> bool {
    SUPERVISOR.get().is_some()
}

/// Blocks every signal in the calling thread: the waiter and supervisor
/// threads handle none, so a process-directed signal (SIGTERM) must go to a
/// thread that does, whatever mask they were started with.
pub(super) fn block_signals() {
    let _ = nix::sys::signal::SigSet::all().thread_block();
}

fn supervise(ended: mpsc::Receiver<i32>) {
    block_signals();
    // Groups of ended checks that may still have members, and until when to
    // keep looking at them.
    let mut groups: Vec<(i32, Instant)> = Vec::new();
    let mut busy = false;
    let mut delay = RETRY_FIRST;
    let min_gap = if children_files() { Duration::ZERO } else { SCAN_EVERY_MIN };
    let mut last = Instant::now();
    loop {
        let wait = if groups.is_empty() && !busy { SWEEP_EVERY } else { delay };
        let wait = wait.max(min_gap.saturating_sub(last.elapsed()));
        match ended.recv_timeout(wait) {
            Ok(pgid) => {
                let until = Instant::now() + GROUP_WATCH;
                groups.push((pgid, until));
                groups.extend(ended.try_iter().map(|g| (g, until)));
                delay = RETRY_FIRST;
                if last.elapsed() < min_gap {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => delay = (delay * 2).min(RETRY_MAX),
            Err(RecvTimeoutError::Disconnected) => return,
        }
        busy = sweep().busy();
        last = Instant::now();
        let now = Instant::now();
        // A group is gone once all its members are dead and reaped; by then
        // their children have been re-parented to us, and the next sweeps
        // see them.
        groups.retain(|&(pgid, until)| now < until && killpg(Pid::from_raw(pgid), None) != Err(Errno::ESRCH));
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Sweep {
    killed: usize,
    reaped: usize,
    /// Leftovers of checks that are still running, left alone.
    spared: usize,
    /// A spawn was under way, so nothing was looked at.
    skipped: bool,
}

impl Sweep {
    /// More may need doing soon.
    pub(super) fn busy(&self) -> bool {
        self.killed > 0 || self.reaped > 0 || self.skipped
    }
}

/// Kills and reaps the children of exaprobe that are not running checks'
/// leaders (orphans re-parented to us), sparing those whose run is still
/// going. Holds the registry throughout, so no leader can be spawned or
/// reaped meanwhile: a child seen here stays ours until we reap it, and its
/// pid cannot be reused under our feet.
pub(super) fn sweep() -> Sweep {
    let reg = registry();
    let mut s = Sweep::default();
    if reg.spawning > 0 {
        s.skipped = true;
        return s;
    }
    // No child at all (the common case): nothing to read in /proc.
    let any = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL;
    if reg.live.is_empty() && waitid(Id::All, any) == Err(Errno::ECHILD) {
        return s;
    }
    let (me, my_group, my_pid) = (getpid().as_raw(), getpgrp().as_raw(), std::process::id());
    // The start time of the oldest running check, read when first needed.
    let mut oldest_live: Option<Option<u64>> = None;
    for pid in children_by_file().unwrap_or_else(children_by_scan) {
        if reg.live.contains_key(&pid) {
            continue;
        }
        let Some(st) = read_stat(pid) else { continue };
        if st.ppid != me {
            continue;
        }
        if matches!(st.state, b'Z' | b'X') {
            if let Ok(w) = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL))
                && w != WaitStatus::StillAlive
            {
                s.reaped += 1;
            }
            continue;
        }
        let spare = match read_run(pid) {
            Run::Of(owner, run) if owner == my_pid => reg.live.values().any(|&r| r == run),
            // No (valid) mark: an `env -i`, or an exec under way (the
            // environment reads empty for a moment). It may belong to any
            // check that was running when it started.
            _ => {
                let first = *oldest_live
                    .get_or_insert_with(|| reg.live.keys().filter_map(|&l| read_stat(l)).map(|l| l.start).min());
                first.is_some_and(|first| first <= st.start)
            }
        };
        if spare {
            s.spared += 1;
            continue;
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        // Its group too (a daemon's helpers), unless that is our own or a
        // running check's.
        if st.pgrp > 1 && st.pgrp != my_group && !reg.live.contains_key(&st.pgrp) {
            let _ = killpg(Pid::from_raw(st.pgrp), Signal::SIGKILL);
        }
        s.killed += 1;
    }
    s
}

/// Whether the kernel lists each thread's children
/// (`/proc/PID/task/TID/children`, `CONFIG_PROC_CHILDREN`, which Debian,
/// Ubuntu and RHEL kernels have): then a sweep reads a file per exaprobe
/// thread instead of one per process on the host.
pub(super) fn children_files() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| std::fs::metadata(format!("/proc/self/task/{}/children", getpid())).is_ok())
}

/// Our children, from the kernel's per-thread lists; `None` without them.
pub(super) fn children_by_file() -> Option<Vec<i32>> {
    if !children_files() {
        return None;
    }
    let mut pids = Vec::new();
    // A thread that ends meanwhile has had its children moved to another
    // thread, which is read after it or in the next sweep.
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path().join("children");
        let Ok(list) = std::fs::read_to_string(path) else { continue };
        pids.extend(list.split_ascii_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    Some(pids)
}

/// Every process on the host (the callers keep those whose parent is us).
pub(super) fn children_by_scan() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// The fields of `/proc/PID/stat` the supervisor needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stat {
    pub(super) state: u8,
    pub(super) ppid: i32,
    pub(super) pgrp: i32,
    /// When it started, in clock ticks since boot.
    pub(super) start: u64,
}

pub(super) fn read_stat(pid: i32) -> Option<Stat> {
    let mut buf = [0; 1024];
    let mut f = File::open(format!("/proc/{pid}/stat")).ok()?;
    // The fields needed come early; a short read still has them.
    let n = f.read(&mut buf).ok()?;
    parse_stat(&buf[..n])
}

pub(super) fn parse_stat(stat: &[u8]) -> Option<Stat> {
    // The command name is in parentheses and may contain anything, `)` too.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Fields 6 to 21 (session … itrealvalue), then 22: starttime.
    let start = fields.nth(16)?.parse().ok()?;
    Some(Stat { state, ppid, pgrp, start })
}

/// Most of a process's environment read to find [`RUN_VAR`].
const ENVIRON_MAX: u64 = 256 * 1024;

/// Which run an orphan belongs to, from its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// [`RUN_VAR`] says: this exaprobe's pid and run number.
    Of(u32, u64),
    /// No valid [`RUN_VAR`], or an environment that reads empty (an exec
    /// under way, an `env -i`) or cannot be read (a process that is not
    /// dumpable).
    Unknown,
}

fn read_run(pid: i32) -> Run {
    let mut env = Vec::new();
    let read = File::open(format!("/proc/{pid}/environ")).and_then(|f| f.take(ENVIRON_MAX).read_to_end(&mut env));
    match read.ok().and_then(|_| parse_run(&env)) {
        Some((p, r)) => Run::Of(p, r),
        None => Run::Unknown,
    }
}

pub(super) fn parse_run(environ: &[u8]) -> Option<(u32, u64)> {
    let prefix = format!("{RUN_VAR}=");
    let value = environ.split(|&b| b == 0).find_map(|var| var.strip_prefix(prefix.as_bytes()))?;
    let (pid, run) = std::str::from_utf8(value).ok()?.split_once('.')?;
    Some((pid.parse().ok()?, run.parse().ok()?))
}
