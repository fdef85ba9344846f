//! Command probe: runs an external program and judges its exit status.
//!
//! The program runs in a process group of its own, with stdin from
//! `/dev/null` and stdout and stderr captured (they must never reach
//! exaprobe's stdout, which is the ExaBGP protocol). At the timeout, or as
//! soon as the program itself exits, the whole group is killed, so a check
//! that forks helpers or hangs leaves no process behind. Groups still running
//! when exaprobe exits are killed through [`Children::kill_all`].

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

use super::Outcome;

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
}

impl fmt::Display for CommandProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.program {
            Program::Shell(s) => write!(f, "{s:?}"),
            Program::Argv(v) => write!(f, "{v:?}"),
        }
    }
}

/// The process groups of checks that are running now, so that they can be
/// killed when exaprobe exits. Cheap to clone; shared by all workers.
#[derive(Clone, Debug, Default)]
pub struct Children(Arc<Mutex<HashSet<i32>>>);

impl Children {
    fn insert(&self, pgid: i32) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(pgid);
    }

    fn remove(&self, pgid: i32) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&pgid);
    }

    /// Sends SIGKILL to every running check's process group.
    pub fn kill_all(&self) {
        let groups = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for &pgid in groups.iter() {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    /// How many check process groups are running now.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True when no check process is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Longest first output line kept as the outcome's detail.
const DETAIL_MAX: usize = 200;

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
        Ok(CommandProbe { program, exit_codes })
    }

    /// Runs the command once, killing its process group at `timeout`.
    pub fn run(&self, timeout: Duration, children: &Children) -> Outcome {
        let start = Instant::now();
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
        let (reader, writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => return Outcome::down("spawn-failed").with_detail(e.to_string()),
        };
        let writer2 = match writer.try_clone() {
            Ok(w) => w,
            Err(e) => return Outcome::down("spawn-failed").with_detail(e.to_string()),
        };
        // systemd's notify and watchdog variables are for exaprobe alone.
        for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2).process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::down("spawn-failed").with_detail(e.to_string()),
        };
        // The Command still holds the write ends; drop it so EOF can come.
        drop(cmd);
        let pid = child.id() as i32;
        children.insert(pid);
        let first_line = read_first_line(reader);

        // A waiter thread blocks until the leader exits, without reaping it
        // (WNOWAIT): its pid stays reserved, so killing the group afterwards
        // cannot hit an unrelated process that reused the number. At the
        // timeout the group is killed, which ends the waiter too.
        let (exited_tx, exited) = mpsc::channel();
        let waiter = thread::Builder::new().name("cmd-wait".into()).stack_size(64 * 1024).spawn(move || {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            while let Err(nix::errno::Errno::EINTR) = waitid(Id::Pid(Pid::from_raw(pid)), flags) {}
            let _ = exited_tx.send(());
        });
        let timed_out = match waiter {
            Ok(_) => exited.recv_timeout(timeout.saturating_sub(start.elapsed())).is_err(),
            Err(_) => true,
        };
        // Kill whatever the check left in its group, then reap the leader.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let status = child.wait();
        children.remove(pid);
        if timed_out {
            return Outcome::down("timeout");
        }
        let detail = first_line.recv_timeout(Duration::from_millis(50)).unwrap_or_default();
        let outcome = match status {
            Err(e) => Outcome::down("wait-failed").with_detail(e.to_string()),
            Ok(st) => match (st.code(), st.signal()) {
                (Some(code), _) => self.judge(code),
                (None, Some(sig)) => Outcome::down(format!("signal {sig}")),
                (None, None) => Outcome::down("unknown-status"),
            },
        };
        outcome.with_detail(detail)
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

/// Reads the child's output in a thread: keeps the first non-empty line,
/// drains the rest so the child never blocks on a full pipe. The thread ends
/// at EOF, which comes once every process holding the pipe is gone.
fn read_first_line(reader: std::io::PipeReader) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let spawned = thread::Builder::new().name("cmd-output".into()).spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut first = String::new();
        let mut line = Vec::new();
        while first.is_empty() {
            line.clear();
            match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    first = text.trim().chars().filter(|c| !c.is_control()).take(DETAIL_MAX).collect();
                }
            }
        }
        let _ = tx.send(first);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    if spawned.is_err() {
        log::warn!("could not start a thread to read a check's output");
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Health;

    fn shell(s: &str) -> CommandProbe {
        CommandProbe { program: Program::Shell(s.into()), exit_codes: ExitCodes::ZeroIsHealthy }
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
        let nagios = |s: &str| CommandProbe { program: Program::Shell(s.into()), exit_codes: ExitCodes::Nagios };
        assert_eq!(nagios("exit 1").run(t, &c).health, Health::Degraded);
        assert_eq!(nagios("exit 2").run(t, &c).health, Health::Down);
        assert_eq!(nagios("exit 3").run(t, &c).health, Health::Down);
        assert_eq!(nagios("kill -9 $$").run(t, &c).reason, "signal 9");
    }

    #[test]
    fn argv_runs_without_a_shell() {
        let c = Children::default();
        let p = CommandProbe {
            program: Program::Argv(vec!["/bin/echo".into(), "$HOME; exit 1".into()]),
            exit_codes: ExitCodes::ZeroIsHealthy,
        };
        let o = p.run(Duration::from_secs(5), &c);
        assert_eq!((o.health, o.detail.as_str()), (Health::Healthy, "$HOME; exit 1"));
        let missing = CommandProbe {
            program: Program::Argv(vec!["/nonexistent/check".into()]),
            exit_codes: ExitCodes::ZeroIsHealthy,
        };
        assert_eq!(missing.run(Duration::from_secs(5), &c).reason, "spawn-failed");
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
}
