//! Command probe: runs an external program and judges its exit status, and
//! supervises every process a check starts so that none outlives it.
//!
//! # What a check runs in
//!
//! - Its own process group (in exaprobe's session), stdin from `/dev/null`,
//!   stdout and stderr on one pipe that exaprobe reads: they never reach
//!   exaprobe's stdout, which is the ExaBGP protocol. Only the first
//!   non-empty line is kept (as the outcome's detail, at most
//!   [`DETAIL_MAX`] characters); the rest is read and dropped so that the
//!   check never blocks on a full pipe.
//! - No file descriptor of exaprobe's beyond 0, 1 and 2: everything exaprobe
//!   opens is close-on-exec. (Descriptors exaprobe itself inherited without
//!   close-on-exec would pass on; ExaBGP passes none.)
//! - exaprobe's environment without systemd's `NOTIFY_SOCKET`,
//!   `WATCHDOG_USEC` and `WATCHDOG_PID`, plus [`RUN_VAR`] (which tells the
//!   check's processes apart from other children of exaprobe). With a
//!   [`RunAs`], `HOME`, `USER` and `LOGNAME` are the target user's.
//! - exaprobe's working directory (so relative paths may not resolve for a
//!   [`RunAs`] user that cannot search it: use absolute paths), resource
//!   limits, umask and scheduling priority.
//! - An empty signal mask and `SIGPIPE` at its default (std resets both);
//!   signals that exaprobe's parent left ignored stay ignored. The only
//!   signal a check ever gets from exaprobe is `SIGKILL`: there is no
//!   `SIGTERM` first, so a check has no clean-up to do on a timeout.
//! - With a [`RunAs`]: that uid and gid, no supplementary groups, no
//!   capabilities, and `no_new_privs` (setuid programs such as `sudo` or
//!   `su` do not raise privileges, nor do file capabilities).
//!
//! # The end of a check
//!
//! The check ends when its first process (the leader) exits or at the
//! timeout, whichever comes first. Then its process group is killed with
//! `SIGKILL`, and the result is read from the leader's exit status and the
//! output already in the pipe: exaprobe never waits for the pipe to close,
//! because a process the check left behind may keep it open.
//!
//! A process that left the group (`setsid`, a double fork) is not reached by
//! the group kill. [`init_supervision`] makes exaprobe a child subreaper, so
//! such processes become exaprobe's children when their parents die; a
//! supervisor thread then finds them (children of exaprobe that are not a
//! running check's leader), kills them and their process group, and reaps
//! them. It looks after every check that ends and every [`SWEEP_EVERY`].
//! A process is spared while the run named in its [`RUN_VAR`] is still
//! going, so a check's helpers live exactly as long as the check; one
//! without a valid mark (an `env -i`) is spared while a check that was
//! running when it started still runs. [`Children::kill_all`] (at exit)
//! kills the running checks and then everything they left. Only a `SIGKILL`
//! of exaprobe itself leaves processes behind (they go to init).
//!
//! Reaping never steals an exit status from `std::process::Child`: orphans
//! are reaped one by one, by pid, under the lock that also covers the
//! registration of each new leader, and never while a spawn is under way
//! (std reaps a child whose `exec` failed).
//!
//! Cost: one short-lived thread per running check (it waits for the
//! leader), and per sweep either one file per exaprobe thread (kernels with
//! `/proc/PID/task/TID/children`) or one `/proc/PID/stat` per process on
//! the host, at most every [`SCAN_EVERY_MIN`]. A sweep that finds exaprobe
//! without children reads nothing.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::{Pid, getpgrp, getpid};

use super::Outcome;

mod plugin;
mod run_as;
mod supervise;

pub use self::plugin::PluginWords;
pub use self::run_as::{RunAs, set_no_new_privs};
use self::supervise::{RETRY_MAX, SUPERVISOR, block_signals, sweep};
pub use self::supervise::{SCAN_EVERY_MIN, SWEEP_EVERY, init_supervision, supervising};

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// A shell string, run with `/bin/sh -c` (the bundled healthcheck's `--cmd`).
    Shell(String),
    /// An argument vector, run without a shell. Never empty.
    Argv(Vec<String>),
}

/// How exit statuses map to health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCodes {
    /// 0 is healthy, anything else down (the bundled healthcheck's rule).
    ZeroIsHealthy,
    /// The Nagios/Monitoring-Plugins rule: 0 healthy, 1 degraded, 2 down,
    /// anything else (3 UNKNOWN, a signal) down.
    Nagios,
}

/// A validated command check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandProbe {
    /// The program and its arguments.
    pub program: Program,
    /// How exit codes are read.
    pub exit_codes: ExitCodes,
    /// The user and group the check runs as; `None`: exaprobe's own.
    pub run_as: Option<RunAs>,
}

impl fmt::Display for CommandProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.program {
            Program::Shell(s) => write!(f, "{s:?}")?,
            Program::Argv(v) => write!(f, "{v:?}")?,
        }
        if let Some(r) = &self.run_as {
            write!(f, " as {r}")?;
        }
        Ok(())
    }
}

/// The environment variable that names the run a check's processes belong
/// to: `<exaprobe's pid>.<run number>`.
pub const RUN_VAR: &str = "EXAPROBE_CHECK_RUN";

/// Every check leader running now (pid to run number), and how many spawns
/// are under way. One lock for the whole process: the supervisor must see
/// every leader that any [`Children`] started.
struct Registry {
    live: BTreeMap<i32, u64>,
    spawning: usize,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { live: BTreeMap::new(), spawning: 0 });
static RUNS: AtomicU64 = AtomicU64::new(1);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills a leader and its group, if it is still a running leader (not
/// reaped: its pid cannot belong to anyone else).
fn kill_leader(reg: &Registry, pid: i32) {
    if reg.live.contains_key(&pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The checks that are running now, so that they can be killed when
/// exaprobe exits. Cheap to clone; shared by all workers.
#[derive(Clone, Debug, Default)]
pub struct Children(Arc<Mutex<HashSet<i32>>>);

impl Children {
    fn set(&self) -> MutexGuard<'_, HashSet<i32>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills every running check (`SIGKILL` to its process group) and, once
    /// [`init_supervision`] has run, everything the checks left behind,
    /// waiting (at most [`KILL_ALL_WAIT`]) until all of it is gone.
    pub fn kill_all(&self) {
        let kill = || {
            let reg = registry();
            for &pid in self.set().iter() {
                kill_leader(&reg, pid);
            }
        };
        kill();
        if SUPERVISOR.get().is_none() {
            return;
        }
        let until = Instant::now() + KILL_ALL_WAIT;
        let mut delay = Duration::from_millis(1);
        loop {
            // Again each time: a check whose spawn was under way at the first
            // kill registers only afterwards.
            kill();
            let s = sweep();
            if !s.busy() && self.is_empty() {
                return;
            }
            if Instant::now() >= until {
                log::warn!("check processes still running after {KILL_ALL_WAIT:?} of killing them");
                return;
            }
            thread::sleep(delay);
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// How many checks are running now.
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// True when no check is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Longest first output line kept as the outcome's detail, in characters.
pub const DETAIL_MAX: usize = 200;
/// Longest line looked at for the detail, in bytes.
const LINE_MAX: usize = 64 * 1024;
/// Most output read in one go while the check runs (then the deadline is
/// looked at again), and most read once the leader has exited.
const READ_BURST: usize = 64 * 1024;
/// How long, after its exit or the kill, the leader's status may take.
const REAP_WAIT: Duration = Duration::from_secs(5);
/// How long [`Children::kill_all`] waits for the checks' processes to go.
pub const KILL_ALL_WAIT: Duration = Duration::from_secs(2);

impl CommandProbe {
    /// A command check; the error names the empty part (`argv: …`, `shell: …`).
    pub fn new(program: Program, exit_codes: ExitCodes) -> Result<Self, super::SpecError> {
        match &program {
            Program::Shell(s) if s.trim().is_empty() => {
                return Err(super::SpecError::at("shell", "the command is empty"));
            }
            Program::Argv(v) if v.first().is_none_or(|p| p.is_empty()) => {
                return Err(super::SpecError::at("argv", "give the program (and its arguments)"));
            }
            _ => {}
        }
        Ok(CommandProbe { program, exit_codes, run_as: None })
    }

    /// The same check, run as `run_as` (`None`: as exaprobe's own user).
    pub fn with_run_as(mut self, run_as: Option<RunAs>) -> Self {
        self.run_as = run_as;
        self
    }

    /// Runs the command once, killing its process group at `timeout`.
    pub fn run(&self, timeout: Duration, children: &Children) -> Outcome {
        let deadline = Instant::now() + timeout;
        match self.start(children) {
            Ok(running) => running.finish(deadline, self),
            Err(outcome) => outcome,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = match &self.program {
            Program::Shell(s) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(s);
                c
            }
            Program::Argv(v) => {
                let mut c = Command::new(&v[0]);
                c.args(&v[1..]);
                c
            }
        };
        // systemd's notify and watchdog variables are for exaprobe alone.
        for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            cmd.env_remove(var);
        }
        if let Some(r) = &self.run_as {
            cmd.uid(r.uid).gid(r.gid).env("HOME", &r.home).env("USER", &r.user).env("LOGNAME", &r.user);
        }
        cmd
    }

    /// Spawns the check with its waiter thread.
    fn start(&self, children: &Children) -> Result<Running, Outcome> {
        fn failed(e: impl fmt::Display) -> Outcome {
            Outcome::down("spawn-failed").with_detail(e.to_string())
        }
        let mut cmd = self.command();
        if self.run_as.is_some() {
            set_no_new_privs().map_err(failed)?;
        }
        let (output, out_w) = io::pipe().map_err(failed)?;
        let err_w = out_w.try_clone().map_err(failed)?;
        fcntl(&output, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(failed)?;
        let (exited, exited_w) = io::pipe().map_err(failed)?;
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        cmd.env(RUN_VAR, format!("{}.{run}", std::process::id()));
        cmd.stdin(Stdio::null()).stdout(out_w).stderr(err_w).process_group(0);

        // The waiter starts first: if no thread can be had, nothing is spawned.
        let (child_tx, child_rx) = mpsc::sync_channel::<Child>(1);
        let (status_tx, status) = mpsc::sync_channel(1);
        let waiter_children = children.clone();
        thread::Builder::new()
            .name("cmd-wait".into())
            .stack_size(64 * 1024)
            .spawn(move || wait_for_leader(child_rx, exited_w, status_tx, waiter_children))
            .map_err(failed)?;

        let spawning = Spawning::begin();
        let spawned = cmd.spawn();
        // The Command holds the pipe's write ends; drop it so that only the
        // check holds them.
        drop(cmd);
        let child = spawning.end(spawned, run, children).map_err(failed)?;
        let pid = child.id() as i32;
        // The waiter is alive (it ends only when this sender is dropped or
        // after the child), so the send cannot fail.
        let _ = child_tx.send(child);
        Ok(Running { pid, output, exited, status })
    }

    fn judge(&self, code: i32) -> Outcome {
        let reason = format!("exit {code}");
        match (self.exit_codes, code) {
            (_, 0) => Outcome::healthy(reason),
            (ExitCodes::Nagios, 1) => Outcome::degraded(reason),
            _ => Outcome::down(reason),
        }
    }
}

/// A spawn under way: sweeps leave every child alone meanwhile, because the
/// new child is not registered yet, and std reaps it itself if `exec` fails.
struct Spawning(bool);

impl Spawning {
    fn begin() -> Self {
        registry().spawning += 1;
        Spawning(true)
    }

    /// Registers the new leader, in the same critical section that ends the spawn.
    fn end(mut self, spawned: io::Result<Child>, run: u64, children: &Children) -> io::Result<Child> {
        let mut reg = registry();
        reg.spawning -= 1;
        self.0 = false;
        if let Ok(child) = &spawned {
            let pid = child.id() as i32;
            reg.live.insert(pid, run);
            children.set().insert(pid);
        }
        spawned
    }
}

impl Drop for Spawning {
    fn drop(&mut self) {
        if self.0 {
            registry().spawning -= 1;
        }
    }
}

/// The waiter thread: blocks until the leader exits, without reaping it
/// (WNOWAIT), so that its pid, which is also its group's id, stays ours while
/// the group is killed. Then it reaps the leader and unregisters it, and
/// tells the supervisor to clean up after the group.
fn wait_for_leader(
    child: mpsc::Receiver<Child>,
    exited: io::PipeWriter,
    status_tx: mpsc::SyncSender<io::Result<ExitStatus>>,
    children: Children,
) {
    block_signals();
    let Ok(mut child) = child.recv() else { return };
    let pid = Pid::from_raw(child.id() as i32);
    let waited = loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    // Closing our end wakes the run, which stops reading the output.
    drop(exited);
    let unregister = |reg: &mut Registry| {
        reg.live.remove(&pid.as_raw());
        children.set().remove(&pid.as_raw());
    };
    let status = if waited.is_ok() {
        let _ = killpg(pid, Signal::SIGKILL);
        // The leader has exited, so this wait does not block.
        let mut reg = registry();
        let status = child.wait();
        unregister(&mut reg);
        status
    } else {
        // Cannot happen (the child is ours and unreaped); never block while
        // holding the registry.
        let status = child.wait();
        unregister(&mut registry());
        status
    };
    let _ = status_tx.send(status);
    if let Some(supervisor) = SUPERVISOR.get() {
        let _ = supervisor.send(pid.as_raw());
    }
}

/// A spawned check.
struct Running {
    pid: i32,
    output: io::PipeReader,
    /// Readable (at EOF) once the leader has exited.
    exited: io::PipeReader,
    status: mpsc::Receiver<io::Result<ExitStatus>>,
}

impl Running {
    fn finish(self, deadline: Instant, probe: &CommandProbe) -> Outcome {
        let mut first = FirstLine::default();
        let mut buf = vec![0; 8192];
        let mut output_open = true;
        let ended = loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                break Ok(false);
            };
            // Round up, so that the loop does not spin through the last millisecond.
            let ms = left.as_millis().saturating_add(1).min(60_000) as u16;
            let mut fds = vec![PollFd::new(self.exited.as_fd(), PollFlags::POLLIN)];
            if output_open {
                fds.push(PollFd::new(self.output.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(ms)) {
                Err(Errno::EINTR) | Ok(0) => continue,
                Err(e) => break Err(e),
                Ok(_) => {}
            }
            let leader_done = fds[0].any().unwrap_or(true);
            let output_ready = fds.get(1).is_some_and(|f| f.any().unwrap_or(true));
            drop(fds);
            if output_ready {
                output_open = drain(&self.output, &mut first, &mut buf);
            }
            if leader_done {
                break Ok(true);
            }
        };
        match ended {
            Ok(true) => {
                // What the leader wrote is in the pipe by now; take that, and
                // do not wait for the pipe to close.
                if output_open {
                    drain(&self.output, &mut first, &mut buf);
                }
                let detail = first.finish();
                let outcome = match self.status.recv_timeout(REAP_WAIT) {
                    Err(_) => Outcome::down("wait-failed").with_detail("no exit status from the waiter"),
                    Ok(Err(e)) => Outcome::down("wait-failed").with_detail(e.to_string()),
                    Ok(Ok(st)) => match (st.code(), st.signal()) {
                        (Some(code), _) => probe.judge(code),
                        (None, Some(sig)) => Outcome::down(format!("signal {sig}")),
                        (None, None) => Outcome::down("unknown-status"),
                    },
                };
                outcome.with_detail(detail)
            }
            Ok(false) | Err(_) => {
                kill_leader(&registry(), self.pid);
                // The leader dies at once (unless stuck in the kernel); the
                // waiter reaps it. Do not wait for ever.
                if let Err(RecvTimeoutError::Timeout) = self.status.recv_timeout(REAP_WAIT) {
                    log::warn!("check process {} did not die within {REAP_WAIT:?} of SIGKILL", self.pid);
                }
                match ended {
                    Err(e) => Outcome::down("wait-failed").with_detail(format!("poll: {e}")),
                    Ok(_) => Outcome::down("timeout"),
                }
            }
        }
    }
}

/// Reads what the pipe holds now (at most [`READ_BURST`]); false at EOF or error.
fn drain(pipe: &io::PipeReader, first: &mut FirstLine, buf: &mut [u8]) -> bool {
    let mut pipe = pipe;
    let mut total = 0;
    while total < READ_BURST {
        match pipe.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                first.feed(&buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

/// The first non-empty line of a check's output, trimmed, without control
/// characters, at most [`DETAIL_MAX`] characters; a line longer than
/// [`LINE_MAX`] bytes is cut there.
#[derive(Default)]
struct FirstLine {
    line: Vec<u8>,
    found: Option<String>,
}

impl FirstLine {
    fn feed(&mut self, mut data: &[u8]) {
        while self.found.is_none() && !data.is_empty() {
            let room = LINE_MAX - self.line.len();
            let (take, ends) = match data.iter().position(|&b| b == b'\n') {
                Some(i) if i <= room => (i, true),
                _ if data.len() >= room => (room, true),
                _ => (data.len(), false),
            };
            self.line.extend_from_slice(&data[..take]);
            data = data.get(take + usize::from(take < data.len() && data[take] == b'\n')..).unwrap_or(&[]);
            if ends {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text: String = text.trim().chars().filter(|c| !c.is_control()).take(DETAIL_MAX).collect();
        self.line.clear();
        if !text.is_empty() {
            self.found = Some(text);
        }
    }

    fn finish(mut self) -> String {
        if self.found.is_none() {
            self.end_line();
        }
        self.found.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use nix::unistd::{User, getegid, geteuid};

    use super::supervise::{
        Stat, children_by_file, children_by_scan, children_files, parse_run, parse_stat, read_stat,
    };
    use super::*;
    use crate::probe::Health;

    fn shell(s: &str) -> CommandProbe {
        CommandProbe { program: Program::Shell(s.into()), exit_codes: ExitCodes::ZeroIsHealthy, run_as: None }
    }

    #[test]
    fn exit_codes_map_to_health() {
        let c = Children::default();
        let t = Duration::from_secs(5);
        assert_eq!(shell("true").run(t, &c).health, Health::Healthy);
        let o = shell("echo 'not good'; exit 3").run(t, &c);
        assert_eq!((o.health, o.reason.as_str(), o.detail.as_str()), (Health::Down, "exit 3", "not good"));
        // The healthcheck rule: 1 is down; the Nagios rule: 1 is degraded.
        assert_eq!(shell("exit 1").run(t, &c).health, Health::Down);
        let nagios = |s: &str| CommandProbe::new(Program::Shell(s.into()), ExitCodes::Nagios).unwrap();
        assert_eq!(nagios("exit 1").run(t, &c).health, Health::Degraded);
        assert_eq!(nagios("exit 2").run(t, &c).health, Health::Down);
        assert_eq!(nagios("exit 3").run(t, &c).health, Health::Down);
        assert_eq!(nagios("kill -9 $$").run(t, &c).reason, "signal 9");
    }

    #[test]
    fn argv_runs_without_a_shell() {
        let c = Children::default();
        let p = CommandProbe::new(
            Program::Argv(vec!["/bin/echo".into(), "$HOME; exit 1".into()]),
            ExitCodes::ZeroIsHealthy,
        )
        .unwrap();
        let o = p.run(Duration::from_secs(5), &c);
        assert_eq!((o.health, o.detail.as_str()), (Health::Healthy, "$HOME; exit 1"));
        let missing =
            CommandProbe::new(Program::Argv(vec!["/nonexistent/check".into()]), ExitCodes::ZeroIsHealthy).unwrap();
        assert_eq!(missing.run(Duration::from_secs(5), &c).reason, "spawn-failed");
        assert!(c.is_empty());
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let c = Children::default();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display());
        let start = Instant::now();
        let o = shell(&script).run(Duration::from_millis(300), &c);
        assert_eq!(o.reason, "timeout");
        assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
        let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // The background sleep was in the group and got SIGKILL; it is
        // reparented to init, which reaps it; give that a bounded moment.
        let gone = (0..200).any(|_| {
            let alive = std::path::Path::new(&format!("/proc/{grandchild}")).exists()
                && !std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default().contains(") Z ");
            if alive {
                thread::sleep(Duration::from_millis(10));
            }
            !alive
        });
        assert!(gone, "background child {grandchild} survived the timeout");
        assert!(c.is_empty());
    }

    #[test]
    fn big_output_never_blocks_the_check() {
        // Far more than a pipe holds (64 KiB), in one line and then many:
        // the check is never stuck writing, and the detail is bounded.
        let c = Children::default();
        let start = Instant::now();
        let o = shell("head -c 3000000 /dev/zero | tr '\\0' x; echo; seq 1 200000; exit 4")
            .run(Duration::from_secs(20), &c);
        assert_eq!((o.reason.as_str(), o.detail.len()), ("exit 4", DETAIL_MAX));
        assert!(o.detail.chars().all(|c| c == 'x'));
        assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    }

    #[test]
    fn first_line_is_bounded() {
        let line = |chunks: &[&[u8]]| {
            let mut f = FirstLine::default();
            for c in chunks {
                f.feed(c);
            }
            f.finish()
        };
        assert_eq!(line(&[b"\n  \n", b"  ok", b" then\nmore\n"]), "ok then");
        assert_eq!(line(&[b"no newline"]), "no newline");
        assert_eq!(line(&[b"a\x07b\r\n"]), "ab");
        assert_eq!(line(&[b""]), "");
        let long = vec![b'x'; LINE_MAX + 10];
        assert_eq!(line(&[&long]).len(), DETAIL_MAX);
        // A blank line longer than LINE_MAX is skipped like any blank line.
        let blank = [vec![b' '; LINE_MAX + 10], b"\nnext\n".to_vec()].concat();
        assert_eq!(line(&[&blank]), "next");
    }

    #[test]
    fn children_are_found_either_way() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let me = getpid().as_raw();
        assert!(children_by_scan().contains(&pid));
        assert_eq!(read_stat(pid).map(|s| s.ppid), Some(me));
        match children_by_file() {
            Some(pids) => assert!(pids.contains(&pid), "{pids:?}"),
            None => assert!(!children_files()),
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn stat_and_environ_parsing() {
        let s = b"1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 98765 4 5 6";
        assert_eq!(parse_stat(s), Some(Stat { state: b'S', ppid: 1, pgrp: 1234, start: 98765 }));
        assert_eq!(parse_stat(b"7 (x) Z 5 6"), None);
        assert_eq!(parse_stat(b"garbage"), None);
        let env = format!("A=1\0{RUN_VAR}=42.7\0B=2\0");
        assert_eq!(parse_run(env.as_bytes()), Some((42, 7)));
        assert_eq!(parse_run(format!("X{RUN_VAR}=42.7\0").as_bytes()), None);
        assert_eq!(parse_run(format!("{RUN_VAR}=42\0").as_bytes()), None);
        assert_eq!(parse_run(b""), None);
    }

    #[test]
    fn run_as_resolution() {
        let root = geteuid().is_root();
        assert!(RunAs::resolve("root", None).unwrap_err().contains("root (uid 0)"));
        assert!(RunAs::resolve("0", None).unwrap_err().contains("uid 0"));
        assert!(RunAs::resolve("", None).unwrap_err().contains("empty"));
        assert!(RunAs::resolve("no-such-user-exaprobe", None).unwrap_err().contains("no such user"));
        if root {
            let nobody = User::from_name("nobody").unwrap().expect("a nobody user");
            let r = RunAs::resolve("nobody", None).unwrap();
            assert_eq!((r.uid, r.gid), (nobody.uid.as_raw(), nobody.gid.as_raw()));
            assert_eq!(RunAs::resolve(&nobody.uid.to_string(), None).unwrap(), r);
            assert!(RunAs::resolve("nobody", Some("root")).unwrap_err().contains("gid 0"));
            assert!(RunAs::resolve("nobody", Some("no-such-group-exaprobe")).unwrap_err().contains("no such group"));
            let g = RunAs::resolve("nobody", Some("12345")).unwrap();
            assert_eq!((g.gid, g.group.as_str()), (12345, "12345"));
            // A uid without a passwd entry needs a group.
            assert!(RunAs::resolve("4000000", None).unwrap_err().contains("give the group"));
            assert_eq!(RunAs::resolve("4000000", Some("4000000")).unwrap().home, PathBuf::from("/"));
        } else {
            let other = (geteuid().as_raw() + 1).to_string();
            let group = getegid().as_raw().to_string();
            assert!(RunAs::resolve(&other, Some(&group)).unwrap_err().contains("needs root"));
            // Our own user is allowed (std's setgroups(0) fails without
            // CAP_SETGID, which it ignores: the groups stay).
            let me = geteuid().as_raw().to_string();
            let r = RunAs::resolve(&me, Some(&getegid().as_raw().to_string())).unwrap();
            assert_eq!(r.uid, geteuid().as_raw());
            let o = shell("id -u").with_run_as(Some(r)).run(Duration::from_secs(5), &Children::default());
            assert_eq!((o.reason.as_str(), o.detail.as_str()), ("exit 0", me.as_str()), "{o}");
        }
    }
}
